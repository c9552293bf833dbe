//! Table diffs on PostgreSQL: bucket hashes computed by the server in one scan per
//! table, and the rows of the buckets that differ as text.
//!
//! A row's hash is `hash_record_extended` over its columns, where columns whose type's
//! hash forgets what its text shows (`numeric` scale, `-0` of floats) or that has no
//! extended hash (json, point, …) are hashed by their text form: two rows hash alike
//! only when every value reads alike.

use postgres::Client;
use ripcord_core::EngineError;
use ripcord_core::diff::{BUCKETS, BucketSummary, DiffSource, KeyHash, KeyedRow, TableShape};
use ripcord_core::snapshot::{quote_ident, quote_qualified as quoted_table};

use crate::sql::map_error;

pub(crate) struct PgDiff<'a> {
    pub(crate) client: &'a mut Client,
}

/// A 64-bit hash of one column of `t`, seeded by its position, that tells apart
/// exactly the values whose text differs: the type's own extended hash where it does
/// (integers, text, uuid, dates and times), plus the scale for `numeric` (whose hash
/// forgets it), and the text form for everything else (floats, whose hash forgets `-0`;
/// json and other types without a hash).
fn column_hash(column: &str, ty: &str, seed: usize) -> String {
    let c = format!("t.{}", quote_ident(column));
    let base = ty.split('(').next().unwrap_or(ty).trim();
    let s = seed as i64 * 2 + 1;
    let hash = match base {
        "smallint" => format!("hashint2extended({c}, {s})"),
        "integer" => format!("hashint4extended({c}, {s})"),
        "bigint" => format!("hashint8extended({c}, {s})"),
        "text" | "character varying" => format!("hashtextextended({c}::text, {s})"),
        "uuid" => format!("uuid_hash_extended({c}, {s})"),
        "boolean" => format!("hashint4extended({c}::int, {s})"),
        // Midnight of the date (infinite dates too).
        "date" => format!("timestamp_hash_extended({c}::timestamp, {s})"),
        "timestamp without time zone" => format!("timestamp_hash_extended({c}, {s})"),
        // The distance from the epoch: independent of the session's time zone, and
        // several times cheaper than `AT TIME ZONE`; infinities by their text.
        "timestamp with time zone" => format!(
            "CASE WHEN isfinite({c}) THEN interval_hash_extended({c} - timestamptz 'epoch', {s}) \
             ELSE hashtextextended({c}::text, {s}) END"
        ),
        "numeric" => format!(
            "(hash_numeric_extended({c}, {s}) # hashint4extended(scale({c}), {}))",
            s + 1
        ),
        _ => format!("hashtextextended({c}::text, {s})"),
    };
    // NULL gets its own value per position.
    format!("coalesce({hash}, {})", -s)
}

impl PgDiff<'_> {
    /// Column types of `table` (as SQL would name it) by name.
    fn types(&mut self, table: &str) -> Result<Vec<(String, String)>, EngineError> {
        let rows = self
            .client
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&table],
            )
            .map_err(map_error)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// A row's hash over `columns`: the columns' hashes combined, then mixed once
    /// more, so that values swapped between rows of a bucket do not cancel out.
    /// `table` is the catalog's `schema.table`.
    fn row_hash(&mut self, table: &str, columns: &[String]) -> Result<String, EngineError> {
        let types = self.types(&quoted_table(table))?;
        let parts: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(position, c)| {
                let ty = types
                    .iter()
                    .find(|(name, _)| name == c)
                    .map_or("unknown", |(_, ty)| ty.as_str());
                column_hash(c, ty, position)
            })
            .collect();
        Ok(format!("hashint8extended({}, 0)", parts.join(" # ")))
    }

    fn bucket_of(&mut self, table: &str, key: &[String]) -> Result<String, EngineError> {
        Ok(format!(
            "({} & {})",
            self.row_hash(table, key)?,
            BUCKETS - 1
        ))
    }
}

fn texts(columns: &[String]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| format!("t.{}::text", quote_ident(c)))
        .collect();
    format!("ARRAY[{}]::text[]", parts.join(", "))
}

