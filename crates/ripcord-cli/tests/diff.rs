//! `ripcord diff` (issue 15): row-level differences by key between two databases, for
//! integer, composite, UUID and text keys with collation traps; every difference a
//! reader could see counts (NULL vs '', trailing spaces, -0, numeric scale, timestamp
//! precision); the result equals a naive full comparison over random edits; `--sql`
//! repairs B; bad input is a clear exit 2 or 5.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;

const SCHEMA: &str = "
CREATE TABLE ints (id integer PRIMARY KEY, v text, n numeric, f float8, at timestamp(6));
CREATE TABLE pairs (a integer, b text, x text, PRIMARY KEY (a, b));
CREATE TABLE uuids (u uuid PRIMARY KEY, s text);
CREATE TABLE texts (k text COLLATE \"C\" PRIMARY KEY, v integer);
CREATE TABLE kinds (id integer PRIMARY KEY, d date, b bytea, ok boolean, j json, r real, s smallint, tz timestamptz);
INSERT INTO kinds VALUES (1, 'infinity', '\\x00ff', true, '{\"a\": 1}', 1.5, 1, 'infinity'),
                         (2, '2026-01-01', '', false, '[]', '-0', 2, '2026-01-01 00:00+00');
INSERT INTO ints SELECT g, 'v' || g, g * 1.5, g, timestamp '2026-01-01 10:00:00.123456' + g * interval '1 minute'
  FROM generate_series(1, 500) g;
INSERT INTO pairs VALUES (1, '11', 'x'), (11, '1', 'y'), (2, 'b', 'z');
INSERT INTO uuids SELECT ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, 's' || g FROM generate_series(1, 50) g;
INSERT INTO texts VALUES ('a', 1), ('A', 2), ('a ', 3), ('b', 4);
";

fn two_databases() -> (ripcord_testkit::TestDatabase, ripcord_testkit::TestDatabase) {
    let (a, b) = (pg().create_database(), pg().create_database());
    a.connect().batch_execute(SCHEMA).unwrap();
    b.connect().batch_execute(SCHEMA).unwrap();
    (a, b)
}

fn diff_json(a: &str, b: &str, extra: &[&str], code: i32) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["diff", a, b, "--json", "--limit", "100000"];
    args.extend_from_slice(extra);
    let out = ripcord_in(dir.path()).args(&args).output().unwrap();
    expect_exit(&out, code);
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

fn table<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report}"))
}

/// `(kind, key, columns)` of every listed row, in order.
fn rows(table: &serde_json::Value) -> Vec<(String, String, Vec<String>)> {
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let key: Vec<String> = r["key"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_str().map_or("NULL".into(), String::from))
                .collect();
            let columns = r["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            (
                r["kind"].as_str().unwrap().to_string(),
                key.join("|"),
                columns,
            )
        })
        .collect()
}

