//! Row-change capture as values: what an engine reports about captured tables and
//! batches, and what a batch revert or flashback did. Engines that can capture
//! implement [`Capture`] (reached through `Engine::capture`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::EngineError;

/// A table under capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapturedTable {
    /// Qualified name.
    pub table: String,
    /// Columns that identify a row (primary key, or a unique not-null key).
    pub key_columns: Vec<String>,
    /// Capturing now.
    pub enabled: bool,
    /// Earliest time that flashback can reach (capture start, or the last prune).
    pub history_from: DateTime<Utc>,
    /// Row entries in its log.
    pub log_rows: i64,
    /// Oldest captured statement.
    pub oldest: Option<DateTime<Utc>>,
    /// How its changes are captured.
    pub mode: CaptureMode,
    /// Logical mode: bytes of WAL the server keeps for ripcord's replication slot (what
    /// `capture sync` has not consumed yet, and what the server cannot recycle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained_wal_bytes: Option<i64>,
}

/// How a table's row changes reach its capture log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    /// Statement-level triggers write the log as the statement runs.
    #[default]
    Trigger,
    /// The server's write-ahead log, decoded through a replication slot and written
    /// into the same log by `capture sync` (PostgreSQL, `wal_level = logical`).
    Logical,
}

impl CaptureMode {
    /// Its name in ripcord.toml and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMode::Trigger => "trigger",
            CaptureMode::Logical => "logical",
        }
    }
}

/// What one `capture sync` moved from the replication slot into the capture log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Committed transactions decoded that touched captured tables.
    pub transactions: i64,
    /// Row changes written into capture logs.
    pub rows: i64,
    /// WAL still retained for the slot afterwards (bytes), when there is a slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained_wal_bytes: Option<i64>,
}

/// One batch of captured changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    /// Its tag.
    pub batch: String,
    /// Tables it touched.
    pub tables: Vec<String>,
    /// Rows inserted.
    pub inserted: i64,
    /// Rows updated.
    pub updated: i64,
    /// Rows deleted.
    pub deleted: i64,
    /// First change.
    pub first_at: DateTime<Utc>,
    /// Last change.
    pub last_at: DateTime<Utc>,
}

/// What to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndoScope {
    /// Every captured change tagged with this batch.
    Batch(String),
    /// Every captured change of `table` after the time (as PostgreSQL reads `after`).
    After {
        /// Qualified table name.
        table: String,
        /// A timestamp, as text.
        after: String,
    },
}

/// What to do with rows that another batch changed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictMode {
    /// Change nothing and report them.
    Abort,
    /// Revert the other rows, leave these.
    Skip,
    /// Restore the old image anyway.
    Force,
}

/// A row the scope touched that a later, other change touched too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Qualified table.
    pub table: String,
    /// The row's key, as text.
    pub key: String,
    /// The batch that changed it later.
    pub later_batch: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// What an undo did (or would do) to one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableUndo {
    /// Qualified table.
    pub table: String,
    /// Rows deleted (they did not exist before).
    pub deleted: i64,
    /// Rows given back their old image.
    pub updated: i64,
    /// Rows put back.
    pub inserted: i64,
    /// Rows left alone because of conflicts (`skip`).
    pub skipped: i64,
}

/// The result of an undo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UndoOutcome {
    /// Conflicts found (with `abort`, nothing was changed).
    pub conflicts: Vec<Conflict>,
    /// Per table, what was done.
    pub tables: Vec<TableUndo>,
}

/// A step of an undo, reported as it completes, so a long revert shows where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UndoProgress {
    /// The table.
    pub table: String,
    /// `collected` (rows the undo touches, from the log), `checked` (conflicts
    /// found), `deleted` (inserted rows removed), `restored` (old images written back).
    pub step: &'static str,
    /// Rows of that step.
    pub rows: i64,
}

/// Capture of row changes, for engines that have it.
pub trait Capture {
    /// Start capturing `table` in `mode` (idempotent); refuses a table without a usable
    /// key, and a mode the engine or server cannot provide.
    fn enable(&mut self, table: &str, mode: CaptureMode) -> Result<CapturedTable, EngineError>;
    /// Move decoded changes into the capture log (logical mode); a no-op for engines and
    /// tables whose log is written as the statement runs.
    fn sync(&mut self) -> Result<SyncReport, EngineError> {
        Ok(SyncReport::default())
    }
    /// Stop capturing `table`; its log is kept.
    fn disable(&mut self, table: &str) -> Result<(), EngineError>;
    /// Captured tables.
    fn tables(&mut self) -> Result<Vec<CapturedTable>, EngineError>;
    /// Remove log entries older than `before` (a timestamp as text); entries removed.
    fn prune(&mut self, before: &str) -> Result<i64, EngineError>;
    /// Batches in the log, newest first.
    fn batches(&mut self) -> Result<Vec<BatchSummary>, EngineError>;
    /// Tag writes of other connections with `batch` until cleared, for engines without
    /// session settings (SQLite); a no-op where the tag travels with the session.
    fn set_batch_context(&mut self, _batch: Option<&str>) -> Result<(), EngineError> {
        Ok(())
    }
    /// Undo `scope` inside the caller's transaction, tagging the undo's own captured
    /// changes with `tag`, reporting each step to `progress`. With
    /// [`ConflictMode::Abort`] and conflicts, changes nothing.
    fn undo(
        &mut self,
        scope: &UndoScope,
        mode: ConflictMode,
        tag: &str,
        progress: &mut dyn FnMut(&UndoProgress),
    ) -> Result<UndoOutcome, EngineError>;
}
