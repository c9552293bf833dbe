//! The engine traits: what ripcord needs from a database, implemented once per engine
//! (`ripcord-postgres`, `ripcord-sqlite`). Each engine owns its ledger DDL, its locking
//! and the mapping of its native errors into [`EngineError`]. Operations never ask
//! which engine they talk to; they ask for [`Capabilities`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::error::{EngineError, SqlError};
pub use crate::kind::EngineKind;
pub use crate::lock::{LockHolder, process_runs};

use crate::audit::AuditEvent;
use crate::change::TransactionMode;
use crate::fingerprint::{SchemaObject, TableData};

/// Version of the ledger layout this build writes and reads.
pub const LEDGER_VERSION: u32 = 7;

/// What an engine can do, so operations can adapt without naming engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// DDL rolls back with the transaction.
    pub transactional_ddl: bool,
    /// Errors carry the position of the failing token.
    pub error_positions: bool,
    /// `lock_timeout` / `statement_timeout` can be set per transaction.
    pub session_timeouts: bool,
    /// The session's relation locks and table files can be read (drill's lock trace).
    pub lock_trace: bool,
    /// [`Engine::copy_from`] copies schema as well as data.
    pub copy_includes_schema: bool,
}

/// A lock this session holds on a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelationLock {
    /// Qualified table name.
    pub table: String,
    /// Lock mode, e.g. `AccessExclusiveLock`.
    pub mode: String,
}

/// Another session blocking one of ours, as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    /// Its process id.
    pub pid: i32,
    /// Its `application_name`.
    pub application: String,
    /// Its user.
    pub user: String,
    /// `active`, `idle in transaction`, …
    pub state: String,
    /// Start of its transaction (or of its query).
    pub since: Option<DateTime<Utc>>,
    /// Its current or last query (shortened).
    pub query: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        let mut parts = Vec::new();
        if !self.application.is_empty() {
            parts.push(format!("application {}", self.application));
        }
        if !self.user.is_empty() {
            parts.push(format!("user {}", self.user));
        }
        if !self.state.is_empty() {
            let since = self
                .since
                .map(|t| format!(" since {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_default();
            parts.push(format!("{}{since}", self.state));
        }
        if !self.query.is_empty() {
            parts.push(format!(
                "query: {}",
                self.query.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// Where a ledgered change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeState {
    /// Completely deployed.
    Deployed,
    /// A `transaction: none` deploy that stopped part-way (see `statements_done`).
    Deploying,
    /// A `transaction: none` revert that stopped part-way (see `statements_done`).
    Reverting,
}

impl ChangeState {
    /// The spelling stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Deployed => "deployed",
            ChangeState::Deploying => "deploying",
            ChangeState::Reverting => "reverting",
        }
    }

    /// Parse the stored spelling.
    pub fn parse(text: &str) -> Option<ChangeState> {
        match text {
            "deployed" => Some(ChangeState::Deployed),
            "deploying" => Some(ChangeState::Deploying),
            "reverting" => Some(ChangeState::Reverting),
            _ => None,
        }
    }
}

/// A change as recorded in the ledger, with the SQL it was deployed with, so that a
/// revert works even when the file has since changed or is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedChange {
    /// `<ID>_<slug>`.
    pub name: String,
    /// Deploy order: revert walks this backwards.
    pub deploy_seq: i64,
    /// Checksum of the deployed definition.
    pub checksum: String,
    /// The deploy section as deployed.
    pub deploy_sql: String,
    /// The revert section as deployed.
    pub revert_sql: Option<String>,
    /// The verify section as deployed.
    pub verify_sql: Option<String>,
    /// Transaction mode it was deployed with.
    pub transaction: TransactionMode,
    /// The author's reason if declared irreversible.
    pub irreversible: Option<String>,
    /// Its requirements.
    pub requires: Vec<String>,
    /// Complete or part-way.
    pub state: ChangeState,
    /// Statements completed of the current deploy or revert (part-way changes).
    pub statements_done: i32,
    /// Statements of the section being applied.
    pub statements_total: i32,
    /// When the deploy completed (or started, while part-way).
    pub deployed_at: DateTime<Utc>,
    /// Who deployed it.
    pub deployed_by: String,
    /// From where.
    pub deployed_host: String,
    /// How long deploy and verify took.
    pub duration_ms: i64,
    /// The file it came from, relative to the project.
    pub file: String,
    /// The project that deployed it (`[project] name`; `None`: deployed before ripcord
    /// recorded projects). Each project sees and reverts only its own changes.
    pub project: Option<String>,
}

impl DeployedChange {
    /// Checksum of the row's definition (see [`crate::checksum::definition_checksum`]);
    /// progress, timestamps and who deployed it are not part of it.
    pub fn definition_checksum(&self) -> String {
        crate::checksum::definition_checksum(&[
            Some(&self.name),
            self.project.as_deref(),
            Some(&self.deploy_sql),
            self.revert_sql.as_deref(),
            self.verify_sql.as_deref(),
            Some(self.transaction.as_str()),
            self.irreversible.as_deref(),
        ])
    }
}

/// The rows a query returned, as JSON values: the first `max_rows` of `total`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueryRows {
    /// Column names, in order (empty when no row came back).
    pub columns: Vec<String>,
    /// The first rows, each a value per column.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// How many rows the query returned in all.
    pub total: u64,
}

