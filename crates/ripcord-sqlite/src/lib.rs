//! The SQLite engine: the embedded default, so ripcord runs with no server.
//!
//! Ledger tables are prefixed `ripcord_` in the main database. The target lock is a
//! row in `ripcord_lock` written under `BEGIN IMMEDIATE`; a row left by a process that
//! died on this host is taken over, one held by a live process is reported as busy.
//! Change transactions are `BEGIN IMMEDIATE`, so no writer slips in between.
#![forbid(unsafe_code)]

mod capture;
mod checks;
mod diff;
mod fleet;
mod snapshot;
mod vault;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ripcord_core::audit::AuditEvent;
use ripcord_core::engine::LEDGER_VERSION;
use ripcord_core::fingerprint::{COLUMN_ORDER, SchemaObject, TableData};
use ripcord_core::splitter::leading_words;
use ripcord_core::{
    Capabilities, ChangeState, DeployedChange, Engine, EngineError, EngineKind, LockHolder,
    RelationLock, SessionLimits, SqlError, TransactionMode,
};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

/// A connection to one SQLite database file.
pub struct SqliteEngine {
    conn: Connection,
    path: PathBuf,
}

impl SqliteEngine {
    /// Open (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<SqliteEngine, EngineError> {
        let target = format!("sqlite://{}", path.display());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(EngineError::Connect {
                target,
                reason: format!("directory {} does not exist", parent.display()),
            });
        }
        let conn = Connection::open(path).map_err(|e| EngineError::Connect {
            target: target.clone(),
            reason: e.to_string(),
        })?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(map_error)?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|e| EngineError::Connect {
                target,
                reason: e.to_string(),
            })?;
        Ok(SqliteEngine {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The underlying connection, for operations that need SQLite-only features.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn has_ledger(&mut self) -> Result<bool, EngineError> {
        Ok(self.ledger_version()?.is_some())
    }

    /// The lock row's holder, unless it is a process of this host that no longer runs.
    /// The lock's holder, unless it is a process of this host that no longer runs.
    fn live_holder(&mut self) -> Result<Option<LockHolder>, EngineError> {
        Ok(self.lock_record()?.filter(|holder| {
            holder.host != this_host() || ripcord_core::engine::process_runs(holder.pid)
        }))
    }

    fn ensure_ledger(&mut self) -> Result<(), EngineError> {
        let current = self.ledger_version()?.unwrap_or(0);
        if current > LEDGER_VERSION {
            return Err(EngineError::LedgerTooNew {
                found: current,
                supported: LEDGER_VERSION,
            });
        }
        if current == LEDGER_VERSION {
            return Ok(());
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(map_lock_error)?;
        // Another process may have created it while we waited for the write lock.
        let current = self.ledger_version()?.unwrap_or(0);
        let result = (|| {
            for (index, step) in STEPS.iter().enumerate() {
                let version = index as u32 + 1;
                if version > current {
                    self.conn.execute_batch(step).map_err(map_error)?;
                    self.conn
                        .execute(
                            "INSERT INTO ripcord_meta (key, value) VALUES ('ledger_version', ?1)
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            params![version.to_string()],
                        )
                        .map_err(map_error)?;
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => self.conn.execute_batch("COMMIT").map_err(map_error),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// `"name"` → `name` where the quotes change nothing: SQLite writes renamed tables and
/// columns back quoted, and `t` and `"t"` are the same schema.
fn unquote_plain_names(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(open) = rest.find(['"', '\'']) {
        out.push_str(&rest[..open]);
        let quote = rest[open..].chars().next().unwrap_or('"');
        let after = &rest[open + 1..];
        let Some(close) = after.find(quote) else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = &after[..close];
        let plain = inner
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !vault::is_keyword(inner);
        if quote == '"' && plain {
            out.push_str(inner);
        } else {
            // String literals (and names that need their quotes) stay as written.
            out.push(quote);
            out.push_str(inner);
            out.push(quote);
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The user tables (not SQLite's, not the ledger's), by name.
pub(crate) fn user_tables(conn: &Connection) -> Result<Vec<String>, EngineError> {
    let mut statement = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'ripcord\\_%' ESCAPE '\\'
             ORDER BY name",
        )
        .map_err(map_error)?;
    statement
        .query_map([], |r| r.get(0))
        .map_err(map_error)?
        .collect::<Result<_, _>>()
        .map_err(map_error)
}

/// Scratch database files made by drill start with this.
const SCRATCH_PREFIX: &str = "ripcord_drill_";

/// Ledger steps: step N brings version N-1 to N. Never edit a released step.
const STEPS: &[&str] = &[
    STEP_1,
    capture::LEDGER_STEP,
    VAULT_STEP,
    STEP_4,
    checks::LEDGER_STEP,
    fleet::LEDGER_STEP,
    STEP_7,
];

/// Version 7 changes PostgreSQL's vault functions only (SQLite's vault writes its
/// put-back statements when it reverts); the step keeps the versions of both engines
/// in step.
const STEP_7: &str = "-- nothing to change on SQLite";

/// Version 4: changes carry the project that deployed them (NULL: deployed before
/// ripcord recorded projects).
const STEP_4: &str = "ALTER TABLE ripcord_changes ADD COLUMN project TEXT;";

/// The vault's index (PostgreSQL has the vault; SQLite keeps the same ledger shape).
const VAULT_STEP: &str = r#"
CREATE TABLE ripcord_vault (
    id          INTEGER PRIMARY KEY,
    change      TEXT NOT NULL,
    statement   INTEGER NOT NULL,
    action      TEXT NOT NULL,
    table_name  TEXT NOT NULL,
    key_columns TEXT NOT NULL DEFAULT '[]',
    stored      TEXT,
    definition  TEXT,
    rows        INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);
"#;

const STEP_1: &str = r#"
CREATE TABLE ripcord_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE ripcord_changes (
    name             TEXT PRIMARY KEY,
    deploy_seq       INTEGER NOT NULL UNIQUE,
    checksum         TEXT NOT NULL,
    deploy_sql       TEXT NOT NULL,
    revert_sql       TEXT,
    verify_sql       TEXT,
    transaction_mode TEXT NOT NULL,
    irreversible     TEXT,
    requires         TEXT NOT NULL DEFAULT '[]',
    state            TEXT NOT NULL CHECK (state IN ('deployed', 'deploying', 'reverting')),
    statements_done  INTEGER NOT NULL DEFAULT 0,
    statements_total INTEGER NOT NULL DEFAULT 0,
    deployed_at      TEXT NOT NULL,
    deployed_by      TEXT NOT NULL,
    deployed_host    TEXT NOT NULL,
    duration_ms      INTEGER NOT NULL,
    file             TEXT NOT NULL
);
CREATE TABLE ripcord_events (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    host      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    target    TEXT NOT NULL,
    change    TEXT,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    signature TEXT
);
CREATE TRIGGER ripcord_events_no_update BEFORE UPDATE ON ripcord_events
BEGIN
    SELECT RAISE(ABORT, 'ripcord_events is append-only: UPDATE refused');
END;
CREATE TRIGGER ripcord_events_no_delete BEFORE DELETE ON ripcord_events
BEGIN
    SELECT RAISE(ABORT, 'ripcord_events is append-only: DELETE refused');
END;
CREATE TABLE ripcord_lock (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    host    TEXT NOT NULL,
    pid     INTEGER NOT NULL,
    since   TEXT NOT NULL,
    command TEXT NOT NULL
);
"#;

pub(crate) fn map_error(error: rusqlite::Error) -> EngineError {
    match error {
        rusqlite::Error::SqlInputError {
            error,
            msg,
            sql,
            offset,
            ..
        } => {
            // SQLite reports a byte offset; positions are 1-based characters.
            let offset = usize::try_from(offset)
                .ok()
                .filter(|o| *o <= sql.len() && sql.is_char_boundary(*o));
            EngineError::Sql(SqlError {
                message: msg,
                code: sqlite_code(error.code),
                position: offset.map(|o| sql[..o].chars().count() + 1),
                detail: None,
                hint: None,
            })
        }
        rusqlite::Error::SqliteFailure(failure, message) => {
            let message = message.unwrap_or_else(|| failure.to_string());
            match failure.code {
                ErrorCode::CannotOpen | ErrorCode::NotADatabase | ErrorCode::SystemIoFailure => {
                    EngineError::ConnectionLost { reason: message }
                }
                code => EngineError::Sql(SqlError {
                    message,
                    code: sqlite_code(code),
                    position: None,
                    detail: None,
                    hint: None,
                }),
            }
        }
        other => EngineError::Sql(SqlError {
            message: other.to_string(),
            code: None,
            position: None,
            detail: None,
            hint: None,
        }),
    }
}

fn sqlite_code(code: ErrorCode) -> Option<String> {
    (code != ErrorCode::Unknown).then(|| format!("SQLite {code:?}"))
}

/// A busy database while taking the lock means another writer holds it.
fn map_lock_error(error: rusqlite::Error) -> EngineError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            EngineError::LockBusy { holder: None }
        }
        _ => map_error(error),
    }
}

/// A time SQLite wrote (`YYYY-MM-DD HH:MM:SS.SSS`, UTC) or RFC 3339.
pub(crate) fn parse_sqlite_time(text: &str) -> Result<DateTime<Utc>, EngineError> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc())
        .or_else(|_| parse_time(text))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, EngineError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|_| EngineError::Ledger {
            reason: format!("unreadable time `{text}`"),
        })
}

/// Whether the process `pid` still runs on this host (unknown → assume it does).
fn this_host() -> String {
    std::env::var("RIPCORD_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_default()
}

/// The SQLite library's version.
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

impl Engine for SqliteEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Sqlite
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactional_ddl: true,
            error_positions: false,
            session_timeouts: false,
            lock_trace: false,
            copy_includes_schema: true,
        }
    }

    fn ledger_version(&mut self) -> Result<Option<u32>, EngineError> {
        let exists: bool = self
            .conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'ripcord_meta'",
                [],
                |r| r.get(0),
            )
            .map_err(map_error)?;
        if !exists {
            return Ok(None);
        }
        let version: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM ripcord_meta WHERE key = 'ledger_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(map_error)?;
        let version = version.ok_or_else(|| EngineError::Ledger {
            reason: "ripcord_meta has no ledger_version".into(),
        })?;
        version.parse().map(Some).map_err(|_| EngineError::Ledger {
            reason: format!("ledger_version `{version}` is not a number"),
        })
    }

    fn lock(&mut self, me: &LockHolder) -> Result<(), EngineError> {
        self.ensure_ledger()?;
        // Look before queueing for the write lock: a holder mid-change keeps a write
        // transaction open, and waiting for it would hide that it is there.
        if let Some(holder) = self.live_holder()? {
            return Err(EngineError::LockBusy {
                holder: Some(holder),
            });
        }
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            return Err(match map_lock_error(e) {
                EngineError::LockBusy { .. } => EngineError::LockBusy {
                    holder: self.live_holder().ok().flatten(),
                },
                other => other,
            });
        }
        let result = (|| {
            if let Some(holder) = self.live_holder()? {
                return Err(EngineError::LockBusy {
                    holder: Some(holder),
                });
            }
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO ripcord_lock (id, host, pid, since, command) VALUES (1, ?1, ?2, ?3, ?4)",
                    params![me.host, me.pid, me.since.to_rfc3339(), me.command],
                )
                .map_err(map_error)?;
            Ok(())
        })();
        match result {
            Ok(()) => self.conn.execute_batch("COMMIT").map_err(map_error),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn lock_record(&mut self) -> Result<Option<LockHolder>, EngineError> {
        if self.ledger_version()?.is_none() {
            return Ok(None);
        }
        let row = self
            .conn
            .query_row(
                "SELECT host, pid, since, command FROM ripcord_lock WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(map_error)?;
        row.map(|(host, pid, since, command)| {
            Ok(LockHolder {
                host,
                pid: pid as u32,
                since: parse_time(&since)?,
                command,
            })
        })
        .transpose()
    }

    fn break_lock(&mut self) -> Result<Option<LockHolder>, EngineError> {
        let holder = self.lock_record()?;
        if holder.is_some() {
            self.conn
                .execute("DELETE FROM ripcord_lock WHERE id = 1", [])
                .map_err(map_error)?;
        }
        Ok(holder)
    }

    fn unlock(&mut self) -> Result<(), EngineError> {
        if self.conn.is_autocommit() {
            self.conn
                .execute(
                    "DELETE FROM ripcord_lock WHERE id = 1 AND pid = ?1",
                    params![std::process::id()],
                )
                .map_err(map_error)?;
        }
        Ok(())
    }

    fn begin(&mut self, _limits: &SessionLimits) -> Result<(), EngineError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(map_error)
    }

    fn commit(&mut self) -> Result<(), EngineError> {
        self.conn.execute_batch("COMMIT").map_err(map_error)
    }

    fn rollback(&mut self) -> Result<(), EngineError> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("ROLLBACK").map_err(map_error)
    }

    fn execute(&mut self, sql: &str) -> Result<(), EngineError> {
        self.conn.execute_batch(sql).map_err(map_error)
    }

    fn needs_own_transaction(&self, sql: &str) -> bool {
        matches!(
            leading_words(sql, 1).first().map(String::as_str),
            Some("VACUUM")
        )
    }

    fn changes(&mut self) -> Result<Vec<DeployedChange>, EngineError> {
        let Some(version) = self.ledger_version()? else {
            return Ok(Vec::new());
        };
        // A ledger not yet upgraded (read-only commands do not upgrade) has no project.
        let project = if version >= 4 { "project" } else { "NULL" };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT name, deploy_seq, checksum, deploy_sql, revert_sql, verify_sql, transaction_mode, irreversible,
                        requires, state, statements_done, statements_total, deployed_at, deployed_by, deployed_host,
                        duration_ms, file, {project}
                 FROM ripcord_changes ORDER BY deploy_seq"
            ))
            .map_err(map_error)?;
        type Raw = (
            String,
            i64,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
            String,
            String,
            i32,
            i32,
            String,
            String,
            String,
            i64,
            String,
            Option<String>,
        );
        let rows: Vec<Raw> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                    r.get(13)?,
                    r.get(14)?,
                    r.get(15)?,
                    r.get(16)?,
                    r.get(17)?,
                ))
            })
            .map_err(map_error)?
            .collect::<Result<_, _>>()
            .map_err(map_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(DeployedChange {
                    name: r.0,
                    deploy_seq: r.1,
                    checksum: r.2,
                    deploy_sql: r.3,
                    revert_sql: r.4,
                    verify_sql: r.5,
                    transaction: TransactionMode::parse(&r.6).ok_or_else(|| {
                        EngineError::Ledger {
                            reason: format!("unknown transaction mode `{}`", r.6),
                        }
                    })?,
                    irreversible: r.7,
                    requires: serde_json::from_str(&r.8).map_err(|_| EngineError::Ledger {
                        reason: format!("unreadable requires `{}`", r.8),
                    })?,
                    state: ChangeState::parse(&r.9).ok_or_else(|| EngineError::Ledger {
                        reason: format!("unknown change state `{}`", r.9),
                    })?,
                    statements_done: r.10,
                    statements_total: r.11,
                    deployed_at: parse_time(&r.12)?,
                    deployed_by: r.13,
                    deployed_host: r.14,
                    duration_ms: r.15,
                    file: r.16,
                    project: r.17,
                })
            })
            .collect()
    }

    fn put_change(&mut self, c: &DeployedChange) -> Result<(), EngineError> {
        let requires = serde_json::to_string(&c.requires).expect("strings serialize");
        self.conn
            .execute(
                "INSERT OR REPLACE INTO ripcord_changes (name, deploy_seq, checksum, deploy_sql, revert_sql, verify_sql,
                     transaction_mode, irreversible, requires, state, statements_done, statements_total,
                     deployed_at, deployed_by, deployed_host, duration_ms, file, project)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                params![
                    c.name,
                    c.deploy_seq,
                    c.checksum,
                    c.deploy_sql,
                    c.revert_sql,
                    c.verify_sql,
                    c.transaction.as_str(),
                    c.irreversible,
                    requires,
                    c.state.as_str(),
                    c.statements_done,
                    c.statements_total,
                    c.deployed_at.to_rfc3339(),
                    c.deployed_by,
                    c.deployed_host,
                    c.duration_ms,
                    c.file,
                    c.project,
                ],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn set_progress(
        &mut self,
        name: &str,
        state: ChangeState,
        done: i32,
        total: i32,
    ) -> Result<(), EngineError> {
        self.conn
            .execute(
                "UPDATE ripcord_changes SET state = ?2, statements_done = ?3, statements_total = ?4 WHERE name = ?1",
                params![name, state.as_str(), done, total],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn delete_change(&mut self, name: &str) -> Result<(), EngineError> {
        self.conn
            .execute("DELETE FROM ripcord_changes WHERE name = ?1", params![name])
            .map_err(map_error)?;
        Ok(())
    }

    fn last_event(&mut self) -> Result<Option<(i64, String)>, EngineError> {
        // Appends happen inside BEGIN IMMEDIATE transactions, which SQLite serializes.
        self.conn
            .query_row(
                "SELECT seq, hash FROM ripcord_events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(map_error)
    }

    fn insert_event(&mut self, e: &AuditEvent) -> Result<(), EngineError> {
        self.conn
            .execute(
                "INSERT INTO ripcord_events (seq, at, actor, host, kind, target, change, detail, prev_hash, hash, signature)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![e.seq, e.at, e.actor, e.host, e.kind, e.target, e.change, e.detail, e.prev_hash, e.hash, e.signature],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn events(&mut self) -> Result<Vec<AuditEvent>, EngineError> {
        if !self.has_ledger()? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, at, actor, host, kind, target, change, detail, prev_hash, hash, signature
                 FROM ripcord_events ORDER BY seq",
            )
            .map_err(map_error)?;
        stmt.query_map([], |r| {
            Ok(AuditEvent {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                host: r.get(3)?,
                kind: r.get(4)?,
                target: r.get(5)?,
                change: r.get(6)?,
                detail: r.get(7)?,
                prev_hash: r.get(8)?,
                hash: r.get(9)?,
                signature: r.get(10)?,
            })
        })
        .map_err(map_error)?
        .collect::<Result<_, _>>()
        .map_err(map_error)
    }

    fn fleet(&mut self) -> Option<Box<dyn ripcord_core::fleet::FleetLedger + '_>> {
        Some(Box::new(fleet::SqliteFleet {
            conn: &mut self.conn,
        }))
    }

    fn vault(&mut self) -> Option<Box<dyn ripcord_core::vault::Vault + '_>> {
        Some(Box::new(vault::SqliteVault {
            conn: &mut self.conn,
        }))
    }

    fn capture(&mut self) -> Option<Box<dyn ripcord_core::capture::Capture + '_>> {
        Some(Box::new(capture::SqliteCapture {
            conn: &mut self.conn,
        }))
    }

    fn schema_objects(&mut self) -> Result<Vec<SchemaObject>, EngineError> {
        let mut objects = Vec::new();
        let masters: Vec<(String, String, Option<String>)> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT type, name, sql FROM sqlite_master
                     WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'ripcord\\_%' ESCAPE '\\'
                     ORDER BY type, name",
                )
                .map_err(map_error)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(map_error)?
                .collect::<Result<_, _>>()
                .map_err(map_error)?
        };
        for (kind, name, sql) in masters {
            let definition = sql
                .map(|s| unquote_plain_names(&s.split_whitespace().collect::<Vec<_>>().join(" ")))
                .unwrap_or_default();
            if kind == "table" {
                let mut stmt = self
                    .conn
                    .prepare(
                        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)",
                    )
                    .map_err(map_error)?;
                let columns: Vec<SchemaObject> = stmt
                    .query_map([&name], |r| {
                        let column: String = r.get(0)?;
                        let default: Option<String> = r.get(3)?;
                        Ok(SchemaObject {
                            kind: "column".into(),
                            name: format!("{name}.{column}"),
                            definition: format!(
                                "type: {}\nnot_null: {}\ndefault: {}\nprimary_key: {}",
                                r.get::<_, String>(1)?,
                                r.get::<_, bool>(2)?,
                                default.unwrap_or_else(|| "none".into()),
                                r.get::<_, i64>(4)?
                            ),
                        })
                    })
                    .map_err(map_error)?
                    .collect::<Result<_, _>>()
                    .map_err(map_error)?;
                // pragma_table_info lists columns in table order.
                objects.push(SchemaObject {
                    kind: COLUMN_ORDER.into(),
                    name: name.clone(),
                    definition: columns
                        .iter()
                        .map(|c| c.name[name.len() + 1..].to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
                objects.extend(columns);
            }
            objects.push(SchemaObject {
                kind,
                name,
                definition,
            });
        }
        Ok(objects)
    }

    fn table_data(&mut self) -> Result<Vec<(String, TableData)>, EngineError> {
        let tables = user_tables(&self.conn)?;
        let mut out = Vec::new();
        for table in tables {
            // SQLite runs in this process, so hashing here is hashing "in the database".
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))
                .map_err(map_error)?;
            let width = stmt.column_count();
            let mut rows = stmt.query([]).map_err(map_error)?;
            let (mut count, mut sum) = (0i64, 0u64);
            while let Some(row) = rows.next().map_err(map_error)? {
                let mut hasher = blake3::Hasher::new();
                for index in 0..width {
                    match row.get_ref(index).map_err(map_error)? {
                        rusqlite::types::ValueRef::Null => hasher.update(&[0]),
                        rusqlite::types::ValueRef::Integer(i) => {
                            hasher.update(&[1]).update(&i.to_le_bytes())
                        }
                        rusqlite::types::ValueRef::Real(f) => {
                            hasher.update(&[2]).update(&f.to_le_bytes())
                        }
                        rusqlite::types::ValueRef::Text(t) => hasher
                            .update(&[3])
                            .update(&(t.len() as u64).to_le_bytes())
                            .update(t),
                        rusqlite::types::ValueRef::Blob(b) => hasher
                            .update(&[4])
                            .update(&(b.len() as u64).to_le_bytes())
                            .update(b),
                    };
                }
                let digest = hasher.finalize();
                let word = u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"));
                sum = sum.wrapping_add(word);
                count += 1;
            }
            out.push((
                table,
                TableData {
                    rows: count,
                    hash: sum.to_string(),
                },
            ));
        }
        Ok(out)
    }

    fn held_locks(&mut self) -> Result<Vec<RelationLock>, EngineError> {
        Ok(Vec::new())
    }

    fn relation_files(&mut self) -> Result<Vec<(String, String)>, EngineError> {
        Ok(Vec::new())
    }

    fn create_scratch(&mut self) -> Result<String, EngineError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "{SCRATCH_PREFIX}{}_{nanos:08x}.db",
            std::process::id()
        ));
        Ok(format!("sqlite://{}", path.display()))
    }

    fn drop_scratch(&mut self, url: &str) -> Result<(), EngineError> {
        let path = Path::new(url.trim_start_matches("sqlite://"));
        let is_scratch = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(SCRATCH_PREFIX));
        if !is_scratch {
            return Err(EngineError::Ledger {
                reason: "refusing to remove a file that is not a ripcord scratch".into(),
            });
        }
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                std::fs::remove_file(&file).map_err(|e| EngineError::Connect {
                    target: url.to_string(),
                    reason: format!("cannot remove scratch file: {e}"),
                })?;
            }
        }
        Ok(())
    }

    fn drop_stale_scratches(&mut self) -> Result<Vec<String>, EngineError> {
        let mut dropped = Vec::new();
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return Ok(dropped);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(SCRATCH_PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !ripcord_core::engine::process_runs(pid)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                dropped.push(name);
            }
        }
        Ok(dropped)
    }

    fn restore_from_copy(
        &mut self,
        copy: &str,
        tables: &[String],
        vault_suffix: &str,
    ) -> Result<Vec<String>, EngineError> {
        snapshot::restore_from_copy(&mut self.conn, copy, tables, vault_suffix)
    }

    fn table_size(&mut self, table: &str) -> Result<Option<ripcord_core::TableSize>, EngineError> {
        let name = ripcord_core::vault::identifier_value(table);
        let exists: bool = self
            .conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [&name],
                |r| r.get(0),
            )
            .map_err(map_error)?;
        if !exists {
            return Ok(None);
        }
        let rows: i64 = self
            .conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM {}",
                    ripcord_core::snapshot::quote_ident(&name)
                ),
                [],
                |r| r.get(0),
            )
            .map_err(map_error)?;
        Ok(Some(ripcord_core::TableSize { rows, bytes: None }))
    }

    fn query_rows(
        &mut self,
        sql: &str,
        max_rows: usize,
    ) -> Result<ripcord_core::QueryRows, EngineError> {
        checks::query_rows(&mut self.conn, sql, max_rows)
    }

    fn distributions(
        &mut self,
        sql: &str,
        columns: &[String],
    ) -> Result<Vec<ripcord_core::Distribution>, EngineError> {
        checks::distributions(&mut self.conn, sql, columns)
    }

    fn save_baseline(&mut self, baseline: &ripcord_core::Baseline) -> Result<(), EngineError> {
        checks::save_baseline(&mut self.conn, baseline)
    }

    fn baselines(&mut self) -> Result<Vec<ripcord_core::Baseline>, EngineError> {
        if self.ledger_version()?.is_none_or(|v| v < 5) {
            return Ok(Vec::new());
        }
        checks::baselines(&mut self.conn)
    }

    fn diff(&mut self) -> Option<Box<dyn ripcord_core::diff::DiffSource + '_>> {
        Some(Box::new(diff::SqliteDiff {
            conn: &mut self.conn,
        }))
    }

    fn begin_snapshot(&mut self) -> Result<(), EngineError> {
        // A deferred transaction reads one snapshot once it has read.
        self.conn.execute_batch("BEGIN DEFERRED").map_err(map_error)
    }

    fn clear_scratch(&mut self) -> Result<(), EngineError> {
        // Copying an empty database over this one empties it, whatever it holds.
        let empty = Connection::open_in_memory().map_err(map_error)?;
        let backup = rusqlite::backup::Backup::new(&empty, &mut self.conn).map_err(map_error)?;
        backup
            .run_to_completion(256, Duration::from_millis(5), None)
            .map_err(map_error)
    }

    fn copy_from(&mut self, source_url: &str) -> Result<(), EngineError> {
        let source_path = source_url
            .strip_prefix("sqlite://")
            .or_else(|| source_url.strip_prefix("sqlite:"))
            .unwrap_or(source_url);
        let source =
            Connection::open_with_flags(source_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| EngineError::Connect {
                    target: source_url.to_string(),
                    reason: e.to_string(),
                })?;
        // The online backup API copies a consistent image while others keep writing.
        let backup = rusqlite::backup::Backup::new(&source, &mut self.conn).map_err(map_error)?;
        backup
            .run_to_completion(256, Duration::from_millis(5), None)
            .map_err(map_error)
    }
}

