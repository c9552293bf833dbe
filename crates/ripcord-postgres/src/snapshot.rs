//! Table snapshots on PostgreSQL: one exported snapshot (`pg_export_snapshot`) that
//! parallel workers join, binary `COPY … TO STDOUT` per table, definitions read from
//! the catalog with an empty `search_path` (so every name the server prints is
//! qualified), and restores that load into a staging schema and swap the tables in with
//! `ALTER TABLE … SET SCHEMA` inside one short transaction.

use std::io::{Read, Write};

use postgres::Client;
use ripcord_core::EngineError;
use ripcord_core::snapshot::{
    ColumnDefinition, ColumnGrant, ExportInfo, Grant, NamedDefinition, OwnedSequence, PageRange,
    PartitionOf, RestorePlace, SnapshotWorker, SwapOutcome, TableDefinition, TableExtras,
    TableSnapshots,
};

use crate::PostgresEngine;
use crate::sql::{invalid, literal as sql_literal, map_error, quote_ident};

/// Schemas whose tables are never snapshotted.
const NOT_USER_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord') \
     AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT LIKE 'ripcord\\_%'";

pub(crate) struct PgSnapshots<'a> {
    pub(crate) engine: &'a mut PostgresEngine,
}

/// Resolve names (as a user would type them) to table oids, refusing what is not a
/// plain table.
fn resolve_tables(client: &mut Client, tables: &[String]) -> Result<Vec<u32>, EngineError> {
    if tables.is_empty() {
        let rows = client
            .query(
                &format!(
                    "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p') AND {NOT_USER_SCHEMAS} \
                     ORDER BY c.relispartition, n.nspname, c.relname"
                ),
                &[],
            )
            .map_err(map_error)?;
        return Ok(rows.iter().map(|r| r.get(0)).collect());
    }
    let mut oids = Vec::new();
    for name in tables {
        let row = client
            .query(
                "SELECT c.oid, c.relkind::text, c.relispartition FROM pg_class c \
                 WHERE c.oid = to_regclass($1)",
                &[name],
            )
            .map_err(map_error)?
            .into_iter()
            .next();
        let Some(row) = row else {
            return Err(invalid(
                format!("no table named {name}"),
                "name tables as schema.table; `\\dt` in psql lists them",
            ));
        };
        let kind: String = row.get(1);
        let partition: bool = row.get(2);
        if partition {
            let parent: String = client
                .query_one(
                    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = pg_partition_root($1::oid)",
                    &[&row.get::<_, u32>(0)],
                )
                .map_err(map_error)?
                .get(0);
            return Err(invalid(
                format!(
                    "{name} is a partition of {parent}; a snapshot takes a partitioned table whole"
                ),
                &format!("name {parent}: its partitions come with it"),
            ));
        }
        if kind != "r" && kind != "p" {
            return Err(invalid(
                format!("{name} is not a table"),
                "snapshots take tables; views and sequences come with their tables",
            ));
        }
        // A partitioned table comes with its partitions, parents before children.
        let tree: Vec<u32> = client
            .query(
                "SELECT relid::oid FROM pg_partition_tree($1::oid) \
                 ORDER BY level, relid::regclass::text",
                &[&row.get::<_, u32>(0)],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let oid: u32 = row.get(0);
        for oid in std::iter::once(oid).chain(tree) {
            if !oids.contains(&oid) {
                oids.push(oid);
            }
        }
    }
    Ok(oids)
}

/// The definition of table `oid`; the session's search_path must be empty.
pub(crate) fn definition(client: &mut Client, oid: u32) -> Result<TableDefinition, EngineError> {
    let head = client
        .query_one(
            "SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
                    quote_ident(c.relname), quote_ident(pg_get_userbyid(c.relowner)) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )
        .map_err(map_error)?;
    let mut columns: Vec<ColumnDefinition> = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0 \
                         THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END, \
                    a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, \
                    a.attgenerated::text \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .map_err(map_error)?
        .iter()
        .map(|r| {
            let identity: String = r.get(5);
            let generated: String = r.get(6);
            let expr: Option<String> = r.get(4);
            ColumnDefinition {
                name: r.get(0),
                data_type: r.get(1),
                collation: r.get(2),
                not_null: r.get(3),
                default: if generated.is_empty() {
                    expr.clone()
                } else {
                    None
                },
                identity: match identity.as_str() {
                    "a" => Some("ALWAYS".into()),
                    "d" => Some("BY DEFAULT".into()),
                    _ => None,
                },
                generated: if generated == "s" { expr } else { None },
            }
        })
        .collect();
    let sequences = owned_sequences(client, oid)?;
    for sequence in sequences.iter().filter(|s| !s.identity) {
        // A serial default names the old sequence; the restore makes its own.
        if let Some(column) = columns.iter_mut().find(|c| c.name == sequence.column)
            && column
                .default
                .as_deref()
                .is_some_and(|d| d.starts_with("nextval("))
        {
            column.default = None;
        }
    }
    let named = |client: &mut Client, sql: &str| -> Result<Vec<NamedDefinition>, EngineError> {
        Ok(client
            .query(sql, &[&oid])
            .map_err(map_error)?
            .iter()
            .map(|r| NamedDefinition {
                name: r.get(0),
                definition: r.get(1),
            })
            .collect())
    };
    let constraints = named(
        client,
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = $1 AND contype IN ('p', 'u', 'c', 'x') ORDER BY contype <> 'p', conname",
    )?;
    // A partition's foreign keys and triggers cloned from its parent come back when it
    // is attached again.
    let foreign_keys = named(
        client,
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = $1 AND contype = 'f' AND conparentid = 0 ORDER BY conname",
    )?;
    let indexes = named(
        client,
        "SELECT ic.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
         JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1 AND NOT EXISTS \
           (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid \
              AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x')) ORDER BY 1",
    )?;
    let triggers = named(
        client,
        "SELECT tgname::text, pg_get_triggerdef(oid) FROM pg_trigger \
         WHERE tgrelid = $1 AND NOT tgisinternal AND tgparentid = 0 \
           AND tgname NOT LIKE 'ripcord\\_%' ORDER BY 1",
    )?;
    let grants = client
        .query(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, \
                    a.privilege_type, a.is_grantable \
             FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a \
             LEFT JOIN pg_roles r ON r.oid = a.grantee \
             WHERE c.oid = $1 AND a.grantee <> c.relowner ORDER BY 1, 2",
            &[&oid],
        )
        .map_err(map_error)?
        .iter()
        .map(|r| Grant {
            grantee: r.get(0),
            privilege: r.get(1),
            grantable: r.get(2),
        })
        .collect();
    let extras = extras(client, oid, &head.get::<_, String>(2))?;
    let partitioning = client
        .query_one(
            "SELECT CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
                    CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, \
                    (SELECT quote_ident(pn.nspname) || '.' || quote_ident(p.relname) FROM pg_inherits i \
                       JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace \
                      WHERE i.inhrelid = c.oid), \
                    (SELECT quote_ident(p.relname) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent \
                      WHERE i.inhrelid = c.oid) \
             FROM pg_class c WHERE c.oid = $1",
            &[&oid],
        )
        .map_err(map_error)?;
    let partition_of = match (
        partitioning.get::<_, Option<String>>(1),
        partitioning.get::<_, Option<String>>(2),
        partitioning.get::<_, Option<String>>(3),
    ) {
        (Some(bound), Some(parent), Some(parent_quoted_name)) => Some(PartitionOf {
            parent,
            parent_quoted_name,
            bound,
        }),
        _ => None,
    };
    Ok(TableDefinition {
        schema: head.get(0),
        name: head.get(1),
        qualified: head.get(2),
        quoted_name: head.get(3),
        columns,
        constraints,
        foreign_keys,
        indexes,
        triggers,
        grants,
        owner: head.get(4),
        sequences,
        create_sql: None,
        extras,
        partition_by: partitioning.get(0),
        partition_of,
    })
}

/// Comments, row-level security with its policies, and column privileges of table
/// `oid` (named `qualified`); the session's search_path must be empty, so that the
/// policies' expressions name everything qualified.
fn extras(client: &mut Client, oid: u32, qualified: &str) -> Result<TableExtras, EngineError> {
    let head = client
        .query_one(
            "SELECT obj_description(oid, 'pg_class'), relrowsecurity, relforcerowsecurity              FROM pg_class WHERE oid = $1",
            &[&oid],
        )
        .map_err(map_error)?;
    let column_comments = client
        .query(
            "SELECT a.attname::text, d.description FROM pg_attribute a              JOIN pg_description d ON d.objoid = a.attrelid AND d.classoid = 'pg_class'::regclass                AND d.objsubid = a.attnum              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .map_err(map_error)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let policies = client
        .query(
            "SELECT polname::text, format('CREATE POLICY %I ON %s AS %s FOR %s TO %s', polname, $2::text,                     CASE WHEN polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,                     CASE polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'                                 WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,                     (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END, ', ')                      FROM unnest(polroles) r))                     || coalesce(' USING (' || pg_get_expr(polqual, polrelid) || ')', '')                     || coalesce(' WITH CHECK (' || pg_get_expr(polwithcheck, polrelid) || ')', '')              FROM pg_policy WHERE polrelid = $1 ORDER BY 1",
            &[&oid, &qualified],
        )
        .map_err(map_error)?
        .iter()
        .map(|r| NamedDefinition {
            name: r.get(0),
            definition: r.get(1),
        })
        .collect();
    let column_grants = client
        .query(
            "SELECT a.attname::text, CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END,                     x.privilege_type, x.is_grantable              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid              CROSS JOIN LATERAL aclexplode(a.attacl) x LEFT JOIN pg_roles r ON r.oid = x.grantee              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND x.grantee <> c.relowner              ORDER BY a.attnum, 2, 3",
            &[&oid],
        )
        .map_err(map_error)?
        .iter()
        .map(|r| ColumnGrant {
            column: r.get(0),
            grantee: r.get(1),
            privilege: r.get(2),
            grantable: r.get(3),
        })
        .collect();
    Ok(TableExtras {
        comment: head.get(0),
        column_comments,
        row_security: head.get(1),
        force_row_security: head.get(2),
        policies,
        column_grants,
    })
}

fn definitions(
    client: &mut Client,
    tables: &[String],
) -> Result<Vec<TableDefinition>, EngineError> {
    let oids = resolve_tables(client, tables)?;
    client
        .batch_execute("SET LOCAL search_path = ''")
        .map_err(map_error)?;
    oids.into_iter()
        .map(|oid| definition(client, oid))
        .collect()
}

impl TableSnapshots for PgSnapshots<'_> {
    fn begin_export(&mut self, tables: &[String]) -> Result<ExportInfo, EngineError> {
        let client = &mut self.engine.client;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(map_error)?;
        let head = client
            .query_one(
                "SELECT pg_export_snapshot(), \
                        (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                              ELSE pg_current_wal_lsn() END)::text, \
                        statement_timestamp(), current_setting('server_version')",
                &[],
            )
            .map_err(map_error)?;
        let tables = definitions(client, tables)?;
        let mut pages = Vec::new();
        for table in &tables {
            let count: i64 = client
                .query_one(
                    "SELECT pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint",
                    &[&table.qualified],
                )
                .map_err(map_error)?
                .get(0);
            pages.push(count.max(0) as u64);
        }
        Ok(ExportInfo {
            token: head.get(0),
            lsn: head.get(1),
            at: head.get(2),
            server_version: head.get(3),
            tables,
            pages,
        })
    }

    fn end_export(&mut self) -> Result<(), EngineError> {
        self.engine
            .client
            .batch_execute("COMMIT")
            .map_err(map_error)
    }

    fn worker(&mut self) -> Result<Box<dyn SnapshotWorker>, EngineError> {
        Ok(Box::new(PgWorker {
            engine: PostgresEngine::connect(&self.engine.url)?,
        }))
    }

    fn live_definitions(&mut self, tables: &[String]) -> Result<Vec<TableDefinition>, EngineError> {
        let client = &mut self.engine.client;
        client.batch_execute("BEGIN").map_err(map_error)?;
        let found = definitions(client, tables);
        client.batch_execute("ROLLBACK").map_err(map_error)?;
        found
    }

    fn prepare_place(
        &mut self,
        place: &RestorePlace,
        tables: &[TableDefinition],
    ) -> Result<(), EngineError> {
        let mut tx = self.engine.client.transaction().map_err(map_error)?;
        tx.batch_execute("SET LOCAL search_path = ''")
            .map_err(map_error)?;
        if let RestorePlace::Staging { schema } = place {
            tx.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}",
                quote_ident(schema)
            ))
            .map_err(map_error)?;
        }
        for table in tables {
            for statement in create_statements(table, place) {
                tx.batch_execute(&statement).map_err(map_error)?;
            }
        }
        tx.commit().map_err(map_error)
    }

    fn swap_in(
        &mut self,
        staging_schema: &str,
        tables: &[TableDefinition],
        vault_schema: &str,
    ) -> Result<SwapOutcome, EngineError> {
        let client = &mut self.engine.client;
        let staging = quote_ident(staging_schema);
        let vault = quote_ident(vault_schema);
        let mut outcome = SwapOutcome {
            vault_schema: vault_schema.to_string(),
            ..Default::default()
        };
        let mut tx = client.transaction().map_err(map_error)?;
        tx.batch_execute("SET LOCAL search_path = ''; SET LOCAL lock_timeout = '10s'")
            .map_err(map_error)?;
        let mut live_oids = Vec::new();
        for table in tables {
            let oid: Option<u32> = tx
                .query_one("SELECT to_regclass($1)::oid", &[&table.qualified])
                .map_err(map_error)?
                .get(0);
            if let Some(oid) = oid {
                tx.batch_execute(&format!(
                    "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                    table.qualified
                ))
                .map_err(map_error)?;
                live_oids.push(oid);
            }
        }
        let views: Vec<String> = tx
            .query(
                "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d \
                 JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class \
                 WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = ANY($1) \
                   AND v.oid <> ALL($1) ORDER BY 1",
                &[&live_oids],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !views.is_empty() {
            return Err(invalid(
                format!(
                    "views depend on the tables to restore: {}; swapping would leave them on the old tables",
                    views.join(", ")
                ),
                "restore with --as-new-tables and copy the rows over, or drop and re-create the views around the restore",
            ));
        }
        // Foreign keys of other tables that point at tables being replaced.
        let inbound: Vec<(String, String, String)> = tx
            .query(
                "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid) \
                 FROM pg_constraint WHERE contype = 'f' AND confrelid = ANY($1) \
                   AND conrelid <> ALL($1) AND conparentid = 0 ORDER BY 1, 2",
                &[&live_oids],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let mut deferred = Vec::new();
        for (owner, name, def) in &inbound {
            tx.batch_execute(&format!(
                "ALTER TABLE {owner} DROP CONSTRAINT {}",
                quote_ident(name)
            ))
            .map_err(map_error)?;
            outcome
                .repointed_foreign_keys
                .push(format!("{owner}.{name}"));
            deferred.push((owner.clone(), name.clone(), def.clone()));
        }
        if live_oids.is_empty() {
            outcome.vault_schema.clear();
        } else {
            tx.batch_execute(&format!("CREATE SCHEMA {vault}"))
                .map_err(map_error)?;
        }
        // Old tables leave first, so that their index and sequence names are free.
        for oid in &live_oids {
            let (qualified, fks): (String, Vec<String>) = {
                let row = tx
                    .query_one(
                        "SELECT $1::oid::regclass::text, ARRAY(SELECT conname::text FROM pg_constraint \
                           WHERE conrelid = $1::oid AND contype = 'f' AND conparentid = 0)",
                        &[oid],
                    )
                    .map_err(map_error)?;
                (row.get(0), row.get(1))
            };
            for fk in fks {
                tx.batch_execute(&format!(
                    "ALTER TABLE {qualified} DROP CONSTRAINT {}",
                    quote_ident(&fk)
                ))
                .map_err(map_error)?;
            }
            crate::capture::detach_triggers(&mut tx, &qualified)?;
            tx.batch_execute(&format!("ALTER TABLE {qualified} SET SCHEMA {vault}"))
                .map_err(map_error)?;
        }
        for table in tables {
            tx.batch_execute(&format!(
                "ALTER TABLE {staging}.{} SET SCHEMA {}",
                table.quoted_name,
                quote_ident(&table.schema)
            ))
            .map_err(map_error)?;
        }
        // Foreign keys of a partitioned table, and those referencing one, are validated
        // as they are added: PostgreSQL has no NOT VALID for the former, and validating
        // the latter later leaves its per-partition parts marked unvalidated.
        let partitioned_tables: Vec<String> = tx
            .query(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'p'",
                &[],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let validate_now = |definition: &str| {
            partitioned_tables
                .iter()
                .any(|p| definition.contains(&format!("REFERENCES {p}(")))
        };
        for table in tables {
            for fk in &table.foreign_keys {
                let partitioned = table.partition_by.is_some() || validate_now(&fk.definition);
                tx.batch_execute(&format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {}{}",
                    table.qualified,
                    quote_ident(&fk.name),
                    fk.definition,
                    if partitioned { "" } else { " NOT VALID" }
                ))
                .map_err(map_error)?;
                if !partitioned {
                    deferred.push((
                        table.qualified.clone(),
                        fk.name.clone(),
                        fk.definition.clone(),
                    ));
                }
            }
        }
        for (owner, name, def) in &inbound {
            tx.batch_execute(&format!(
                "ALTER TABLE {owner} ADD CONSTRAINT {} {def}{}",
                quote_ident(name),
                if validate_now(def) { "" } else { " NOT VALID" }
            ))
            .map_err(map_error)?;
        }
        deferred.retain(|(_, _, def)| !validate_now(def));
        // Capture works on ordinary tables (partitions included), not partitioned parents.
        for table in tables.iter().filter(|t| t.partition_by.is_none()) {
            if crate::capture::reattach(&mut tx, &table.qualified)? {
                outcome.capture_reattached.push(table.display_name());
            }
        }
        tx.batch_execute(&format!("DROP SCHEMA {staging}"))
            .map_err(map_error)?;
        tx.commit().map_err(map_error)?;
        // Validation scans rows but takes only a SHARE UPDATE EXCLUSIVE lock: the
        // foreign keys are validated side by side, over as many connections as there
        // are cores (this one included).
        let queue = std::sync::Mutex::new(
            deferred
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        );
        let unvalidated = std::sync::Mutex::new(Vec::new());
        // The lock is held inside `next` only, not while a constraint validates.
        let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let validate = |client: &mut Client| {
            while let Some((owner, name, _)) = next() {
                let validated = client.batch_execute(&format!(
                    "ALTER TABLE {owner} VALIDATE CONSTRAINT {}",
                    quote_ident(&name)
                ));
                if validated.is_err() {
                    unvalidated
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{owner}.{name}"));
                }
            }
        };
        let helpers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(queue.lock().map_or(0, |q| q.len()))
            .saturating_sub(1);
        let url = self.engine.url.clone();
        std::thread::scope(|scope| {
            for _ in 0..helpers {
                let (url, validate) = (&url, &validate);
                scope.spawn(move || {
                    // Without a connection of its own a helper leaves the work to the rest.
                    if let Ok(mut helper) = PostgresEngine::connect(url) {
                        validate(&mut helper.client);
                    }
                });
            }
            validate(&mut self.engine.client);
        });
        let mut unvalidated = unvalidated.into_inner().unwrap_or_else(|e| e.into_inner());
        unvalidated.sort();
        outcome.unvalidated_foreign_keys = unvalidated;
        Ok(outcome)
    }

    fn attach_partitions(
        &mut self,
        place: &RestorePlace,
        tables: &[TableDefinition],
    ) -> Result<(), EngineError> {
        let statements: Vec<String> = tables
            .iter()
            .filter_map(|t| attach_statement(t, place))
            .collect();
        if statements.is_empty() {
            return Ok(());
        }
        let mut tx = self.engine.client.transaction().map_err(map_error)?;
        tx.batch_execute("SET LOCAL search_path = ''")
            .map_err(map_error)?;
        for statement in statements {
            tx.batch_execute(&statement).map_err(map_error)?;
        }
        tx.commit().map_err(map_error)
    }

    fn drop_schema(&mut self, schema: &str) -> Result<(), EngineError> {
        self.engine
            .client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote_ident(schema)
            ))
            .map_err(map_error)
    }

    fn vault_schemas(&mut self) -> Result<Vec<String>, EngineError> {
        Ok(self
            .engine
            .client
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'ripcord\\_vault\\_%' ORDER BY 1",
                &[],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}

/// The sequences that columns of table `oid` own (serial and identity), with the value
/// each has reached.
pub(crate) fn owned_sequences(
    client: &mut Client,
    oid: u32,
) -> Result<Vec<OwnedSequence>, EngineError> {
    let mut sequences = Vec::new();
    for r in client
        .query(
            "SELECT s.relname::text, quote_ident(n.nspname) || '.' || quote_ident(s.relname), \
                    a.attname::text, d.deptype = 'i', format_type(q.seqtypid, NULL), \
                    format('INCREMENT %s MINVALUE %s MAXVALUE %s START %s CACHE %s %s', \
                        q.seqincrement, q.seqmin, q.seqmax, q.seqstart, q.seqcache, \
                        CASE WHEN q.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END) \
             FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
             JOIN pg_namespace n ON n.oid = s.relnamespace \
             JOIN pg_sequence q ON q.seqrelid = s.oid \
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
               AND d.refobjid = $1 AND d.deptype IN ('a', 'i') ORDER BY 1",
            &[&oid],
        )
        .map_err(map_error)?
    {
        let qualified: String = r.get(1);
        let value = client
            .query_one(
                &format!("SELECT last_value, is_called FROM {qualified}"),
                &[],
            )
            .map_err(map_error)?;
        sequences.push(OwnedSequence {
            name: r.get(0),
            column: r.get(2),
            identity: r.get(3),
            data_type: r.get(4),
            options: r.get(5),
            last_value: value.get(0),
            is_called: value.get(1),
        });
    }
    Ok(sequences)
}

struct PgWorker {
    engine: PostgresEngine,
}

/// `CREATE TABLE` (and the serial sequences it needs) for `table` in `place`.
pub(crate) fn create_statements(table: &TableDefinition, place: &RestorePlace) -> Vec<String> {
    let schema = quote_ident(place.schema_for(table));
    let mut statements = Vec::new();
    let mut columns = Vec::new();
    for column in &table.columns {
        let mut text = format!("{} {}", quote_ident(&column.name), column.data_type);
        if let Some(collation) = &column.collation {
            text.push_str(&format!(" COLLATE {collation}"));
        }
        if let Some(expr) = &column.generated {
            text.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
        }
        let sequence = table.sequences.iter().find(|s| s.column == column.name);
        if let Some(kind) = &column.identity {
            let options = sequence
                .map(|s| {
                    format!(
                        " (SEQUENCE NAME {schema}.{} {})",
                        quote_ident(&s.name),
                        s.options
                    )
                })
                .unwrap_or_default();
            text.push_str(&format!(" GENERATED {kind} AS IDENTITY{options}"));
        } else if let Some(s) = sequence.filter(|s| !s.identity) {
            statements.push(format!(
                "CREATE SEQUENCE {schema}.{} AS {} {}",
                quote_ident(&s.name),
                s.data_type,
                s.options
            ));
            text.push_str(&format!(
                " DEFAULT nextval({}::regclass)",
                sql_literal(&format!("{schema}.{}", quote_ident(&s.name)))
            ));
        } else if let Some(default) = &column.default {
            text.push_str(&format!(" DEFAULT {default}"));
        }
        if column.not_null {
            text.push_str(" NOT NULL");
        }
        columns.push(text);
    }
    statements.push(format!(
        "CREATE TABLE {} ({}){}",
        table.qualified_in(place),
        columns.join(", "),
        table
            .partition_by
            .as_ref()
            .map(|by| format!(" PARTITION BY {by}"))
            .unwrap_or_default()
    ));
    statements
}

/// `ALTER TABLE parent ATTACH PARTITION …` for a partition, in `place`.
pub(crate) fn attach_statement(table: &TableDefinition, place: &RestorePlace) -> Option<String> {
    table.partition_of.as_ref().map(|of| {
        format!(
            "ALTER TABLE {} ATTACH PARTITION {} {}",
            of.parent_in(place),
            table.qualified_in(place),
            of.bound
        )
    })
}

/// What follows the rows of `table` in `place`: constraints, indexes, triggers, owned
/// sequences and their values, grants and owner (`me` is the session's user, quoted).
pub(crate) fn post_data_statements(
    table: &TableDefinition,
    place: &RestorePlace,
    me: &str,
) -> Vec<String> {
    let target = table.qualified_in(place);
    let mut statements = Vec::new();
    for constraint in &table.constraints {
        statements.push(format!(
            "ALTER TABLE {target} ADD CONSTRAINT {} {}",
            quote_ident(&constraint.name),
            constraint.definition
        ));
    }
    for index in &table.indexes {
        statements.push(table.retarget(&index.definition, place));
    }
    for trigger in &table.triggers {
        statements.push(table.retarget(&trigger.definition, place));
    }
    let schema = quote_ident(place.schema_for(table));
    for sequence in &table.sequences {
        let qualified = format!("{schema}.{}", quote_ident(&sequence.name));
        if !sequence.identity {
            statements.push(format!(
                "ALTER SEQUENCE {qualified} OWNED BY {target}.{}",
                quote_ident(&sequence.column)
            ));
        }
        statements.push(format!(
            "SELECT setval({}::regclass, {}, {})",
            sql_literal(&qualified),
            sequence.last_value,
            sequence.is_called
        ));
    }
    for grant in &table.grants {
        statements.push(format!(
            "GRANT {} ON {target} TO {}{}",
            grant.privilege,
            grant.grantee,
            if grant.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        ));
    }
    let extras = &table.extras;
    for grant in &extras.column_grants {
        statements.push(format!(
            "GRANT {} ({}) ON {target} TO {}{}",
            grant.privilege,
            quote_ident(&grant.column),
            grant.grantee,
            if grant.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        ));
    }
    if let Some(comment) = &extras.comment {
        statements.push(format!(
            "COMMENT ON TABLE {target} IS {}",
            sql_literal(comment)
        ));
    }
    for (column, comment) in &extras.column_comments {
        statements.push(format!(
            "COMMENT ON COLUMN {target}.{} IS {}",
            quote_ident(column),
            sql_literal(comment)
        ));
    }
    for policy in &extras.policies {
        statements.push(table.retarget(&policy.definition, place));
    }
    if extras.row_security {
        statements.push(format!("ALTER TABLE {target} ENABLE ROW LEVEL SECURITY"));
    }
    if extras.force_row_security {
        statements.push(format!("ALTER TABLE {target} FORCE ROW LEVEL SECURITY"));
    }
    if let Some(owner) = &table.owner
        && owner != me
    {
        statements.push(format!("ALTER TABLE {target} OWNER TO {owner}"));
    }
    statements
}

/// The columns a copy carries: all but generated ones, which the server recomputes.
fn copied_columns(table: &TableDefinition) -> String {
    table
        .columns
        .iter()
        .filter(|c| c.generated.is_none())
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SnapshotWorker for PgWorker {
    fn copy_out(
        &mut self,
        token: &str,
        table: &TableDefinition,
        pages: Option<PageRange>,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), EngineError> {
        let client = &mut self.engine.client;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                sql_literal(token)
            ))
            .map_err(map_error)?;
        let source = match pages {
            // A partitioned table holds no rows itself: its partitions are copied.
            None if table.partition_by.is_some() => format!(
                "(SELECT {} FROM ONLY {})",
                copied_columns(table),
                table.qualified
            ),
            None => format!("{} ({})", table.qualified, copied_columns(table)),
            // A TID range scan reads only these pages (PostgreSQL 14+).
            Some(range) => format!(
                "(SELECT {} FROM {} WHERE ctid >= '({},0)'::tid{})",
                copied_columns(table),
                table.qualified,
                range.from,
                range
                    .to
                    .map(|to| format!(" AND ctid < '({to},0)'::tid"))
                    .unwrap_or_default()
            ),
        };
        let mut reader = client
            .copy_out(&format!("COPY {source} TO STDOUT (FORMAT binary)"))
            .map_err(map_error)?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = reader
                .read(&mut buffer)
                .map_err(|e| EngineError::ConnectionLost {
                    reason: format!("copying {}: {e}", table.display_name()),
                })?;
            if read == 0 {
                break;
            }
            sink(&buffer[..read]).map_err(|e| EngineError::Invalid {
                reason: format!("storing {}: {e}", table.display_name()),
                hint: None,
            })?;
        }
        drop(reader);
        client.batch_execute("COMMIT").map_err(map_error)
    }

    fn load_part(
        &mut self,
        place: &RestorePlace,
        table: &TableDefinition,
        source: &mut dyn Read,
        create: bool,
    ) -> Result<u64, EngineError> {
        let target = table.qualified_in(place);
        let mut tx = self.engine.client.transaction().map_err(map_error)?;
        if create {
            tx.batch_execute("SET LOCAL search_path = ''")
                .map_err(map_error)?;
            for statement in create_statements(table, place) {
                tx.batch_execute(&statement).map_err(map_error)?;
            }
        }
        // FREEZE needs the table to be new in this transaction; frozen rows need no
        // later hint-bit writes or freezing vacuum.
        let freeze = if create && table.partition_by.is_none() {
            ", FREEZE"
        } else {
            ""
        };
        let mut writer = tx
            .copy_in(&format!(
                "COPY {target} ({}) FROM STDIN (FORMAT binary{freeze})",
                copied_columns(table)
            ))
            .map_err(map_error)?;
        if let Err(e) = std::io::copy(source, &mut writer) {
            // An unfinished COPY rolls back with the transaction.
            return Err(EngineError::Invalid {
                reason: format!("reading the snapshot of {}: {e}", table.display_name()),
                hint: None,
            });
        }
        writer.flush().map_err(|e| EngineError::ConnectionLost {
            reason: e.to_string(),
        })?;
        let rows = writer.finish().map_err(map_error)?;
        tx.commit().map_err(map_error)?;
        Ok(rows)
    }

    fn finish_steps(&self, table: &TableDefinition) -> usize {
        table.indexes.len() + 2
    }

    fn finish(
        &mut self,
        place: &RestorePlace,
        table: &TableDefinition,
        step: usize,
    ) -> Result<(), EngineError> {
        let mut tx = self.engine.client.transaction().map_err(map_error)?;
        tx.batch_execute("SET LOCAL search_path = ''; SET LOCAL maintenance_work_mem = '256MB'")
            .map_err(map_error)?;
        let me: String = tx
            .query_one("SELECT quote_ident(current_user)", &[])
            .map_err(map_error)?
            .get(0);
        // post_data_statements lists the constraints, then the indexes, then the rest.
        let statements = post_data_statements(table, place, &me);
        let (keys, after_keys) = statements.split_at(table.constraints.len());
        let (indexes, rest) = after_keys.split_at(table.indexes.len());
        let chosen: &[String] = match step {
            0 => keys,
            step if step <= indexes.len() => std::slice::from_ref(&indexes[step - 1]),
            _ => rest,
        };
        for statement in chosen {
            tx.batch_execute(statement).map_err(map_error)?;
        }
        tx.commit().map_err(map_error)
    }
}
