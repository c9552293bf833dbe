//! Failure paths a 3 a.m. operator meets: a held lock, a bad config, an unreachable
//! server, and a crash in the middle of a `transaction: none` change.

#[macro_use]
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Start `ripcord deploy` paused (by a failpoint) while it holds the lock.
fn deploy_paused_holding_the_lock(project: &Project) -> std::process::Child {
    ripcord_in(project.path())
        .args(["deploy"])
        .env("RIPCORD_FAILPOINT", "deploy_statements_done=sleep(4000)")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for_lock_row(db: &Db) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let exists = match db {
            Db::Sqlite(_) => {
                db.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'ripcord_lock'") == "1"
            }
            Db::Postgres(_) => {
                db.scalar("SELECT to_regclass('ripcord.lock') IS NOT NULL") == "true"
            }
        };
        if exists && db.scalar(&format!("SELECT count(*) FROM {}", db.ledger("lock"))) == "1" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the first deploy never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn concurrent_deploys_one_gets_exit_3((project, db): (Project, Db)) {
    three_changes(&project);
    let mut first = deploy_paused_holding_the_lock(&project);
    wait_for_lock_row(&db);
    let second = run(&project, &["deploy"]);
    expect_exit(&second, 3);
    let err = stderr(&second);
    assert!(
        err.contains("another ripcord holds the target's lock"),
        "{err}"
    );
    assert!(
        err.contains("`ripcord deploy` on host testhost, pid"),
        "names the holder: {err}"
    );
    assert!(first.wait().unwrap().success(), "the first deploy finishes");
    assert!(db.has_column("orders", "coupon"));
    ok(&project, &["status"]);
}

fn crash_in_a_non_transactional_change_resumes_exactly_once((project, db): (Project, Db)) {
    project.simple_change("0001_t", "CREATE TABLE t (n integer);", "DROP TABLE t;", "");
    project.change(
        "0002_load",
        "-- transaction: none\n-- ripcord:deploy\n\
         INSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\nINSERT INTO t VALUES (3);\n\
         -- ripcord:revert\nDELETE FROM t WHERE n IN (1, 2, 3);\n\
         -- ripcord:verify\nSELECT n FROM t WHERE 1 = 0;\n",
    );
    // Die right after the second statement of 0002 committed.
    let crashed = ripcord_in(project.path())
        .args(["deploy"])
        .env("RIPCORD_FAILPOINT", "nontx_statement_done#2")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the failpoint kills the process");
    assert_eq!(db.scalar("SELECT count(*) FROM t"), "2");
    let status = ok(&project, &["status"]);
    assert!(
        status.contains("deploy stopped after 2 of 3 statements"),
        "{status}"
    );

    let out = ok(&project, &["deploy"]);
    assert!(out.contains("Deployed 1 change"), "{out}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM t"),
        "3",
        "each row exactly once"
    );
    assert_eq!(db.scalar("SELECT sum(n) FROM t"), "6");
    assert!(ok(&project, &["status"]).contains("2 deployed"));
    ok(&project, &["audit", "verify"]);
}

fn real_sigkill_mid_change_rolls_back_and_rerun_converges((project, db): (Project, Db)) {
    three_changes(&project);
    let mut child = deploy_paused_holding_the_lock(&project);
    wait_for_lock_row(&db);
    // The first change's statements ran inside its open transaction; kill -9 now.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    // Nothing of the killed change is visible; the lock row is stale but not held.
    assert!(!db.has_table("users"));
    let out = ok(&project, &["deploy"]);
    assert!(out.contains("Deployed 3 changes"), "{out}");
    ok(&project, &["verify"]);
}

fn crash_in_a_non_transactional_revert_resumes_exactly_once((project, db): (Project, Db)) {
    project.simple_change("0001_t", "CREATE TABLE t (n integer);", "DROP TABLE t;", "");
    project.change(
        "0002_load",
        "-- transaction: none\n-- ripcord:deploy\n\
         INSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\nINSERT INTO t VALUES (3);\n\
         -- ripcord:revert\nDELETE FROM t WHERE n = 3;\nDELETE FROM t WHERE n = 2;\nDELETE FROM t WHERE n = 1;\n",
    );
    ok(&project, &["deploy"]);
    // Die right after the second statement of the revert committed.
    let crashed = ripcord_in(project.path())
        .args(["revert", "--yes"])
        .env("RIPCORD_FAILPOINT", "nontx_revert_statement_done#2")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the failpoint kills the process");
    assert_eq!(db.scalar("SELECT count(*) FROM t"), "1");
    let status = ok(&project, &["status"]);
    assert!(
        status.contains("revert stopped after 2 of 3 statements"),
        "{status}"
    );
    // The rerun resumes at the third statement: nothing runs twice.
    ok(&project, &["revert", "--yes"]);
    assert_eq!(db.scalar("SELECT count(*) FROM t"), "0");
    assert!(ok(&project, &["status"]).contains("1 deployed"));
    ok(&project, &["audit", "verify"]);
    // And it deploys again from scratch.
    ok(&project, &["deploy"]);
    assert_eq!(db.scalar("SELECT sum(n) FROM t"), "6");
}

