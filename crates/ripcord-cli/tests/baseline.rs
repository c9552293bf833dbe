//! `ripcord baseline`: a database another tool migrated is adopted without running
//! anything. sqitch (a Debian package, installed by `.ci/run`) really migrates its test
//! database; for the others (Go, Java and Rust binaries not installable here) the tests
//! create the history tables with their documented columns, and the checksums Flyway
//! and sqlx record are computed independently (Python's zlib/hashlib) for the fixtures.

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

/// A PostgreSQL project with `files` (laid out by `tool`) imported.
fn imported(tool: &str, files: &[(&str, &str)]) -> (Project, Db) {
    let (project, db) = Db::postgres_project();
    let source = tempfile::tempdir().unwrap();
    write(source.path(), files);
    ok(
        &project,
        &[
            "import",
            "--from",
            tool,
            &source.path().display().to_string(),
        ],
    );
    (project, db)
}

/// A PostgreSQL project imported from golang-migrate, whose first two migrations the
/// tool applied (history `version`, `dirty`).
fn migrated(dirty: bool) -> (Project, Db) {
    let (project, db) = imported("golang-migrate", MIGRATIONS);
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
    let (project, db) = imported(
        "flyway",
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

/// Flyway's table, with the checksums Flyway computes for `V1__users.sql` and
/// `V2__posts.sql` as written by `flyway_files` (CRC32 of the lines without breaks,
/// signed; computed with Python's zlib).
fn flyway_history(db: &Db, v1_checksum: i64) {
    db.exec(&format!(
        "CREATE TABLE users (id integer PRIMARY KEY); CREATE TABLE posts (id integer PRIMARY KEY);
         CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50), description varchar(200),
           type varchar(20), script varchar(1000), checksum int, installed_by varchar(100), installed_on timestamp DEFAULT now(),
           execution_time int, success boolean NOT NULL);
         INSERT INTO flyway_schema_history VALUES (1, '1', 'users', 'SQL', 'V1__users.sql', {v1_checksum}, 'me', now(), 1, true),
                                                  (2, '2', 'posts', 'SQL', 'V2__posts.sql', 642439720, 'me', now(), 1, true);"
    ));
}

fn flyway_project() -> (Project, Db) {
    let (project, db) = imported(
        "flyway",
        &[
            // CRLF line breaks: Flyway's checksum ignores them.
            (
                "V1__users.sql",
                "CREATE TABLE users (id integer PRIMARY KEY);\r\n",
            ),
            (
                "V2__posts.sql",
                "CREATE TABLE posts (id integer PRIMARY KEY);\n",
            ),
            (
                "V3__tags.sql",
                "CREATE TABLE tags (id integer PRIMARY KEY);\n",
            ),
        ],
    );
    (project, db)
}

#[test]
fn flyway_checksums_prove_the_database_ran_the_imported_files() {
    let (project, db) = flyway_project();
    flyway_history(&db, -1203868596);
    let out = ok(&project, &["baseline", "--from-tool", "flyway"]);
    assert!(out.contains("Recorded 2 changes"), "{out}");
    ok(&project, &["deploy"]);
    assert!(db.has_table("tags"));
}

#[test]
fn a_flyway_checksum_that_disagrees_with_the_file_is_refused_and_nothing_is_written() {
    let (project, db) = flyway_project();
    flyway_history(&db, 12345);
    let out = run(&project, &["baseline", "--from-tool", "flyway"]);
    expect_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("applied V1__users.sql with checksum 12345"),
        "{err}"
    );
    assert!(
        err.contains("-1203868596"),
        "names the file's checksum: {err}"
    );
    assert_eq!(
        db.scalar("SELECT to_regnamespace('ripcord') IS NULL"),
        "true",
        "nothing written, not even a ledger"
    );
}

