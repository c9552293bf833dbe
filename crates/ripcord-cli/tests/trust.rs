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
        "CREATE FOREIGN DATA WRAPPER ripcord_test_wrapper;\n\
         CREATE SERVER ripcord_test_server FOREIGN DATA WRAPPER ripcord_test_wrapper;\n\
         CREATE SCHEMA {s};\n\
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
             CREATE POLICY {} ON {s}.{cols} USING (true);\n\
             CREATE AGGREGATE {s}.{}(integer) (sfunc = int4pl, stype = integer);\n\
             CREATE FOREIGN TABLE {s}.{} (x integer) SERVER ripcord_test_server;\n",
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
            n("agg"),
            n("ftbl"),
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
    add(
        format!("DROP AGGREGATE {s}.{}(integer);", a("agg")),
        format!(
            "aggregate {s}.{}(integer) is missing after revert",
            a("agg")
        ),
    );
    add(
        format!("COMMENT ON FOREIGN TABLE {s}.{} IS 'kept';", a("ftbl")),
        format!("foreign table {s}.{}: comment kept (was unset)", a("ftbl")),
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
        assert!(
            text.contains(&format!("FAIL {name}")),
            "{name}:\n{text}\n{}",
            stderr(&out)
        );
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

/// An empty revert section is no revert section: ripcord writes the revert, and the
/// revert really undoes the deploy.
fn d03_an_empty_revert_section_does_not_revert_by_doing_nothing((project, db): (Project, Db)) {
    project.change(
        "0001_table",
        "-- ripcord:deploy\nCREATE TABLE t (id integer PRIMARY KEY);\n-- ripcord:revert\n\n-- ripcord:verify\n",
    );
    ok(&project, &["deploy"]);
    assert!(db.has_table("t"));
    ok(&project, &["revert", "-y"]);
    assert!(!db.has_table("t"), "the revert must drop the table");
    let status = ok(&project, &["status"]);
    assert!(status.contains("pending"), "{status}");
    ok(&project, &["deploy"]);
    assert!(db.has_table("t"));
}

/// PostgreSQL keeps dropped columns' values: with an empty revert section ripcord's own
/// revert puts them back; a revert that forgets to re-create them fails (exit 1),
/// changes nothing and keeps the vault entries needed later.
#[test]
fn d03_dropped_columns_come_back_or_the_revert_fails() {
    let (project, db) = Db::postgres_project();
    project.simple_change(
        "0001_base",
        "CREATE TABLE t (id integer PRIMARY KEY, a text, b integer, c date);\n\
         INSERT INTO t SELECT g, 'a' || g, g * 10, date '2026-01-01' + g FROM generate_series(1, 20) g;",
        "DROP TABLE t;",
        "",
    );
    project.change(
        "0002_drop_three",
        "-- ripcord:deploy\nALTER TABLE t DROP COLUMN a, DROP COLUMN b;\nALTER TABLE t DROP COLUMN c;\n-- ripcord:revert\n",
    );
    ok(&project, &["deploy"]);
    assert!(!db.has_column("t", "a"));
    ok(&project, &["revert", "-y"]);
    for column in ["a", "b", "c"] {
        assert!(db.has_column("t", column), "{column} is back");
    }
    assert_eq!(
        db.scalar("SELECT string_agg(a || ':' || b || ':' || c, ',' ORDER BY id) FROM t WHERE id IN (1, 20)"),
        "a1:10:2026-01-02,a20:200:2026-01-21"
    );
    let event: serde_json::Value = serde_json::from_str(&db.scalar(
        "SELECT detail FROM ripcord.events WHERE kind = 'revert_completed' ORDER BY seq DESC LIMIT 1",
    ))
    .unwrap();
    assert_eq!(
        event["vault_entries_put_back"].as_array().map(Vec::len),
        Some(3),
        "{event}"
    );

    // An author's revert that does not re-create the columns.
    project.change(
        "0002_drop_three",
        "-- ripcord:deploy\nALTER TABLE t DROP COLUMN a, DROP COLUMN b;\nALTER TABLE t DROP COLUMN c;\n-- ripcord:revert\nSELECT 1;\n",
    );
    ok(&project, &["deploy"]);
    let out = run(&project, &["revert", "-y"]);
    expect_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("the kept values of column(s) c of public.t cannot be put back: the revert did not re-create them"),
        "{err}"
    );
    assert!(!db.has_column("t", "a"), "nothing was changed");
    let status = ok(&project, &["status"]);
    assert!(
        status.contains("deployed  0002_drop_three") || status.contains("deployed 0002_drop_three"),
        "{status}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&ok(&project, &["vault", "list", "--json"])).unwrap();
    let live: Vec<&serde_json::Value> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["change"] == "0002_drop_three" && e["live"] == true)
        .collect();
    assert_eq!(live.len(), 3, "the kept values stay needed: {list}");
    let failed = db.scalar("SELECT count(*) FROM ripcord.events WHERE kind = 'revert_failed'");
    assert_eq!(failed, "1");
}