fn crash_just_before_a_commit_loses_that_change_only((project, db): (Project, Db)) {
    three_changes(&project);
    // Die before the second change commits: its transaction dies with the process.
    let crashed = ripcord_in(project.path())
        .args(["deploy"])
        .env("RIPCORD_FAILPOINT", "before_commit#2")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the failpoint kills the process");
    assert!(ok(&project, &["status"]).contains("1 deployed"));
    let out = ok(&project, &["deploy"]);
    assert!(out.contains("Deployed 2 changes"), "{out}");
    assert!(ok(&project, &["status"]).contains("3 deployed"));
    ok(&project, &["verify"]);
    ok(&project, &["audit", "verify"]);
    let _ = db;
}

on_both_engines!(
    concurrent_deploys_one_gets_exit_3,
    crash_in_a_non_transactional_change_resumes_exactly_once,
    crash_in_a_non_transactional_revert_resumes_exactly_once,
    crash_just_before_a_commit_loses_that_change_only,
    real_sigkill_mid_change_rolls_back_and_rerun_converges,
);

#[test]
fn unknown_config_key_is_exit_2_with_line_and_suggestion() {
    let project = Project::sqlite();
    project.write_config("[project]\nname = \"x\"\n\n[targets.dev]\nurl = \"sqlite://x.db\"\n\n[safety]\nlock_timout = \"5s\"\n");
    let out = run(&project, &["status"]);
    expect_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("unknown key `lock_timout`"), "{err}");
    assert!(err.contains("ripcord.toml:8:1"), "{err}");
    assert!(err.contains("did you mean `lock_timeout`?"), "{err}");
    assert!(!project.path().join("x.db").exists(), "nothing was touched");
}

#[test]
fn unreachable_server_is_exit_5_without_the_password() {
    let project = Project::sqlite();
    three_changes(&project);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:Sup3rS3cret@127.0.0.1:{port}/shop");
    let out = run(&project, &["deploy", "--url", &url]);
    expect_exit(&out, 5);
    let err = stderr(&out);
    assert!(
        err.contains("cannot connect to postgres://app:***@127.0.0.1"),
        "{err}"
    );
    assert!(
        !err.contains("Sup3rS3cret") && !stdout(&out).contains("Sup3rS3cret"),
        "{err}"
    );

    let out = ripcord_in(project.path())
        .args(["status", "--json"])
        .env("RIPCORD_URL", &url)
        .output()
        .unwrap();
    expect_exit(&out, 5);
    assert!(!stdout(&out).contains("Sup3rS3cret") && !stderr(&out).contains("Sup3rS3cret"));
}

