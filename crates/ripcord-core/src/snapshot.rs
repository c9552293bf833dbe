//! Table snapshots as values: the manifest that names every chunk of a snapshot, the
//! table definitions it carries, and the engine traits that stream tables out of and
//! back into a database (DESIGN §5.6). Streaming, compression and storage live in the
//! operations crate; engines only move bytes and run their own DDL.

use std::io::Read;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::kind::EngineKind;

/// Version of the snapshot layout this build writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Everything a snapshot holds, written last (its presence publishes the snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`SNAPSHOT_FORMAT`] at the time of writing.
    pub format: u32,
    /// `YYYYMMDDTHHMMSSZ-<hex>`: sorts by time.
    pub id: String,
    /// Which engine it came from.
    pub engine: EngineKind,
    /// Target name and URL without password.
    pub target: String,
    /// Why it was taken (`manual`, `before 0003_drop_x`, …).
    pub label: String,
    /// Who took it, from where.
    pub created_by: String,
    /// Host.
    pub host: String,
    /// When the copy finished.
    pub created_at: DateTime<Utc>,
    /// The moment the data is from (the exported snapshot's time).
    pub data_as_of: DateTime<Utc>,
    /// The server's version string.
    pub server_version: String,
    /// PostgreSQL: WAL position of the snapshot.
    pub lsn: Option<String>,
    /// The tables, in the order they are restored.
    pub tables: Vec<TableSnapshot>,
    /// SQLite: the whole database file.
    pub file: Option<StoredStream>,
    /// blake3 of this manifest serialized with this field empty.
    pub manifest_hash: String,
}

impl Manifest {
    /// The hash of the manifest's content (everything but `manifest_hash`).
    pub fn compute_hash(&self) -> String {
        let mut unsealed = self.clone();
        unsealed.manifest_hash = String::new();
        let bytes = serde_json::to_vec(&unsealed).expect("a manifest always serializes");
        format!("b3:{}", blake3::hash(&bytes).to_hex())
    }

    /// Set `manifest_hash`.
    pub fn seal(&mut self) {
        self.manifest_hash = self.compute_hash();
    }

    /// Read a manifest, checking its format and hash.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        #[derive(Deserialize)]
        struct Version {
            format: u32,
        }
        let version: Version = serde_json::from_slice(bytes)
            .map_err(|e| format!("the manifest is not readable JSON ({e})"))?;
        if version.format > SNAPSHOT_FORMAT {
            return Err(format!(
                "snapshot format {} is newer than this ripcord understands ({SNAPSHOT_FORMAT})",
                version.format
            ));
        }
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| format!("the manifest does not have the expected fields ({e})"))?;
        let expected = manifest.compute_hash();
        if manifest.manifest_hash != expected {
            return Err(format!(
                "the manifest's hash does not match its content (recorded {}, computed {expected})",
                manifest.manifest_hash
            ));
        }
        Ok(manifest)
    }

    /// Rows over all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Bytes stored over all chunks.
    pub fn stored_bytes(&self) -> u64 {
        self.tables
            .iter()
            .flat_map(|t| t.parts.iter())
            .chain(self.file.iter())
            .map(|s| s.stored_bytes())
            .sum()
    }
}

/// One table of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSnapshot {
    /// Its definition when the snapshot was taken.
    pub definition: TableDefinition,
    /// Rows copied.
    pub rows: u64,
    /// Its data in parts copied (and restored) in parallel, each a complete stream in
    /// PostgreSQL's binary COPY format (SQLite: none, see [`Manifest::file`]).
    pub parts: Vec<StoredStream>,
}

/// A byte stream stored as compressed chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredStream {
    /// Rows in it (0 for a file).
    #[serde(default)]
    pub rows: u64,
    /// The chunks in order.
    pub chunks: Vec<Chunk>,
}

impl StoredStream {
    /// Bytes before compression.
    pub fn raw_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.raw_bytes).sum()
    }
    /// Bytes stored.
    pub fn stored_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.stored_bytes).sum()
    }
}

/// One zstd-compressed piece of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Object name relative to the snapshot's directory.
    pub object: String,
    /// Length before compression.
    pub raw_bytes: u64,
    /// Length stored.
    pub stored_bytes: u64,
    /// blake3 of the bytes before compression (`b3:<hex>`).
    pub blake3: String,
}

