//! A project of 112 changes written for the tests (issue 14's acceptance): long names
//! whose qualified forms share their first 63 bytes, multi-part changes, no-op changes,
//! `CREATE INDEX CONCURRENTLY` steps, dropped columns without reverts, and reverts that
//! are wrong in known ways. It is drilled as a whole with `--keep-going` and change by
//! change while it is deployed, and every verdict is asserted.

mod common;

use common::*;

/// What drill must say about one change.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Pass,
    /// Fails, and the report contains this text.
    Fail(String),
    /// Fails only because an earlier change could not be deployed.
    KnockOn(String),
}

struct Change {
    name: String,
    text: String,
    verdict: Verdict,
}

/// 50 characters: qualified names of objects on this table pass 63 bytes early.
fn table(round: usize) -> String {
    format!("identity_verifiable_addresses_with_a_long_name_{round:03}")
}

fn child(round: usize) -> String {
    format!("identity_credentials_for_addresses_long_named_c{round:03}")
}

fn section(deploy: &str, revert: Option<&str>) -> String {
    match revert {
        Some(revert) => format!("-- ripcord:deploy\n{deploy}\n-- ripcord:revert\n{revert}\n"),
        None => format!("-- ripcord:deploy\n{deploy}\n"),
    }
}

fn project_changes() -> Vec<Change> {
    let mut changes = Vec::new();
    let mut add = |text: String, verdict: Verdict| {
        let id = changes.len() + 1;
        changes.push(Change {
            name: format!("{id:04}_step"),
            text,
            verdict,
        });
    };
    for round in 0..10 {
        let t = table(round);
        let c = child(round);
        // Multi-part: a table with rows.
        add(
            section(
                &format!(
                    "CREATE TABLE {t} (id integer PRIMARY KEY, parent_id integer, a text, b integer, c integer, note text);\n\
                     INSERT INTO {t} SELECT g, NULL, 'a' || g, g, g * 2, 'n' || g FROM generate_series(1, 5) g;"
                ),
                Some(&format!("DROP TABLE {t};")),
            ),
            Verdict::Pass,
        );
        // Multi-part: a child table, its index, a foreign key and rows.
        add(
            section(
                &format!(
                    "CREATE TABLE {c} (id integer PRIMARY KEY, t_id integer REFERENCES {t} (id), v text);\n\
                     CREATE INDEX {c}_t_idx ON {c} (t_id);\n\
                     INSERT INTO {c} SELECT g, g, 'v' FROM generate_series(1, 5) g;"
                ),
                Some(&format!("DROP TABLE {c};")),
            ),
            Verdict::Pass,
        );
        // A no-op: its statements moved elsewhere.
        add(
            "-- ripcord:deploy\n-- Emptied: its index moved into the change before.\n-- ripcord:revert\n"
                .into(),
            Verdict::Pass,
        );
        // A step that cannot run in a transaction.
        add(
            format!(
                "-- transaction: none\n{}",
                section(
                    &format!("CREATE INDEX CONCURRENTLY IF NOT EXISTS {t}_a ON {t} (a);"),
                    Some(&format!("DROP INDEX CONCURRENTLY IF EXISTS {t}_a;")),
                )
            ),
            Verdict::Pass,
        );
        // The last column dropped without a revert: the vault brings it back in place.
        add(
            section(&format!("ALTER TABLE {t} DROP COLUMN note;"), None),
            Verdict::Pass,
        );
        // Data.
        add(
            section(
                &format!("INSERT INTO {t} (id, a, b, c) VALUES (100, 'x', 1, 2);"),
                Some(&format!("DELETE FROM {t} WHERE id = 100;")),
            ),
            Verdict::Pass,
        );
        // A middle column dropped without a revert: back with its values, but last.
        add(
            section(&format!("ALTER TABLE {t} DROP COLUMN b;"), None),
            Verdict::Fail(format!(
                "column order of public.{t} differs after revert: id, parent_id, a, c, b (before the change: id, parent_id, a, b, c)"
            )),
        );
        // Two indexes whose qualified names share 64 bytes; the revert forgets one.
        add(
            section(
                &format!(
                    "CREATE INDEX {t}_index_a ON {t} (c);\nCREATE INDEX {t}_index_b ON {t} (a, c);"
                ),
                Some(&format!("DROP INDEX {t}_index_a;")),
            ),
            Verdict::Fail(format!(
                "index public.{t}_index_b exists after revert but not before the change"
            )),
        );
        // A foreign key dropped, the revert does nothing: its name shares 109 bytes
        // with the primary key's.
        add(
            section(
                &format!("ALTER TABLE {c} DROP CONSTRAINT IF EXISTS {c}_t_id_fkey;"),
                Some("SELECT 1;"),
            ),
            Verdict::Fail(format!(
                "constraint public.{c}.{c}_t_id_fkey is missing after revert"
            )),
        );
        // A revert that fails.
        add(
            section(
                &format!("CREATE TABLE {t}_x (id integer);"),
                Some(&format!("DROP TABLE {t}_typo;")),
            ),
            Verdict::Fail("revert failed".into()),
        );
        // A column re-added by the author's revert: values back, place not.
        add(
            section(
                &format!("ALTER TABLE {t} DROP COLUMN a;"),
                Some(&format!("ALTER TABLE {t} ADD COLUMN a text;")),
            ),
            Verdict::Fail(format!(
                "column order of public.{t} differs after revert: id, parent_id, c, a (before the change: id, parent_id, a, c)"
            )),
        );
    }
    // A deploy that fails, and a change that needs it.
    add(
        section(
            "CREATE TABLE broken (id integer REFERENCES no_such_table (id));",
            Some("DROP TABLE broken;"),
        ),
        Verdict::Fail("deploy failed".into()),
    );
    add(
        section(
            "CREATE INDEX broken_id_idx ON broken (id);",
            Some("DROP INDEX broken_id_idx;"),
        ),
        Verdict::KnockOn("0111_step".into()),
    );
    changes
}