/// How big a table is, for estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TableSize {
    /// Rows (the planner's estimate on PostgreSQL once the table was analyzed).
    pub rows: i64,
    /// Bytes with indexes and TOAST, where the engine knows them.
    pub bytes: Option<i64>,
}

/// One column's distribution over the rows of a query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Distribution {
    /// The column.
    pub column: String,
    /// Rows.
    pub rows: u64,
    /// Rows where the column is NULL.
    pub nulls: u64,
    /// Distinct non-NULL values.
    pub distinct: u64,
    /// The median: the first value whose cumulative share reaches 0.5
    /// (`percentile_disc`), as a number; `None` without values.
    pub p50: Option<f64>,
    /// The 95th percentile, the same way.
    pub p95: Option<f64>,
}

/// Measurements of the checks saved under a name, to compare later runs with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baseline {
    /// Its name (`pre-deploy`, `before-migration-7`, …).
    pub name: String,
    /// 1 for the first baseline of that name, then up.
    pub version: i64,
    /// When it was saved.
    pub created_at: DateTime<Utc>,
    /// Who saved it.
    pub created_by: String,
    /// Check name → what it measured (a JSON object).
    pub measures: serde_json::Value,
}

/// Per-transaction limits from `[safety]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionLimits {
    /// Longest wait for a lock.
    pub lock_timeout: Option<Duration>,
    /// Longest run of one statement.
    pub statement_timeout: Option<Duration>,
}