/// On SQLite the vault cannot keep a dropped column: a change dropping one with an
/// empty revert section is refused before it runs.
#[test]
fn d03_sqlite_refuses_dropping_columns_without_a_way_back() {
    let (project, db) = Db::sqlite_project();
    project.simple_change(
        "0001_base",
        "CREATE TABLE t (id integer PRIMARY KEY, a text);\nINSERT INTO t VALUES (1, 'x');",
        "DROP TABLE t;",
        "",
    );
    ok(&project, &["deploy"]);
    project.change(
        "0002_drop",
        "-- ripcord:deploy\nALTER TABLE t DROP COLUMN a;\n-- ripcord:revert\n",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    assert!(
        stderr(&out).contains("0002_drop has no revert section"),
        "{}",
        stderr(&out)
    );
    assert!(db.has_column("t", "a"));
}

/// Two projects deploy to one database: each sees, deploys and reverts only its own
/// changes; a name both use is refused.
fn d04_projects_sharing_a_database_stay_apart((a, db): (Project, Db)) {
    let url = match &db {
        Db::Sqlite(path) => format!("sqlite://{}", path.display()),
        Db::Postgres(t) => t.url.clone(),
    };
    let b = Project::new(&url);
    b.write_config(&format!(
        "[project]\nname = \"billing\"\ndefault_target = \"test\"\n\n[targets.test]\nurl = \"{url}\"\n"
    ));
    a.simple_change(
        "0001_users",
        "CREATE TABLE users (id integer PRIMARY KEY);",
        "DROP TABLE users;",
        "",
    );
    b.simple_change(
        "0001_invoices",
        "CREATE TABLE invoices (id integer PRIMARY KEY);",
        "DROP TABLE invoices;",
        "",
    );
    b.simple_change(
        "0002_invoice_rows",
        "INSERT INTO invoices SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3;",
        "DELETE FROM invoices;",
        "",
    );
    ok(&a, &["deploy"]);
    ok(&b, &["deploy"]);
    // Without a project, a ledger of several projects is ambiguous.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = ripcord_in(elsewhere.path())
        .args(["revert", "-y", "--url", &url])
        .output()
        .unwrap();
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("several projects"),
        "{}",
        stderr(&out)
    );
    assert_eq!(db.scalar("SELECT count(*) FROM invoices"), "3");
    // A's revert reverts A's last change, never B's newer one.
    ok(&a, &["revert", "-y"]);
    assert!(!db.has_table("users"));
    assert_eq!(db.scalar("SELECT count(*) FROM invoices"), "3");
    let out = ok(&a, &["revert", "-y"]);
    assert!(out.contains("Nothing to revert"), "{out}");
    assert!(
        out.contains(
            "Also on this target, deployed by project billing: 0001_invoices, 0002_invoice_rows"
        ),
        "revert says that others exist: {out}"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM invoices"), "3");
    let status = ok(&a, &["status"]);
    assert!(
        status.contains("deployed by project billing: 0001_invoices, 0002_invoice_rows"),
        "{status}"
    );
    assert!(!status.contains("missing-file"), "{status}");
    let json: serde_json::Value = serde_json::from_str(&ok(&a, &["status", "--json"])).unwrap();
    assert_eq!(json["changes"].as_array().unwrap().len(), 1, "{json}");
    // The same name in both projects is refused, naming the owner.
    a.simple_change("0002_invoice_rows", "SELECT 1;", "SELECT 1;", "");
    let out = run(&a, &["deploy"]);
    expect_exit(&out, 4);
    assert!(
        stderr(&out).contains("0002_invoice_rows is deployed on this target by project `billing`"),
        "{}",
        stderr(&out)
    );
    assert!(!db.has_table("users"), "nothing of A was deployed");
}

/// A ledger row's SQL edited behind ripcord's back is caught before it runs.
fn d06_an_edited_ledger_row_is_refused_before_it_runs((project, db): (Project, Db)) {
    three_changes(&project);
    ok(&project, &["deploy"]);
    db.exec(&format!(
        "UPDATE {} SET revert_sql = 'DROP TABLE users;' WHERE name = '0003_coupon'",
        db.ledger("changes")
    ));
    let out = run(&project, &["audit", "verify"]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains("the ledger row of 0003_coupon was altered"),
        "{}",
        stdout(&out)
    );
    let out = run(&project, &["revert", "-y"]);
    expect_exit(&out, 4);
    assert!(stderr(&out).contains("0003_coupon"), "{}", stderr(&out));
    assert!(db.has_table("users"), "the tampered revert did not run");
    assert!(db.has_column("orders", "coupon"));
    // A verify section swapped in the ledger does not run either.
    db.exec(&format!(
        "UPDATE {} SET revert_sql = 'ALTER TABLE orders DROP COLUMN coupon;' WHERE name = '0003_coupon'",
        db.ledger("changes")
    ));
    ok(&project, &["audit", "verify"]);
    db.exec(&format!(
        "UPDATE {} SET verify_sql = 'DELETE FROM users' WHERE name = '0001_users'",
        db.ledger("changes")
    ));
    let out = run(&project, &["verify"]);
    expect_exit(&out, 4);
    assert!(stderr(&out).contains("0001_users"), "{}", stderr(&out));
}

/// A wiped chain, and ledger rows without events, fail `audit verify`.
fn d07_a_wiped_chain_or_a_row_without_events_fails((project, db): (Project, Db)) {
    three_changes(&project);
    ok(&project, &["deploy"]);
    ok(&project, &["audit", "verify"]);
    let events = db.ledger("events");
    let changes = db.ledger("changes");
    // A row copied under a new name: no event deployed it.
    db.exec(&format!(
        "INSERT INTO {changes} SELECT '0009_forged', deploy_seq + 100, checksum, deploy_sql, revert_sql, verify_sql, \
         transaction_mode, irreversible, requires, state, statements_done, statements_total, deployed_at, deployed_by, \
         deployed_host, duration_ms, file, project FROM {changes} WHERE name = '0001_users'"
    ));
    let out = run(&project, &["audit", "verify"]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains("the ledger row of 0009_forged was not written by ripcord"),
        "{}",
        stdout(&out)
    );
    db.exec(&format!("DELETE FROM {changes} WHERE name = '0009_forged'"));
    // A row removed behind ripcord's back.
    db.exec(&format!("DELETE FROM {changes} WHERE name = '0003_coupon'"));
    let out = run(&project, &["audit", "verify"]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains("0003_coupon is deployed according to event"),
        "{}",
        stdout(&out)
    );
    // The whole chain wiped.
    match &db {
        Db::Postgres(_) => db.exec(&format!(
            "SET session_replication_role = replica; DELETE FROM {events};"
        )),
        Db::Sqlite(_) => db.exec(&format!(
            "DROP TRIGGER ripcord_events_no_delete; DELETE FROM {events};"
        )),
    }
    let out = run(&project, &["audit", "verify"]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains("the audit chain is empty but the ledger holds 2 deployed changes"),
        "{}",
        stdout(&out)
    );
}

/// A change whose deploy holds only comments is a no-op; unreadable files are all
/// reported, and do not stop status or revert.
fn d09_no_op_changes_deploy_and_broken_files_block_only_what_they_must(
    (project, db): (Project, Db),
) {
    three_changes(&project);
    project.change(
        "0004_nothing",
        "-- ripcord:deploy\n-- This migration was emptied: its index moved to 0002.\n-- ripcord:revert\n",
    );
    ok(&project, &["deploy"]);
    let detail: serde_json::Value = serde_json::from_str(&db.scalar(&format!(
        "SELECT detail FROM {} WHERE change = '0004_nothing'",
        db.ledger("events")
    )))
    .unwrap();
    assert_eq!(detail["no_op"], true, "{detail}");
    ok(&project, &["revert", "-y"]);
    ok(&project, &["deploy"]);

    project.change(
        "0005_broken",
        "-- ripcord:deploy\nCREATE TABLE x (a text DEFAULT 'oops);\n",
    );
    project.change(
        "0006_also_broken",
        "-- ripcord:deploy\n-- ripcord:deploy\nSELECT 1;\n",
    );
    project.simple_change(
        "0007_fine",
        "CREATE TABLE fine (id integer);",
        "DROP TABLE fine;",
        "",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("2 change files cannot be read"), "{err}");
    assert!(err.contains("changes/0005_broken.sql:2:"), "{err}");
    assert!(err.contains("changes/0006_also_broken.sql:2:1"), "{err}");
    assert!(!db.has_table("fine"), "nothing deployed past a broken file");
    let status = ok(&project, &["status"]);
    for expected in [
        "0001_users",
        "0004_nothing",
        "0005_broken",
        "0006_also_broken",
        "0007_fine",
    ] {
        assert!(status.contains(expected), "{expected}: {status}");
    }
    assert!(status.contains("2 invalid"), "{status}");
    ok(&project, &["revert", "-y"]);
    assert!(db.has_table("orders"));
    ok(&project, &["deploy", "--to", "0004"]);
}

on_both_engines!(
    d02_keep_going_continues_with_the_failed_change_deployed,
    d05_verify_writes_are_undone,
    d11_column_order_is_part_of_the_schema,
    d03_an_empty_revert_section_does_not_revert_by_doing_nothing,
    d04_projects_sharing_a_database_stay_apart,
    d06_an_edited_ledger_row_is_refused_before_it_runs,
    d07_a_wiped_chain_or_a_row_without_events_fails,
    d09_no_op_changes_deploy_and_broken_files_block_only_what_they_must,
    d06_an_old_ledger_is_sealed_and_claimed_on_upgrade,
    d06_an_upgrade_killed_at_any_step_converges,
);

/// Turn the target's ledger into one written by ripcord before ledger version 4: no
/// project column, events without definition checksums (re-chained as they were).
fn make_old_ledger(project: &Project, db: &Db) {
    let url = match db {
        Db::Sqlite(path) => format!("sqlite://{}", path.display()),
        Db::Postgres(t) => t.url.clone(),
    };
    let mut target = ripcord::target::connect("test", &url, project.path()).unwrap();
    let events = target.engine.events().unwrap();
    let (changes, meta, events_table) =
        (db.ledger("changes"), db.ledger("meta"), db.ledger("events"));
    // Tables of newer ledger steps go too.
    for table in ["check_baselines", "rollouts", "rollout_steps", "flags"] {
        db.exec(&format!("DROP TABLE {}", db.ledger(table)));
    }
    match db {
        Db::Postgres(_) => db.exec(&format!(
            "SET session_replication_role = replica; DELETE FROM {events_table}; \
             ALTER TABLE {changes} DROP COLUMN project; UPDATE {meta} SET value = '3' WHERE key = 'ledger_version';"
        )),
        Db::Sqlite(_) => db.exec(&format!(
            "DROP TRIGGER ripcord_events_no_delete; DELETE FROM {events_table}; \
             ALTER TABLE {changes} DROP COLUMN project; UPDATE {meta} SET value = '3' WHERE key = 'ledger_version';"
        )),
    }
    let mut previous: Option<(i64, String)> = None;
    for event in events {
        let mut detail = event.detail_json();
        for key in [
            "ledger",
            "ledger_rows",
            "project",
            "no_op",
            "vault_entries_put_back",
            "flags",
        ] {
            detail.as_object_mut().unwrap().remove(key);
        }
        let stamp = ripcord_core::audit::Stamp {
            actor: event.actor.clone(),
            host: event.host.clone(),
            target: event.target.clone(),
            at: chrono::Utc::now(),
        };
        let kind: &'static str = Box::leak(event.kind.clone().into_boxed_str());
        let sealed = ripcord_core::audit::AuditEvent::seal(
            previous.as_ref().map(|(seq, hash)| (*seq, hash.as_str())),
            &stamp,
            ripcord_core::audit::NewEvent {
                kind,
                change: event.change.clone(),
                detail,
            },
        );
        target.engine.insert_event(&sealed).unwrap();
        previous = Some((sealed.seq, sealed.hash.clone()));
    }
}

/// A ledger written before projects and definition checksums is read as it is, then
/// sealed and claimed by the first locking command, and checked from then on.
fn d06_an_old_ledger_is_sealed_and_claimed_on_upgrade((project, db): (Project, Db)) {
    three_changes(&project);
    ok(&project, &["deploy"]);
    make_old_ledger(&project, &db);
    let status = ok(&project, &["status"]);
    assert!(status.contains("3 deployed"), "{status}");
    let out = ok(&project, &["audit", "verify"]);
    assert!(
        out.contains("3 ledger rows written by an older ripcord are not checked"),
        "{out}"
    );
    ok(&project, &["deploy"]);
    let out = ok(&project, &["audit", "verify"]);
    assert!(
        out.contains("3 deployed changes of the ledger match it"),
        "{out}"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {} WHERE project = 'test'",
            db.ledger("changes")
        )),
        "3"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {} WHERE kind IN ('ledger_sealed', 'ledger_claimed')",
            db.ledger("events")
        )),
        "2"
    );
    ok(&project, &["revert", "--all", "-y"]);
    assert!(!db.has_table("users"));
    ok(&project, &["audit", "verify"]);
}