#[test]
fn every_visible_difference_is_found_for_every_key_type() {
    let (a, b) = two_databases();
    let same = diff_json(&a.url, &b.url, &[], 0);
    assert_eq!(same["total_differences"], 0, "{same}");
    b.connect()
        .batch_execute(
            "UPDATE ints SET v = NULL WHERE id = 5;
             UPDATE ints SET v = '' WHERE id = 6;
             UPDATE ints SET v = 'v7 ' WHERE id = 7;
             UPDATE ints SET n = 15.00 WHERE id = 10;
             UPDATE ints SET f = '-0'::float8 WHERE id = 11;
             UPDATE ints SET at = date_trunc('milliseconds', at) WHERE id = 12;
             DELETE FROM ints WHERE id = 100;
             INSERT INTO ints (id, v) VALUES (2000, NULL);
             UPDATE pairs SET x = 'w' WHERE a = 11 AND b = '1';
             UPDATE uuids SET s = NULL WHERE u = '00000000-0000-0000-0000-000000000007';
             DELETE FROM texts WHERE k = 'a ';
             UPDATE texts SET v = 20 WHERE k = 'A';
             UPDATE kinds SET d = '2026-01-02', b = '\\x00fe', ok = NULL, j = '{\"a\":1}', r = 0, s = 3,
                              tz = '2026-01-01 00:00:00.000001+00' WHERE id = 2;",
        )
        .unwrap();
    a.connect()
        .batch_execute("UPDATE ints SET f = 0 WHERE id = 11")
        .unwrap();
    let report = diff_json(&a.url, &b.url, &[], 1);
    let ints = table(&report, "public.ints");
    assert_eq!(ints["key"], serde_json::json!(["id"]));
    assert_eq!(
        (
            ints["added"].as_u64(),
            ints["removed"].as_u64(),
            ints["changed"].as_u64()
        ),
        (Some(1), Some(1), Some(6))
    );
    let listed = rows(ints);
    let expected: Vec<(String, String, Vec<String>)> = vec![
        ("changed".into(), "5".into(), vec!["v".into()]),
        ("changed".into(), "6".into(), vec!["v".into()]),
        ("changed".into(), "7".into(), vec!["v".into()]),
        ("changed".into(), "10".into(), vec!["n".into()]),
        ("changed".into(), "11".into(), vec!["f".into()]),
        ("changed".into(), "12".into(), vec!["at".into()]),
        ("removed".into(), "100".into(), vec![]),
        ("added".into(), "2000".into(), vec![]),
    ];
    assert_eq!(listed, expected);
    let pairs = table(&report, "public.pairs");
    assert_eq!(
        rows(pairs),
        vec![("changed".into(), "11|1".into(), vec!["x".into()])]
    );
    let uuids = table(&report, "public.uuids");
    assert_eq!(
        rows(uuids),
        vec![(
            "changed".into(),
            "00000000-0000-0000-0000-000000000007".into(),
            vec!["s".into()]
        )]
    );
    let texts = table(&report, "public.texts");
    assert_eq!(
        rows(texts),
        vec![
            ("changed".into(), "A".into(), vec!["v".into()]),
            ("removed".into(), "a ".into(), vec![]),
        ]
    );
    let kinds = table(&report, "public.kinds");
    assert_eq!(
        rows(kinds),
        vec![(
            "changed".into(),
            "2".into(),
            vec![
                "d".into(),
                "b".into(),
                "ok".into(),
                "j".into(),
                "r".into(),
                "s".into(),
                "tz".into()
            ]
        )]
    );
    assert_eq!(report["total_differences"], 13);

    // The repair script makes B equal A.
    let dir = tempfile::tempdir().unwrap();
    let out = ripcord_in(dir.path())
        .args(["diff", &a.url, &b.url, "--sql"])
        .output()
        .unwrap();
    expect_exit(&out, 1);
    let script = stdout(&out);
    assert!(
        script.contains("DELETE FROM \"public\".\"ints\" WHERE \"id\" = '2000';"),
        "{script}"
    );
    b.connect().batch_execute(&script).unwrap();
    let after = diff_json(&a.url, &b.url, &[], 0);
    assert_eq!(after["total_differences"], 0, "{after}");
}

#[test]
fn sqlite_databases_diff_too() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let path = dir.path().join(name);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, f REAL);
             INSERT INTO t VALUES (1, 'a', 1.0), (2, 'b', 2.5), (3, NULL, 0.0);
             CREATE TABLE pairs (a INTEGER NOT NULL, b TEXT NOT NULL, x TEXT);
             CREATE UNIQUE INDEX pairs_ab ON pairs (a, b);
             INSERT INTO pairs VALUES (1, '11', 'x'), (11, '1', 'y');",
        )
        .unwrap();
        (format!("sqlite://{}", path.display()), conn)
    };
    let (a, _) = make("a.db");
    let (b, conn) = make("b.db");
    conn.execute_batch(
        "UPDATE t SET v = '' WHERE id = 3; UPDATE t SET f = -0.0 WHERE id = 1; DELETE FROM t WHERE id = 2;
         UPDATE pairs SET x = 'z' WHERE a = 1;",
    )
    .unwrap();
    let report = diff_json(&a, &b, &[], 1);
    assert_eq!(
        rows(table(&report, "t")),
        vec![
            ("changed".into(), "1".into(), vec!["f".into()]),
            ("removed".into(), "2".into(), vec![]),
            ("changed".into(), "3".into(), vec!["v".into()]),
        ]
    );
    assert_eq!(
        table(&report, "pairs")["key"],
        serde_json::json!(["a", "b"])
    );
    assert_eq!(
        rows(table(&report, "pairs")),
        vec![("changed".into(), "1|11".into(), vec!["x".into()])]
    );
}

