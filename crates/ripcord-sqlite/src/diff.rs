//! Table diffs on SQLite: SQLite runs in this process, so buckets and hashes are
//! computed here while the rows are read (blake3 over each value's text form).
//!
//! Values compare by their text form: an integer and a real differ (`1` vs `1.0`), as do
//! NULL and `''`; an integer and a text of the same digits read alike.

use ripcord_core::EngineError;
use ripcord_core::diff::{BUCKETS, BucketSummary, DiffSource, KeyHash, KeyedRow, TableShape};
use ripcord_core::snapshot::quote_ident;
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::map_error;

pub(crate) struct SqliteDiff<'a> {
    pub(crate) conn: &'a mut Connection,
}

fn text(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(format!("{f:?}")),
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Some(
            std::iter::once("\\x".to_string())
                .chain(b.iter().map(|byte| format!("{byte:02x}")))
                .collect(),
        ),
    }
}

/// A 64-bit hash of text values (NULL distinct from every text).
fn hash(values: &[Option<String>]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    for value in values {
        ripcord_core::checksum::hash_field(&mut hasher, value.as_deref());
    }
    let bytes = hasher.finalize();
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"))
}

impl SqliteDiff<'_> {
    /// Visit every row of `table` as `(key texts, column texts)`.
    fn each_row(
        &mut self,
        table: &str,
        key: &[String],
        columns: &[String],
        mut visit: impl FnMut(Vec<Option<String>>, Vec<Option<String>>),
    ) -> Result<(), EngineError> {
        let names: Vec<String> = key.iter().chain(columns).map(|c| quote_ident(c)).collect();
        let mut statement = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM {}",
                names.join(", "),
                quote_ident(table)
            ))
            .map_err(map_error)?;
        let mut rows = statement.query([]).map_err(map_error)?;
        while let Some(row) = rows.next().map_err(map_error)? {
            let mut values = Vec::with_capacity(names.len());
            for i in 0..names.len() {
                values.push(text(row.get_ref(i).map_err(map_error)?));
            }
            let rest = values.split_off(key.len());
            visit(values, rest);
        }
        Ok(())
    }
}

fn bucket(key: &[Option<String>]) -> i64 {
    (hash(key) & u64::from(BUCKETS - 1)) as i64
}

impl DiffSource for SqliteDiff<'_> {
    fn tables(&mut self) -> Result<Vec<String>, EngineError> {
        crate::user_tables(self.conn)
    }

    fn shape(&mut self, table: &str) -> Result<Option<TableShape>, EngineError> {
        // `main.t` is `t`: SQLite's own name for the database's schema.
        let table = table.strip_prefix("main.").unwrap_or(table);
        let name = ripcord_core::vault::identifier_value(table);
        let columns: Vec<(String, String, bool, i64)> = {
            let mut statement = self
                .conn
                .prepare(
                    "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid",
                )
                .map_err(map_error)?;
            statement
                .query_map([&name], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(map_error)?
                .collect::<Result<_, _>>()
                .map_err(map_error)?
        };
        if columns.is_empty() {
            return Ok(None);
        }
        let mut primary: Vec<(i64, String)> = columns
            .iter()
            .filter(|c| c.3 > 0)
            .map(|c| (c.3, c.0.clone()))
            .collect();
        primary.sort();
        let mut key = (!primary.is_empty()).then(|| primary.into_iter().map(|(_, c)| c).collect());
        if key.is_none() {
            let indexes: Vec<String> = {
                let mut statement = self
                    .conn
                    .prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\" AND partial = 0 ORDER BY name")
                    .map_err(map_error)?;
                statement
                    .query_map([&name], |r| r.get(0))
                    .map_err(map_error)?
                    .collect::<Result<_, _>>()
                    .map_err(map_error)?
            };
            for index in indexes {
                let mut statement = self
                    .conn
                    .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                    .map_err(map_error)?;
                let parts: Vec<Option<String>> = statement
                    .query_map([&index], |r| r.get(0))
                    .map_err(map_error)?
                    .collect::<Result<_, _>>()
                    .map_err(map_error)?;
                let not_null = parts.iter().all(|p| {
                    p.as_ref()
                        .is_some_and(|p| columns.iter().any(|c| c.0 == *p && c.2))
                });
                if not_null && !parts.is_empty() {
                    key = Some(parts.into_iter().flatten().collect());
                    break;
                }
            }
        }
        Ok(Some(TableShape {
            name,
            columns: columns.into_iter().map(|c| (c.0, c.1)).collect(),
            key,
        }))
    }

    fn key_problems(&mut self, table: &str, key: &[String]) -> Result<(i64, i64), EngineError> {
        let columns: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
        let nulls: Vec<String> = columns.iter().map(|c| format!("{c} IS NULL")).collect();
        let table = quote_ident(table);
        self.conn
            .query_row(
                &format!(
                    "SELECT (SELECT count(*) FROM {table} WHERE {}),
                            (SELECT count(*) FROM (SELECT 1 FROM {table} GROUP BY {} HAVING count(*) > 1))",
                    nulls.join(" OR "),
                    columns.join(", ")
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(map_error)
    }

    fn bucket_summaries(
        &mut self,
        table: &str,
        key: &[String],
        columns: &[String],
    ) -> Result<Vec<BucketSummary>, EngineError> {
        let mut buckets: std::collections::BTreeMap<i64, (i64, u128)> = Default::default();
        self.each_row(table, key, columns, |key, values| {
            let entry = buckets.entry(bucket(&key)).or_default();
            entry.0 += 1;
            entry.1 = entry.1.wrapping_add(u128::from(hash(&values)));
        })?;
        Ok(buckets
            .into_iter()
            .map(|(bucket, (rows, sum))| BucketSummary {
                bucket,
                rows,
                hash: sum.to_string(),
            })
            .collect())
    }

    fn keys_in_buckets(
        &mut self,
        table: &str,
        key: &[String],
        columns: &[String],
        buckets: &[i64],
    ) -> Result<Vec<KeyHash>, EngineError> {
        let wanted: std::collections::HashSet<i64> = buckets.iter().copied().collect();
        let mut out = Vec::new();
        self.each_row(table, key, columns, |key, values| {
            if wanted.contains(&bucket(&key)) {
                out.push(KeyHash {
                    key,
                    hash: hash(&values).to_string(),
                });
            }
        })?;
        Ok(out)
    }

    fn rows_by_keys(
        &mut self,
        table: &str,
        key: &[String],
        columns: &[String],
        keys: &[Vec<Option<String>>],
    ) -> Result<Vec<KeyedRow>, EngineError> {
        let wanted: std::collections::HashSet<&Vec<Option<String>>> = keys.iter().collect();
        let mut out = Vec::new();
        self.each_row(table, key, columns, |key, values| {
            if wanted.contains(&key) {
                out.push(KeyedRow { key, values });
            }
        })?;
        Ok(out)
    }
}
