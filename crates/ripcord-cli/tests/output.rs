//! Snapshots of the human output people read: status, deploy, revert, log, and an
//! error pointing into a change file. Times, durations and paths are filtered.

mod common;

use common::*;

fn project() -> Project {
    let project = Project::sqlite();
    three_changes(&project);
    project
}

#[test]
fn status_output() {
    let project = project();
    ok(&project, &["deploy", "--to", "0001"]);
    let path = project.change_path("0001_users");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("WHERE 1 = 0", "WHERE false")).unwrap();
    filters().bind(|| insta::assert_snapshot!(ok(&project, &["status"])));
}

#[test]
fn deploy_output() {
    let project = project();
    filters().bind(|| insta::assert_snapshot!(ok(&project, &["deploy"])));
}

#[test]
fn deploy_dry_run_output() {
    let project = project();
    ok(&project, &["deploy", "--to", "0002"]);
    filters().bind(|| insta::assert_snapshot!(ok(&project, &["deploy", "--dry-run"])));
}

#[test]
fn revert_output() {
    let project = project();
    ok(&project, &["deploy"]);
    filters()
        .bind(|| insta::assert_snapshot!(ok(&project, &["revert", "--to", "0001_users", "--yes"])));
}

#[test]
fn log_output() {
    let project = project();
    ok(&project, &["deploy"]);
    ok(&project, &["revert", "--last", "1"]);
    filters().bind(|| insta::assert_snapshot!(ok(&project, &["log"])));
}

#[test]
fn failed_change_output() {
    let project = project();
    project.change(
        "0004_broken",
        "-- ripcord:deploy\nCREATE TABLE t (a integer);\nINSERT INTO t (b) VALUES (1);\n-- ripcord:revert\nDROP TABLE t;\n",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 1);
    filters().bind(|| insta::assert_snapshot!(stderr(&out)));
}

#[test]
fn demo_runs_end_to_end_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = ripcord_in(dir.path()).arg("demo").output().unwrap();
    expect_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("Deployed 4 changes"), "{text}");
    assert!(
        text.contains("0005_coupons deploy failed"),
        "the broken change is shown: {text}"
    );
    assert!(text.contains("Reverted 1 change"), "{text}");
    assert!(
        text.contains("index orders_total_idx exists after revert but not before the change"),
        "{text}"
    );
    assert!(
        text.contains("Drill passed: 1 change came back exactly"),
        "{text}"
    );
    assert!(
        text.contains("an emptied table came back from a verified snapshot"),
        "{text}"
    );
    assert!(
        text.contains("check `no free orders` failed (the query returned 1 row (expected none)); reverted 0005_promo"),
        "the gate reverts the bad promo: {text}"
    );
    assert!(
        text.contains("ripcord_reverts_total{target=\"eu\",outcome=\"success\"} 1")
            && text.contains(
                "ripcord_rollouts_total{coordinator=\"eu\",fleet=\"shops\",state=\"rolled_back\"} 1"
            ),
        "the serve step scrapes the shops' metrics: {text}"
    );
    assert!(
        text.contains("signed, every signature verified"),
        "the demo's events are signed and verified: {text}"
    );
    assert!(
        text.contains("the ledger row of 0004_order_status was altered"),
        "the tampered ledger row is caught: {text}"
    );
    assert!(
        text.trim_end()
            .lines()
            .filter(|l| l.starts_with("OK audit chain of dev:"))
            .count()
            == 2
            && text.contains("events intact"),
        "{text}"
    );
}

#[test]
fn runbook_output() {
    let project = Project::sqlite();
    project.write_config(
        "[project]\nname = \"shop\"\ndefault_target = \"test\"\n\n[targets.test]\nurl = \"sqlite://test.db\"\n\n\
         [[checks]]\nname = \"no negative totals\"\nsql = \"select id from orders where total < 0\"\nexpect = { zero_rows = true }\ntables = [\"orders\"]\n\n\
         [[checks]]\nname = \"users exist\"\nsql = \"select count(*) from users\"\nexpect = { min = 1 }\nseverity = \"warn\"\ntables = [\"users\"]\n\n\
         [health]\nprobes = [{ name = \"api up\", http = \"http://127.0.0.1:9000/ready\", status = 200 }]\n\n\
         [[notify]]\nwebhook = \"https://hooks.example.com/services/T000/SECRET\"\non = [\"rollback_started\", \"rollback_completed\"]\n",
    );
    project.change(
        "0001_orders",
        "-- ripcord:deploy\nCREATE TABLE orders (id integer PRIMARY KEY, total integer NOT NULL);\n\
         INSERT INTO orders (total) VALUES (100), (5), (250);\n-- ripcord:revert\nDROP TABLE orders;\n",
    );
    ok(&project, &["deploy"]);
    project.change(
        "0002_purge_negative",
        "-- ripcord:deploy\nCREATE TABLE audit_note (id integer PRIMARY KEY, note text);\nDELETE FROM orders WHERE total < 10;\n",
    );
    project.change(
        "0003_drop_orders",
        "-- irreversible: the orders move to the billing service\n-- ripcord:deploy\nDROP TABLE orders;\n",
    );
    let text = ok(&project, &["runbook"]);
    assert!(
        !text.contains("SECRET"),
        "a webhook's path is never printed: {text}"
    );
    filters().bind(|| insta::assert_snapshot!(text));
    // JSON carries the same: three deploy statements judged, the revert commands.
    let json: serde_json::Value =
        serde_json::from_str(&ok(&project, &["runbook", "--format", "json"])).unwrap();
    assert_eq!(json["changes"].as_array().unwrap().len(), 2);
    assert_eq!(
        json["changes"][0]["revert_command"],
        "ripcord --target test revert --last 2"
    );
    assert_eq!(json["changes"][0]["revert_by"], "ripcord");
    assert_eq!(json["changes"][1]["risk"], "irreversible");
}

#[test]
fn completions_and_the_manual_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ripcord_in(dir.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        expect_exit(&out, 0);
        let text = stdout(&out);
        for command in ["deploy", "rollout", "serve", "import", "unlock", "runbook"] {
            assert!(text.contains(command), "{shell} completions lack {command}");
        }
    }
    let man = ripcord_in(dir.path()).arg("man").output().unwrap();
    expect_exit(&man, 0);
    let text = stdout(&man);
    assert!(
        text.starts_with(".ie") && text.contains(".TH ripcord 1"),
        "{text}"
    );
    assert!(text.contains("rollout"), "the manual lists the commands");
    let bad = ripcord_in(dir.path())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    expect_exit(&bad, 2);
}
