//! The kill -9 matrix (docs/reliability.md): for each failpoint of deploy, revert, the
//! vault, batch revert, flashback and snapshot restore, the same scenario runs twice on
//! fresh databases — once uninterrupted, once killed at the point (`RIPCORD_FAILPOINT`
//! aborts the process like `kill -9`) and then rerun with the same command — and both
//! must end the same: equal schema and data fingerprints, the same deployed changes,
//! each completion recorded once in the audit chain, the chain intact, the lock free.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;

use common::*;

/// Builds the database to the point before the command under test and returns that
/// command's arguments (which may name something the setup made: a moment, a snapshot).
type Setup = fn(&Project, &Db) -> Vec<String>;

/// Everything that must be equal between an uninterrupted run and a killed-then-rerun
/// one.
#[derive(Debug, PartialEq)]
struct Outcome {
    schema_digest: String,
    tables: Vec<serde_json::Value>,
    deployed: Vec<String>,
    completions: BTreeMap<String, usize>,
}

fn json(project: &Project, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = run(project, &args);
    expect_exit(&out, 0);
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Event kinds that say an operation finished; each must be recorded exactly as often as
/// in the uninterrupted run.
const COMPLETIONS: &[&str] = &[
    "deploy_completed",
    "revert_completed",
    "batch_reverted",
    "flashback_completed",
];

fn outcome(project: &Project, db: &Db) -> Outcome {
    let fingerprint = json(project, &["fingerprint"]);
    let status = json(project, &["status"]);
    let deployed = status["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "deployed")
        .map(|c| c["change"].as_str().unwrap().to_string())
        .collect();
    let mut completions = BTreeMap::new();
    for kind in COMPLETIONS {
        let count: usize = db
            .scalar(&format!(
                "SELECT count(*) FROM {} WHERE kind = '{kind}'",
                db.ledger("events")
            ))
            .parse()
            .unwrap();
        completions.insert(kind.to_string(), count);
    }
    Outcome {
        schema_digest: fingerprint["schema_digest"].as_str().unwrap().to_string(),
        tables: fingerprint["tables"].as_array().unwrap().clone(),
        deployed,
        completions,
    }
}

/// Run `setup`'s command uninterrupted on one database, and killed at `failpoint` then
/// rerun on another; assert both end the same.
fn converges(engine: fn() -> (Project, Db), setup: Setup, failpoint: &str) {
    let (clean_project, clean_db) = engine();
    let command = setup(&clean_project, &clean_db);
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    ok(&clean_project, &args);
    let expected = outcome(&clean_project, &clean_db);

    let (project, db) = engine();
    let command = setup(&project, &db);
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    let killed = ripcord_in(project.path())
        .args(&args)
        .env("RIPCORD_FAILPOINT", failpoint)
        .output()
        .unwrap();
    assert_eq!(
        killed.status.signal(),
        Some(6),
        "{failpoint} was reached and aborted `ripcord {}` (exit {:?}): {}",
        args.join(" "),
        killed.status.code(),
        stderr(&killed)
    );
    ok(&project, &args);
    assert_eq!(
        outcome(&project, &db),
        expected,
        "killed at {failpoint} and rerun, `ripcord {}` ends as an uninterrupted run",
        args.join(" ")
    );
    let verify = ok(&project, &["audit", "verify"]);
    assert!(verify.starts_with("OK"), "{failpoint}: {verify}");
    assert_eq!(
        json(&project, &["unlock"])["action"],
        "free",
        "{failpoint}: the lock is free"
    );
}

fn items_rows() -> String {
    (1..=30)
        .map(|i| format!("({i}, 'item {i}', {})", i % 7))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Four changes: a table with rows, a DELETE and an UPDATE the vault keeps (no revert
/// of their own), and one more table.
fn four_changes(project: &Project) {
    project.simple_change(
        "0001_items",
        &format!(
            "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL);\n\
             INSERT INTO items VALUES {};",
            items_rows()
        ),
        "DROP TABLE items;",
        "SELECT id FROM items WHERE 1 = 0;",
    );
    project.change(
        "0002_trim",
        "-- ripcord:deploy\nDELETE FROM items WHERE id > 25;\n",
    );
    project.change(
        "0003_double",
        "-- ripcord:deploy\nUPDATE items SET qty = qty * 2 WHERE id % 3 = 0;\n",
    );
    project.simple_change(
        "0004_notes",
        "CREATE TABLE notes (id integer PRIMARY KEY, body text);\nINSERT INTO notes VALUES (1, 'x'), (2, NULL);",
        "DROP TABLE notes;",
        "",
    );
}

fn deploy_four(project: &Project, _: &Db) -> Vec<String> {
    four_changes(project);
    vec!["deploy".into()]
}

/// The first two changes deployed, the rest pending: the run finds a ledger to check.
fn deploy_rest(project: &Project, _: &Db) -> Vec<String> {
    four_changes(project);
    ok(project, &["deploy", "--to", "0002_trim"]);
    vec!["deploy".into()]
}

fn revert_four(project: &Project, _: &Db) -> Vec<String> {
    four_changes(project);
    ok(project, &["deploy"]);
    vec!["revert".into(), "--all".into(), "--yes".into()]
}

fn non_transactional(project: &Project) {
    project.simple_change(
        "0001_t",
        "CREATE TABLE t (n integer PRIMARY KEY);",
        "DROP TABLE t;",
        "",
    );
    project.change(
        "0002_load",
        "-- transaction: none\n-- ripcord:deploy\n\
         INSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\nINSERT INTO t VALUES (3);\n\
         -- ripcord:revert\nDELETE FROM t WHERE n = 3;\nDELETE FROM t WHERE n = 2;\nDELETE FROM t WHERE n = 1;\n",
    );
}

fn deploy_non_transactional(project: &Project, _: &Db) -> Vec<String> {
    non_transactional(project);
    vec!["deploy".into()]
}

fn revert_non_transactional(project: &Project, _: &Db) -> Vec<String> {
    non_transactional(project);
    ok(project, &["deploy"]);
    vec!["revert".into(), "--last".into(), "1".into(), "--yes".into()]
}

/// A captured table and two tagged batches; the first touches rows the second does not.
fn captured_with_batches(project: &Project, db: &Db) {
    db.exec(
        "CREATE TABLE acct (id integer PRIMARY KEY, owner text NOT NULL, balance integer NOT NULL);
         INSERT INTO acct VALUES (1, 'ada', 10), (2, 'bob', 20), (3, 'cy', 30), (4, 'dee', 40);",
    );
    ok(project, &["capture", "enable", "acct"]);
}

fn as_batch(db: &Db, tag: &str, sql: &str) {
    match db {
        Db::Postgres(_) => db.exec(&format!(
            "SET ripcord.batch = '{tag}'; {sql}; RESET ripcord.batch;"
        )),
        Db::Sqlite(_) => db.exec(&format!(
            "INSERT OR REPLACE INTO ripcord_capture_context VALUES (1, '{tag}'); {sql}; \
             DELETE FROM ripcord_capture_context;"
        )),
    }
}

fn batch_revert(project: &Project, db: &Db) -> Vec<String> {
    captured_with_batches(project, db);
    as_batch(
        db,
        "bad",
        "INSERT INTO acct VALUES (5, 'eve', 50); UPDATE acct SET balance = balance + 1 WHERE id IN (1, 2); \
         DELETE FROM acct WHERE id = 3",
    );
    as_batch(
        db,
        "good",
        "UPDATE acct SET balance = 99 WHERE id = 4; INSERT INTO acct VALUES (6, 'fay', 60)",
    );
    vec!["batch".into(), "revert".into(), "bad".into()]
}

fn flashback(project: &Project, db: &Db) -> Vec<String> {
    captured_with_batches(project, db);
    as_batch(db, "early", "INSERT INTO acct VALUES (7, 'gil', 70)");
    let moment = match db {
        Db::Postgres(_) => db.scalar("SELECT clock_timestamp()::text"),
        Db::Sqlite(_) => db.scalar("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"),
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    as_batch(
        db,
        "late",
        "UPDATE acct SET owner = 'ADA' WHERE id = 1; DELETE FROM acct WHERE id = 2; \
         INSERT INTO acct VALUES (8, 'hal', 80)",
    );
    vec!["flashback".into(), "acct".into(), "--to".into(), moment]
}

/// Two tables with a foreign key and an index, snapshotted, then damaged.
fn snapshot_restore(project: &Project, db: &Db) -> Vec<String> {
    db.exec(
        "CREATE TABLE parent (id integer PRIMARY KEY, name text NOT NULL);
         CREATE TABLE child (id integer PRIMARY KEY, parent_id integer REFERENCES parent (id), note text);
         CREATE INDEX child_parent_idx ON child (parent_id);
         INSERT INTO parent SELECT i, 'p' || i FROM generate_series(1, 50) i;
         INSERT INTO child SELECT i, 1 + i % 50, CASE WHEN i % 5 = 0 THEN NULL ELSE 'n' || i END
           FROM generate_series(1, 500) i;",
    );
    let created = json(
        project,
        &["snapshot", "create", "--tables", "parent", "child"],
    );
    let id = created["id"].as_str().unwrap().to_string();
    db.exec("DELETE FROM child WHERE id > 400; UPDATE parent SET name = 'broken' WHERE id < 10;");
    vec![
        "snapshot".into(),
        "restore".into(),
        id,
        "--parallel".into(),
        "2".into(),
    ]
}

fn sqlite() -> (Project, Db) {
    Db::sqlite_project()
}

fn postgres() -> (Project, Db) {
    Db::postgres_project()
}

/// One test per (engine, scenario, failpoint).
macro_rules! matrix {
    ($($name:ident: $setup:ident at $point:literal on [$($engine:ident),+];)*) => {
        $(
            mod $name {
                $(
                    #[test]
                    fn $engine() {
                        super::converges(super::$engine, super::$setup, $point);
                    }
                )+
            }
        )*
    };
}

matrix! {
    deploy_ledger_ready: deploy_rest at "ledger_ready" on [sqlite, postgres];
    deploy_first_statements_done: deploy_four at "deploy_statements_done" on [sqlite, postgres];
    deploy_vault_kept_delete: deploy_four at "vault_kept" on [sqlite, postgres];
    deploy_vault_kept_update: deploy_four at "vault_kept#2" on [sqlite, postgres];
    deploy_third_statements_done: deploy_four at "deploy_statements_done#3" on [sqlite, postgres];
    deploy_before_third_commit: deploy_four at "before_commit#3" on [sqlite, postgres];
    deploy_before_last_commit: deploy_four at "before_commit#4" on [sqlite, postgres];
    deploy_non_transactional_statement: deploy_non_transactional at "nontx_statement_done#2" on [sqlite, postgres];
    revert_first_statements_done: revert_four at "revert_statements_done" on [sqlite, postgres];
    revert_vault_put_back_update: revert_four at "revert_statements_done#2" on [sqlite, postgres];
    revert_vault_put_back_delete: revert_four at "revert_statements_done#3" on [sqlite, postgres];
    revert_before_commit: revert_four at "before_commit#2" on [sqlite, postgres];
    revert_non_transactional_statement: revert_non_transactional at "nontx_revert_statement_done#2" on [sqlite, postgres];
    batch_revert_first_step: batch_revert at "undo_step_done" on [sqlite, postgres];
    batch_revert_third_step: batch_revert at "undo_step_done#3" on [sqlite, postgres];
    batch_revert_applied: batch_revert at "undo_applied" on [sqlite, postgres];
    batch_revert_before_commit: batch_revert at "undo_before_commit" on [sqlite, postgres];
    flashback_second_step: flashback at "undo_step_done#2" on [sqlite, postgres];
    flashback_applied: flashback at "undo_applied" on [sqlite, postgres];
    flashback_before_commit: flashback at "undo_before_commit" on [sqlite, postgres];
    restore_tables_loaded: snapshot_restore at "restore_tables_loaded" on [postgres];
    restore_indexes_built: snapshot_restore at "restore_indexes_built" on [postgres];
}