#[test]
fn bad_input_is_a_clear_error_that_changes_nothing() {
    let (a, b) = two_databases();
    for db in [&a, &b] {
        db.connect()
            .batch_execute("CREATE TABLE loose (x integer, y text); INSERT INTO loose VALUES (1, 'a'), (NULL, 'b');")
            .unwrap();
    }
    b.connect()
        .batch_execute("CREATE TABLE typed (k text PRIMARY KEY); ")
        .unwrap();
    a.connect()
        .batch_execute("CREATE TABLE typed (k integer PRIMARY KEY);")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // An (empty) SQLite file to compare with: a path that does not exist is refused first.
    std::fs::write(dir.path().join("x.db"), b"").unwrap();
    let run_diff = |args: &[&str]| {
        ripcord_in(dir.path())
            .arg("diff")
            .args(args)
            .output()
            .unwrap()
    };
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![&a.url, &b.url, "--table", "nope"],
            2,
            "no table nope on either side",
        ),
        (
            vec![&a.url, &b.url, "--table", "loose"],
            2,
            "has no primary key",
        ),
        (
            vec![&a.url, &b.url, "--table", "loose", "--key", "x"],
            2,
            "is NULL in 1 rows of A",
        ),
        (
            vec![&a.url, &b.url, "--table", "typed"],
            2,
            "is integer on side A but text on side B",
        ),
        (
            vec![&a.url, "sqlite://x.db", "--table", "ints"],
            2,
            "diff compares PostgreSQL with PostgreSQL",
        ),
        (
            vec![&a.url, "nowhere"],
            2,
            "`nowhere` is neither a URL, a target nor a snapshot",
        ),
    ];
    for (args, code, message) in cases {
        let out = run_diff(&args);
        expect_exit(&out, code);
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    // A --key that repeats is reported, not crashed on.
    for db in [&a, &b] {
        db.connect()
            .batch_execute("CREATE TABLE dup (x integer NOT NULL, y text); INSERT INTO dup VALUES (1, 'a'), (1, 'b'), (2, 'c');")
            .unwrap();
    }
    let report = diff_json(&a.url, &b.url, &["--table", "dup", "--key", "x"], 0);
    assert_eq!(
        table(&report, "public.dup")["duplicate_keys"],
        2,
        "{report}"
    );
    // A server that does not answer (port 1): a connection error, exit 5.
    let port_start = a.url.find("127.0.0.1:").unwrap() + "127.0.0.1:".len();
    let port_end = port_start + a.url[port_start..].find('/').unwrap();
    let dead = format!("{}1{}", &a.url[..port_start], &a.url[port_end..]);
    let out = run_diff(&[&dead, &b.url]);
    expect_exit(&out, 5);
    assert!(
        !dir.path().join("x.db").exists()
            || std::fs::metadata(dir.path().join("x.db")).unwrap().len() == 0
    );
}

