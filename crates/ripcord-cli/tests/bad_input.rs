//! Bad input gets a clear error, the documented exit code and changes nothing: each
//! case runs the binary, checks the exit code and one sentence of the message, and
//! compares the target before and after (schema, data and audit chain).

#[macro_use]
mod common;

use common::*;
use ripcord_core::fingerprint::Fingerprint;

/// Schema, data and the number of audit events of the project's target.
fn state(project: &Project, url: &str) -> (Fingerprint, usize) {
    let mut target = ripcord::target::connect("t", url, project.path()).unwrap();
    (
        Fingerprint::new(
            target.engine.schema_objects().unwrap(),
            target.engine.table_data().unwrap(),
        ),
        target.engine.events().unwrap().len(),
    )
}

const ACCT: &str = "-- ripcord:deploy\nCREATE TABLE acct (id int PRIMARY KEY, v int);\nINSERT INTO acct VALUES (1, 1);\n-- ripcord:revert\nDROP TABLE acct;\n";

/// `(arguments, exit code, a piece of the message)`.
type Case = (&'static [&'static str], i32, &'static str);

fn check_cases(project: &Project, url: &str, cases: &[Case]) {
    for (args, exit, says) in cases {
        let before = state(project, url);
        let output = run(project, args);
        assert_eq!(
            output.status.code(),
            Some(*exit),
            "{args:?}: {}",
            stderr(&output)
        );
        // The message is on stderr (lint's findings on stdout).
        let text = stderr(&output) + &stdout(&output);
        assert!(text.contains(says), "{args:?} should say {says:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
        assert_eq!(state(project, url), before, "{args:?} changed the target");
    }
}

#[test]
fn urls_that_cannot_be_used_are_input_errors_naming_the_part() {
    let project = Project::sqlite();
    project.change("0001_acct", ACCT);
    ok(&project, &["deploy"]);
    let url = format!("sqlite://{}", project.sqlite_path().display());
    check_cases(
        &project,
        &url,
        &[
            (
                &["--url", "ftp://x", "status"],
                2,
                "`ftp://` is not a scheme ripcord reads",
            ),
            (&["--url=", "status"], 2, "the URL is empty"),
            (
                &["--url", "nothing-at-all", "status"],
                2,
                "it has no scheme",
            ),
            (
                &["--url", "postgres://u@127.0.0.1:99999/db", "status"],
                2,
                "port 99999 is out of range",
            ),
            (
                &["--url", "postgres://u@127.0.0.1:abc/db", "status"],
                2,
                "port `abc` is not a number",
            ),
            (
                &[
                    "--url",
                    "postgres://u@127.0.0.1:5432/db?sslmod=require",
                    "status",
                ],
                2,
                "did you mean `sslmode`?",
            ),
            (&["--target", "nope", "status"], 2, "no target `nope`"),
            (
                &["vault", "prune", "--change", "nope"],
                2,
                "no change `nope`",
            ),
            (
                &["vault", "prune", "--change", "0001_act"],
                2,
                "did you mean `0001_acct`?",
            ),
        ],
    );
}

#[test]
fn values_the_database_cannot_read_are_input_errors() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(database) = &db else {
        unreachable!()
    };
    project.change("0001_acct", ACCT);
    ok(&project, &["deploy"]);
    ok(&project, &["capture", "enable", "public.acct"]);
    check_cases(
        &project,
        &database.url,
        &[
            (
                &["capture", "prune", "--before", "yesterday-ish"],
                2,
                "\"yesterday-ish\"",
            ),
            (
                &["flashback", "public.acct", "--to", "notatime"],
                2,
                "\"notatime\"",
            ),
            (
                &["snapshot", "create", "--tables", "public.\"bad"],
                2,
                "invalid name syntax",
            ),
        ],
    );
}

