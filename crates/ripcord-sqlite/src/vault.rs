//! The vault on SQLite: before a recognized statement runs in the deploy transaction,
//! what it destroys is copied into a `ripcord_vault_<id>` table — a whole table before
//! `DROP TABLE` (with the exact `CREATE` statements of it, its indexes and triggers),
//! the rows a `DELETE`/`UPDATE` touches and the keys an `INSERT` adds through a TEMP
//! trigger that lives only while the statement runs. SQLite cannot change a column's
//! type, default or constraints in place, so those statements (and `DROP COLUMN`,
//! whose undo would move the column) are not kept: a change using them needs its own
//! revert.

use ripcord_core::EngineError;
use ripcord_core::vault::{
    CreatedKind, Effect, Kept, Undo, Vault, VaultEntry, VaultOrigin, identifier_value,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::map_error;

pub(crate) struct SqliteVault<'a> {
    pub(crate) conn: &'a mut Connection,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A name as SQLite writes it back into the schema: bare when it can be (SQLite keeps a
/// renamed name exactly as the statement spelled it).
fn name_as_written(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain && !is_keyword(name) {
        name.to_string()
    } else {
        quote(name)
    }
}

pub(crate) fn is_keyword(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "order",
        "group",
        "select",
        "table",
        "from",
        "where",
        "index",
        "key",
        "primary",
        "references",
        "default",
        "check",
        "unique",
        "values",
        "limit",
        "offset",
        "join",
        "to",
        "as",
        "on",
        "in",
        "is",
        "not",
        "null",
        "and",
        "or",
        "by",
        "desc",
        "asc",
        "transaction",
        "trigger",
        "view",
        "column",
        "add",
        "drop",
        "alter",
        "create",
    ];
    KEYWORDS.contains(&name.to_ascii_lowercase().as_str())
}

fn invalid(reason: String, hint: &str) -> EngineError {
    EngineError::Invalid {
        reason,
        hint: Some(hint.to_string()),
    }
}

/// The last part of a possibly qualified name (`main.t` → `t`), as its value.
fn bare(name: &str) -> String {
    identifier_value(name.rsplit('.').next().unwrap_or(name))
}

struct Columns {
    /// All columns, in order.
    all: Vec<String>,
    /// Columns that can be written (not generated).
    writable: Vec<String>,
    /// Primary key columns.
    key: Vec<String>,
}

