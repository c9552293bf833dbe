//! The PostgreSQL engine.
//!
//! Talks to the server through `postgres`, the blocking face of `tokio-postgres`. Owns
//! the ledger schema `ripcord` (created and upgraded by [`ledger`]), the target lock (a
//! session advisory lock plus a row naming the holder) and the mapping of server errors,
//! with their positions, into [`EngineError`].
#![forbid(unsafe_code)]

mod capture;
mod capture_logical;
mod checks;
mod diff;
mod fingerprint;
mod fleet;
mod ledger;
mod snapshot;
mod sql;
pub mod tls;
mod vault;

use sql::connect_reason;
pub(crate) use sql::map_error;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::error::SqlState;
use postgres::{Client, NoTls, Row};
use ripcord_core::audit::AuditEvent;
use ripcord_core::engine::LEDGER_VERSION;
use ripcord_core::fingerprint::{SchemaObject, TableData};
use ripcord_core::url::{redact, with_database};
use ripcord_core::{
    Capabilities, ChangeState, DeployedChange, Engine, EngineError, EngineKind, LockHolder,
    RelationLock, SessionLimits, TransactionMode,
};

/// Names of scratch databases made by drill start with this.
const SCRATCH_PREFIX: &str = "ripcord_drill_";

/// `application_name` prefix of the session that owns a scratch database.
const SCRATCH_CLAIM: &str = "ripcord-drill:";