/// blake3 of `bytes` as written in manifests.
pub fn chunk_hash(bytes: &[u8]) -> String {
    format!("b3:{}", blake3::hash(bytes).to_hex())
}

/// A table's definition, enough to re-create it in another schema or database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDefinition {
    /// Schema (PostgreSQL) or `main` (SQLite).
    pub schema: String,
    /// Table name.
    pub name: String,
    /// `schema.name` quoted as the server quotes identifiers (how its DDL names it).
    pub qualified: String,
    /// The table name alone, quoted the same way.
    pub quoted_name: String,
    /// Columns in order.
    pub columns: Vec<ColumnDefinition>,
    /// Primary key, unique, check and exclusion constraints: `(name, definition)`.
    pub constraints: Vec<NamedDefinition>,
    /// Foreign keys of this table: `(name, definition)`.
    pub foreign_keys: Vec<NamedDefinition>,
    /// Indexes that back no constraint: `(name, CREATE INDEX …)` on the qualified name.
    pub indexes: Vec<NamedDefinition>,
    /// Triggers: `(name, CREATE TRIGGER …)` on the qualified name.
    pub triggers: Vec<NamedDefinition>,
    /// `GRANT` privileges: `(grantee, privilege, grantable)`.
    pub grants: Vec<Grant>,
    /// Owning role.
    pub owner: Option<String>,
    /// Sequences owned by its columns, with their values at the snapshot.
    pub sequences: Vec<OwnedSequence>,
    /// SQLite: the `CREATE TABLE` statement as stored.
    pub create_sql: Option<String>,
    /// Comments, row-level security and column privileges (absent from manifests
    /// written before they were carried, and from tables without any, so that those
    /// manifests keep their hash).
    #[serde(default, skip_serializing_if = "TableExtras::is_empty")]
    pub extras: TableExtras,
    /// PostgreSQL: `PARTITION BY …` of a partitioned table (its rows live in its
    /// partitions, which are tables of the snapshot too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_by: Option<String>,
    /// PostgreSQL: the partitioned table this table is a partition of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<PartitionOf>,
}

/// Where a partition belongs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOf {
    /// The parent's `schema.name`, quoted as the server quotes identifiers.
    pub parent: String,
    /// The parent's name alone, quoted the same way.
    pub parent_quoted_name: String,
    /// `FOR VALUES …` or `DEFAULT`.
    pub bound: String,
}

impl PartitionOf {
    /// The parent as it is named in `place` (a staging schema holds parent and
    /// partitions together).
    pub fn parent_in(&self, place: &RestorePlace) -> String {
        match place {
            RestorePlace::Staging { schema } => {
                format!("{}.{}", quote_ident(schema), self.parent_quoted_name)
            }
            RestorePlace::Original => self.parent.clone(),
        }
    }
}

/// What else a table carries besides columns, constraints, indexes and grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableExtras {
    /// `COMMENT ON TABLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `COMMENT ON COLUMN`: `(column, comment)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_comments: Vec<(String, String)>,
    /// `ENABLE ROW LEVEL SECURITY`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub row_security: bool,
    /// `FORCE ROW LEVEL SECURITY` (the owner is subject to the policies too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_row_security: bool,
    /// Policies: `(name, CREATE POLICY … ON <qualified> …)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<NamedDefinition>,
    /// Column privileges: `GRANT privilege (column) ON table TO grantee`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_grants: Vec<ColumnGrant>,
}

impl TableExtras {
    /// Nothing to carry.
    pub fn is_empty(&self) -> bool {
        self == &TableExtras::default()
    }
}

/// One column privilege.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnGrant {
    /// The column.
    pub column: String,
    /// Role (`PUBLIC` for everyone), quoted.
    pub grantee: String,
    /// `SELECT`, `INSERT`, `UPDATE`, `REFERENCES`.
    pub privilege: String,
    /// WITH GRANT OPTION.
    pub grantable: bool,
}

impl TableDefinition {
    /// `schema.name` as written to users.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Where this table goes in `place`, qualified and quoted.
    pub fn qualified_in(&self, place: &RestorePlace) -> String {
        match place {
            RestorePlace::Staging { schema } => {
                format!("{}.{}", quote_ident(schema), self.quoted_name)
            }
            RestorePlace::Original => self.qualified.clone(),
        }
    }

