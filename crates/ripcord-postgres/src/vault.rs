//! The vault on PostgreSQL (DESIGN §5.3): inside the deploy transaction, what a
//! statement destroys is copied into `ripcord.vault_<id>` tables before (or, for DML,
//! by a statement-level trigger with a transition table while) the statement runs, and
//! the definitions the undo needs are read from the catalog. Kept rows go back through
//! `ripcord.vault_put_back(id)`, which matches columns by name at revert time, so an
//! author's revert that re-created the objects differently still gets the data back.

use postgres::Client;
use ripcord_core::EngineError;
use ripcord_core::snapshot::{OwnedSequence, RestorePlace, TableDefinition};
use ripcord_core::vault::{
    CreatedKind, Effect, Kept, Undo, Vault, VaultEntry, VaultOrigin, identifier_value,
};
use serde_json::{Value, json};

use crate::snapshot::{attach_statement, create_statements, definition, post_data_statements};
use crate::sql::{invalid, literal as sql_literal, map_error, quote_ident};

/// Ledger step: the vault's index and the functions that keep and put back rows.
pub const LEDGER_STEP: &str = r#"
CREATE TABLE ripcord.vault (
    id          bigserial PRIMARY KEY,
    change      text NOT NULL,
    statement   int NOT NULL,
    action      text NOT NULL,
    table_name  text NOT NULL,
    key_columns text[] NOT NULL DEFAULT '{}',
    stored      text,
    definition  jsonb,
    rows        bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ripcord.vault IS 'ripcord vault: data that deployed changes destroyed, kept for their revert. `ripcord vault list|prune`.';

-- Statement-level trigger body: copy the transition table into the vault table.
-- Only while its own statement runs (ripcord.vault_active lists the entries being
-- kept); the trigger itself is dropped when the change ends.
CREATE FUNCTION ripcord.vault_keep_rows() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_ARGV[2] = ANY (string_to_array(current_setting('ripcord.vault_active', true), ',')) THEN
        EXECUTE format('INSERT INTO %s SELECT %s FROM ripcord_vault_rows', TG_ARGV[0], TG_ARGV[1]);
    END IF;
    RETURN NULL;
END
$fn$;

-- Put the rows of vault entry `entry` back into its table: re-insert deleted rows,
-- reset updated values, remove inserted rows. Columns are matched by name as the table
-- is now; generated columns are recomputed.
CREATE FUNCTION ripcord.vault_put_back(entry bigint) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    v ripcord.vault%ROWTYPE;
    live regclass;
    cols text;
    sets text;
    keyjoin text;
    keylist text;
    has_unique boolean;
    n bigint;
BEGIN
    SELECT * INTO v FROM ripcord.vault WHERE id = entry;
    IF NOT FOUND OR v.stored IS NULL OR to_regclass(v.stored) IS NULL THEN
        RAISE EXCEPTION 'ripcord vault entry % is gone (pruned?); its rows cannot be put back', entry;
    END IF;
    live := to_regclass(v.table_name);
    IF live IS NULL THEN
        RAISE EXCEPTION 'table % does not exist; the revert must re-create it before its kept rows can be put back', v.table_name;
    END IF;
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('%I = k.%I', a.attname, a.attname), ', ' ORDER BY a.attnum)
             FILTER (WHERE a.attname <> ALL (v.key_columns) AND a.attidentity <> 'a')
      INTO cols, sets
      FROM pg_attribute a
     WHERE a.attrelid = live AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       AND EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = v.stored::regclass
                     AND b.attname = a.attname AND b.attnum > 0 AND NOT b.attisdropped);
    SELECT string_agg(format('t.%I = k.%I', c, c), ' AND '), string_agg(quote_ident(c), ', ')
      INTO keyjoin, keylist FROM unnest(v.key_columns) c;
    IF v.action IN ('delete', 'truncate', 'drop_table') THEN
        SELECT EXISTS (
            SELECT 1 FROM pg_index i
             WHERE i.indrelid = live AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
               AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                     WHERE a.attrelid = live AND a.attnum = ANY (i.indkey))
                   = (SELECT array_agg(c ORDER BY c) FROM unnest(v.key_columns) c))
          INTO has_unique;
        IF keylist IS NOT NULL AND has_unique THEN
            -- An author's revert may already have put some rows back.
            EXECUTE format('INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s ON CONFLICT (%s) DO %s',
                live, cols, cols, v.stored, keylist,
                CASE WHEN sets IS NULL THEN 'NOTHING'
                     ELSE 'UPDATE SET ' || replace(sets, ' = k.', ' = EXCLUDED.') END);
        ELSE
            EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s',
                live, cols, cols, v.stored);
        END IF;
    ELSIF v.action IN ('update', 'drop_column', 'alter_type') THEN
        IF sets IS NULL THEN
            RETURN 0;
        END IF;
        EXECUTE format('UPDATE %s t SET %s FROM %s k WHERE %s', live, sets, v.stored, keyjoin);
    ELSIF v.action = 'insert' THEN
        EXECUTE format('DELETE FROM %s t USING %s k WHERE %s', live, v.stored, keyjoin);
    ELSE
        RAISE EXCEPTION 'ripcord vault entry % has unknown action %', entry, v.action;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
"#;

/// Version 2 of `ripcord.vault_put_back` (ledger version 4): a dropped or retyped
/// column that the revert did not re-create is an error, not a silent no-op.
pub const PUT_BACK_V2: &str = r#"
-- Put the rows of vault entry `entry` back into its table: re-insert deleted rows,
-- reset updated values, remove inserted rows. Columns are matched by name as the table
-- is now; generated columns are recomputed.
CREATE OR REPLACE FUNCTION ripcord.vault_put_back(entry bigint) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    v ripcord.vault%ROWTYPE;
    live regclass;
    cols text;
    sets text;
    keyjoin text;
    keylist text;
    has_unique boolean;
    missing text;
    n bigint;
BEGIN
    SELECT * INTO v FROM ripcord.vault WHERE id = entry;
    IF NOT FOUND OR v.stored IS NULL OR to_regclass(v.stored) IS NULL THEN
        RAISE EXCEPTION 'ripcord vault entry % is gone (pruned?); its rows cannot be put back', entry;
    END IF;
    live := to_regclass(v.table_name);
    IF live IS NULL THEN
        RAISE EXCEPTION 'table % does not exist; the revert must re-create it before its kept rows can be put back', v.table_name;
    END IF;
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('%I = k.%I', a.attname, a.attname), ', ' ORDER BY a.attnum)
             FILTER (WHERE a.attname <> ALL (v.key_columns) AND a.attidentity <> 'a')
      INTO cols, sets
      FROM pg_attribute a
     WHERE a.attrelid = live AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       AND EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = v.stored::regclass
                     AND b.attname = a.attname AND b.attnum > 0 AND NOT b.attisdropped);
    IF v.action IN ('drop_column', 'alter_type') THEN
        -- The entry holds exactly the values the change destroyed: each needs its column.
        SELECT string_agg(quote_ident(b.attname), ', ' ORDER BY b.attnum) INTO missing
          FROM pg_attribute b
         WHERE b.attrelid = v.stored::regclass AND b.attnum > 0 AND NOT b.attisdropped
           AND b.attname <> ALL (v.key_columns)
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = live
                             AND a.attname = b.attname AND a.attnum > 0 AND NOT a.attisdropped);
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'the kept values of column(s) % of % cannot be put back: the revert did not re-create them (vault entry %)',
                missing, v.table_name, entry
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'make the revert re-create the column(s), then `ripcord rehash` the change; or remove its revert section so that ripcord writes one';
        END IF;
    END IF;
    SELECT string_agg(format('t.%I = k.%I', c, c), ' AND '), string_agg(quote_ident(c), ', ')
      INTO keyjoin, keylist FROM unnest(v.key_columns) c;
    IF v.action IN ('delete', 'truncate', 'drop_table') THEN
        SELECT EXISTS (
            SELECT 1 FROM pg_index i
             WHERE i.indrelid = live AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
               AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                     WHERE a.attrelid = live AND a.attnum = ANY (i.indkey))
                   = (SELECT array_agg(c ORDER BY c) FROM unnest(v.key_columns) c))
          INTO has_unique;
        IF keylist IS NOT NULL AND has_unique THEN
            -- An author's revert may already have put some rows back.
            EXECUTE format('INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s ON CONFLICT (%s) DO %s',
                live, cols, cols, v.stored, keylist,
                CASE WHEN sets IS NULL THEN 'NOTHING'
                     ELSE 'UPDATE SET ' || replace(sets, ' = k.', ' = EXCLUDED.') END);
        ELSE
            EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s',
                live, cols, cols, v.stored);
        END IF;
    ELSIF v.action IN ('update', 'drop_column', 'alter_type') THEN
        IF sets IS NULL THEN
            RETURN 0;
        END IF;
        EXECUTE format('UPDATE %s t SET %s FROM %s k WHERE %s', live, sets, v.stored, keyjoin);
    ELSIF v.action = 'insert' THEN
        EXECUTE format('DELETE FROM %s t USING %s k WHERE %s', live, v.stored, keyjoin);
    ELSE
        RAISE EXCEPTION 'ripcord vault entry % has unknown action %', entry, v.action;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
