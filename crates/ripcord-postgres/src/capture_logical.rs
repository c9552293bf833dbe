//! Capture through logical decoding (`capture enable --mode logical`, DESIGN §5.5).
//!
//! The table's writes are not logged as they happen: its old rows travel in the
//! write-ahead log (`REPLICA IDENTITY FULL`), a replication slot of ripcord's (one per
//! database, `pgoutput`, publication `ripcord_capture`) keeps them, and `sync` decodes
//! them into the same log tables trigger mode writes — so batch revert, conflicts and
//! flashback read one format whatever the mode. The only thing left on the write path
//! is a statement-level BEFORE trigger that emits one transactional logical message per
//! statement: its statement id (reserved from the log's own sequence, so statements of
//! both modes keep one order), batch tag, time and transaction. TRUNCATE writes no
//! row images to the WAL, so its BEFORE TRUNCATE trigger logs the rows directly, as in
//! trigger mode.
//!
//! A sync runs in one transaction: it peeks at the slot (never consumes), writes the
//! decoded rows with COPY and records the end of the last transaction it wrote in
//! `ripcord.capture_slot`, all committed together; only then is the slot advanced (the
//! next sync does it first). A crash anywhere leaves either nothing written — the
//! changes are still in the slot — or everything written with the position recorded,
//! and transactions that ended at or before it are skipped when decoded again.

use std::collections::HashMap;
use std::io::Write;

use postgres::{Client, GenericClient};
use ripcord_core::EngineError;
use ripcord_core::capture::SyncReport;

use crate::capture::{TableInfo, log_sql};
use crate::sql::{invalid, literal, map_error};

/// The publication listing the tables captured in logical mode.
pub(crate) const PUBLICATION: &str = "ripcord_capture";

/// Server memory a sync may use for decoding and for the decoded rows before spilling.
const SYNC_MEMORY: &str = "256MB";

/// Bytes of key literals after which an INSERT statement's keys start another row of
/// arrays (trigger mode switches to one log row per key at 256 MB; rows of arrays keep
/// a sync's COPY lines bounded instead).
const KEY_CHUNK_BYTES: usize = 64 << 20;

/// Decoded changes read per round of a sync outside a transaction; decoding stops at
/// the end of the transaction that crosses it, so one huge transaction is one round.
const ROUND_CHANGES: i32 = 200_000;

/// Tables of this mode with the replica identity they had before, and the slot's
/// synced position. Created on first use so that trigger-only databases never see them.
const BOOKKEEPING: &str = r#"
CREATE TABLE IF NOT EXISTS ripcord.capture_logical (
    table_name       text PRIMARY KEY,
    replica_identity "char" NOT NULL,
    replica_index    text
);
CREATE TABLE IF NOT EXISTS ripcord.capture_slot (
    slot_name  text PRIMARY KEY,
    synced_lsn pg_lsn NOT NULL
);
"#;

/// The slot's name: slots are per server, so it carries the database's oid.
pub(crate) fn slot_name(client: &mut impl GenericClient) -> Result<String, EngineError> {
    Ok(client
        .query_one(
            "SELECT 'ripcord_capture_' || oid FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .map_err(map_error)?
        .get(0))
}

/// Whether any table is captured in logical mode.
pub(crate) fn any_logical(client: &mut impl GenericClient) -> Result<bool, EngineError> {
    let row = client
        .query_one(
            "SELECT to_regclass('ripcord.capture_logical') IS NOT NULL",
            &[],
        )
        .map_err(map_error)?;
    if !row.get::<_, bool>(0) {
        return Ok(false);
    }
    Ok(client
        .query_one("SELECT EXISTS (SELECT 1 FROM ripcord.capture_logical)", &[])
        .map_err(map_error)?
        .get(0))
}

/// Whether `table` (qualified, as in `capture_tables`) is captured in logical mode.
pub(crate) fn is_logical(
    client: &mut impl GenericClient,
    table: &str,
) -> Result<bool, EngineError> {
    if !any_logical(client)? {
        return Ok(false);
    }
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM ripcord.capture_logical WHERE table_name = $1)",
            &[&table],
        )
        .map_err(map_error)?
        .get(0))
}

/// Refuse a server that cannot decode: `wal_level` below `logical` or no free slot.
fn check_server(client: &mut Client) -> Result<(), EngineError> {
    let level: String = client
        .query_one("SELECT current_setting('wal_level')", &[])
        .map_err(map_error)?
        .get(0);
    if level != "logical" {
        return Err(invalid(
            format!(
                "logical capture needs wal_level = logical; this server runs with wal_level = {level}"
            ),
            "set wal_level = logical in postgresql.conf and restart the server, or capture with `--mode trigger`",
        ));
    }
    Ok(())
}

/// The slot exists (created outside any transaction: PostgreSQL refuses to create a
/// logical slot in a transaction that has written).
fn ensure_slot(client: &mut Client, slot: &str) -> Result<(), EngineError> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
            &[&slot],
        )
        .map_err(map_error)?
        .get(0);
    if !exists {
        client
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&slot],
            )
            .map_err(|e| {
                let err = map_error(e);
                match err {
                    EngineError::Sql(sql) if sql.message.contains("replication slot") || sql.message.contains("permission") => invalid(
                        format!("cannot create the replication slot {slot}: {}", sql.message),
                        "logical capture needs a role with REPLICATION (or superuser) and a free slot (max_replication_slots)",
                    ),
                    other => other,
                }
            })?;
    }
    Ok(())
}

