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
