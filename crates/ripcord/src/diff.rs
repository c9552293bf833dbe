//! `ripcord diff`: which rows differ between two databases of the same engine, by key.
//!
//! Pass 1 asks each side, in parallel and inside one snapshot each, for the row count
//! and an order-independent hash of every bucket of keys (`hash(key)` masked to
//! [`BUCKETS`] buckets), computed where the data is. Pass 2 fetches only the rows of the
//! buckets whose counts or hashes differ, a few thousand buckets at a time, and
//! compares them value by value as text. Memory follows the differing buckets, not the
//! table.

use ripcord_core::snapshot::{quote_ident, quote_qualified as quoted_table};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use ripcord_core::EngineError;
use ripcord_core::diff::{BUCKETS, BucketSummary, KeyHash, KeyedRow, TableShape};
use serde::Serialize;
use serde_json::Value;

use crate::error::OpError;
use crate::target::Target;

/// Rows (by pass 1's counts) whose keys are fetched per query in pass 2, one scan of
/// the table each: a scattered handful of differences takes one scan, and memory stays
/// bounded however large the table and however much of it differs.
const ROWS_PER_FETCH: i64 = 500_000;

/// What to compare.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Only these tables (default: every table of either side).
    pub tables: Vec<String>,
    /// The key columns (default: the primary key, else a unique NOT NULL index).
    pub key: Option<Vec<String>>,
    /// Rows listed per table (all are counted).
    pub row_limit: usize,
    /// Write the statements that make B equal A.
    pub repair_sql: bool,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        DiffOptions {
            tables: Vec::new(),
            key: None,
            row_limit: 100,
            repair_sql: false,
        }
    }
}

/// One differing row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowDiff {
    /// Its key: column → value as text (`null` for NULL).
    pub key: serde_json::Map<String, Value>,
    /// `added` (in B only), `removed` (in A only) or `changed`.
    pub kind: &'static str,
    /// The columns whose values differ (`changed`).
    pub columns: Vec<String>,
}

/// One table's differences.
#[derive(Debug, Clone, Serialize)]
pub struct TableDiff {
    /// The table.
    pub table: String,
    /// The key the rows were matched by.
    pub key: Vec<String>,
    /// Rows in B, not in A.
    pub added: u64,
    /// Rows in A, not in B.
    pub removed: u64,
    /// Rows in both whose values differ.
    pub changed: u64,
    /// The first differing rows, by key.
    pub rows: Vec<RowDiff>,
    /// Schema differences in words (a table or columns on one side only, other types).
    pub schema: Vec<String>,
    /// Keys found more than once on a side (`--key` that is not unique).
    pub duplicate_keys: u64,
    /// Statements that make B equal A (with `--sql`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repair: Vec<String>,
}

/// The result of a diff.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// Side A (password hidden).
    pub a: String,
    /// Side B.
    pub b: String,
    /// Per table.
    pub tables: Vec<TableDiff>,
    /// Added + removed + changed rows, plus one per schema difference.
    pub total_differences: u64,
    /// Wall time.
    pub duration_ms: u64,
}

fn invalid(reason: String, hint: &str) -> OpError {
    OpError::DiffInput {
        reason,
        hint: hint.to_string(),
    }
}

/// Run `work` on both sides at once, each on its own connection.
fn both<T: Send>(
    a: &mut Target,
    b: &mut Target,
    work: impl Fn(&mut Target) -> Result<T, EngineError> + Sync,
) -> Result<(T, T), OpError> {
    let (left, right) = std::thread::scope(|scope| {
        let left = scope.spawn(|| work(a));
        let right = work(b);
        (left.join().expect("diff worker"), right)
    });
    Ok((left?, right?))
}

fn source(
    target: &mut Target,
) -> Result<Box<dyn ripcord_core::diff::DiffSource + '_>, EngineError> {
    target.engine.diff().ok_or_else(|| EngineError::Invalid {
        reason: "this engine cannot diff tables".into(),
        hint: None,
    })
}