fn outcome<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["change"] == name)
        .unwrap_or_else(|| panic!("{name} is not in the report"))
}

#[track_caller]
fn assert_verdict(change: &Change, found: &serde_json::Value) {
    let text = found.to_string();
    match &change.verdict {
        Verdict::Pass => assert_eq!(found["passed"], true, "{}: {text}", change.name),
        Verdict::Fail(expected) => {
            assert_eq!(found["passed"], false, "{}: {text}", change.name);
            assert_eq!(
                found["knock_on_of"],
                serde_json::Value::Null,
                "{}: {text}",
                change.name
            );
            assert!(
                text.contains(expected.as_str()),
                "{}: `{expected}` not in {text}",
                change.name
            );
        }
        Verdict::KnockOn(cause) => {
            assert_eq!(found["passed"], false, "{}: {text}", change.name);
            assert_eq!(
                found["knock_on_of"],
                cause.as_str(),
                "{}: {text}",
                change.name
            );
        }
    }
}

#[test]
fn a_project_of_112_changes_is_drilled_whole_and_change_by_change() {
    let (project, db) = Db::postgres_project();
    let changes = project_changes();
    assert!(changes.len() >= 100);
    for change in &changes {
        project.change(&change.name, &change.text);
    }

    // The whole project at once, going on after every failure.
    let out = run(&project, &["drill", "--keep-going", "--json"]);
    expect_exit(&out, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["changes"].as_array().unwrap().len(), changes.len());
    for change in &changes {
        assert_verdict(change, outcome(&report, &change.name));
    }
    let failing = changes
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .count();
    assert_eq!(failing, 52);
    assert_eq!(report["knock_ons"], 1);

    // Change by change, deploying each after its drill (the broken one once fixed).
    for change in &changes {
        let out = run(&project, &["drill", "--changes", &change.name, "--json"]);
        let report: serde_json::Value = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", change.name, stderr(&out)));
        let found = outcome(&report, &change.name);
        match &change.verdict {
            // Its cause is fixed and deployed by now.
            Verdict::KnockOn(_) => assert_eq!(found["passed"], true, "{found}"),
            _ => assert_verdict(change, found),
        }
        expect_exit(&out, if found["passed"] == true { 0 } else { 1 });
        if change.name == "0111_step" {
            project.change(
                &change.name,
                &section(
                    "CREATE TABLE broken (id integer);",
                    Some("DROP TABLE broken;"),
                ),
            );
        }
        ok(&project, &["deploy", "--to", &change.name]);
    }
    let status: serde_json::Value =
        serde_json::from_str(&ok(&project, &["status", "--json"])).unwrap();
    assert!(
        status["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "deployed"),
        "{status}"
    );
    ok(&project, &["audit", "verify"]);
    assert!(db.has_table("broken"));
}
