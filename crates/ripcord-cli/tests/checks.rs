//! `[[checks]]`, `ripcord check` and the gates of deploy and revert (issue 15), on both
//! engines: every expectation judged, baselines saved and compared, a deploy that breaks
//! an invariant reverted by its gate, a revert compared with the state before its deploy.

#[macro_use]
mod common;

use common::*;

const CHECKS: &str = r#"
[[checks]]
name = "no negative totals"
sql = "select id, total from orders where total < 0"
expect = { zero_rows = true }
tables = ["orders"]

[[checks]]
name = "orders row count"
sql = "select count(*) from orders"
expect = { within_pct_of_baseline = 30.0 }

[[checks]]
name = "totals"
sql = "select total from orders"
expect = { null_fraction_max = 0.25, distinct_count_within_pct = 50, quantiles_within_pct = 50 }

[[checks]]
name = "orders unchanged"
expect = { checksum_equals_baseline = true }
tables = ["orders"]
severity = "warn"

[[checks]]
name = "status is open"
sql = "select status from settings"
expect = { equals = "open" }

[[checks]]
name = "count in range"
sql = "select count(*) from orders"
expect = { between = [1, 100], max = 50 }
"#;

fn with_checks(project: &Project, extra: &str) {
    let config = std::fs::read_to_string(project.path().join("ripcord.toml")).unwrap();
    project.write_config(&format!("{config}{CHECKS}{extra}"));
    project.simple_change(
        "0001_orders",
        "CREATE TABLE orders (id integer PRIMARY KEY, total integer);\n\
         INSERT INTO orders VALUES (1, 10), (2, 20), (3, 30), (4, 40);\n\
         CREATE TABLE settings (status text);\nINSERT INTO settings VALUES ('open');",
        "DROP TABLE settings;\nDROP TABLE orders;",
        "",
    );
}

fn check_json(project: &Project, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = vec!["check", "--json"];
    all.extend_from_slice(args);
    let out = run(project, &all);
    expect_exit(&out, code);
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

fn verdict<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report}"))
}

/// Every expectation is judged; baselines are saved, versioned, listed and compared.
fn every_expectation_is_judged_against_values_and_baselines((project, db): (Project, Db)) {
    with_checks(&project, "");
    ok(&project, &["deploy"]);
    let first = check_json(&project, &["--save-baseline", "nightly"], 0);
    assert_eq!(first["passed"], true, "{first}");
    assert_eq!(first["saved"]["name"], "nightly");
    assert_eq!(verdict(&first, "no negative totals")["value"], 0);
    assert_eq!(verdict(&first, "status is open")["passed"], true);
    assert_eq!(verdict(&first, "count in range")["passed"], true);
    assert_eq!(verdict(&first, "totals")["value"]["rows"], 4);

    // Break things: a negative total, many more rows, a NULL, another status.
    db.exec(
        "UPDATE orders SET total = -5 WHERE id = 2; \
         INSERT INTO orders SELECT 100 + id, NULL FROM orders; \
         UPDATE settings SET status = 'closed';",
    );
    let report = check_json(&project, &["--against", "nightly"], 1);
    assert_eq!(report["passed"], false);
    assert_eq!(report["against"]["name"], "nightly");
    let negative = verdict(&report, "no negative totals");
    assert_eq!(negative["passed"], false);
    assert_eq!(negative["value"], 1);
    assert_eq!(negative["sample"][0]["id"], 2, "{negative}");
    assert_eq!(negative["expect"]["zero_rows"], true);
    assert_eq!(negative["severity"], "error");
    let count = verdict(&report, "orders row count");
    assert_eq!(count["passed"], false);
    assert!(
        count["reasons"][0]
            .as_str()
            .unwrap()
            .contains("value 8 is not within 30% of the baseline's 4"),
        "{count}"
    );
    let totals = verdict(&report, "totals");
    assert_eq!(totals["passed"], false);
    assert!(
        totals["reasons"]
            .to_string()
            .contains("is NULL (4 of 8 rows)"),
        "{totals}"
    );
    let unchanged = verdict(&report, "orders unchanged");
    assert_eq!(unchanged["passed"], false);
    assert_eq!(unchanged["severity"], "warn");
    assert_eq!(verdict(&report, "status is open")["passed"], false);
    assert!(
        verdict(&report, "status is open")["reasons"][0]
            .as_str()
            .unwrap()
            .contains("value 'closed' is not 'open'")
    );
    assert_eq!(verdict(&report, "count in range")["passed"], true);

    // Versions, and a reference to one.
    check_json(&project, &["--save-baseline", "nightly"], 1);
    let list = ok(&project, &["check", "--list-baselines", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let versions: Vec<i64> = list["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["name"] == "nightly")
        .map(|b| b["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 2]);
    let against_two = check_json(&project, &["--against", "nightly@2"], 1);
    assert_eq!(verdict(&against_two, "orders row count")["passed"], true);
    let text = stdout(&run(&project, &["check", "--against", "nightly@1"]));
    assert!(text.contains("FAIL  no negative totals"), "{text}");
    assert!(text.contains("(against baseline nightly@1)"), "{text}");
    let out = run(&project, &["check", "--against", "nope"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("no baseline nope"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {} WHERE kind = 'baseline_saved'",
            db.ledger("events")
        )),
        // one by deploy's gate, two by hand
        "3"
    );
}

/// A check whose SQL fails is a failed check with the database's error; the run goes on.
fn a_failing_query_is_a_failed_check((project, _db): (Project, Db)) {
    with_checks(
        &project,
        "\n[[checks]]\nname = \"broken\"\nsql = \"select nope from nowhere\"\nexpect = { equals = 1 }\n",
    );
    ok(&project, &["deploy", "--no-gate"]);
    let report = check_json(&project, &[], 1);
    let broken = verdict(&report, "broken");
    assert_eq!(broken["passed"], false);
    assert!(
        broken["error"].as_str().unwrap().contains("nowhere"),
        "{broken}"
    );
    assert_eq!(verdict(&report, "status is open")["passed"], true);
}

/// Deploy's gate: a change that breaks an invariant is reverted and deploy exits 1
/// naming the check; `--no-gate` keeps it (recorded); revert checks against the
/// baseline saved before the deploy it reverts.
fn deploy_gate_reverts_a_change_that_breaks_an_invariant((project, db): (Project, Db)) {
    with_checks(&project, "");
    ok(&project, &["deploy"]);
    project.simple_change(
        "0002_refund",
        "UPDATE orders SET total = -total WHERE id = 2;",
        "UPDATE orders SET total = -total WHERE id = 2;",
        "",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 1);
    let err = stderr(&out);
    let one_line = err
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" │ ", " ");
    assert!(
        one_line.contains("check `no negative totals` failed after the deploy (the query returned 1 row (expected none)); the change deployed by this run was reverted"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("FAIL  no negative totals"),
        "{}",
        stdout(&out)
    );
    assert_eq!(db.scalar("SELECT total FROM orders WHERE id = 2"), "20");
    let status = ok(&project, &["status"]);
    assert!(
        status.contains("pending   0002_refund") || status.contains("pending 0002_refund"),
        "{status}"
    );
    let events = db.ledger("events");
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {events} WHERE kind = 'gate_failed'"
        )),
        "1"
    );
    ok(&project, &["audit", "verify"]);

    // Without the gate, the change stays; the skip is in the chain.
    ok(&project, &["deploy", "--no-gate"]);
    assert_eq!(db.scalar("SELECT total FROM orders WHERE id = 2"), "-20");
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {events} WHERE kind = 'gate_skipped'"
        )),
        "1"
    );

    // A revert is compared with the baseline saved before the deploy it reverts.
    ok(&project, &["revert", "-y"]);
    std::fs::remove_file(project.change_path("0002_refund")).unwrap();
    project.simple_change(
        "0003_more_orders",
        "INSERT INTO orders VALUES (5, 50);",
        "DELETE FROM orders WHERE id >= 3;",
        "",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 0);
    let out = run(&project, &["revert", "-y", "--last", "1"]);
    expect_exit(&out, 1);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains(
            "the revert ran, but the data did not come back: check `orders row count` failed"
        ),
        "{text}"
    );
    assert!(text.contains("(against baseline pre-deploy@"), "{text}");
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {events} WHERE kind = 'revert_checked'"
        )),
        "2"
    );
}

