//! Catalog queries for drill: the normalized schema of every user schema (everything
//! but `ripcord`, ripcord's own `ripcord_*` schemas (restore vaults and staging), the
//! system schemas and objects owned by extensions) and per-table
//! data hashes, all computed inside the server.

/// Rows of `(kind, name, definition)`; definitions are `key: value` lines where the
/// object has attributes, else the server's own DDL rendering.
///
/// Every name is `text`: a UNION takes its column type from the first branch, and a
/// `name` column there would cut every qualified name to 63 bytes, so that objects
/// sharing their first 63 bytes would collapse into one.
pub const SCHEMA_QUERY: &str = r#"
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
      AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp%'
      AND nspname NOT LIKE 'ripcord\_%'
),
ext AS (SELECT objid FROM pg_depend WHERE deptype = 'e')
SELECT 'schema', nspname::text, concat_ws(E'\n', 'comment: ' || obj_description(oid, 'pg_namespace'))
FROM ns WHERE nspname <> 'public' AND oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT CASE c.relkind WHEN 'f' THEN 'foreign table' ELSE 'table' END,
       ns.nspname || '.' || c.relname,
       concat_ws(E'\n',
           'persistence: ' || c.relpersistence::text,
           'row_security: ' || c.relrowsecurity,
           CASE WHEN c.relkind = 'p' THEN 'partition_key: ' || pg_get_partkeydef(c.oid) END,
           CASE WHEN c.relispartition THEN 'partition_of: ' ||
               (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid) END,
           CASE WHEN c.relispartition THEN 'partition_bound: ' || pg_get_expr(c.relpartbound, c.oid) END,
           'comment: ' || obj_description(c.oid, 'pg_class'),
           -- Privileges of roles other than the owner: a NULL ACL and the owner's
           -- explicit one grant the same.
           'privileges: ' || (SELECT string_agg(CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END || '=' || x.privilege_type
                                                || CASE WHEN x.is_grantable THEN '*' ELSE '' END, ',' ORDER BY 1)
                              FROM aclexplode(c.relacl) x WHERE x.grantee <> c.relowner))
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f') AND c.oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT 'column', ns.nspname || '.' || c.relname || '.' || a.attname,
       concat_ws(E'\n',
           'type: ' || format_type(a.atttypid, a.atttypmod),
           'not_null: ' || a.attnotnull,
           CASE WHEN a.attgenerated = '' THEN 'default: ' || pg_get_expr(d.adbin, d.adrelid) END,
           CASE WHEN a.attgenerated <> '' THEN 'generated: ' || pg_get_expr(d.adbin, d.adrelid) END,
           CASE WHEN a.attidentity <> '' THEN 'identity: ' ||
               CASE a.attidentity WHEN 'a' THEN 'always' ELSE 'by default' END END,
           CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN 'collation: ' ||
               (SELECT collname FROM pg_collation WHERE oid = a.attcollation) END,
           'comment: ' || col_description(c.oid, a.attnum),
           'privileges: ' || (SELECT string_agg(CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END || '=' || x.privilege_type
                                                || CASE WHEN x.is_grantable THEN '*' ELSE '' END, ',' ORDER BY 1)
                              FROM aclexplode(a.attacl) x WHERE x.grantee <> c.relowner))
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN ns ON ns.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f', 'v', 'm')
  AND c.oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT 'column order', ns.nspname || '.' || c.relname,
       string_agg(a.attname::text, ', ' ORDER BY a.attnum)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN ns ON ns.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f')
  AND c.oid NOT IN (SELECT objid FROM ext)