/// Compare the tables of `a` and `b` row by row.
pub fn diff(a: &mut Target, b: &mut Target, options: &DiffOptions) -> Result<DiffReport, OpError> {
    let started = Instant::now();
    if a.engine.kind() != b.engine.kind() {
        return Err(invalid(
            "diff compares PostgreSQL with PostgreSQL and SQLite with SQLite".into(),
            "copy one side next to the other first (e.g. `ripcord snapshot restore --into`)",
        ));
    }
    a.engine.begin_snapshot()?;
    b.engine.begin_snapshot()?;
    let result = diff_in_snapshots(a, b, options);
    let _ = a.engine.rollback();
    let _ = b.engine.rollback();
    let mut report = result?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Which side of a diff a snapshot stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Side A.
    A,
    /// Side B.
    B,
}

/// Compare snapshot `id` of `store` with the live database `live`: the snapshot is
/// restored into a scratch database next to `live` (PostgreSQL) or written out as its
/// database file (SQLite), compared, and dropped. Without `--table`, the snapshot's
/// tables are compared.
pub fn diff_snapshot(
    live: &mut Target,
    store: &crate::snapshot::Store,
    id: &str,
    snapshot_is: Side,
    options: &DiffOptions,
) -> Result<DiffReport, OpError> {
    let manifest = crate::snapshot::manifest(store, id)?;
    if manifest.engine != live.engine.kind() {
        return Err(invalid(
            format!(
                "snapshot {id} is of a {:?} database; the other side is {:?}",
                manifest.engine,
                live.engine.kind()
            ),
            "diff compares databases of one engine",
        ));
    }
    let mut options = options.clone();
    if options.tables.is_empty() {
        options.tables = manifest
            .tables
            .iter()
            .map(|t| t.definition.display_name())
            .collect();
    }
    let label = format!("snapshot {id}");
    let compare = |copy: &mut Target, live: &mut Target| -> Result<DiffReport, OpError> {
        let mut report = match snapshot_is {
            Side::A => diff(copy, live, &options)?,
            Side::B => diff(live, copy, &options)?,
        };
        match snapshot_is {
            Side::A => report.a = label.clone(),
            Side::B => report.b = label.clone(),
        }
        Ok(report)
    };
    if manifest.file.is_some() {
        let dir = tempfile::tempdir().map_err(|e| OpError::Store {
            store: store.uri().to_string(),
            reason: format!("cannot make a temporary directory: {e}"),
        })?;
        let path = dir.path().join("snapshot.db");
        crate::snapshot::write_file_copy(store, id, &path)?;
        let mut copy =
            crate::target::connect(&label, &format!("sqlite://{}", path.display()), dir.path())?;
        return compare(&mut copy, live);
    }
    let url = live.engine.create_scratch()?;
    let result = (|| {
        let mut copy = crate::target::connect(&label, &url, std::path::Path::new("."))?;
        crate::snapshot::restore(
            &mut copy,
            store,
            id,
            &crate::snapshot::RestoreOptions {
                tables: Vec::new(),
                as_new_tables: false,
                into_other_database: true,
                parallel: 2,
                progress: crate::snapshot::no_progress(),
            },
        )?;
        compare(&mut copy, live)
    })();
    let _ = live.engine.drop_scratch(&url);
    result
}

fn diff_in_snapshots(
    a: &mut Target,
    b: &mut Target,
    options: &DiffOptions,
) -> Result<DiffReport, OpError> {
    let names: Vec<String> = if options.tables.is_empty() {
        let (mut left, right) = both(a, b, |t| source(t)?.tables())?;
        for name in right {
            if !left.contains(&name) {
                left.push(name);
            }
        }
        left.sort();
        left
    } else {
        options.tables.clone()
    };
    let mut report = DiffReport {
        a: a.display_url.clone(),
        b: b.display_url.clone(),
        tables: Vec::new(),
        total_differences: 0,
        duration_ms: 0,
    };
    for name in names {
        let (left, right) = both(a, b, |t| source(t)?.shape(&name))?;
        let table = match (&left, &right) {
            (None, None) => {
                return Err(invalid(
                    format!("no table {name} on either side"),
                    "name a table of A or B (`ripcord fingerprint --data-only` lists them)",
                ));
            }
            _ => diff_table(a, b, &name, left, right, options)?,
        };
        report.total_differences +=
            table.added + table.removed + table.changed + table.schema.len() as u64;
        report.tables.push(table);
    }
    Ok(report)
}

