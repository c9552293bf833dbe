//! What checks need from SQLite: a query's rows as JSON, column distributions, and the
//! baselines table of the ledger.

use ripcord_core::snapshot::quote_ident;
use ripcord_core::splitter::as_subquery;
use ripcord_core::{Baseline, Distribution, EngineError, QueryRows};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::{map_error, parse_time};

/// Ledger version 5: saved check baselines, one row per name and version.
pub const LEDGER_STEP: &str = r#"
CREATE TABLE ripcord_check_baselines (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    measures   TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
"#;

fn json(value: ValueRef<'_>) -> serde_json::Value {
    match value {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(b) => format!("<{} bytes>", b.len()).into(),
    }
}

fn number(value: ValueRef<'_>) -> Option<f64> {
    match value {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn query_rows(
    conn: &mut Connection,
    sql: &str,
    max_rows: usize,
) -> Result<QueryRows, EngineError> {
    let mut statement = conn.prepare(as_subquery(sql)).map_err(map_error)?;
    let columns: Vec<String> = statement
        .column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let width = columns.len();
    let mut rows = statement.query([]).map_err(map_error)?;
    let mut out = QueryRows {
        columns,
        ..QueryRows::default()
    };
    while let Some(row) = rows.next().map_err(map_error)? {
        out.total += 1;
        if out.rows.len() < max_rows {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(json(row.get_ref(i).map_err(map_error)?));
            }
            out.rows.push(values);
        }
    }
    Ok(out)
}

pub(crate) fn distributions(
    conn: &mut Connection,
    sql: &str,
    columns: &[String],
) -> Result<Vec<Distribution>, EngineError> {
    let sql = as_subquery(sql);
    let columns: Vec<String> = if columns.is_empty() {
        let statement = conn.prepare(sql).map_err(map_error)?;
        statement
            .column_names()
            .first()
            .map(|c| c.to_string())
            .into_iter()
            .collect()
    } else {
        columns.to_vec()
    };
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    // Counts of every column in one scan; SQLite has no percentile aggregate, so each
    // quantile is one ordered read.
    let mut parts = vec!["count(*)".to_string()];
    for column in &columns {
        let c = format!("q.{}", quote_ident(column));
        parts.push(format!("count({c})"));
        parts.push(format!("count(DISTINCT {c})"));
    }
    let counts: Vec<i64> = conn
        .query_row(
            &format!("SELECT {} FROM ({sql}) q", parts.join(", ")),
            [],
            |row| (0..parts.len()).map(|i| row.get(i)).collect(),
        )
        .map_err(map_error)?;
    let rows = counts[0] as u64;
    let mut out = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        let values = counts[1 + i * 2] as u64;
        // percentile_disc: the value at position ceil(q * n), counting from 1.
        let quantile = |conn: &mut Connection, q: f64| -> Result<Option<f64>, EngineError> {
            if values == 0 {
                return Ok(None);
            }
            let offset = ((q * values as f64).ceil() as i64 - 1).max(0);
            let c = quote_ident(column);
            conn.query_row(
                &format!("SELECT q.{c} FROM ({sql}) q WHERE q.{c} IS NOT NULL ORDER BY q.{c} LIMIT 1 OFFSET {offset}"),
                [],
                |row| Ok(number(row.get_ref(0)?)),
            )
            .map_err(map_error)
        };
        out.push(Distribution {
            column: column.clone(),
            rows,
            nulls: rows - values,
            distinct: counts[2 + i * 2] as u64,
            p50: quantile(conn, 0.5)?,
            p95: quantile(conn, 0.95)?,
        });
    }
    Ok(out)
}

pub(crate) fn save_baseline(conn: &mut Connection, baseline: &Baseline) -> Result<(), EngineError> {
    conn.execute(
        "INSERT INTO ripcord_check_baselines (name, version, created_at, created_by, measures)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![
            baseline.name,
            baseline.version,
            baseline.created_at.to_rfc3339(),
            baseline.created_by,
            baseline.measures.to_string()
        ],
    )
    .map_err(map_error)?;
    Ok(())
}

pub(crate) fn baselines(conn: &mut Connection) -> Result<Vec<Baseline>, EngineError> {
    let mut statement = conn
        .prepare(
            "SELECT name, version, created_at, created_by, measures FROM ripcord_check_baselines
             ORDER BY created_at, name, version",
        )
        .map_err(map_error)?;
    let raw: Vec<(String, i64, String, String, String)> = statement
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(map_error)?
        .collect::<Result<_, _>>()
        .map_err(map_error)?;
    raw.into_iter()
        .map(|(name, version, at, by, measures)| {
            Ok(Baseline {
                measures: serde_json::from_str(&measures).map_err(|_| EngineError::Ledger {
                    reason: format!("baseline `{name}` holds unreadable measures"),
                })?,
                name,
                version,
                created_at: parse_time(&at)?,
                created_by: by,
            })
        })
        .collect()
}