GROUP BY ns.nspname, c.relname
UNION ALL
SELECT 'constraint', ns.nspname || '.' || c.relname || '.' || con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT 'constraint', ns.nspname || '.' || t.typname || '.' || con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_type t ON t.oid = con.contypid JOIN ns ON ns.oid = t.typnamespace
UNION ALL
SELECT 'index', ns.nspname || '.' || ic.relname,
       pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' (INVALID)' END
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN ns ON ns.oid = ic.relnamespace
WHERE ic.oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END,
       ns.nspname || '.' || c.relname,
       pg_get_viewdef(c.oid) || coalesce(E'\n-- comment: ' || obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND c.oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT 'sequence', ns.nspname || '.' || c.relname,
       concat_ws(E'\n',
           'type: ' || format_type(s.seqtypid, NULL),
           'start: ' || s.seqstart, 'increment: ' || s.seqincrement,
           'min: ' || s.seqmin, 'max: ' || s.seqmax, 'cache: ' || s.seqcache, 'cycle: ' || s.seqcycle,
           'owned_by: ' || (SELECT d.refobjid::regclass::text || '.' || a.attname
                            FROM pg_depend d
                            JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                              AND d.deptype IN ('a', 'i') LIMIT 1))
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN ns ON ns.oid = c.relnamespace
WHERE c.oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
       ns.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       CASE WHEN p.prokind = 'a' THEN 'aggregate' ELSE pg_get_functiondef(p.oid) END
           || coalesce(E'\n-- comment: ' || obj_description(p.oid, 'pg_proc'), '')
FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
WHERE p.oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT 'trigger', ns.nspname || '.' || c.relname || '.' || tg.tgname,
       -- Capture functions are named after their table's OID: without it, two databases
       -- with the same tables and capture have the same fingerprint.
       regexp_replace(pg_get_triggerdef(tg.oid), 'ripcord\.capture(_key)?_fn_[0-9]+', 'ripcord.capture\1_fn', 'g')
           || CASE tg.tgenabled WHEN 'D' THEN ' (DISABLED)' ELSE '' END
FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN ns ON ns.oid = c.relnamespace
WHERE NOT tg.tgisinternal
UNION ALL
SELECT 'enum', ns.nspname || '.' || t.typname,
       'values: ' || (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                      FROM pg_enum e WHERE e.enumtypid = t.oid)
FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
WHERE t.typtype = 'e' AND t.oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT 'domain', ns.nspname || '.' || t.typname,
       concat_ws(E'\n', 'type: ' || format_type(t.typbasetype, t.typtypmod),
                 'not_null: ' || t.typnotnull, 'default: ' || t.typdefault)
FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
WHERE t.typtype = 'd' AND t.oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT 'composite type', ns.nspname || '.' || t.typname,
       'attributes: ' || (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
FROM pg_type t JOIN ns ON ns.oid = t.typnamespace JOIN pg_class c ON c.oid = t.typrelid
WHERE t.typtype = 'c' AND c.relkind = 'c' AND t.oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT 'extension', e.extname::text, 'version: ' || e.extversion FROM pg_extension e
UNION ALL
SELECT 'policy', p.schemaname || '.' || p.tablename || '.' || p.policyname,
       concat_ws(E'\n', 'permissive: ' || p.permissive, 'roles: ' || array_to_string(p.roles, ','),
                 'command: ' || p.cmd, 'using: ' || p.qual, 'with_check: ' || p.with_check)
FROM pg_policies p WHERE p.schemaname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
  AND p.schemaname NOT LIKE 'ripcord\_%'
"#;

/// Qualified and quoted names and the quoted column list of every user table with
/// storage, for the data hashes.
pub const TABLES_QUERY: &str = r#"
SELECT n.nspname || '.' || c.relname, format('%I.%I', n.nspname, c.relname),
       coalesce((SELECT string_agg('t.' || quote_ident(a.attname), ', ' ORDER BY a.attname)
                 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
  AND n.nspname NOT LIKE 'ripcord\_%'
  AND c.oid NOT IN (SELECT objid FROM pg_depend WHERE deptype = 'e')
ORDER BY 1
"#;

/// Count and sum of 64-bit row hashes of one table (`{}` is the quoted name). The sum
/// is `numeric`, so it cannot overflow, and it does not depend on row order.
///
/// Columns are hashed in name order (`columns` as [`TABLES_QUERY`] lists them): a
/// column dropped and added back holds the same data, though at another position.
pub fn table_hash_query(quoted: &str, columns: &str) -> String {
    let columns = row_of(columns);
    format!(
        "SELECT count(*), coalesce(sum(hash_record_extended({columns}, 0)), 0)::text FROM ONLY {quoted} AS t"
    )
}

fn row_of(columns: &str) -> String {
    if columns.is_empty() {
        "t.*".to_string()
    } else {
        format!("ROW({columns})")
    }
}

/// The same for tables with a column type that has no extended hash function (json,
/// point, …): hash the row's text form instead.
pub fn table_hash_fallback_query(quoted: &str, columns: &str) -> String {
    let columns = row_of(columns);
    format!(
        "SELECT count(*), coalesce(sum(('x' || left(md5({columns}::text), 16))::bit(64)::int8), 0)::text FROM ONLY {quoted} AS t"
    )
}

/// Relation locks held by this backend on user tables.
pub const LOCKS_QUERY: &str = r#"
SELECT n.nspname || '.' || c.relname, l.mode
FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
  AND c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
ORDER BY 1, 2
"#;

/// Storage file of each user table (a rewrite changes it).
pub const FILES_QUERY: &str = r#"
SELECT n.nspname || '.' || c.relname, c.relfilenode::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
"#;

/// User tables in an order that satisfies foreign keys (referenced tables first).
pub const COPY_ORDER_QUERY: &str = r#"
WITH RECURSIVE tables AS (
    SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
      AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
      AND c.oid NOT IN (SELECT objid FROM pg_depend WHERE deptype = 'e')
),
depth (oid, level) AS (
    SELECT oid, 0 FROM tables
    UNION ALL
    SELECT con.conrelid, d.level + 1
    FROM pg_constraint con JOIN depth d ON con.confrelid = d.oid
    WHERE con.contype = 'f' AND con.conrelid <> con.confrelid AND d.level < 50
)
SELECT t.name FROM tables t JOIN depth d ON d.oid = t.oid
GROUP BY t.name ORDER BY max(d.level), t.name
"#;