on_both_engines!(
    every_expectation_is_judged_against_values_and_baselines,
    a_failing_query_is_a_failed_check,
    deploy_gate_reverts_a_change_that_breaks_an_invariant,
);

/// Distribution checks over one query read the table once, however many columns and
/// expectations they have.
#[test]
fn distribution_checks_over_one_query_are_one_scan() {
    let (project, db) = Db::postgres_project();
    project.simple_change(
        "0001_orders",
        "CREATE TABLE orders (id integer, total integer, note text);\n\
         INSERT INTO orders SELECT g, g % 100, CASE WHEN g % 10 = 0 THEN NULL ELSE 'n' END FROM generate_series(1, 1000) g;",
        "DROP TABLE orders;",
        "",
    );
    let config = std::fs::read_to_string(project.path().join("ripcord.toml")).unwrap();
    project.write_config(&format!(
        "{config}\n\
         [[checks]]\nname = \"total spread\"\nsql = \"select total, note from orders\"\ncolumn = \"total\"\nexpect = {{ null_fraction_max = 0.0, quantiles_within_pct = 5 }}\n\n\
         [[checks]]\nname = \"notes filled\"\nsql = \"select total, note from orders\"\ncolumn = \"note\"\nexpect = {{ null_fraction_max = 0.2, distinct_count_within_pct = 0 }}\n"
    ));
    ok(&project, &["deploy", "--no-gate"]);
    let scans = || {
        db.scalar("SELECT pg_stat_clear_snapshot()::text");
        db.scalar("SELECT coalesce(seq_scan, 0) FROM pg_stat_user_tables WHERE relname = 'orders'")
            .parse::<i64>()
            .unwrap()
    };
    let before = scans();
    let report = check_json(&project, &["--save-baseline", "b"], 0);
    let mut after = scans();
    for _ in 0..50 {
        if after > before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        after = scans();
    }
    assert_eq!(
        after - before,
        1,
        "two checks, four expectations, one scan: {report}"
    );
    assert_eq!(verdict(&report, "total spread")["value"]["p50"], 49.0);
    assert_eq!(verdict(&report, "notes filled")["value"]["nulls"], 100);
}
