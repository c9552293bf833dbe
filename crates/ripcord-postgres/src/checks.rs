//! What checks need from PostgreSQL: a query's rows as JSON, column distributions in
//! one scan, per-table hashes of named tables, and the baselines table of the ledger.

use chrono::{DateTime, Utc};
use postgres::Client;
use ripcord_core::snapshot::quote_ident;
use ripcord_core::splitter::as_subquery;
use ripcord_core::{Baseline, Distribution, EngineError, QueryRows};

use crate::sql::map_error;

/// Ledger version 5: saved check baselines, one row per name and version.
pub const LEDGER_STEP: &str = r#"
CREATE TABLE ripcord.check_baselines (
    name       text NOT NULL,
    version    integer NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    measures   text NOT NULL,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE ripcord.check_baselines IS 'ripcord check baselines: what each check measured, saved by name. `ripcord check --list-baselines`.';
"#;

pub(crate) fn query_rows(
    client: &mut Client,
    sql: &str,
    max_rows: usize,
) -> Result<QueryRows, EngineError> {
    // Values in column order: json_each keeps a json object's order (jsonb would not).
    let wrapped = format!(
        "SELECT count(*) OVER (), \
                (SELECT json_agg(e.key) FROM json_each(row_to_json(q)) e)::text, \
                (SELECT json_agg(e.value) FROM json_each(row_to_json(q)) e)::text \
         FROM ({}\n) q LIMIT {}",
        as_subquery(sql),
        max_rows.max(1)
    );
    let rows = client.query(&wrapped, &[]).map_err(map_error)?;
    let mut out = QueryRows::default();
    for (index, row) in rows.iter().enumerate() {
        out.total = row.get::<_, i64>(0) as u64;
        if index == 0 {
            let names: Option<String> = row.get(1);
            out.columns = names
                .and_then(|n| serde_json::from_str(&n).ok())
                .unwrap_or_default();
        }
        if index < max_rows {
            let values: Option<String> = row.get(2);
            out.rows.push(
                values
                    .and_then(|v| serde_json::from_str(&v).ok())
                    .unwrap_or_default(),
            );
        }
    }
    Ok(out)
}

pub(crate) fn distributions(
    client: &mut Client,
    sql: &str,
    columns: &[String],
) -> Result<Vec<Distribution>, EngineError> {
    let columns: Vec<String> = if columns.is_empty() {
        first_column_name(client, sql)?.into_iter().collect()
    } else {
        columns.to_vec()
    };
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    // Every column's aggregates in one scan of the query.
    let mut parts = vec!["count(*)".to_string()];
    for column in &columns {
        let c = format!("q.{}", quote_ident(column));
        parts.push(format!("count({c})"));
        parts.push(format!("count(DISTINCT {c})"));
        // As text: a column of any sortable type has quantiles; only numbers compare.
        parts.push(format!(
            "(percentile_disc(0.5) WITHIN GROUP (ORDER BY {c}))::text"
        ));
        parts.push(format!(
            "(percentile_disc(0.95) WITHIN GROUP (ORDER BY {c}))::text"
        ));
    }
    let row = client
        .query_one(
            &format!(
                "SELECT {} FROM ({}\n) q",
                parts.join(", "),
                as_subquery(sql)
            ),
            &[],
        )
        .map_err(map_error)?;
    let rows = row.get::<_, i64>(0) as u64;
    Ok(columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let at = 1 + i * 4;
            let counted = row.get::<_, i64>(at) as u64;
            Distribution {
                column: column.clone(),
                rows,
                nulls: rows - counted,
                distinct: row.get::<_, i64>(at + 1) as u64,
                p50: number(row.get(at + 2)),
                p95: number(row.get(at + 3)),
            }
        })
        .collect())
}

fn number(text: Option<String>) -> Option<f64> {
    text?.trim().parse().ok()
}

/// The name of the query's first column (the statement is prepared, not run).
fn first_column_name(client: &mut Client, sql: &str) -> Result<Option<String>, EngineError> {
    let statement = client
        .prepare(&format!("SELECT * FROM ({}\n) q", as_subquery(sql)))
        .map_err(map_error)?;
    Ok(statement.columns().first().map(|c| c.name().to_string()))
}

/// Tables named in `tables` (resolved as SQL resolves them) and their partitions, as
/// qualified names.
pub(crate) fn tables_named(
    client: &mut Client,
    tables: &[String],
) -> Result<Vec<String>, EngineError> {
    let rows = client
        .query(
            "SELECT DISTINCT n.nspname || '.' || c.relname
             FROM unnest($1::text[]) AS wanted(name)
             JOIN pg_class c ON c.oid = to_regclass(wanted.name)
               OR c.oid IN (SELECT relid FROM pg_partition_tree(to_regclass(wanted.name)))
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'm')",
            &[&tables],
        )
        .map_err(map_error)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(crate) fn save_baseline(client: &mut Client, baseline: &Baseline) -> Result<(), EngineError> {
    client
        .execute(
            "INSERT INTO ripcord.check_baselines (name, version, created_at, created_by, measures)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &baseline.name,
                &(baseline.version as i32),
                &baseline.created_at,
                &baseline.created_by,
                &baseline.measures.to_string(),
            ],
        )
        .map_err(map_error)?;
    Ok(())
}

pub(crate) fn baselines(client: &mut Client) -> Result<Vec<Baseline>, EngineError> {
    let rows = client
        .query(
            "SELECT name, version, created_at, created_by, measures FROM ripcord.check_baselines
             ORDER BY created_at, name, version",
            &[],
        )
        .map_err(map_error)?;
    rows.iter()
        .map(|r| {
            let measures: String = r.get(4);
            Ok(Baseline {
                name: r.get(0),
                version: i64::from(r.get::<_, i32>(1)),
                created_at: r.get::<_, DateTime<Utc>>(2),
                created_by: r.get(3),
                measures: serde_json::from_str(&measures).map_err(|_| EngineError::Ledger {
                    reason: format!(
                        "baseline `{}` holds unreadable measures",
                        r.get::<_, String>(0)
                    ),
                })?,
            })
        })
        .collect()
}
