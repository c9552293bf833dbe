//! Which engine a target runs on.

use serde::Serialize;

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}
