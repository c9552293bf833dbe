//! `ripcord baseline`: a database another tool migrated is adopted without running
//! anything. The tools' history tables are created here with their documented columns
//! (the tools themselves are Go binaries or Perl, not installed by the tests).

#[macro_use]
mod common;

use std::path::Path;

use common::*;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "000001_users.up.sql",
        "CREATE TABLE users (id integer PRIMARY KEY);\n",
    ),
    ("000001_users.down.sql", "DROP TABLE users;\n"),
    (
        "000002_posts.up.sql",
        "CREATE TABLE posts (id integer PRIMARY KEY);\n",
    ),
    ("000002_posts.down.sql", "DROP TABLE posts;\n"),
    (
        "000003_tags.up.sql",
        "CREATE TABLE tags (id integer PRIMARY KEY);\n",
    ),
    ("000003_tags.down.sql", "DROP TABLE tags;\n"),
];

/// A PostgreSQL project imported from golang-migrate, whose first two migrations the
/// tool applied (history `version`, `dirty`).
fn migrated(dirty: bool) -> (Project, Db) {
    let (project, db) = Db::postgres_project();
    let source = tempfile::tempdir().unwrap();
    write(source.path(), MIGRATIONS);
    ok(
        &project,
        &[
            "import",
            "--from",
            "golang-migrate",
            &source.path().display().to_string(),
        ],
    );
    db.exec(&format!(
        "CREATE TABLE users (id integer PRIMARY KEY); CREATE TABLE posts (id integer PRIMARY KEY);
         CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
         INSERT INTO schema_migrations VALUES (2, {dirty});"
    ));
    (project, db)
}

#[test]
fn a_golang_migrate_database_is_adopted_and_the_rest_deploys() {
    let (project, db) = migrated(false);
    let dry = ok(
        &project,
        &["baseline", "--from-tool", "golang-migrate", "--dry-run"],
    );
    assert!(dry.contains("Would record 2 changes"), "{dry}");
    assert_eq!(
        db.scalar("SELECT to_regnamespace('ripcord') IS NULL"),
        "true"
    );
    let out = ok(&project, &["baseline", "--from-tool", "golang-migrate"]);
    assert!(out.contains("Recorded 2 changes"), "{out}");
    assert!(
        out.contains("= 0001_users") && out.contains("= 0002_posts"),
        "{out}"
    );
    let status = ok(&project, &["status"]);
    assert!(status.contains("0003_tags"), "{status}");
    // Nothing ran: deploy now runs only the third, and the chain vouches for all three.
    ok(&project, &["deploy"]);
    assert_eq!(db.scalar("SELECT count(*)::text FROM ripcord.changes"), "3");
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM ripcord.events WHERE kind = 'baselined'"),
        "2"
    );
    ok(&project, &["audit", "verify"]);
    // The baselined changes revert like any other.
    ok(&project, &["revert", "--all", "--yes"]);
    assert_eq!(db.scalar("SELECT to_regclass('users') IS NULL"), "true");

    // A second baseline on a database ripcord already deploys to is refused.
    ok(&project, &["deploy"]);
    let again = run(&project, &["baseline", "--up-to", "0001_users"]);
    expect_exit(&again, 2);
    assert!(
        stderr(&again).contains("already has changes of this project"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn a_dirty_golang_migrate_state_is_refused_and_nothing_is_written() {
    let (project, db) = migrated(true);
    let out = run(&project, &["baseline", "--from-tool", "golang-migrate"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("is dirty at version 2"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        db.scalar("SELECT to_regnamespace('ripcord') IS NULL"),
        "true",
        "nothing written, not even a ledger"
    );
}

#[test]
fn flyway_and_up_to() {
    let (project, db) = Db::postgres_project();
    let source = tempfile::tempdir().unwrap();
    write(
        source.path(),
        &[
            (
                "V1__users.sql",
                "CREATE TABLE users (id integer PRIMARY KEY);\n",
            ),
            (
                "V2__posts.sql",
                "CREATE TABLE posts (id integer PRIMARY KEY);\n",
            ),
        ],
    );
    ok(
        &project,
        &[
            "import",
            "--from",
            "flyway",
            &source.path().display().to_string(),
        ],
    );
    db.exec(
        "CREATE TABLE users (id integer PRIMARY KEY);
         CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50), description varchar(200),
           type varchar(20), script varchar(1000), checksum int, installed_by varchar(100), installed_on timestamp DEFAULT now(),
           execution_time int, success boolean NOT NULL);
         INSERT INTO flyway_schema_history VALUES (1, '1', 'users', 'SQL', 'V1__users.sql', 0, 'me', now(), 1, true),
                                                  (2, '2', 'posts', 'SQL', 'V2__posts.sql', 0, 'me', now(), 1, false);",
    );
    let failed = run(&project, &["baseline", "--from-tool", "flyway"]);
    expect_exit(&failed, 2);
    assert!(
        stderr(&failed).contains("records a failed migration: V2__posts.sql"),
        "{}",
        stderr(&failed)
    );
    // --up-to names the last change the database has.
    let out = ok(&project, &["baseline", "--up-to", "0001_users"]);
    assert!(out.contains("Recorded 1 changes"), "{out}");
    ok(&project, &["deploy"]);
    assert_eq!(db.scalar("SELECT to_regclass('posts') IS NOT NULL"), "true");
}