/// One connection to one target.
///
/// Transactions are explicit: operations call [`Engine::begin`], run statements and
/// ledger writes, then [`Engine::commit`] or [`Engine::rollback`]. Outside a
/// transaction every call commits on its own.
pub trait Engine: Send {
    /// Which engine.
    fn kind(&self) -> EngineKind;
    /// What it can do.
    fn capabilities(&self) -> Capabilities;
    /// The ledger's version, `None` when the target has no ledger yet.
    fn ledger_version(&mut self) -> Result<Option<u32>, EngineError>;
    /// Take the target's lock for this process (creating or upgrading the ledger as
    /// needed); [`EngineError::LockBusy`] when another process holds it.
    fn lock(&mut self, me: &LockHolder) -> Result<(), EngineError>;
    /// The holder the lock's record names, alive or not (`None`: no record).
    fn lock_record(&mut self) -> Result<Option<LockHolder>, EngineError>;
    /// Break the lock of another process (`ripcord unlock`): remove its record and, on
    /// PostgreSQL, end the server session holding it. Returns the holder it named.
    fn break_lock(&mut self) -> Result<Option<LockHolder>, EngineError>;
    /// Release the lock taken by [`Engine::lock`].
    fn unlock(&mut self) -> Result<(), EngineError>;
    /// Start a transaction with `limits` applied to it.
    fn begin(&mut self, limits: &SessionLimits) -> Result<(), EngineError>;
    /// Commit the open transaction.
    fn commit(&mut self) -> Result<(), EngineError>;
    /// Roll the open transaction back.
    fn rollback(&mut self) -> Result<(), EngineError>;
    /// Run one statement of a change.
    fn execute(&mut self, sql: &str) -> Result<(), EngineError>;
    /// Does `sql` refuse to run inside a transaction block on this engine?
    fn needs_own_transaction(&self, sql: &str) -> bool;
    /// Ledgered changes in deploy order (empty without a ledger).
    fn changes(&mut self) -> Result<Vec<DeployedChange>, EngineError>;
    /// Insert or replace a ledgered change.
    fn put_change(&mut self, change: &DeployedChange) -> Result<(), EngineError>;
    /// Record progress of a part-way change.
    fn set_progress(
        &mut self,
        name: &str,
        state: ChangeState,
        done: i32,
        total: i32,
    ) -> Result<(), EngineError>;
    /// Remove a ledgered change (it was reverted).
    fn delete_change(&mut self, name: &str) -> Result<(), EngineError>;
    /// The chain's last event `(seq, hash)`, taking whatever lock makes appending safe
    /// until the end of the transaction.
    fn last_event(&mut self) -> Result<Option<(i64, String)>, EngineError>;
    /// Append a sealed event.
    fn insert_event(&mut self, event: &AuditEvent) -> Result<(), EngineError>;
    /// All events in seq order (empty without a ledger).
    fn events(&mut self) -> Result<Vec<AuditEvent>, EngineError>;

