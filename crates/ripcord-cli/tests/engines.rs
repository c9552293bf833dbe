//! The core contract on both engines, through the real binary: deploy / revert /
//! verify round trips, `--to` and `--last`, failures that leave nothing behind and
//! name file:line, modified changes, rehash, and the audit chain.

#[macro_use]
mod common;

use common::*;

on_both_engines!(
    round_trip_deploy_verify_revert,
    deploy_to_and_revert_last_and_to,
    failing_change_leaves_nothing_and_names_the_line,
    failing_verify_rolls_the_change_back,
    modified_change_refuses_deploy_until_rehash,
    revert_uses_the_ledgered_sql_when_the_file_is_gone,
    audit_chain_detects_an_edit_behind_the_triggers_back,
    dry_runs_change_nothing,
    missing_revert_is_refused_before_anything_runs,
    json_output_is_one_document,
);

fn round_trip_deploy_verify_revert((project, db): (Project, Db)) {
    three_changes(&project);
    let out = ok(&project, &["deploy"]);
    assert!(out.contains("Deployed 3 changes"), "{out}");
    assert!(db.has_column("orders", "coupon"));
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM {}", db.ledger("changes"))),
        "3"
    );

    let out = ok(&project, &["verify"]);
    assert!(out.contains("3 passed, 0 failed"), "{out}");

    ok(&project, &["revert", "--all"]);
    assert!(!db.has_table("users") && !db.has_table("orders"));
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM {}", db.ledger("changes"))),
        "0"
    );

    ok(&project, &["deploy"]);
    assert!(db.has_column("orders", "coupon"));
    let out = ok(&project, &["audit", "verify"]);
    assert!(out.contains("intact"), "{out}");
    // ledger_created + 3 deploys + 3 reverts + 3 deploys
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM {}", db.ledger("events"))),
        "10"
    );
}

fn deploy_to_and_revert_last_and_to((project, db): (Project, Db)) {
    three_changes(&project);
    ok(&project, &["deploy", "--to", "0002_orders"]);
    assert!(db.has_table("orders") && !db.has_column("orders", "coupon"));
    ok(&project, &["deploy"]);
    assert!(db.has_column("orders", "coupon"));

    ok(&project, &["revert", "--last", "1"]);
    assert!(db.has_table("orders") && !db.has_column("orders", "coupon"));

    ok(&project, &["deploy"]);
    ok(&project, &["revert", "--to", "0001_users"]);
    assert!(db.has_table("users") && !db.has_table("orders"));

    // plain revert undoes one change, not everything (sqitch#653)
    ok(&project, &["rollback"]);
    assert!(!db.has_table("users"));

    let out = run(&project, &["deploy", "--to", "0009_nope"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("no change named `0009_nope`"),
        "{}",
        stderr(&out)
    );
}

fn failing_change_leaves_nothing_and_names_the_line((project, db): (Project, Db)) {
    three_changes(&project);
    ok(&project, &["deploy"]);
    project.change(
        "0004_broken",
        "-- ripcord:deploy\nCREATE TABLE audit_log (id integer);\n\
         INSERT INTO audit_log (id) VALUES (1);\nUPDATE orders SET totl = 0;\n\
         -- ripcord:revert\nDROP TABLE audit_log;\n",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 1);
    let err = stderr(&out);
    // PostgreSQL points at the column; SQLite at the statement's offending token too.
    assert!(err.contains("changes/0004_broken.sql:4:"), "{err}");
    assert!(err.contains("totl"), "{err}");
    assert!(err.contains("nothing of 0004_broken was applied"), "{err}");
    assert!(
        !db.has_table("audit_log"),
        "the failed change must leave nothing behind"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {} WHERE name = '0004_broken'",
            db.ledger("changes")
        )),
        "0"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {} WHERE kind = 'deploy_failed'",
            db.ledger("events")
        )),
        "1"
    );
    if db.is_postgres() {
        assert!(
            err.contains("changes/0004_broken.sql:4:19"),
            "PostgreSQL's error position maps to the column: {err}"
        );
    }
}

fn failing_verify_rolls_the_change_back((project, db): (Project, Db)) {
    project.simple_change(
        "0001_t",
        "CREATE TABLE t (a integer);",
        "DROP TABLE t;",
        "SELECT b FROM t;",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 1);
    assert!(
        stderr(&out).contains("0001_t verify failed"),
        "{}",
        stderr(&out)
    );
    assert!(!db.has_table("t"));
}

fn modified_change_refuses_deploy_until_rehash((project, db): (Project, Db)) {
    three_changes(&project);
    ok(&project, &["deploy", "--to", "0002"]);
    let path = project.change_path("0001_users");
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace("WHERE 1 = 0", "WHERE 1 = 0 AND id > 0");
    std::fs::write(&path, edited).unwrap();

    let status = ok(&project, &["status"]);
    assert!(status.contains("modified"), "{status}");
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    assert!(
        stderr(&out).contains("ripcord rehash 0001_users"),
        "{}",
        stderr(&out)
    );
    assert!(
        !db.has_column("orders", "coupon"),
        "a refused deploy runs nothing"
    );

    let out = run(
        &project,
        &["rehash", "0001_users", "--reason", "tightened the verify"],
    );
    expect_exit(&out, 0);
    let reason = db.scalar(&format!(
        "SELECT detail FROM {} WHERE kind = 'rehash'",
        db.ledger("events")
    ));
    assert!(reason.contains("tightened the verify"), "{reason}");
    ok(&project, &["deploy"]);
    assert!(db.has_column("orders", "coupon"));
}

