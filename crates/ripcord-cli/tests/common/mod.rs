//! Helpers for tests that run the real `ripcord` binary against real databases.
#![allow(dead_code)]

/// Define each listed test function (taking `(Project, Db)`) once per engine.
#[allow(unused_macros)] // not every test file runs on both engines
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Db::sqlite_project()); })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(super::Db::postgres_project()); })*
        }
    };
}

/// Define each listed capture test (taking `(Project, Db)`) once per engine and
/// capture mode: SQLite, PostgreSQL with triggers, PostgreSQL with logical decoding.
#[allow(unused_macros)]
macro_rules! on_every_capture_mode {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Db::sqlite_project()); })*
        }
        on_both_postgres_capture_modes!($($name),*);
    };
}

/// Define each listed test once per PostgreSQL capture mode (trigger, logical).
#[allow(unused_macros)]
macro_rules! on_both_postgres_capture_modes {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[test] fn $name() { super::$name(super::Db::postgres_project()); })*
        }
        mod postgres_logical {
            $(#[test] fn $name() { super::$name(super::Db::postgres_logical_project()); })*
        }
    };
}

use std::path::Path;
use std::process::{Command, Output};

pub use ripcord_testkit::{Project, pg};

/// A database under test, with a way to look inside it.
pub enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(ripcord_testkit::TestDatabase),
}

impl Db {
    /// A new project on a fresh SQLite file.
    pub fn sqlite_project() -> (Project, Db) {
        let project = Project::sqlite();
        let db = Db::Sqlite(project.sqlite_path());
        (project, db)
    }

    /// A new project on a fresh PostgreSQL database.
    pub fn postgres_project() -> (Project, Db) {
        let database = pg().create_database();
        let project = Project::new(&database.url);
        (project, Db::Postgres(database))
    }

    /// A new project on a fresh database of a `wal_level = logical` server, whose
    /// ripcord.toml says `[capture] mode = "logical"`: `capture enable` captures through
    /// logical decoding.
    pub fn postgres_logical_project() -> (Project, Db) {
        let database = ripcord_testkit::pg_logical().create_database();
        let project = Project::new(&database.url);
        let config = std::fs::read_to_string(project.path().join("ripcord.toml")).unwrap();
        project.write_config(&format!("{config}\n[capture]\nmode = \"logical\"\n"));
        (project, Db::Postgres(database))
    }

    /// Whether this project captures through logical decoding.
    pub fn is_logical(project: &Project) -> bool {
        std::fs::read_to_string(project.path().join("ripcord.toml"))
            .unwrap()
            .contains("mode = \"logical\"")
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// First column of the first row of `sql`, as text (NULL → "NULL").
    pub fn scalar(&self, sql: &str) -> String {
        match self {
            Db::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row(sql, [], |r| {
                    let v: rusqlite::types::Value = r.get(0)?;
                    Ok(match v {
                        rusqlite::types::Value::Null => "NULL".to_string(),
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Real(f) => f.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        rusqlite::types::Value::Blob(_) => "<blob>".to_string(),
                    })
                })
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Db::Postgres(db) => {
                let mut client = db.connect();
                let row = client
                    .query_one(&format!("SELECT ({sql})::text"), &[])
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                row.get::<_, Option<String>>(0)
                    .unwrap_or_else(|| "NULL".into())
            }
        }
    }

    /// Run statements directly (test set-up and tampering).
    pub fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Db::Postgres(db) => db.connect().batch_execute(sql).unwrap(),
        }
    }

    /// Does table `name` exist?
    pub fn has_table(&self, name: &str) -> bool {
        let sql = match self {
            Db::Sqlite(_) => format!(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{name}'"
            ),
            Db::Postgres(_) => format!(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = '{name}'"
            ),
        };
        self.scalar(&sql) == "1"
    }

    /// Does column `table.column` exist?
    pub fn has_column(&self, table: &str, column: &str) -> bool {
        let sql = match self {
            Db::Sqlite(_) => {
                format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = '{column}'")
            }
            Db::Postgres(_) => format!(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = '{table}' AND column_name = '{column}'"
            ),
        };
        self.scalar(&sql) == "1"
    }

    /// Name of the ledger table `name` for this engine.
    pub fn ledger(&self, name: &str) -> String {
        match self {
            Db::Sqlite(_) => format!("ripcord_{name}"),
            Db::Postgres(_) => format!("ripcord.{name}"),
        }
    }
}

/// The binary with a pinned, clean environment, working in `dir`.
pub fn ripcord_in(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ripcord"));
    command
        .current_dir(dir)
        .env("RIPCORD_ACTOR", "tester")
        .env("RIPCORD_HOST", "testhost")
        .env("NO_COLOR", "1")
        .env_remove("RIPCORD_URL")
        .env_remove("DATABASE_URL")
        .env_remove("RIPCORD_FAILPOINT");
    command
}

/// Run `ripcord ARGS` in the project.
pub fn run(project: &Project, args: &[&str]) -> Output {
    ripcord_in(project.path())
        .args(args)
        .output()
        .expect("run ripcord")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Assert the exit code, showing the output when it differs.
#[track_caller]
pub fn expect_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
        stdout(output),
        stderr(output)
    );
}

/// Run and expect success.
#[track_caller]
pub fn ok(project: &Project, args: &[&str]) -> String {
    let output = run(project, args);
    expect_exit(&output, 0);
    stdout(&output)
}

/// A project with three honest changes: users, orders (requires users), a column.
pub fn three_changes(project: &Project) {
    project.change(
        "0001_users",
        "-- ripcord:deploy\nCREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL);\n\
         -- ripcord:revert\nDROP TABLE users;\n-- ripcord:verify\nSELECT id, email FROM users WHERE 1 = 0;\n",
    );
    project.change(
        "0002_orders",
        "-- requires: 0001_users\n-- ripcord:deploy\n\
         CREATE TABLE orders (id integer PRIMARY KEY, user_id integer NOT NULL REFERENCES users (id), total integer NOT NULL);\n\
         CREATE INDEX orders_user_idx ON orders (user_id);\n\
         -- ripcord:revert\nDROP INDEX orders_user_idx;\nDROP TABLE orders;\n\
         -- ripcord:verify\nSELECT id, user_id, total FROM orders WHERE 1 = 0;\n",
    );
    project.change(
        "0003_coupon",
        "-- requires: 0002_orders\n-- ripcord:deploy\nALTER TABLE orders ADD COLUMN coupon text;\n\
         -- ripcord:revert\nALTER TABLE orders DROP COLUMN coupon;\n-- ripcord:verify\nSELECT coupon FROM orders WHERE 1 = 0;\n",
    );
}

/// insta filters for times, durations and temporary paths.
pub fn filters() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}( UTC)?", "[TIME]");
    settings.add_filter(r"\(\d+ ms\)", "([N] ms)");
    settings.add_filter(r"in \d+ ms", "in [N] ms");
    settings.add_filter(r"  \d+ ms", "  [N] ms");
    settings.add_filter(r"sqlite://[^\s)]+", "sqlite://[DB]");
    settings
}
