//! Checkpoints of the audit chain kept outside the database: `audit keygen`,
//! `audit checkpoint` signed with the key from the environment, and `audit verify
//! --checkpoint` detecting a deleted tail and a forged checkpoint.

#[macro_use]
mod common;

use common::*;

fn signed_project() -> (Project, String) {
    let project = Project::sqlite();
    project.change(
        "0001_a",
        "-- ripcord:deploy\nCREATE TABLE a (id int);\n-- ripcord:revert\nDROP TABLE a;\n",
    );
    ok(&project, &["deploy"]);
    let (private, public) = keypair(&project);
    assert_ne!(private, public);
    config(&project, &public, &[]);
    (project, private)
}

fn checkpoint(project: &Project, private: &str) -> String {
    let output = with_key(project, Some(private), &["audit", "checkpoint"]);
    expect_exit(&output, 0);
    stdout(&output)
}

#[test]
fn a_signed_checkpoint_verifies_and_a_deleted_tail_is_detected() {
    let (project, private) = signed_project();
    let note = checkpoint(&project, &private);
    assert!(
        note.starts_with("ripcord audit checkpoint\ntest\n"),
        "{note}"
    );
    assert!(note.contains("\n— ripcord-"), "signed: {note}");
    std::fs::write(project.path().join("cp"), &note).unwrap();
    let verify = run(&project, &["audit", "verify", "--checkpoint", "cp"]);
    expect_exit(&verify, 0);
    assert!(
        stdout(&verify).contains("OK checkpoint: the chain of test holds event"),
        "{}",
        stdout(&verify)
    );

    // Without the key in the environment, a checkpoint is refused, not written unsigned.
    let unsigned = run(&project, &["audit", "checkpoint"]);
    expect_exit(&unsigned, 2);
    assert!(
        stderr(&unsigned).contains("TEST_SIGNING_KEY"),
        "{}",
        stderr(&unsigned)
    );

    // Someone with write access deletes the last event (and the trigger that stops it).
    let db = rusqlite::Connection::open(project.sqlite_path()).unwrap();
    db.execute_batch(
        "DROP TRIGGER ripcord_events_no_delete;
         DELETE FROM ripcord_events WHERE seq = (SELECT max(seq) FROM ripcord_events);",
    )
    .unwrap();
    let verify = run(&project, &["audit", "verify", "--checkpoint", "cp"]);
    expect_exit(&verify, 1);
    assert!(
        stdout(&verify).contains("events were deleted"),
        "{}",
        stdout(&verify)
    );
}

#[test]
fn a_forged_checkpoint_fails_its_signature() {
    let (project, private) = signed_project();
    let note = checkpoint(&project, &private);
    // The hash line changed by hand: the signature no longer matches the body.
    let mut lines: Vec<String> = note.lines().map(String::from).collect();
    lines[3] = "0".repeat(64);
    std::fs::write(project.path().join("forged"), lines.join("\n") + "\n").unwrap();
    let verify = run(
        &project,
        &["audit", "verify", "--checkpoint", "forged", "--json"],
    );
    expect_exit(&verify, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout(&verify)).unwrap();
    assert_eq!(report["checkpoint"]["signature"], "invalid", "{report}");
    assert_eq!(report["checkpoint"]["chain"], "rewritten", "{report}");

    // Not a checkpoint at all: exit 2.
    std::fs::write(project.path().join("junk"), "hello\n").unwrap();
    let junk = run(&project, &["audit", "verify", "--checkpoint", "junk"]);
    expect_exit(&junk, 2);
    assert!(
        stderr(&junk).contains("not a ripcord checkpoint"),
        "{}",
        stderr(&junk)
    );
}

fn with_key(project: &Project, private: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut command = ripcord_in(project.path());
    if let Some(private) = private {
        command.env("TEST_SIGNING_KEY", private);
    }
    command.args(args).output().unwrap()
}