    /// Rewrite `CREATE INDEX … ON <qualified>` / `CREATE TRIGGER … ON <qualified>` so
    /// that it names the table in `place`.
    pub fn retarget(&self, definition: &str, place: &RestorePlace) -> String {
        let new = self.qualified_in(place);
        for on in [" ON ONLY ", " ON "] {
            let needle = format!("{on}{} ", self.qualified);
            if let Some(at) = definition.find(&needle) {
                return format!(
                    "{}{on}{new} {}",
                    &definition[..at],
                    &definition[at + needle.len()..]
                );
            }
        }
        definition.to_string()
    }
}

/// A named piece of DDL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedDefinition {
    /// Its name.
    pub name: String,
    /// Its definition as the server prints it.
    pub definition: String,
}

/// One privilege.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Role (`PUBLIC` for everyone).
    pub grantee: String,
    /// `SELECT`, `INSERT`, …
    pub privilege: String,
    /// WITH GRANT OPTION.
    pub grantable: bool,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDefinition {
    /// Name.
    pub name: String,
    /// Type as the server prints it.
    pub data_type: String,
    /// Collation, when not the type's default.
    pub collation: Option<String>,
    /// NOT NULL.
    pub not_null: bool,
    /// Default expression (not for columns whose default is their owned sequence).
    pub default: Option<String>,
    /// `always` / `by default` identity.
    pub identity: Option<String>,
    /// Stored generated expression.
    pub generated: Option<String>,
}

/// A sequence owned by a column (serial or identity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedSequence {
    /// Sequence name (schema is the table's).
    pub name: String,
    /// The owning column.
    pub column: String,
    /// It backs an identity column (else a serial default).
    pub identity: bool,
    /// Its integer type.
    pub data_type: String,
    /// `INCREMENT … MINVALUE … MAXVALUE … START … CACHE … [NO] CYCLE`.
    pub options: String,
    /// Last value handed out.
    pub last_value: i64,
    /// Whether `last_value` was handed out already.
    pub is_called: bool,
}

/// What a consistent read of a database found.
#[derive(Debug, Clone)]
pub struct ExportInfo {
    /// Token that other sessions use to join the read (`pg_export_snapshot()`).
    pub token: String,
    /// Server version.
    pub server_version: String,
    /// WAL position.
    pub lsn: Option<String>,
    /// The read's moment.
    pub at: DateTime<Utc>,
    /// The tables, definitions as of that moment.
    pub tables: Vec<TableDefinition>,
    /// Size of each table in pages, to split big ones into parts.
    pub pages: Vec<u64>,
}

/// A range of a table's pages, `[from, to)`; `to: None` runs to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    /// First page.
    pub from: u64,
    /// Page after the last, or the end of the table.
    pub to: Option<u64>,
}

/// Split `pages` into at most `parts` ranges of at least `min_pages` each (one range
/// covering everything for small tables). The last range is open-ended.
pub fn page_ranges(pages: u64, parts: usize, min_pages: u64) -> Vec<Option<PageRange>> {
    let parts = (pages / min_pages.max(1)).clamp(1, parts.max(1) as u64);
    if parts == 1 {
        return vec![None];
    }
    let step = pages.div_ceil(parts);
    (0..parts)
        .map(|i| {
            Some(PageRange {
                from: i * step,
                to: (i + 1 < parts).then_some((i + 1) * step),
            })
        })
        .collect()
}

/// Where restored tables go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestorePlace {
    /// Into a staging schema of the target, to be swapped in (or kept as new tables).
    Staging {
        /// The schema, created by the restore.
        schema: String,
    },
    /// Under their own names (where a swap puts them).
    Original,
}

impl RestorePlace {
    /// The schema a table goes to.
    pub fn schema_for<'a>(&'a self, table: &'a TableDefinition) -> &'a str {
        match self {
            RestorePlace::Staging { schema } => schema,
            RestorePlace::Original => &table.schema,
        }
    }
}

/// What swapping restored tables in did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SwapOutcome {
    /// Schema that now holds the replaced tables.
    pub vault_schema: String,
    /// Foreign keys of other tables re-pointed at the restored ones.
    pub repointed_foreign_keys: Vec<String>,
    /// Foreign keys left NOT VALID because existing rows violate them.
    pub unvalidated_foreign_keys: Vec<String>,
    /// Captured tables whose capture triggers were put on the restored table.
    pub capture_reattached: Vec<String>,
}