impl std::fmt::Debug for SqliteEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteEngine")
            .field("path", &self.path)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoting_plain_names_is_not_a_schema_difference() {
        assert_eq!(
            super::unquote_plain_names(
                r#"CREATE TABLE "t" ("a" TEXT DEFAULT 'x "y"', "order" INT, "My Col" INT)"#
            ),
            r#"CREATE TABLE t (a TEXT DEFAULT 'x "y"', "order" INT, "My Col" INT)"#
        );
    }

    use super::*;

    fn holder(pid: u32) -> LockHolder {
        LockHolder {
            host: this_host(),
            pid,
            since: Utc::now(),
            command: "deploy".into(),
        }
    }

    #[test]
    fn lock_creates_the_ledger_and_refuses_a_live_second_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut first = SqliteEngine::open(&path).unwrap();
        assert_eq!(first.ledger_version().unwrap(), None);
        first.lock(&holder(std::process::id())).unwrap();
        assert_eq!(first.ledger_version().unwrap(), Some(LEDGER_VERSION));

        let mut second = SqliteEngine::open(&path).unwrap();
        match second.lock(&holder(std::process::id())) {
            Err(EngineError::LockBusy { holder: Some(h) }) => assert_eq!(h.pid, std::process::id()),
            other => panic!("expected busy, got {other:?}"),
        }
        first.unlock().unwrap();
        second.lock(&holder(std::process::id())).unwrap();
    }

    #[test]
    fn a_lock_left_by_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut engine = SqliteEngine::open(&path).unwrap();
        // pid 0x7fff_fff0 is far above Linux's pid_max, so no such process runs.
        engine.lock(&holder(0x7fff_fff0)).unwrap();
        let mut other = SqliteEngine::open(&path).unwrap();
        other.lock(&holder(std::process::id())).unwrap();
    }

    #[test]
    fn events_refuse_update_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = SqliteEngine::open(&dir.path().join("t.db")).unwrap();
        engine.lock(&holder(std::process::id())).unwrap();
        engine
            .conn
            .execute_batch("INSERT INTO ripcord_events VALUES (1, 'now', 'a', 'h', 'k', 't', NULL, '{}', 'p', 'h', NULL)")
            .unwrap();
        match engine.execute("SELECT nope FROM ripcord_events") {
            Err(EngineError::Sql(e)) => assert_eq!(e.position, Some(8), "{e:?}"),
            other => panic!("{other:?}"),
        }
        let err = engine
            .execute("UPDATE ripcord_events SET actor = 'mallory'")
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        let err = engine.execute("DELETE FROM ripcord_events").unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
}