fn key_of(
    name: &str,
    left: Option<&TableShape>,
    right: Option<&TableShape>,
    options: &DiffOptions,
) -> Result<Vec<String>, OpError> {
    let key = options
        .key
        .clone()
        .or_else(|| left.and_then(|s| s.key.clone()))
        .or_else(|| right.and_then(|s| s.key.clone()))
        .ok_or_else(|| {
            invalid(
                format!(
                    "table {name} has no primary key and no unique index over NOT NULL columns"
                ),
                "name the columns that identify a row with --key a,b",
            )
        })?;
    for (side, shape) in [("A", left), ("B", right)] {
        let Some(shape) = shape else { continue };
        for column in &key {
            if !shape.columns.iter().any(|(c, _)| c == column) {
                return Err(invalid(
                    format!(
                        "key column {column} is not a column of {} on side {side}",
                        shape.name
                    ),
                    "name existing columns with --key",
                ));
            }
        }
    }
    if let (Some(l), Some(r)) = (left, right) {
        for column in &key {
            let ty = |s: &TableShape| {
                s.columns
                    .iter()
                    .find(|(c, _)| c == column)
                    .map(|(_, t)| t.clone())
            };
            if ty(l) != ty(r) {
                return Err(invalid(
                    format!(
                        "key column {column} of {} is {} on side A but {} on side B",
                        l.name,
                        ty(l).unwrap_or_default(),
                        ty(r).unwrap_or_default()
                    ),
                    "rows can only be matched by keys of the same type",
                ));
            }
        }
    }
    Ok(key)
}