    /// Every schema object outside the ledger, normalized (see [`crate::fingerprint`]).
    fn schema_objects(&mut self) -> Result<Vec<SchemaObject>, EngineError>;
    /// Per user table: row count and an order-independent hash of its rows, computed
    /// inside the database.
    fn table_data(&mut self) -> Result<Vec<(String, TableData)>, EngineError>;
    /// Row count and content hash of the user tables named in `tables` (as SQL would
    /// name them), and of their partitions; a name that is no table is left out.
    fn table_data_of(
        &mut self,
        tables: &[String],
    ) -> Result<Vec<(String, TableData)>, EngineError> {
        let wanted: Vec<String> = tables.iter().map(|t| t.trim().to_string()).collect();
        Ok(self
            .table_data()?
            .into_iter()
            .filter(|(name, _)| {
                wanted.iter().any(|w| {
                    name == w || name.rsplit_once('.').is_some_and(|(_, short)| short == w)
                })
            })
            .collect())
    }
    /// Rows (and bytes, where the engine knows them) of `table` as a change names it,
    /// for estimates; `None` when there is no such table.
    fn table_size(&mut self, table: &str) -> Result<Option<TableSize>, EngineError>;
    /// Drop index `name` when it exists and is INVALID — what an interrupted `CREATE
    /// INDEX CONCURRENTLY` leaves behind — so that the statement can run again; returns
    /// the index dropped. Outside a transaction. Engines without such indexes: `None`.
    fn drop_invalid_index(&mut self, name: &str) -> Result<Option<String>, EngineError> {
        let _ = name;
        Ok(None)
    }
    /// Run a query (a check's SQL) and return its first `max_rows` rows as JSON values,
    /// with the number of rows it returned in all.
    fn query_rows(&mut self, sql: &str, max_rows: usize) -> Result<QueryRows, EngineError>;
    /// The distributions of `columns` (the query's first column when empty) over the
    /// rows of `sql`, computed in the database in as few scans as the engine can.
    fn distributions(
        &mut self,
        sql: &str,
        columns: &[String],
    ) -> Result<Vec<Distribution>, EngineError>;
    /// Store a baseline (inside the caller's transaction).
    fn save_baseline(&mut self, baseline: &Baseline) -> Result<(), EngineError>;
    /// Every saved baseline, oldest first (empty without a ledger).
    fn baselines(&mut self) -> Result<Vec<Baseline>, EngineError>;
    /// Relation locks held by this session (empty without `lock_trace`).
    fn held_locks(&mut self) -> Result<Vec<RelationLock>, EngineError>;
    /// Table name -> storage file id, to see rewrites (empty without `lock_trace`).
    fn relation_files(&mut self) -> Result<Vec<(String, String)>, EngineError>;
    /// Create an empty scratch database next to this one; its URL.
    fn create_scratch(&mut self) -> Result<String, EngineError>;
    /// Drop a scratch database made by [`Engine::create_scratch`].
    fn drop_scratch(&mut self, url: &str) -> Result<(), EngineError>;
    /// Drop scratch databases left by drills that were killed; their names.
    fn drop_stale_scratches(&mut self) -> Result<Vec<String>, EngineError>;
    /// Remove every object from this (scratch) database, leaving it as if just created:
    /// drill rebuilds a scratch that a failed change left in a state nobody can name.
    fn clear_scratch(&mut self) -> Result<(), EngineError>;
    /// Mark `name` inside the open transaction.
    fn savepoint(&mut self, name: &str) -> Result<(), EngineError> {
        self.execute(&format!("SAVEPOINT {name}"))
    }
    /// Undo everything since savepoint `name` (even after an error) and forget it.
    fn rollback_to_savepoint(&mut self, name: &str) -> Result<(), EngineError> {
        self.execute(&format!("ROLLBACK TO SAVEPOINT {name}"))?;
        self.execute(&format!("RELEASE SAVEPOINT {name}"))
    }
    /// Hash tables over at most `connections` connections at once (`[fingerprint]
    /// connections`); engines that hash on one connection ignore it.
    fn set_hash_connections(&mut self, connections: usize) {
        let _ = connections;
    }
    /// While on, note which sessions block this one as statements run, so that a lock
    /// timeout can name them (costs a watching connection; used for a last attempt).
    fn watch_blockers(&mut self, on: bool) {
        let _ = on;
    }
    /// Sessions seen blocking this one while the watch was on (latest statement).
    fn blockers(&mut self) -> Vec<Blocker> {
        Vec::new()
    }
    /// The database role this session acts as, when the engine has roles.
    fn session_role(&mut self) -> Option<String> {
        None
    }
    /// Row-change capture, when the engine has it.
    fn capture(&mut self) -> Option<Box<dyn crate::capture::Capture + '_>> {
        None
    }
    /// Table diffs: bucket hashes and rows of buckets.
    fn diff(&mut self) -> Option<Box<dyn crate::diff::DiffSource + '_>> {
        None
    }
    /// Start a read-only transaction whose reads all see one snapshot.
    fn begin_snapshot(&mut self) -> Result<(), EngineError> {
        self.begin(&SessionLimits::default())
    }
    /// The vault, where the engine supports it.
    fn vault(&mut self) -> Option<Box<dyn crate::vault::Vault + '_>> {
        None
    }
    /// Table snapshots by parallel streaming, when the engine has them (otherwise a
    /// snapshot is a copy of the whole database through [`Engine::copy_from`]).
    fn snapshots(&mut self) -> Option<Box<dyn crate::snapshot::TableSnapshots + '_>> {
        None
    }
    /// Replace the rows of `tables` (all user tables when empty) with those of the
    /// same tables in the database file `copy`, in one transaction; the rows replaced
    /// are kept in vault tables named `<table><vault_suffix>`. Returns the vault tables.
    fn restore_from_copy(
        &mut self,
        copy: &str,
        tables: &[String],
        vault_suffix: &str,
    ) -> Result<Vec<String>, EngineError> {
        let _ = (copy, tables, vault_suffix);
        Err(EngineError::Invalid {
            reason: "restoring from a database copy is not available on this engine".into(),
            hint: None,
        })
    }
    /// Rollout records and feature flags (ledger version 6).
    fn fleet(&mut self) -> Option<Box<dyn crate::fleet::FleetLedger + '_>> {
        None
    }
    /// Two-phase commit, where the server has it.
    fn two_phase(&mut self) -> Option<Box<dyn crate::fleet::TwoPhase + '_>> {
        None
    }
    /// Fill this (scratch) database from `source_url` of the same engine: the whole
    /// database when `copy_includes_schema`, else the rows of every user table (whose
    /// schema must already exist here).
    fn copy_from(&mut self, source_url: &str) -> Result<(), EngineError>;
}
