//! One test per rule of the catalogue: a change that breaks it (the finding, snapshot
//! as `ripcord lint` reports it) and one that does not.

use std::path::Path;

use ripcord_core::change::parse_change;
use ripcord_guard::{Finding, lint_change};

fn lint(header: &str, deploy: &str) -> Vec<Finding> {
    let text = format!("{header}-- ripcord:deploy\n{deploy}\n-- ripcord:revert\nSELECT 1;\n");
    let change = parse_change(Path::new("changes/0001_x.sql"), &text).unwrap();
    lint_change(&change)
}

fn describe(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} {:?} {:?} at {}\n  lock: {}\n  rewrite: {}\n  {}\n  hint: {}\n",
                f.rule,
                f.severity,
                f.class,
                f.at,
                f.lock.unwrap_or("-"),
                f.rewrite,
                f.message,
                f.hint.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

/// `name`: test name; `rule`: the id; `header`: change header lines for both cases.
macro_rules! rule_case {
    ($name:ident, $rule:literal, $header:literal, bad: $bad:literal, ok: $ok:literal) => {
        #[test]
        fn $name() {
            let bad = lint($header, $bad);
            assert!(
                bad.iter().any(|f| f.rule == $rule),
                "{} should find {}: {bad:?}",
                $bad,
                $rule
            );
            insta::assert_snapshot!(
                stringify!($name),
                describe(
                    &bad.into_iter()
                        .filter(|f| f.rule == $rule)
                        .collect::<Vec<_>>()
                )
            );
            let ok = lint($header, $ok);
            assert!(
                !ok.iter().any(|f| f.rule == $rule),
                "{} should not find {}: {ok:?}",
                $ok,
                $rule
            );
        }
    };
}

rule_case!(drop_table, "ban-drop-table", "",
    bad: "DROP TABLE t;", ok: "CREATE TABLE t (id bigint PRIMARY KEY);");
rule_case!(drop_schema, "ban-drop-schema", "",
    bad: "DROP SCHEMA s;", ok: "CREATE SCHEMA s;");
rule_case!(drop_database, "ban-drop-database", "-- transaction: none\n",
    bad: "DROP DATABASE d;", ok: "SELECT 1;");
rule_case!(drop_column, "ban-drop-column", "",
    bad: "ALTER TABLE t DROP COLUMN c;", ok: "ALTER TABLE t ADD COLUMN c text;");
rule_case!(truncate, "truncate-table", "",
    bad: "TRUNCATE t;", ok: "SELECT count(*) FROM t;");
rule_case!(truncate_cascade, "ban-truncate-cascade", "",
    bad: "TRUNCATE t CASCADE;", ok: "TRUNCATE t;");
rule_case!(update_in_deploy, "update-in-deploy", "",
    bad: "UPDATE t SET a = 1;", ok: "SELECT a FROM t;");
rule_case!(delete_in_deploy, "delete-in-deploy", "",
    bad: "DELETE FROM t WHERE a = 1;", ok: "SELECT a FROM t;");
rule_case!(column_type_change, "changing-column-type", "",
    bad: "ALTER TABLE t ALTER COLUMN c TYPE bigint;", ok: "ALTER TABLE t ALTER COLUMN c SET DEFAULT 1;");
rule_case!(lossy_type_change, "lossy-type-change", "",
    bad: "ALTER TABLE t ALTER COLUMN c TYPE integer USING c::integer;",
    ok: "ALTER TABLE t ALTER COLUMN c TYPE text;");
rule_case!(unknown_type_change, "unknown-type-change", "",
    bad: "ALTER TABLE t ALTER COLUMN nid TYPE uuid;",
    ok: "CREATE TABLE t (nid uuid);\nALTER TABLE t ALTER COLUMN nid TYPE uuid;");
rule_case!(verify_writes, "verify-writes", "",
    bad: "SELECT 1;\n-- ripcord:verify\nDELETE FROM t;",
    ok: "SELECT 1;\n-- ripcord:verify\nSELECT a FROM t WHERE false;");
rule_case!(empty_deploy, "empty-deploy", "",
    bad: "-- emptied: the index moved to 0002",
    ok: "SELECT 1;");
rule_case!(volatile_default, "adding-field-with-default", "",
    bad: "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT clock_timestamp();",
    ok: "ALTER TABLE t ADD COLUMN c text DEFAULT 'x';");
rule_case!(stored_generated_column, "adding-field-with-default", "",
    bad: "ALTER TABLE t ADD COLUMN c bigint GENERATED ALWAYS AS (a * 2) STORED;",
    ok: "ALTER TABLE t ADD COLUMN c bigint;");
rule_case!(serial_primary_key, "adding-serial-primary-key-field", "",
    bad: "ALTER TABLE t ADD COLUMN id serial PRIMARY KEY;",
    ok: "ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY USING INDEX t_pk_idx;");
rule_case!(not_null_without_default, "adding-required-field", "",
    bad: "ALTER TABLE t ADD COLUMN c text NOT NULL;",
    ok: "ALTER TABLE t ADD COLUMN c text NOT NULL DEFAULT 'x';");