/// The scratch database named in `url`, if it is one of ours.
fn scratch_name(url: &str) -> Option<String> {
    let name = ripcord_core::url::PgUrl::parse(url)?.database?;
    (name.starts_with(SCRATCH_PREFIX)
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    .then(|| name.to_string())
}

/// Session advisory lock held for the whole of a deploy, revert or rehash.
const TARGET_LOCK_KEY: i64 = 0x7269_7063_6f72_6401;
/// Transaction advisory lock serializing appends to the audit chain.
const EVENTS_LOCK_KEY: i64 = 0x7269_7063_6f72_6402;

/// A connection to one PostgreSQL database.
pub struct PostgresEngine {
    client: Client,
    target: String,
    /// The URL as given (may hold a password: never printed).
    url: String,
    /// Prepared ledger statements: a deploy of many small changes is bound by round
    /// trips, and a cached statement saves one per call.
    prepared: std::collections::HashMap<&'static str, postgres::Statement>,
    /// Watch for blocking sessions while statements run.
    watch: bool,
    /// What the watch saw during the latest statement.
    seen_blockers: Vec<ripcord_core::Blocker>,
    /// A transaction of ours is open (begin … commit/rollback).
    in_transaction: bool,
    /// Most connections hashing tables at once (default: the machine's CPUs).
    hash_connections: Option<usize>,
}

impl PostgresEngine {
    /// Connect to `url` (a `postgres://` URL). Errors never contain the password.
    pub fn connect(url: &str) -> Result<PostgresEngine, EngineError> {
        let target = redact(url);
        let (crate_url, security) = tls::prepare(url);
        let mut config =
            postgres::Config::from_str(&crate_url).map_err(|e| EngineError::BadUrl {
                target: target.clone(),
                reason: ripcord_core::url::pg_url_problem(&crate_url)
                    .unwrap_or_else(|| format!("the driver cannot read it ({})", redact(&e.to_string()))),
                hint: "postgres://user@host:5432/dbname?sslmode=require; percent-encode special characters in the user and password".into(),
            })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("ripcord");
        }
        let connected = match &security {
            tls::Security::Plain => config.connect(NoTls),
            secured => config.connect(tls::connector(secured)?),
        };
        let mut client = connected.map_err(|e| EngineError::Connect {
            target: target.clone(),
            reason: redact(&connect_reason(&e)),
        })?;
        // The server notices within a second that a killed ripcord is gone, even in the
        // middle of a statement, and ends its session (and its locks). PostgreSQL 14+;
        // older servers do not know the setting, which is fine.
        let _ = client.batch_execute("SET client_connection_check_interval = '1s'");
        Ok(PostgresEngine {
            client,
            target,
            url: url.to_string(),
            prepared: Default::default(),
            watch: false,
            seen_blockers: Vec::new(),
            in_transaction: false,
            hash_connections: None,
        })
    }

    /// The underlying client, for operations that need PostgreSQL-only features.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, EngineError> {
        self.client.query(sql, params).map_err(map_error)
    }

    fn exec(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, EngineError> {
        self.client.execute(sql, params).map_err(map_error)
    }

    /// Execute one of the engine's own ledger statements, prepared once per connection.
    fn exec_cached(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, EngineError> {
        let statement = match self.prepared.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                let statement = self.client.prepare(sql).map_err(map_error)?;
                self.prepared.insert(sql, statement.clone());
                statement
            }
        };
        self.client.execute(&statement, params).map_err(map_error)
    }

    fn has_ledger(&mut self) -> Result<bool, EngineError> {
        Ok(self.ledger_version()?.is_some())
    }

    /// Row count and content hash of every user table, or of `only` (qualified names).
    fn hash_tables(
        &mut self,
        only: Option<&[String]>,
    ) -> Result<Vec<(String, TableData)>, EngineError> {
        let tables: Vec<(String, String, String)> = self
            .query(fingerprint::TABLES_QUERY, &[])?
            .iter()
            .map(|t| (t.get(0), t.get(1), t.get(2)))
            .filter(|(name, _, _): &(String, String, String)| {
                only.is_none_or(|only| only.contains(name))
            })
            .collect();
        let workers = self
            .hash_connections
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .min(tables.len());
        if workers <= 1 || self.in_transaction {
            return tables
                .iter()
                .map(|(name, quoted, columns)| {
                    Ok((
                        name.clone(),
                        hash_one(&mut self.client, quoted, columns, self.in_transaction)?,
                    ))
                })
                .collect();
        }
        // Several connections read one exported snapshot, so the tables are hashed at
        // once and still as of the same moment.
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(map_error)?;
        let result = (|| {
            let snapshot: String = self
                .client
                .query_one("SELECT pg_export_snapshot()", &[])
                .map_err(map_error)?
                .get(0);
            let shares: Vec<Vec<usize>> = (0..workers)
                .map(|w| (w..tables.len()).step_by(workers).collect())
                .collect();
            let url = self.url.clone();
            let mut hashed: Vec<Option<TableData>> = vec![None; tables.len()];
            std::thread::scope(|scope| -> Result<(), EngineError> {
                let handles: Vec<_> = shares[1..]
                    .iter()
                    .map(|share| {
                        let (url, snapshot, tables) = (&url, &snapshot, &tables);
                        scope.spawn(move || -> Result<Vec<(usize, TableData)>, EngineError> {
                            let mut worker = PostgresEngine::connect(url)?;
                            worker
                                .client
                                .batch_execute(&format!(
                                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"
                                ))
                                .map_err(map_error)?;
                            let mut out = Vec::new();
                            for &i in share {
                                let (_, quoted, columns) = &tables[i];
                                out.push((i, hash_one(&mut worker.client, quoted, columns, true)?));
                            }
                            let _ = worker.client.batch_execute("COMMIT");
                            Ok(out)
                        })
                    })
                    .collect();
                for &i in &shares[0] {
                    let (_, quoted, columns) = &tables[i];
                    hashed[i] = Some(hash_one(&mut self.client, quoted, columns, true)?);
                }
                for handle in handles {
                    for (i, data) in handle.join().expect("hashing worker")? {
                        hashed[i] = Some(data);
                    }
                }
                Ok(())
            })?;
            Ok(tables
                .iter()
                .zip(hashed)
                .map(|((name, _, _), data)| (name.clone(), data.expect("every table hashed")))
                .collect())
        })();
        let _ = self.client.batch_execute("COMMIT");
        result
    }

    fn lock_holder(&mut self) -> Result<Option<LockHolder>, EngineError> {
        if !self.has_ledger()? {
            return Ok(None);
        }
        let rows = self.query(
            "SELECT host, pid, since, command FROM ripcord.lock WHERE id = 1",
            &[],
        )?;
        Ok(rows.first().map(|row| LockHolder {
            host: row.get(0),
            pid: row.get::<_, i32>(1) as u32,
            since: row.get(2),
            command: row.get(3),
        }))
    }
}

fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis().max(1))
}

fn row_to_change(row: &Row) -> Result<DeployedChange, EngineError> {
    let transaction: String = row.get("transaction_mode");
    let state: String = row.get("state");
    Ok(DeployedChange {
        name: row.get("name"),
        deploy_seq: row.get("deploy_seq"),
        checksum: row.get("checksum"),
        deploy_sql: row.get("deploy_sql"),
        revert_sql: row.get("revert_sql"),
        verify_sql: row.get("verify_sql"),
        transaction: TransactionMode::parse(&transaction).ok_or_else(|| EngineError::Ledger {
            reason: format!("unknown transaction mode `{transaction}`"),
        })?,
        irreversible: row.get("irreversible"),
        requires: row.get("requires"),
        state: ChangeState::parse(&state).ok_or_else(|| EngineError::Ledger {
            reason: format!("unknown change state `{state}`"),
        })?,
        statements_done: row.get("statements_done"),
        statements_total: row.get("statements_total"),
        deployed_at: row.get::<_, DateTime<Utc>>("deployed_at"),
        deployed_by: row.get("deployed_by"),
        deployed_host: row.get("deployed_host"),
        duration_ms: row.get("duration_ms"),
        file: row.get("file"),
        // A ledger not yet upgraded (read-only commands do not upgrade) has no project.
        project: row.try_get("project").ok().flatten(),
    })
}

impl Engine for PostgresEngine {
    fn set_hash_connections(&mut self, connections: usize) {
        self.hash_connections = Some(connections.max(1));
    }

