//! `ripcord drill` on both engines: honest changes pass; broken reverts fail with the
//! object named in words; the target is never modified; no scratch is left behind,
//! even when a drill is killed.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use ripcord_core::fingerprint::Fingerprint;

/// The target's fingerprint including the ledger's events, read through the library.
fn target_state(project: &Project, db: &Db) -> (Fingerprint, String) {
    let url = match db {
        Db::Sqlite(path) => format!("sqlite://{}", path.display()),
        Db::Postgres(t) => t.url.clone(),
    };
    let mut target = ripcord::target::connect("t", &url, project.path()).unwrap();
    let fingerprint = Fingerprint::new(
        target.engine.schema_objects().unwrap(),
        target.engine.table_data().unwrap(),
    );
    // A drill notes itself in the audit chain (`drill_completed`); nothing else changes.
    let events = target
        .engine
        .events()
        .unwrap()
        .iter()
        .filter(|e| e.kind != "drill_completed")
        .count()
        .to_string();
    (fingerprint, events)
}

/// A deployed base table with three rows, and drill run over `change`.
fn drill_one(project: &Project, change: &str) -> std::process::Output {
    drill_one_after(project, "", change)
}

/// Like [`drill_one`], with `extra` DDL in the deployed base change.
fn drill_one_after(project: &Project, extra: &str, change: &str) -> std::process::Output {
    project.change(
        "0001_base",
        &format!(
            "-- ripcord:deploy\n{extra}CREATE TABLE t (id integer PRIMARY KEY, n integer NOT NULL, v text DEFAULT 'x');\n\
             INSERT INTO t (id, n) VALUES (1, 10), (2, 20), (3, 30);\n-- ripcord:revert\nDROP TABLE t;\n"
        ),
    );
    ok(project, &["deploy"]);
    project.change("0002_change", change);
    run(project, &["drill"])
}

#[track_caller]
fn assert_drill_fails_naming(project: &Project, change: &str, expected: &str) {
    assert_drill_after_fails_naming(project, "", change, expected);
}

#[track_caller]
fn assert_drill_after_fails_naming(project: &Project, extra: &str, change: &str, expected: &str) {
    let out = drill_one_after(project, extra, change);
    expect_exit(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("FAIL 0002_change"), "{text}");
    assert!(text.contains(expected), "expected `{expected}` in:\n{text}");
}

fn change(deploy: &str, revert: &str) -> String {
    format!("-- ripcord:deploy\n{deploy}\n-- ripcord:revert\n{revert}\n")
}

fn honest_changes_pass_and_the_target_is_untouched((project, db): (Project, Db)) {
    three_changes(&project);
    ok(&project, &["deploy", "--to", "0001"]);
    let postgres_only = if db.is_postgres() {
        "CREATE FUNCTION t_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n\
         CREATE TYPE mood AS ENUM ('ok', 'sad');\nALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0);\n"
    } else {
        ""
    };
    let postgres_revert = if db.is_postgres() {
        "ALTER TABLE orders DROP CONSTRAINT orders_total_positive;\nDROP TYPE mood;\nDROP FUNCTION t_touch();\n"
    } else {
        ""
    };
    project.change(
        "0004_more",
        &format!(
            "-- ripcord:deploy\nCREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;\n\
             INSERT INTO users (id, email) VALUES (1, 'a@example.com'), (2, 'b@example.com');\n{postgres_only}\
             -- ripcord:revert\n{postgres_revert}DELETE FROM users WHERE id IN (1, 2);\nDROP VIEW big_orders;\n"
        ),
    );
    let before = target_state(&project, &db);
    let out = run(&project, &["drill"]);
    expect_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("Drill passed: 3 changes came back exactly"),
        "{text}"
    );
    assert!(text.contains("pass 0004_more"), "{text}");
    assert_eq!(
        target_state(&project, &db),
        before,
        "drill must not modify the target"
    );
    let notes = db.scalar(if db.is_postgres() {
        "SELECT count(*)::text FROM ripcord.events WHERE kind = 'drill_completed'"
    } else {
        "SELECT count(*) FROM ripcord_events WHERE kind = 'drill_completed'"
    });
    assert_eq!(notes, "1", "the drill is noted once in the audit chain");
    if db.is_postgres() {
        // The lock trace is measured: adding a column to existing `orders` takes ACCESS EXCLUSIVE.
        assert!(
            text.contains("AccessExclusiveLock on public.orders"),
            "{text}"
        );
        let json = ok(&project, &["drill", "--json"]);
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(report["passed"], true);
        assert_eq!(
            report["changes"][1]["locks"][0]["locks"][0]["mode"],
            "AccessExclusiveLock"
        );
    }
    assert_no_scratch_left(&db);
}