/// Streaming tables out of a consistent read and back into new tables; PostgreSQL.
pub trait TableSnapshots {
    /// Start a consistent read of `tables` (all user tables when empty) that parallel
    /// workers can join; it stays open until [`TableSnapshots::end_export`].
    fn begin_export(&mut self, tables: &[String]) -> Result<ExportInfo, EngineError>;
    /// End the read.
    fn end_export(&mut self) -> Result<(), EngineError>;
    /// A new connection for parallel copying.
    fn worker(&mut self) -> Result<Box<dyn SnapshotWorker>, EngineError>;
    /// Definitions of live tables (for checks before a restore).
    fn live_definitions(&mut self, tables: &[String]) -> Result<Vec<TableDefinition>, EngineError>;
    /// Prepare `place` (create the staging schema, dropping one left by a killed run)
    /// and create the empty `tables` there (those loaded in several parts).
    fn prepare_place(
        &mut self,
        place: &RestorePlace,
        tables: &[TableDefinition],
    ) -> Result<(), EngineError>;
    /// Swap the staged tables in for the live ones (if any) in one short transaction;
    /// the live ones move to a vault schema, which is not created when there are none.
    fn swap_in(
        &mut self,
        staging_schema: &str,
        tables: &[TableDefinition],
        vault_schema: &str,
    ) -> Result<SwapOutcome, EngineError>;
    /// Attach the partitions among `tables` in `place` to their parents, once every
    /// table there has its keys and indexes (a partition's indexes then attach to its
    /// parent's). Engines without partitions have none to attach.
    fn attach_partitions(
        &mut self,
        place: &RestorePlace,
        tables: &[TableDefinition],
    ) -> Result<(), EngineError> {
        let _ = (place, tables);
        Ok(())
    }
    /// Drop a staging schema and what is in it.
    fn drop_schema(&mut self, schema: &str) -> Result<(), EngineError>;
    /// Vault schemas of earlier restores, oldest first.
    fn vault_schemas(&mut self) -> Result<Vec<String>, EngineError>;
}

/// One connection of a parallel copy.
pub trait SnapshotWorker: Send {
    /// Stream `table` (or the rows in `pages` of it) out of the read named by `token`
    /// into `sink`, as one complete copy stream.
    fn copy_out(
        &mut self,
        token: &str,
        table: &TableDefinition,
        pages: Option<PageRange>,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), EngineError>;
    /// Load one stream made by `copy_out` into the new `table` in `place`; several
    /// parts may load at once from several workers. With `create`, the table is
    /// created in the same transaction first (so the rows can be loaded frozen); else
    /// [`TableSnapshots::prepare_place`] made it. Returns rows loaded.
    fn load_part(
        &mut self,
        place: &RestorePlace,
        table: &TableDefinition,
        source: &mut dyn Read,
        create: bool,
    ) -> Result<u64, EngineError>;
    /// How many steps follow `table`'s data (see [`SnapshotWorker::finish`]): its keys
    /// first, then one step per index, then the rest.
    fn finish_steps(&self, table: &TableDefinition) -> usize;
    /// After its data: step `step` of building the table's constraints, indexes,
    /// triggers, grants and sequence values, in a transaction of its own. Steps of one
    /// table may run on several workers at once (the server's locks order those that
    /// conflict), so that the indexes of a large table build side by side. Foreign keys
    /// come later.
    fn finish(
        &mut self,
        place: &RestorePlace,
        table: &TableDefinition,
        step: usize,
    ) -> Result<(), EngineError>;
}

/// Always-quoted identifier (safe for any name).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.table` (as the catalog spells it, or a bare name) quoted for SQL.
pub fn quote_qualified(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, table)) => format!("{}.{}", quote_ident(schema), quote_ident(table)),
        None => quote_ident(name),
    }
}

