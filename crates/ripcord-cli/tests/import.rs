//! `ripcord import` from every layout it reads: fixture directories written here, the
//! change files it writes (order, names, SQL as written, headers), and a round trip of
//! the imported project on SQLite: deploy, revert everything, deploy again.

#[macro_use]
mod common;

use std::path::Path;

use common::*;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Import `files` laid out by `tool` into a fresh PostgreSQL project, check the written
/// change files' names, drill the imported changes on a scratch database, then deploy,
/// revert all and deploy again.
fn round_trip(tool: &str, files: &[(&str, &str)], expected: &[&str]) -> Project {
    round_trip_in(Db::postgres_project(), tool, files, expected)
}

/// [`round_trip`] on the database given (pop's dialect fixture is SQLite's).
fn round_trip_in(
    (project, _db): (Project, Db),
    tool: &str,
    files: &[(&str, &str)],
    expected: &[&str],
) -> Project {
    let source = tempfile::tempdir().unwrap();
    write(source.path(), files);
    let dir = source.path().display().to_string();
    let dry = ok(&project, &["import", "--from", tool, &dir, "--dry-run"]);
    assert!(dry.contains("nothing written"), "{dry}");
    assert!(
        std::fs::read_dir(project.path().join("changes"))
            .unwrap()
            .next()
            .is_none(),
        "--dry-run wrote nothing"
    );
    let out = ok(&project, &["import", "--from", tool, &dir]);
    let mut written: Vec<String> = std::fs::read_dir(project.path().join("changes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    written.sort();
    assert_eq!(written, expected, "{tool}: {out}");
    for file in &written {
        let text = std::fs::read_to_string(project.path().join("changes").join(file)).unwrap();
        assert!(
            text.starts_with(&format!("-- imported from {tool}: ")),
            "{file}: {text}"
        );
    }
    let drill = ok(&project, &["drill"]);
    assert!(drill.contains("Drill passed"), "{tool}: {drill}");
    ok(&project, &["deploy"]);
    ok(&project, &["revert", "--all", "--yes"]);
    ok(&project, &["deploy"]);
    project
}

fn change(project: &Project, file: &str) -> String {
    std::fs::read_to_string(project.path().join("changes").join(file)).unwrap()
}

#[test]
fn sqitch_plan_dependencies_and_scripts() {
    let project = round_trip(
        "sqitch",
        &[
            (
                "sqitch.plan",
                "%syntax-version=1.0.0\n%project=blog\n\nusers 2024-01-01T00:00:00Z Ada <ada@example.com> # users\n\
                 posts [users] 2024-01-02T00:00:00Z Ada <ada@example.com> # posts\n@v1 2024-01-03T00:00:00Z Ada <ada@example.com> # tag\n\
                 tags [posts !legacy_tags] 2024-01-04T00:00:00Z Ada <ada@example.com> # tags\n",
            ),
            (
                "deploy/users.sql",
                "-- Deploy blog:users\nBEGIN;\n\nCREATE TABLE users (id integer PRIMARY KEY, name text);\n\nCOMMIT;\n",
            ),
            ("revert/users.sql", "BEGIN;\nDROP TABLE users;\nCOMMIT;\n"),
            (
                "verify/users.sql",
                "SELECT id, name FROM users WHERE false;\n",
            ),
            (
                "deploy/posts.sql",
                "BEGIN;\nCREATE TABLE posts (id integer PRIMARY KEY, user_id integer REFERENCES users (id));\nCOMMIT;\n",
            ),
            ("revert/posts.sql", "BEGIN;\nDROP TABLE posts;\nCOMMIT;\n"),
            (
                "deploy/tags.sql",
                "CREATE TABLE tags (post_id integer, tag text);\n",
            ),
            ("revert/tags.sql", "DROP TABLE tags;\n"),
        ],
        &["0001_users.sql", "0002_posts.sql", "0003_tags.sql"],
    );
    let posts = change(&project, "0002_posts.sql");
    assert!(posts.contains("-- requires: 0001_users\n"), "{posts}");
    assert!(
        posts.contains(
            "CREATE TABLE posts (id integer PRIMARY KEY, user_id integer REFERENCES users (id));\n"
        ),
        "{posts}"
    );
    assert!(posts.contains("BEGIN/COMMIT lines were removed"), "{posts}");
    assert!(
        change(&project, "0001_users.sql")
            .contains("-- ripcord:verify\nSELECT id, name FROM users WHERE false;")
    );
    assert!(change(&project, "0003_tags.sql").contains("conflicts with `legacy_tags`"));
}

#[test]
fn flyway_versions_in_numeric_order_with_undo_files() {
    let project = round_trip(
        "flyway",
        &[
            (
                "V1__create_users.sql",
                "CREATE TABLE users (id integer PRIMARY KEY);\n",
            ),
            (
                "V1.1__add_email.sql",
                "ALTER TABLE users ADD COLUMN email text;\n",
            ),
            (
                "V2__posts.sql",
                "CREATE TABLE posts (id integer PRIMARY KEY);\n",
            ),
            ("U2__posts.sql", "DROP TABLE posts;\n"),
            ("V10__audit.sql", "CREATE TABLE audit_log (id integer);\n"),
        ],
        &[
            "0001_create_users.sql",
            "0002_add_email.sql",
            "0003_posts.sql",
            "0004_audit.sql",
        ],
    );
    assert!(change(&project, "0003_posts.sql").contains("-- ripcord:revert\nDROP TABLE posts;\n"));
    // A repeatable migration is refused, naming the file; nothing is written.
    let other = Project::sqlite();
    let source = tempfile::tempdir().unwrap();
    write(
        source.path(),
        &[
            ("V1__a.sql", "CREATE TABLE a (id integer);\n"),
            ("R__view.sql", "CREATE VIEW v AS SELECT 1;\n"),
        ],
    );
    let refused = run(
        &other,
        &[
            "import",
            "--from",
            "flyway",
            &source.path().display().to_string(),
        ],
    );
    expect_exit(&refused, 2);
    assert!(stderr(&refused).contains("R__view.sql is a repeatable migration"));
    assert!(
        std::fs::read_dir(other.path().join("changes"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn golang_migrate_and_sqlx_up_and_down_files() {
    round_trip(
        "golang-migrate",
        &[
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
        ],
        &["0001_users.sql", "0002_posts.sql"],
    );
    let project = round_trip(
        "sqlx",
        &[
            (
                "20240101000000_users.sql",
                "CREATE TABLE users (id integer PRIMARY KEY);\n",
            ),
            (
                "20240102000000_posts.up.sql",
                "CREATE TABLE posts (id integer PRIMARY KEY);\n",
            ),
            ("20240102000000_posts.down.sql", "DROP TABLE posts;\n"),
        ],
        &["0001_users.sql", "0002_posts.sql"],
    );
    // A single sqlx file has no down: ripcord writes its revert at deploy.
    assert!(!change(&project, "0001_users.sql").contains("-- ripcord:revert"));
    // A down without its up is refused.
    let other = Project::sqlite();
    let source = tempfile::tempdir().unwrap();
    write(source.path(), &[("000003_x.down.sql", "DROP TABLE x;\n")]);
    let refused = run(
        &other,
        &[
            "import",
            "--from",
            "golang-migrate",
            &source.path().display().to_string(),
        ],
    );
    expect_exit(&refused, 2);
    assert!(
        stderr(&refused).contains("has no 000003_x.up.sql"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn goose_and_dbmate_markers_and_no_transaction() {
    let project = round_trip(
        "goose",
        &[
            (
                "00001_users.sql",
                "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE users (id integer PRIMARY KEY);\n-- +goose StatementEnd\n\n-- +goose Down\nDROP TABLE users;\n",
            ),
            (
                "00002_index.sql",
                "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX users_id ON users (id);\n-- +goose Down\nDROP INDEX users_id;\n",
            ),
        ],
        &["0001_users.sql", "0002_index.sql"],
    );
    let users = change(&project, "0001_users.sql");
    assert!(
        users.contains("-- ripcord:deploy\n-- +goose StatementBegin\nCREATE TABLE users"),
        "{users}"
    );
    assert!(change(&project, "0002_index.sql").contains("-- transaction: none\n"));
    let project = round_trip(
        "dbmate",
        &[
            (
                "20240101000000_users.sql",
                "-- migrate:up\nCREATE TABLE users (id integer PRIMARY KEY);\n\n-- migrate:down\nDROP TABLE users;\n",
            ),
            (
                "20240102000000_index.sql",
                "-- migrate:up transaction:false\nCREATE INDEX users_id ON users (id);\n-- migrate:down\nDROP INDEX users_id;\n",
            ),
        ],
        &["0001_users.sql", "0002_index.sql"],
    );
    assert!(change(&project, "0002_index.sql").contains("-- transaction: none\n"));
    // A Go migration in a goose directory is refused, naming it.
    let other = Project::sqlite();
    let source = tempfile::tempdir().unwrap();
    write(
        source.path(),
        &[("00003_backfill.go", "package migrations\n")],
    );
    let refused = run(
        &other,
        &[
            "import",
            "--from",
            "goose",
            &source.path().display().to_string(),
        ],
    );
    expect_exit(&refused, 2);
    assert!(stderr(&refused).contains("00003_backfill.go is a Go migration"));
}

#[test]
fn refinery_u_files_are_unversioned_migrations_not_undo() {
    let project = round_trip(
        "refinery",
        &[
            (
                "V1__users.sql",
                "CREATE TABLE users (id integer PRIMARY KEY);\n",
            ),
            ("U2__seed.sql", "CREATE TABLE seed (id integer);\n"),
        ],
        &["0001_users.sql", "0002_seed.sql"],
    );
    // U2 became a change of its own, not the revert of anything.
    assert!(!change(&project, "0001_users.sql").contains("seed"));
}

#[test]
fn a_directory_of_no_known_layout_says_what_was_looked_for() {
    let project = Project::sqlite();
    let source = tempfile::tempdir().unwrap();
    write(source.path(), &[("notes.txt", "hello\n")]);
    let out = run(
        &project,
        &[
            "import",
            "--from",
            "dbmate",
            &source.path().display().to_string(),
        ],
    );
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("holds no dbmate migration"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("-- migrate:up"), "{}", stderr(&out));
}

#[test]
fn an_imported_goose_project_drills_on_postgres() {
    let (project, _db) = Db::postgres_project();
    let source = tempfile::tempdir().unwrap();
    write(
        source.path(),
        &[
            (
                "00001_users.sql",
                "-- +goose Up\nCREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);\nINSERT INTO users (email) VALUES ('a@example.com'), ('b@example.com');\n-- +goose Down\nDROP TABLE users;\n",
            ),
            (
                "00002_fn.sql",
                "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION user_count() RETURNS bigint AS $$\nBEGIN\n  RETURN (SELECT count(*) FROM users);\nEND;\n$$ LANGUAGE plpgsql;\n-- +goose StatementEnd\n-- +goose Down\nDROP FUNCTION user_count();\n",
            ),
            // No down: ripcord writes the revert, keeping the dropped column's values.
            (
                "00003_drop_email.sql",
                "-- +goose Up\nALTER TABLE users DROP COLUMN email;\n",
            ),
        ],
    );
    let out = ok(
        &project,
        &[
            "import",
            "--from",
            "goose",
            &source.path().display().to_string(),
        ],
    );
    assert!(out.contains("ripcord writes it at deploy"), "{out}");
    let drill = run(&project, &["drill"]);
    expect_exit(&drill, 0);
    assert!(
        stdout(&drill).contains("Drill passed: 3 changes came back exactly"),
        "{}",
        stdout(&drill)
    );
}

#[test]
fn pop_files_of_one_timestamp_are_one_change_for_the_chosen_dialect() {
    let project = round_trip_in(
        Db::sqlite_project(),
        "pop",
        &[
            (
                "20200101000000000000_users.sqlite3.up.sql",
                "CREATE TABLE users (id integer PRIMARY KEY);\n",
            ),
            (
                "20200101000000000000_users.sqlite3.down.sql",
                "DROP TABLE users;\n",
            ),
            (
                "20200101000000000000_users.mysql.up.sql",
                "CREATE TABLE users (id int AUTO_INCREMENT PRIMARY KEY);\n",
            ),
            (
                "20200101000000000000_users.mysql.down.sql",
                "DROP TABLE users;\n",
            ),
            (
                "20200101000000000001_users.sqlite3.up.sql",
                "CREATE INDEX users_id ON users (id);\n",
            ),
            (
                "20200101000000000001_users.sqlite3.down.sql",
                "DROP INDEX users_id;\n",
            ),
            // No dialect: every dialect; an empty down undoes nothing.
            (
                "20200202000000000000_notes.up.sql",
                "CREATE TABLE notes (id integer PRIMARY KEY, body text);\n",
            ),
            ("20200202000000000000_notes.down.sql", "DROP TABLE notes;\n"),
            (
                "20200303000000000000_seed.up.sql",
                "INSERT INTO notes VALUES (1, 'hello');\n",
            ),
            ("20200303000000000000_seed.down.sql", ""),
        ],
        &["0001_users.sql", "0002_notes.sql", "0003_seed.sql"],
    );
    let users = change(&project, "0001_users.sql");
    assert!(
        users.contains("-- ripcord:deploy\nCREATE TABLE users (id integer PRIMARY KEY);\nCREATE INDEX users_id ON users (id);\n"),
        "ups in file order: {users}"
    );
    assert!(
        users.contains("-- ripcord:revert\nDROP INDEX users_id;\nDROP TABLE users;\n"),
        "downs in reverse: {users}"
    );
    assert!(
        !users.contains("AUTO_INCREMENT"),
        "another dialect's file was left out"
    );
    assert!(!change(&project, "0003_seed.sql").contains("-- ripcord:revert"));

    let other = Project::sqlite();
    let source = tempfile::tempdir().unwrap();
    write(
        source.path(),
        &[(
            "20200101000000_users.up.fizz",
            "create_table(\"users\") {}\n",
        )],
    );
    let refused = run(
        &other,
        &[
            "import",
            "--from",
            "pop",
            &source.path().display().to_string(),
        ],
    );
    expect_exit(&refused, 2);
    assert!(stderr(&refused).contains("20200101000000_users.up.fizz is a fizz migration"));
}

#[test]
fn a_hundred_and_twenty_pop_migrations_import_deploy_and_drill_on_postgres() {
    let (project, _db) = Db::postgres_project();
    let source = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, String)> = Vec::new();
    for i in 0..120u64 {
        let stamp = 20200101000000u64 + i * 100;
        let name = format!("step_{i}");
        // Every third migration has two parts; each has a mysql twin to leave out.
        files.push((
            format!("{stamp}000000_{name}.postgres.up.sql"),
            format!("CREATE TABLE t{i} (id bigserial PRIMARY KEY, v text NOT NULL DEFAULT 'x');\n"),
        ));
        files.push((
            format!("{stamp}000000_{name}.postgres.down.sql"),
            format!("DROP TABLE t{i};\n"),
        ));
        files.push((
            format!("{stamp}000000_{name}.mysql.up.sql"),
            "SELECT 1;\n".into(),
        ));
        if i % 3 == 0 {
            files.push((
                format!("{stamp}000001_{name}.postgres.up.sql"),
                format!("INSERT INTO t{i} (v) SELECT 'row ' || g FROM generate_series(1, 5) g;\n"),
            ));
            files.push((
                format!("{stamp}000001_{name}.postgres.down.sql"),
                format!("DELETE FROM t{i};\n"),
            ));
        }
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    write(source.path(), &refs);
    let out = ok(
        &project,
        &[
            "import",
            "--from",
            "pop",
            "--dialect",
            "postgres",
            &source.path().display().to_string(),
        ],
    );
    assert!(out.contains("Imported 120 changes"), "{out}");
    let drill = run(&project, &["drill"]);
    expect_exit(&drill, 0);
    let text = stdout(&drill);
    assert!(
        text.contains("Drill passed: 120 changes came back exactly"),
        "{text}"
    );
    assert_eq!(
        text.matches("pass 0").count(),
        120,
        "a verdict per change: {text}"
    );
    ok(&project, &["deploy"]);
    ok(&project, &["revert", "--all", "--yes"]);
}