fn forgotten_index((project, db): (Project, Db)) {
    let name = if db.is_postgres() {
        "public.t_n_idx"
    } else {
        "t_n_idx"
    };
    assert_drill_fails_naming(
        &project,
        &change("CREATE INDEX t_n_idx ON t (n);", "SELECT 1;"),
        &format!("index {name} exists after revert but not before the change"),
    );
}

fn revert_that_deletes_rows((project, db): (Project, Db)) {
    let table = if db.is_postgres() { "public.t" } else { "t" };
    assert_drill_fails_naming(
        &project,
        &change(
            "INSERT INTO t (id, n) VALUES (4, 40);",
            "DELETE FROM t WHERE n >= 30;",
        ),
        &format!("table {table}: rows differ (count 3 → 2)"),
    );
    // The rows are named (issue 15): the state before the change is built again and diffed.
    let text = stdout(&run(&project, &["drill"]));
    assert!(
        text.contains(&format!(
            "table {table}: row id=3 is missing after revert (it existed before the change)"
        )),
        "{text}"
    );
}

fn revert_that_modifies_unrelated_values((project, db): (Project, Db)) {
    let table = if db.is_postgres() { "public.t" } else { "t" };
    assert_drill_fails_naming(
        &project,
        &change(
            "UPDATE t SET n = n + 1 WHERE id = 1;",
            "UPDATE t SET n = n - 1;",
        ),
        &format!("table {table}: contents differ (same count 3, different values)"),
    );
    let text = stdout(&run(&project, &["drill"]));
    for id in [2, 3] {
        assert!(
            text.contains(&format!(
                "table {table}: row id={id} differs after revert in n"
            )),
            "{text}"
        );
    }
    assert!(!text.contains("row id=1 "), "{text}");
}

fn leftover_view((project, db): (Project, Db)) {
    let name = if db.is_postgres() {
        "public.t_view"
    } else {
        "t_view"
    };
    assert_drill_fails_naming(
        &project,
        &change("CREATE VIEW t_view AS SELECT id FROM t;", "SELECT 1;"),
        &format!("view {name} exists after revert"),
    );
}

fn leftover_trigger((project, db): (Project, Db)) {
    let deploy = if db.is_postgres() {
        "CREATE FUNCTION t_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.n = NEW.n + 1; RETURN NEW; END $$;\n\
         CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION t_touch();"
    } else {
        "CREATE TRIGGER t_touch AFTER UPDATE ON t BEGIN UPDATE t SET v = 'touched' WHERE id = NEW.id; END;"
    };
    let revert = if db.is_postgres() {
        "DROP TRIGGER t_touch ON t;"
    } else {
        "SELECT 1;"
    };
    let expected = if db.is_postgres() {
        "function public.t_touch() exists after revert"
    } else {
        "trigger t_touch exists after revert"
    };
    assert_drill_fails_naming(&project, &change(deploy, revert), expected);
}

on_both_engines!(
    honest_changes_pass_and_the_target_is_untouched,
    forgotten_index,
    revert_that_deletes_rows,
    revert_that_modifies_unrelated_values,
    leftover_view,
    leftover_trigger,
    killed_drill_leaves_nothing_after_the_next_run,
);

fn postgres() -> (Project, Db) {
    Db::postgres_project()
}

#[test]
fn postgres_different_default_restored() {
    let (project, _db) = postgres();
    assert_drill_fails_naming(
        &project,
        &change(
            "ALTER TABLE t ALTER COLUMN v SET DEFAULT 'y';",
            "ALTER TABLE t ALTER COLUMN v SET DEFAULT 'z';",
        ),
        "column public.t.v: default 'z'::text (was 'x'::text)",
    );
}

#[test]
fn postgres_leftover_constraint() {
    let (project, _db) = postgres();
    assert_drill_fails_naming(
        &project,
        &change(
            "ALTER TABLE t ADD CONSTRAINT t_n_positive CHECK (n > 0);",
            "SELECT 1;",
        ),
        "constraint public.t.t_n_positive exists after revert",
    );
}

