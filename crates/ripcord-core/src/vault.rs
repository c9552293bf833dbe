//! The vault's vocabulary (DESIGN §5.3): what a recognized deploy statement does to the
//! objects it touches, so that an engine can keep what the statement destroys before it
//! runs and write the statements that undo it afterwards.
//!
//! Names are kept as the change wrote them (SQL text, possibly qualified or quoted), so
//! they resolve exactly as the statement itself resolved them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// Kinds of object a statement creates and a `DROP` removes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreatedKind {
    /// `CREATE TABLE`.
    Table,
    /// `CREATE INDEX name`.
    Index,
    /// `CREATE VIEW`.
    View,
    /// `CREATE MATERIALIZED VIEW`.
    MaterializedView,
    /// `CREATE SEQUENCE`.
    Sequence,
}

impl CreatedKind {
    /// The SQL keyword(s) of the kind.
    pub fn keyword(self) -> &'static str {
        match self {
            CreatedKind::Table => "TABLE",
            CreatedKind::Index => "INDEX",
            CreatedKind::View => "VIEW",
            CreatedKind::MaterializedView => "MATERIALIZED VIEW",
            CreatedKind::Sequence => "SEQUENCE",
        }
    }
}

/// What one recognized statement does. A statement may have several (an `ALTER TABLE`
/// with several actions, a `TRUNCATE` of several tables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Creates an object; undone by dropping it.
    Creates {
        /// What kind.
        kind: CreatedKind,
        /// Its name, qualified as the statement placed it.
        name: String,
        /// `IF NOT EXISTS`: the object may have existed before.
        if_not_exists: bool,
        /// Created `CONCURRENTLY` (an index): dropped the same way.
        concurrently: bool,
    },
    /// `ADD COLUMN`; undone by dropping it.
    AddColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// `DROP COLUMN`: its values and definition are kept.
    DropColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// `ALTER COLUMN … TYPE`: old values and old type are kept.
    AlterType {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// `SET DEFAULT` / `DROP DEFAULT`: the old default is recorded.
    ColumnDefault {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// `SET NOT NULL` / `DROP NOT NULL`: the old setting is recorded.
    ColumnNotNull {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// `ADD CONSTRAINT` (named or not): the constraints it adds are dropped again.
    AddConstraint {
        /// The table.
        table: String,
    },
    /// `DROP CONSTRAINT`: its definition is recorded.
    DropConstraint {
        /// The table.
        table: String,
        /// The constraint.
        name: String,
    },
    /// `ALTER TABLE … RENAME TO`.
    RenameTable {
        /// The table as named before.
        table: String,
        /// The new name (unqualified).
        to: String,
    },
    /// `RENAME COLUMN`.
    RenameColumn {
        /// The table.
        table: String,
        /// The column as named before.
        column: String,
        /// The new name.
        to: String,
    },
    /// `DROP TABLE`: all rows and the full definition are kept.
    DropTable {
        /// The table.
        table: String,
        /// `IF EXISTS`: the table may be missing.
        if_exists: bool,
    },
    /// `TRUNCATE`: all rows are kept.
    Truncate {
        /// The table.
        table: String,
    },
    /// `DELETE`: the deleted rows are kept.
    Delete {
        /// The table.
        table: String,
    },
    /// `UPDATE`: the old image of every changed row is kept.
    Update {
        /// The table.
        table: String,
    },
    /// `INSERT`: the keys of inserted rows are kept, so they can be removed.
    Insert {
        /// The table.
        table: String,
    },
    /// `DROP INDEX`: its definition (and comment) is recorded.
    DropIndex {
        /// The index, as written.
        name: String,
        /// `IF EXISTS`: the index may be missing.
        if_exists: bool,
    },
    /// `DROP FUNCTION` / `DROP PROCEDURE`: its definition (and comment) is recorded.
    DropFunction {
        /// `name(argument types)` as written, or the name alone.
        signature: String,
        /// `IF EXISTS`: the function may be missing.
        if_exists: bool,
    },
    /// `COMMENT ON …`: the comments as they were are recorded, and every one the
    /// statement changed is set back.
    Comment,
    /// `GRANT` / `REVOKE` on tables, views or sequences: every relation's privileges
    /// (table and column) as they were are recorded, and every relation the statement
    /// changed gets them back.
    Privileges,
    /// Changes nothing that needs undoing (`ANALYZE`, `SET`, a `SELECT`).
    Nothing,
}

impl Effect {
    /// The statement destroys or overwrites data: undoing it needs the vault.
    pub fn destroys_data(&self) -> bool {
        matches!(
            self,
            Effect::DropColumn { .. }
                | Effect::AlterType { .. }
                | Effect::DropTable { .. }
                | Effect::Truncate { .. }
                | Effect::Delete { .. }
                | Effect::Update { .. }
        )
    }

    /// Can `engine`'s vault keep and undo this effect? SQLite cannot alter a column or
    /// a constraint in place, and putting a dropped column back would move it.
    pub fn kept_by(&self, engine: crate::EngineKind) -> bool {
        match engine {
            crate::EngineKind::Postgres => true,
            crate::EngineKind::Sqlite => !matches!(
                self,
                Effect::DropColumn { .. }
                    | Effect::AlterType { .. }
                    | Effect::ColumnDefault { .. }
                    | Effect::ColumnNotNull { .. }
                    | Effect::AddConstraint { .. }
                    | Effect::DropConstraint { .. }
                    | Effect::Truncate { .. }
                    | Effect::DropIndex { .. }
                    | Effect::DropFunction { .. }
                    | Effect::Comment
                    | Effect::Privileges
                    | Effect::Creates {
                        kind: CreatedKind::Sequence | CreatedKind::MaterializedView,
                        ..
                    }
            ),
        }
    }

    /// The table the effect is about, as written.
    pub fn table(&self) -> Option<&str> {
        match self {
            Effect::Creates { .. }
            | Effect::Nothing
            | Effect::DropIndex { .. }
            | Effect::DropFunction { .. }
            | Effect::Comment
            | Effect::Privileges => None,
            Effect::AddColumn { table, .. }
            | Effect::DropColumn { table, .. }
            | Effect::AlterType { table, .. }
            | Effect::ColumnDefault { table, .. }
            | Effect::ColumnNotNull { table, .. }
            | Effect::AddConstraint { table }
            | Effect::DropConstraint { table, .. }
            | Effect::RenameTable { table, .. }
            | Effect::RenameColumn { table, .. }
            | Effect::DropTable { table, .. }
            | Effect::Truncate { table }
            | Effect::Delete { table }
            | Effect::Update { table }
            | Effect::Insert { table } => Some(table),
        }
    }
}

/// Where a vault step comes from.
#[derive(Debug, Clone)]
pub struct VaultOrigin {
    /// The change.
    pub change: String,
    /// 0-based index of the statement in the deploy section.
    pub statement: usize,
    /// The undo of a dropped column puts it back in its place by rebuilding the table
    /// (`-- column-order: rebuild`), instead of adding it last.
    pub rebuild_column_order: bool,
}

/// What an engine noted before a statement ran: handed back after it ran.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The effect.
    pub effect: Effect,
    /// The vault entry that holds kept rows, if any.
    pub entry: Option<i64>,
    /// Engine-specific state recorded before the statement (old default, constraint
    /// names, a definition).
    pub state: serde_json::Value,
}

/// How to undo one effect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Undo {
    /// Statements that undo the effect when ripcord writes the whole revert.
    pub generated: Vec<String>,
    /// Statements that put kept data back after an author's revert re-created the
    /// objects (empty when the effect kept no data).
    pub restore: Vec<String>,
    /// Why ripcord cannot write the undo itself (the author's revert is needed).
    pub cannot_generate: Option<String>,
}