/// A password holding `#`, `?` and `/` unencoded is never printed, by any command
/// or error, and never stored: not in the audit chain, the ledger, the lock, the vault,
/// capture, nor a snapshot's files.
#[test]
fn d08_a_password_with_url_delimiters_never_leaks() {
    const SECRET: &str = "Tr#ck?y/pw";
    let database = pg().create_database();
    let url = database
        .url
        .replacen("postgres@", &format!("postgres:{SECRET}@"), 1);
    assert!(url.contains(SECRET));
    let project = Project::new("postgres://unused");
    project.write_config(
        "[project]\nname = \"shop\"\ndefault_target = \"prod\"\n\n[targets.prod]\nurl_env = \"SHOP_URL\"\n",
    );
    three_changes(&project);
    project.simple_change(
        "0004_data",
        "INSERT INTO users VALUES (1, 'a@example.com'), (2, 'b@example.com');",
        "DELETE FROM users WHERE id IN (1, 2);",
        "",
    );
    let fragments = [SECRET, "Tr#ck", "y/pw", "?y/p", "p@ss"];
    let mut seen = String::new();
    let mut check = |args: &[&str], code: i32| {
        let out = ripcord_in(project.path())
            .env("SHOP_URL", &url)
            .args(args)
            .output()
            .unwrap();
        expect_exit(&out, code);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        for fragment in fragments {
            assert!(
                !text.contains(fragment),
                "`ripcord {}` printed `{fragment}`:\n{text}",
                args.join(" ")
            );
        }
        seen.push_str(&text);
    };
    check(&["deploy"], 0);
    check(&["deploy", "--json"], 0);
    check(&["status"], 0);
    check(&["status", "--json"], 0);
    check(&["plan", "--json"], 0);
    check(&["log", "--json"], 0);
    check(&["audit", "log", "--json"], 0);
    check(&["audit", "verify", "--json"], 0);
    check(&["verify", "--json"], 0);
    check(&["fingerprint", "--json"], 0);
    check(&["vault", "list", "--json"], 0);
    check(&["capture", "enable", "users"], 0);
    check(&["capture", "status", "--json"], 0);
    check(&["batch", "list", "--json"], 0);
    check(&["snapshot", "create", "--tables", "users", "--json"], 0);
    check(&["snapshot", "list", "--json"], 0);
    check(&["revert", "-y", "--json"], 0);
    check(&["drill", "--json"], 0);
    check(&["drill"], 0);
    check(&["deploy", "-v"], 0);
    // Ad-hoc targets named by their URL.
    check(&["status", "--url", &url], 0);
    check(&["status", "--url", &url, "--json"], 0);
    check(&["revert", "-y", "--url", &url], 0);
    check(&["deploy", "--url", &url, "--json"], 0);
    check(&["audit", "log", "--url", &url], 0);
    // Errors.
    let dead = url.replace(
        &format!(
            "{}/",
            database
                .url
                .split('/')
                .nth(2)
                .unwrap()
                .split(':')
                .next_back()
                .unwrap()
        ),
        "1/",
    );
    check(&["status", "--url", &dead], 5);
    // An unencoded `@` cannot reach the server (the driver ends the credentials at the
    // first `@`), but the refusal does not show the password either.
    let at_sign = url.replacen(SECRET, "Tr#ck?y/p@ss", 1);
    check(&["status", "--url", &at_sign], 5);
    project.simple_change(
        "0005_broken",
        "SELECT * FROM no_such_table;",
        "SELECT 1;",
        "",
    );
    check(&["deploy"], 1);
    check(&["deploy", "--json"], 1);
    assert!(
        seen.contains("postgres://postgres:***@"),
        "the redacted form is shown"
    );

    // Nothing stored holds it.
    let mut client = database.connect();
    let tables: Vec<String> = client
        .query(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'ripcord'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() > 5, "{tables:?}");
    for table in tables {
        let text: Option<String> = client
            .query_one(
                &format!("SELECT string_agg(t::text, E'\\n') FROM {table} t"),
                &[],
            )
            .unwrap()
            .get(0);
        let text = text.unwrap_or_default();
        for fragment in fragments {
            assert!(!text.contains(fragment), "{table} holds `{fragment}`");
        }
    }
    let events: String = client
        .query_one("SELECT string_agg(target, ',') FROM ripcord.events", &[])
        .unwrap()
        .get(0);
    assert!(
        events.contains("prod") && events.contains(":***@"),
        "{events}"
    );
    let mut files = vec![project.path().join(".ripcord")];
    let mut stored = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for fragment in fragments {
                assert!(
                    !text.contains(fragment),
                    "{} holds `{fragment}`",
                    path.display()
                );
            }
            stored += 1;
        }
    }
    assert!(stored >= 2, "the snapshot's manifest and chunks were read");
}

