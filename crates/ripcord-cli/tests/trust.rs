//! Regression tests for issue 14, "trust before features": each test pins one way in
//! which a drill verdict, an exit code, the ledger or the audit chain claimed something
//! that was not true. Test names start with the defect's number in the issue.

#[macro_use]
mod common;

use common::*;

/// A long schema name, so that qualified names pass 63 bytes well before they differ.
const LONG_SCHEMA: &str = "schema_with_a_rather_long_name_for_tests_0001";

/// `<prefix>_<30 x's>_<suffix>`: two such names share everything but their last letter.
fn long(prefix: &str, suffix: &str) -> String {
    format!("{prefix}_{}_{suffix}", "x".repeat(30))
}

#[test]
fn d01_qualified_names_longer_than_63_bytes_are_compared_whole() {
    let (project, _db) = Db::postgres_project();
    let s = LONG_SCHEMA;
    let (cols, ca, cb) = ("cols", long("col", "a"), long("col", "b"));
    let mut base = format!(
        "CREATE SCHEMA {s};\n\
         CREATE TABLE {s}.{cols} ({ca} int, {cb} int);\n\
         CREATE FUNCTION {s}.trigger_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n"
    );
    // One pair of objects per kind the fingerprint covers, and a change that alters or
    // drops the first of each pair with a revert that does nothing.
    let mut cases: Vec<(String, String)> = Vec::new();
    for suffix in ["a", "b"] {
        let n = |prefix: &str| long(prefix, suffix);
        base.push_str(&format!(
            "CREATE TABLE {s}.{} (id int);\n\
             ALTER TABLE {s}.{cols} ADD CONSTRAINT {} CHECK ({ca} > 0);\n\
             CREATE INDEX {} ON {s}.{cols} ({ca});\n\
             CREATE VIEW {s}.{} AS SELECT 1 AS one;\n\
             CREATE MATERIALIZED VIEW {s}.{} AS SELECT 1 AS one;\n\
             CREATE SEQUENCE {s}.{};\n\
             CREATE FUNCTION {s}.{}() RETURNS int LANGUAGE sql AS 'SELECT 1';\n\
             CREATE PROCEDURE {s}.{}() LANGUAGE sql AS 'SELECT 1';\n\
             CREATE TRIGGER {} BEFORE INSERT ON {s}.{cols} FOR EACH ROW EXECUTE FUNCTION {s}.trigger_fn();\n\
             CREATE TYPE {s}.{} AS ENUM ('x');\n\
             CREATE DOMAIN {s}.{} AS int;\n\
             CREATE TYPE {s}.{} AS (x int);\n\
             CREATE POLICY {} ON {s}.{cols} USING (true);\n",
            n("tbl"),
            n("chk"),
            n("idx"),
            n("view"),
            n("mview"),
            n("seq"),
            n("fn"),
            n("proc"),
            n("trg"),
            n("enum"),
            n("dom"),
            n("comp"),
            n("pol"),
        ));
    }
    base.push_str(&format!(
        "CREATE DOMAIN {s}.checked AS int CONSTRAINT {} CHECK (VALUE > 0) CONSTRAINT {} CHECK (VALUE < 100);\n",
        long("dchk", "a"),
        long("dchk", "b")
    ));
    let a = |prefix: &str| long(prefix, "a");
    let mut add = |deploy: String, expected: String| cases.push((deploy, expected));
    add(
        format!("ALTER TABLE {s}.{} ENABLE ROW LEVEL SECURITY;", a("tbl")),
        format!("table {s}.{}: row_security true (was false)", a("tbl")),
    );
    add(
        format!("ALTER TABLE {s}.{cols} ALTER COLUMN {ca} SET DEFAULT 5;"),
        format!("column {s}.{cols}.{ca}: default 5 (was unset)"),
    );
    add(
        format!("ALTER TABLE {s}.{cols} DROP CONSTRAINT {};", a("chk")),
        format!("constraint {s}.{cols}.{} is missing after revert", a("chk")),
    );
    add(
        format!("ALTER DOMAIN {s}.checked DROP CONSTRAINT {};", a("dchk")),
        format!(
            "constraint {s}.checked.{} is missing after revert",
            a("dchk")
        ),
    );
    add(
        format!("DROP INDEX {s}.{};", a("idx")),
        format!("index {s}.{} is missing after revert", a("idx")),
    );
    add(
        format!("DROP VIEW {s}.{};", a("view")),
        format!("view {s}.{} is missing after revert", a("view")),
    );
    add(
        format!("DROP MATERIALIZED VIEW {s}.{};", a("mview")),
        format!(
            "materialized view {s}.{} is missing after revert",
            a("mview")
        ),
    );
    add(
        format!("DROP SEQUENCE {s}.{};", a("seq")),
        format!("sequence {s}.{} is missing after revert", a("seq")),
    );
    add(
        format!("DROP FUNCTION {s}.{}();", a("fn")),
        format!("function {s}.{}() is missing after revert", a("fn")),
    );
    add(
        format!("DROP PROCEDURE {s}.{}();", a("proc")),
        format!("procedure {s}.{}() is missing after revert", a("proc")),
    );
    add(
        format!("DROP TRIGGER {} ON {s}.{cols};", a("trg")),
        format!("trigger {s}.{cols}.{} is missing after revert", a("trg")),
    );
    add(
        format!("DROP TYPE {s}.{};", a("enum")),
        format!("enum {s}.{} is missing after revert", a("enum")),
    );
    add(
        format!("DROP DOMAIN {s}.{};", a("dom")),
        format!("domain {s}.{} is missing after revert", a("dom")),
    );
    add(
        format!("DROP TYPE {s}.{};", a("comp")),
        format!("composite type {s}.{} is missing after revert", a("comp")),
    );
    add(
        format!("DROP POLICY {} ON {s}.{cols};", a("pol")),
        format!("policy {s}.{cols}.{} is missing after revert", a("pol")),
    );
    project.simple_change("0001_base", &base, "SELECT 1;", "");
    ok(&project, &["deploy"]);
    for (index, (deploy, expected)) in cases.iter().enumerate() {
        assert!(
            expected.split(' ').any(|word| word.len() > 63),
            "{expected}"
        );
        let name = format!("{:04}_case", index + 2);
        project.simple_change(&name, deploy, "SELECT 1;", "");
    }
    let out = run(&project, &["drill", "--keep-going"]);
    expect_exit(&out, 1);
    let text = stdout(&out);
    for (index, (_, expected)) in cases.iter().enumerate() {
        let name = format!("{:04}_case", index + 2);
        assert!(text.contains(&format!("FAIL {name}")), "{name}:\n{text}");
        assert!(
            text.contains(expected.as_str()),
            "expected `{expected}` in:\n{text}"
        );
    }
}