/// A new snapshot id, sorting by time.
pub fn new_snapshot_id(now: DateTime<Utc>) -> String {
    let nanos = now.timestamp_subsec_nanos();
    let noise = blake3::hash(format!("{now:?}{}{nanos}", std::process::id()).as_bytes());
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &noise.to_hex()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let at = DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut m = Manifest {
            format: SNAPSHOT_FORMAT,
            id: new_snapshot_id(at),
            engine: EngineKind::Postgres,
            target: "dev".into(),
            label: "manual".into(),
            created_by: "me".into(),
            host: "h".into(),
            created_at: at,
            data_as_of: at,
            server_version: "15".into(),
            lsn: Some("0/1".into()),
            tables: vec![],
            file: None,
            manifest_hash: String::new(),
        };
        m.seal();
        m
    }

    #[test]
    fn big_tables_split_into_page_ranges_that_cover_everything() {
        assert_eq!(page_ranges(100, 4, 1000), vec![None]);
        let ranges = page_ranges(10_000, 3, 1000);
        assert_eq!(ranges.len(), 3);
        assert_eq!(
            ranges[0],
            Some(PageRange {
                from: 0,
                to: Some(3334)
            })
        );
        assert_eq!(
            ranges[1],
            Some(PageRange {
                from: 3334,
                to: Some(6668)
            })
        );
        assert_eq!(
            ranges[2],
            Some(PageRange {
                from: 6668,
                to: None
            })
        );
        assert_eq!(page_ranges(2500, 8, 1000).len(), 2);
    }

    #[test]
    fn a_sealed_manifest_reads_back() {
        let m = manifest();
        let bytes = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::parse(&bytes).unwrap(), m);
        assert!(m.id.starts_with("20261124T100000Z-"), "{}", m.id);
    }

    #[test]
    fn an_edited_manifest_is_refused() {
        let m = manifest();
        let text = serde_json::to_string(&m)
            .unwrap()
            .replace("manual", "edited");
        let err = Manifest::parse(text.as_bytes()).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn a_newer_format_is_refused_by_name() {
        let m = manifest();
        let text = serde_json::to_string(&m)
            .unwrap()
            .replace("\"format\":1", "\"format\":9");
        let err = Manifest::parse(text.as_bytes()).unwrap_err();
        assert!(err.contains("format 9 is newer"), "{err}");
    }
}

/// A table that a statement writes to, as the statement names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchedTable {
    /// The name as written (`orders`, `public.orders`, `"Odd"`).
    pub name: String,
    /// The statement destroys rows or values of it (DROP TABLE/COLUMN, TRUNCATE,
    /// DELETE, UPDATE, ALTER COLUMN … TYPE).
    pub destructive: bool,
}

