//! Row-change capture on PostgreSQL (DESIGN §5.5).
//!
//! Each captured table gets statement-level AFTER triggers with transition tables and
//! one log table of its own, `ripcord.capture_log_<oid>`: per statement one header row
//! in `ripcord.capture_statements` (transaction, time, batch tag, operation, the
//! table's columns at that moment) and per row only what an undo needs — the key for
//! inserts (as one row of arrays per statement in `ripcord.capture_keys_<oid>`), the
//! key and the old row for updates and deletes. The log mirrors the
//! table's columns with their own types (`a<attnum>_<type hash>`; a column added or
//! retyped later gets a new log column on first use), so old rows are copied datum by
//! datum, with no text conversion either way. A narrow row-level trigger fires only when
//! an UPDATE changes a key, and logs the new key. Measured choices are in
//! docs/benchmarks.md.
//!
//! An undo (batch revert or flashback) finds, per key, the first entry of the scope —
//! the state before it — and applies it set-wise: delete rows that did not exist,
//! restore old images of the rest, mapping columns through the lists recorded with each
//! statement, so capture keeps working after columns are added, dropped or retyped.

use postgres::{Client, GenericClient};
use ripcord_core::capture::{
    BatchSummary, Capture, CaptureMode, CapturedTable, Conflict, ConflictMode, SyncReport,
    TableUndo, UndoOutcome, UndoProgress, UndoScope,
};
use ripcord_core::{EngineError, SqlError};

use crate::sql::{invalid, literal, map_error, quote_ident as ident};

/// Step 2 of the ledger: capture bookkeeping.
pub const LEDGER_STEP: &str = r#"
CREATE TABLE ripcord.capture_tables (
    table_name   text PRIMARY KEY,
    relid        oid NOT NULL,
    key_columns  text[] NOT NULL,
    key_types    text[] NOT NULL,
    log_table    text NOT NULL,
    enabled      boolean NOT NULL,
    enabled_at   timestamptz NOT NULL,
    history_from timestamptz NOT NULL
);
CREATE TABLE ripcord.capture_statements (
    stmt_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid       xid8 NOT NULL,
    at         timestamptz NOT NULL,
    batch      text NOT NULL,
    table_name text NOT NULL,
    op         "char" NOT NULL,
    rows       bigint NOT NULL,
    columns    text[],
    log_columns text[]
);
CREATE INDEX capture_statements_batch ON ripcord.capture_statements (batch);
CREATE INDEX capture_statements_table_at ON ripcord.capture_statements (table_name, at);
"#;

pub(crate) struct TableInfo {
    pub(crate) name: String,
    pub(crate) relid: u32,
    pub(crate) quoted: String,
    pub(crate) key_columns: Vec<String>,
    pub(crate) key_types: Vec<String>,
    pub(crate) log_table: String,
}