impl DiffSource for PgDiff<'_> {
    fn tables(&mut self) -> Result<Vec<String>, EngineError> {
        let rows = self
            .client
            .query(crate::fingerprint::TABLES_QUERY, &[])
            .map_err(map_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn shape(&mut self, table: &str) -> Result<Option<TableShape>, EngineError> {
        let found = self
            .client
            .query(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'm', 'f')",
                &[&table],
            )
            .map_err(map_error)?;
        let Some(name) = found.first().map(|r| r.get::<_, String>(0)) else {
            return Ok(None);
        };
        let columns = self.types(table)?;
        // The primary key, else the first unique index over NOT NULL plain columns.
        let key: Option<Vec<String>> = self
            .client
            .query(
                "SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM pg_index i
                 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 JOIN pg_class ic ON ic.oid = i.indexrelid
                 WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL
                   AND i.indexprs IS NULL
                 GROUP BY i.indexrelid, i.indisprimary, ic.relname
                 HAVING bool_and(a.attnotnull)
                 ORDER BY i.indisprimary DESC, ic.relname
                 LIMIT 1",
                &[&table],
            )
            .map_err(map_error)?
            .first()
            .map(|r| r.get(0));
        Ok(Some(TableShape { name, columns, key }))
    }

    fn key_problems(&mut self, table: &str, key: &[String]) -> Result<(i64, i64), EngineError> {
        let columns: Vec<String> = key
            .iter()
            .map(|k| format!("t.{}", quote_ident(k)))
            .collect();
        let nulls: Vec<String> = columns.iter().map(|c| format!("{c} IS NULL")).collect();
        let row = self
            .client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {table_sql} t WHERE {nulls}),
                            (SELECT count(*) FROM (SELECT 1 FROM {table_sql} t GROUP BY {columns} HAVING count(*) > 1) d)",
                    table_sql = quoted_table(table),
                    nulls = nulls.join(" OR "),
                    columns = columns.join(", "),
                ),
                &[],
            )
            .map_err(map_error)?;
        Ok((row.get(0), row.get(1)))
    }

    fn bucket_summaries(
        &mut self,
        table: &str,
        key: &[String],
        columns: &[String],
    ) -> Result<Vec<BucketSummary>, EngineError> {
        let bucket = self.bucket_of(table, key)?;
        let hash = self.row_hash(table, columns)?;
        // bit_xor (PostgreSQL 14+) keeps the aggregate an integer, several times faster
        // than a numeric sum; keys are unique, so rows cannot cancel out.
        let version: i32 = self
            .client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .map_err(map_error)?
            .get(0);
        let combine = if version >= 140_000 { "bit_xor" } else { "sum" };
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {bucket} AS b, count(*), {combine}({hash})::text FROM {} t GROUP BY 1",
                    quoted_table(table)
                ),
                &[],
            )
            .map_err(map_error)?;
        Ok(rows
            .iter()
            .map(|r| BucketSummary {
                bucket: r.get(0),
                rows: r.get(1),
                hash: r.get(2),
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
        let bucket = self.bucket_of(table, key)?;
        let hash = self.row_hash(table, columns)?;
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {}, ({hash})::text FROM {} t WHERE {bucket} = ANY($1::bigint[])",
                    texts(key),
                    quoted_table(table)
                ),
                &[&buckets],
            )
            .map_err(map_error)?;
        Ok(rows
            .iter()
            .map(|r| KeyHash {
                key: r.get(0),
                hash: r.get(1),
            })
            .collect())
    }

    fn rows_by_keys(
        &mut self,
        table: &str,
        key: &[String],
        columns: &[String],
        keys: &[Vec<Option<String>>],
    ) -> Result<Vec<KeyedRow>, EngineError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Typed literals, so that the key's index finds each row.
        let types = self.types(&quoted_table(table))?;
        let key_types: Vec<String> = key
            .iter()
            .map(|k| {
                types
                    .iter()
                    .find(|(name, _)| name == k)
                    .map_or("text".to_string(), |(_, ty)| ty.clone())
            })
            .collect();
        let columns_of_key: Vec<String> = key
            .iter()
            .map(|k| format!("t.{}", quote_ident(k)))
            .collect();
        let mut out = Vec::new();
        for chunk in keys.chunks(1000) {
            let tuples: Vec<String> = chunk
                .iter()
                .map(|values| {
                    let parts: Vec<String> = values
                        .iter()
                        .zip(&key_types)
                        .map(|(value, ty)| match value {
                            Some(text) => format!("{}::{ty}", crate::sql::literal(text)),
                            None => format!("NULL::{ty}"),
                        })
                        .collect();
                    format!("({})", parts.join(", "))
                })
                .collect();
            let rows = self
                .client
                .query(
                    &format!(
                        "SELECT {}, {} FROM {} t WHERE ({}) IN ({})",
                        texts(key),
                        texts(columns),
                        quoted_table(table),
                        columns_of_key.join(", "),
                        tuples.join(", ")
                    ),
                    &[],
                )
                .map_err(map_error)?;
            out.extend(rows.iter().map(|r| KeyedRow {
                key: r.get(0),
                values: r.get(1),
            }));
        }
        Ok(out)
    }
}