fn diff_table(
    a: &mut Target,
    b: &mut Target,
    name: &str,
    left: Option<TableShape>,
    right: Option<TableShape>,
    options: &DiffOptions,
) -> Result<TableDiff, OpError> {
    let key = key_of(name, left.as_ref(), right.as_ref(), options)?;
    let table = left
        .as_ref()
        .or(right.as_ref())
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let mut schema = Vec::new();
    let columns: Vec<String> = match (&left, &right) {
        (Some(l), Some(r)) => {
            for (column, ty) in &l.columns {
                match r.columns.iter().find(|(c, _)| c == column) {
                    None => schema.push(format!("column {column} is only in A")),
                    Some((_, other)) if other != ty => {
                        schema.push(format!("column {column} is {ty} in A, {other} in B"))
                    }
                    Some(_) => {}
                }
            }
            for (column, _) in &r.columns {
                if !l.columns.iter().any(|(c, _)| c == column) {
                    schema.push(format!("column {column} is only in B"));
                }
            }
            l.columns
                .iter()
                .map(|(c, _)| c.clone())
                .filter(|c| r.columns.iter().any(|(d, _)| d == c))
                .collect()
        }
        (Some(only), None) => {
            schema.push(format!("table {} is only in A", only.name));
            only.columns.iter().map(|(c, _)| c.clone()).collect()
        }
        (None, Some(only)) => {
            schema.push(format!("table {} is only in B", only.name));
            only.columns.iter().map(|(c, _)| c.clone()).collect()
        }
        (None, None) => unreachable!("checked by the caller"),
    };
    let mut duplicate_keys = 0;
    if options.key.is_some() {
        let ((nulls_a, twice_a), (nulls_b, twice_b)) = both(a, b, |t| {
            let exists = source(t)?.shape(&table)?.is_some();
            if exists {
                source(t)?.key_problems(&table, &key)
            } else {
                Ok((0, 0))
            }
        })?;
        duplicate_keys = (twice_a + twice_b) as u64;
        if nulls_a + nulls_b > 0 {
            return Err(invalid(
                format!(
                    "the key ({}) of {table} is NULL in {} rows of A and {} of B",
                    key.join(", "),
                    nulls_a,
                    nulls_b
                ),
                "a key identifies each row: choose columns without NULLs",
            ));
        }
    }
    let present = (left.is_some(), right.is_some());
    let summaries = |t: &mut Target, here: bool| -> Result<Vec<BucketSummary>, EngineError> {
        if here {
            source(t)?.bucket_summaries(&table, &key, &columns)
        } else {
            Ok(Vec::new())
        }
    };
    // Pass 1 on both sides at once.
    let (sum_a, sum_b) = std::thread::scope(|scope| {
        let left = scope.spawn(|| summaries(a, present.0));
        let right = summaries(b, present.1);
        (left.join().expect("diff worker"), right)
    });
    let (sum_a, sum_b) = (sum_a?, sum_b?);
    let by_bucket = |s: Vec<BucketSummary>| -> HashMap<i64, (i64, String)> {
        s.into_iter()
            .map(|b| (b.bucket, (b.rows, b.hash)))
            .collect()
    };
    let (map_a, map_b) = (by_bucket(sum_a), by_bucket(sum_b));
    let mut dirty: Vec<i64> = map_a
        .iter()
        .filter(|(bucket, summary)| map_b.get(bucket) != Some(summary))
        .map(|(bucket, _)| *bucket)
        .chain(map_b.keys().filter(|b| !map_a.contains_key(b)).copied())
        .collect();
    dirty.sort_unstable();
    debug_assert!(dirty.iter().all(|b| (0..i64::from(BUCKETS)).contains(b)));

    let mut out = TableDiff {
        table: table.clone(),
        key: key.clone(),
        added: 0,
        removed: 0,
        changed: 0,
        rows: Vec::new(),
        schema,
        duplicate_keys,
        repair: Vec::new(),
    };
    // Group the dirty buckets so that each fetch brings at most ROWS_PER_FETCH rows.
    let mut chunks: Vec<Vec<i64>> = Vec::new();
    let mut rows_in_chunk = 0;
    for bucket in &dirty {
        let rows = map_a.get(bucket).map_or(0, |s| s.0) + map_b.get(bucket).map_or(0, |s| s.0);
        if chunks.is_empty() || rows_in_chunk + rows > ROWS_PER_FETCH {
            chunks.push(Vec::new());
            rows_in_chunk = 0;
        }
        rows_in_chunk += rows;
        chunks.last_mut().expect("pushed").push(*bucket);
    }
    for chunk in &chunks {
        let chunk = chunk.as_slice();
        // Pass 2: keys and row hashes of the dirty buckets.
        let hashes = |t: &mut Target, here: bool| -> Result<Vec<KeyHash>, EngineError> {
            if here {
                source(t)?.keys_in_buckets(&table, &key, &columns, chunk)
            } else {
                Ok(Vec::new())
            }
        };
        let (hashes_a, hashes_b) = std::thread::scope(|scope| {
            let left = scope.spawn(|| hashes(a, present.0));
            let right = hashes(b, present.1);
            (left.join().expect("diff worker"), right)
        });
        let by_key = |hashes: Vec<KeyHash>, duplicates: &mut u64| {
            let mut out: HashMap<Key, String> = HashMap::with_capacity(hashes.len());
            let mut twice: HashSet<Key> = HashSet::new();
            for h in hashes {
                if out.insert(h.key.clone(), h.hash).is_some() && twice.insert(h.key) {
                    *duplicates += 1;
                }
            }
            out
        };
        // A table's own key cannot repeat; a --key's repeats were counted above.
        let mut repeats = 0;
        let in_a = by_key(hashes_a?, &mut repeats);
        let in_b = by_key(hashes_b?, &mut repeats);
        // Pass 3: whole rows only where presence or hash differ.
        let mut wanted_a: Vec<Key> = Vec::new();
        let mut wanted_b: Vec<Key> = Vec::new();
        let mut added: Vec<Key> = Vec::new();
        for (k, hash) in &in_a {
            match in_b.get(k) {
                None => wanted_a.push(k.clone()),
                Some(other) if other != hash => {
                    wanted_a.push(k.clone());
                    wanted_b.push(k.clone());
                }
                Some(_) => {}
            }
        }
        for k in in_b.keys().filter(|k| !in_a.contains_key(*k)) {
            added.push(k.clone());
        }
        let rows = |t: &mut Target, keys: &[Key]| -> Result<Vec<KeyedRow>, EngineError> {
            if keys.is_empty() {
                Ok(Vec::new())
            } else {
                source(t)?.rows_by_keys(&table, &key, &columns, keys)
            }
        };
        let (rows_a, rows_b) = std::thread::scope(|scope| {
            let left = scope.spawn(|| rows(a, &wanted_a));
            let right = rows(b, &wanted_b);
            (left.join().expect("diff worker"), right)
        });
        let mut rows_b = rows_b?;
        // Rows only in B travel as their keys alone.
        rows_b.extend(added.into_iter().map(|key| KeyedRow {
            key,
            values: Vec::new(),
        }));
        compare_rows(&mut out, &columns, rows_a?, rows_b, options);
    }
    out.rows.sort_by(|x, y| compare_keys(&x.key, &y.key));
    Ok(out)
}