#[test]
fn password_in_config_is_refused_and_not_echoed() {
    let project = Project::sqlite();
    project.write_config("[targets.prod]\nurl = \"postgres://app:hunter2@db/shop\"\n");
    let out = run(&project, &["status"]);
    expect_exit(&out, 2);
    assert!(stderr(&out).contains("url_env"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("hunter2"));
}

#[test]
fn url_env_target_reads_the_environment() {
    let database = pg().create_database();
    let project = Project::sqlite();
    project.write_config("[targets.prod]\nurl_env = \"TEST_PROD_URL\"\n");
    three_changes(&project);
    let out = run(&project, &["status"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("$TEST_PROD_URL, which is not set"),
        "{}",
        stderr(&out)
    );
    let out = ripcord_in(project.path())
        .args(["deploy", "--target", "prod"])
        .env("TEST_PROD_URL", &database.url)
        .output()
        .unwrap();
    expect_exit(&out, 0);
}

#[test]
fn broken_requires_is_exit_2_naming_the_file() {
    let project = Project::sqlite();
    project.simple_change("0001_a", "CREATE TABLE a (x integer);", "DROP TABLE a;", "");
    project.change(
        "0002_b",
        "-- requires: 0001_aa\n-- ripcord:deploy\nSELECT 1;\n-- ripcord:revert\nSELECT 1;\n",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("0002_b requires 0001_aa, which is not a change of this project"),
        "{err}"
    );
    assert!(err.contains("did you mean `0001_a`?"), "{err}");
    assert!(!project.sqlite_path().exists() || !Db::Sqlite(project.sqlite_path()).has_table("a"));
}

#[test]
fn malformed_change_file_is_exit_2_with_its_position() {
    let project = Project::sqlite();
    project.change(
        "0001_a",
        "-- ripcord:deploy\nCREATE TABLE a (x text DEFAULT 'oops);\n",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out)
            .contains("changes/0001_a.sql:2:32: string literal starting here is never closed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn new_picks_the_next_id_even_while_a_template_is_unfilled() {
    let project = Project::sqlite();
    three_changes(&project);
    ok(&project, &["new", "add_index", "--requires", "0002"]);
    let text = std::fs::read_to_string(project.change_path("0004_add_index")).unwrap();
    assert!(text.starts_with("-- requires: 0002_orders\n"), "{text}");
    // 0004 is an empty template: status says so precisely (and still shows the rest),
    // new still works, deploy refuses to go past it.
    let out = ok(&project, &["status"]);
    assert!(
        out.contains("invalid")
            && out.contains("changes/0004_add_index.sql:2:1: the deploy section is empty"),
        "{out}"
    );
    assert!(out.contains("0001_users"), "{out}");
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("changes/0004_add_index.sql:2:1: the deploy section is empty"),
        "{}",
        stderr(&out)
    );
    ok(&project, &["deploy", "--to", "0003"]);
    ok(&project, &["new", "second"]);
    assert!(project.change_path("0005_second").is_file());
    let out = run(&project, &["new", "x", "--requires", "0042"]);
    expect_exit(&out, 2);
}

/// A change whose verify fails unless the session is (or is not) encrypted.
fn tls_probe(project: &Project, encrypted: bool) {
    let expect = if encrypted { "ssl" } else { "NOT ssl" };
    project.simple_change(
        "0001_probe",
        "CREATE TABLE probe (x int);",
        "DROP TABLE probe;",
        &format!("SELECT 1 / (CASE WHEN {expect} THEN 1 ELSE 0 END) FROM pg_stat_ssl WHERE pid = pg_backend_pid();"),
    );
}

#[test]
fn tls_modes_encrypt_and_verify_like_libpq() {
    let database = pg().create_database();
    let project = Project::sqlite();
    let run_with = |url: &str| {
        ripcord_in(project.path())
            .args(["deploy", "--url", url])
            .output()
            .unwrap()
    };
    let revert_with = |url: &str| {
        ripcord_in(project.path())
            .args(["revert", "--all", "--yes", "--url", url])
            .output()
            .unwrap()
    };

    tls_probe(&project, true);
    let require = format!("{}?sslmode=require", database.url);
    expect_exit(&run_with(&require), 0);
    expect_exit(&revert_with(&require), 0);

    let full = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        database.url,
        pg().ca_cert().display()
    );
    expect_exit(&run_with(&full), 0);
    expect_exit(&revert_with(&full), 0);

    // The test server's self-signed certificate is not signed by a public root.
    let untrusted = format!("{}?sslmode=verify-full", database.url);
    let out = run_with(&untrusted);
    expect_exit(&out, 5);
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );

    tls_probe(&project, false);
    let plain = format!("{}?sslmode=disable", database.url);
    expect_exit(&run_with(&plain), 0);
}

/// A project whose one change needs an ACCESS EXCLUSIVE lock on `held`, with a short
/// lock_timeout.
fn lock_project() -> (Project, ripcord_testkit::TestDatabase) {
    let database = pg().create_database();
    let project = Project::new(&database.url);
    database
        .connect()
        .batch_execute("CREATE TABLE held (id int PRIMARY KEY); INSERT INTO held VALUES (1);")
        .unwrap();
    let config = std::fs::read_to_string(project.path().join("ripcord.toml")).unwrap();
    project.write_config(&format!("{config}\n[safety]\nlock_timeout = \"200ms\"\n"));
    project.simple_change(
        "0001_add_note",
        "ALTER TABLE held ADD COLUMN note text;",
        "ALTER TABLE held DROP COLUMN note;",
        "SELECT note FROM held;",
    );
    (project, database)
}