fn revert_uses_the_ledgered_sql_when_the_file_is_gone((project, db): (Project, Db)) {
    three_changes(&project);
    ok(&project, &["deploy"]);
    std::fs::remove_file(project.change_path("0003_coupon")).unwrap();
    let status = ok(&project, &["status"]);
    assert!(status.contains("missing-file"), "{status}");
    ok(&project, &["revert", "--last", "1"]);
    assert!(!db.has_column("orders", "coupon"));
}

fn audit_chain_detects_an_edit_behind_the_triggers_back((project, db): (Project, Db)) {
    three_changes(&project);
    ok(&project, &["deploy"]);
    let events = db.ledger("events");
    // The trigger refuses an honest UPDATE …
    let refused = match &db {
        Db::Sqlite(path) => rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(&format!(
                "UPDATE {events} SET actor = 'mallory' WHERE seq = 2"
            ))
            .is_err(),
        Db::Postgres(t) => t
            .connect()
            .batch_execute(&format!(
                "UPDATE {events} SET actor = 'mallory' WHERE seq = 2"
            ))
            .is_err(),
    };
    assert!(refused, "the append-only trigger must refuse updates");
    // … so the attacker goes around it.
    match &db {
        Db::Sqlite(_) => db.exec(&format!(
            "DROP TRIGGER ripcord_events_no_update; UPDATE {events} SET actor = 'mallory' WHERE seq = 2;"
        )),
        Db::Postgres(_) => db.exec(&format!(
            "SET session_replication_role = replica; UPDATE {events} SET actor = 'mallory' WHERE seq = 2;"
        )),
    }
    let out = run(&project, &["audit", "verify"]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains("event 2 was altered"),
        "{}",
        stdout(&out)
    );
}

fn dry_runs_change_nothing((project, db): (Project, Db)) {
    three_changes(&project);
    let out = ok(&project, &["deploy", "--dry-run"]);
    assert!(out.contains("CREATE TABLE users"), "{out}");
    assert!(
        out.contains("-- deploy changes/0002_orders.sql:3:1"),
        "{out}"
    );
    assert!(!db.has_table("users"));
    ok(&project, &["deploy"]);
    let out = ok(&project, &["revert", "--last", "2", "--dry-run"]);
    assert!(
        out.contains("ALTER TABLE orders DROP COLUMN coupon;"),
        "{out}"
    );
    assert!(
        out.find("0003_coupon").unwrap() < out.find("0002_orders").unwrap(),
        "newest first: {out}"
    );
    assert!(db.has_column("orders", "coupon"));
}

fn missing_revert_is_refused_before_anything_runs((project, db): (Project, Db)) {
    project.simple_change("0001_a", "CREATE TABLE a (x integer);", "DROP TABLE a;", "");
    // An index without a name is not a statement ripcord can write the undo of.
    project.simple_change(
        "0002_b",
        "CREATE TABLE b (x integer);\nCREATE INDEX ON b (x);",
        "",
        "",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    assert!(
        stderr(&out).contains("0002_b has no revert section"),
        "{}",
        stderr(&out)
    );
    assert!(!db.has_table("a"), "the gate runs before any change");

    project.change(
        "0002_b",
        "-- irreversible: one-way data fix\n-- ripcord:deploy\nCREATE TABLE b (x integer);\n",
    );
    ok(&project, &["deploy"]);
    let out = run(&project, &["revert", "--all"]);
    expect_exit(&out, 4);
    assert!(
        stderr(&out).contains("declared irreversible (one-way data fix)"),
        "{}",
        stderr(&out)
    );
    assert!(db.has_table("a") && db.has_table("b"));
}

fn json_output_is_one_document((project, _db): (Project, Db)) {
    three_changes(&project);
    let out = ok(&project, &["deploy", "--json"]);
    let report: serde_json::Value =
        serde_json::from_str(&out).expect("deploy --json prints one JSON document");
    assert_eq!(report["deployed"].as_array().unwrap().len(), 3);
    let status: serde_json::Value =
        serde_json::from_str(&ok(&project, &["status", "--json"])).unwrap();
    assert_eq!(status["changes"][2]["status"], "deployed");
    let log: serde_json::Value = serde_json::from_str(&ok(&project, &["log", "--json"])).unwrap();
    assert_eq!(log["events"].as_array().unwrap().len(), 3);
    let failed = run(&project, &["revert", "--to", "0042", "--json"]);
    expect_exit(&failed, 2);
    let error: serde_json::Value = serde_json::from_str(&stdout(&failed)).unwrap();
    assert_eq!(error["error"]["exit_code"], 2);
}
