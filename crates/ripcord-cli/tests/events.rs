//! `--log-format json`: every line on stderr is a JSON event with the documented fields
//! (docs/observe.md), one per change deployed or reverted, per rollout step and per
//! command's end.

#[macro_use]
mod common;

use common::*;
use serde_json::Value;

/// Fields every event has, and the fields an event may have (docs/observe.md).
const ALWAYS: [&str; 4] = ["ts", "level", "event", "op"];
const DOCUMENTED: [&str; 18] = [
    "ts",
    "level",
    "event",
    "op",
    "target",
    "change",
    "duration_ms",
    "outcome",
    "message",
    "exit",
    "rollout",
    "fleet",
    "wave",
    "detail",
    "table",
    "rows",
    "bytes",
    "step",
];

/// The JSON events of a run's stderr; every line must be one.
fn events(output: &std::process::Output) -> Vec<Value> {
    stderr(output)
        .lines()
        .take_while(|l| l.starts_with('{'))
        .map(|line| {
            let event: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            for field in ALWAYS {
                assert!(event.get(field).is_some(), "no `{field}` in {line}");
            }
            for field in event.as_object().unwrap().keys() {
                assert!(
                    DOCUMENTED.contains(&field.as_str()),
                    "undocumented field `{field}` in {line}"
                );
            }
            chrono::DateTime::parse_from_rfc3339(event["ts"].as_str().unwrap())
                .unwrap_or_else(|e| panic!("ts is not RFC 3339 ({e}): {line}"));
            event
        })
        .collect()
}

#[test]
fn json_log_lines_carry_each_step_with_target_change_duration_and_outcome() {
    let project = Project::sqlite();
    project.change(
        "0001_a",
        "-- ripcord:deploy\nCREATE TABLE a (id int);\n-- ripcord:revert\nDROP TABLE a;\n",
    );
    project.change(
        "0002_b",
        "-- ripcord:deploy\nCREATE TABLE b (id int);\n-- ripcord:revert\nDROP TABLE b;\n",
    );
    let deploy = run(&project, &["deploy", "--log-format", "json"]);
    expect_exit(&deploy, 0);
    let seen = events(&deploy);
    assert_eq!(
        stderr(&deploy).lines().count(),
        seen.len(),
        "only JSON lines"
    );
    let deployed: Vec<&str> = seen
        .iter()
        .filter(|e| e["event"] == "change_deployed")
        .map(|e| {
            assert_eq!(e["op"], "deploy");
            assert_eq!(e["target"], "test");
            assert_eq!(e["outcome"], "success");
            assert!(e["duration_ms"].is_u64(), "{e}");
            e["change"].as_str().unwrap()
        })
        .collect();
    assert_eq!(deployed, ["0001_a", "0002_b"]);
    let last = seen.last().unwrap();
    assert_eq!(last["event"], "command_finished");
    assert_eq!(last["op"], "deploy");
    assert_eq!(last["outcome"], "success");
    assert_eq!(last["exit"], 0);

    // The environment variable does the same; a revert is one event per change.
    let revert = ripcord_in(project.path())
        .env("RIPCORD_LOG_FORMAT", "json")
        .args(["revert", "--all", "--yes"])
        .output()
        .unwrap();
    expect_exit(&revert, 0);
    let reverted: Vec<String> = events(&revert)
        .iter()
        .filter(|e| e["event"] == "change_reverted")
        .map(|e| e["change"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reverted, ["0002_b", "0001_a"]);

    // A failing command ends with its outcome and exit code; the error text follows.
    let failed = run(
        &project,
        &["--target", "nope", "status", "--log-format", "json"],
    );
    expect_exit(&failed, 2);
    let last = events(&failed).pop().expect("an event");
    assert_eq!(last["event"], "command_finished");
    assert_eq!(last["outcome"], "failure");
    assert_eq!(last["exit"], 2);
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("no target `nope`"),
        "{last}"
    );

    // Without the flag there is no event line.
    let quiet = run(&project, &["deploy"]);
    expect_exit(&quiet, 0);
    assert!(
        !stderr(&quiet).lines().any(|l| l.starts_with('{')),
        "{}",
        stderr(&quiet)
    );
}