/// Every row of a table as text, by key.
fn naive(db: &ripcord_testkit::TestDatabase) -> BTreeMap<i32, Vec<Option<String>>> {
    db.connect()
        .query("SELECT id, ARRAY[v, n::text, f::text] FROM ints", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[derive(Debug, Clone)]
enum Edit {
    SetText(i32, Option<String>),
    SetNumber(i32, String),
    Delete(i32),
    Insert(i32, Option<String>),
}

fn edit() -> impl Strategy<Value = Edit> {
    let text = prop_oneof![
        Just(None),
        Just(Some(String::new())),
        Just(Some(" ".to_string())),
        "[a-c ]{0,3}".prop_map(Some),
    ];
    prop_oneof![
        (1..60i32, text.clone()).prop_map(|(id, v)| Edit::SetText(id, v)),
        (
            1..60i32,
            prop_oneof![
                Just("1.0".to_string()),
                Just("1.00".to_string()),
                Just("-0".to_string()),
                Just("2".to_string())
            ]
        )
            .prop_map(|(id, n)| Edit::SetNumber(id, n)),
        (1..60i32).prop_map(Edit::Delete),
        (60..80i32, text).prop_map(|(id, v)| Edit::Insert(id, v)),
    ]
}

fn apply(db: &ripcord_testkit::TestDatabase, edits: &[Edit]) {
    let mut client = db.connect();
    for edit in edits {
        match edit {
            Edit::SetText(id, v) => client.execute("UPDATE ints SET v = $2 WHERE id = $1", &[id, v]),
            Edit::SetNumber(id, n) => client.execute(
                "UPDATE ints SET n = $2::text::numeric, f = $2::text::float8 WHERE id = $1",
                &[id, n],
            ),
            Edit::Delete(id) => client.execute("DELETE FROM ints WHERE id = $1", &[id]),
            Edit::Insert(id, v) => client.execute(
                "INSERT INTO ints (id, v) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
                &[id, v],
            ),
        }
        .unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// The diff equals a full comparison of both tables done here, whatever the edits.
    #[test]
    fn the_diff_equals_a_naive_full_comparison(edits_a in proptest::collection::vec(edit(), 0..6), edits_b in proptest::collection::vec(edit(), 0..12)) {
        let (a, b) = two_databases();
        for db in [&a, &b] {
            db.connect().batch_execute("DELETE FROM ints WHERE id > 60").unwrap();
        }
        apply(&a, &edits_a);
        apply(&b, &edits_b);
        let (left, right) = (naive(&a), naive(&b));
        let mut expected: Vec<(String, String, Vec<String>)> = Vec::new();
        let names = ["v", "n", "f"];
        let mut keys: Vec<&i32> = left.keys().chain(right.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            match (left.get(key), right.get(key)) {
                (Some(_), None) => expected.push(("removed".into(), key.to_string(), vec![])),
                (None, Some(_)) => expected.push(("added".into(), key.to_string(), vec![])),
                (Some(x), Some(y)) if x != y => expected.push((
                    "changed".into(),
                    key.to_string(),
                    (0..3).filter(|i| x[*i] != y[*i]).map(|i| names[i].to_string()).collect(),
                )),
                _ => {}
            }
        }
        let code = if expected.is_empty() { 0 } else { 1 };
        let report = diff_json(&a.url, &b.url, &["--table", "ints"], code);
        prop_assert_eq!(rows(table(&report, "public.ints")), expected);
    }
}

/// A snapshot id is a side of a diff: the rows since the snapshot, named by key.
fn a_snapshot_against_the_live_database((project, db): (Project, Db)) {
    project.simple_change(
        "0001_t",
        "CREATE TABLE t (id integer PRIMARY KEY, v text);\nINSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
        "DROP TABLE t;",
        "",
    );
    ok(&project, &["deploy"]);
    let created: serde_json::Value = serde_json::from_str(&ok(
        &project,
        &["snapshot", "create", "--tables", "t", "--json"],
    ))
    .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    db.exec("UPDATE t SET v = 'B' WHERE id = 2; DELETE FROM t WHERE id = 3; INSERT INTO t VALUES (4, 'd');");
    let out = run(&project, &["diff", &id, "test", "--json"]);
    expect_exit(&out, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["a"], format!("snapshot {id}"));
    assert_eq!(
        report["tables"].as_array().unwrap().len(),
        1,
        "only the snapshot's tables: {report}"
    );
    assert_eq!(
        rows(&report["tables"][0]),
        vec![
            ("changed".into(), "2".into(), vec!["v".into()]),
            ("removed".into(), "3".into(), vec![]),
            ("added".into(), "4".into(), vec![]),
        ]
    );
    let reversed = run(&project, &["diff", "test", &id, "--json"]);
    expect_exit(&reversed, 1);
    let reversed: serde_json::Value = serde_json::from_str(&stdout(&reversed)).unwrap();
    assert_eq!(reversed["tables"][0]["added"], 1);
    assert_eq!(reversed["tables"][0]["removed"], 1);
    if db.is_postgres() {
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'ripcord\\_drill\\_%'"),
            "0",
            "the scratch the snapshot was restored into is gone"
        );
    }
}

mod engines {
    use super::*;

    #[test]
    fn sqlite_snapshot_against_the_live_database() {
        a_snapshot_against_the_live_database(Db::sqlite_project());
    }

    #[test]
    fn postgres_snapshot_against_the_live_database() {
        a_snapshot_against_the_live_database(Db::postgres_project());
    }
}
