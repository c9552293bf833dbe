//! The commands docs/ci.md tells users to put in their CI parse as written, and the
//! lint step's SARIF is a document code scanning accepts (version, one run, results).

#[macro_use]
mod common;

use common::*;

fn ci_doc_commands() -> Vec<Vec<String>> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ci.md")).unwrap();
    doc.lines()
        .filter_map(|line| line.trim().strip_prefix("run: ripcord "))
        .map(|command| {
            command
                .split('>')
                .next()
                .unwrap()
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .collect()
}

#[test]
fn the_ci_workflow_commands_parse_and_lint_writes_sarif() {
    let commands = ci_doc_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    let project = Project::sqlite();
    project.change(
        "0001_t",
        "-- ripcord:deploy\nCREATE TABLE t (id integer PRIMARY KEY);\nCREATE INDEX t_id ON t (id);\n-- ripcord:revert\nDROP TABLE t;\n",
    );
    for command in &commands {
        let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
        args.push("--help");
        expect_exit(&run(&project, &args), 0);
    }
    let lint: Vec<&str> = commands[0].iter().map(String::as_str).collect();
    let out = run(&project, &lint);
    expect_exit(&out, 0);
    let sarif: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(!sarif["runs"][0]["results"].as_array().unwrap().is_empty());
    let drill: Vec<&str> = commands[1].iter().map(String::as_str).collect();
    let out = run(&project, &drill);
    expect_exit(&out, 0);
}
