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
    let keys: serde_json::Value =
        serde_json::from_str(&ok(&project, &["audit", "keygen", "--json"])).unwrap();
    let private = keys["private_key"].as_str().unwrap().to_string();
    let public = keys["public_key"].as_str().unwrap();
    assert_ne!(private, public);
    project.write_config(&format!(
        "[project]\nname = \"test\"\ndefault_target = \"test\"\n\n[targets.test]\nurl = \"sqlite://test.db\"\n\n\
         [audit]\nsigning_key_env = \"TEST_SIGNING_KEY\"\npublic_key = \"{public}\"\n"
    ));
    (project, private)
}

fn checkpoint(project: &Project, private: &str) -> String {
    let output = ripcord_in(project.path())
        .env("TEST_SIGNING_KEY", private)
        .args(["audit", "checkpoint"])
        .output()
        .unwrap();
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