/// Triggers, replica identity and publication membership of a logical-mode table:
/// the log tables as in trigger mode, a statement marker, and the TRUNCATE trigger.
fn install_sql(t: &TableInfo, sequence: &str) -> String {
    let table = &t.quoted;
    let relid = t.relid;
    let name = literal(&t.name);
    format!(
        r#"{log}
{drop}
CREATE OR REPLACE FUNCTION ripcord.capture_mark_fn_{relid}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pg_logical_emit_message(true, 'ripcord', json_build_object(
        's', nextval({sequence}::regclass), 't', {name}, 'o', left(TG_OP, 1),
        'b', coalesce(nullif(current_setting('ripcord.batch', true), ''), 'tx-' || pg_current_xact_id()::text),
        'a', statement_timestamp(), 'x', pg_current_xact_id()::text)::text);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER ripcord_capture_mark BEFORE INSERT OR UPDATE OR DELETE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION ripcord.capture_mark_fn_{relid}();
CREATE TRIGGER ripcord_capture_trunc BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION ripcord.capture_fn_{relid}();
ALTER TABLE {table} REPLICA IDENTITY FULL;
DO $pub$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = '{PUBLICATION}') THEN
        CREATE PUBLICATION {PUBLICATION} WITH (publish = 'insert, update, delete');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
                   WHERE p.pubname = '{PUBLICATION}' AND pr.prrelid = {relid}) THEN
        ALTER PUBLICATION {PUBLICATION} ADD TABLE {table};
    END IF;
END $pub$;
"#,
        log = log_sql(t),
        drop = crate::capture::drop_triggers_sql(table),
        sequence = literal(sequence),
    )
}

fn identity_sequence(client: &mut impl GenericClient) -> Result<String, EngineError> {
    Ok(client
        .query_one(
            "SELECT pg_get_serial_sequence('ripcord.capture_statements', 'stmt_id')",
            &[],
        )
        .map_err(map_error)?
        .get(0))
}

/// Start capturing `t` in logical mode, in one transaction after the slot exists.
pub(crate) fn enable(client: &mut Client, t: &TableInfo) -> Result<(), EngineError> {
    check_server(client)?;
    let slot = slot_name(client)?;
    // The publication must exist before the slot: pgoutput looks it up as of each
    // decoded change, and a publication created later "does not exist" for the WAL
    // written before it.
    client
        .batch_execute(&format!(
            "DO $pub$ BEGIN
                 IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = '{PUBLICATION}') THEN
                     CREATE PUBLICATION {PUBLICATION} WITH (publish = 'insert, update, delete');
                 END IF;
             END $pub$"
        ))
        .map_err(map_error)?;
    ensure_slot(client, &slot)?;
    client.batch_execute("BEGIN").map_err(map_error)?;
    let result = (|| {
        client.batch_execute(BOOKKEEPING).map_err(map_error)?;
        let sequence = identity_sequence(client)?;
        let previous = client
            .query_one(
                "SELECT c.relreplident::text,
                        (SELECT format('%I', ic.relname) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                         WHERE i.indrelid = c.oid AND i.indisreplident)
                 FROM pg_class c WHERE c.oid = $1",
                &[&t.relid],
            )
            .map_err(map_error)?;
        let identity: String = previous.get(0);
        let index: Option<String> = previous.get(1);
        client
            .execute(
                "INSERT INTO ripcord.capture_logical (table_name, replica_identity, replica_index)
                 VALUES ($1, $2::text::\"char\", $3) ON CONFLICT (table_name) DO NOTHING",
                &[&t.name, &identity, &index],
            )
            .map_err(map_error)?;
        client
            .batch_execute(&install_sql(t, &sequence))
            .map_err(map_error)?;
        client
            .execute(
                "INSERT INTO ripcord.capture_slot (slot_name, synced_lsn)
                 SELECT $1::text, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name::text = $1::text
                 ON CONFLICT (slot_name) DO NOTHING",
                &[&slot],
            )
            .map_err(map_error)?;
        client
            .execute(
                "INSERT INTO ripcord.capture_tables (table_name, relid, key_columns, key_types, log_table, enabled, enabled_at, history_from)
                     VALUES ($1, $2, $3, $4, $5, true, now(), now())
                     ON CONFLICT (table_name) DO UPDATE SET enabled = true, enabled_at = now(), history_from = now(),
                         relid = excluded.relid, key_columns = excluded.key_columns, key_types = excluded.key_types",
                &[&t.name, &t.relid, &t.key_columns, &t.key_types, &t.log_table],
            )
            .map_err(map_error)?;
        Ok(())
    })();
    finish(client, result)
}