"#;

/// Ledger version 7: UPDATEs that change a key are kept with the keys they moved rows
/// to, and put back under the old keys.
pub const KEY_MOVES: &str = r#"
-- Version 2 of the keeping trigger body: a fourth argument is a statement run after the
-- copy (an UPDATE's new keys that were not among its old ones: its rows moved).
CREATE OR REPLACE FUNCTION ripcord.vault_keep_rows() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_ARGV[2] = ANY (string_to_array(current_setting('ripcord.vault_active', true), ',')) THEN
        EXECUTE format('INSERT INTO %s SELECT %s FROM ripcord_vault_rows', TG_ARGV[0], TG_ARGV[1]);
        IF TG_NARGS > 3 THEN
            EXECUTE TG_ARGV[3];
        END IF;
    END IF;
    RETURN NULL;
END
$fn$;

-- Put the rows of vault entry `entry` back into its table: re-insert deleted rows,
-- reset updated values (rows whose key an UPDATE changed go back under their old key),
-- remove inserted rows. Columns are matched by name as the table
-- is now; generated columns are recomputed.
CREATE OR REPLACE FUNCTION ripcord.vault_put_back(entry bigint) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    v ripcord.vault%ROWTYPE;
    live regclass;
    cols text;
    sets text;
    keyjoin text;
    keylist text;
    has_unique boolean;
    missing text;
    moved boolean;
    n bigint;
BEGIN
    SELECT * INTO v FROM ripcord.vault WHERE id = entry;
    IF NOT FOUND OR v.stored IS NULL OR to_regclass(v.stored) IS NULL THEN
        RAISE EXCEPTION 'ripcord vault entry % is gone (pruned?); its rows cannot be put back', entry;
    END IF;
    live := to_regclass(v.table_name);
    IF live IS NULL THEN
        RAISE EXCEPTION 'table % does not exist; the revert must re-create it before its kept rows can be put back', v.table_name;
    END IF;
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('%I = k.%I', a.attname, a.attname), ', ' ORDER BY a.attnum)
             FILTER (WHERE a.attname <> ALL (v.key_columns) AND a.attidentity <> 'a')
      INTO cols, sets
      FROM pg_attribute a
     WHERE a.attrelid = live AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       AND EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = v.stored::regclass
                     AND b.attname = a.attname AND b.attnum > 0 AND NOT b.attisdropped);
    IF v.action IN ('drop_column', 'alter_type') THEN
        -- The entry holds exactly the values the change destroyed: each needs its column.
        SELECT string_agg(quote_ident(b.attname), ', ' ORDER BY b.attnum) INTO missing
          FROM pg_attribute b
         WHERE b.attrelid = v.stored::regclass AND b.attnum > 0 AND NOT b.attisdropped
           AND b.attname <> ALL (v.key_columns)
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = live
                             AND a.attname = b.attname AND a.attnum > 0 AND NOT a.attisdropped);
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'the kept values of column(s) % of % cannot be put back: the revert did not re-create them (vault entry %)',
                missing, v.table_name, entry
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'make the revert re-create the column(s), then `ripcord rehash` the change; or remove its revert section so that ripcord writes one';
        END IF;
    END IF;
    SELECT string_agg(format('t.%I = k.%I', c, c), ' AND '), string_agg(quote_ident(c), ', ')
      INTO keyjoin, keylist FROM unnest(v.key_columns) c;
    IF v.action IN ('delete', 'truncate', 'drop_table') THEN
        SELECT EXISTS (
            SELECT 1 FROM pg_index i
             WHERE i.indrelid = live AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
               AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                     WHERE a.attrelid = live AND a.attnum = ANY (i.indkey))
                   = (SELECT array_agg(c ORDER BY c) FROM unnest(v.key_columns) c))
          INTO has_unique;
        IF keylist IS NOT NULL AND has_unique THEN
            -- An author's revert may already have put some rows back.
            EXECUTE format('INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s ON CONFLICT (%s) DO %s',
                live, cols, cols, v.stored, keylist,
                CASE WHEN sets IS NULL THEN 'NOTHING'
                     ELSE 'UPDATE SET ' || replace(sets, ' = k.', ' = EXCLUDED.') END);
        ELSE
            EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s',
                live, cols, cols, v.stored);
        END IF;
    ELSIF v.action IN ('update', 'drop_column', 'alter_type') THEN
        SELECT EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = v.stored::regclass
                         AND b.attname = 'ripcord_vault_moved' AND NOT b.attisdropped)
          INTO moved;
        IF moved THEN
            -- Rows the UPDATE gave a new key: remove them under it, then re-insert the
            -- old images whose key is gone.
            EXECUTE format('DELETE FROM %s t USING %s k WHERE k.ripcord_vault_moved AND %s', live, v.stored, keyjoin);
            EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s k WHERE k.ripcord_vault_moved = false AND NOT EXISTS (SELECT 1 FROM %s t WHERE %s)',
                live, cols, cols, v.stored, live, keyjoin);
        END IF;
        IF sets IS NULL THEN
            RETURN 0;
        END IF;
        EXECUTE format('UPDATE %s t SET %s FROM %s k WHERE %s%s', live, sets, v.stored, keyjoin,
            CASE WHEN moved THEN ' AND k.ripcord_vault_moved IS NOT TRUE' ELSE '' END);
    ELSIF v.action = 'insert' THEN
        EXECUTE format('DELETE FROM %s t USING %s k WHERE %s', live, v.stored, keyjoin);
    ELSE
        RAISE EXCEPTION 'ripcord vault entry % has unknown action %', entry, v.action;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
"#;

pub(crate) struct PgVault<'a> {
    pub(crate) client: &'a mut Client,
}

/// What one column was before the statement.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ColumnState {
    name: String,
    attnum: i16,
    data_type: String,
    collation: Option<String>,
    not_null: bool,
    default: Option<String>,
    identity: bool,
    generated: Option<String>,
    serial: bool,
}