#[test]
fn a_statement_nested_thousands_deep_is_refused_without_a_crash() {
    let project = Project::sqlite();
    project.change("0001_acct", ACCT);
    ok(&project, &["deploy"]);
    let deep = "(".repeat(20_000) + "1" + &")".repeat(20_000);
    project.change(
        "0002_deep",
        &format!("-- ripcord:deploy\nSELECT {deep};\n-- ripcord:revert\nSELECT 1;\n"),
    );
    let url = format!("sqlite://{}", project.sqlite_path().display());
    check_cases(
        &project,
        &url,
        &[
            (&["plan"], 2, "nests parentheses 20000 deep"),
            (&["deploy"], 2, "nests parentheses 20000 deep"),
            // lint reports an unreadable file as an error finding (exit 1).
            (&["lint"], 1, "nests parentheses 20000 deep"),
        ],
    );
    // Parentheses inside a string do not count.
    project.change(
        "0002_deep",
        &format!("-- ripcord:deploy\nSELECT '{deep}';\n-- ripcord:revert\nSELECT 1;\n"),
    );
    ok(&project, &["plan"]);
}

#[test]
fn a_bom_an_upper_case_extension_and_markers_inside_strings_are_read_as_written() {
    let project = Project::sqlite();
    // A UTF-8 byte-order mark before the first marker.
    std::fs::write(
        project.path().join("changes/0001_bom.sql"),
        "\u{feff}-- ripcord:deploy\nCREATE TABLE a (id int);\n-- ripcord:revert\nDROP TABLE a;\n",
    )
    .unwrap();
    // `.SQL` is a change file too.
    std::fs::write(
        project.path().join("changes/0002_upper.SQL"),
        "-- ripcord:deploy\nCREATE TABLE b (id int);\n-- ripcord:revert\nDROP TABLE b;\n",
    )
    .unwrap();
    // A marker line inside a string and inside a dollar-quoted body is SQL.
    project.change(
        "0003_quoted",
        "-- ripcord:deploy\nCREATE TABLE c (note text);\nINSERT INTO c VALUES ('first line\n-- ripcord:revert\nlast line');\n\
         CREATE TRIGGER c_t AFTER INSERT ON c BEGIN SELECT 1; END;\n-- ripcord:revert\nDROP TABLE c;\n",
    );
    let out = ok(&project, &["deploy"]);
    assert!(out.contains("Deployed 3 changes"), "{out}");
    let db = rusqlite::Connection::open(project.sqlite_path()).unwrap();
    let note: String = db
        .query_row("SELECT note FROM c", [], |r| r.get(0))
        .unwrap();
    assert_eq!(note, "first line\n-- ripcord:revert\nlast line");
    ok(&project, &["revert", "--all", "--yes"]);
    let left: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('a', 'b', 'c')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "every change reverted by its own revert section");
}

/// A SQLite project with `0001_acct` deployed and its table captured.
fn deployed_sqlite() -> (Project, String) {
    let project = Project::sqlite();
    project.change("0001_acct", ACCT);
    ok(&project, &["deploy"]);
    ok(&project, &["capture", "enable", "acct"]);
    let url = format!("sqlite://{}", project.sqlite_path().display());
    (project, url)
}

#[test]
fn command_arguments_that_name_nothing_or_make_no_sense_are_input_errors() {
    let (project, url) = deployed_sqlite();
    check_cases(
        &project,
        &url,
        &[
            (&["deploy", "--to", "nope"], 2, "no change named `nope`"),
            (&["revert", "--to", "nope"], 2, "nope is not deployed"),
            (&["revert", "--last", "0"], 2, "--last needs at least 1"),
            (
                &["rehash", "nope", "--reason", "x"],
                2,
                "no change named `nope`",
            ),
            (&["plan", "--to", "nope"], 2, "no change named `nope`"),
            (&["runbook", "--to", "nope"], 2, "no change named `nope`"),
            (&["drill", "--changes", "9..1"], 2, "no change named `9`"),
            (&["snapshot", "restore", "nope"], 2, "no snapshot nope"),
            (&["snapshot", "verify", "nope"], 2, "no snapshot nope"),
            (
                &["snapshot", "create", "--tables", "nope"],
                2,
                "no table named nope",
            ),
            (
                &["batch", "revert", "nope"],
                2,
                "no captured changes are tagged `nope`",
            ),
            (
                &["flashback", "nope", "--to", "2020-01-01"],
                2,
                "`nope` is not captured",
            ),
            (
                &["flashback", "acct", "--to", "notatime"],
                2,
                "`notatime` is not a time",
            ),
            (
                &["capture", "prune", "--before", "notatime"],
                2,
                "`notatime` is not a time",
            ),
            (&["capture", "enable", "nope"], 2, "no table `nope`"),
            (
                &["diff", "test", "sqlite://nope.db"],
                2,
                "no SQLite database at",
            ),
            (&["check"], 2, "this project has no checks"),
            (
                &["flag", "set", "bad name", "on"],
                2,
                "`bad name` is not a flag name",
            ),
            (&["flag", "set", "x;drop", "on"], 2, "is not a flag name"),
            (&["rollout"], 2, "this project has no fleet"),
            (&["rollout", "--fleet", "nope"], 2, "no fleet `nope`"),
            (&["recover"], 2, "this project has no fleet"),
            (
                &["serve", "--listen", "1.2.3.4:99999"],
                2,
                "invalid socket address",
            ),
            (
                &["import", "--from", "nope", "x"],
                2,
                "invalid value 'nope'",
            ),
            (
                &["import", "--from", "sqitch", "/nonexistent-dir"],
                2,
                "cannot read /nonexistent-dir/sqitch.plan",
            ),
            (&["baseline"], 2, "already has changes of this project"),
            (
                &["audit", "verify", "--checkpoint", "/nonexistent-file"],
                2,
                "cannot read /nonexistent-file",
            ),
            (
                &["--config", "/nonexistent.toml", "status"],
                2,
                "no config file at",
            ),
            (&["new", "bad name"], 2, "is not a valid slug"),
            (&["new", "../escape"], 2, "is not a valid slug"),
            (&["completions", "tcsh"], 2, "invalid value 'tcsh'"),
            (&["deploy", "--frobnicate"], 2, "unexpected argument"),
        ],
    );
    assert!(
        !project.path().join("nope.db").exists(),
        "diff created no database"
    );
}

