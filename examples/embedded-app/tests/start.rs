//! The example app, run as a user would: it deploys its embedded changes on a fresh
//! SQLite file, a second start deploys nothing, and the ripcord command line sees the
//! same ledger.

use std::process::Command;

fn app(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_embedded-app"))
        .arg(url)
        .output()
        .expect("the example binary runs")
}

#[test]
fn the_app_deploys_its_embedded_changes_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let url = format!("sqlite://{}", db.display());

    let first = app(&url);
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(out.contains("deployed 2 change(s)"), "{out}");
    assert!(out.contains("deployed  0002_orders"), "{out}");

    let conn = rusqlite::Connection::open(&db).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('customers', 'orders')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 2);
    let project: String = conn
        .query_row("SELECT DISTINCT project FROM ripcord_changes", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(project, "embedded-app");

    let second = app(&url);
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("deployed 0 change(s)"));

    let bad = app("mysql://nowhere/app");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("cannot migrate the database"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