/// sqlx's `_sqlx_migrations` keeps the SHA-384 of each file (hashes from Python's
/// hashlib); a file without a trailing line break hashes without one.
fn sqlx_case(db_checksum_of_first: &str) -> (Project, Db, std::process::Output) {
    let (project, db) = imported(
        "sqlx",
        &[
            (
                "20240101000000_users.sql",
                "CREATE TABLE users (id integer PRIMARY KEY);\n",
            ),
            (
                "20240102000000_posts.sql",
                "CREATE TABLE posts (id integer PRIMARY KEY);",
            ),
        ],
    );
    db.exec(&format!(
        "CREATE TABLE users (id integer PRIMARY KEY); CREATE TABLE posts (id integer PRIMARY KEY);
         CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
           installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
           checksum bytea NOT NULL, execution_time bigint NOT NULL);
         INSERT INTO _sqlx_migrations VALUES
           (20240101000000, 'users', now(), true, decode('{db_checksum_of_first}', 'hex'), 1),
           (20240102000000, 'posts', now(), true, decode('4995ddb79040cf789302fc4cc1be4a09f7f7c3ef0a3ee4e191827c40f93c2b550bfd0acfd1b25cfd17348d111ecd7dc9', 'hex'), 1);"
    ));
    let out = run(&project, &["baseline", "--from-tool", "sqlx"]);
    (project, db, out)
}

#[test]
fn sqlx_checksums_are_checked_too() {
    let (_, _, out) = sqlx_case(
        "437017eb62d69346a20a7a782db446bb5c44f5478410382b12e875c325bad18a68ac734232d9821b5ca130f51c090ff3",
    );
    expect_exit(&out, 0);
    assert!(
        stdout(&out).contains("Recorded 2 changes"),
        "{}",
        stdout(&out)
    );

    let (_, db, out) = sqlx_case(&"00".repeat(48));
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("applied 20240101000000_users.sql with checksum"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        db.scalar("SELECT to_regnamespace('ripcord') IS NULL"),
        "true"
    );
}

/// The `sqitch` command, which `.ci/run` installs; a missing one fails the test.
fn sqitch(dir: &Path, args: &[&str]) {
    // sqitch runs scripts with psql: the one beside the test server's binaries first.
    let mut path =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect::<Vec<_>>();
    if let Some(bin) = ripcord_testkit::pg_bindir() {
        path.insert(0, bin);
    }
    let out = std::process::Command::new("sqitch")
        .args(args)
        .env("PATH", std::env::join_paths(path).unwrap())
        .current_dir(dir)
        .env("HOME", dir)
        .env("SQITCH_FULLNAME", "Ada Lovelace")
        .env("SQITCH_EMAIL", "ada@example.com")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run sqitch ({e}): install it (apt-get install sqitch libdbd-pg-perl)")
        });
    assert!(
        out.status.success(),
        "sqitch {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_database_sqitch_really_deployed_is_adopted() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(database) = &db else {
        unreachable!()
    };
    let source = tempfile::tempdir().unwrap();
    let dir = source.path();
    let target = format!("db:{}", database.url);
    sqitch(
        dir,
        &["init", "blog", "--engine", "pg", "--target", &target],
    );
    sqitch(dir, &["add", "users", "-n", "users"]);
    sqitch(dir, &["add", "posts", "-r", "users", "-n", "posts"]);
    sqitch(dir, &["add", "tags", "-r", "posts", "-n", "tags"]);
    for (name, table) in [("users", "users"), ("posts", "posts"), ("tags", "tags")] {
        write(
            dir,
            &[
                (
                    &format!("deploy/{name}.sql"),
                    &format!("BEGIN;\nCREATE TABLE {table} (id integer PRIMARY KEY);\nCOMMIT;\n"),
                ),
                (
                    &format!("revert/{name}.sql"),
                    &format!("BEGIN;\nDROP TABLE {table};\nCOMMIT;\n"),
                ),
                (
                    &format!("verify/{name}.sql"),
                    &format!("SELECT id FROM {table} WHERE false;\n"),
                ),
            ],
        );
    }
    sqitch(dir, &["deploy", "--to", "posts"]);
    assert_eq!(
        db.scalar("SELECT string_agg(change, ',' ORDER BY committed_at) FROM sqitch.changes"),
        "users,posts"
    );

    ok(
        &project,
        &["import", "--from", "sqitch", &dir.display().to_string()],
    );
    let out = ok(&project, &["baseline", "--from-tool", "sqitch"]);
    assert!(
        out.contains("= 0001_users") && out.contains("= 0002_posts") && !out.contains("0003"),
        "{out}"
    );
    ok(&project, &["deploy"]);
    assert!(db.has_table("tags"));
    // The imported reverts (sqitch's) take the database all the way back.
    ok(&project, &["revert", "--all", "--yes"]);
    assert!(!db.has_table("users"));
}