/// Another session that read `held` and sits idle in its transaction.
fn hold_lock(database: &ripcord_testkit::TestDatabase) -> ::postgres::Client {
    let mut url = database.url.clone();
    url.push_str(if url.contains('?') { "&" } else { "?" });
    url.push_str("application_name=nightly-report");
    let mut blocker = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    blocker.batch_execute("BEGIN; SELECT * FROM held;").unwrap();
    blocker
}

#[test]
fn a_held_lock_is_retried_then_fails_naming_the_blocker_and_leaves_nothing() {
    let (project, database) = lock_project();
    let mut blocker = hold_lock(&database);
    let blocker_pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("lock timeout"), "{err}");
    assert!(err.contains("waited for a lock 4 times"), "{err}");
    assert!(
        err.contains(&format!("pid {blocker_pid}")) && err.contains("nightly-report"),
        "names the blocking session: {err}"
    );
    assert!(err.contains("idle in transaction"), "{err}");
    let progress = stdout(&out);
    assert_eq!(
        progress.matches("waited too long for a lock").count(),
        3,
        "{progress}"
    );
    // Nothing was applied, and the failure (with its blocker) is in the audit chain.
    let db = Db::Postgres(database);
    assert!(!db.has_column("held", "note"));
    assert_eq!(db.scalar("SELECT count(*) FROM ripcord.changes"), "0");
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM ripcord.events WHERE kind = 'deploy_failed' \
             AND detail::jsonb -> 'blocked_by' -> 0 ->> 'pid' = '{blocker_pid}'"
        )),
        "1"
    );
    blocker.batch_execute("ROLLBACK").unwrap();
    ok(&project, &["deploy"]);
    assert!(db.has_column("held", "note"));

    // A revert meets the same treatment, and the change stays deployed.
    blocker.batch_execute("BEGIN; SELECT * FROM held;").unwrap();
    let out = run(&project, &["revert", "--yes"]);
    expect_exit(&out, 1);
    assert!(stderr(&out).contains("nightly-report"), "{}", stderr(&out));
    assert!(db.has_column("held", "note"));
    assert_eq!(db.scalar("SELECT count(*) FROM ripcord.changes"), "1");
    blocker.batch_execute("ROLLBACK").unwrap();
    ok(&project, &["revert", "--yes"]);
    assert!(!db.has_column("held", "note"));
}

#[test]
fn a_lock_released_during_the_retries_lets_the_deploy_through() {
    let (project, database) = lock_project();
    let mut blocker = hold_lock(&database);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        blocker.batch_execute("ROLLBACK").unwrap();
    });
    let out = run(&project, &["deploy"]);
    releaser.join().unwrap();
    expect_exit(&out, 0);
    assert!(
        stdout(&out).contains("waited too long for a lock"),
        "{}",
        stdout(&out)
    );
    assert!(Db::Postgres(database).has_column("held", "note"));
}

#[test]
fn a_change_without_revert_needs_consent_which_the_audit_chain_keeps() {
    let (project, db) = Db::sqlite_project();
    project.change(
        "0001_purge",
        // SQLite cannot keep a dropped column, so ripcord cannot write this revert.
        "-- ripcord:deploy\nCREATE TABLE scratch (id integer, note text);\nALTER TABLE scratch DROP COLUMN note;\n",
    );
    let refused = run(&project, &["deploy", "--json"]);
    expect_exit(&refused, 4);
    let error: serde_json::Value = serde_json::from_str(&stdout(&refused)).unwrap();
    assert!(
        error["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("--accept-irreversible 0001_purge"),
        "{error}"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM ripcord_changes"), "0");
    let unknown = run(&project, &["deploy", "--accept-irreversible", "0009_nope"]);
    expect_exit(&unknown, 2);

    ok(&project, &["deploy", "--accept-irreversible", "0001"]);
    assert_eq!(
        db.scalar("SELECT count(*) FROM ripcord_events WHERE kind = 'irreversible_accepted' AND change = '0001_purge'"),
        "1"
    );
    assert!(
        db.scalar("SELECT irreversible FROM ripcord_changes WHERE name = '0001_purge'")
            .contains("accepted by tester with --accept-irreversible"),
    );
    let revert = run(&project, &["revert", "--yes"]);
    expect_exit(&revert, 4);
    ok(&project, &["audit", "verify"]);
}