impl TableInfo {
    fn keys(&self, alias: &str) -> String {
        self.key_columns
            .iter()
            .map(|k| format!("{alias}.{}", ident(k)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn log_keys(&self) -> String {
        (0..self.key_columns.len())
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `a.k0 = b.<key0> AND …` matching log key columns of `log` with table columns of `table`.
    fn key_join(&self, log: &str, table: &str) -> String {
        self.key_columns
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{table}.{} = {log}.k{i}", ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// One row per INSERT statement with one array per key column: writing a few
    /// large values costs far less than a row per inserted row.
    fn keys_table(&self) -> String {
        self.log_table.replacen("capture_log_", "capture_keys_", 1)
    }

    fn log_key_join(&self, a: &str, b: &str) -> String {
        (0..self.key_columns.len())
            .map(|i| format!("{a}.k{i} = {b}.k{i}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

/// The table `name` and the columns that identify its rows.
fn describe(client: &mut impl GenericClient, name: &str) -> Result<TableInfo, EngineError> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname || '.' || c.relname, format('%I.%I', n.nspname, c.relname), c.relkind::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid = to_regclass($1)",
            &[&name],
        )
        .map_err(map_error)?;
    let Some(row) = rows.first() else {
        return Err(invalid(
            format!("no table `{name}`"),
            "name an existing table, e.g. public.orders",
        ));
    };
    let (relid, qualified, quoted, kind): (u32, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if kind != "r" {
        return Err(invalid(
            format!("`{qualified}` is not a plain table"),
            "capture works on ordinary tables (not views, partitioned parents or foreign tables)",
        ));
    }
    // The primary key, else the narrowest unique index over NOT NULL columns only.
    let keys = client
        .query(
            "SELECT array_agg(a.attname::text ORDER BY k.ord), array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord)
             FROM (
                 SELECT i.indexrelid, i.indisprimary, i.indkey
                 FROM pg_index i
                 WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
                   AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) col
                                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = col
                                   WHERE NOT a.attnotnull)
                 ORDER BY i.indisprimary DESC, array_length(i.indkey, 1), i.indexrelid
                 LIMIT 1
             ) best
             CROSS JOIN LATERAL unnest(best.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = $1 AND a.attnum = k.attnum
             GROUP BY best.indexrelid",
            &[&relid],
        )
        .map_err(map_error)?;
    let Some(keys) = keys.first() else {
        return Err(invalid(
            format!(
                "`{qualified}` has no primary key or unique NOT NULL key, so captured rows could not be found again"
            ),
            "add a primary key (or a unique index over NOT NULL columns) before enabling capture",
        ));
    };
    Ok(TableInfo {
        name: qualified,
        relid,
        quoted,
        key_columns: keys.get(0),
        key_types: keys.get(1),
        log_table: format!("ripcord.capture_log_{relid}"),
    })
}

/// Above this many bytes of keys, an INSERT's keys are logged a row per key: arrays
/// are built in memory, and one value cannot exceed 1 GB. The setting
/// `ripcord.key_array_max_bytes` overrides it (0: always a row per key).
const MAX_KEY_ARRAY_BYTES: i64 = 256 * 1024 * 1024;

/// Log tables, functions and trigger-mode triggers of `t`.
fn install_sql(t: &TableInfo) -> String {
    let table = &t.quoted;
    let relid = t.relid;
    let changed = t
        .key_columns
        .iter()
        .map(|k| format!("OLD.{0} IS DISTINCT FROM NEW.{0}", ident(k)))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!(
        r#"{log}
{drop}
CREATE TRIGGER ripcord_capture_ins AFTER INSERT ON {table} REFERENCING NEW TABLE AS ripcord_new
    FOR EACH STATEMENT EXECUTE FUNCTION ripcord.capture_fn_{relid}();
CREATE TRIGGER ripcord_capture_upd AFTER UPDATE ON {table} REFERENCING OLD TABLE AS ripcord_old
    FOR EACH STATEMENT EXECUTE FUNCTION ripcord.capture_fn_{relid}();
CREATE TRIGGER ripcord_capture_del AFTER DELETE ON {table} REFERENCING OLD TABLE AS ripcord_old
    FOR EACH STATEMENT EXECUTE FUNCTION ripcord.capture_fn_{relid}();
CREATE TRIGGER ripcord_capture_key AFTER UPDATE ON {table} FOR EACH ROW WHEN ({changed})
    EXECUTE FUNCTION ripcord.capture_key_fn_{relid}();
CREATE TRIGGER ripcord_capture_trunc BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION ripcord.capture_fn_{relid}();
"#,
        log = log_sql(t),
        drop = drop_triggers_sql(table),
    )
}

/// Every capture trigger ripcord may have put on `quoted`, in either mode.
pub(crate) fn drop_triggers_sql(quoted: &str) -> String {
    format!(
        "DROP TRIGGER IF EXISTS ripcord_capture_ins ON {quoted};
DROP TRIGGER IF EXISTS ripcord_capture_upd ON {quoted};
DROP TRIGGER IF EXISTS ripcord_capture_del ON {quoted};
DROP TRIGGER IF EXISTS ripcord_capture_key ON {quoted};
DROP TRIGGER IF EXISTS ripcord_capture_trunc ON {quoted};
DROP TRIGGER IF EXISTS ripcord_capture_mark ON {quoted};"
    )
}

/// The log and keys tables of `t` and the functions that write them.
pub(crate) fn log_sql(t: &TableInfo) -> String {
    let key_defs: String = t
        .key_types
        .iter()
        .enumerate()
        .map(|(i, ty)| format!(", k{i} {ty}"))
        .collect();
    let log_keys = t.log_keys();
    let new_keys = t.keys("nw");
    let keys = t.keys_table();
    let array_defs: String = t
        .key_types
        .iter()
        .enumerate()
        .map(|(i, ty)| format!(", k{i} {ty}[]"))
        .collect();
    let array_storage: String = (0..t.key_columns.len())
        .map(|i| format!("ALTER TABLE {keys} ALTER COLUMN k{i} SET STORAGE EXTERNAL;\n"))
        .collect();
    let key_aggs = t
        .key_columns
        .iter()
        .map(|k| format!("array_agg(nw.{})", ident(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let key_size = t
        .key_columns
        .iter()
        .map(|k| format!("pg_column_size(nw.{})", ident(k)))
        .collect::<Vec<_>>()
        .join(" + ");
    let max_key_bytes = MAX_KEY_ARRAY_BYTES;
    let old_keys = t.keys("o");
    let new_row_keys = t.keys("NEW");
    let relid = t.relid;
    let log = &t.log_table;
    let name = literal(&t.name);
    // The quoted table name inside a string literal of the function body.
    let table_literal = t.quoted.replace('\'', "''");
    format!(
        r#"
CREATE TABLE IF NOT EXISTS {log} (stmt_id bigint, op "char" NOT NULL{key_defs});
CREATE INDEX IF NOT EXISTS capture_log_{relid}_stmt ON {log} USING brin (stmt_id);
-- A BRIN range is only skipped once summarized: autovacuum summarizes each range as it
-- fills, so that an undo reads the ranges of its statements, not the whole log.
ALTER INDEX ripcord.capture_log_{relid}_stmt SET (autosummarize = on);
CREATE INDEX IF NOT EXISTS capture_log_{relid}_newkeys ON {log} (stmt_id) WHERE op = 'N';
DROP INDEX IF EXISTS ripcord.capture_log_{relid}_unassigned;
-- Stored uncompressed: compressing the arrays costs more time than the space is worth.
CREATE TABLE IF NOT EXISTS {keys} (stmt_id bigint NOT NULL{array_defs});
{array_storage}
CREATE INDEX IF NOT EXISTS capture_keys_{relid}_stmt ON {keys} (stmt_id);
CREATE OR REPLACE FUNCTION ripcord.capture_fn_{relid}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    sid     bigint;
    n       bigint;
    cols    text[];
    logcols text[];
    missing record;
    key_bytes bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*), coalesce(sum({key_size}), 0) INTO n, key_bytes FROM ripcord_new nw;
        IF n = 0 THEN RETURN NULL; END IF;
    ELSE
        IF TG_OP <> 'TRUNCATE' AND NOT EXISTS (SELECT 1 FROM ripcord_old) THEN RETURN NULL; END IF;
        -- Mirror columns added or retyped since the last statement.
        FOR missing IN
            SELECT 'a' || a.attnum || '_' || left(md5(format_type(a.atttypid, a.atttypmod)), 8) AS name,
                   format_type(a.atttypid, a.atttypmod) AS type
            FROM pg_attribute a
            WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
              AND NOT EXISTS (SELECT 1 FROM pg_attribute l
                              WHERE l.attrelid = '{log}'::regclass AND NOT l.attisdropped
                                AND l.attname = 'a' || a.attnum || '_' || left(md5(format_type(a.atttypid, a.atttypmod)), 8))
        LOOP
            EXECUTE format('ALTER TABLE {log} ADD COLUMN %I %s', missing.name, missing.type);
        END LOOP;
        SELECT array_agg(a.attname::text ORDER BY a.attnum),
               array_agg('a' || a.attnum || '_' || left(md5(format_type(a.atttypid, a.atttypmod)), 8) ORDER BY a.attnum)
          INTO cols, logcols
        FROM pg_attribute a WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped;
    END IF;
    INSERT INTO ripcord.capture_statements (txid, at, batch, table_name, op, rows, columns, log_columns)
    VALUES (pg_current_xact_id(), statement_timestamp(),
            coalesce(nullif(current_setting('ripcord.batch', true), ''), 'tx-' || pg_current_xact_id()::text),
            {name}, CASE TG_OP WHEN 'TRUNCATE' THEN 'D' ELSE left(TG_OP, 1) END::"char", 0, cols, logcols)
    RETURNING stmt_id INTO sid;
    IF TG_OP = 'INSERT' THEN
        -- Keys as arrays, unless they would make a value too large to build in memory.
        IF key_bytes <= coalesce(nullif(current_setting('ripcord.key_array_max_bytes', true), '')::bigint, {max_key_bytes}) THEN
            INSERT INTO {keys} (stmt_id, {log_keys}) SELECT sid, {key_aggs} FROM ripcord_new nw;
        ELSE
            INSERT INTO {log} (stmt_id, op, {log_keys}) SELECT sid, 'I', {new_keys} FROM ripcord_new nw;
        END IF;
        UPDATE ripcord.capture_statements SET rows = n WHERE stmt_id = sid;
        RETURN NULL;
    END IF;
    EXECUTE format('INSERT INTO {log} (stmt_id, op, {log_keys}, %s) SELECT $1, $2, {old_keys}, %s FROM %s o',
                   (SELECT string_agg(quote_ident(c), ', ') FROM unnest(logcols) c),
                   (SELECT string_agg('o.' || quote_ident(c), ', ') FROM unnest(cols) c),
                   CASE TG_OP WHEN 'TRUNCATE' THEN 'ONLY {table_literal}' ELSE 'ripcord_old' END)
    USING sid, CASE TG_OP WHEN 'TRUNCATE' THEN 'D' ELSE left(TG_OP, 1) END::"char";
    GET DIAGNOSTICS n = ROW_COUNT;
    IF TG_OP = 'UPDATE' THEN
        UPDATE {log} SET stmt_id = sid WHERE op = 'N' AND stmt_id IS NULL;
    END IF;
    UPDATE ripcord.capture_statements SET rows = n WHERE stmt_id = sid;
    RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION ripcord.capture_key_fn_{relid}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    INSERT INTO {log} (stmt_id, op, {log_keys}) VALUES (NULL, 'N', {new_row_keys});
    RETURN NULL;
END
$fn$;
"#
    )
}

fn captured(client: &mut Client, name: &str) -> Result<TableInfo, EngineError> {
    let info = describe(client, name)?;
    let rows = client
        .query(
            "SELECT key_columns, key_types, log_table FROM ripcord.capture_tables WHERE table_name = $1",
            &[&info.name],
        )
        .map_err(map_error)?;
    let row = rows.first().ok_or_else(|| {
        invalid(
            format!("`{}` is not captured", info.name),
            "start with `ripcord capture enable <table>`; only changes made after that can be undone",
        )
    })?;
    Ok(TableInfo {
        key_columns: row.get(0),
        key_types: row.get(1),
        log_table: row.get(2),
        ..info
    })
}

/// Put capture back on the table now named `name` when capture was enabled for that
/// name: a restore swapped in a new table (a new oid, without ripcord's triggers). The
/// triggers call the functions of the original table (named by the relid recorded at
/// `capture enable`) and write into its log, so the history continues. Run inside the
/// swap's transaction; `Ok(false)` when the table is not captured.
pub(crate) fn reattach(tx: &mut impl GenericClient, name: &str) -> Result<bool, EngineError> {
    let has_capture: bool = tx
        .query_one(
            "SELECT to_regclass('ripcord.capture_tables') IS NOT NULL",
            &[],
        )
        .map_err(map_error)?
        .get(0);
    if !has_capture {
        return Ok(false);
    }
    let info = describe(tx, name)?;
    let rows = tx
        .query(
            "SELECT relid, key_columns, key_types, log_table FROM ripcord.capture_tables \
             WHERE table_name = $1 AND enabled",
            &[&info.name],
        )
        .map_err(map_error)?;
    let Some(row) = rows.first() else {
        return Ok(false);
    };
    let info = TableInfo {
        relid: row.get(0),
        key_columns: row.get(1),
        key_types: row.get(2),
        log_table: row.get(3),
        ..info
    };
    if crate::capture_logical::is_logical(tx, &info.name)? {
        // The functions keep the original relid's names; the new table gets the
        // marker, FULL identity and a place in the publication.
        crate::capture_logical::reattach(tx, &info)?;
    } else {
        tx.batch_execute(&install_sql(&info)).map_err(map_error)?;
    }
    Ok(true)
}

/// Drop ripcord's capture triggers from `quoted` (a table leaving for a restore's vault,
/// whose writes are no longer the captured table's).
pub(crate) fn detach_triggers(
    tx: &mut impl GenericClient,
    quoted: &str,
) -> Result<(), EngineError> {
    tx.batch_execute(&drop_triggers_sql(quoted))
        .map_err(map_error)?;
    crate::capture_logical::leave_publication(tx, quoted)
}

/// Whether the relation `name` exists (log tables of older versions lack some).
fn exists(client: &mut Client, name: &str) -> Result<bool, EngineError> {
    Ok(client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .map_err(map_error)?
        .get(0))
}

fn scope_filter(scope: &UndoScope, alias: &str) -> String {
    match scope {
        UndoScope::Batch(batch) => format!("{alias}.batch = {}", literal(batch)),
        UndoScope::After { table, after } => format!(
            "{alias}.table_name = {} AND {alias}.at > {}::timestamptz",
            literal(table),
            literal(after)
        ),
    }
}

/// Capture through an open PostgreSQL client.
pub struct PgCapture<'a> {
    pub(crate) client: &'a mut Client,
}

impl Capture for PgCapture<'_> {
    fn enable(&mut self, table: &str, mode: CaptureMode) -> Result<CapturedTable, EngineError> {
        let info = describe(self.client, table)?;
        let existing = self
            .client
            .query(
                "SELECT enabled FROM ripcord.capture_tables WHERE table_name = $1",
                &[&info.name],
            )
            .map_err(map_error)?;
        let enabled = existing.first().is_some_and(|r| r.get::<_, bool>(0));
        let logical = crate::capture_logical::is_logical(self.client, &info.name)?;
        if enabled && (mode == CaptureMode::Logical) != logical {
            let current = if logical { "logical" } else { "trigger" };
            return Err(invalid(
                format!("{} is already captured in {current} mode", info.name),
                &format!(
                    "`ripcord capture disable {}` first, then enable it with `--mode {}` (its history is kept)",
                    info.name,
                    mode.as_str()
                ),
            ));
        }
        if mode == CaptureMode::Logical {
            let info = match self.client.query(
                "SELECT key_columns, key_types, log_table FROM ripcord.capture_tables WHERE table_name = $1",
                &[&info.name],
            ) {
                // A table captured before keeps its log (and the relid its names carry).
                Ok(rows) if !rows.is_empty() => TableInfo {
                    key_columns: rows[0].get(0),
                    key_types: rows[0].get(1),
                    log_table: rows[0].get(2),
                    ..info
                },
                Ok(_) => info,
                Err(e) => return Err(map_error(e)),
            };
            crate::capture_logical::enable(self.client, &info)?;
            return self.status_of(&info.name);
        }
        if enabled {
            // Captured by an older ripcord (no key arrays yet): bring its triggers up to
            // date, keeping its history.
            if !exists(self.client, &info.keys_table())? {
                let sql = format!("BEGIN;{}COMMIT;", install_sql(&info));
                if let Err(e) = self.client.batch_execute(&sql) {
                    let _ = self.client.batch_execute("ROLLBACK");
                    return Err(map_error(e));
                }
            }
            return self.status_of(&info.name);
        }
        let mut sql = String::from("BEGIN;");
        sql.push_str(&install_sql(&info));
        sql.push_str(&format!(
            "INSERT INTO ripcord.capture_tables (table_name, relid, key_columns, key_types, log_table, enabled, enabled_at, history_from)
             VALUES ({name}, {relid}, ARRAY[{keys}]::text[], ARRAY[{types}]::text[], {log}, true, now(), now())
             ON CONFLICT (table_name) DO UPDATE SET enabled = true, enabled_at = now(), history_from = now(),
                 relid = excluded.relid, key_columns = excluded.key_columns, key_types = excluded.key_types;
             COMMIT;",
            name = literal(&info.name),
            relid = info.relid,
            keys = info.key_columns.iter().map(|k| literal(k)).collect::<Vec<_>>().join(", "),
            types = info.key_types.iter().map(|k| literal(k)).collect::<Vec<_>>().join(", "),
            log = literal(&info.log_table),
        ));
        if let Err(e) = self.client.batch_execute(&sql) {
            let _ = self.client.batch_execute("ROLLBACK");
            return Err(map_error(e));
        }
        self.status_of(&info.name)
    }

    fn disable(&mut self, table: &str) -> Result<(), EngineError> {
        let info = captured(self.client, table)?;
        if crate::capture_logical::is_logical(self.client, &info.name)? {
            self.client.batch_execute("BEGIN").map_err(map_error)?;
            let result = crate::capture_logical::disable(self.client, &info).and_then(|()| {
                self.client
                    .execute(
                        "UPDATE ripcord.capture_tables SET enabled = false WHERE table_name = $1",
                        &[&info.name],
                    )
                    .map_err(map_error)
            });
            match result {
                Ok(_) => self.client.batch_execute("COMMIT").map_err(map_error)?,
                Err(e) => {
                    let _ = self.client.batch_execute("ROLLBACK");
                    return Err(e);
                }
            }
            return crate::capture_logical::drop_slot_if_unused(self.client);
        }
        let sql = format!(
            "BEGIN;
             {drop}
             UPDATE ripcord.capture_tables SET enabled = false WHERE table_name = {name};
             COMMIT;",
            drop = drop_triggers_sql(&info.quoted),
            name = literal(&info.name)
        );
        self.client.batch_execute(&sql).map_err(|e| {
            let _ = self.client.batch_execute("ROLLBACK");
            map_error(e)
        })?;
        // A slot left by an earlier disable that stopped halfway.
        crate::capture_logical::drop_slot_if_unused(self.client)
    }

    fn sync(&mut self) -> Result<SyncReport, EngineError> {
        crate::capture_logical::sync(self.client)
    }

    fn tables(&mut self) -> Result<Vec<CapturedTable>, EngineError> {
        let names: Vec<String> = self
            .client
            .query(
                "SELECT table_name FROM ripcord.capture_tables ORDER BY 1",
                &[],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        names.iter().map(|n| self.status_of(n)).collect()
    }

    fn prune(&mut self, before: &str) -> Result<i64, EngineError> {
        let logs: Vec<(String, String)> = self
            .client
            .query(
                "SELECT table_name, log_table FROM ripcord.capture_tables",
                &[],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut removed = 0;
        self.client.batch_execute("BEGIN").map_err(map_error)?;
        let result = (|| {
            for (table, log) in &logs {
                removed += self
                    .client
                    .execute(
                        &format!(
                            "DELETE FROM {log} l USING ripcord.capture_statements s
                             WHERE s.stmt_id = l.stmt_id AND s.table_name = $1 AND s.at < $2::text::timestamptz"
                        ),
                        &[table, &before],
                    )
                    .map_err(map_error)? as i64;
                let keys = log.replacen("capture_log_", "capture_keys_", 1);
                if exists(self.client, &keys)? {
                    let pruned: i64 = self
                        .client
                        .query_one(
                            &format!(
                                "WITH gone AS (DELETE FROM {keys} l USING ripcord.capture_statements s
                                     WHERE s.stmt_id = l.stmt_id AND s.table_name = $1 AND s.at < $2::text::timestamptz
                                     RETURNING cardinality(l.k0) AS n)
                                 SELECT coalesce(sum(n), 0)::int8 FROM gone"
                            ),
                            &[table, &before],
                        )
                        .map_err(map_error)?
                        .get(0);
                    removed += pruned;
                }
            }
            self.client
                .execute(
                    "DELETE FROM ripcord.capture_statements WHERE at < $1::text::timestamptz",
                    &[&before],
                )
                .map_err(map_error)?;
            self.client
                .execute(
                    "UPDATE ripcord.capture_tables SET history_from = greatest(history_from, $1::text::timestamptz)",
                    &[&before],
                )
                .map_err(map_error)?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.client.batch_execute("COMMIT").map_err(map_error)?;
                Ok(removed)
            }
            Err(e) => {
                let _ = self.client.batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }

    fn batches(&mut self) -> Result<Vec<BatchSummary>, EngineError> {
        let rows = self
            .client
            .query(
                "SELECT batch, array_agg(DISTINCT table_name),
                        coalesce(sum(rows) FILTER (WHERE op = 'I'), 0)::int8,
                        coalesce(sum(rows) FILTER (WHERE op = 'U'), 0)::int8,
                        coalesce(sum(rows) FILTER (WHERE op = 'D'), 0)::int8,
                        min(at), max(at)
                 FROM ripcord.capture_statements GROUP BY batch ORDER BY max(stmt_id) DESC",
                &[],
            )
            .map_err(map_error)?;
        Ok(rows
            .iter()
            .map(|r| BatchSummary {
                batch: r.get(0),
                tables: r.get(1),
                inserted: r.get(2),
                updated: r.get(3),
                deleted: r.get(4),
                first_at: r.get(5),
                last_at: r.get(6),
            })
            .collect())
    }

    fn undo(
        &mut self,
        scope: &UndoScope,
        mode: ConflictMode,
        tag: &str,
        progress: &mut dyn FnMut(&UndoProgress),
    ) -> Result<UndoOutcome, EngineError> {
        self.client
            .execute("SELECT set_config('ripcord.batch', $1, true)", &[&tag])
            .map_err(map_error)?;
        // The joins below hash a whole batch: with a small work_mem they spill to disk.
        // Disabling nested loops for bulk scopes (see `choose_joins`) inflates plan costs
        // past the JIT thresholds: compiling and inlining then costs more than it saves.
        self.client
            .batch_execute(&format!(
                "SELECT set_config('work_mem', '{UNDO_WORK_MEM}', true)
                 WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes('{UNDO_WORK_MEM}');
                 SELECT set_config('jit', 'off', true);"
            ))
            .map_err(map_error)?;
        // Logical mode: the caller synced just before this transaction (in committed,
        // memory-bounded rounds); what committed since is decoded once the scope's
        // tables are locked, below. A sync here as well decoded the slot's whole
        // retained WAL once more for a window of milliseconds.
        let normalized;
        let scope = if let UndoScope::After { table, after } = scope {
            let info = captured(self.client, table)?;
            let row = self
                .client
                .query_one(
                    "SELECT $2::text::timestamptz >= history_from, history_from::text FROM ripcord.capture_tables WHERE table_name = $1",
                    &[&info.name, after],
                )
                .map_err(map_error)?;
            if !row.get::<_, bool>(0) {
                return Err(invalid(
                    format!(
                        "{} cannot be flashed back to {after}: its captured history starts at {}",
                        info.name,
                        row.get::<_, String>(1)
                    ),
                    "pick a time at or after the earliest reachable time",
                ));
            }
            normalized = UndoScope::After {
                table: info.name,
                after: after.clone(),
            };
            &normalized
        } else {
            scope
        };
        let filter = scope_filter(scope, "s");
        let tables: Vec<String> = self
            .client
            .query(
                &format!(
                    "SELECT s.table_name FROM ripcord.capture_statements s WHERE {filter}
                     GROUP BY s.table_name ORDER BY max(s.stmt_id) DESC"
                ),
                &[],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if tables.is_empty()
            && let UndoScope::Batch(batch) = scope
        {
            return Err(invalid(
                format!("no captured changes are tagged `{batch}`"),
                "`ripcord batch list` shows the batches in the capture log",
            ));
        }
        // Writers wait while the undo runs. Without this a loader's UPDATE still in
        // flight when the conflicts are read is not yet in the log, and the undo's own
        // UPDATE, waiting on that row, overwrites it once the loader commits: a lost
        // update no conflict reports. EXCLUSIVE waits for writes in flight (their log
        // rows commit with them) and lets readers through.
        let infos = tables
            .iter()
            .map(|name| captured(self.client, name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut quoted: Vec<&str> = infos.iter().map(|i| i.quoted.as_str()).collect();
        quoted.sort();
        // A flashback to a moment after which nothing changed has no table to lock.
        if !quoted.is_empty() {
            self.client
                .batch_execute(&format!(
                    "LOCK TABLE {} IN EXCLUSIVE MODE",
                    quoted.join(", ")
                ))
                .map_err(map_error)?;
            // Writes that finished while the lock was awaited, decoded now that none
            // can follow until the undo commits.
            crate::capture_logical::sync_in_transaction(self.client)?;
        }
        let mut outcome = UndoOutcome::default();
        let mut prepared = Vec::new();
        for (index, info) in infos.into_iter().enumerate() {
            let plan = self.plan_table(&info, &filter, index)?;
            progress(&UndoProgress {
                table: info.name.clone(),
                step: "collected",
                rows: plan.scope.rows,
            });
            self.choose_joins(&info, &plan)?;
            let conflicts = self.conflicts(&info, &plan)?;
            progress(&UndoProgress {
                table: info.name.clone(),
                step: "checked",
                rows: conflicts.len() as i64,
            });
            let count = conflicts.len();
            outcome.conflicts.extend(conflicts);
            prepared.push((info, plan, count));
        }
        if mode == ConflictMode::Abort && !outcome.conflicts.is_empty() {
            return Ok(outcome);
        }
        for (info, mut plan, conflict_count) in prepared {
            let mut undo = TableUndo {
                table: info.name.clone(),
                deleted: 0,
                updated: 0,
                inserted: 0,
                skipped: 0,
            };
            self.choose_joins(&info, &plan)?;
            if mode == ConflictMode::Skip && conflict_count > 0 {
                undo.skipped = self.drop_conflicting(&info, &mut plan)?;
            }
            // Only inserts and key changes leave rows that did not exist before.
            if plan.scope.inserts || plan.changed_keys {
                undo.deleted = self
                    .client
                    .execute(
                        &format!(
                            "DELETE FROM {table} t USING {first} f WHERE f.op IN ('I', 'N') AND {join}",
                            table = info.quoted,
                            first = plan.first,
                            join = info.key_join("f", "t"),
                        ),
                        &[],
                    )
                    .map_err(map_error)? as i64;
            }
            progress(&UndoProgress {
                table: info.name.clone(),
                step: "deleted",
                rows: undo.deleted,
            });
            let (updated, inserted) = self.restore_images(&info, &plan)?;
            undo.updated = updated;
            undo.inserted = inserted;
            progress(&UndoProgress {
                table: info.name.clone(),
                step: "restored",
                rows: updated + inserted,
            });
            outcome.tables.push(undo);
        }
        Ok(outcome)
    }
}

/// work_mem for the undo transaction (raised to this, never lowered).
const UNDO_WORK_MEM: &str = "256MB";

/// A set of logged statements of one table, read as a condition on a `stmt_id` column.
struct StatementSet {
    /// Condition over `s` (a `ripcord.capture_statements` row) selecting the set.
    filter: String,
    table: String,
    lo: i64,
    hi: i64,
    count: i64,
    /// Rows the statements logged.
    rows: i64,
    inserts: bool,
    updates: bool,
    /// Every statement of the set is an INSERT.
    only_inserts: bool,
    /// The log table may hold rows of the set: false only when every statement is an
    /// INSERT whose keys all went into the key arrays (an undo of a load then need not
    /// read the log at all).
    in_log: bool,
    /// No statement of the table between `lo` and `hi` is outside the set.
    contiguous: bool,
}

impl StatementSet {
    fn condition(&self, column: &str) -> String {
        let range = format!("{column} BETWEEN {} AND {}", self.lo, self.hi);
        if self.contiguous {
            range
        } else {
            format!(
                "{range} AND {column} IN (SELECT s.stmt_id FROM ripcord.capture_statements s
                 WHERE s.table_name = {} AND s.stmt_id BETWEEN {} AND {} AND {})",
                literal(&self.table),
                self.lo,
                self.hi,
                self.filter
            )
        }
    }
}

/// What an undo reads for one table.
struct TablePlan {
    scope: StatementSet,
    later: Option<StatementSet>,
    /// Per key, the scope's first entry with its statement's column lists: a temporary
    /// table, or a subquery when the scope is one statement that logged each key once.
    first: String,
    first_is_table: bool,
    /// Some UPDATE of the scope changed a key (its new keys are logged as `N`).
    changed_keys: bool,
    temp_name: String,
    /// The log's old-row columns.
    image_columns: Vec<String>,
    keys_table: bool,
}

impl PgCapture<'_> {
    /// The statements of `table` matching `filter` (over `s`), or None.
    fn statement_set(
        &mut self,
        table: &str,
        filter: String,
    ) -> Result<Option<StatementSet>, EngineError> {
        let row = self
            .client
            .query_one(
                &format!(
                    "SELECT min(s.stmt_id), max(s.stmt_id), count(*), coalesce(sum(s.rows), 0)::int8,
                            coalesce(bool_or(s.op = 'I'), false), coalesce(bool_or(s.op = 'U'), false),
                            coalesce(bool_and(s.op = 'I'), false)
                     FROM ripcord.capture_statements s WHERE s.table_name = $1 AND {filter}"
                ),
                &[&table],
            )
            .map_err(map_error)?;
        let (Some(lo), Some(hi)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
        else {
            return Ok(None);
        };
        let count: i64 = row.get(2);
        let in_range: i64 = self
            .client
            .query_one(
                "SELECT count(*) FROM ripcord.capture_statements WHERE table_name = $1 AND stmt_id BETWEEN $2 AND $3",
                &[&table, &lo, &hi],
            )
            .map_err(map_error)?
            .get(0);
        Ok(Some(StatementSet {
            filter,
            table: table.to_string(),
            lo,
            hi,
            count,
            rows: row.get(3),
            inserts: row.get(4),
            updates: row.get(5),
            only_inserts: row.get(6),
            in_log: true,
            contiguous: in_range == count,
        }))
    }

    /// The log entries of `set` as one subquery with columns stmt_id, op, k0… and, with
    /// `images`, the old-row columns: log rows and the unnested key arrays of inserts.
    fn entries(
        &self,
        info: &TableInfo,
        plan_images: &[String],
        keys_table: bool,
        set: &StatementSet,
        images: bool,
    ) -> String {
        let keys = info.log_keys();
        let image_list = if images {
            plan_images
                .iter()
                .map(|c| format!(", l.{}", ident(c)))
                .collect::<String>()
        } else {
            String::new()
        };
        let l_keys = (0..info.key_columns.len())
            .map(|i| format!("l.k{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let from_arrays = set.inserts && keys_table;
        // The log part stays (it gives the image columns their types) but is planned
        // away by a constant false condition when the arrays hold the whole set.
        let log_cond = if set.in_log {
            set.condition("l.stmt_id")
        } else {
            "false".to_string()
        };
        let mut parts = vec![format!(
            "SELECT l.stmt_id, l.op, {l_keys}{image_list} FROM {log} l WHERE {log_cond}",
            log = info.log_table,
        )];
        if from_arrays {
            let nulls = if images {
                ", NULL".repeat(plan_images.len())
            } else {
                String::new()
            };
            let arrays = (0..info.key_columns.len())
                .map(|i| format!("c.k{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            parts.push(format!(
                "SELECT c.stmt_id, 'I'::\"char\", u.* {nulls} FROM {chunks} c
                  CROSS JOIN LATERAL unnest({arrays}) AS u({keys}) WHERE {cond}",
                chunks = info.keys_table(),
                cond = set.condition("c.stmt_id")
            ));
        }
        format!("({})", parts.join(" UNION ALL "))
    }

    /// Whether the log table can hold entries of `set`: not when every statement is an
    /// INSERT whose keys all went into the key arrays.
    fn find_in_log(&mut self, info: &TableInfo, set: &mut StatementSet) -> Result<(), EngineError> {
        if !set.only_inserts {
            return Ok(());
        }
        let in_arrays: i64 = self
            .client
            .query_one(
                &format!(
                    "SELECT coalesce(sum(cardinality(c.k0)), 0)::int8 FROM {keys} c WHERE {cond}",
                    keys = info.keys_table(),
                    cond = set.condition("c.stmt_id")
                ),
                &[],
            )
            .map_err(map_error)?
            .get(0);
        set.in_log = in_arrays != set.rows;
        Ok(())
    }

    fn plan_table(
        &mut self,
        info: &TableInfo,
        filter: &str,
        index: usize,
    ) -> Result<TablePlan, EngineError> {
        // The undo's own statements are captured while they read the log: the trigger
        // must find every column it mirrors already there (it cannot ALTER a table that
        // the running statement reads).
        let missing: Vec<(String, String)> = self
            .client
            .query(
                "SELECT 'a' || a.attnum || '_' || left(md5(format_type(a.atttypid, a.atttypmod)), 8),
                        format_type(a.atttypid, a.atttypmod)
                 FROM pg_attribute a
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                   AND NOT EXISTS (SELECT 1 FROM pg_attribute l
                                   WHERE l.attrelid = $2::text::regclass AND NOT l.attisdropped
                                     AND l.attname = 'a' || a.attnum || '_' || left(md5(format_type(a.atttypid, a.atttypmod)), 8))",
                &[&info.relid, &info.log_table],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (column, ty) in &missing {
            self.client
                .batch_execute(&format!(
                    "ALTER TABLE {} ADD COLUMN {} {ty}",
                    info.log_table,
                    ident(column)
                ))
                .map_err(map_error)?;
        }
        let Some(mut scope) = self.statement_set(&info.name, filter.to_string())? else {
            return Err(invalid(
                format!("nothing of `{}` is in the scope", info.name),
                "this is a bug in ripcord: please report it",
            ));
        };
        let mut later = self.statement_set(
            &info.name,
            format!("s.stmt_id > {} AND NOT ({filter})", scope.lo),
        )?;
        let image_columns: Vec<String> = self
            .client
            .query(
                "SELECT attname::text FROM pg_attribute
                 WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped AND attname ~ '^a[0-9]+_'
                 ORDER BY attnum",
                &[&info.log_table],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let keys_table = exists(self.client, &info.keys_table())?;
        if keys_table {
            self.find_in_log(info, &mut scope)?;
            if let Some(later) = later.as_mut() {
                self.find_in_log(info, later)?;
            }
        }
        // A log whose statistics are missing or stale hides its size from the planner.
        let stale: bool = self
            .client
            .query_one(
                "SELECT coalesce(s.n_mod_since_analyze > greatest(1000, c.reltuples * 0.1) OR c.reltuples < 0, true)
                 FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
                 WHERE c.oid = $1::text::regclass",
                &[&info.log_table],
            )
            .map_err(map_error)?
            .get(0);
        if stale {
            self.client
                .batch_execute(&format!("ANALYZE {}", info.log_table))
                .map_err(map_error)?;
        }
        // One statement logs each key once, unless it changed keys (then a key can
        // appear as an old key and as another row's new key).
        let changed_keys = scope.updates
            && self
                .client
                .query_one(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM {log} WHERE op = 'N' AND stmt_id BETWEEN {lo} AND {hi})",
                        log = info.log_table,
                        lo = scope.lo,
                        hi = scope.hi
                    ),
                    &[],
                )
                .map_err(map_error)?
                .get::<_, bool>(0);
        let entries = self.entries(info, &image_columns, keys_table, &scope, true);
        let temp_name = format!("pg_temp.rc_first_{index}");
        self.client
            .batch_execute(&format!("DROP TABLE IF EXISTS {temp_name}"))
            .map_err(map_error)?;
        let (first, first_is_table) = if scope.count == 1 && !changed_keys {
            (
                format!(
                    "(SELECT e.*, s.columns, s.log_columns FROM {entries} e
                      CROSS JOIN (SELECT columns, log_columns FROM ripcord.capture_statements WHERE stmt_id = {lo}) s)",
                    lo = scope.lo
                ),
                false,
            )
        } else {
            let e_keys = (0..info.key_columns.len())
                .map(|i| format!("e.k{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            self.client
                .batch_execute(&format!(
                    "CREATE TEMP TABLE {temp_name} ON COMMIT DROP AS
                     SELECT DISTINCT ON ({e_keys}) e.*, s.columns, s.log_columns
                     FROM {entries} e JOIN ripcord.capture_statements s ON s.stmt_id = e.stmt_id
                     ORDER BY {e_keys}, e.stmt_id, (e.op = 'N');
                     ANALYZE {temp_name};"
                ))
                .map_err(map_error)?;
            (temp_name.clone(), true)
        };
        Ok(TablePlan {
            scope,
            later,
            first,
            first_is_table,
            changed_keys,
            temp_name,
            image_columns,
            keys_table,
        })
    }

    /// Tell the planner how large the scope is. It cannot know how many keys the arrays
    /// hold, and a log that was never analyzed looks empty: either way it picks a
    /// nested loop of index lookups, which for a bulk batch is many times slower than
    /// one hash join. Small scopes of large tables keep the index lookups.
    fn choose_joins(&mut self, info: &TableInfo, plan: &TablePlan) -> Result<(), EngineError> {
        self.client
            .query(
                "SELECT set_config('enable_nestloop',
                     CASE WHEN $2::int8 * 20 > greatest(c.reltuples::int8, pg_relation_size(c.oid) / 8192 * 50)
                          THEN 'off' ELSE 'on' END, true)
                 FROM pg_class c WHERE c.oid = $1",
                &[&info.relid, &plan.scope.rows],
            )
            .map_err(map_error)?;
        Ok(())
    }

    /// Keys of the scope that a statement outside it changed later, with who and when.
    fn conflicts(
        &mut self,
        info: &TableInfo,
        plan: &TablePlan,
    ) -> Result<Vec<Conflict>, EngineError> {
        let Some(later) = &plan.later else {
            return Ok(Vec::new());
        };
        let later_entries = self.entries(info, &plan.image_columns, plan.keys_table, later, false);
        let key_text = (0..info.key_columns.len())
            .map(|i| format!("f.k{i}::text"))
            .collect::<Vec<_>>()
            .join(", ");
        let f_keys = (0..info.key_columns.len())
            .map(|i| format!("f.k{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT DISTINCT ON ({f_keys}) concat_ws(', ', {key_text}), s2.batch, s2.at
                     FROM {first} f
                     JOIN {later_entries} l2 ON {join}
                     JOIN ripcord.capture_statements s2 ON s2.stmt_id = l2.stmt_id
                     WHERE l2.stmt_id > f.stmt_id
                     ORDER BY {f_keys}, l2.stmt_id",
                    first = plan.first,
                    join = info.log_key_join("l2", "f"),
                ),
                &[],
            )
            .map_err(map_error)?;
        Ok(rows
            .iter()
            .map(|row| Conflict {
                table: info.name.clone(),
                key: row.get(0),
                later_batch: row.get(1),
                at: row.get(2),
            })
            .collect())
    }

    /// Leave out the keys that changed later (`--on-conflict skip`); returns how many.
    fn drop_conflicting(
        &mut self,
        info: &TableInfo,
        plan: &mut TablePlan,
    ) -> Result<i64, EngineError> {
        let Some(later) = &plan.later else {
            return Ok(0);
        };
        if !plan.first_is_table {
            self.client
                .batch_execute(&format!(
                    "CREATE TEMP TABLE {temp} ON COMMIT DROP AS SELECT * FROM {first} f",
                    temp = plan.temp_name,
                    first = plan.first
                ))
                .map_err(map_error)?;
            plan.first = plan.temp_name.clone();
            plan.first_is_table = true;
        }
        let later_entries = self.entries(info, &plan.image_columns, plan.keys_table, later, false);
        Ok(self
            .client
            .execute(
                &format!(
                    "DELETE FROM {first} f WHERE EXISTS (
                         SELECT 1 FROM {later_entries} l2 WHERE {join} AND l2.stmt_id > f.stmt_id)",
                    first = plan.first,
                    join = info.log_key_join("l2", "f"),
                ),
                &[],
            )
            .map_err(map_error)? as i64)
    }

    fn status_of(&mut self, name: &str) -> Result<CapturedTable, EngineError> {
        let row = self
            .client
            .query_one(
                "SELECT key_columns, enabled, history_from, log_table FROM ripcord.capture_tables WHERE table_name = $1",
                &[&name],
            )
            .map_err(map_error)?;
        let log: String = row.get(3);
        let (mode, retained_wal_bytes) = if crate::capture_logical::is_logical(self.client, name)? {
            (
                CaptureMode::Logical,
                crate::capture_logical::retained_wal(self.client)?,
            )
        } else {
            (CaptureMode::Trigger, None)
        };
        let keys = log.replacen("capture_log_", "capture_keys_", 1);
        let inserted_keys = if exists(self.client, &keys)? {
            format!("(SELECT coalesce(sum(cardinality(k0)), 0)::int8 FROM {keys})")
        } else {
            "0".to_string()
        };
        let stats = self
            .client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {log}) + {inserted_keys}, (SELECT min(at) FROM ripcord.capture_statements WHERE table_name = $1)"
                ),
                &[&name],
            )
            .map_err(map_error)?;
        Ok(CapturedTable {
            table: name.to_string(),
            key_columns: row.get(0),
            enabled: row.get(1),
            history_from: row.get(2),
            log_rows: stats.get(0),
            oldest: stats.get(1),
            mode,
            retained_wal_bytes,
        })
    }

    /// Put back the old images of `first` (rows that existed before the scope): update
    /// the rows that exist, insert the ones that do not. One pass per column layout.
    fn restore_images(
        &mut self,
        info: &TableInfo,
        plan: &TablePlan,
    ) -> Result<(i64, i64), EngineError> {
        let first = &plan.first;
        // The layouts of the scope's statements: a superset of those left in `first`.
        let layouts: Vec<(Vec<String>, Vec<String>)> = self
            .client
            .query(
                &format!(
                    "SELECT DISTINCT columns, log_columns FROM ripcord.capture_statements s
                     WHERE s.table_name = $1 AND {} AND columns IS NOT NULL AND op IN ('U', 'D')
                     ORDER BY columns, log_columns",
                    plan.scope.condition("s.stmt_id")
                ),
                &[&info.name],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let current: Vec<String> = self
            .client
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
                 ORDER BY attnum",
                &[&info.relid],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let (mut updated, mut inserted) = (0, 0);
        for (names, log_columns) in &layouts {
            // Columns that still exist, with where their old values sit in the log.
            let pairs: Vec<(&String, &String)> = names
                .iter()
                .zip(log_columns)
                .filter(|(name, _)| current.contains(name))
                .collect();
            if info
                .key_columns
                .iter()
                .any(|k| !pairs.iter().any(|(name, _)| *name == k))
            {
                return Err(EngineError::Sql(SqlError {
                    message: format!(
                        "the key of {} changed since these rows were captured",
                        info.name
                    ),
                    code: None,
                    position: None,
                    detail: None,
                    hint: Some("undo cannot match old rows to current ones".into()),
                }));
            }
            let cols = pairs
                .iter()
                .map(|(c, _)| ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            let values = pairs
                .iter()
                .map(|(_, l)| format!("f.{}", ident(l)))
                .collect::<Vec<_>>()
                .join(", ");
            // One statement has one layout: no need to compare it row by row.
            let layout = if !plan.first_is_table {
                "f.op IN ('U', 'D')".to_string()
            } else {
                format!(
                    "f.op IN ('U', 'D') AND f.log_columns = {}::text[]",
                    literal(&format!(
                        "{{{}}}",
                        log_columns
                            .iter()
                            .map(|c| format!("\"{c}\""))
                            .collect::<Vec<_>>()
                            .join(",")
                    ))
                )
            };
            let key_match = info.key_join("f", "t");
            let updated_here = self
                .client
                .execute(
                    &format!(
                        "UPDATE {table} t SET ({cols}) = ROW({values}) FROM {first} f WHERE {layout} AND {key_match}",
                        table = info.quoted
                    ),
                    &[],
                )
                .map_err(map_error)? as i64;
            updated += updated_here;
            // Every candidate updated means none is missing: skip the anti-join.
            let candidates: i64 = if plan.first_is_table {
                self.client
                    .query_one(
                        &format!("SELECT count(*) FROM {first} f WHERE {layout}"),
                        &[],
                    )
                    .map_err(map_error)?
                    .get(0)
            } else {
                plan.scope.rows
            };
            if updated_here < candidates {
                inserted += self
                    .client
                    .execute(
                        &format!(
                            "INSERT INTO {table} ({cols}) OVERRIDING SYSTEM VALUE SELECT {values} FROM {first} f
                             WHERE {layout} AND NOT EXISTS (SELECT 1 FROM {table} t WHERE {key_match})",
                            table = info.quoted
                        ),
                        &[],
                    )
                    .map_err(map_error)? as i64;
            }
        }
        Ok((updated, inserted))
    }
}