/// One vault entry, for `ripcord vault list`.
#[derive(Debug, Clone, Serialize)]
pub struct VaultEntry {
    /// Entry id.
    pub id: i64,
    /// The change whose statement destroyed the data.
    pub change: String,
    /// 1-based statement number in its deploy section.
    pub statement: i32,
    /// What was kept: `drop_table`, `drop_column`, `truncate`, `delete`, `update`,
    /// `alter_type`, `insert`.
    pub action: String,
    /// The table.
    pub table: String,
    /// Rows kept.
    pub rows: i64,
    /// Bytes the kept rows take.
    pub bytes: i64,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The change is still deployed with this entry in its revert.
    pub live: bool,
}

/// The engine side of the vault.
pub trait Vault {
    /// Inside the deploy transaction, before the statement runs: keep what `effect`
    /// destroys and record what its undo needs. Fails (and the transaction with it)
    /// when the effect cannot be kept, e.g. a table without a key.
    fn keep(&mut self, effect: &Effect, origin: &VaultOrigin) -> Result<Kept, EngineError>;
    /// After the statement ran: finish the step and say how to undo it.
    fn undo(&mut self, kept: &Kept) -> Result<Undo, EngineError>;
    /// At the end of the change, before it commits: remove what keeping installed.
    fn release(&mut self, kept: &[Kept]) -> Result<(), EngineError>;
    /// Every entry; `live` marks those whose change is deployed.
    fn list(&mut self) -> Result<Vec<VaultEntry>, EngineError>;
    /// Remove the entries `ids` and the rows they hold, inside the caller's transaction
    /// (with the ledger rows and the audit event that go with it).
    fn prune(&mut self, ids: &[i64]) -> Result<(), EngineError>;
}

/// The value of an SQL identifier as written: quoted identifiers keep their case,
/// unquoted ones fold to lower case.
pub fn identifier_value(text: &str) -> String {
    let text = text.trim();
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_fold_unless_quoted() {
        assert_eq!(identifier_value("Email"), "email");
        assert_eq!(identifier_value("\"Email\""), "Email");
        assert_eq!(identifier_value("\"a\"\"b\""), "a\"b");
    }

    #[test]
    fn only_data_destroying_effects_need_the_vault() {
        let t = || "t".to_string();
        assert!(Effect::Delete { table: t() }.destroys_data());
        assert!(
            Effect::DropColumn {
                table: t(),
                column: "c".into()
            }
            .destroys_data()
        );
        assert!(!Effect::Insert { table: t() }.destroys_data());
        assert!(
            !Effect::AddColumn {
                table: t(),
                column: "c".into()
            }
            .destroys_data()
        );
    }
}