    fn kind(&self) -> EngineKind {
        EngineKind::Postgres
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactional_ddl: true,
            error_positions: true,
            session_timeouts: true,
            lock_trace: true,
            copy_includes_schema: false,
        }
    }

    fn ledger_version(&mut self) -> Result<Option<u32>, EngineError> {
        let rows = self.query("SELECT to_regclass('ripcord.meta') IS NOT NULL", &[])?;
        if !rows[0].get::<_, bool>(0) {
            return Ok(None);
        }
        let rows = self.query(
            "SELECT value FROM ripcord.meta WHERE key = 'ledger_version'",
            &[],
        )?;
        let version =
            rows.first()
                .map(|r| r.get::<_, String>(0))
                .ok_or_else(|| EngineError::Ledger {
                    reason: "ripcord.meta has no ledger_version".into(),
                })?;
        version.parse().map(Some).map_err(|_| EngineError::Ledger {
            reason: format!("ledger_version `{version}` is not a number"),
        })
    }

    fn lock(&mut self, me: &LockHolder) -> Result<(), EngineError> {
        // A holder that has just taken the lock may not have written its row yet (it is
        // creating the ledger of a new database): look again for a moment, so the
        // message can name it.
        let started = std::time::Instant::now();
        loop {
            let rows = self.query("SELECT pg_try_advisory_lock($1)", &[&TARGET_LOCK_KEY])?;
            if rows[0].get::<_, bool>(0) {
                break;
            }
            let holder = self.lock_holder()?;
            if holder.is_some() || started.elapsed() > Duration::from_secs(2) {
                return Err(EngineError::LockBusy { holder });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let current = self.ledger_version()?.unwrap_or(0);
        if current > LEDGER_VERSION {
            return Err(EngineError::LedgerTooNew {
                found: current,
                supported: LEDGER_VERSION,
            });
        }
        if current < LEDGER_VERSION {
            let upgrade = ledger::upgrade_sql(current);
            self.client
                .batch_execute(&format!("BEGIN; {upgrade} COMMIT;"))
                .map_err(|e| {
                    let _ = self.client.batch_execute("ROLLBACK");
                    map_error(e)
                })?;
        }
        self.exec(
            "INSERT INTO ripcord.lock (id, host, pid, since, command) VALUES (1, $1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, since = excluded.since, command = excluded.command",
            &[&me.host, &(me.pid as i32), &me.since, &me.command],
        )?;
        Ok(())
    }

    fn lock_record(&mut self) -> Result<Option<LockHolder>, EngineError> {
        self.lock_holder()
    }

    fn break_lock(&mut self) -> Result<Option<LockHolder>, EngineError> {
        let holder = self.lock_holder()?;
        // The session holding the advisory lock (a bigint key is split in two halves).
        self.query(
            "SELECT pg_terminate_backend(pid) FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND objsubid = 1
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND classid::bigint = ($1::bigint >> 32) AND objid::bigint = ($1::bigint & 4294967295)
               AND pid <> pg_backend_pid()",
            &[&TARGET_LOCK_KEY],
        )?;
        if self.has_ledger()? {
            self.exec("DELETE FROM ripcord.lock WHERE id = 1", &[])?;
        }
        Ok(holder)
    }

    fn unlock(&mut self) -> Result<(), EngineError> {
        self.exec("DELETE FROM ripcord.lock WHERE id = 1", &[])?;
        self.query("SELECT pg_advisory_unlock($1)", &[&TARGET_LOCK_KEY])?;
        Ok(())
    }

    fn begin(&mut self, limits: &SessionLimits) -> Result<(), EngineError> {
        let mut sql = String::from("BEGIN;");
        if let Some(timeout) = limits.lock_timeout {
            sql.push_str(&format!(" SET LOCAL lock_timeout = '{}';", millis(timeout)));
        }
        if let Some(timeout) = limits.statement_timeout {
            sql.push_str(&format!(
                " SET LOCAL statement_timeout = '{}';",
                millis(timeout)
            ));
        }
        self.client.batch_execute(&sql).map_err(map_error)?;
        self.in_transaction = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), EngineError> {
        self.in_transaction = false;
        self.client.batch_execute("COMMIT").map_err(map_error)
    }

    fn rollback(&mut self) -> Result<(), EngineError> {
        self.in_transaction = false;
        self.client.batch_execute("ROLLBACK").map_err(map_error)
    }

    fn execute(&mut self, sql: &str) -> Result<(), EngineError> {
        if !self.watch {
            return self.client.batch_execute(sql).map_err(map_error);
        }
        let pid: i32 = self
            .client
            .query_one("SELECT pg_backend_pid()", &[])
            .map_err(map_error)?
            .get(0);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (url, done) = (self.url.clone(), done.clone());
            std::thread::spawn(move || watch_blockers_of(&url, pid, &done))
        };
        let result = self.client.batch_execute(sql).map_err(map_error);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        self.seen_blockers = watcher.join().unwrap_or_default();
        result
    }

    fn watch_blockers(&mut self, on: bool) {
        self.watch = on;
        if on {
            self.seen_blockers.clear();
        }
    }

    fn blockers(&mut self) -> Vec<ripcord_core::Blocker> {
        self.seen_blockers.clone()
    }

    fn needs_own_transaction(&self, sql: &str) -> bool {
        ripcord_core::splitter::postgres_refuses_in_transaction(sql)
    }

    fn changes(&mut self) -> Result<Vec<DeployedChange>, EngineError> {
        if !self.has_ledger()? {
            return Ok(Vec::new());
        }
        let rows = self.query("SELECT * FROM ripcord.changes ORDER BY deploy_seq", &[])?;
        rows.iter().map(row_to_change).collect()
    }

    fn put_change(&mut self, c: &DeployedChange) -> Result<(), EngineError> {
        self.exec_cached(
            "INSERT INTO ripcord.changes (name, deploy_seq, checksum, deploy_sql, revert_sql, verify_sql,
                 transaction_mode, irreversible, requires, state, statements_done, statements_total,
                 deployed_at, deployed_by, deployed_host, duration_ms, file, project)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             ON CONFLICT (name) DO UPDATE SET deploy_seq = excluded.deploy_seq, checksum = excluded.checksum,
                 deploy_sql = excluded.deploy_sql, revert_sql = excluded.revert_sql, verify_sql = excluded.verify_sql,
                 transaction_mode = excluded.transaction_mode, irreversible = excluded.irreversible,
                 requires = excluded.requires, state = excluded.state, statements_done = excluded.statements_done,
                 statements_total = excluded.statements_total, deployed_at = excluded.deployed_at,
                 deployed_by = excluded.deployed_by, deployed_host = excluded.deployed_host,
                 duration_ms = excluded.duration_ms, file = excluded.file, project = excluded.project",
            &[
                &c.name,
                &c.deploy_seq,
                &c.checksum,
                &c.deploy_sql,
                &c.revert_sql,
                &c.verify_sql,
                &c.transaction.as_str(),
                &c.irreversible,
                &c.requires,
                &c.state.as_str(),
                &c.statements_done,
                &c.statements_total,
                &c.deployed_at,
                &c.deployed_by,
                &c.deployed_host,
                &c.duration_ms,
                &c.file,
                &c.project,
            ],
        )?;
        Ok(())
    }

    fn set_progress(
        &mut self,
        name: &str,
        state: ChangeState,
        done: i32,
        total: i32,
    ) -> Result<(), EngineError> {
        self.exec_cached(
            "UPDATE ripcord.changes SET state = $2, statements_done = $3, statements_total = $4 WHERE name = $1",
            &[&name, &state.as_str(), &done, &total],
        )?;
        Ok(())
    }

    fn delete_change(&mut self, name: &str) -> Result<(), EngineError> {
        self.exec_cached("DELETE FROM ripcord.changes WHERE name = $1", &[&name])?;
        Ok(())
    }

    fn last_event(&mut self) -> Result<Option<(i64, String)>, EngineError> {
        self.query("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK_KEY])?;
        let rows = self.query(
            "SELECT seq, hash FROM ripcord.events ORDER BY seq DESC LIMIT 1",
            &[],
        )?;
        Ok(rows.first().map(|r| (r.get(0), r.get(1))))
    }

    fn insert_event(&mut self, e: &AuditEvent) -> Result<(), EngineError> {
        self.exec_cached(
            "INSERT INTO ripcord.events (seq, at, actor, host, kind, target, change, detail, prev_hash, hash, signature)
             VALUES ($1, $2::text::timestamptz, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[&e.seq, &e.at, &e.actor, &e.host, &e.kind, &e.target, &e.change, &e.detail, &e.prev_hash, &e.hash, &e.signature],
        )?;
        Ok(())
    }

    fn events(&mut self) -> Result<Vec<AuditEvent>, EngineError> {
        if !self.has_ledger()? {
            return Ok(Vec::new());
        }
        let rows = self.query(
            "SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor, host, kind, target,
                    change, detail, prev_hash, hash, signature
             FROM ripcord.events ORDER BY seq",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| AuditEvent {
                seq: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                host: r.get(3),
                kind: r.get(4),
                target: r.get(5),
                change: r.get(6),
                detail: r.get(7),
                prev_hash: r.get(8),
                hash: r.get(9),
                signature: r.get(10),
            })
            .collect())
    }

    fn session_role(&mut self) -> Option<String> {
        self.client
            .query_one("SELECT session_user::text", &[])
            .ok()
            .map(|row| row.get(0))
    }

    fn snapshots(&mut self) -> Option<Box<dyn ripcord_core::snapshot::TableSnapshots + '_>> {
        Some(Box::new(snapshot::PgSnapshots { engine: self }))
    }

    fn diff(&mut self) -> Option<Box<dyn ripcord_core::diff::DiffSource + '_>> {
        Some(Box::new(diff::PgDiff {
            client: &mut self.client,
        }))
    }

    fn begin_snapshot(&mut self) -> Result<(), EngineError> {
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(map_error)?;
        self.in_transaction = true;
        Ok(())
    }

    fn fleet(&mut self) -> Option<Box<dyn ripcord_core::fleet::FleetLedger + '_>> {
        Some(Box::new(fleet::PgFleet {
            client: &mut self.client,
        }))
    }

    fn two_phase(&mut self) -> Option<Box<dyn ripcord_core::fleet::TwoPhase + '_>> {
        self.in_transaction = false;
        Some(Box::new(fleet::PgTwoPhase {
            client: &mut self.client,
        }))
    }

    fn vault(&mut self) -> Option<Box<dyn ripcord_core::vault::Vault + '_>> {
        Some(Box::new(vault::PgVault {
            client: &mut self.client,
        }))
    }

    fn capture(&mut self) -> Option<Box<dyn ripcord_core::capture::Capture + '_>> {
        Some(Box::new(capture::PgCapture {
            client: &mut self.client,
        }))
    }

    fn schema_objects(&mut self) -> Result<Vec<SchemaObject>, EngineError> {
        let rows = self.query(fingerprint::SCHEMA_QUERY, &[])?;
        Ok(rows
            .iter()
            .map(|r| SchemaObject {
                kind: r.get(0),
                name: r.get(1),
                definition: r.get::<_, Option<String>>(2).unwrap_or_default(),
            })
            .collect())
    }

    fn table_data(&mut self) -> Result<Vec<(String, TableData)>, EngineError> {
        self.hash_tables(None)
    }

    fn table_data_of(
        &mut self,
        tables: &[String],
    ) -> Result<Vec<(String, TableData)>, EngineError> {
        let names = checks::tables_named(&mut self.client, tables)?;
        self.hash_tables(Some(&names))
    }

    fn query_rows(
        &mut self,
        sql: &str,
        max_rows: usize,
    ) -> Result<ripcord_core::QueryRows, EngineError> {
        checks::query_rows(&mut self.client, sql, max_rows)
    }

    fn table_size(&mut self, table: &str) -> Result<Option<ripcord_core::TableSize>, EngineError> {
        // The planner's row estimate once the table was analyzed; a count before that
        // (reltuples is -1), which is cheap on the small tables that have not been.
        let rows = self.query(
            "SELECT c.reltuples::bigint, pg_total_relation_size(c.oid), c.oid::regclass::text
             FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&table],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let (estimate, bytes, name): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
        let rows = if estimate >= 0 {
            estimate
        } else {
            let counted = self.query(&format!("SELECT count(*) FROM {name}"), &[])?;
            counted[0].get::<_, i64>(0)
        };
        Ok(Some(ripcord_core::TableSize {
            rows,
            bytes: Some(bytes),
        }))
    }

    fn drop_invalid_index(&mut self, name: &str) -> Result<Option<String>, EngineError> {
        let rows = self.query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid = to_regclass($1) AND NOT i.indisvalid",
            &[&name],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let index: String = row.get(0);
        self.execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))?;
        Ok(Some(index))
    }

    fn distributions(
        &mut self,
        sql: &str,
        columns: &[String],
    ) -> Result<Vec<ripcord_core::Distribution>, EngineError> {
        checks::distributions(&mut self.client, sql, columns)
    }

    fn save_baseline(&mut self, baseline: &ripcord_core::Baseline) -> Result<(), EngineError> {
        checks::save_baseline(&mut self.client, baseline)
    }

    fn baselines(&mut self) -> Result<Vec<ripcord_core::Baseline>, EngineError> {
        if self.ledger_version()?.is_none_or(|v| v < 5) {
            return Ok(Vec::new());
        }
        checks::baselines(&mut self.client)
    }

    fn held_locks(&mut self) -> Result<Vec<RelationLock>, EngineError> {
        let rows = self.query(fingerprint::LOCKS_QUERY, &[])?;
        Ok(rows
            .iter()
            .map(|r| RelationLock {
                table: r.get(0),
                mode: r.get(1),
            })
            .collect())
    }

    fn relation_files(&mut self) -> Result<Vec<(String, String)>, EngineError> {
        let rows = self.query(fingerprint::FILES_QUERY, &[])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn create_scratch(&mut self) -> Result<String, EngineError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("{SCRATCH_PREFIX}{}_{nanos:08x}", std::process::id());
        // Claim the name before the database exists, so that no other drill mistakes it
        // for a leftover in the moment before we connect to it.
        self.client
            .batch_execute(&format!("SET application_name = '{SCRATCH_CLAIM}{name}'"))
            .map_err(map_error)?;
        self.client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .map_err(|e| {
                if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                    return EngineError::Invalid {
                        reason: "this role may not create the scratch database drill rehearses in (permission denied to create database)".into(),
                        hint: Some("grant it CREATEDB, or pass --scratch with the URL of an empty database it may use".into()),
                    };
                }
                map_error(e)
            })?;
        Ok(with_database(&self.url, &name))
    }

    fn drop_scratch(&mut self, url: &str) -> Result<(), EngineError> {
        let name = scratch_name(url).ok_or_else(|| EngineError::Ledger {
            reason: "refusing to drop a database that is not a ripcord scratch".into(),
        })?;
        self.client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .map_err(map_error)
    }

    fn drop_stale_scratches(&mut self) -> Result<Vec<String>, EngineError> {
        // A running drill is always connected to its scratch; one nobody uses is left over.
        let rows = self.query(
            "SELECT datname FROM pg_database d
             WHERE datname LIKE 'ripcord\\_drill\\_%'
               AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                               WHERE a.datname = d.datname OR a.application_name = 'ripcord-drill:' || d.datname)",
            &[],
        )?;
        let mut dropped = Vec::new();
        for row in rows {
            let name: String = row.get(0);
            if self
                .client
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .is_ok()
            {
                dropped.push(name);
            }
        }
        Ok(dropped)
    }

    fn clear_scratch(&mut self) -> Result<(), EngineError> {
        self.client
            .batch_execute(
                r#"DO $clear$
                DECLARE r record;
                BEGIN
                    FOR r IN SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' LOOP
                        EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);
                    END LOOP;
                    -- Objects of the database that live in no schema.
                    FOR r IN SELECT fdwname FROM pg_foreign_data_wrapper LOOP
                        EXECUTE format('DROP FOREIGN DATA WRAPPER IF EXISTS %I CASCADE', r.fdwname);
                    END LOOP;
                    FOR r IN SELECT pubname FROM pg_publication LOOP
                        EXECUTE format('DROP PUBLICATION IF EXISTS %I', r.pubname);
                    END LOOP;
                    FOR r IN SELECT evtname FROM pg_event_trigger LOOP
                        EXECUTE format('DROP EVENT TRIGGER IF EXISTS %I', r.evtname);
                    END LOOP;
                    FOR r IN SELECT nspname FROM pg_namespace
                             WHERE nspname NOT IN ('pg_catalog', 'information_schema')
                               AND nspname NOT LIKE 'pg\_%' LOOP
                        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', r.nspname);
                    END LOOP;
                    CREATE SCHEMA public;
                END
                $clear$"#,
            )
            .map_err(map_error)
    }

    fn copy_from(&mut self, source_url: &str) -> Result<(), EngineError> {
        let mut source = PostgresEngine::connect(source_url)?;
        // One snapshot for every table, so the copy is consistent.
        source
            .client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(map_error)?;
        let tables = source.query(fingerprint::COPY_ORDER_QUERY, &[])?;
        self.client.batch_execute("BEGIN").map_err(map_error)?;
        // The scratch holds what replaying the deployed changes wrote (their INSERTs):
        // the target's rows replace it, not add to it.
        let names: Vec<String> = tables.iter().map(|t| t.get(0)).collect();
        if !names.is_empty() {
            self.client
                .batch_execute(&format!("TRUNCATE {}", names.join(", ")))
                .map_err(map_error)?;
        }
        for table in tables {
            let name: String = table.get(0);
            let mut reader = source
                .client
                .copy_out(&format!("COPY {name} TO STDOUT (FORMAT binary)"))
                .map_err(map_error)?;
            let mut writer = self
                .client
                .copy_in(&format!("COPY {name} FROM STDIN (FORMAT binary)"))
                .map_err(map_error)?;
            std::io::copy(&mut reader, &mut writer).map_err(|e| EngineError::ConnectionLost {
                reason: format!("copying {name}: {e}"),
            })?;
            writer.finish().map_err(map_error)?;
        }
        self.client.batch_execute("COMMIT").map_err(map_error)?;
        source.client.batch_execute("COMMIT").map_err(map_error)?;
        Ok(())
    }
}

