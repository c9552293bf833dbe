//! Row-change capture on SQLite: SQLite has no statement-level triggers or transition
//! tables, so each captured table gets row-level triggers that append to one log,
//! `ripcord_capture_log`: the key (as a JSON array) for every change, and the old row
//! (as a JSON object) for updates and deletes. The batch tag is read from
//! `ripcord_capture_context`, which `ripcord batch run` sets around a loader (SQLite
//! has no session settings another process could carry); untagged writes are
//! `untagged`.
//!
//! The triggers list the table's columns as they were when capture was enabled: a
//! column added later is not part of old images (re-inserted rows get its default),
//! and SQLite refuses to drop a column that a trigger names — disable capture first.

use ripcord_core::EngineError;
use ripcord_core::capture::{
    BatchSummary, Capture, CaptureMode, CapturedTable, Conflict, ConflictMode, TableUndo,
    UndoOutcome, UndoProgress, UndoScope,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::map_error;

/// Step 2 of the SQLite ledger: capture bookkeeping and the capture log.
pub const LEDGER_STEP: &str = r#"
CREATE TABLE ripcord_capture_tables (
    table_name   TEXT PRIMARY KEY,
    key_columns  TEXT NOT NULL,
    enabled      INTEGER NOT NULL,
    enabled_at   TEXT NOT NULL,
    history_from TEXT NOT NULL
);
CREATE TABLE ripcord_capture_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    batch      TEXT NOT NULL,
    table_name TEXT NOT NULL,
    op         TEXT NOT NULL,
    key        TEXT NOT NULL,
    old_row    TEXT
);
CREATE INDEX ripcord_capture_log_batch ON ripcord_capture_log (batch);
CREATE INDEX ripcord_capture_log_table_key ON ripcord_capture_log (table_name, key);
CREATE TABLE ripcord_capture_context (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    batch TEXT
);
"#;

const NOW: &str = "strftime('%Y-%m-%d %H:%M:%f', 'now')";
const TAG: &str = "coalesce((SELECT batch FROM ripcord_capture_context WHERE id = 1), 'untagged')";

