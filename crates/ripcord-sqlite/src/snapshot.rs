//! Restoring SQLite tables from a snapshot's copy of the database file: the copy is
//! attached, and in one transaction each table's current rows move to a vault table
//! and the snapshot's rows take their place (tables missing now are re-created with
//! their indexes and triggers). The ledger and audit tables are never touched.

use ripcord_core::EngineError;
use rusqlite::{Connection, OptionalExtension};

use crate::map_error;

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn restore_from_copy(
    conn: &mut Connection,
    copy: &str,
    tables: &[String],
    vault_suffix: &str,
) -> Result<Vec<String>, EngineError> {
    conn.execute("ATTACH DATABASE ?1 AS ripcord_snap", [copy])
        .map_err(map_error)?;
    let result = replace_rows(conn, tables, vault_suffix);
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let detached = conn
        .execute_batch("DETACH DATABASE ripcord_snap")
        .map_err(map_error);
    let vaulted = result?;
    detached?;
    Ok(vaulted)
}

fn replace_rows(
    conn: &mut Connection,
    tables: &[String],
    vault_suffix: &str,
) -> Result<Vec<String>, EngineError> {
    let in_copy: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare(
                "SELECT name, sql FROM ripcord_snap.sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'ripcord\\_%' ESCAPE '\\' \
                 ORDER BY name",
            )
            .map_err(map_error)?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(map_error)?
            .collect::<Result<_, _>>()
            .map_err(map_error)?
    };
    let chosen: Vec<&(String, String)> = if tables.is_empty() {
        in_copy.iter().collect()
    } else {
        tables
            .iter()
            .map(|t| {
                in_copy
                    .iter()
                    .find(|(name, _)| name == t)
                    .ok_or_else(|| EngineError::Invalid {
                        reason: format!("the snapshot has no table {t}"),
                        hint: None,
                    })
            })
            .collect::<Result<_, _>>()?
    };
    conn.execute_batch("BEGIN IMMEDIATE; PRAGMA defer_foreign_keys = ON")
        .map_err(map_error)?;
    let mut vaulted = Vec::new();
    for (name, sql) in chosen {
        let live: Option<String> = conn
            .query_row(
                "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(map_error)?;
        let q = quote(name);
        match live {
            None => {
                conn.execute_batch(sql).map_err(map_error)?;
                let extras: Vec<String> = {
                    let mut stmt = conn
                        .prepare(
                            "SELECT sql FROM ripcord_snap.sqlite_master \
                             WHERE type IN ('index', 'trigger') AND tbl_name = ?1 AND sql IS NOT NULL",
                        )
                        .map_err(map_error)?;
                    stmt.query_map([name], |r| r.get(0))
                        .map_err(map_error)?
                        .collect::<Result<_, _>>()
                        .map_err(map_error)?
                };
                conn.execute_batch(&format!(
                    "INSERT INTO main.{q} SELECT * FROM ripcord_snap.{q}"
                ))
                .map_err(map_error)?;
                for extra in extras {
                    conn.execute_batch(&extra).map_err(map_error)?;
                }
            }
            Some(live) if live != *sql => {
                return Err(EngineError::Invalid {
                    reason: format!(
                        "table {name} has a different definition now than in the snapshot; \
                         putting the old rows into it would be a guess"
                    ),
                    hint: Some(
                        "revert the schema change first, or restore into another database with --into"
                            .into(),
                    ),
                });
            }
            Some(_) => {
                let vault = format!("ripcord_vault_{name}{vault_suffix}");
                conn.execute_batch(&format!(
                    "CREATE TABLE main.{v} AS SELECT * FROM main.{q}; \
                     DELETE FROM main.{q}; \
                     INSERT INTO main.{q} SELECT * FROM ripcord_snap.{q};",
                    v = quote(&vault)
                ))
                .map_err(map_error)?;
                vaulted.push(vault);
            }
        }
    }
    conn.execute_batch("COMMIT").map_err(map_error)?;
    Ok(vaulted)
}