/// Count and hash of one table (`quoted` name, `columns` as [`fingerprint::TABLES_QUERY`]
/// lists them); inside a transaction the attempt with the extended hash runs under a
/// savepoint, so that its failure on a type without one can fall back to text.
fn hash_one(
    client: &mut Client,
    quoted: &str,
    columns: &str,
    in_transaction: bool,
) -> Result<TableData, EngineError> {
    if in_transaction {
        client
            .batch_execute("SAVEPOINT ripcord_hash")
            .map_err(map_error)?;
    }
    let row = match client.query_one(&fingerprint::table_hash_query(quoted, columns), &[]) {
        Ok(row) => {
            if in_transaction {
                client
                    .batch_execute("RELEASE SAVEPOINT ripcord_hash")
                    .map_err(map_error)?;
            }
            row
        }
        // Some column type has no extended hash (json, point, …): hash text forms.
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_FUNCTION) => {
            if in_transaction {
                client
                    .batch_execute(
                        "ROLLBACK TO SAVEPOINT ripcord_hash; RELEASE SAVEPOINT ripcord_hash",
                    )
                    .map_err(map_error)?;
            }
            client
                .query_one(
                    &fingerprint::table_hash_fallback_query(quoted, columns),
                    &[],
                )
                .map_err(map_error)?
        }
        Err(e) => return Err(map_error(e)),
    };
    Ok(TableData {
        rows: row.get(0),
        hash: row.get(1),
    })
}

/// Poll which sessions block `pid` until `done`; the last non-empty answer.
fn watch_blockers_of(
    url: &str,
    pid: i32,
    done: &std::sync::atomic::AtomicBool,
) -> Vec<ripcord_core::Blocker> {
    let Ok(mut watcher) = PostgresEngine::connect(url) else {
        return Vec::new();
    };
    let mut seen = Vec::new();
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        let rows = watcher.client.query(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), \
                    coalesce(a.state, ''), coalesce(a.xact_start, a.query_start), \
                    left(coalesce(a.query, ''), 200) \
             FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids($1)) ORDER BY a.pid",
            &[&pid],
        );
        match rows {
            Ok(rows) if !rows.is_empty() => {
                seen = rows
                    .iter()
                    .map(|r| ripcord_core::Blocker {
                        pid: r.get(0),
                        application: r.get(1),
                        user: r.get(2),
                        state: r.get(3),
                        since: r.get(4),
                        query: r.get(5),
                    })
                    .collect();
            }
            Ok(_) => {}
            Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

impl std::fmt::Debug for PostgresEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresEngine")
            .field("target", &self.target)
            .finish()
    }
}