/// An ad-hoc `--url` target is named once, and the actor is a real user even when
/// `USER` and `LOGNAME` are unset.
#[test]
fn also_url_targets_are_named_once_and_the_actor_is_never_unknown() {
    let project = Project::sqlite();
    three_changes(&project);
    let out = ripcord_in(project.path())
        .args(["deploy", "--url", "sqlite://other.db"])
        .env_remove("RIPCORD_ACTOR")
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    expect_exit(&out, 0);
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or_default();
    assert_eq!(first.matches("other.db").count(), 1, "{text}");
    let status = ok(&project, &["status", "--url", "sqlite://other.db"]);
    let head = status.lines().next().unwrap_or_default();
    assert_eq!(head.matches("other.db").count(), 1, "{status}");
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8_lossy(&me.stdout).trim().to_string();
    assert!(!me.is_empty());
    let db = Db::Sqlite(project.path().join("other.db"));
    assert_eq!(
        db.scalar("SELECT group_concat(DISTINCT deployed_by) FROM ripcord_changes"),
        me
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM ripcord_events WHERE actor = 'unknown'"),
        "0"
    );
}

/// A type change to the type a column already has loses nothing: neither lint nor plan
/// call it lossy, and plan does not promise a vault it does not need; a real
/// narrowing still is lossy; from an unknown type it says so.
#[test]
fn d10_type_changes_are_judged_against_the_old_type() {
    let (project, _db) = Db::postgres_project();
    project.simple_change(
        "0001_identities",
        "CREATE TABLE identities (id uuid PRIMARY KEY, nid uuid, label varchar(40));",
        "DROP TABLE identities;",
        "",
    );
    ok(&project, &["deploy"]);
    project.simple_change(
        "0002_same_type",
        "ALTER TABLE identities ALTER COLUMN nid TYPE uuid;",
        "SELECT 1;",
        "",
    );
    project.simple_change(
        "0003_narrow",
        "ALTER TABLE identities ALTER COLUMN label TYPE varchar(10);",
        "ALTER TABLE identities ALTER COLUMN label TYPE varchar(40);",
        "",
    );
    let plan: serde_json::Value = serde_json::from_str(&ok(&project, &["plan", "--json"])).unwrap();
    let same = &plan["changes"][0]["statements"][0];
    assert_eq!(same["class"], "safe", "{same}");
    assert!(!same["rules"].to_string().contains("lossy"), "{same}");
    assert!(
        !same["safety_net"].as_str().unwrap().contains("vault"),
        "{same}"
    );
    let narrow = &plan["changes"][1]["statements"][0];
    assert_eq!(narrow["class"], "preserving", "{narrow}");
    assert!(
        narrow["rules"].to_string().contains("lossy-type-change"),
        "{narrow}"
    );

    let lint: serde_json::Value =
        serde_json::from_str(&stdout(&run(&project, &["lint", "--format", "json"]))).unwrap();
    let rules: Vec<(String, String)> = lint["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        !rules.iter().any(|(file, rule)| file.contains("0002")
            && rule.contains("type-change")
            && rule != "changing-column-type"),
        "{rules:?}"
    );
    assert!(
        rules
            .iter()
            .any(|(file, rule)| file.contains("0003") && rule == "lossy-type-change"),
        "{rules:?}"
    );
}