impl SqliteVault<'_> {
    /// Whether a foreign key of another table references `table`.
    fn referenced(&mut self, table: &str) -> Result<bool, EngineError> {
        let count: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
                 WHERE m.type = 'table' AND m.name <> ?1 AND f.\"table\" = ?1 COLLATE NOCASE",
                [table],
                |r| r.get(0),
            )
            .map_err(map_error)?;
        Ok(count > 0)
    }

    /// The table's name as stored, when it exists.
    fn table(&mut self, name: &str) -> Result<Option<String>, EngineError> {
        self.conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                [bare(name)],
                |r| r.get(0),
            )
            .optional()
            .map_err(map_error)
    }

    fn require_table(&mut self, name: &str) -> Result<String, EngineError> {
        self.table(name)?.ok_or_else(|| {
            invalid(
                format!("no table `{name}` to keep data from"),
                "the statement names a table that does not exist at this point of the change",
            )
        })
    }

    fn columns(&mut self, table: &str) -> Result<Columns, EngineError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, hidden, pk FROM pragma_table_xinfo(?1) ORDER BY cid")
            .map_err(map_error)?;
        let rows: Vec<(String, i64, i64)> = stmt
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(map_error)?
            .collect::<Result<_, _>>()
            .map_err(map_error)?;
        let mut key: Vec<(i64, String)> = rows
            .iter()
            .filter(|(_, _, pk)| *pk > 0)
            .map(|(n, _, pk)| (*pk, n.clone()))
            .collect();
        key.sort();
        Ok(Columns {
            all: rows.iter().map(|(n, _, _)| n.clone()).collect(),
            writable: rows
                .iter()
                .filter(|(_, hidden, _)| *hidden == 0)
                .map(|(n, _, _)| n.clone())
                .collect(),
            key: key.into_iter().map(|(_, n)| n).collect(),
        })
    }

    fn new_entry(
        &mut self,
        origin: &VaultOrigin,
        action: &str,
        table: &str,
        keys: &[String],
        definition: &Value,
    ) -> Result<(i64, String), EngineError> {
        self.conn
            .execute(
                "INSERT INTO ripcord_vault (change, statement, action, table_name, key_columns, definition, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                params![
                    origin.change,
                    origin.statement as i64 + 1,
                    action,
                    table,
                    serde_json::to_string(keys).unwrap_or_default(),
                    definition.to_string()
                ],
            )
            .map_err(map_error)?;
        let id = self.conn.last_insert_rowid();
        let stored = format!("ripcord_vault_{id}");
        self.conn
            .execute(
                "UPDATE ripcord_vault SET stored = ?2 WHERE id = ?1",
                params![id, stored],
            )
            .map_err(map_error)?;
        Ok((id, stored))
    }

    fn count_rows(&mut self, id: i64, stored: &str) -> Result<(), EngineError> {
        self.conn
            .execute(
                &format!(
                    "UPDATE ripcord_vault SET rows = (SELECT count(*) FROM {stored}) WHERE id = ?1"
                ),
                [id],
            )
            .map_err(map_error)?;
        Ok(())
    }

    /// Keep the rows a DML statement on `table` changes, with a TEMP trigger.
    fn watch(
        &mut self,
        origin: &VaultOrigin,
        table: &str,
        action: &str,
        columns: &Columns,
    ) -> Result<(i64, Value), EngineError> {
        let (id, stored) = self.new_entry(origin, action, table, &columns.key, &Value::Null)?;
        let (event, image, kept) = match action {
            "insert" => ("INSERT", "NEW", &columns.key),
            "update" => ("UPDATE", "OLD", &columns.all),
            _ => ("DELETE", "OLD", &columns.all),
        };
        let list = |prefix: &str| {
            kept.iter()
                .map(|c| format!("{prefix}{}", quote(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let keys = |prefix: &str| {
            columns
                .key
                .iter()
                .map(|c| format!("{prefix}{}", quote(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (moved_column, moved_keys, vacated) = if action == "update" {
            // A row whose key the UPDATE changed: its new key, so that the put-back
            // finds it there.
            let same = columns
                .key
                .iter()
                .map(|c| format!("NEW.{0} IS OLD.{0}", quote(c)))
                .collect::<Vec<_>>()
                .join(" AND ");
            (
                format!("ALTER TABLE {stored} ADD COLUMN ripcord_vault_moved INTEGER;"),
                format!(
                    "INSERT INTO {stored} ({}, ripcord_vault_moved) SELECT {}, 1 WHERE NOT ({same});",
                    keys(""),
                    keys("NEW.")
                ),
                // The old image of such a row is marked 0: only those are re-inserted,
                // not rows an author's revert removed on purpose.
                format!(
                    "UPDATE {stored} SET ripcord_vault_moved = 0 WHERE rowid = (SELECT max(rowid) FROM {stored} \
                     WHERE ripcord_vault_moved IS NULL) AND NOT ({same});"
                ),
            )
        } else {
            (String::new(), String::new(), String::new())
        };
        self.conn
            .execute_batch(&format!(
                "CREATE TABLE {stored} AS SELECT {} FROM {} WHERE 0;
                 {moved_column}
                 CREATE TEMP TRIGGER ripcord_vault_{id} AFTER {event} ON main.{} BEGIN
                   INSERT INTO {stored} ({}) VALUES ({});
                   {moved_keys}
                   {vacated}
                 END;",
                list(""),
                quote(table),
                quote(table),
                list(""),
                list(&format!("{image}.")),
            ))
            .map_err(map_error)?;
        Ok((
            id,
            json!({ "trigger": format!("ripcord_vault_{id}"), "stored": stored,
                    "moves": action == "update", "table": table }),
        ))
    }

    /// The statements that put entry `stored` back into `table`.
    fn put_back(action: &str, table: &str, stored: &str, columns: &Columns) -> String {
        let list = |cols: &[String], prefix: &str| {
            cols.iter()
                .map(|c| format!("{prefix}{}", quote(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let t = quote(table);
        let keys = list(&columns.key, "");
        match action {
            "insert" => format!("DELETE FROM {t} WHERE ({keys}) IN (SELECT {keys} FROM {stored})"),
            "update" => {
                let sets = columns
                    .writable
                    .iter()
                    .filter(|c| !columns.key.contains(c))
                    .map(|c| format!("{} = v.{}", quote(c), quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let on = columns
                    .key
                    .iter()
                    .map(|k| format!("{t}.{} = v.{}", quote(k), quote(k)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let cols = list(&columns.writable, "");
                // Rows the UPDATE gave a new key leave it, their old images come back
                // under the old key; then every old image's values are set again.
                let mut sql = format!(
                    "DELETE FROM {t} WHERE ({keys}) IN (SELECT {keys} FROM {stored} WHERE ripcord_vault_moved = 1) \
                     AND ({keys}) NOT IN (SELECT {keys} FROM {stored} WHERE ripcord_vault_moved IS NOT 1);\n\
                     INSERT INTO {t} ({cols}) SELECT {cols} FROM {stored} WHERE ripcord_vault_moved = 0 \
                     AND ({keys}) NOT IN (SELECT {keys} FROM {t})"
                );
                if !sets.is_empty() {
                    sql.push_str(&format!(
                        ";\nUPDATE {t} SET {sets} FROM {stored} AS v WHERE {on} AND v.ripcord_vault_moved IS NOT 1"
                    ));
                }
                sql
            }
            _ => {
                let cols = list(&columns.writable, "");
                format!("INSERT OR REPLACE INTO {t} ({cols}) SELECT {cols} FROM {stored}")
            }
        }
    }
}

impl Vault for SqliteVault<'_> {
    fn keep(&mut self, effect: &Effect, origin: &VaultOrigin) -> Result<Kept, EngineError> {
        // A drill's scratch copy may have no ledger; it gets just the vault's index.
        let present: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'ripcord_vault'",
                [],
                |r| r.get(0),
            )
            .map_err(map_error)?;
        if present == 0 {
            self.conn
                .execute_batch(crate::VAULT_STEP)
                .map_err(map_error)?;
        }
        let kept = |entry: Option<i64>, state: Value| Kept {
            effect: effect.clone(),
            entry,
            state,
        };
        match effect {
            Effect::Nothing => Ok(kept(None, Value::Null)),
            Effect::Creates {
                name,
                if_not_exists,
                ..
            } => {
                let existed = *if_not_exists
                    && self
                        .conn
                        .query_row(
                            "SELECT count(*) FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
                            [bare(name)],
                            |r| r.get::<_, i64>(0),
                        )
                        .map_err(map_error)?
                        > 0;
                Ok(kept(None, json!({ "existed": existed })))
            }
            Effect::AddColumn { table, column } => {
                let table = self.require_table(table)?;
                Ok(kept(
                    None,
                    json!({ "table": table, "column": identifier_value(column) }),
                ))
            }
            Effect::RenameTable { table, .. } => {
                let table = self.require_table(table)?;
                Ok(kept(None, json!({ "old": table })))
            }
            Effect::RenameColumn { table, column, .. } => {
                let table = self.require_table(table)?;
                Ok(kept(
                    None,
                    json!({ "table": table, "old": identifier_value(column) }),
                ))
            }
            Effect::DropTable { table, if_exists } => {
                let Some(table) = self.table(table)? else {
                    if *if_exists {
                        return Ok(kept(None, json!({ "absent": true })));
                    }
                    return Err(invalid(
                        format!("no table `{table}` to keep"),
                        "the statement drops a table that does not exist",
                    ));
                };
                let mut stmt = self
                    .conn
                    .prepare(
                        "SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS NOT NULL
                         ORDER BY type <> 'table', type = 'trigger', name",
                    )
                    .map_err(map_error)?;
                let definition: Vec<String> = stmt
                    .query_map([&table], |r| r.get(0))
                    .map_err(map_error)?
                    .collect::<Result<_, _>>()
                    .map_err(map_error)?;
                drop(stmt);
                let columns = self.columns(&table)?;
                let (id, stored) = self.new_entry(
                    origin,
                    "drop_table",
                    &table,
                    &columns.key,
                    &json!(definition),
                )?;
                self.conn
                    .execute_batch(&format!(
                        "CREATE TABLE {stored} AS SELECT * FROM {}",
                        quote(&table)
                    ))
                    .map_err(map_error)?;
                self.count_rows(id, &stored)?;
                let restore = Self::put_back("drop_table", &table, &stored, &columns);
                Ok(kept(
                    Some(id),
                    json!({ "definition": definition, "restore": restore }),
                ))
            }
            Effect::Delete { table } | Effect::Update { table } | Effect::Insert { table } => {
                let table = self.require_table(table)?;
                let columns = self.columns(&table)?;
                let action = match effect {
                    Effect::Delete { .. } => "delete",
                    Effect::Update { .. } => "update",
                    _ => "insert",
                };
                if columns.key.is_empty() && action != "delete" {
                    return Err(invalid(
                        format!(
                            "{table} has no primary key, so the rows this {} changes could not be matched again",
                            action.to_uppercase()
                        ),
                        "add a primary key first, or give the change a revert section of its own",
                    ));
                }
                let (id, mut state) = self.watch(origin, &table, action, &columns)?;
                let stored = format!("ripcord_vault_{id}");
                state["restore"] = json!(Self::put_back(action, &table, &stored, &columns));
                Ok(kept(Some(id), state))
            }
            other => Err(invalid(
                format!("SQLite cannot keep what `{other:?}` destroys"),
                "give the change a revert section of its own",
            )),
        }
    }

    fn undo(&mut self, kept: &Kept) -> Result<Undo, EngineError> {
        let state = &kept.state;
        if let Some(trigger) = state.get("trigger").and_then(Value::as_str) {
            self.conn
                .execute_batch(&format!("DROP TRIGGER temp.{trigger}"))
                .map_err(map_error)?;
            let stored = state["stored"].as_str().unwrap_or_default().to_string();
            let moves = state["moves"].as_bool() == Some(true);
            self.count_rows(kept.entry.unwrap_or_default(), &stored)?;
            if moves {
                let (images, moved): (i64, i64) = self
                    .conn
                    .query_row(
                        &format!(
                            "SELECT count(*) FILTER (WHERE ripcord_vault_moved IS NOT 1), \
                                    count(*) FILTER (WHERE ripcord_vault_moved = 1) FROM {stored}"
                        ),
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(map_error)?;
                self.conn
                    .execute(
                        "UPDATE ripcord_vault SET rows = ?2 WHERE id = ?1",
                        params![kept.entry.unwrap_or_default(), images],
                    )
                    .map_err(map_error)?;
                let table = state["table"].as_str().unwrap_or_default().to_string();
                if moved > 0 && self.referenced(&table)? {
                    // Putting such rows back under their old key means deleting them
                    // under the new one, which other tables' rows now reference.
                    return Ok(Undo {
                        cannot_generate: Some(format!(
                            "the UPDATE changed the key of {moved} row(s) of {table}, which other tables reference by foreign key"
                        )),
                        ..Undo::default()
                    });
                }
            }
        }
        if state.get("absent").and_then(Value::as_bool) == Some(true)
            || state.get("existed").and_then(Value::as_bool) == Some(true)
        {
            return Ok(Undo::default());
        }
        let mut undo = Undo::default();
        let text = |key: &str| state[key].as_str().unwrap_or_default().to_string();
        match &kept.effect {
            Effect::Nothing => {}
            Effect::Creates { kind, name, .. } => {
                let keyword = match kind {
                    CreatedKind::MaterializedView => "VIEW",
                    other => other.keyword(),
                };
                undo.generated
                    .push(format!("DROP {keyword} {}", quote(&bare(name))));
            }
            Effect::AddColumn { .. } => undo.generated.push(format!(
                "ALTER TABLE {} DROP COLUMN {}",
                quote(&text("table")),
                quote(&text("column"))
            )),
            Effect::RenameTable { to, .. } => undo.generated.push(format!(
                "ALTER TABLE {} RENAME TO {}",
                quote(&bare(to)),
                name_as_written(&text("old"))
            )),
            Effect::RenameColumn { to, .. } => undo.generated.push(format!(
                "ALTER TABLE {} RENAME COLUMN {} TO {}",
                quote(&text("table")),
                quote(&identifier_value(to)),
                name_as_written(&text("old"))
            )),
            Effect::DropTable { .. } => {
                let definition: Vec<String> = state["definition"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let restore = text("restore");
                if let Some((create, rest)) = definition.split_first() {
                    undo.generated.push(create.clone());
                    undo.generated.push(restore.clone());
                    undo.generated.extend(rest.iter().cloned());
                }
                undo.restore.push(restore);
            }
            Effect::Delete { .. } | Effect::Update { .. } | Effect::Insert { .. } => {
                let restore = text("restore");
                undo.generated.push(restore.clone());
                undo.restore.push(restore);
            }
            _ => {}
        }
        Ok(undo)
    }

    fn release(&mut self, _kept: &[Kept]) -> Result<(), EngineError> {
        // TEMP triggers are dropped right after their statement.
        Ok(())
    }

    fn list(&mut self) -> Result<Vec<VaultEntry>, EngineError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT v.id, v.change, v.statement, v.action, v.table_name, v.rows, v.created_at,
                        EXISTS (SELECT 1 FROM ripcord_changes c WHERE c.name = v.change
                                  AND c.revert_sql GLOB '*ripcord_vault_' || v.id || '[^0-9]*')
                 FROM ripcord_vault v ORDER BY v.id",
            )
            .map_err(map_error)?;
        let entries = stmt
            .query_map([], |r| {
                let at: String = r.get(6)?;
                Ok(VaultEntry {
                    id: r.get(0)?,
                    change: r.get(1)?,
                    statement: r.get::<_, i64>(2)? as i32,
                    action: r.get(3)?,
                    table: r.get(4)?,
                    rows: r.get(5)?,
                    bytes: 0,
                    created_at: at.parse().unwrap_or_default(),
                    live: r.get(7)?,
                })
            })
            .map_err(map_error)?
            .collect::<Result<_, _>>()
            .map_err(map_error)?;
        Ok(entries)
    }

    fn prune(&mut self, ids: &[i64]) -> Result<(), EngineError> {
        for id in ids {
            self.conn
                .execute_batch(&format!(
                    "DROP TABLE IF EXISTS ripcord_vault_{id}; DELETE FROM ripcord_vault WHERE id = {id};"
                ))
                .map_err(map_error)?;
        }
        Ok(())
    }
}