type Key = Vec<Option<String>>;

/// Keys in a reader's order: numbers as numbers, other values as text, NULL first.
fn compare_keys(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
) -> std::cmp::Ordering {
    for (x, y) in a.values().zip(b.values()) {
        let ordering = match (x.as_str(), y.as_str()) {
            (Some(x), Some(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(p), Ok(q)) => p.partial_cmp(&q).unwrap_or(std::cmp::Ordering::Equal),
                _ => x.cmp(y),
            },
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        if ordering != std::cmp::Ordering::Equal {
            return ordering;
        }
    }
    std::cmp::Ordering::Equal
}

fn index(rows: Vec<KeyedRow>, duplicates: &mut u64) -> BTreeMap<Key, Vec<Option<String>>> {
    let mut out = BTreeMap::new();
    let mut seen_twice: HashSet<Key> = HashSet::new();
    for row in rows {
        if out.insert(row.key.clone(), row.values).is_some() && seen_twice.insert(row.key) {
            *duplicates += 1;
        }
    }
    out
}

fn compare_rows(
    out: &mut TableDiff,
    columns: &[String],
    rows_a: Vec<KeyedRow>,
    rows_b: Vec<KeyedRow>,
    options: &DiffOptions,
) {
    // Duplicates were counted from the keys of pass 2.
    let mut counted_already = 0;
    let a = index(rows_a, &mut counted_already);
    let b = index(rows_b, &mut counted_already);
    let key_json = |key: &Key| -> serde_json::Map<String, Value> {
        out.key
            .iter()
            .cloned()
            .zip(
                key.iter()
                    .map(|v| v.clone().map_or(Value::Null, Value::String)),
            )
            .collect()
    };
    let mut found: Vec<(RowDiff, Option<String>)> = Vec::new();
    for (key, values) in &a {
        match b.get(key) {
            None => {
                out.removed += 1;
                found.push((
                    RowDiff {
                        key: key_json(key),
                        kind: "removed",
                        columns: Vec::new(),
                    },
                    options
                        .repair_sql
                        .then(|| insert(&out.table, columns, values)),
                ));
            }
            Some(other) if other != values => {
                out.changed += 1;
                let changed: Vec<usize> = (0..columns.len())
                    .filter(|i| values[*i] != other[*i])
                    .collect();
                found.push((
                    RowDiff {
                        key: key_json(key),
                        kind: "changed",
                        columns: changed.iter().map(|i| columns[*i].clone()).collect(),
                    },
                    options
                        .repair_sql
                        .then(|| update(&out.table, columns, &out.key, key, values, &changed)),
                ));
            }
            Some(_) => {}
        }
    }
    for key in b.keys().filter(|k| !a.contains_key(*k)) {
        out.added += 1;
        found.push((
            RowDiff {
                key: key_json(key),
                kind: "added",
                columns: Vec::new(),
            },
            options
                .repair_sql
                .then(|| delete(&out.table, &out.key, key)),
        ));
    }
    for (row, repair) in found {
        if out.rows.len() < options.row_limit {
            out.rows.push(row);
        }
        out.repair.extend(repair);
    }
}

fn literal(value: &Option<String>) -> String {
    match value {
        Some(text) => format!("'{}'", text.replace('\'', "''")),
        None => "NULL".into(),
    }
}

fn condition(key: &[String], values: &Key) -> String {
    key.iter()
        .zip(values)
        .map(|(k, v)| format!("{} = {}", quote_ident(k), literal(v)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn insert(table: &str, columns: &[String], values: &[Option<String>]) -> String {
    format!(
        "INSERT INTO {} ({}) VALUES ({});",
        quoted_table(table),
        columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        values.iter().map(literal).collect::<Vec<_>>().join(", ")
    )
}

fn update(
    table: &str,
    columns: &[String],
    key: &[String],
    key_values: &Key,
    values: &[Option<String>],
    changed: &[usize],
) -> String {
    format!(
        "UPDATE {} SET {} WHERE {};",
        quoted_table(table),
        changed
            .iter()
            .map(|i| format!("{} = {}", quote_ident(&columns[*i]), literal(&values[*i])))
            .collect::<Vec<_>>()
            .join(", "),
        condition(key, key_values)
    )
}

fn delete(table: &str, key: &[String], key_values: &Key) -> String {
    format!(
        "DELETE FROM {} WHERE {};",
        quoted_table(table),
        condition(key, key_values)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &[&str], values: &[Option<&str>]) -> KeyedRow {
        KeyedRow {
            key: key.iter().map(|k| Some(k.to_string())).collect(),
            values: values.iter().map(|v| v.map(String::from)).collect(),
        }
    }

    fn empty(table: &str) -> TableDiff {
        TableDiff {
            table: table.into(),
            key: vec!["id".into()],
            added: 0,
            removed: 0,
            changed: 0,
            rows: Vec::new(),
            schema: Vec::new(),
            duplicate_keys: 0,
            repair: Vec::new(),
        }
    }

    #[test]
    fn rows_are_added_removed_or_changed_with_their_columns() {
        let mut out = empty("public.t");
        let columns = vec!["id".to_string(), "v".to_string(), "w".to_string()];
        let options = DiffOptions {
            repair_sql: true,
            ..Default::default()
        };
        compare_rows(
            &mut out,
            &columns,
            vec![
                row(&["1"], &[Some("1"), Some("a"), None]),
                row(&["2"], &[Some("2"), Some("b"), Some("")]),
                row(&["3"], &[Some("3"), Some("c"), Some("x")]),
            ],
            vec![
                row(&["2"], &[Some("2"), Some("b"), None]),
                row(&["3"], &[Some("3"), Some("c"), Some("x")]),
                row(&["4"], &[Some("4"), Some("it's"), None]),
            ],
            &options,
        );
        assert_eq!((out.added, out.removed, out.changed), (1, 1, 1));
        let changed = out.rows.iter().find(|r| r.kind == "changed").unwrap();
        assert_eq!(changed.columns, vec!["w"]);
        assert_eq!(
            out.repair,
            vec![
                r#"INSERT INTO "public"."t" ("id", "v", "w") VALUES ('1', 'a', NULL);"#,
                r#"UPDATE "public"."t" SET "w" = '' WHERE "id" = '2';"#,
                r#"DELETE FROM "public"."t" WHERE "id" = '4';"#,
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_not_crashed_on() {
        let mut out = empty("t");
        compare_rows(
            &mut out,
            &["id".into()],
            vec![row(&["1"], &[Some("1")]), row(&["1"], &[Some("1")])],
            vec![],
            &DiffOptions::default(),
        );
        assert_eq!(out.removed, 1);
    }
}