/// A deploy killed (like `kill -9`) right after the upgrade, after the seal, or before
/// the claim: the rerun converges, and the chain vouches for every row.
fn d06_an_upgrade_killed_at_any_step_converges((project, db): (Project, Db)) {
    three_changes(&project);
    ok(&project, &["deploy", "--to", "0002"]);
    make_old_ledger(&project, &db);
    for point in ["before_seal", "ledger_ready", "before_claim"] {
        let out = ripcord_in(project.path())
            .args(["deploy"])
            .env("RIPCORD_FAILPOINT", point)
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0), "{point} was reached");
        let verify = ok(&project, &["audit", "verify"]);
        assert!(verify.starts_with("OK"), "{point}: {verify}");
        assert!(
            !db.has_column("orders", "coupon"),
            "{point}: nothing deployed yet"
        );
    }
    ok(&project, &["deploy"]);
    assert!(db.has_column("orders", "coupon"));
    let verify = ok(&project, &["audit", "verify"]);
    assert!(
        verify.contains("3 deployed changes of the ledger match it"),
        "{verify}"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {} WHERE kind = 'ledger_sealed'",
            db.ledger("events")
        )),
        "1",
        "old rows are sealed once"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {} WHERE project = 'test'",
            db.ledger("changes")
        )),
        "3"
    );
}