#[test]
fn malformed_change_files_are_refused_with_their_place() {
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "0002_x.sql",
            b"-- ripcord:revert\nDROP TABLE x;\n",
            "change has no deploy section",
        ),
        (
            "0002_x.sql",
            b"-- requries: 0001_acct\n-- ripcord:deploy\nSELECT 1;\n",
            "unknown directive `requries:`",
        ),
        (
            "0002_x.sql",
            b"-- ripcord:deploy\nBEGIN;\nSELECT 1;\nCOMMIT;\n",
            "transaction control statement `BEGIN`",
        ),
        (
            "0002_x.sql",
            b"-- ripcord:deploy\nSELECT 'open;\n",
            "is never closed",
        ),
        (
            "0002_x.sql",
            b"-- ripcord:deploy\nSELECT $f$ open;\n",
            "is never closed",
        ),
        (
            "0001_y.sql",
            b"-- ripcord:deploy\nSELECT 1;\n",
            "share the ID 0001",
        ),
        (
            "0002_x.sql",
            b"-- requires: 0009_nope\n-- ripcord:deploy\nSELECT 1;\n",
            "requires 0009_nope, which is not a change",
        ),
        (
            "0002_x.sql",
            b"-- irreversible:\n-- ripcord:deploy\nSELECT 1;\n",
            "`irreversible:` needs a reason",
        ),
        (
            "0002_x.sql",
            b"-- transaction: sometimes\n-- ripcord:deploy\nSELECT 1;\n",
            "unknown transaction mode `sometimes`",
        ),
        (
            "0002_x.sql",
            b"\xff\xfe-- ripcord:deploy\nSELECT 1;\n",
            "valid UTF-8",
        ),
        (
            "0002_x.sql",
            b"SELECT 1;\n-- ripcord:deploy\nSELECT 1;\n",
            "SQL before the first section",
        ),
        (
            "notes.sql",
            b"-- ripcord:deploy\nSELECT 1;\n",
            "is not `<ID>_<slug>.sql`",
        ),
        (
            "0002_x y.sql",
            b"-- ripcord:deploy\nSELECT 1;\n",
            "is not `<ID>_<slug>.sql`",
        ),
        (
            "0002_x.sql",
            b"-- ripcord:deploy\n",
            "the deploy section is empty",
        ),
        (
            "0002_x.sql",
            b"-- ripcord:deploy\nSELECT 1;\n-- ripcord:deploy\nSELECT 2;\n",
            "appears twice",
        ),
    ];
    for (file, text, says) in cases {
        let (project, url) = deployed_sqlite();
        std::fs::write(project.path().join("changes").join(file), text).unwrap();
        check_cases(
            &project,
            &url,
            &[(&["plan"], 2, says), (&["deploy"], 2, says)],
        );
    }
}
