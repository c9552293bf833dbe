//! `ripcord lint` through the binary: diagnostics users read (snapshots), JSON with
//! rule/severity/line/column, SARIF 2.1.0, exit codes and suppressions.

#[macro_use]
mod common;

use common::*;

fn project_with_risky_changes() -> Project {
    let project = Project::sqlite();
    project.change(
        "0001_orders",
        "-- ripcord:deploy\nCREATE TABLE orders (id bigint PRIMARY KEY, note text);\nCREATE INDEX orders_note ON orders (note);\n-- ripcord:revert\nDROP TABLE orders;\n",
    );
    project.change(
        "0002_cleanup",
        "-- ripcord:deploy\nCREATE INDEX orders_id2 ON orders (id);\nDELETE FROM orders WHERE id < 0;\n-- ripcord:revert\nSELECT 1;\n",
    );
    project
}

#[test]
fn warnings_pass_errors_fail_and_deny_warnings_makes_warnings_errors() {
    let project = project_with_risky_changes();
    let out = run(&project, &["lint"]);
    expect_exit(&out, 0);
    filters().bind(|| insta::assert_snapshot!(stdout(&out)));
    expect_exit(&run(&project, &["lint", "--deny-warnings"]), 1);

    project.change(
        "0003_drop",
        "-- ripcord:deploy\nALTER TABLE orders DROP COLUMN note;\n-- ripcord:revert\nALTER TABLE orders ADD COLUMN note text;\n",
    );
    let out = run(&project, &["lint", "--json"]);
    expect_exit(&out, 1);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["errors"], 1);
    let drop = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "ban-drop-column")
        .unwrap();
    assert_eq!(drop["severity"], "error");
    assert_eq!(drop["class"], "preserving");
    assert_eq!(
        (drop["line"].as_u64(), drop["column"].as_u64()),
        (Some(2), Some(20)),
        "points at DROP COLUMN"
    );
    assert!(drop["file"].as_str().unwrap().ends_with("0003_drop.sql"));

    // Accepting it needs a reason; then the lint passes again.
    project.change(
        "0003_drop",
        "-- ripcord:deploy\n-- ripcord:allow ban-drop-column because nothing reads it since 0002\nALTER TABLE orders DROP COLUMN note;\n-- ripcord:revert\nALTER TABLE orders ADD COLUMN note text;\n",
    );
    expect_exit(&run(&project, &["lint"]), 0);
    project.change(
        "0003_drop",
        "-- ripcord:deploy\n-- ripcord:allow ban-drop-colunm because typo\nALTER TABLE orders DROP COLUMN note;\n-- ripcord:revert\nALTER TABLE orders ADD COLUMN note text;\n",
    );
    let out = run(&project, &["lint", "--json"]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains("`ban-drop-colunm` is not a rule"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn sarif_output_names_rules_and_regions() {
    let project = project_with_risky_changes();
    let file = project.change_path("0002_cleanup");
    let out = run(
        &project,
        &["lint", file.to_str().unwrap(), "--format", "sarif"],
    );
    expect_exit(&out, 0);
    let log: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let run0 = &log["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "ripcord");
    let results = run0["results"].as_array().unwrap();
    let rules: Vec<&str> = results
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        vec!["require-concurrent-index-creation", "delete-in-deploy"]
    );
    let region = &results[1]["locations"][0]["physicalLocation"]["region"];
    assert_eq!(
        (region["startLine"].as_u64(), region["startColumn"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(results[1]["level"], "warning");
    let index = results[1]["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(
        run0["tool"]["driver"]["rules"][index]["id"],
        "delete-in-deploy"
    );
}

/// Other tools' migrations (no `-- ripcord:` markers, any file name) are one deploy
/// section, with findings located in them (issue 14, defect 10).
#[test]
fn plain_migrations_of_other_tools_are_linted_with_locations() {
    let project = project_with_risky_changes();
    let dir = project.path().join("flyway");
    std::fs::create_dir(&dir).unwrap();
    let first = dir.join("V1__create.sql");
    std::fs::write(
        &first,
        "CREATE TABLE identities (id uuid PRIMARY KEY, nid uuid);\n",
    )
    .unwrap();
    let second = dir.join("V2__retype.sql");
    std::fs::write(
        &second,
        "-- keep nid a uuid\nALTER TABLE identities ALTER COLUMN nid TYPE uuid;\nALTER TABLE identities DROP COLUMN nid;\n",
    )
    .unwrap();
    let out = run(
        &project,
        &["lint", first.to_str().unwrap(), second.to_str().unwrap()],
    );
    expect_exit(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("V2__retype.sql:3:"), "{text}");
    assert!(text.contains("ban-drop-column"), "{text}");
    // The same type is not a lossy change, and its old type is known from V1.
    assert!(!text.contains("lossy-type-change"), "{text}");
    assert!(!text.contains("unknown-type-change"), "{text}");
    let alone = run(&project, &["lint", second.to_str().unwrap()]);
    assert!(
        stdout(&alone).contains("unknown-type-change"),
        "{}",
        stdout(&alone)
    );
}

/// json and sarif always print a document, also when a file cannot be read.
#[test]
fn json_and_sarif_print_a_document_for_unreadable_files() {
    let project = project_with_risky_changes();
    project.change("0009_broken", "-- ripcord:deploy\nSELECT 'oops;\n");
    let out = run(&project, &["lint", "--format", "json"]);
    expect_exit(&out, 1);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let broken = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "invalid-file")
        .unwrap_or_else(|| panic!("{doc}"))
        .clone();
    assert_eq!(broken["line"], 2, "{broken}");
    assert!(
        broken["file"]
            .as_str()
            .unwrap()
            .ends_with("0009_broken.sql")
    );
    let out = run(&project, &["lint", "--format", "sarif"]);
    expect_exit(&out, 1);
    let sarif: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        sarif["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ruleId"] == "invalid-file")
    );
    // Even without a project at all.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = ripcord_in(elsewhere.path())
        .args(["lint", "--format", "json"])
        .output()
        .unwrap();
    expect_exit(&out, 1);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["errors"], 1, "{doc}");
}

#[test]
fn plan_shows_pending_statements_with_class_lock_and_safety_net() {
    let project = project_with_risky_changes();
    project.change(
        "0003_drop",
        "-- ripcord:deploy\n-- ripcord:allow ban-drop-column because nothing reads it\nALTER TABLE orders DROP COLUMN note;\n",
    );
    ok(&project, &["deploy", "--to", "0001"]);
    let out = ok(&project, &["plan", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let changes = plan["changes"].as_array().unwrap();
    let names: Vec<&str> = changes
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["0002_cleanup", "0003_drop"],
        "deployed changes are not planned"
    );
    let delete = &changes[0]["statements"][1];
    assert_eq!(delete["class"], "preserving");
    assert!(
        delete["safety_net"]
            .as_str()
            .unwrap()
            .contains("kept in the vault first"),
        "{delete}"
    );
    let index = &changes[0]["statements"][0];
    assert_eq!(index["class"], "safe");
    assert!(index["lock"].as_str().unwrap().starts_with("SHARE"));
    // A suppression accepts the risk; the plan still says what the statement does.
    let drop = &changes[1];
    assert_eq!(drop["needs_consent"], true);
    assert_eq!(drop["statements"][0]["class"], "preserving");
    assert_eq!(drop["statements"][0]["rules"][0], "ban-drop-column");
    assert!(
        drop["statements"][0]["safety_net"]
            .as_str()
            .unwrap()
            .contains("NOT kept"),
        "SQLite cannot keep a dropped column: {drop}"
    );
    let with_snapshot = ok(&project, &["plan", "--snapshot"]);
    assert!(
        with_snapshot.contains("in the snapshot deploy takes first"),
        "{with_snapshot}"
    );
    assert!(
        with_snapshot.contains("deploy needs --accept-irreversible"),
        "{with_snapshot}"
    );
}

#[test]
fn another_tools_layout_is_linted_up_parts_only_with_the_files_own_lines() {
    let project = Project::sqlite();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("00001_users.sql"),
        "-- +goose Up\nCREATE TABLE users (id bigint PRIMARY KEY, email text);\n\n-- +goose Down\nDROP TABLE users;\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("00002_email.sql"),
        "-- +goose Up\n-- +goose StatementBegin\nALTER TABLE users ALTER COLUMN email SET NOT NULL;\n-- +goose StatementEnd\n-- +goose Down\nALTER TABLE users DROP COLUMN email;\n",
    )
    .unwrap();
    let path = dir.path().display().to_string();
    let out = run(&project, &["lint", "--from", "goose", &path, "--json"]);
    expect_exit(&out, 0);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let findings = doc["findings"].as_array().unwrap();
    let rules: Vec<&str> = findings
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    // The downs (DROP TABLE, DROP COLUMN) are not deploy statements: no error; SET NOT
    // NULL is one finding, at the line it has in its own file.
    assert_eq!(rules, vec!["set-not-null-scan"], "{doc}");
    assert!(
        findings[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("00002_email.sql")
    );
    assert_eq!(findings[0]["line"], 3);
    assert_eq!(doc["files"], 2);

    let bad = run(&project, &["lint", "--from", "goose", &path, &path]);
    expect_exit(&bad, 2);
    assert!(
        stderr(&bad).contains("takes one directory"),
        "{}",
        stderr(&bad)
    );
    let nothing = tempfile::tempdir().unwrap();
    let none = run(
        &project,
        &[
            "lint",
            "--from",
            "flyway",
            &nothing.path().display().to_string(),
        ],
    );
    expect_exit(&none, 2);
    assert!(
        stderr(&none).contains("holds no flyway migration"),
        "{}",
        stderr(&none)
    );
}