#[test]
fn a_rollout_logs_each_step_as_json() {
    let project = Project::sqlite();
    project.write_config(
        "[project]\nname = \"shops\"\n\n[targets.eu]\nurl = \"sqlite://eu.db\"\n[targets.us]\nurl = \"sqlite://us.db\"\n\n\
         [fleets.shops]\ntargets = [\"eu\", \"us\"]\n",
    );
    project.change(
        "0001_a",
        "-- ripcord:deploy\nCREATE TABLE a (id int);\n-- ripcord:revert\nDROP TABLE a;\n",
    );
    let output = run(&project, &["rollout", "--log-format", "json"]);
    expect_exit(&output, 0);
    let seen = events(&output);
    assert_eq!(
        stderr(&output).lines().count(),
        seen.len(),
        "only JSON lines"
    );
    let applied: Vec<(&str, u64)> = seen
        .iter()
        .filter(|e| e["event"] == "target_applied")
        .map(|e| {
            assert_eq!(e["op"], "rollout");
            assert_eq!(e["fleet"], "shops");
            assert!(e["rollout"].as_str().unwrap().starts_with('r'));
            assert!(e["detail"].is_object(), "{e}");
            (e["target"].as_str().unwrap(), e["wave"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(applied, [("eu", 1), ("us", 2)]);
    assert!(seen.iter().any(|e| e["event"] == "rollout_completed"));
}

#[test]
fn a_batch_revert_logs_its_steps_as_json() {
    let project = Project::sqlite();
    project.change(
        "0001_acct",
        "-- ripcord:deploy\nCREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL);\n\
         INSERT INTO acct VALUES (1, 10), (2, 20);\n-- ripcord:revert\nDROP TABLE acct;\n",
    );
    ok(&project, &["deploy"]);
    ok(&project, &["capture", "enable", "acct"]);
    let db = rusqlite::Connection::open(project.sqlite_path()).unwrap();
    db.execute_batch(
        "INSERT OR REPLACE INTO ripcord_capture_context VALUES (1, 'load-1');
         UPDATE acct SET balance = 0;
         DELETE FROM ripcord_capture_context;",
    )
    .unwrap();
    let output = run(
        &project,
        &["batch", "revert", "load-1", "--log-format", "json"],
    );
    expect_exit(&output, 0);
    let seen = events(&output);
    assert_eq!(
        stderr(&output).lines().count(),
        seen.len(),
        "only JSON lines"
    );
    let restored = seen
        .iter()
        .find(|e| e["event"] == "undo_step" && e["step"] == "restored")
        .unwrap_or_else(|| panic!("no restored step in {seen:?}"));
    assert_eq!(restored["rows"], 2);
    assert_eq!(restored["table"], "acct");
    assert_eq!(seen.last().unwrap()["event"], "command_finished");
}

#[test]
fn progress_bars_stay_off_when_stderr_is_not_a_terminal() {
    let project = Project::sqlite();
    project.write_config(
        "[project]\nname = \"shops\"\n\n[targets.eu]\nurl = \"sqlite://eu.db\"\n[targets.us]\nurl = \"sqlite://us.db\"\n\n\
         [fleets.shops]\ntargets = [\"eu\", \"us\"]\n",
    );
    project.change(
        "0001_a",
        "-- ripcord:deploy\nCREATE TABLE a (id int);\n-- ripcord:revert\nDROP TABLE a;\n",
    );
    let output = run(&project, &["rollout"]);
    expect_exit(&output, 0);
    let err = stderr(&output);
    // The step lines are there; no bar, no carriage return, no cursor control.
    assert!(err.contains("eu: 1 changes deployed"), "{err}");
    assert!(!err.contains('\r'), "{err:?}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(
        !err.contains("targets]") && !err.contains("/2 targets"),
        "{err}"
    );
}