rule_case!(set_not_null_scan, "set-not-null-scan", "",
    bad: "ALTER TABLE t ALTER COLUMN c SET NOT NULL;",
    ok: "ALTER TABLE t ADD CONSTRAINT c_nn CHECK (c IS NOT NULL) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT c_nn;\nALTER TABLE t ALTER COLUMN c SET NOT NULL;");
rule_case!(check_without_not_valid, "constraint-missing-not-valid", "",
    bad: "ALTER TABLE t ADD CONSTRAINT positive CHECK (a > 0);",
    ok: "ALTER TABLE t ADD CONSTRAINT positive CHECK (a > 0) NOT VALID;");
rule_case!(foreign_key_under_lock, "adding-foreign-key-constraint", "",
    bad: "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u_id) REFERENCES u (id);\nCREATE INDEX t_u ON t (u_id);",
    ok: "CREATE TABLE t (id bigint PRIMARY KEY, u_id bigint REFERENCES u (id));\nCREATE INDEX t_u ON t (u_id);");
rule_case!(foreign_key_without_index, "foreign-key-without-index", "",
    bad: "CREATE TABLE t (id bigint PRIMARY KEY, u_id bigint REFERENCES u (id));",
    ok: "CREATE TABLE t (id bigint PRIMARY KEY, u_id bigint REFERENCES u (id));\nCREATE INDEX t_u ON t (u_id);");
rule_case!(unique_under_lock, "disallowed-unique-constraint", "",
    bad: "ALTER TABLE t ADD CONSTRAINT t_a UNIQUE (a);",
    ok: "ALTER TABLE t ADD CONSTRAINT t_a UNIQUE USING INDEX t_a_idx;");
rule_case!(index_without_concurrently, "require-concurrent-index-creation", "-- transaction: none\n",
    bad: "CREATE INDEX IF NOT EXISTS i ON t (a);",
    ok: "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);");
rule_case!(drop_index_without_concurrently, "require-concurrent-index-deletion", "-- transaction: none\n",
    bad: "DROP INDEX IF EXISTS i;", ok: "DROP INDEX CONCURRENTLY IF EXISTS i;");
rule_case!(reindex_without_concurrently, "require-concurrent-reindex", "-- transaction: none\n",
    bad: "REINDEX INDEX i;", ok: "REINDEX INDEX CONCURRENTLY i;");
rule_case!(concurrently_in_a_transaction, "statement-needs-own-transaction", "",
    bad: "CREATE INDEX CONCURRENTLY i ON t (a);", ok: "CREATE TABLE t (a bigint);\nCREATE INDEX i ON t (a);");
rule_case!(vacuum_full_cluster_unlogged, "table-rewrite", "",
    bad: "CLUSTER t USING i;\nALTER TABLE t SET UNLOGGED;", ok: "ANALYZE t;");
rule_case!(blocking_refresh, "blocking-refresh", "-- transaction: none\n",
    bad: "REFRESH MATERIALIZED VIEW v;", ok: "REFRESH MATERIALIZED VIEW CONCURRENTLY v;");
rule_case!(rename_column, "renaming-column", "",
    bad: "ALTER TABLE t RENAME COLUMN a TO b;", ok: "ALTER TABLE t ADD COLUMN b text;");
rule_case!(rename_table, "renaming-table", "",
    bad: "ALTER TABLE t RENAME TO u;", ok: "CREATE TABLE u (id bigint PRIMARY KEY);");
rule_case!(enum_add_value, "enum-add-value", "",
    bad: "ALTER TYPE mood ADD VALUE 'meh';", ok: "ALTER TYPE mood RENAME VALUE 'a' TO 'b';");
rule_case!(do_block, "opaque-do-block", "",
    bad: "DO $$ BEGIN PERFORM 1; END $$;", ok: "SELECT 1;");
rule_case!(unparsed, "unparsed-statement", "",
    bad: "CREATE TABLE (;", ok: "SELECT 1;");
rule_case!(suppression_without_known_rule, "invalid-suppression", "",
    bad: "-- ripcord:allow no-such-rule because it is fine\nSELECT 1;",
    ok: "-- ripcord:allow update-in-deploy because a one-row fix\nUPDATE t SET a = 1 WHERE id = 1;");
rule_case!(suppression_with_nothing_to_suppress, "unused-suppression", "",
    bad: "-- ripcord:allow update-in-deploy because a one-row fix\nSELECT 1;",
    ok: "-- ripcord:allow update-in-deploy because a one-row fix\nUPDATE t SET a = 1 WHERE id = 1;");

#[test]
fn identity_columns_added_to_a_table_are_reported() {
    let found = lint(
        "",
        "ALTER TABLE t ADD COLUMN c bigint GENERATED ALWAYS AS IDENTITY;",
    );
    assert!(
        !found.is_empty(),
        "adding an identity column rewrites the table: {found:?}"
    );
    assert!(
        found.iter().any(|f| f.rewrite || f.lock.is_some()),
        "{found:?}"
    );
}