fn invalid(reason: String, hint: &str) -> EngineError {
    EngineError::Invalid {
        reason,
        hint: Some(hint.to_string()),
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Columns and key of `table`.
/// SQLite reads any text as a time and yields NULL for what is none: say so instead of
/// comparing with NULL (which would prune or flash back nothing, silently).
fn check_time(conn: &Connection, text: &str) -> Result<(), EngineError> {
    let read: Option<String> = conn
        .query_row("SELECT strftime('%Y-%m-%d %H:%M:%f', ?1)", [text], |r| {
            r.get(0)
        })
        .map_err(map_error)?;
    match read {
        Some(_) => Ok(()),
        None => Err(EngineError::Invalid {
            reason: format!("`{text}` is not a time"),
            hint: Some("write it as 2026-11-30 14:00:00 (UTC) or 2026-11-30T14:00:00Z".into()),
        }),
    }
}

fn describe(conn: &Connection, table: &str) -> Result<(Vec<String>, Vec<String>), EngineError> {
    let exists: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .map_err(map_error)?;
    if !exists {
        return Err(invalid(
            format!("no table `{table}`"),
            "name an existing table",
        ));
    }
    let mut stmt = conn
        .prepare("SELECT name, pk, \"notnull\" FROM pragma_table_info(?1) ORDER BY cid")
        .map_err(map_error)?;
    let columns: Vec<(String, i64, bool)> = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(map_error)?
        .collect::<Result<_, _>>()
        .map_err(map_error)?;
    let mut key: Vec<(i64, String)> = columns
        .iter()
        .filter(|c| c.1 > 0)
        .map(|c| (c.1, c.0.clone()))
        .collect();
    key.sort();
    if key.is_empty() {
        return Err(invalid(
            format!("`{table}` has no primary key, so captured rows could not be found again"),
            "add a primary key before enabling capture",
        ));
    }
    Ok((
        columns.into_iter().map(|c| c.0).collect(),
        key.into_iter().map(|k| k.1).collect(),
    ))
}

fn key_expr(alias: &str, key: &[String]) -> String {
    format!(
        "json_array({})",
        key.iter()
            .map(|k| format!("{alias}.{}", ident(k)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn image_expr(alias: &str, columns: &[String]) -> String {
    format!(
        "json_object({})",
        columns
            .iter()
            .map(|c| format!("{}, {alias}.{}", literal(c), ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn scope_filter(scope: &UndoScope, alias: &str) -> String {
    match scope {
        UndoScope::Batch(batch) => format!("{alias}.batch = {}", literal(batch)),
        UndoScope::After { table, after } => format!(
            "{alias}.table_name = {} AND {alias}.at > strftime('%Y-%m-%d %H:%M:%f', {})",
            literal(table),
            literal(after)
        ),
    }
}

/// Capture through an open SQLite connection.
pub struct SqliteCapture<'a> {
    pub(crate) conn: &'a mut Connection,
}

impl SqliteCapture<'_> {
    fn status_of(&mut self, table: &str) -> Result<CapturedTable, EngineError> {
        let (key, enabled, history_from): (String, bool, String) = self
            .conn
            .query_row(
                "SELECT key_columns, enabled, history_from FROM ripcord_capture_tables WHERE table_name = ?1",
                [table],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(map_error)?;
        let (rows, oldest): (i64, Option<String>) = self
            .conn
            .query_row(
                "SELECT count(*), min(at) FROM ripcord_capture_log WHERE table_name = ?1",
                [table],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(map_error)?;
        Ok(CapturedTable {
            table: table.to_string(),
            key_columns: serde_json::from_str(&key).unwrap_or_default(),
            enabled,
            history_from: crate::parse_sqlite_time(&history_from)?,
            log_rows: rows,
            oldest: oldest.map(|o| crate::parse_sqlite_time(&o)).transpose()?,
            mode: CaptureMode::Trigger,
            retained_wal_bytes: None,
        })
    }

    fn captured_key(&mut self, table: &str) -> Result<Vec<String>, EngineError> {
        let key: Option<String> = self
            .conn
            .query_row(
                "SELECT key_columns FROM ripcord_capture_tables WHERE table_name = ?1",
                [table],
                |r| r.get(0),
            )
            .optional()
            .map_err(map_error)?;
        let key = key.ok_or_else(|| {
            invalid(
                format!("`{table}` is not captured"),
                "start with `ripcord capture enable <table>`; only changes made after that can be undone",
            )
        })?;
        Ok(serde_json::from_str(&key).unwrap_or_default())
    }
}

impl Capture for SqliteCapture<'_> {
    fn set_batch_context(&mut self, batch: Option<&str>) -> Result<(), EngineError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO ripcord_capture_context (id, batch) VALUES (1, ?1)",
                params![batch],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn enable(&mut self, table: &str, mode: CaptureMode) -> Result<CapturedTable, EngineError> {
        if mode == CaptureMode::Logical {
            return Err(EngineError::Invalid {
                reason: "SQLite has no logical decoding: its capture is trigger-based only".into(),
                hint: Some(
                    "drop `--mode logical` (or `[capture] mode`) for a SQLite target".into(),
                ),
            });
        }
        let (columns, key) = describe(self.conn, table)?;
        let t = ident(table);
        let name = literal(table);
        let new_key = key_expr("NEW", &key);
        let old_key = key_expr("OLD", &key);
        let old_image = image_expr("OLD", &columns);
        let trigger = |suffix: &str| ident(&format!("ripcord_capture_{suffix}_{table}"));
        let sql = format!(
            "BEGIN IMMEDIATE;
             DROP TRIGGER IF EXISTS {ins}; DROP TRIGGER IF EXISTS {upd}; DROP TRIGGER IF EXISTS {del};
             CREATE TRIGGER {ins} AFTER INSERT ON {t} BEGIN
                 INSERT INTO ripcord_capture_log (at, batch, table_name, op, key) VALUES ({NOW}, {TAG}, {name}, 'I', {new_key});
             END;
             CREATE TRIGGER {upd} AFTER UPDATE ON {t} BEGIN
                 INSERT INTO ripcord_capture_log (at, batch, table_name, op, key, old_row) VALUES ({NOW}, {TAG}, {name}, 'U', {old_key}, {old_image});
                 INSERT INTO ripcord_capture_log (at, batch, table_name, op, key) SELECT {NOW}, {TAG}, {name}, 'N', {new_key} WHERE {new_key} IS NOT {old_key};
             END;
             CREATE TRIGGER {del} AFTER DELETE ON {t} BEGIN
                 INSERT INTO ripcord_capture_log (at, batch, table_name, op, key, old_row) VALUES ({NOW}, {TAG}, {name}, 'D', {old_key}, {old_image});
             END;
             INSERT INTO ripcord_capture_tables (table_name, key_columns, enabled, enabled_at, history_from)
             VALUES ({name}, {keys}, 1, {NOW}, {NOW})
             ON CONFLICT (table_name) DO UPDATE SET enabled = 1, enabled_at = excluded.enabled_at,
                 history_from = CASE WHEN ripcord_capture_tables.enabled THEN ripcord_capture_tables.history_from ELSE excluded.history_from END;
             COMMIT;",
            ins = trigger("ins"),
            upd = trigger("upd"),
            del = trigger("del"),
            keys = literal(&serde_json::to_string(&key).expect("strings serialize")),
        );
        if let Err(e) = self.conn.execute_batch(&sql) {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(map_error(e));
        }
        self.status_of(table)
    }

    fn disable(&mut self, table: &str) -> Result<(), EngineError> {
        self.captured_key(table)?;
        let trigger = |suffix: &str| ident(&format!("ripcord_capture_{suffix}_{table}"));
        self.conn
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; DROP TRIGGER IF EXISTS {}; DROP TRIGGER IF EXISTS {}; DROP TRIGGER IF EXISTS {};
                 UPDATE ripcord_capture_tables SET enabled = 0 WHERE table_name = {}; COMMIT;",
                trigger("ins"),
                trigger("upd"),
                trigger("del"),
                literal(table)
            ))
            .map_err(|e| {
                let _ = self.conn.execute_batch("ROLLBACK");
                map_error(e)
            })
    }

    fn tables(&mut self) -> Result<Vec<CapturedTable>, EngineError> {
        let names: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT table_name FROM ripcord_capture_tables ORDER BY 1")
                .map_err(map_error)?;
            stmt.query_map([], |r| r.get(0))
                .map_err(map_error)?
                .collect::<Result<_, _>>()
                .map_err(map_error)?
        };
        names.iter().map(|n| self.status_of(n)).collect()
    }

    fn prune(&mut self, before: &str) -> Result<i64, EngineError> {
        check_time(self.conn, before)?;
        let cutoff = format!("strftime('%Y-%m-%d %H:%M:%f', {})", literal(before));
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(map_error)?;
        let result = (|| {
            let removed = self
                .conn
                .execute(
                    &format!("DELETE FROM ripcord_capture_log WHERE at < {cutoff}"),
                    [],
                )
                .map_err(map_error)?;
            self.conn
                .execute(
                    &format!("UPDATE ripcord_capture_tables SET history_from = max(history_from, {cutoff})"),
                    [],
                )
                .map_err(map_error)?;
            Ok(removed as i64)
        })();
        match result {
            Ok(n) => {
                self.conn.execute_batch("COMMIT").map_err(map_error)?;
                Ok(n)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn batches(&mut self) -> Result<Vec<BatchSummary>, EngineError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT batch, json_group_array(DISTINCT table_name),
                        sum(op = 'I'), sum(op = 'U'), sum(op = 'D'), min(at), max(at)
                 FROM ripcord_capture_log GROUP BY batch ORDER BY max(seq) DESC",
            )
            .map_err(map_error)?;
        let rows: Vec<(String, String, i64, i64, i64, String, String)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .map_err(map_error)?
            .collect::<Result<_, _>>()
            .map_err(map_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(BatchSummary {
                    batch: r.0,
                    tables: serde_json::from_str(&r.1).unwrap_or_default(),
                    inserted: r.2,
                    updated: r.3,
                    deleted: r.4,
                    first_at: crate::parse_sqlite_time(&r.5)?,
                    last_at: crate::parse_sqlite_time(&r.6)?,
                })
            })
            .collect()
    }

    fn undo(
        &mut self,
        scope: &UndoScope,
        mode: ConflictMode,
        tag: &str,
        progress: &mut dyn FnMut(&UndoProgress),
    ) -> Result<UndoOutcome, EngineError> {
        if let UndoScope::After { table, after } = scope {
            check_time(self.conn, after)?;
            self.captured_key(table)?;
            let (reachable, from): (bool, String) = self
                .conn
                .query_row(
                    "SELECT strftime('%Y-%m-%d %H:%M:%f', ?2) >= history_from, history_from
                     FROM ripcord_capture_tables WHERE table_name = ?1",
                    params![table, after],
                    |r| Ok((r.get::<_, Option<bool>>(0)?.unwrap_or(false), r.get(1)?)),
                )
                .map_err(map_error)?;
            if !reachable {
                return Err(invalid(
                    format!(
                        "{table} cannot be flashed back to {after}: its captured history starts at {from}"
                    ),
                    "pick a time at or after the earliest reachable time",
                ));
            }
        }
        // The undo's own changes are captured under `tag`.
        self.conn
            .execute(
                "INSERT OR REPLACE INTO ripcord_capture_context (id, batch) VALUES (1, ?1)",
                [tag],
            )
            .map_err(map_error)?;
        let filter = scope_filter(scope, "l");
        let tables: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare(&format!(
                    "SELECT l.table_name FROM ripcord_capture_log l WHERE {filter} GROUP BY l.table_name ORDER BY max(l.seq) DESC"
                ))
                .map_err(map_error)?;
            stmt.query_map([], |r| r.get(0))
                .map_err(map_error)?
                .collect::<Result<_, _>>()
                .map_err(map_error)?
        };
        if tables.is_empty()
            && let UndoScope::Batch(batch) = scope
        {
            return Err(invalid(
                format!("no captured changes are tagged `{batch}`"),
                "`ripcord batch list` shows the batches in the capture log",
            ));
        }
        let mut outcome = UndoOutcome::default();
        let later = scope_filter(scope, "l2");
        for (index, table) in tables.iter().enumerate() {
            let first = format!("temp.rc_first_{index}");
            self.conn
                .execute_batch(&format!(
                    "DROP TABLE IF EXISTS {first};
                     CREATE TEMP TABLE rc_first_{index} AS
                     SELECT key, op, old_row, seq FROM (
                         SELECT l.key, l.op, l.old_row, l.seq,
                                row_number() OVER (PARTITION BY l.key ORDER BY l.seq, l.op = 'N') AS rn
                         FROM ripcord_capture_log l WHERE {filter} AND l.table_name = {name}
                     ) WHERE rn = 1;",
                    name = literal(table)
                ))
                .map_err(map_error)?;
            let collected: i64 = self
                .conn
                .query_row(&format!("SELECT count(*) FROM {first}"), [], |r| r.get(0))
                .map_err(map_error)?;
            progress(&UndoProgress {
                table: table.clone(),
                step: "collected",
                rows: collected,
            });
            let conflicts: Vec<(String, String, String)> = {
                let mut stmt = self
                    .conn
                    .prepare(&format!(
                        "SELECT f.key, l2.batch, min(l2.at) FROM {first} f
                         JOIN ripcord_capture_log l2 ON l2.table_name = {name} AND l2.key = f.key AND l2.seq > f.seq
                         WHERE NOT ({later}) GROUP BY f.key ORDER BY f.key",
                        name = literal(table)
                    ))
                    .map_err(map_error)?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(map_error)?
                    .collect::<Result<_, _>>()
                    .map_err(map_error)?
            };
            for (key, batch, at) in &conflicts {
                outcome.conflicts.push(Conflict {
                    table: table.clone(),
                    key: key
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string(),
                    later_batch: batch.clone(),
                    at: crate::parse_sqlite_time(at)?,
                });
            }
            progress(&UndoProgress {
                table: table.clone(),
                step: "checked",
                rows: conflicts.len() as i64,
            });
            if mode == ConflictMode::Abort && !outcome.conflicts.is_empty() {
                continue;
            }
            let mut undo = TableUndo {
                table: table.clone(),
                deleted: 0,
                updated: 0,
                inserted: 0,
                skipped: 0,
            };
            if mode == ConflictMode::Skip {
                undo.skipped = self
                    .conn
                    .execute(
                        &format!(
                            "DELETE FROM {first} WHERE EXISTS (
                                 SELECT 1 FROM ripcord_capture_log l2
                                 WHERE l2.table_name = {name} AND l2.key = {first}.key AND l2.seq > {first}.seq AND NOT ({later}))",
                            name = literal(table)
                        ),
                        [],
                    )
                    .map_err(map_error)? as i64;
            }
            let (columns, key) = describe(self.conn, table)?;
            let t = ident(table);
            let row_key = key_expr(&t, &key);
            undo.deleted = self
                .conn
                .execute(
                    &format!("DELETE FROM {t} WHERE {row_key} IN (SELECT key FROM {first} WHERE op IN ('I', 'N'))"),
                    [],
                )
                .map_err(map_error)? as i64;
            progress(&UndoProgress {
                table: table.clone(),
                step: "deleted",
                rows: undo.deleted,
            });
            let assignments = columns
                .iter()
                .map(|c| {
                    format!(
                        "{col} = CASE WHEN json_type(f.old_row, {path}) IS NULL THEN {t}.{col} ELSE json_extract(f.old_row, {path}) END",
                        col = ident(c),
                        path = literal(&format!("$.\"{}\"", c.replace('"', "\\\""))),
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            undo.updated = self
                .conn
                .execute(
                    &format!(
                        "UPDATE {t} SET {assignments} FROM {first} f
                         WHERE f.op IN ('U', 'D') AND f.key = {row_key}"
                    ),
                    [],
                )
                .map_err(map_error)? as i64;
            // Re-insert with the columns the images hold, so that columns added since
            // capture get their defaults.
            let imaged: Vec<String> = {
                let mut stmt = self
                    .conn
                    .prepare(&format!(
                        "SELECT key FROM json_each((SELECT old_row FROM {first} WHERE op IN ('U', 'D') LIMIT 1))"
                    ))
                    .map_err(map_error)?;
                stmt.query_map([], |r| r.get(0))
                    .map_err(map_error)?
                    .collect::<Result<_, _>>()
                    .map_err(map_error)?
            };
            let present: Vec<&String> = columns.iter().filter(|c| imaged.contains(c)).collect();
            let values = present
                .iter()
                .map(|c| {
                    format!(
                        "json_extract(f.old_row, {})",
                        literal(&format!("$.\"{}\"", c.replace('"', "\\\"")))
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let cols = present
                .iter()
                .map(|c| ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            undo.inserted = self
                .conn
                .execute(
                    &format!(
                        "INSERT INTO {t} ({cols}) SELECT {values} FROM {first} f
                         WHERE f.op IN ('U', 'D') AND f.key NOT IN (SELECT {row_key} FROM {t})"
                    ),
                    [],
                )
                .map_err(map_error)? as i64;
            progress(&UndoProgress {
                table: table.clone(),
                step: "restored",
                rows: undo.updated + undo.inserted,
            });
            outcome.tables.push(undo);
        }
        self.conn
            .execute("DELETE FROM ripcord_capture_context WHERE id = 1", [])
            .map_err(map_error)?;
        Ok(outcome)
    }
}