impl PgVault<'_> {
    fn oid_of(&mut self, name: &str) -> Result<Option<u32>, EngineError> {
        Ok(self
            .client
            .query_one("SELECT to_regclass($1::text)::oid", &[&name])
            .map_err(map_error)?
            .get(0))
    }

    fn require_table(&mut self, name: &str) -> Result<u32, EngineError> {
        self.oid_of(name)?.ok_or_else(|| {
            invalid(
                format!("no table `{name}` to keep data from"),
                "the statement names a table that does not exist at this point of the change",
            )
        })
    }

    /// Every privilege granted on a user relation (table, view, sequence; table-wide
    /// and per column) to a role other than its owner, as `{"relation": "TABLE
    /// public.t", "grantee", "grant": "GRANT … ON TABLE public.t TO …"}`.
    fn relation_grants(&mut self) -> Result<Vec<Value>, EngineError> {
        self.with_catalog_names(|v| {
            Ok(v.client
                .query(
                    "WITH rel AS ( \
                       SELECT c.oid, c.relowner, c.relacl, \
                              CASE WHEN c.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || c.oid::regclass::text AS relation \
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND c.oid >= 16384 \
                         AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord') \
                         AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT LIKE 'ripcord\\_%'), \
                     acl AS ( \
                       SELECT r.relation, x.grantee, x.privilege_type, x.is_grantable, NULL::text AS col \
                       FROM rel r CROSS JOIN LATERAL aclexplode(r.relacl) x WHERE x.grantee <> r.relowner \
                       UNION ALL \
                       SELECT r.relation, x.grantee, x.privilege_type, x.is_grantable, quote_ident(a.attname) \
                       FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped \
                       CROSS JOIN LATERAL aclexplode(a.attacl) x WHERE x.grantee <> r.relowner) \
                     SELECT acl.relation, \
                            CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(g.rolname) END, \
                            format('GRANT %s%s ON %s TO %s%s', acl.privilege_type, coalesce(' (' || acl.col || ')', ''), \
                                   acl.relation, CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(g.rolname) END, \
                                   CASE WHEN acl.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) \
                     FROM acl LEFT JOIN pg_roles g ON g.oid = acl.grantee ORDER BY 1, 3",
                    &[],
                )
                .map_err(map_error)?
                .iter()
                .map(|r| {
                    json!({
                        "relation": r.get::<_, String>(0),
                        "grantee": r.get::<_, String>(1),
                        "grant": r.get::<_, String>(2),
                    })
                })
                .collect())
        })
    }

    /// Every comment on a user object, as `{"target": "<COMMENT ON target>", "comment"}`
    /// (the target qualified: `TABLE public.t`, `COLUMN public.t.a`, `FUNCTION
    /// public.f(integer)`, `CONSTRAINT c ON public.t`).
    fn comments(&mut self) -> Result<Vec<Value>, EngineError> {
        self.with_catalog_names(|v| {
            Ok(v.client
                .query(
                    "SELECT CASE o.type \
                              WHEN 'table column' THEN 'COLUMN ' || o.identity \
                              WHEN 'table constraint' THEN 'CONSTRAINT ' || o.identity \
                              WHEN 'domain constraint' THEN 'CONSTRAINT ' || replace(o.identity, ' on ', ' ON DOMAIN ') \
                              ELSE upper(o.type) || ' ' || o.identity END, d.description \
                     FROM pg_description d \
                     CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) o \
                     WHERE d.objoid >= 16384 AND o.identity IS NOT NULL \
                       AND coalesce(o.schema, '') NOT IN ('pg_catalog', 'information_schema', 'ripcord') \
                     ORDER BY 1",
                    &[],
                )
                .map_err(map_error)?
                .iter()
                .map(|r| {
                    json!({ "target": r.get::<_, String>(0), "comment": r.get::<_, String>(1) })
                })
                .collect())
        })
    }

    fn qualified(&mut self, oid: u32) -> Result<String, EngineError> {
        Ok(self
            .client
            .query_one(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                &[&oid],
            )
            .map_err(map_error)?
            .get(0))
    }

    /// The primary key, else the narrowest unique index over NOT NULL columns.
    fn key_columns(&mut self, oid: u32) -> Result<Vec<String>, EngineError> {
        let rows = self
            .client
            .query(
                "SELECT array_agg(a.attname::text ORDER BY k.ord) FROM (
                     SELECT i.indexrelid, i.indkey FROM pg_index i
                     WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid
                       AND i.indpred IS NULL AND i.indexprs IS NULL
                       AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) col
                                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = col
                                       WHERE NOT a.attnotnull)
                     ORDER BY i.indisprimary DESC, array_length(i.indkey, 1), i.indexrelid LIMIT 1
                 ) best
                 CROSS JOIN LATERAL unnest(best.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = $1 AND a.attnum = k.attnum
                 GROUP BY best.indexrelid",
                &[&oid],
            )
            .map_err(map_error)?;
        Ok(rows.first().map(|r| r.get(0)).unwrap_or_default())
    }

    fn require_key(&mut self, oid: u32, why: &str) -> Result<Vec<String>, EngineError> {
        let keys = self.key_columns(oid)?;
        if keys.is_empty() {
            let name = self.qualified(oid)?;
            return Err(invalid(
                format!(
                    "{name} has no primary key or unique NOT NULL key, so {why} could not be matched to their rows again"
                ),
                "add a primary key (or a unique index over NOT NULL columns) first, or give the change a revert section of its own",
            ));
        }
        Ok(keys)
    }

    fn column(&mut self, oid: u32, name: &str) -> Result<Option<ColumnState>, EngineError> {
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, a.attnum, format_type(a.atttypid, a.atttypmod), \
                        CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0 \
                             THEN format('%I.%I', cn.nspname, co.collname) END, \
                        a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '', \
                        a.attgenerated::text, \
                        EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.refobjid = a.attrelid \
                                  AND dep.refobjsubid = a.attnum AND dep.classid = 'pg_class'::regclass \
                                  AND dep.deptype = 'a' \
                                  AND (SELECT relkind FROM pg_class WHERE oid = dep.objid) = 'S') \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_collation co ON co.oid = a.attcollation \
                 LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&oid, &identifier_value(name)],
            )
            .map_err(map_error)?;
        Ok(rows.first().map(|r| {
            let expr: Option<String> = r.get(5);
            let generated: String = r.get(7);
            ColumnState {
                name: r.get(0),
                attnum: r.get(1),
                data_type: r.get(2),
                collation: r.get(3),
                not_null: r.get(4),
                default: if generated.is_empty() {
                    expr.clone()
                } else {
                    None
                },
                identity: r.get(6),
                generated: if generated.is_empty() { None } else { expr },
                serial: r.get(8),
            }
        }))
    }

    fn column_name(&mut self, oid: u32, attnum: i16) -> Result<String, EngineError> {
        Ok(self
            .client
            .query_one(
                "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = $1 AND attnum = $2",
                &[&oid, &attnum],
            )
            .map_err(map_error)?
            .get(0))
    }

    fn constraint_names(&mut self, oid: u32) -> Result<Vec<String>, EngineError> {
        Ok(self
            .client
            .query(
                "SELECT conname::text FROM pg_constraint WHERE conrelid = $1 ORDER BY 1",
                &[&oid],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// Views that would go with the table (or column): their undo cannot be written.
    fn dependent_views(
        &mut self,
        oid: u32,
        attnum: Option<i16>,
    ) -> Result<Vec<String>, EngineError> {
        Ok(self
            .client
            .query(
                "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d \
                 JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class \
                 WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1 AND v.oid <> $1 \
                   AND ($2::int2 IS NULL OR d.refobjsubid = $2) ORDER BY 1",
                &[&oid, &attnum],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// `ALTER TABLE … ADD CONSTRAINT` for foreign keys of other tables pointing at
    /// `oid` (at column `attnum` only, when given).
    fn inbound_foreign_keys(
        &mut self,
        oid: u32,
        attnum: Option<i16>,
    ) -> Result<Vec<String>, EngineError> {
        Ok(self
            .client
            .query(
                "SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', \
                        (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = k.conrelid), \
                        k.conname, pg_get_constraintdef(k.oid)) \
                 FROM pg_constraint k WHERE k.contype = 'f' AND k.confrelid = $1 AND k.conrelid <> $1 \
                   AND ($2::int2 IS NULL OR $2 = ANY (k.confkey)) ORDER BY k.conname",
                &[&oid, &attnum],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// Statements that re-create the constraints and indexes of `oid` that involve
    /// column `attnum` (a column drop removes them).
    fn column_dependents(&mut self, oid: u32, attnum: i16) -> Result<Vec<String>, EngineError> {
        let mut statements: Vec<String> = self
            .client
            .query(
                "SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', $1::oid::regclass, conname, \
                        pg_get_constraintdef(oid)) \
                 FROM pg_constraint WHERE conrelid = $1 AND $2 = ANY (conkey) \
                 ORDER BY contype <> 'p', conname",
                &[&oid, &attnum],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        statements.extend(
            self.client
                .query(
                    "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
                     WHERE i.indrelid = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                         WHERE c.conindid = i.indexrelid AND c.conrelid = $1) \
                       AND ($2 = ANY (i.indkey) OR EXISTS (SELECT 1 FROM pg_depend d \
                         WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid \
                           AND d.refobjid = $1 AND d.refobjsubid = $2)) ORDER BY 1",
                    &[&oid, &attnum],
                )
                .map_err(map_error)?
                .iter()
                .map(|r| r.get::<_, String>(0)),
        );
        Ok(statements)
    }

    fn new_entry(
        &mut self,
        origin: &VaultOrigin,
        action: &str,
        table: &str,
        keys: &[String],
        definition: Value,
    ) -> Result<(i64, String), EngineError> {
        let id: i64 = self
            .client
            .query_one(
                "INSERT INTO ripcord.vault (change, statement, action, table_name, key_columns, definition) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &origin.change,
                    &(origin.statement as i32 + 1),
                    &action,
                    &table,
                    &keys,
                    &definition,
                ],
            )
            .map_err(map_error)?
            .get(0);
        let stored = format!("ripcord.vault_{id}");
        self.client
            .execute(
                "UPDATE ripcord.vault SET stored = $2 WHERE id = $1",
                &[&id, &stored],
            )
            .map_err(map_error)?;
        Ok((id, stored))
    }

    /// Copy `select` into the entry's table now.
    fn store(&mut self, id: i64, stored: &str, select: &str) -> Result<(), EngineError> {
        let rows = self
            .client
            .execute(&format!("CREATE TABLE {stored} AS {select}"), &[])
            .map_err(map_error)?;
        self.client
            .execute(
                "UPDATE ripcord.vault SET rows = $2 WHERE id = $1",
                &[&id, &(rows as i64)],
            )
            .map_err(map_error)?;
        Ok(())
    }

    /// Keep the rows a DML statement on `oid` is about to change, by a statement
    /// trigger that copies its transition table.
    fn watch(
        &mut self,
        origin: &VaultOrigin,
        oid: u32,
        action: &str,
        keys: &[String],
    ) -> Result<Kept, EngineError> {
        let table = self.qualified(oid)?;
        let (id, stored) = self.new_entry(origin, action, &table, keys, Value::Null)?;
        let key_list = |prefix: &str| {
            keys.iter()
                .map(|k| format!("{prefix}{}", quote_ident(k)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (event, transition, columns) = match action {
            "insert" => ("INSERT", "NEW TABLE AS ripcord_vault_rows", key_list("")),
            "update" => (
                "UPDATE",
                "OLD TABLE AS ripcord_vault_rows NEW TABLE AS ripcord_vault_new",
                "*".to_string(),
            ),
            _ => ("DELETE", "OLD TABLE AS ripcord_vault_rows", "*".to_string()),
        };
        let (moved_column, moved_keys) = if action == "update" {
            // The keys an UPDATE moved rows to (new keys that were not old keys), so
            // that the put-back finds those rows.
            (
                format!("ALTER TABLE {stored} ADD COLUMN ripcord_vault_moved boolean;"),
                format!(
                    ", {}",
                    // Old images whose key no row holds after the UPDATE are marked
                    // `false`: only they are re-inserted, not rows an author's revert
                    // removed on purpose.
                    sql_literal(&format!(
                        "WITH moved AS (INSERT INTO {stored} ({keys}, ripcord_vault_moved) SELECT {new_keys}, true \
                         FROM ripcord_vault_new n WHERE NOT EXISTS (SELECT 1 FROM ripcord_vault_rows o \
                         WHERE ({old_keys}) = ({new_keys}))) \
                         UPDATE {stored} s SET ripcord_vault_moved = false \
                         WHERE s.ripcord_vault_moved IS NULL AND NOT EXISTS (SELECT 1 FROM ripcord_vault_new n \
                         WHERE ({new_keys}) = ({stored_keys}))",
                        keys = key_list(""),
                        new_keys = key_list("n."),
                        old_keys = key_list("o."),
                        stored_keys = key_list("s."),
                    ))
                ),
            )
        } else {
            (String::new(), String::new())
        };
        self.client
            .batch_execute(&format!(
                "CREATE TABLE {stored} AS SELECT {columns} FROM {table} WITH NO DATA;
                 {moved_column}
                 CREATE TRIGGER ripcord_vault_{id} AFTER {event} ON {table}
                   REFERENCING {transition}
                   FOR EACH STATEMENT EXECUTE FUNCTION ripcord.vault_keep_rows({}, {}, '{id}'{moved_keys});
                 SELECT set_config('ripcord.vault_active',
                     concat_ws(',', nullif(current_setting('ripcord.vault_active', true), ''), '{id}'), true);",
                sql_literal(&stored),
                sql_literal(&columns)
            ))
            .map_err(map_error)?;
        Ok(Kept {
            effect: Effect::Nothing,
            entry: Some(id),
            state: json!({ "trigger": format!("ripcord_vault_{id}"), "table_oid": oid, "stored": stored,
                           "moves": action == "update" }),
        })
    }

    /// What rebuilding table `oid` in its current column order takes (read before a
    /// column of it is dropped): its whole definition and the foreign keys of other
    /// tables that point at it; or `{"cannot": reason}` when a rebuild would lose
    /// something (views, capture, partitions, a publication, its row type in use).
    fn rebuild_plan(&mut self, oid: u32) -> Result<Value, EngineError> {
        let row = self
            .client
            .query_one(
                "SELECT c.oid::regclass::text, c.relkind::text, c.relispartition, \
                        c.relpersistence::text, c.reloptions IS NOT NULL, c.relreplident::text, \
                        EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.oid OR inhparent = c.oid), \
                        EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = c.oid AND tgname LIKE 'ripcord\\_capture\\_%'), \
                        ARRAY(SELECT pubname::text FROM pg_publication_rel r \
                              JOIN pg_publication p ON p.oid = r.prpubid WHERE r.prrelid = c.oid ORDER BY 1), \
                        ARRAY(SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_depend d \
                              WHERE d.deptype = 'n' AND d.refclassid = 'pg_type'::regclass \
                                AND d.refobjid IN (c.reltype, (SELECT typarray FROM pg_type WHERE oid = c.reltype)) \
                              ORDER BY 1) \
                 FROM pg_class c WHERE c.oid = $1",
                &[&oid],
            )
            .map_err(map_error)?;
        let table: String = row.get(0);
        let publications: Vec<String> = row.get(8);
        let row_type_users: Vec<String> = row.get(9);
        let views = self.dependent_views(oid, None)?;
        let reason = if row.get::<_, String>(1) != "r"
            || row.get::<_, bool>(2)
            || row.get::<_, bool>(6)
        {
            Some(format!(
                "{table} is partitioned, a partition or part of an inheritance tree"
            ))
        } else if row.get::<_, String>(3) != "p" {
            Some(format!("{table} is unlogged or temporary"))
        } else if row.get::<_, bool>(4) || row.get::<_, String>(5) != "d" {
            Some(format!(
                "{table} has storage parameters or a replica identity a rebuild would not carry"
            ))
        } else if row.get::<_, bool>(7) {
            Some(format!(
                "{table} is captured (`ripcord capture disable` it first, or drop `column-order: rebuild`)"
            ))
        } else if !views.is_empty() {
            Some(format!("views depend on {table}: {}", views.join(", ")))
        } else if !publications.is_empty() {
            Some(format!(
                "{table} is in publications: {}",
                publications.join(", ")
            ))
        } else if !row_type_users.is_empty() {
            Some(format!(
                "other objects use the row type of {table}: {}",
                row_type_users.join(", ")
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Ok(json!({
                "cannot": format!("`column-order: rebuild` cannot rebuild {table}: {reason}")
            }));
        }
        let inbound: Vec<(String, String)> = self
            .client
            .query(
                "SELECT format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', k.conrelid::regclass, k.conname), \
                        format('ALTER TABLE %s ADD CONSTRAINT %I %s', k.conrelid::regclass, k.conname, \
                               pg_get_constraintdef(k.oid)) \
                 FROM pg_constraint k WHERE k.contype = 'f' AND k.confrelid = $1 AND k.conrelid <> $1 \
                 ORDER BY k.conname",
                &[&oid],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(json!({
            "definition": definition(self.client, oid)?,
            "inbound_drop": inbound.iter().map(|(d, _)| d).collect::<Vec<_>>(),
            "inbound_add": inbound.iter().map(|(_, a)| a).collect::<Vec<_>>(),
        }))
    }

    fn with_catalog_names<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        // Definitions are read fully qualified; the change's own search_path comes back.
        let saved: String = self
            .client
            .query_one("SELECT current_setting('search_path')", &[])
            .map_err(map_error)?
            .get(0);
        self.client
            .batch_execute("SET LOCAL search_path = ''")
            .map_err(map_error)?;
        let result = f(self);
        self.client
            .execute("SELECT set_config('search_path', $1, true)", &[&saved])
            .map_err(map_error)?;
        result
    }

    fn keep_effect(&mut self, effect: &Effect, origin: &VaultOrigin) -> Result<Kept, EngineError> {
        let kept = |entry: Option<i64>, state: Value| Kept {
            effect: effect.clone(),
            entry,
            state,
        };
        match effect {
            Effect::Nothing => Ok(kept(None, Value::Null)),
            Effect::DropIndex { name, if_exists } => {
                let Some(oid) = self.oid_of(name)? else {
                    if *if_exists {
                        return Ok(kept(None, json!({ "absent": true })));
                    }
                    return Err(invalid(
                        format!("no index `{name}` to keep"),
                        "the statement drops an index that does not exist",
                    ));
                };
                let row = self.with_catalog_names(|v| {
                    v.client
                        .query_one(
                            "SELECT pg_get_indexdef($1), obj_description($1, 'pg_class'), $1::regclass::text \
                             FROM pg_index WHERE indexrelid = $1",
                            &[&oid],
                        )
                        .map_err(map_error)
                })?;
                let (definition, comment, qualified): (String, Option<String>, String) =
                    (row.get(0), row.get(1), row.get(2));
                Ok(kept(
                    None,
                    json!({ "definition": definition, "comment": comment, "qualified": qualified }),
                ))
            }
            Effect::DropFunction {
                signature,
                if_exists,
            } => {
                let oid: Option<u32> = self
                    .client
                    .query_one(
                        "SELECT (CASE WHEN $1 LIKE '%(%' THEN to_regprocedure($1)::oid \
                                      ELSE to_regproc($1)::oid END)",
                        &[&signature],
                    )
                    .map_err(map_error)?
                    .get(0);
                let Some(oid) = oid else {
                    if *if_exists {
                        return Ok(kept(None, json!({ "absent": true })));
                    }
                    return Err(invalid(
                        format!(
                            "no function `{signature}` to keep (or its name alone is ambiguous)"
                        ),
                        "name the function with its argument types, e.g. DROP FUNCTION f(integer)",
                    ));
                };
                let state = self.with_catalog_names(|v| {
                    let row = v
                        .client
                        .query_one(
                            "SELECT p.prokind::text, $1::oid::regprocedure::text, \
                                    CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END, \
                                    obj_description(p.oid, 'pg_proc'), p.proacl IS NOT NULL, \
                                    quote_ident(pg_get_userbyid(p.proowner)), \
                                    quote_ident(current_user) \
                             FROM pg_proc p WHERE p.oid = $1",
                            &[&oid],
                        )
                        .map_err(map_error)?;
                    let grants: Vec<String> = v
                        .client
                        .query(
                            "SELECT format('%s %s', x.privilege_type, \
                                    CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END) \
                                    || CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END \
                             FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) x \
                             LEFT JOIN pg_roles r ON r.oid = x.grantee \
                             WHERE p.oid = $1 AND x.grantee <> p.proowner ORDER BY 1",
                            &[&oid],
                        )
                        .map_err(map_error)?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    let (kind, identity, definition, comment, own_acl, owner, me): (
                        String,
                        String,
                        Option<String>,
                        Option<String>,
                        bool,
                        String,
                        String,
                    ) = (
                        row.get(0),
                        row.get(1),
                        row.get(2),
                        row.get(3),
                        row.get(4),
                        row.get(5),
                        row.get(6),
                    );
                    Ok(json!({
                        "kind": kind, "identity": identity, "definition": definition,
                        "comment": comment, "own_acl": own_acl, "grants": grants,
                        "owner": (owner != me).then_some(owner),
                    }))
                })?;
                Ok(kept(None, state))
            }
            Effect::Comment => {
                let comments = self.comments()?;
                Ok(kept(None, json!({ "comments": comments })))
            }
            Effect::Privileges => {
                let grants = self.relation_grants()?;
                Ok(kept(None, json!({ "grants": grants })))
            }
            Effect::Creates {
                kind,
                name,
                if_not_exists,
                ..
            } => {
                let existed = *if_not_exists && self.oid_of(name)?.is_some();
                Ok(kept(
                    None,
                    json!({ "existed": existed, "kind": kind, "name": name }),
                ))
            }
            Effect::AddColumn { table, column } => {
                let oid = self.require_table(table)?;
                Ok(kept(
                    None,
                    json!({ "oid": oid, "column": identifier_value(column) }),
                ))
            }
            Effect::RenameTable { table, .. } => {
                let oid = self.require_table(table)?;
                let old: String = self
                    .client
                    .query_one("SELECT relname::text FROM pg_class WHERE oid = $1", &[&oid])
                    .map_err(map_error)?
                    .get(0);
                Ok(kept(None, json!({ "oid": oid, "old": old })))
            }
            Effect::RenameColumn { table, column, .. }
            | Effect::ColumnDefault { table, column }
            | Effect::ColumnNotNull { table, column } => {
                let oid = self.require_table(table)?;
                let state = self.column(oid, column)?.ok_or_else(|| {
                    invalid(
                        format!("no column {column} in {table}"),
                        "check the column name",
                    )
                })?;
                Ok(kept(None, json!({ "oid": oid, "column": state })))
            }
            Effect::AddConstraint { table } => {
                let oid = self.require_table(table)?;
                let names = self.constraint_names(oid)?;
                Ok(kept(None, json!({ "oid": oid, "before": names })))
            }
            Effect::DropConstraint { table, name } => {
                let oid = self.require_table(table)?;
                let row = self
                    .client
                    .query_opt(
                        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
                         WHERE conrelid = $1 AND conname = $2",
                        &[&oid, &identifier_value(name)],
                    )
                    .map_err(map_error)?;
                let (name, def): (Option<String>, Option<String>) = match row {
                    Some(r) => (Some(r.get(0)), Some(r.get(1))),
                    None => (None, None),
                };
                let inbound = self.inbound_foreign_keys_of_constraint(oid, name.as_deref())?;
                Ok(kept(
                    None,
                    json!({ "oid": oid, "name": name, "definition": def, "inbound": inbound }),
                ))
            }
            Effect::DropTable { table, if_exists } => {
                let Some(oid) = self.oid_of(table)? else {
                    if *if_exists {
                        return Ok(kept(None, json!({ "absent": true })));
                    }
                    return Err(invalid(
                        format!("no table `{table}` to keep"),
                        "the statement drops a table that does not exist",
                    ));
                };
                let keys = self.key_columns(oid)?;
                let (def, inbound, views) = self.with_catalog_names(|v| {
                    Ok((
                        definition(v.client, oid)?,
                        v.inbound_foreign_keys(oid, None)?,
                        v.dependent_views(oid, None)?,
                    ))
                })?;
                if def.partition_by.is_some() {
                    return Err(invalid(
                        format!(
                            "{} is partitioned: dropping it drops its partitions, which the vault does not keep",
                            def.qualified
                        ),
                        "drop its partitions one by one first (the vault keeps each), or give the change a revert section of its own",
                    ));
                }
                let me: String = self
                    .client
                    .query_one("SELECT quote_ident(current_user)", &[])
                    .map_err(map_error)?
                    .get(0);
                let (id, stored) = self.new_entry(
                    origin,
                    "drop_table",
                    &def.qualified,
                    &keys,
                    serde_json::to_value(&def).unwrap_or(Value::Null),
                )?;
                self.store(id, &stored, &format!("SELECT * FROM {}", def.qualified))?;
                Ok(kept(
                    Some(id),
                    json!({ "definition": def, "inbound": inbound, "views": views, "me": me }),
                ))
            }
            Effect::Truncate { table } => {
                let oid = self.require_table(table)?;
                let keys = self.key_columns(oid)?;
                let qualified = self.qualified(oid)?;
                let (id, stored) =
                    self.new_entry(origin, "truncate", &qualified, &keys, Value::Null)?;
                self.store(id, &stored, &format!("SELECT * FROM {qualified}"))?;
                Ok(kept(Some(id), Value::Null))
            }
            Effect::Delete { table } => {
                let oid = self.require_table(table)?;
                let keys = self.key_columns(oid)?;
                let watched = self.watch(origin, oid, "delete", &keys)?;
                Ok(kept(watched.entry, watched.state))
            }
            Effect::Update { table } => {
                let oid = self.require_table(table)?;
                let keys = self.require_key(oid, "the old values of updated rows")?;
                let watched = self.watch(origin, oid, "update", &keys)?;
                Ok(kept(watched.entry, watched.state))
            }
            Effect::Insert { table } => {
                let oid = self.require_table(table)?;
                let keys = self.key_columns(oid)?;
                if keys.is_empty() {
                    let name = self.qualified(oid)?;
                    return Ok(kept(
                        None,
                        json!({ "cannot": format!("{name} has no primary key or unique NOT NULL key, so the inserted rows could not be told apart") }),
                    ));
                }
                let watched = self.watch(origin, oid, "insert", &keys)?;
                Ok(kept(watched.entry, watched.state))
            }
            Effect::DropColumn { table, column } | Effect::AlterType { table, column } => {
                let oid = self.require_table(table)?;
                let Some(state) = self.column(oid, column)? else {
                    return Ok(kept(None, json!({ "absent": true })));
                };
                let dropping = matches!(effect, Effect::DropColumn { .. });
                let what = if dropping {
                    "the values of the dropped column"
                } else {
                    "the old values of the column"
                };
                let keys = self.require_key(oid, what)?;
                let qualified = self.qualified(oid)?;
                if keys.contains(&state.name) {
                    // Its values are what would match the kept rows to the table again.
                    return Err(invalid(
                        format!(
                            "column {} is part of the key of {qualified}, so {what} could not be matched to their rows again",
                            state.name
                        ),
                        "give the change a revert section of its own, or declare it `-- irreversible: <reason>`",
                    ));
                }
                let (dependents, inbound, views) = if dropping {
                    self.with_catalog_names(|v| {
                        Ok((
                            v.column_dependents(oid, state.attnum)?,
                            v.inbound_foreign_keys(oid, Some(state.attnum))?,
                            v.dependent_views(oid, Some(state.attnum))?,
                        ))
                    })?
                } else {
                    Default::default()
                };
                // The column's own sequence goes with it; the undo makes it again and
                // sets it to the value it had reached.
                let sequence = if dropping && (state.identity || state.serial) {
                    crate::snapshot::owned_sequences(self.client, oid)?
                        .into_iter()
                        .find(|s| s.column == state.name)
                } else {
                    None
                };
                let schema: String = self
                    .client
                    .query_one(
                        "SELECT quote_ident(n.nspname) FROM pg_class c \
                         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                        &[&oid],
                    )
                    .map_err(map_error)?
                    .get(0);
                let identity_kind: Option<String> = if state.identity {
                    self.client
                        .query_one(
                            "SELECT CASE attidentity WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END \
                             FROM pg_attribute WHERE attrelid = $1 AND attnum = $2",
                            &[&oid, &state.attnum],
                        )
                        .map_err(map_error)?
                        .get(0)
                } else {
                    None
                };
                let rebuild = if dropping && origin.rebuild_column_order {
                    self.with_catalog_names(|v| v.rebuild_plan(oid))?
                } else {
                    Value::Null
                };
                let action = if dropping {
                    "drop_column"
                } else {
                    "alter_type"
                };
                let (id, stored) = self.new_entry(
                    origin,
                    action,
                    &qualified,
                    &keys,
                    serde_json::to_value(&state).unwrap_or(Value::Null),
                )?;
                let mut columns: Vec<String> = keys.iter().map(|k| quote_ident(k)).collect();
                columns.push(quote_ident(&state.name));
                self.store(
                    id,
                    &stored,
                    &format!("SELECT {} FROM {qualified}", columns.join(", ")),
                )?;
                Ok(kept(
                    Some(id),
                    json!({ "oid": oid, "column": state, "dependents": dependents,
                            "inbound": inbound, "views": views, "sequence": sequence,
                            "schema": schema, "identity": identity_kind, "rebuild": rebuild }),
                ))
            }
        }
    }

    fn inbound_foreign_keys_of_constraint(
        &mut self,
        oid: u32,
        name: Option<&str>,
    ) -> Result<Vec<String>, EngineError> {
        let Some(name) = name else {
            return Ok(Vec::new());
        };
        Ok(self
            .client
            .query(
                "SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', k.conrelid::regclass, \
                        k.conname, pg_get_constraintdef(k.oid)) \
                 FROM pg_constraint u JOIN pg_constraint k ON k.contype = 'f' AND k.conindid = u.conindid \
                   AND k.confrelid = u.conrelid \
                 WHERE u.conrelid = $1 AND u.conname = $2 AND u.contype IN ('p', 'u') ORDER BY k.conname",
                &[&oid, &name],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}

/// The statements that rebuild a table in the column order of `plan`'s definition
/// (read before a column was dropped), once the dropped column is back at the end with
/// its values: a copy in a schema of its own, filled from the live table, then swapped
/// for it with every constraint, index, trigger, grant, comment, policy and foreign key
/// (its own and other tables') re-created, and sequences continuing where they were.
fn rebuild_in_order(entry: i64, plan: &Value) -> Result<Vec<String>, EngineError> {
    if plan.get("cannot").is_some() {
        return Ok(Vec::new());
    }
    let mut def: TableDefinition = serde_json::from_value(plan["definition"].clone())
        .map_err(|e| invalid(e.to_string(), "report this as a bug"))?;
    let schema = quote_ident(&def.schema);
    let sequence_name = |name: &str| format!("{schema}.{}", quote_ident(name));
    // Serial columns keep their live sequence (with the value it has reached); identity
    // columns get a new one, set to the value of the old.
    let serials: Vec<OwnedSequence> = def
        .sequences
        .iter()
        .filter(|s| !s.identity)
        .cloned()
        .collect();
    def.sequences.retain(|s| s.identity);
    for sequence in &serials {
        if let Some(column) = def.columns.iter_mut().find(|c| c.name == sequence.column) {
            column.default = Some(format!(
                "nextval({}::regclass)",
                sql_literal(&sequence_name(&sequence.name))
            ));
        }
    }
    let staging_name = format!("ripcord_rebuild_{entry}");
    let staging = quote_ident(&staging_name);
    let place = RestorePlace::Staging {
        schema: staging_name.clone(),
    };
    let copy = def.qualified_in(&place);
    let columns = def
        .columns
        .iter()
        .filter(|c| c.generated.is_none())
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statements = vec![format!("CREATE SCHEMA {staging}")];
    statements.extend(create_statements(&def, &place));
    statements.push(format!(
        "INSERT INTO {copy} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM {}",
        def.qualified
    ));
    for sequence in def.sequences.iter() {
        statements.push(format!(
            "SELECT setval({}::regclass, s.last_value, s.is_called) FROM {} s",
            sql_literal(&format!("{staging}.{}", quote_ident(&sequence.name))),
            sequence_name(&sequence.name)
        ));
    }
    for sequence in &serials {
        statements.push(format!(
            "ALTER SEQUENCE {} OWNED BY NONE",
            sequence_name(&sequence.name)
        ));
    }
    statements.extend(strings(&plan["inbound_drop"]));
    statements.push(format!("DROP TABLE {}", def.qualified));
    statements.push(format!("ALTER TABLE {copy} SET SCHEMA {schema}"));
    for sequence in &serials {
        statements.push(format!(
            "ALTER SEQUENCE {} OWNED BY {}.{}",
            sequence_name(&sequence.name),
            def.qualified,
            quote_ident(&sequence.column)
        ));
    }
    // Identity sequences moved along with the table; their values are set above.
    let identities = std::mem::take(&mut def.sequences);
    // The copy belongs to whoever runs the revert: give it back to its owner always.
    statements.extend(post_data_statements(&def, &RestorePlace::Original, ""));
    def.sequences = identities;
    for fk in &def.foreign_keys {
        statements.push(format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {}",
            def.qualified,
            quote_ident(&fk.name),
            fk.definition
        ));
    }
    statements.extend(strings(&plan["inbound_add"]));
    statements.push(format!("DROP SCHEMA {staging}"));
    Ok(statements)
}

fn put_back(id: i64, what: &str) -> String {
    format!("SELECT ripcord.vault_put_back({id}) /* {what} */")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Vault for PgVault<'_> {
    fn keep(&mut self, effect: &Effect, origin: &VaultOrigin) -> Result<Kept, EngineError> {
        // A drill's scratch database has no ledger; it gets just the vault.
        let present: bool = self
            .client
            .query_one("SELECT to_regclass('ripcord.vault') IS NOT NULL", &[])
            .map_err(map_error)?
            .get(0);
        if !present {
            self.client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS ripcord; {LEDGER_STEP} {PUT_BACK_V2} {KEY_MOVES}"
                ))
                .map_err(map_error)?;
        }
        self.keep_effect(effect, origin)
    }

    fn undo(&mut self, kept: &Kept) -> Result<Undo, EngineError> {
        let state = &kept.state;
        let mut moved_rows = 0;
        if state.get("trigger").is_some() {
            let stored = state["stored"].as_str().unwrap_or_default();
            let moves = state["moves"].as_bool() == Some(true);
            let images = if moves {
                " WHERE ripcord_vault_moved IS NOT TRUE"
            } else {
                ""
            };
            self.client
                .batch_execute(&format!(
                    "SELECT set_config('ripcord.vault_active', '', true);
                     UPDATE ripcord.vault SET rows = (SELECT count(*) FROM {stored}{images}) WHERE id = {};",
                    kept.entry.unwrap_or_default()
                ))
                .map_err(map_error)?;
            if moves {
                moved_rows = self
                    .client
                    .query_one(
                        &format!("SELECT count(*) FROM {stored} WHERE ripcord_vault_moved"),
                        &[],
                    )
                    .map_err(map_error)?
                    .get::<_, i64>(0);
            }
        }
        if state.get("absent").and_then(Value::as_bool) == Some(true) {
            return Ok(Undo::default());
        }
        let oid = state.get("oid").and_then(Value::as_u64).map(|o| o as u32);
        let mut undo = Undo::default();
        let cannot = |undo: &mut Undo, reason: Option<&str>| {
            if let Some(reason) = reason {
                undo.cannot_generate = Some(reason.to_string());
            }
        };
        match &kept.effect {
            Effect::Nothing => {}
            Effect::DropIndex { .. } => {
                if let Some(definition) = state["definition"].as_str() {
                    undo.generated.push(definition.to_string());
                }
                if let (Some(comment), Some(qualified)) =
                    (state["comment"].as_str(), state["qualified"].as_str())
                {
                    undo.generated.push(format!(
                        "COMMENT ON INDEX {qualified} IS {}",
                        sql_literal(comment)
                    ));
                }
            }
            Effect::DropFunction { .. } => {
                let Some(definition) = state["definition"].as_str() else {
                    cannot(
                        &mut undo,
                        Some(&format!(
                            "{} is an aggregate or window function, which ripcord does not re-create",
                            state["identity"].as_str().unwrap_or("the function")
                        )),
                    );
                    return Ok(undo);
                };
                let identity = state["identity"].as_str().unwrap_or_default();
                let keyword = if state["kind"].as_str() == Some("p") {
                    "PROCEDURE"
                } else {
                    "FUNCTION"
                };
                undo.generated.push(definition.to_string());
                if state["own_acl"].as_bool() == Some(true) {
                    // Re-created functions get the default privileges: put back the
                    // ones it had, EXECUTE for PUBLIC only if it was granted.
                    undo.generated
                        .push(format!("REVOKE ALL ON {keyword} {identity} FROM PUBLIC"));
                    for grant in strings(&state["grants"]) {
                        let (privilege, rest) = grant.split_once(' ').unwrap_or((&grant, ""));
                        undo.generated.push(format!(
                            "GRANT {privilege} ON {keyword} {identity} TO {rest}"
                        ));
                    }
                }
                if let Some(owner) = state["owner"].as_str() {
                    undo.generated
                        .push(format!("ALTER {keyword} {identity} OWNER TO {owner}"));
                }
                if let Some(comment) = state["comment"].as_str() {
                    undo.generated.push(format!(
                        "COMMENT ON {keyword} {identity} IS {}",
                        sql_literal(comment)
                    ));
                }
            }
            Effect::Privileges => {
                // relation -> its grant statements; grantees seen now, to revoke from.
                let group = |rows: Vec<Value>| {
                    let mut map: std::collections::BTreeMap<String, Vec<(String, String)>> =
                        Default::default();
                    for row in rows {
                        if let (Some(relation), Some(grantee), Some(grant)) = (
                            row["relation"].as_str(),
                            row["grantee"].as_str(),
                            row["grant"].as_str(),
                        ) {
                            map.entry(relation.to_string())
                                .or_default()
                                .push((grantee.to_string(), grant.to_string()));
                        }
                    }
                    map
                };
                let before = group(state["grants"].as_array().cloned().unwrap_or_default());
                let after = group(self.relation_grants()?);
                let relations: std::collections::BTreeSet<&String> =
                    before.keys().chain(after.keys()).collect();
                for relation in relations {
                    let old = before.get(relation).cloned().unwrap_or_default();
                    let new = after.get(relation).cloned().unwrap_or_default();
                    if old == new {
                        continue;
                    }
                    let (keyword, name) = relation.split_once(' ').unwrap_or(("TABLE", relation));
                    let mut grantees: Vec<&String> = new.iter().map(|(g, _)| g).collect();
                    grantees.sort();
                    grantees.dedup();
                    for grantee in grantees {
                        undo.generated
                            .push(format!("REVOKE ALL ON {keyword} {name} FROM {grantee}"));
                    }
                    for (_, grant) in old {
                        undo.generated.push(grant);
                    }
                }
            }
            Effect::Comment => {
                let before: std::collections::BTreeMap<String, Value> = state["comments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| Some((c["target"].as_str()?.to_string(), c["comment"].clone())))
                    .collect();
                let after: std::collections::BTreeMap<String, Value> = self
                    .comments()?
                    .into_iter()
                    .filter_map(|c| Some((c["target"].as_str()?.to_string(), c["comment"].clone())))
                    .collect();
                let targets: std::collections::BTreeSet<&String> =
                    before.keys().chain(after.keys()).collect();
                for target in targets {
                    let old = before.get(target).and_then(Value::as_str);
                    if old != after.get(target).and_then(Value::as_str) {
                        undo.generated.push(format!(
                            "COMMENT ON {target} IS {}",
                            old.map_or_else(|| "NULL".to_string(), sql_literal)
                        ));
                    }
                }
            }
            Effect::Creates { kind, name, .. } => {
                if state["existed"].as_bool() != Some(true) {
                    let oid = self.oid_of(name)?.ok_or_else(|| {
                        invalid(
                            format!("{name} was not created"),
                            "the statement did not create what it names",
                        )
                    })?;
                    let qualified = self.qualified(oid)?;
                    let _: CreatedKind = *kind;
                    undo.generated
                        .push(format!("DROP {} {qualified}", kind.keyword()));
                }
            }
            Effect::AddColumn { .. } => {
                let oid = oid.unwrap_or_default();
                let table = self.qualified(oid)?;
                let column = state["column"].as_str().unwrap_or_default();
                undo.generated.push(format!(
                    "ALTER TABLE {table} DROP COLUMN {}",
                    quote_ident(column)
                ));
            }
            Effect::RenameTable { .. } => {
                let table = self.qualified(oid.unwrap_or_default())?;
                let old = state["old"].as_str().unwrap_or_default();
                undo.generated.push(format!(
                    "ALTER TABLE {table} RENAME TO {}",
                    quote_ident(old)
                ));
            }
            Effect::RenameColumn { .. }
            | Effect::ColumnDefault { .. }
            | Effect::ColumnNotNull { .. } => {
                let oid = oid.unwrap_or_default();
                let column: ColumnState = serde_json::from_value(state["column"].clone())
                    .map_err(|e| invalid(e.to_string(), "report this as a bug"))?;
                let table = self.qualified(oid)?;
                let now = self.column_name(oid, column.attnum)?;
                let sql = match &kept.effect {
                    Effect::RenameColumn { .. } => {
                        format!(
                            "ALTER TABLE {table} RENAME COLUMN {now} TO {}",
                            quote_ident(&column.name)
                        )
                    }
                    Effect::ColumnDefault { .. } => match &column.default {
                        Some(default) => {
                            format!("ALTER TABLE {table} ALTER COLUMN {now} SET DEFAULT {default}")
                        }
                        None => format!("ALTER TABLE {table} ALTER COLUMN {now} DROP DEFAULT"),
                    },
                    _ => format!(
                        "ALTER TABLE {table} ALTER COLUMN {now} {} NOT NULL",
                        if column.not_null { "SET" } else { "DROP" }
                    ),
                };
                undo.generated.push(sql);
            }
            Effect::AddConstraint { .. } => {
                let oid = oid.unwrap_or_default();
                let before = strings(&state["before"]);
                let table = self.qualified(oid)?;
                for name in self.constraint_names(oid)? {
                    if !before.contains(&name) {
                        undo.generated.push(format!(
                            "ALTER TABLE {table} DROP CONSTRAINT {}",
                            quote_ident(&name)
                        ));
                    }
                }
            }
            Effect::DropConstraint { .. } => {
                let table = self.qualified(oid.unwrap_or_default())?;
                if let (Some(name), Some(def)) =
                    (state["name"].as_str(), state["definition"].as_str())
                {
                    undo.generated.push(format!(
                        "ALTER TABLE {table} ADD CONSTRAINT {} {def}",
                        quote_ident(name)
                    ));
                    undo.generated.extend(strings(&state["inbound"]));
                }
            }
            Effect::DropTable { .. } => {
                let id = kept.entry.unwrap_or_default();
                let def: TableDefinition = serde_json::from_value(state["definition"].clone())
                    .map_err(|e| invalid(e.to_string(), "report this as a bug"))?;
                let views = strings(&state["views"]);
                if !views.is_empty() {
                    cannot(
                        &mut undo,
                        Some(&format!(
                            "dropping {} also drops views ripcord cannot re-create: {}",
                            def.qualified,
                            views.join(", ")
                        )),
                    );
                }
                let place = RestorePlace::Original;
                let what = format!("rows of {}", def.qualified);
                undo.generated.extend(create_statements(&def, &place));
                undo.generated.push(put_back(id, &what));
                undo.generated.extend(post_data_statements(
                    &def,
                    &place,
                    state["me"].as_str().unwrap_or_default(),
                ));
                // A dropped partition goes back under its parent (its inherited keys,
                // indexes and foreign keys come back with the attach).
                undo.generated.extend(attach_statement(&def, &place));
                for fk in &def.foreign_keys {
                    undo.generated.push(format!(
                        "ALTER TABLE {} ADD CONSTRAINT {} {}",
                        def.qualified,
                        quote_ident(&fk.name),
                        fk.definition
                    ));
                }
                undo.generated.extend(strings(&state["inbound"]));
                undo.restore.push(put_back(id, &what));
            }
            Effect::Truncate { table }
            | Effect::Delete { table }
            | Effect::Update { table }
            | Effect::Insert { table } => {
                cannot(&mut undo, state.get("cannot").and_then(Value::as_str));
                if moved_rows > 0
                    && let Some(oid) = state["table_oid"].as_u64()
                {
                    let referenced_by = self.inbound_foreign_keys(oid as u32, None)?;
                    if !referenced_by.is_empty() {
                        // Putting such rows back under their old key means deleting them
                        // under the new one, which other tables' rows now reference.
                        cannot(
                            &mut undo,
                            Some(&format!(
                                "the UPDATE changed the key of {moved_rows} row(s) of {table}, which other tables reference by foreign key"
                            )),
                        );
                        undo.restore.clear();
                        return Ok(undo);
                    }
                }
                if let Some(id) = kept.entry {
                    let verb = match &kept.effect {
                        Effect::Truncate { .. } => "rows TRUNCATE removed from",
                        Effect::Delete { .. } => "rows DELETE removed from",
                        Effect::Update { .. } => "old values of rows UPDATE changed in",
                        _ => "remove rows INSERT added to",
                    };
                    let statement = put_back(id, &format!("{verb} {table}"));
                    undo.generated.push(statement.clone());
                    undo.restore.push(statement);
                }
            }
            Effect::DropColumn { .. } | Effect::AlterType { .. } => {
                let oid = oid.unwrap_or_default();
                let id = kept.entry.unwrap_or_default();
                let views = strings(&state["views"]);
                if !views.is_empty() {
                    cannot(
                        &mut undo,
                        Some(&format!(
                            "views ripcord cannot re-create depend on the column: {}",
                            views.join(", ")
                        )),
                    );
                }
                let column: ColumnState = serde_json::from_value(state["column"].clone())
                    .map_err(|e| invalid(e.to_string(), "report this as a bug"))?;
                let table = self.qualified(oid)?;
                let name = quote_ident(&column.name);
                let collate = column
                    .collation
                    .as_ref()
                    .map(|c| format!(" COLLATE {c}"))
                    .unwrap_or_default();
                let put = put_back(id, &format!("values of {table}.{name}"));
                let sequence: Option<OwnedSequence> =
                    serde_json::from_value(state["sequence"].clone()).unwrap_or(None);
                let sequence_name = sequence.as_ref().map(|s| {
                    format!(
                        "{}.{}",
                        state["schema"].as_str().unwrap_or_default(),
                        quote_ident(&s.name)
                    )
                });
                if let (Some(s), Some(q)) = (&sequence, &sequence_name)
                    && !s.identity
                {
                    undo.generated.push(format!(
                        "CREATE SEQUENCE {q} AS {} {}",
                        s.data_type, s.options
                    ));
                }
                let g = &mut undo.generated;
                if matches!(kept.effect, Effect::DropColumn { .. }) {
                    match &column.generated {
                        Some(expr) => g.push(format!(
                            "ALTER TABLE {table} ADD COLUMN {name} {}{collate} GENERATED ALWAYS AS ({expr}) STORED",
                            column.data_type
                        )),
                        None => {
                            // Rows inserted after the drop get the default, as they
                            // would have; the put-back then overwrites the kept rows.
                            let default = column
                                .default
                                .as_ref()
                                .filter(|_| sequence.is_none())
                                .map(|d| format!(" DEFAULT {d}"))
                                .unwrap_or_default();
                            g.push(format!(
                                "ALTER TABLE {table} ADD COLUMN {name} {}{collate}{default}",
                                column.data_type
                            ));
                            g.push(put.clone());
                        }
                    }
                    // A rebuild re-creates them from the whole table's definition.
                    if state["rebuild"].is_null() {
                        g.extend(strings(&state["dependents"]));
                        g.extend(strings(&state["inbound"]));
                    }
                } else {
                    if column.default.is_some() {
                        g.push(format!(
                            "ALTER TABLE {table} ALTER COLUMN {name} DROP DEFAULT"
                        ));
                    }
                    if column.not_null {
                        g.push(format!(
                            "ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL"
                        ));
                    }
                    g.push(format!(
                        "ALTER TABLE {table} ALTER COLUMN {name} TYPE {}{collate} USING NULL",
                        column.data_type
                    ));
                    g.push(put.clone());
                }
                if column.generated.is_none() {
                    if let Some(default) = &column.default {
                        g.push(format!(
                            "ALTER TABLE {table} ALTER COLUMN {name} SET DEFAULT {default}"
                        ));
                    }
                    if column.not_null {
                        g.push(format!(
                            "ALTER TABLE {table} ALTER COLUMN {name} SET NOT NULL"
                        ));
                    }
                }
                if let (Some(s), Some(q)) = (&sequence, &sequence_name) {
                    if s.identity {
                        g.push(format!(
                            "ALTER TABLE {table} ALTER COLUMN {name} ADD GENERATED {} AS IDENTITY (SEQUENCE NAME {q} {})",
                            state["identity"].as_str().unwrap_or("BY DEFAULT"),
                            s.options
                        ));
                    } else {
                        g.push(format!("ALTER SEQUENCE {q} OWNED BY {table}.{name}"));
                    }
                    g.push(format!(
                        "SELECT setval({}::regclass, {}, {})",
                        sql_literal(q),
                        s.last_value,
                        s.is_called
                    ));
                }
                if column.generated.is_none() {
                    undo.restore.push(put);
                }
                if !state["rebuild"].is_null() {
                    cannot(&mut undo, state["rebuild"]["cannot"].as_str());
                    undo.generated
                        .extend(rebuild_in_order(id, &state["rebuild"])?);
                }
            }
        }
        Ok(undo)
    }

    fn release(&mut self, kept: &[Kept]) -> Result<(), EngineError> {
        // Dropping a trigger takes an ACCESS EXCLUSIVE lock: done once, at the end of
        // the change, so that readers wait only for the commit that follows.
        for one in kept {
            let (Some(trigger), Some(oid)) = (
                one.state.get("trigger").and_then(Value::as_str),
                one.state.get("table_oid").and_then(Value::as_u64),
            ) else {
                continue;
            };
            // A later statement of the change may have dropped or renamed the table.
            let on: Option<String> = self
                .client
                .query_opt(
                    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_trigger t                      JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace                      WHERE t.tgrelid = $1 AND t.tgname = $2",
                    &[&(oid as u32), &trigger],
                )
                .map_err(map_error)?
                .map(|r| r.get(0));
            if let Some(table) = on {
                self.client
                    .batch_execute(&format!("DROP TRIGGER {trigger} ON {table}"))
                    .map_err(map_error)?;
            }
        }
        Ok(())
    }

    fn list(&mut self) -> Result<Vec<VaultEntry>, EngineError> {
        Ok(self
            .client
            .query(
                "SELECT v.id, v.change, v.statement, v.action, v.table_name, v.rows, \
                        coalesce(pg_total_relation_size(to_regclass(v.stored)), 0), v.created_at, \
                        EXISTS (SELECT 1 FROM ripcord.changes c WHERE c.name = v.change \
                                  AND c.revert_sql LIKE '%ripcord.vault_put_back(' || v.id || ')%') \
                 FROM ripcord.vault v ORDER BY v.id",
                &[],
            )
            .map_err(map_error)?
            .iter()
            .map(|r| VaultEntry {
                id: r.get(0),
                change: r.get(1),
                statement: r.get(2),
                action: r.get(3),
                table: r.get(4),
                rows: r.get(5),
                bytes: r.get(6),
                created_at: r.get(7),
                live: r.get(8),
            })
            .collect())
    }

    fn prune(&mut self, ids: &[i64]) -> Result<(), EngineError> {
        for id in ids {
            self.client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS ripcord.vault_{id}; DELETE FROM ripcord.vault WHERE id = {id};"
                ))
                .map_err(map_error)?;
        }
        Ok(())
    }
}