fn finish<T>(client: &mut Client, result: Result<T, EngineError>) -> Result<T, EngineError> {
    match result {
        Ok(v) => {
            client.batch_execute("COMMIT").map_err(map_error)?;
            Ok(v)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

/// Put logical capture back on a table a restore swapped in (inside the swap).
pub(crate) fn reattach(tx: &mut impl GenericClient, t: &TableInfo) -> Result<(), EngineError> {
    let sequence = identity_sequence(tx)?;
    tx.batch_execute(&install_sql(t, &sequence))
        .map_err(map_error)
}

/// Take `quoted` out of the publication (a table leaving for a restore's vault, or no
/// longer captured): its later writes are nobody's to decode.
pub(crate) fn leave_publication(
    tx: &mut impl GenericClient,
    quoted: &str,
) -> Result<(), EngineError> {
    let member: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
                            WHERE p.pubname = $1 AND pr.prrelid = to_regclass($2))",
            &[&PUBLICATION, &quoted],
        )
        .map_err(map_error)?
        .get(0);
    if member {
        tx.batch_execute(&format!(
            "ALTER PUBLICATION {PUBLICATION} DROP TABLE {quoted}"
        ))
        .map_err(map_error)?;
    }
    Ok(())
}

/// Stop logical capture of `t`: changes committed up to now are synced into the log
/// first (under a lock that waits for writes in flight), then the marker trigger,
/// the publication membership and `REPLICA IDENTITY FULL` go. Runs in the caller's
/// transaction.
pub(crate) fn disable(client: &mut Client, t: &TableInfo) -> Result<(), EngineError> {
    client
        .batch_execute(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", t.quoted))
        .map_err(map_error)?;
    sync_in_transaction(client)?;
    client
        .batch_execute(&crate::capture::drop_triggers_sql(&t.quoted))
        .map_err(map_error)?;
    leave_publication(client, &t.quoted)?;
    let rows = client
        .query(
            "DELETE FROM ripcord.capture_logical WHERE table_name = $1 RETURNING replica_identity::text, replica_index",
            &[&t.name],
        )
        .map_err(map_error)?;
    if let Some(row) = rows.first() {
        let identity: String = row.get(0);
        let index: Option<String> = row.get(1);
        let clause = match (identity.as_str(), index) {
            ("n", _) => "NOTHING".to_string(),
            ("f", _) => "FULL".to_string(),
            ("i", Some(index)) => format!("USING INDEX {index}"),
            _ => "DEFAULT".to_string(),
        };
        client
            .batch_execute(&format!(
                "ALTER TABLE {} REPLICA IDENTITY {clause}",
                t.quoted
            ))
            .map_err(map_error)?;
    }
    Ok(())
}

/// Drop the slot and publication once no table is captured in logical mode: a slot
/// nobody reads keeps WAL forever. Outside any transaction.
pub(crate) fn drop_slot_if_unused(client: &mut Client) -> Result<(), EngineError> {
    if any_logical(client)? {
        return Ok(());
    }
    let slot = slot_name(client)?;
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .map_err(map_error)?;
    client
        .batch_execute(&format!("DROP PUBLICATION IF EXISTS {PUBLICATION}"))
        .map_err(map_error)?;
    let has_table: bool = client
        .query_one(
            "SELECT to_regclass('ripcord.capture_slot') IS NOT NULL",
            &[],
        )
        .map_err(map_error)?
        .get(0);
    if has_table {
        client
            .execute(
                "DELETE FROM ripcord.capture_slot WHERE slot_name = $1",
                &[&slot],
            )
            .map_err(map_error)?;
    }
    Ok(())
}

/// Bytes of WAL the slot keeps, when there is one.
pub(crate) fn retained_wal(client: &mut impl GenericClient) -> Result<Option<i64>, EngineError> {
    let slot = slot_name(client)?;
    let rows = client
        .query(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .map_err(map_error)?;
    Ok(rows.first().and_then(|r| r.get(0)))
}

/// Sync outside a transaction, round by round, each committed and then released from
/// the slot.
pub(crate) fn sync(client: &mut Client) -> Result<SyncReport, EngineError> {
    if !any_logical(client)? {
        return Ok(SyncReport::default());
    }
    let mut report = SyncReport::default();
    loop {
        client.batch_execute("BEGIN").map_err(map_error)?;
        let round = sync_round(client, Some(ROUND_CHANGES));
        let round = finish(client, round)?;
        report.transactions += round.transactions;
        report.rows += round.rows;
        if round.messages < ROUND_CHANGES as i64 {
            break;
        }
        // A round stops at the end of the transaction that reaches the limit, so one
        // bulk statement fills it alone. Another round decodes again from the slot's
        // restart point — before that statement — which cost as much again for nothing
        // when no statement came after. Every marked statement reserves its id from
        // the log's sequence first: no id beyond the last one decoded, no statement to
        // decode. Left for the next sync: unmarked writes (triggers bypassed), and a
        // transaction that reserved its id before the last one decoded but committed
        // after it; an undo decodes everything under its lock, so it misses neither.
        let reserved: i64 = client
            .query_one(
                "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('ripcord.capture_statements', 'stmt_id')::regclass), 0)",
                &[],
            )
            .map_err(map_error)?
            .get(0);
        if reserved <= round.last_statement {
            break;
        }
    }
    release(client)?;
    report.retained_wal_bytes = retained_wal(client)?;
    Ok(report)
}

/// Sync inside the caller's transaction (an undo, a disable): what it writes commits
/// or rolls back with the caller's work; the slot is released by the next sync.
pub(crate) fn sync_in_transaction(client: &mut Client) -> Result<SyncReport, EngineError> {
    if !any_logical(client)? {
        return Ok(SyncReport::default());
    }
    let round = sync_round(client, None)?;
    Ok(SyncReport {
        transactions: round.transactions,
        rows: round.rows,
        retained_wal_bytes: None,
    })
}

/// Advance the slot to the synced position: the server may recycle the WAL before it.
fn release(client: &mut Client) -> Result<(), EngineError> {
    let slot = slot_name(client)?;
    client
        .execute(
            "SELECT pg_replication_slot_advance(s.slot_name, c.synced_lsn)
             FROM pg_replication_slots s JOIN ripcord.capture_slot c ON c.slot_name = s.slot_name::text
             WHERE c.slot_name = $1 AND c.synced_lsn > s.confirmed_flush_lsn",
            &[&slot],
        )
        .map_err(map_error)?;
    Ok(())
}

struct Round {
    transactions: i64,
    rows: i64,
    messages: i64,
    /// The highest statement id among the markers decoded (written or skipped).
    last_statement: i64,
}

fn sync_round(client: &mut Client, limit: Option<i32>) -> Result<Round, EngineError> {
    // One sync at a time per database: two would decode and write the same changes.
    client
        .batch_execute("SELECT pg_advisory_xact_lock(hashtext('ripcord.capture_sync'))")
        .map_err(map_error)?;
    // A bulk statement's transaction is decoded whole: with the defaults (64 MB, 4 MB)
    // the server spills it to disk twice, in the reorder buffer and in the tuplestore
    // the peek returns; that doubled a sync's server time for a 1M-row UPDATE.
    client
        .batch_execute(&format!(
            "SELECT set_config(name, '{SYNC_MEMORY}', true) FROM pg_settings
             WHERE name IN ('logical_decoding_work_mem', 'work_mem')
               AND pg_size_bytes(current_setting(name)) < pg_size_bytes('{SYNC_MEMORY}')"
        ))
        .map_err(map_error)?;
    let slot = slot_name(client)?;
    let synced: Option<i64> = client
        .query(
            "SELECT (synced_lsn - '0/0'::pg_lsn)::int8 FROM ripcord.capture_slot WHERE slot_name = $1",
            &[&slot],
        )
        .map_err(map_error)?
        .first()
        .map(|r| r.get(0));
    let Some(synced) = synced else {
        return Err(invalid(
            "logical capture has no replication slot recorded for this database".into(),
            "run `ripcord capture enable --mode logical <table>` again to create it",
        ));
    };
    if limit.is_some() {
        release(client)?;
    }
    let flushed = wait_for_flush(client)?;
    let rows = client
        .query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2,
                 'proto_version', '1', 'publication_names', $3, 'messages', 'true')",
            &[&slot, &limit, &PUBLICATION],
        )
        .map_err(|e| {
            let err = map_error(e);
            match err {
                // Dropped by hand, or invalidated by `max_slot_wal_keep_size`.
                EngineError::Sql(sql)
                    if sql.message.contains("does not exist")
                        || sql.message.contains("invalidated")
                        || sql.message.contains("cannot read from logical replication slot") =>
                {
                    invalid(
                    format!("the replication slot {slot} of logical capture is gone: {}", sql.message),
                    "changes since the last sync are lost to capture; `ripcord capture disable` and `enable --mode logical` start again",
                )
                }
                other => other,
            }
        })?;
    let messages = rows.len() as i64;
    let mut decoder = Decoder::new(client, synced)?;
    for row in &rows {
        let data: &[u8] = row.get(0);
        decoder.message(client, data)?;
    }
    // A peek that was not cut short decoded every commit before `flushed`: the synced
    // position may move there even when no captured transaction ended near it.
    // pgoutput sends nothing for transactions without captured changes, so without
    // this the position (and the slot, released to it) stayed at the last captured
    // commit, and the slot kept all WAL written since while the tables were idle —
    // each sync decoding it again.
    if let Some(flushed) = flushed
        && limit.is_none_or(|limit| messages < i64::from(limit))
    {
        decoder.last_end = decoder.last_end.max(flushed);
    }
    let last_statement = decoder.last_statement;
    let (transactions, written) = decoder.write(client)?;
    Ok(Round {
        transactions,
        rows: written,
        messages,
        last_statement,
    })
}

/// Decoding reads only WAL flushed to disk; a writer with `synchronous_commit = off`
/// may have committed without its commit record being flushed yet. Wait (bounded) for
/// the flush to pass what was written before this sync, so that nothing committed
/// earlier is missed. Returns that position when the flush reached it: every record
/// that began before it is then whole on disk, and a peek decodes every commit among
/// them.
fn wait_for_flush(client: &mut Client) -> Result<Option<i64>, EngineError> {
    let inserted: i64 = client
        .query_one(
            "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8",
            &[],
        )
        .map_err(map_error)?
        .get(0);
    for _ in 0..300 {
        let flushed: i64 = client
            .query_one(
                "SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8",
                &[],
            )
            .map_err(map_error)?
            .get(0);
        if flushed >= inserted {
            return Ok(Some(inserted));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(None)
}

/// A relation as the decoder announced it, and what ripcord captures of it.
struct Relation {
    captured: Option<Layout>,
}

/// Where a captured relation's values go.
struct Layout {
    table: String,
    log_table: String,
    /// Position of each key column among the relation's columns.
    key_positions: Vec<usize>,
    /// Table column names and their log columns (None: the column is gone from the
    /// table since, its values are not kept, as in trigger mode).
    columns: Vec<(String, Option<String>)>,
}

struct Statement {
    id: i64,
    txid: String,
    at: String,
    batch: String,
    table: String,
    op: char,
    rows: i64,
    layout: Option<(Vec<String>, Vec<String>)>,
}

#[derive(serde::Deserialize)]
struct Marker {
    s: i64,
    t: String,
    o: String,
    b: String,
    a: String,
    x: String,
}

/// One value of a decoded tuple.
enum Value {
    Null,
    Unchanged,
    Text(Vec<u8>),
}

/// An INSERT statement's keys as trigger mode keeps them: one row of arrays per
/// statement in `ripcord.capture_keys_<oid>` (one array literal per key column), a new
/// row each time a chunk reaches [`KEY_CHUNK_BYTES`].
struct InsertKeys {
    keys_table: String,
    /// Each key column's elements so far, quoted for an array literal.
    columns: Vec<Vec<u8>>,
    /// Finished COPY lines (`stmt_id`, then one array per key column).
    lines: Vec<u8>,
    /// [`KEY_CHUNK_BYTES`], smaller in tests.
    chunk_bytes: usize,
}

impl InsertKeys {
    fn push(&mut self, id: i64, positions: &[usize], tuple: &[Value]) -> Result<(), EngineError> {
        for (column, &p) in self.columns.iter_mut().zip(positions) {
            let Some(Value::Text(text)) = tuple.get(p) else {
                return Err(missing("key value"));
            };
            if !column.is_empty() {
                column.push(b',');
            }
            column.push(b'"');
            for &b in text {
                if b == b'"' || b == b'\\' {
                    column.push(b'\\');
                }
                column.push(b);
            }
            column.push(b'"');
        }
        if self.columns.iter().map(Vec::len).sum::<usize>() >= self.chunk_bytes {
            self.finish_chunk(id);
        }
        Ok(())
    }

    fn finish_chunk(&mut self, id: i64) {
        if self.columns.first().is_none_or(|c| c.is_empty()) {
            return;
        }
        self.lines.extend_from_slice(id.to_string().as_bytes());
        for column in &mut self.columns {
            self.lines.extend_from_slice(b"\t{");
            escape_into(&mut self.lines, column);
            self.lines.push(b'}');
            column.clear();
        }
        self.lines.push(b'\n');
    }
}

struct Decoder {
    /// `capture_tables` rows of logical-mode tables: name → (log table, key columns).
    tables: HashMap<String, (String, Vec<String>)>,
    relations: HashMap<u32, Relation>,
    synced: i64,
    skipping: bool,
    xid: u32,
    commit_time: i64,
    epoch: i64,
    open: HashMap<(String, char), usize>,
    statements: Vec<Statement>,
    /// COPY text per (log table, columns).
    logs: HashMap<(String, String), Vec<u8>>,
    /// INSERT keys per statement (index into `statements`).
    insert_keys: HashMap<usize, InsertKeys>,
    transactions: i64,
    wrote_in_transaction: bool,
    last_end: i64,
    rows: i64,
    last_statement: i64,
}

impl Decoder {
    fn new(client: &mut Client, synced: i64) -> Result<Decoder, EngineError> {
        let tables = client
            .query(
                "SELECT t.table_name, t.log_table, t.key_columns FROM ripcord.capture_tables t
                 JOIN ripcord.capture_logical l USING (table_name) WHERE t.enabled",
                &[],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        let next_xid: i64 = client
            .query_one(
                "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8",
                &[],
            )
            .map_err(map_error)?
            .get(0);
        Ok(Decoder {
            tables,
            relations: HashMap::new(),
            synced,
            skipping: false,
            xid: 0,
            commit_time: 0,
            epoch: next_xid,
            open: HashMap::new(),
            statements: Vec::new(),
            logs: HashMap::new(),
            insert_keys: HashMap::new(),
            transactions: 0,
            wrote_in_transaction: false,
            last_end: synced,
            rows: 0,
            last_statement: 0,
        })
    }

    fn message(&mut self, client: &mut Client, data: &[u8]) -> Result<(), EngineError> {
        let mut r = Reader { buf: data, pos: 0 };
        match r.u8()? {
            b'B' => {
                let final_lsn = r.u64()? as i64;
                self.commit_time = r.u64()? as i64;
                self.xid = r.u32()?;
                // Its commit record starts before the synced position: written already.
                self.skipping = final_lsn < self.synced;
                self.open.clear();
                self.wrote_in_transaction = false;
            }
            b'C' => {
                r.u8()?;
                r.u64()?;
                let end = r.u64()? as i64;
                if !self.skipping {
                    self.last_end = self.last_end.max(end);
                    if self.wrote_in_transaction {
                        self.transactions += 1;
                    }
                }
                self.open.clear();
            }
            b'R' => {
                let relid = r.u32()?;
                let schema = r.cstr()?;
                let name = r.cstr()?;
                r.u8()?;
                let count = r.u16()? as usize;
                let mut columns = Vec::with_capacity(count);
                for _ in 0..count {
                    r.u8()?;
                    let column = r.cstr()?;
                    let oid = r.u32()?;
                    let typmod = r.u32()? as i32;
                    columns.push((column, oid, typmod));
                }
                let qualified = format!("{schema}.{name}");
                let captured = match self.tables.get(&qualified).cloned() {
                    Some((log_table, keys)) => Some(layout(
                        client, relid, &qualified, &log_table, &keys, &columns,
                    )?),
                    None => None,
                };
                self.relations.insert(relid, Relation { captured });
            }
            b'M' => {
                let flags = r.u8()?;
                r.u64()?;
                let prefix = r.cstr()?;
                let length = r.u32()? as usize;
                let content = r.bytes(length)?;
                if flags & 1 == 1 && prefix == "ripcord" {
                    let marker: Marker = serde_json::from_slice(content).map_err(|e| {
                        invalid(
                            format!("a capture marker in the WAL is not readable: {e}"),
                            "it was written by something other than ripcord's capture trigger",
                        )
                    })?;
                    self.last_statement = self.last_statement.max(marker.s);
                    if self.skipping {
                        return Ok(());
                    }
                    let op = marker.o.chars().next().unwrap_or('?');
                    self.statements.push(Statement {
                        id: marker.s,
                        txid: marker.x,
                        at: marker.a,
                        batch: marker.b,
                        table: marker.t.clone(),
                        op,
                        rows: 0,
                        layout: None,
                    });
                    self.open.insert((marker.t, op), self.statements.len() - 1);
                }
            }
            kind @ (b'I' | b'U' | b'D') => {
                if self.skipping {
                    return Ok(());
                }
                let relid = r.u32()?;
                let mut old = None;
                let mut new = None;
                loop {
                    if r.pos >= r.buf.len() {
                        break;
                    }
                    match r.u8()? {
                        b'K' => {
                            r.tuple()?;
                            return Err(invalid(
                                "a captured table's old rows reached the WAL without their full image".into(),
                                "its REPLICA IDENTITY was changed from FULL: `ripcord capture enable --mode logical <table>` sets it again",
                            ));
                        }
                        b'O' => old = Some(r.tuple()?),
                        b'N' => new = Some(r.tuple()?),
                        other => {
                            return Err(invalid(
                                format!("unexpected tuple tag {other} in a decoded change"),
                                "report this with the server version",
                            ));
                        }
                    }
                }
                self.change(client, relid, kind as char, old, new)?;
            }
            // Type, origin, truncate (not published): nothing to capture.
            _ => {}
        }
        Ok(())
    }

    fn change(
        &mut self,
        client: &mut Client,
        relid: u32,
        op: char,
        old: Option<Vec<Value>>,
        new: Option<Vec<Value>>,
    ) -> Result<(), EngineError> {
        let Some(Relation {
            captured: Some(layout),
        }) = self.relations.get(&relid)
        else {
            return Ok(());
        };
        let key = (layout.table.clone(), op);
        let index = match self.open.get(&key) {
            Some(i) => *i,
            None => {
                // Written without a marker (triggers disabled with
                // session_replication_role, or a trigger dropped by hand): one statement
                // per transaction, table and operation, tagged with the transaction.
                let id: i64 = client
                    .query_one(
                        "SELECT nextval(pg_get_serial_sequence('ripcord.capture_statements', 'stmt_id'))",
                        &[],
                    )
                    .map_err(map_error)?
                    .get(0);
                self.last_statement = self.last_statement.max(id);
                let mut full = (self.epoch >> 32 << 32) | self.xid as i64;
                if full > self.epoch {
                    full -= 1 << 32;
                }
                let at = postgres_time(self.commit_time);
                self.statements.push(Statement {
                    id,
                    txid: full.to_string(),
                    at,
                    batch: format!("tx-{full}"),
                    table: layout.table.clone(),
                    op,
                    rows: 0,
                    layout: None,
                });
                self.open.insert(key, self.statements.len() - 1);
                self.statements.len() - 1
            }
        };
        let statement = &mut self.statements[index];
        statement.rows += 1;
        self.rows += 1;
        self.wrote_in_transaction = true;
        let id = statement.id;
        let key_columns: Vec<String> = (0..layout.key_positions.len())
            .map(|i| format!("k{i}"))
            .collect();
        let keys_only = format!("stmt_id, op, {}", key_columns.join(", "));
        match op {
            'I' => {
                let new = new.ok_or_else(|| missing("new row"))?;
                self.insert_keys
                    .entry(index)
                    .or_insert_with(|| InsertKeys {
                        keys_table: layout
                            .log_table
                            .replacen("capture_log_", "capture_keys_", 1),
                        columns: vec![Vec::new(); layout.key_positions.len()],
                        lines: Vec::new(),
                        chunk_bytes: KEY_CHUNK_BYTES,
                    })
                    .push(id, &layout.key_positions, &new)?;
            }
            _ => {
                let old = old.ok_or_else(|| {
                    invalid(
                        "a captured UPDATE or DELETE reached the WAL without its old row".into(),
                        "the table's REPLICA IDENTITY is not FULL: `ripcord capture enable --mode logical <table>` sets it again",
                    )
                })?;
                if statement.layout.is_none() {
                    let kept: Vec<&(String, Option<String>)> =
                        layout.columns.iter().filter(|(_, l)| l.is_some()).collect();
                    statement.layout = Some((
                        kept.iter().map(|(c, _)| c.clone()).collect(),
                        kept.iter()
                            .map(|(_, l)| l.clone().unwrap_or_default())
                            .collect(),
                    ));
                }
                let image_columns: Vec<&str> = layout
                    .columns
                    .iter()
                    .filter_map(|(_, l)| l.as_deref())
                    .collect();
                let columns = format!("{keys_only}, {}", image_columns.join(", "));
                let line = self
                    .logs
                    .entry((layout.log_table.clone(), columns))
                    .or_default();
                key_line_open(line, id, op, &layout.key_positions, &old)?;
                for (position, (_, log)) in layout.columns.iter().enumerate() {
                    if log.is_some() {
                        line.push(b'\t');
                        copy_value(line, &old[position])?;
                    }
                }
                line.push(b'\n');
                // A key that changed: the new key, as trigger mode's key trigger logs it.
                if op == 'U'
                    && let Some(new) = new
                {
                    let moved = layout
                        .key_positions
                        .iter()
                        .any(|&p| match (&old[p], &new[p]) {
                            (Value::Text(a), Value::Text(b)) => a != b,
                            (_, Value::Unchanged) => false,
                            _ => true,
                        });
                    if moved {
                        let line = self
                            .logs
                            .entry((layout.log_table.clone(), keys_only))
                            .or_default();
                        key_line(line, id, 'N', &layout.key_positions, &new)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Write what was decoded: statements, then each log's rows, then the position.
    fn write(self, client: &mut Client) -> Result<(i64, i64), EngineError> {
        let mut statements = Vec::new();
        for s in self.statements.iter().filter(|s| s.rows > 0) {
            let (columns, logs) = match &s.layout {
                Some((c, l)) => (Some(array_literal(c)), Some(array_literal(l))),
                None => (None, None),
            };
            let mut line = format!("{}\t{}\t", s.id, s.txid).into_bytes();
            escape_into(&mut line, s.at.as_bytes());
            line.push(b'\t');
            escape_into(&mut line, s.batch.as_bytes());
            line.push(b'\t');
            escape_into(&mut line, s.table.as_bytes());
            line.extend_from_slice(format!("\t{}\t{}\t", s.op, s.rows).as_bytes());
            copy_optional(&mut line, columns.as_deref());
            line.push(b'\t');
            copy_optional(&mut line, logs.as_deref());
            line.push(b'\n');
            statements.extend_from_slice(&line);
        }
        if !statements.is_empty() {
            copy_in(
                client,
                "COPY ripcord.capture_statements (stmt_id, txid, at, batch, table_name, op, rows, columns, log_columns) FROM STDIN",
                &statements,
            )?;
        }
        let mut key_lines: HashMap<(String, usize), Vec<u8>> = HashMap::new();
        for (index, mut keys) in self.insert_keys {
            keys.finish_chunk(self.statements[index].id);
            key_lines
                .entry((keys.keys_table, keys.columns.len()))
                .or_default()
                .extend_from_slice(&keys.lines);
        }
        for ((keys_table, count), data) in &key_lines {
            let columns: Vec<String> = (0..*count).map(|i| format!("k{i}")).collect();
            copy_in(
                client,
                &format!(
                    "COPY {keys_table} (stmt_id, {}) FROM STDIN",
                    columns.join(", ")
                ),
                data,
            )?;
        }
        for ((log_table, columns), data) in &self.logs {
            copy_in(
                client,
                &format!("COPY {log_table} ({columns}) FROM STDIN"),
                data,
            )?;
        }
        if self.last_end > self.synced {
            client
                .execute(
                    "UPDATE ripcord.capture_slot SET synced_lsn = '0/0'::pg_lsn + $1::text::numeric
                     WHERE slot_name = (SELECT 'ripcord_capture_' || oid FROM pg_database WHERE datname = current_database())",
                    &[&self.last_end.to_string()],
                )
                .map_err(map_error)?;
        }
        Ok((self.transactions, self.rows))
    }
}

fn missing(what: &str) -> EngineError {
    invalid(
        format!("a decoded change has no {what}"),
        "report this with the server version",
    )
}

/// The log columns for a relation's columns: `a<attnum>_<type hash>` of the type the
/// column had when the change was written, added to the log when missing (as the
/// trigger does).
fn layout(
    client: &mut Client,
    relid: u32,
    table: &str,
    log_table: &str,
    keys: &[String],
    columns: &[(String, u32, i32)],
) -> Result<Layout, EngineError> {
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    let oids: Vec<u32> = columns.iter().map(|c| c.1).collect();
    let typmods: Vec<i32> = columns.iter().map(|c| c.2).collect();
    let rows = client
        .query(
            "SELECT c.name, CASE WHEN a.attnum IS NOT NULL
                        THEN 'a' || a.attnum || '_' || left(md5(format_type(c.typ, c.typmod)), 8) END,
                    format_type(c.typ, c.typmod)
             FROM unnest($1::text[], $2::oid[], $3::int4[]) WITH ORDINALITY AS c(name, typ, typmod, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = $4 AND a.attname = c.name AND NOT a.attisdropped
             ORDER BY c.ord",
            &[&names, &oids, &typmods, &relid],
        )
        .map_err(map_error)?;
    let mut out = Vec::new();
    for row in &rows {
        let name: String = row.get(0);
        let log: Option<String> = row.get(1);
        let ty: String = row.get(2);
        if let Some(log) = &log {
            client
                .batch_execute(&format!(
                    "ALTER TABLE {log_table} ADD COLUMN IF NOT EXISTS {log} {ty}"
                ))
                .map_err(map_error)?;
        }
        out.push((name, log));
    }
    let key_positions = keys
        .iter()
        .map(|k| {
            out.iter().position(|(c, _)| c == k).ok_or_else(|| {
                invalid(
                    format!("decoded rows of {table} lack its key column {k}"),
                    "a captured table's key columns cannot change: `capture disable` and `enable` again",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Layout {
        table: table.to_string(),
        log_table: log_table.to_string(),
        key_positions,
        columns: out,
    })
}

fn key_line_open(
    line: &mut Vec<u8>,
    id: i64,
    op: char,
    positions: &[usize],
    tuple: &[Value],
) -> Result<(), EngineError> {
    line.extend_from_slice(format!("{id}\t{op}").as_bytes());
    for &p in positions {
        line.push(b'\t');
        copy_value(line, tuple.get(p).ok_or_else(|| missing("key value"))?)?;
    }
    Ok(())
}

fn key_line(
    line: &mut Vec<u8>,
    id: i64,
    op: char,
    positions: &[usize],
    tuple: &[Value],
) -> Result<(), EngineError> {
    key_line_open(line, id, op, positions, tuple)?;
    line.push(b'\n');
    Ok(())
}

fn copy_value(line: &mut Vec<u8>, value: &Value) -> Result<(), EngineError> {
    match value {
        Value::Null => line.extend_from_slice(b"\\N"),
        Value::Text(text) => escape_into(line, text),
        // Only a new row's unchanged TOAST values are sent this way; old images are
        // complete under REPLICA IDENTITY FULL.
        Value::Unchanged => {
            return Err(invalid(
                "a captured old row reached the WAL without one of its values".into(),
                "the table's REPLICA IDENTITY is not FULL: `ripcord capture enable --mode logical <table>` sets it again",
            ));
        }
    }
    Ok(())
}

fn copy_optional(line: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => escape_into(line, text.as_bytes()),
        None => line.extend_from_slice(b"\\N"),
    }
}

/// COPY text escaping: backslash, and the characters that separate fields and rows.
fn escape_into(line: &mut Vec<u8>, text: &[u8]) {
    for &b in text {
        match b {
            b'\\' => line.extend_from_slice(b"\\\\"),
            b'\t' => line.extend_from_slice(b"\\t"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            _ => line.push(b),
        }
    }
}

/// A text[] literal.
fn array_literal(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| format!("\"{}\"", i.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

fn copy_in(client: &mut Client, statement: &str, data: &[u8]) -> Result<(), EngineError> {
    let mut writer = client.copy_in(statement).map_err(map_error)?;
    writer.write_all(data).map_err(|e| {
        invalid(
            format!("writing decoded changes into the capture log failed: {e}"),
            "the connection dropped; run `ripcord capture sync` again (nothing was half-written)",
        )
    })?;
    writer.finish().map_err(map_error)?;
    Ok(())
}

/// A pgoutput time (microseconds since 2000-01-01 UTC) as PostgreSQL reads it.
fn postgres_time(micros: i64) -> String {
    const EPOCH_2000: i64 = 946_684_800;
    let seconds = EPOCH_2000 + micros.div_euclid(1_000_000);
    let nanos = (micros.rem_euclid(1_000_000) * 1000) as u32;
    chrono::DateTime::from_timestamp(seconds, nanos)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
        .unwrap_or_else(|| "now".to_string())
}

/// Reads pgoutput's binary messages (protocol version 1).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], EngineError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(invalid(
                "a decoded change ended early".into(),
                "the replication slot's output is not pgoutput protocol 1; report this with the server version",
            ));
        };
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, EngineError> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, EngineError> {
        Ok(u16::from_be_bytes(
            self.bytes(2)?.try_into().unwrap_or_default(),
        ))
    }

    fn u32(&mut self) -> Result<u32, EngineError> {
        Ok(u32::from_be_bytes(
            self.bytes(4)?.try_into().unwrap_or_default(),
        ))
    }

    fn u64(&mut self) -> Result<u64, EngineError> {
        Ok(u64::from_be_bytes(
            self.bytes(8)?.try_into().unwrap_or_default(),
        ))
    }

    fn cstr(&mut self) -> Result<String, EngineError> {
        let rest = &self.buf[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(missing("terminated name"));
        };
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(text)
    }

    fn tuple(&mut self) -> Result<Vec<Value>, EngineError> {
        let count = self.u16()? as usize;
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            values.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let length = self.u32()? as usize;
                    Value::Text(self.bytes(length)?.to_vec())
                }
                other => {
                    return Err(invalid(
                        format!("unexpected value kind {other} in a decoded row"),
                        "the slot must decode values as text (pgoutput without `binary`)",
                    ));
                }
            });
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_escaping_keeps_separators_inside_values() {
        let mut line = Vec::new();
        escape_into(&mut line, b"a\tb\nc\\d\re");
        assert_eq!(line, b"a\\tb\\nc\\\\d\\re");
    }

    #[test]
    fn array_literals_quote_every_element() {
        assert_eq!(
            array_literal(&["a".into(), "we\"ird\\".into()]),
            r#"{"a","we\"ird\\"}"#
        );
    }

    #[test]
    fn insert_keys_are_array_literals_in_copy_text_chunked_by_size() {
        let mut keys = InsertKeys {
            keys_table: "ripcord.capture_keys_1".into(),
            columns: vec![Vec::new(), Vec::new()],
            lines: Vec::new(),
            chunk_bytes: 16,
        };
        let row = |a: &str, b: &str| vec![Value::Text(a.into()), Value::Text(b.into())];
        keys.push(7, &[0, 1], &row("1", "q\"u\\o,{x}")).unwrap();
        keys.push(7, &[0, 1], &row("2", "tab\there")).unwrap();
        keys.push(7, &[0, 1], &row("3", "NULL")).unwrap();
        keys.finish_chunk(7);
        assert_eq!(
            String::from_utf8(keys.lines.clone()).unwrap(),
            "7\t{\"1\"}\t{\"q\\\\\"u\\\\\\\\o,{x}\"}\n\
             7\t{\"2\",\"3\"}\t{\"tab\\there\",\"NULL\"}\n"
        );
        assert!(
            keys.push(7, &[0, 1], &[Value::Text("4".into()), Value::Null])
                .is_err(),
            "a key without a value is an error, not a NULL element"
        );
    }

    #[test]
    fn pgoutput_times_count_from_2000() {
        assert_eq!(postgres_time(0), "2000-01-01 00:00:00.000000+00");
        assert_eq!(postgres_time(1_500_000), "2000-01-01 00:00:01.500000+00");
    }

    #[test]
    fn a_truncated_message_is_an_error_not_a_panic() {
        let mut r = Reader {
            buf: &[b't', 0, 0, 0, 9, b'x'],
            pos: 1,
        };
        assert!(r.u32().is_ok());
        assert!(r.bytes(9).is_err());
    }
}