/// Words and names of a statement: comments skipped, unquoted words upper-cased,
/// `a.b` and `"Quoted"` names kept whole, punctuation as one-character tokens.
fn name_tokens(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &sql[at..];
        let b = bytes[at];
        if b.is_ascii_whitespace() {
            at += 1;
        } else if rest.starts_with("--") {
            at += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            at += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if b == b'\'' {
            let end = rest[1..].find('\'').map_or(rest.len(), |e| e + 2);
            out.push("'".into());
            at += end;
        } else if b == b'"' || b.is_ascii_alphanumeric() || b == b'_' {
            // A possibly qualified name: parts joined by dots.
            let mut name = String::new();
            loop {
                let rest = &sql[at..];
                if let Some(inner) = rest.strip_prefix('"') {
                    let end = inner.find('"').map_or(rest.len(), |e| e + 2);
                    name.push_str(&rest[..end]);
                    at += end;
                } else {
                    let len = rest
                        .bytes()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$')
                        .count();
                    if len == 0 {
                        break;
                    }
                    name.push_str(&rest[..len].to_ascii_uppercase());
                    at += len;
                }
                if sql[at..].starts_with('.') {
                    name.push('.');
                    at += 1;
                } else {
                    break;
                }
            }
            if name.is_empty() {
                at += 1;
            } else {
                out.push(name);
            }
        } else {
            out.push(rest[..rest.chars().next().map_or(1, char::len_utf8)].to_string());
            at += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// How a statement name reads in SQL: unquoted parts lower-cased back.
fn as_written(token: &str) -> String {
    let mut out = String::new();
    let mut in_quotes = false;
    for c in token.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        out.push(if in_quotes { c } else { c.to_ascii_lowercase() });
    }
    out
}

/// Tables the statements of `scripts` (whole sections of SQL) write to, each once, in
/// the order first seen; destructive when any statement destroys its data.
pub fn tables_written<'a>(scripts: impl IntoIterator<Item = &'a str>) -> Vec<TouchedTable> {
    let mut touched: Vec<TouchedTable> = Vec::new();
    for sql in scripts {
        for span in crate::splitter::split(sql).unwrap_or_default() {
            for table in touched_tables(&sql[span]) {
                match touched.iter_mut().find(|t| t.name == table.name) {
                    Some(seen) => seen.destructive |= table.destructive,
                    None => touched.push(table),
                }
            }
        }
    }
    touched
}

/// Tables an SQL statement writes to, recognized from its leading words. Statements it
/// does not recognize touch nothing (snapshots are a safety net, not a parser).
pub fn touched_tables(sql: &str) -> Vec<TouchedTable> {
    let tokens = name_tokens(sql);
    let word = |i: usize| tokens.get(i).map(String::as_str).unwrap_or("");
    let mut i;
    let skip = |i: &mut usize, words: &[&str]| {
        while words.contains(&word(*i)) {
            *i += 1;
        }
    };
    let list = |mut i: usize, destructive: bool| {
        let mut out = Vec::new();
        loop {
            let name = word(i);
            if name.is_empty() || name.len() == 1 && !name.chars().all(|c| c.is_alphanumeric()) {
                break;
            }
            out.push(TouchedTable {
                name: as_written(name),
                destructive,
            });
            if word(i + 1) != "," {
                break;
            }
            i += 2;
        }
        out
    };
    match (word(0), word(1)) {
        ("DROP", "TABLE") => {
            i = 2;
            skip(&mut i, &["IF", "EXISTS"]);
            list(i, true)
        }
        ("TRUNCATE", _) => {
            i = 1;
            skip(&mut i, &["TABLE", "ONLY"]);
            list(i, true)
        }
        ("DELETE", "FROM") => {
            i = 2;
            skip(&mut i, &["ONLY"]);
            list(i, true).into_iter().take(1).collect()
        }
        ("UPDATE", _) => {
            i = 1;
            skip(&mut i, &["ONLY"]);
            list(i, true).into_iter().take(1).collect()
        }
        ("INSERT", "INTO") => list(2, false).into_iter().take(1).collect(),
        ("ALTER", "TABLE") => {
            i = 2;
            skip(&mut i, &["IF", "EXISTS", "ONLY"]);
            let rest = &tokens[(i + 1).min(tokens.len())..];
            let destructive = rest.windows(2).any(|w| w[0] == "DROP" && w[1] == "COLUMN")
                || rest.iter().any(|t| t == "TYPE")
                || rest.windows(2).any(|w| {
                    w[0] == "DROP"
                        && w[1] != "CONSTRAINT"
                        && w[1] != "DEFAULT"
                        && w[1] != "NOT"
                        && w[1] != "IDENTITY"
                        && w[1] != "EXPRESSION"
                });
            list(i, destructive).into_iter().take(1).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod touched_tests {
    use super::*;

    fn names(sql: &str) -> Vec<(String, bool)> {
        touched_tables(sql)
            .into_iter()
            .map(|t| (t.name, t.destructive))
            .collect()
    }

    #[test]
    fn recognizes_what_destroys_data() {
        assert_eq!(
            names("DROP TABLE IF EXISTS a, public.b CASCADE"),
            vec![("a".into(), true), ("public.b".into(), true)]
        );
        assert_eq!(
            names("truncate table only Orders"),
            vec![("orders".into(), true)]
        );
        assert_eq!(
            names("-- why\nDELETE FROM \"Odd\".t WHERE x = 1"),
            vec![("\"Odd\".t".into(), true)]
        );
        assert_eq!(
            names("UPDATE orders SET a = 1"),
            vec![("orders".into(), true)]
        );
        assert_eq!(
            names("ALTER TABLE orders DROP COLUMN note"),
            vec![("orders".into(), true)]
        );
        assert_eq!(
            names("ALTER TABLE orders ALTER COLUMN n TYPE int USING n::int"),
            vec![("orders".into(), true)]
        );
        assert_eq!(
            names("ALTER TABLE IF EXISTS orders ADD COLUMN note text"),
            vec![("orders".into(), false)]
        );
        assert_eq!(
            names("ALTER TABLE orders DROP CONSTRAINT c"),
            vec![("orders".into(), false)]
        );
        assert_eq!(
            names("INSERT INTO orders (a) VALUES (1)"),
            vec![("orders".into(), false)]
        );
        assert!(names("CREATE TABLE x (a int)").is_empty());
        assert!(names("SELECT 1").is_empty());
    }
}