#[test]
fn postgres_changed_column_type() {
    let (project, _db) = postgres();
    assert_drill_fails_naming(
        &project,
        &change(
            "ALTER TABLE t ALTER COLUMN n TYPE bigint;",
            "ALTER TABLE t ALTER COLUMN n TYPE numeric;",
        ),
        "column public.t.n: type numeric (was integer)",
    );
}

#[test]
fn postgres_enum_value_left_behind() {
    let (project, _db) = postgres();
    assert_drill_after_fails_naming(
        &project,
        "CREATE TYPE mood AS ENUM ('ok');\n",
        &change("ALTER TYPE mood ADD VALUE 'sad';", "SELECT 1;"),
        "enum public.mood: values 'ok', 'sad' (was 'ok')",
    );
}

#[test]
fn postgres_rewrite_is_traced() {
    let (project, _db) = postgres();
    let out = drill_one(
        &project,
        &change(
            "ALTER TABLE t ALTER COLUMN n TYPE bigint;",
            "ALTER TABLE t ALTER COLUMN n TYPE integer;",
        ),
    );
    expect_exit(&out, 0);
    assert!(
        stdout(&out).contains("AccessExclusiveLock on public.t; rewrote public.t"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn sqlite_drill_from_target_copies_the_data() {
    let (project, db) = Db::sqlite_project();
    let out = drill_one(
        &project,
        &change(
            "UPDATE t SET n = 0 WHERE id = 1;",
            "UPDATE t SET n = 10 WHERE id = 1;",
        ),
    );
    expect_exit(&out, 0);
    db.exec("INSERT INTO t (id, n) VALUES (99, 5)");
    // Starting from a copy of the target, a revert that deletes a row it should have
    // restored is caught (the vault puts back old values, not rows the revert removes).
    project.change(
        "0003_more",
        &change(
            "UPDATE t SET n = n + 1 WHERE id = 99;",
            "DELETE FROM t WHERE id = 99;",
        ),
    );
    let out = run(&project, &["drill", "--from-target", "--changes", "0003.."]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains("table t: rows differ (count 4 → 3)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_given_scratch_must_be_empty() {
    let (project, _db) = postgres();
    three_changes(&project);
    let scratch = pg().create_database();
    scratch
        .connect()
        .batch_execute("CREATE TABLE junk (x int)")
        .unwrap();
    let out = run(&project, &["drill", "--scratch", &scratch.url]);
    expect_exit(&out, 2);
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    let empty = pg().create_database();
    let out = run(&project, &["drill", "--scratch", &empty.url]);
    expect_exit(&out, 0);
}

/// Scratch databases (or files) made by the process `pid`, or with `None`, by any
/// process that no longer runs: what a finished or killed drill would leave behind.
fn scratches(db: &Db, pid: Option<u32>) -> usize {
    let names: Vec<String> = match db {
        Db::Postgres(_) => {
            let all = db.scalar("SELECT coalesce(string_agg(datname, ','), '') FROM pg_database WHERE datname LIKE 'ripcord\\_drill\\_%'");
            all.split(',')
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect()
        }
        Db::Sqlite(_) => std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ripcord_drill_"))
            .collect(),
    };
    names
        .iter()
        .filter_map(|n| {
            n.strip_prefix("ripcord_drill_")?
                .split('_')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .filter(|owner| match pid {
            Some(pid) => *owner == pid,
            None => {
                !std::path::Path::new(&format!("/proc/{owner}")).exists()
                    && !KILLED_ON_PURPOSE.lock().unwrap().contains(owner)
            }
        })
        .count()
}

/// Drills a test kills to leave a scratch behind: other tests running at the same time
/// must not count that scratch as theirs.
static KILLED_ON_PURPOSE: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

#[track_caller]
fn assert_no_scratch_left(db: &Db) {
    assert_eq!(scratches(db, None), 0, "a scratch database was left behind");
}

fn killed_drill_leaves_nothing_after_the_next_run((project, db): (Project, Db)) {
    three_changes(&project);
    let mut child = ripcord_in(project.path())
        .args(["drill"])
        .env("RIPCORD_FAILPOINT", "drill_scratch_ready=sleep(10000)")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while scratches(&db, Some(pid)) == 0 {
        assert!(
            Instant::now() < deadline,
            "the drill never made its scratch"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    KILLED_ON_PURPOSE.lock().unwrap().push(pid);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        scratches(&db, Some(pid)),
        1,
        "kill -9 leaves the scratch behind until the next drill"
    );
    let out = run(&project, &["drill"]);
    expect_exit(&out, 0);
    // (In parallel tests another drill may have dropped it first; either way it is gone.)
    assert_eq!(scratches(&db, Some(pid)), 0, "the next drill cleans up");
    assert_no_scratch_left(&db);
}

#[test]
fn ctrl_c_drops_the_scratch_at_once() {
    let (project, db) = Db::postgres_project();
    three_changes(&project);
    let child = ripcord_in(project.path())
        .args(["drill"])
        .env("RIPCORD_FAILPOINT", "drill_scratch_ready=sleep(10000)")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while scratches(&db, Some(pid)) == 0 {
        assert!(
            Instant::now() < deadline,
            "the drill never made its scratch"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the scratch database was dropped"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        scratches(&db, Some(pid)),
        0,
        "Ctrl-C drops the scratch without waiting for the next drill"
    );
}

#[test]
fn seed_script_runs_on_the_scratch_only() {
    let (project, db) = Db::sqlite_project();
    project.write_config(
        "[project]\ndefault_target = \"test\"\n\n[targets.test]\nurl = \"sqlite://test.db\"\n\n[drill]\nseed = \"seed.sql\"\n",
    );
    std::fs::write(
        project.path().join("seed.sql"),
        "INSERT INTO t (id, n) VALUES (100, 1), (101, 2);\n",
    )
    .unwrap();
    // With seeded rows, a revert that deletes "every row it might have added" is caught.
    let out = drill_one(
        &project,
        &change(
            "INSERT INTO t (id, n) VALUES (4, 40);",
            "DELETE FROM t WHERE id > 3;",
        ),
    );
    expect_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("table t: rows differ (count 5 → 3)"),
        "{text}"
    );
    assert!(
        text.contains("1 deployed change replayed and the seed script"),
        "{text}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM t"),
        "3",
        "the seed never touches the target"
    );
}

/// Sessions opened to the database so far (PostgreSQL 14+ counts them), once the
/// counter has settled: ended sessions report theirs as they exit.
fn sessions_so_far(client: &mut ::postgres::Client) -> i64 {
    let mut last = -1;
    for _ in 0..50 {
        let now: i64 = client
            .query_one(
                "SELECT pg_stat_clear_snapshot() IS NULL AND true, sessions FROM pg_stat_database \
                 WHERE datname = current_database()",
                &[],
            )
            .unwrap()
            .get(1);
        if now == last {
            return now;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(200));
    }
    last
}

#[test]
fn fingerprint_connections_bounds_the_hashing_sessions_and_not_the_result() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 100);
         CREATE TABLE b (id int PRIMARY KEY, v text); INSERT INTO b SELECT i, 'v' || i FROM generate_series(1, 100) i;
         CREATE TABLE c (id int PRIMARY KEY, j json); INSERT INTO c SELECT i, '{}' FROM generate_series(1, 100) i;",
    );
    let config = std::fs::read_to_string(project.path().join("ripcord.toml")).unwrap();
    let mut watcher = pg.connect();
    let mut run_with = |connections: usize| -> (String, i64) {
        project.write_config(&format!(
            "{config}\n[fingerprint]\nconnections = {connections}\n"
        ));
        let before = sessions_so_far(&mut watcher);
        let out = ok(&project, &["fingerprint", "--data-only", "--json"]);
        let opened = sessions_so_far(&mut watcher) - before;
        let tables: serde_json::Value = serde_json::from_str(&out).unwrap();
        (tables["tables"].to_string(), opened)
    };
    let (one, one_opened) = run_with(1);
    let (three, three_opened) = run_with(3);
    assert_eq!(one, three, "the same hashes whatever the connections");
    assert_eq!(
        three_opened - one_opened,
        2,
        "3 connections hash the 3 tables, 1 hashes them alone ({one_opened} vs {three_opened} sessions)"
    );
    project.write_config(&format!("{config}\n[fingerprint]\nconnections = 0\n"));
    let out = run(&project, &["fingerprint"]);
    expect_exit(&out, 2);
    assert!(stderr(&out).contains("nonzero"), "{}", stderr(&out));
}