#[test]
fn d01_a_revert_that_forgets_a_foreign_key_with_a_long_name_fails() {
    let (project, _db) = Db::postgres_project();
    project.simple_change(
        "0001_identities",
        "CREATE TABLE identities (id uuid PRIMARY KEY);\n\
         CREATE TABLE identity_verifiable_addresses (id uuid PRIMARY KEY, identity_id uuid REFERENCES identities (id));",
        "DROP TABLE identity_verifiable_addresses;\nDROP TABLE identities;",
        "",
    );
    ok(&project, &["deploy"]);
    project.simple_change(
        "0002_drop_fk",
        "ALTER TABLE identity_verifiable_addresses DROP CONSTRAINT IF EXISTS identity_verifiable_addresses_identity_id_fkey;",
        "SELECT 1;",
        "",
    );
    let out = run(&project, &["drill"]);
    expect_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(
            "constraint public.identity_verifiable_addresses.identity_verifiable_addresses_identity_id_fkey is missing after revert"
        ),
        "{text}"
    );
}

/// `--keep-going` goes on from a state where a failed change is deployed; a deploy
/// that fails because an earlier change could not be deployed is told as a knock-on.
fn d02_keep_going_continues_with_the_failed_change_deployed((project, _db): (Project, Db)) {
    project.simple_change(
        "0001_base",
        "CREATE TABLE base (id integer PRIMARY KEY);",
        "DROP TABLE base;",
        "",
    );
    ok(&project, &["deploy"]);
    // The revert forgets a table: not exact, and deploying again over it fails.
    project.simple_change(
        "0002_inexact",
        "CREATE TABLE a (id integer);\nCREATE TABLE a_side (x integer);",
        "DROP TABLE a;",
        "",
    );
    project.simple_change(
        "0003_needs_a",
        "ALTER TABLE a ADD COLUMN b integer;",
        "ALTER TABLE a DROP COLUMN b;",
        "",
    );
    // The revert fails outright (and rolls back).
    project.simple_change(
        "0004_revert_fails",
        "CREATE TABLE c (id integer);",
        "DROP TABLE no_such_table;",
        "",
    );
    project.simple_change(
        "0005_needs_c",
        "CREATE INDEX c_id_idx ON c (id);",
        "DROP INDEX c_id_idx;",
        "",
    );
    // The deploy fails: the next change fails only because of it.
    project.simple_change(
        "0006_deploy_fails",
        "CREATE TABLE e (id integer);\nSELECT * FROM no_such_table;",
        "DROP TABLE e;",
        "",
    );
    project.simple_change(
        "0007_needs_e",
        "CREATE INDEX e_id_idx ON e (id);",
        "DROP INDEX e_id_idx;",
        "",
    );
    project.simple_change(
        "0008_independent",
        "CREATE TABLE g (id integer);",
        "DROP TABLE g;",
        "",
    );
    let out = run(&project, &["drill", "--keep-going", "--json"]);
    expect_exit(&out, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let verdict = |name: &str| {
        report["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["change"] == name)
            .unwrap_or_else(|| panic!("{name} not in {report}"))
            .clone()
    };
    assert_eq!(verdict("0002_inexact")["passed"], false);
    assert_eq!(verdict("0002_inexact")["rebuilt"], true);
    assert_eq!(verdict("0003_needs_a")["passed"], true, "{report}");
    assert_eq!(verdict("0004_revert_fails")["passed"], false);
    assert_eq!(
        verdict("0004_revert_fails")["knock_on_of"],
        serde_json::Value::Null
    );
    assert_eq!(verdict("0005_needs_c")["passed"], true, "{report}");
    assert_eq!(verdict("0006_deploy_fails")["passed"], false);
    assert_eq!(verdict("0006_deploy_fails")["deploy_failed"], true);
    assert_eq!(
        verdict("0006_deploy_fails")["knock_on_of"],
        serde_json::Value::Null
    );
    assert_eq!(verdict("0007_needs_e")["passed"], false);
    assert_eq!(verdict("0007_needs_e")["knock_on_of"], "0006_deploy_fails");
    assert_eq!(verdict("0008_independent")["passed"], true, "{report}");
    assert_eq!(report["knock_ons"], 1);

    let out = run(&project, &["drill", "--keep-going"]);
    expect_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(
            "FAIL 0007_needs_e (knock-on: 0006_deploy_fails could not be deployed before it)"
        ),
        "{text}"
    );
    assert!(
        text.contains("Drill failed: 3 of 7 changes did not come back exactly (starting from 1 deployed change replayed); 1 more failed only because an earlier change could not be deployed."),
        "{text}"
    );
}

/// Whatever a verify section writes is undone: verify proves, it does not change data.
fn d05_verify_writes_are_undone((project, db): (Project, Db)) {
    project.simple_change(
        "0001_base",
        "CREATE TABLE t (id integer PRIMARY KEY);\nINSERT INTO t VALUES (1), (2), (3);",
        "DROP TABLE t;",
        "",
    );
    project.simple_change(
        "0002_column",
        "ALTER TABLE t ADD COLUMN x integer;",
        "ALTER TABLE t DROP COLUMN x;",
        "DELETE FROM t;\nSELECT x FROM t WHERE 1 = 0;",
    );
    project.change(
        "0003_nontx",
        "-- transaction: none\n-- ripcord:deploy\nCREATE TABLE u (id integer);\n\
         -- ripcord:revert\nDROP TABLE u;\n-- ripcord:verify\nINSERT INTO u VALUES (1);\nDELETE FROM t WHERE id = 1;\n",
    );
    ok(&project, &["deploy"]);
    assert_eq!(db.scalar("SELECT count(*) FROM t"), "3");
    assert_eq!(db.scalar("SELECT count(*) FROM u"), "0");
    let out = run(&project, &["drill"]);
    expect_exit(&out, 0);
}

/// A revert that puts a dropped column back at the end does not restore the schema.
fn d11_column_order_is_part_of_the_schema((project, db): (Project, Db)) {
    project.simple_change(
        "0001_base",
        "CREATE TABLE t (a integer, b integer, c integer);",
        "DROP TABLE t;",
        "",
    );
    ok(&project, &["deploy"]);
    project.simple_change(
        "0002_drop_b",
        "ALTER TABLE t DROP COLUMN b;",
        "ALTER TABLE t ADD COLUMN b integer;",
        "",
    );
    let table = if db.is_postgres() { "public.t" } else { "t" };
    let out = run(&project, &["drill"]);
    expect_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "column order of {table} differs after revert: a, c, b (before the change: a, b, c)"
        )),
        "{text}"
    );
    if db.is_postgres() {
        // Nothing else differs on PostgreSQL, so accepting another order passes.
        let config = std::fs::read_to_string(project.path().join("ripcord.toml")).unwrap();
        project.write_config(&format!("{config}\n[drill]\ncolumn_order = \"ignore\"\n"));
        let out = run(&project, &["drill"]);
        expect_exit(&out, 0);
    }
}

on_both_engines!(
    d02_keep_going_continues_with_the_failed_change_deployed,
    d05_verify_writes_are_undone,
    d11_column_order_is_part_of_the_schema,
);