fn keypair(project: &Project) -> (String, String) {
    let keys: serde_json::Value =
        serde_json::from_str(&ok(project, &["audit", "keygen", "--json"])).unwrap();
    (
        keys["private_key"].as_str().unwrap().to_string(),
        keys["public_key"].as_str().unwrap().to_string(),
    )
}

fn config(project: &Project, public: &str, previous: &[&str]) {
    let previous: Vec<String> = previous.iter().map(|k| format!("\"{k}\"")).collect();
    project.write_config(&format!(
        "[project]\nname = \"test\"\ndefault_target = \"test\"\n\n[targets.test]\nurl = \"sqlite://test.db\"\n\n\
         [audit]\nsigning_key_env = \"TEST_SIGNING_KEY\"\npublic_key = \"{public}\"\nprevious_public_keys = [{}]\n",
        previous.join(", ")
    ));
}

#[test]
fn every_event_is_signed_and_a_stripped_or_forged_signature_is_caught() {
    let (project, private) = signed_project();
    // Events appended before the key was set are unsigned; from now on they are signed.
    project.change(
        "0002_b",
        "-- ripcord:deploy\nCREATE TABLE b (id int);\n-- ripcord:revert\nDROP TABLE b;\n",
    );
    expect_exit(&with_key(&project, Some(&private), &["deploy"]), 0);
    let verify = with_key(&project, None, &["audit", "verify"]);
    expect_exit(&verify, 0);
    let out = stdout(&verify);
    assert!(
        out.contains("signed, every signature verified; the first"),
        "{out}"
    );
    let db = rusqlite::Connection::open(project.sqlite_path()).unwrap();
    let signed: i64 = db
        .query_row(
            "SELECT count(*) FROM ripcord_events WHERE signature LIKE 'ed25519:ripcord-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(signed >= 1, "{signed}");

    // A writer without the key is warned, and verify flags its events.
    let unsigned = with_key(&project, None, &["revert", "--yes"]);
    expect_exit(&unsigned, 0);
    assert!(
        stderr(&unsigned).contains("events of this run are unsigned"),
        "{}",
        stderr(&unsigned)
    );
    let verify = with_key(&project, None, &["audit", "verify"]);
    expect_exit(&verify, 1);
    assert!(
        stdout(&verify).contains("unsigned, after signed events"),
        "{}",
        stdout(&verify)
    );

    // Someone strips a signature, or re-signs with a key of their own: caught.
    let (project, private) = signed_project();
    expect_exit(&with_key(&project, Some(&private), &["revert", "--yes"]), 0);
    let db = rusqlite::Connection::open(project.sqlite_path()).unwrap();
    let triggers: Vec<String> = db
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'ripcord_events'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for trigger in triggers {
        db.execute_batch(&format!("DROP TRIGGER {trigger}"))
            .unwrap();
    }
    let last: i64 = db
        .query_row("SELECT max(seq) FROM ripcord_events", [], |r| r.get(0))
        .unwrap();
    db.execute_batch(&format!(
        "UPDATE ripcord_events SET signature = replace(signature, substr(signature, 9, 16), 'ripcord-00000000') WHERE seq = {last}"
    ))
    .unwrap();
    let verify = with_key(&project, None, &["audit", "verify"]);
    expect_exit(&verify, 1);
    assert!(
        stdout(&verify).contains("which is not a trusted key"),
        "{}",
        stdout(&verify)
    );
    db.execute_batch(&format!(
        "UPDATE ripcord_events SET signature = NULL WHERE seq = {last}"
    ))
    .unwrap();
    let verify = with_key(&project, None, &["audit", "verify"]);
    expect_exit(&verify, 1);
    assert!(
        stdout(&verify).contains(&format!("event #{last}")),
        "{}",
        stdout(&verify)
    );
}

#[test]
fn a_key_rotation_is_recorded_in_the_chain_and_old_signatures_stay_valid() {
    let (project, old_private) = signed_project();
    expect_exit(
        &with_key(&project, Some(&old_private), &["revert", "--yes"]),
        0,
    );
    let old_public = {
        let text = std::fs::read_to_string(project.path().join("ripcord.toml")).unwrap();
        text.split("public_key = \"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string()
    };
    let (new_private, new_public) = keypair(&project);
    // Without the current key the rotation cannot be recorded.
    let refused = with_key(
        &project,
        None,
        &["audit", "rotate-key", "--new-public-key", &new_public],
    );
    expect_exit(&refused, 2);
    let rotated = with_key(
        &project,
        Some(&old_private),
        &["audit", "rotate-key", "--new-public-key", &new_public],
    );
    expect_exit(&rotated, 0);
    assert!(
        stdout(&rotated).contains("signing moves to ripcord-"),
        "{}",
        stdout(&rotated)
    );

    config(&project, &new_public, &[&old_public]);
    expect_exit(&with_key(&project, Some(&new_private), &["deploy"]), 0);
    let verify = with_key(&project, None, &["audit", "verify"]);
    expect_exit(&verify, 0);
    let log = ok(&project, &["audit", "log", "--json"]);
    assert!(log.contains("signing_key_rotated"), "{log}");

    // Forgetting the old key after a rotation: its signatures no longer count.
    config(&project, &new_public, &[]);
    let verify = with_key(&project, None, &["audit", "verify"]);
    expect_exit(&verify, 1);
    assert!(
        stdout(&verify).contains("which is not a trusted key"),
        "{}",
        stdout(&verify)
    );
}

#[test]
fn audit_export_writes_json_lines_a_siem_can_chain_and_resume() {
    let (project, private) = signed_project();
    expect_exit(&with_key(&project, Some(&private), &["revert", "--yes"]), 0);
    let all = ok(&project, &["audit", "export", "--format", "jsonl"]);
    let events: Vec<serde_json::Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() >= 3, "{all}");
    for pair in events.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "the lines chain");
        assert_eq!(
            pair[1]["seq"].as_i64(),
            pair[0]["seq"].as_i64().map(|s| s + 1)
        );
    }
    assert!(
        events.last().unwrap()["signature"]
            .as_str()
            .unwrap()
            .starts_with("ed25519:")
    );
    let last_seen = events[events.len() - 2]["seq"]
        .as_i64()
        .unwrap()
        .to_string();
    let newer = ok(&project, &["audit", "export", "--after", &last_seen]);
    assert_eq!(newer.lines().count(), 1, "{newer}");
}

