//! The target's lock under pressure. A rerun right after `kill -9` of a ripcord in the
//! middle of a statement: the dead process's server session still holds the lock for a
//! moment; ripcord sets `client_connection_check_interval` so the server ends that
//! session, and the rerun waits for it (saying so) instead of failing with exit 3. And
//! twenty deploys at once on a brand-new database: one deploys, every other one exits 3
//! naming the holder.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_rerun_after_kill_9_mid_statement_waits_for_the_dead_session_and_deploys() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(database) = &db else {
        unreachable!()
    };
    project.change(
        "0001_slow",
        "-- ripcord:deploy\nSELECT pg_sleep(30);\n-- ripcord:revert\nSELECT 1;\n",
    );
    let mut first = ripcord_in(project.path())
        .args(["deploy"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until its statement runs on the server.
    let mut watcher = database.connect();
    let started = Instant::now();
    loop {
        let running: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'",
                &[],
            )
            .unwrap()
            .get(0);
        if running > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the deploy never reached its statement"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().unwrap(); // SIGKILL: no cleanup, the session lives on for now
    first.wait().unwrap();

    // The change is edited (it was never deployed) and the deploy run again at once.
    project.change(
        "0001_slow",
        "-- ripcord:deploy\nSELECT 1;\n-- ripcord:revert\nSELECT 1;\n",
    );
    let rerun_started = Instant::now();
    let rerun = run(&project, &["deploy"]);
    expect_exit(&rerun, 0);
    assert!(
        stderr(&rerun).contains("which no longer runs on this host; waiting"),
        "{}",
        stderr(&rerun)
    );
    assert!(
        rerun_started.elapsed() < Duration::from_secs(15),
        "the dead session ended within the check interval, not after the statement's 30 s"
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM ripcord.changes WHERE name = '0001_slow'"),
        "1"
    );
}

#[test]
fn twenty_simultaneous_first_deploys_one_deploys_and_the_others_name_it() {
    let (project, db) = Db::postgres_project();
    project.change(
        "0001_t",
        "-- ripcord:deploy\nCREATE TABLE t (id int);\nSELECT pg_sleep(2);\n-- ripcord:revert\nDROP TABLE t;\n",
    );
    let runs: Vec<std::process::Child> = (0..20)
        .map(|_| {
            ripcord_in(project.path())
                .args(["deploy"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut deployed = 0;
    for run in runs {
        let output = run.wait_with_output().unwrap();
        match output.status.code() {
            // The one that deployed; on a slow machine a late starter may find nothing
            // left to deploy, which is fine too.
            Some(0) if String::from_utf8_lossy(&output.stdout).contains("Deployed 1 change") => {
                deployed += 1
            }
            Some(0) => {}
            Some(3) => {
                let err = String::from_utf8_lossy(&output.stderr);
                assert!(
                    err.contains(
                        "another ripcord holds the target's lock: `ripcord deploy` on host"
                    ),
                    "the holder is named: {err}"
                );
            }
            other => panic!(
                "exit {other:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
    assert_eq!(deployed, 1, "exactly one deploys");
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM ripcord.events WHERE kind = 'deploy_completed'"),
        "1"
    );
}

#[test]
fn unlock_clears_a_lock_left_by_another_host_only_with_force() {
    let project = Project::sqlite();
    project.change(
        "0001_a",
        "-- ripcord:deploy\nCREATE TABLE a (id int);\n-- ripcord:revert\nDROP TABLE a;\n",
    );
    ok(&project, &["status"]);
    ok(&project, &["deploy"]);
    project.change(
        "0002_b",
        "-- ripcord:deploy\nCREATE TABLE b (id int);\n-- ripcord:revert\nDROP TABLE b;\n",
    );
    // A ripcord in a container (pid 1) on another host died holding the lock.
    let db = rusqlite::Connection::open(project.sqlite_path()).unwrap();
    db.execute(
        "INSERT OR REPLACE INTO ripcord_lock (id, host, pid, since, command) VALUES (1, 'build-7f3c', 1, '2026-12-01T10:00:00+00:00', 'deploy')",
        [],
    )
    .unwrap();
    let blocked = run(&project, &["deploy"]);
    expect_exit(&blocked, 3);
    assert!(
        stderr(&blocked).contains("build-7f3c"),
        "{}",
        stderr(&blocked)
    );

    let refused = run(&project, &["unlock"]);
    expect_exit(&refused, 3);
    assert!(
        stderr(&refused).contains("may still run"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));

    let forced = run(&project, &["unlock", "--force"]);
    expect_exit(&forced, 0);
    assert!(
        stdout(&forced)
            .contains("Released the lock of test held by `ripcord deploy` on host build-7f3c"),
        "{}",
        stdout(&forced)
    );
    let again = run(&project, &["unlock"]);
    expect_exit(&again, 0);
    assert!(stdout(&again).contains("is free"), "{}", stdout(&again));
    ok(&project, &["deploy"]);
    let broken: i64 = db
        .query_row(
            "SELECT count(*) FROM ripcord_events WHERE kind = 'lock_broken'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(broken, 1, "the forced unlock is in the audit chain");
}

#[test]
fn unlock_force_on_postgres_ends_the_session_holding_the_lock() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(database) = &db else {
        unreachable!()
    };
    project.change(
        "0001_a",
        "-- ripcord:deploy\nCREATE TABLE a (id int);\n-- ripcord:revert\nDROP TABLE a;\n",
    );
    ok(&project, &["deploy"]);
    project.change(
        "0002_b",
        "-- ripcord:deploy\nCREATE TABLE b (id int);\n-- ripcord:revert\nDROP TABLE b;\n",
    );
    // A session of a ripcord on another host holds the lock and its record names it.
    let mut holder = database.connect();
    holder
        .batch_execute(
            "SELECT pg_advisory_lock(8244244165252244481);
             INSERT INTO ripcord.lock (id, host, pid, since, command) VALUES (1, 'build-7f3c', 1, now(), 'deploy')
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid;",
        )
        .unwrap();
    let blocked = run(&project, &["deploy"]);
    expect_exit(&blocked, 3);
    expect_exit(&run(&project, &["unlock"]), 3);
    let forced = run(&project, &["unlock", "--force"]);
    expect_exit(&forced, 0);
    assert!(
        holder.simple_query("SELECT 1").is_err(),
        "the holding session was ended"
    );
    ok(&project, &["deploy"]);
}