/// One HTTP request received on a local port: its body.
fn one_request() -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/anchor",
        listener.local_addr().unwrap().port()
    );
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        String::from_utf8(body).unwrap()
    });
    (url, handle)
}

#[test]
fn a_checkpoint_is_kept_in_a_store_and_posted_to_an_anchor() {
    let (project, private) = signed_project();
    let (url, received) = one_request();
    let out = with_key(
        &project,
        Some(&private),
        &[
            "audit",
            "checkpoint",
            "--store",
            "file://anchors",
            "--post",
            &url,
        ],
    );
    expect_exit(&out, 0);
    let printed = stdout(&out);
    assert_eq!(
        received.join().unwrap(),
        printed,
        "the anchor got the checkpoint"
    );
    let kept = project.path().join("anchors/checkpoints/test");
    let files: Vec<_> = std::fs::read_dir(&kept)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), printed);
    // The kept copy verifies like any checkpoint file.
    let verify = run(
        &project,
        &[
            "audit",
            "verify",
            "--checkpoint",
            &files[0].display().to_string(),
        ],
    );
    expect_exit(&verify, 0);

    // An anchor that is not there: exit 5, said plainly (the password not shown).
    let unreachable = with_key(
        &project,
        Some(&private),
        &[
            "audit",
            "checkpoint",
            "--post",
            "http://user:hunter2@127.0.0.1:1/anchor",
        ],
    );
    expect_exit(&unreachable, 5);
    let err = stderr(&unreachable);
    assert!(err.contains("was not posted"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
