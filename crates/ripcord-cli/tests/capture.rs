//! Capture, batch revert and flashback through the binary on PostgreSQL and SQLite:
//! the exact final table is asserted in every case.

#[macro_use]
mod common;

use common::*;

fn setup_on((project, db): (Project, Db)) -> (Project, Db) {
    db.exec(
        "CREATE TABLE acct (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL DEFAULT 0);
         INSERT INTO acct VALUES (1, 'ada', 10), (2, 'bob', 20), (3, 'cy', 30), (4, 'dee', 40);",
    );
    ok(&project, &["capture", "enable", "acct"]);
    (project, db)
}

fn setup() -> (Project, Db) {
    setup_on(Db::postgres_project())
}

/// `acct` as the engine names it in reports.
fn acct(db: &Db) -> &'static str {
    if db.is_postgres() {
        "public.acct"
    } else {
        "acct"
    }
}

/// Run SQL as batch `tag` (what a loader does with PGOPTIONS, or `batch run` on SQLite).
fn as_batch(db: &Db, tag: &str, sql: &str) {
    match db {
        Db::Postgres(_) => db.exec(&format!("SET ripcord.batch = '{tag}'; {sql}; RESET ripcord.batch;")),
        Db::Sqlite(_) => db.exec(&format!(
            "INSERT OR REPLACE INTO ripcord_capture_context VALUES (1, '{tag}'); {sql}; DELETE FROM ripcord_capture_context;"
        )),
    }
}

fn table(db: &Db) -> String {
    match db {
        Db::Postgres(_) => db.scalar(
            "SELECT string_agg(id || ':' || owner || ':' || balance, ' ' ORDER BY id) FROM acct",
        ),
        Db::Sqlite(_) => db.scalar(
            "SELECT group_concat(id || ':' || owner || ':' || balance, ' ' ORDER BY id) FROM acct",
        ),
    }
}

fn now(db: &Db) -> String {
    match db {
        Db::Postgres(_) => db.scalar("SELECT clock_timestamp()::text"),
        Db::Sqlite(_) => db.scalar("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"),
    }
}

fn batch_a(db: &Db) {
    as_batch(
        db,
        "A",
        "INSERT INTO acct VALUES (5, 'eve', 50); UPDATE acct SET balance = balance + 1 WHERE id IN (1, 2); DELETE FROM acct WHERE id = 3",
    );
}

fn batch_revert_undoes_one_batch_and_keeps_a_later_one(engine: (Project, Db)) {
    let (project, db) = setup_on(engine);
    batch_a(&db);
    as_batch(
        &db,
        "B",
        "UPDATE acct SET balance = 99 WHERE id = 4; INSERT INTO acct VALUES (6, 'fay', 60)",
    );
    let list = ok(&project, &["batch", "list"]);
    assert!(list.contains("A  +1 ~2 -1"), "{list}");
    let reverted = run(&project, &["batch", "revert", "A"]);
    expect_exit(&reverted, 0);
    let out = stdout(&reverted);
    assert!(
        out.contains("1 deleted, 2 restored, 1 re-inserted"),
        "{out}"
    );
    // Progress of each step goes to stderr, as JSON lines when it is not a terminal.
    let steps: Vec<serde_json::Value> = stderr(&reverted)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no {name} step in {steps:?}"))["rows"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(
        (
            step("collected"),
            step("checked"),
            step("deleted"),
            step("restored")
        ),
        (4, 0, 1, 3)
    );
    assert!(
        steps
            .iter()
            .all(|s| s["table"] == acct(&db) && s["seconds"].is_number())
    );
    assert_eq!(table(&db), "1:ada:10 2:bob:20 3:cy:30 4:dee:99 6:fay:60");
    // The revert is itself a batch: undoing it brings A back.
    ok(&project, &["batch", "revert", "revert-of-A"]);
    assert_eq!(table(&db), "1:ada:11 2:bob:21 4:dee:99 5:eve:50 6:fay:60");
    let events = db.scalar(&format!(
        "SELECT count(*) FROM {} WHERE kind = 'batch_reverted'",
        db.ledger("events")
    ));
    assert_eq!(events, "2");
}

fn conflicts_abort_skip_and_force(engine: (Project, Db)) {
    let (project, db) = setup_on(engine);
    batch_a(&db);
    as_batch(
        &db,
        "C",
        "UPDATE acct SET balance = 7 WHERE id = 2; UPDATE acct SET owner = 'EVE' WHERE id = 5",
    );
    let before = table(&db);

    let out = run(&project, &["batch", "revert", "A"]);
    expect_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{} key (2) changed by C", acct(&db))),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} key (5) changed by C", acct(&db))),
        "{text}"
    );
    assert_eq!(table(&db), before, "abort changes nothing");

    let out = ok(
        &project,
        &["batch", "revert", "A", "--on-conflict", "skip", "--dry-run"],
    );
    assert!(out.contains("2 skipped"), "{out}");
    assert_eq!(table(&db), before, "dry run changes nothing");

    ok(&project, &["batch", "revert", "A", "--on-conflict", "skip"]);
    assert_eq!(table(&db), "1:ada:10 2:bob:7 3:cy:30 4:dee:40 5:EVE:50");

    ok(&project, &["batch", "revert", "revert-of-A"]);
    assert_eq!(
        table(&db),
        before,
        "undoing the skip-revert restores the state before it"
    );

    ok(
        &project,
        &["batch", "revert", "A", "--on-conflict", "force"],
    );
    assert_eq!(table(&db), "1:ada:10 2:bob:20 3:cy:30 4:dee:40");
}

fn flashback_returns_the_table_to_a_moment(engine: (Project, Db)) {
    let (project, db) = setup_on(engine);
    batch_a(&db);
    let moment = now(&db);
    let copy = table(&db);
    std::thread::sleep(std::time::Duration::from_millis(20));
    as_batch(
        &db,
        "B",
        "UPDATE acct SET balance = 0; DELETE FROM acct WHERE id = 1; INSERT INTO acct VALUES (9, 'zed', 1)",
    );
    as_batch(
        &db,
        "C",
        "UPDATE acct SET owner = upper(owner) WHERE id > 3",
    );
    let out = ok(
        &project,
        &["flashback", "acct", "--to", &moment, "--dry-run"],
    );
    assert!(out.contains("Dry run"), "{out}");
    ok(&project, &["flashback", "acct", "--to", &moment]);
    assert_eq!(table(&db), copy);

    let out = run(&project, &["flashback", "acct", "--to", "2000-01-01"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("its captured history starts at"),
        "{}",
        stderr(&out)
    );
}

fn capture_survives_added_and_dropped_columns(engine: (Project, Db)) {
    let (project, db) = setup_on(engine);
    as_batch(
        &db,
        "A",
        "UPDATE acct SET balance = balance * 2; DELETE FROM acct WHERE id = 4",
    );
    db.exec(
        "ALTER TABLE acct ADD COLUMN note text DEFAULT 'n'; ALTER TABLE acct DROP COLUMN owner",
    );
    as_batch(
        &db,
        "B",
        "UPDATE acct SET note = 'changed' WHERE id = 1; DELETE FROM acct WHERE id = 2",
    );
    ok(&project, &["batch", "revert", "B"]);
    assert_eq!(
        db.scalar(
            "SELECT string_agg(id || ':' || balance || ':' || note, ' ' ORDER BY id) FROM acct"
        ),
        "1:20:n 2:40:n 3:60:n"
    );
    // Reverting B touched rows 1 and 2 after A did: a conflict by the log; force it.
    let out = run(&project, &["batch", "revert", "A"]);
    expect_exit(&out, 1);
    ok(
        &project,
        &["batch", "revert", "A", "--on-conflict", "force"],
    );
    // Rows of A were captured before `note` existed and while `owner` did: they come back
    // with their old balance; the added column keeps its value, and a re-inserted row
    // gets the column's default.
    assert_eq!(
        db.scalar("SELECT string_agg(id || ':' || balance || ':' || coalesce(note, '∅'), ' ' ORDER BY id) FROM acct"),
        "1:10:n 2:20:n 3:30:n 4:40:n"
    );
}

fn tables_without_a_key_are_refused_and_unknown_batches_are_named(engine: (Project, Db)) {
    let (project, db) = setup_on(engine);
    db.exec("CREATE TABLE nokey (a int, b text)");
    let out = run(&project, &["capture", "enable", "nokey"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("`public.nokey` has no primary key"),
        "{}",
        stderr(&out)
    );
    let out = run(&project, &["batch", "revert", "never"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("no captured changes are tagged `never`"),
        "{}",
        stderr(&out)
    );
}

fn batch_run_tags_a_loaders_writes(engine: (Project, Db)) {
    let (project, db) = setup_on(engine);
    let url = match &db {
        Db::Postgres(t) => t.url.clone(),
        Db::Sqlite(_) => unreachable!(),
    };
    let out = ripcord_in(project.path())
        .args([
            "batch",
            "run",
            "--name",
            "nightly",
            "--",
            "psql",
            "-q",
            &url,
            "-c",
            "UPDATE acct SET balance = 0 WHERE id = 1",
        ])
        .output()
        .unwrap();
    expect_exit(&out, 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM ripcord.capture_statements WHERE batch = 'nightly'"),
        "1"
    );
    ok(&project, &["batch", "revert", "nightly"]);
    assert_eq!(table(&db), "1:ada:10 2:bob:20 3:cy:30 4:dee:40");
}

fn capture_status_and_prune(engine: (Project, Db)) {
    let (project, db) = setup_on(engine);
    batch_a(&db);
    let status = ok(&project, &["capture", "status"]);
    assert!(
        status.contains(&format!("{}  key (id)  4 log rows", acct(&db))),
        "{status}"
    );
    ok(&project, &["capture", "prune", "--before", "2999-01-01"]);
    let status = ok(&project, &["capture", "status"]);
    assert!(status.contains("0 log rows"), "{status}");
    let out = run(&project, &["batch", "revert", "A"]);
    expect_exit(&out, 2);
}

on_every_capture_mode!(
    batch_revert_undoes_one_batch_and_keeps_a_later_one,
    conflicts_abort_skip_and_force,
    flashback_returns_the_table_to_a_moment,
    capture_status_and_prune,
);

mod both_postgres_modes {
    use super::*;
    on_both_postgres_capture_modes!(
        capture_survives_added_and_dropped_columns,
        tables_without_a_key_are_refused_and_unknown_batches_are_named,
        batch_run_tags_a_loaders_writes,
        capture_continues_on_a_table_a_snapshot_restore_swapped_in,
        awkward_values_and_key_changes_come_back_exactly,
    );
}

#[test]
fn sqlite_capture_survives_an_added_column_and_batch_run_tags_writes() {
    let (project, db) = setup_on(Db::sqlite_project());
    as_batch(
        &db,
        "A",
        "UPDATE acct SET balance = balance * 2; DELETE FROM acct WHERE id = 4",
    );
    db.exec("ALTER TABLE acct ADD COLUMN note text DEFAULT 'n'");
    // SQLite triggers name their columns: enabling again brings `note` into old images.
    ok(&project, &["capture", "enable", "acct"]);
    let loader = "import sqlite3; c = sqlite3.connect('test.db'); c.execute(\"UPDATE acct SET note = 'loaded' WHERE id = 1\"); c.commit()";
    let out = ripcord_in(project.path())
        .args([
            "batch", "run", "--name", "py-load", "--", "python3", "-c", loader,
        ])
        .output()
        .unwrap();
    expect_exit(&out, 0);
    assert!(ok(&project, &["batch", "list"]).contains("py-load"));
    ok(&project, &["batch", "revert", "py-load"]);
    // py-load (and its revert) touched row 1 after A: a conflict by the log; force it.
    expect_exit(&run(&project, &["batch", "revert", "A"]), 1);
    ok(
        &project,
        &["batch", "revert", "A", "--on-conflict", "force"],
    );
    assert_eq!(
        db.scalar(
            "SELECT group_concat(id || ':' || balance || ':' || note, ' ' ORDER BY id) FROM acct"
        ),
        "1:10:n 2:20:n 3:30:n 4:40:n"
    );
}

#[test]
fn configured_tables_are_captured_once_a_deploy_creates_them() {
    let (project, db) = Db::postgres_project();
    let url = match &db {
        Db::Postgres(t) => t.url.clone(),
        Db::Sqlite(_) => unreachable!(),
    };
    project.write_config(&format!(
        "[project]\ndefault_target = \"test\"\n\n[targets.test]\nurl = \"{url}\"\n\n[capture]\ntables = [\"public.ledger\", \"public.later\"]\n"
    ));
    project.simple_change(
        "0001_ledger",
        "CREATE TABLE ledger (id int PRIMARY KEY, amount int NOT NULL);",
        "DROP TABLE ledger;",
        "",
    );
    let out = ok(&project, &["deploy"]);
    assert!(out.contains("capture public.ledger: enabled"), "{out}");
    assert!(
        out.contains("capture public.later: skipped: no table `public.later`"),
        "{out}"
    );
    as_batch(&db, "L", "INSERT INTO ledger VALUES (1, 5)");
    ok(&project, &["batch", "revert", "L"]);
    assert_eq!(db.scalar("SELECT count(*) FROM ledger"), "0");
    // A second deploy leaves capture as it is.
    let out = ok(&project, &["deploy"]);
    assert!(!out.contains("capture public.ledger"), "{out}");
}

/// Inserts logged a row per key (statements whose keys are too large for one array, and
/// captures installed by older versions) and as arrays revert alike, in one batch.
#[test]
fn inserts_logged_as_rows_or_as_arrays_revert_alike() {
    let (project, db) = setup();
    as_batch(
        &db,
        "L",
        "INSERT INTO acct SELECT g, 'arr' || g, g FROM generate_series(10, 14) g;
         SET ripcord.key_array_max_bytes = 0;
         INSERT INTO acct SELECT g, 'row' || g, g FROM generate_series(20, 22) g;
         RESET ripcord.key_array_max_bytes",
    );
    let oid = db.scalar("SELECT 'acct'::regclass::oid::text");
    assert_eq!(
        db.scalar(&format!(
            "SELECT (SELECT sum(cardinality(k0)) FROM ripcord.capture_keys_{oid}) || '+' || (SELECT count(*) FROM ripcord.capture_log_{oid} WHERE op = 'I')"
        )),
        "5+3"
    );
    let status = ok(&project, &["capture", "status"]);
    assert!(status.contains("8 log rows"), "{status}");
    ok(&project, &["batch", "revert", "L"]);
    assert_eq!(table(&db), "1:ada:10 2:bob:20 3:cy:30 4:dee:40");
}

/// A table captured by a version without key arrays gets them on `capture enable`,
/// keeping its history.
#[test]
fn enable_again_brings_an_older_capture_up_to_date() {
    let (project, db) = setup();
    // What an older version wrote: inserted keys as rows of the log, no key arrays.
    db.exec(
        "SET ripcord.key_array_max_bytes = 0; SET ripcord.batch = 'A';
         INSERT INTO acct VALUES (5, 'eve', 50); UPDATE acct SET balance = balance + 1 WHERE id IN (1, 2); DELETE FROM acct WHERE id = 3",
    );
    let oid = db.scalar("SELECT 'acct'::regclass::oid::text");
    db.exec(&format!("DROP TABLE ripcord.capture_keys_{oid}"));
    ok(&project, &["capture", "enable", "acct"]);
    as_batch(&db, "B", "INSERT INTO acct VALUES (6, 'fay', 60)");
    ok(&project, &["batch", "revert", "B"]);
    ok(&project, &["batch", "revert", "A"]);
    assert_eq!(table(&db), "1:ada:10 2:bob:20 3:cy:30 4:dee:40");
}

/// Loads whose keys are all in the key arrays are found from the arrays alone (the
/// undo does not read the log for them), as the scope and as a later change.
#[test]
fn loads_held_in_key_arrays_conflict_and_revert() {
    let (project, db) = setup();
    as_batch(&db, "D", "DELETE FROM acct WHERE id = 3");
    as_batch(&db, "R", "INSERT INTO acct VALUES (3, 'cyd', 33)");
    // The only later change is a load: found in its key array.
    let out = run(&project, &["batch", "revert", "D"]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains("public.acct key (3) changed by R"),
        "{}",
        stdout(&out)
    );
    as_batch(
        &db,
        "L",
        "INSERT INTO acct SELECT g, 'n' || g, g FROM generate_series(10, 12) g",
    );
    as_batch(&db, "U", "UPDATE acct SET balance = 0 WHERE id = 11");
    let before = table(&db);

    let out = run(&project, &["batch", "revert", "L"]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains("public.acct key (11) changed by U"),
        "{}",
        stdout(&out)
    );
    assert_eq!(table(&db), before, "abort changes nothing");

    ok(&project, &["batch", "revert", "L", "--on-conflict", "skip"]);
    assert_eq!(table(&db), "1:ada:10 2:bob:20 3:cyd:33 4:dee:40 11:n11:0");
    ok(&project, &["batch", "revert", "R"]);
    // R and its revert still changed key 3 after D: restoring it takes force.
    ok(
        &project,
        &["batch", "revert", "D", "--on-conflict", "force"],
    );
    assert_eq!(table(&db), "1:ada:10 2:bob:20 3:cy:30 4:dee:40 11:n11:0");
}

/// A snapshot restore swaps a new table in; capture must follow it, or a later bad
/// batch could not be undone (and writes to the replaced table in the vault must not
/// land in the log).
fn capture_continues_on_a_table_a_snapshot_restore_swapped_in(engine: (Project, Db)) {
    let (project, db) = setup_on(engine);
    let logical = Db::is_logical(&project);
    let before = table(&db);
    let snapshot = ok(
        &project,
        &["snapshot", "create", "--tables", "acct", "--json"],
    );
    let id = serde_json::from_str::<serde_json::Value>(&snapshot).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    batch_a(&db);
    let restored = ok(&project, &["snapshot", "restore", &id]);
    assert!(
        restored.contains("Capture continues on the restored tables: public.acct"),
        "{restored}"
    );
    assert_eq!(table(&db), before);
    assert_eq!(
        db.scalar(
            "SELECT count(*)::text FROM pg_trigger WHERE tgrelid = 'acct'::regclass AND tgname LIKE 'ripcord_capture%'"
        ),
        if logical { "2" } else { "5" }
    );
    if logical {
        assert_eq!(
            db.scalar(
                "SELECT (SELECT relreplident::text FROM pg_class WHERE oid = 'acct'::regclass) || ':' ||
                        (SELECT string_agg(tablename, ',') FROM pg_publication_tables WHERE pubname = 'ripcord_capture')"
            ),
            "f:acct",
            "the swapped-in table is published with its full old rows, the replaced one no longer"
        );
    }
    let vault = db.scalar("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ripcord_vault_%'");
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*)::text FROM pg_trigger WHERE tgrelid = '{vault}.acct'::regclass AND tgname LIKE 'ripcord_capture%'"
        )),
        "0",
        "the replaced table no longer writes into the log"
    );
    // A bad batch after the restore is captured and undone exactly.
    as_batch(
        &db,
        "B",
        "UPDATE acct SET owner = 'mallory' WHERE id <= 2; DELETE FROM acct WHERE id = 4",
    );
    ok(&project, &["batch", "revert", "B"]);
    assert_eq!(table(&db), before);
}

/// Every value as PostgreSQL prints it, row by row: what "exactly as before" means.
fn awkward_rows(db: &Db) -> String {
    db.scalar("SELECT md5(string_agg(w::text, E'\\n' ORDER BY id, code)) || ':' || count(*) FROM awkward w")
}

fn awkward_values_and_key_changes_come_back_exactly(engine: (Project, Db)) {
    let (project, db) = setup_on(engine);
    db.exec(
        r#"CREATE TABLE awkward (
              id int, code text, f float8, n numeric(12,4), b bytea, t text, j jsonb,
              a int[], ts timestamptz, big text,
              PRIMARY KEY (id, code));
          INSERT INTO awkward VALUES
              (1, 'a', 'NaN', 1.5000, '\x00ff', E'tab\there\nnew\\line', '{"k": [1, null]}', '{1,NULL}', 'infinity', NULL),
              (2, 'b ', '-0', NULL, '\x', '', 'null', '{}', '2026-01-01 00:00:00.123456+00', NULL),
              (3, 'C', 'Infinity', -0.0001, NULL, NULL, NULL, NULL, NULL,
                  (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 4000) g));"#,
    );
    ok(&project, &["capture", "enable", "awkward"]);
    let before = awkward_rows(&db);
    as_batch(
        &db,
        "bad",
        r#"UPDATE awkward SET f = 1, n = 2, b = '\x01', t = 'x', j = '[]', a = '{9}', ts = now(), big = 'small';
          UPDATE awkward SET id = id + 10, code = upper(code) WHERE id = 1;
          DELETE FROM awkward WHERE id = 3;
          INSERT INTO awkward (id, code) VALUES (4, 'd'), (5, E'q"u\\o,t{e} '), (6, 'NULL'), (7, ''), (8, E'\t x'), (9, 'é✓')"#,
    );
    assert_ne!(awkward_rows(&db), before);
    ok(&project, &["batch", "revert", "bad"]);
    assert_eq!(
        awkward_rows(&db),
        before,
        "NaN, -0, Infinity, numeric scale, bytea, tabs and backslashes, '' vs NULL, a changed key and a TOASTed value are back as they were, and keys with quotes, braces, commas, 'NULL' and '' inserted by the batch are gone"
    );
}

#[test]
fn logical_mode_reports_retained_wal_and_disable_drops_its_slot() {
    let (project, db) = setup_on(Db::postgres_logical_project());
    let slots = "SELECT count(*)::text FROM pg_replication_slots WHERE database = current_database() AND slot_type = 'logical'";
    assert_eq!(db.scalar(slots), "1");
    batch_a(&db);
    let status = ok(&project, &["capture", "status"]);
    assert!(
        status.contains("logical mode; the replication slot retains"),
        "{status}"
    );
    assert!(status.contains("4 log rows"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&project, &["capture", "status", "--json"])).unwrap();
    assert_eq!(json[0]["mode"], "logical");
    assert!(
        json[0]["retained_wal_bytes"].as_i64().unwrap() >= 0,
        "{json}"
    );
    // A bound below what the slot retains is warned about.
    let config = std::fs::read_to_string(project.path().join("ripcord.toml")).unwrap();
    project.write_config(&format!("{config}max_retained_wal = \"0kB\"\n"));
    db.exec("INSERT INTO acct SELECT g, 'x', 0 FROM generate_series(100, 2000) g");
    let out = run(&project, &["capture", "status"]);
    expect_exit(&out, 0);
    assert!(
        stderr(&out).contains("above [capture] max_retained_wal"),
        "{}",
        stderr(&out)
    );
    project.write_config(&config);

    // Syncing again writes nothing twice: the batch revert synced inside its own
    // transaction and left the slot behind for the next sync, which decodes those
    // transactions again and skips them; the revert's own writes arrive once.
    let of = |batch: &str| {
        db.scalar(&format!(
            "SELECT count(*)::text || '/' || coalesce(sum(rows), 0)::text FROM ripcord.capture_statements WHERE batch = '{batch}'"
        ))
    };
    let a = of("A");
    assert_eq!(a, "3/4");
    ok(&project, &["batch", "revert", "A"]);
    let out = ok(&project, &["capture", "sync", "--json"]);
    let synced: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(synced["rows"], 4, "{out}");
    ok(&project, &["capture", "sync"]);
    assert_eq!((of("A"), of("revert-of-A")), (a, "3/4".to_string()));

    ok(&project, &["capture", "disable", "acct"]);
    assert_eq!(
        db.scalar(slots),
        "0",
        "the slot is dropped with the last logical table"
    );
    assert_eq!(
        db.scalar(
            "SELECT relreplident::text || ':' || (SELECT count(*) FROM pg_publication)::text FROM pg_class WHERE oid = 'acct'::regclass"
        ),
        "d:0",
        "replica identity back to what it was, publication gone"
    );
    // History stays: the batch is still listed and the table can be captured again.
    let list = ok(&project, &["batch", "list"]);
    assert!(list.contains("revert-of-A"), "{list}");
    let out = ok(
        &project,
        &["capture", "enable", "acct", "--mode", "trigger"],
    );
    assert!(out.contains("trigger mode"), "{out}");
}

#[test]
fn logical_mode_needs_wal_level_logical_and_one_mode_at_a_time() {
    let (project, db) = setup();
    db.exec("CREATE TABLE other (id int PRIMARY KEY)");
    let out = run(
        &project,
        &["capture", "enable", "other", "--mode", "logical"],
    );
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("wal_level = logical"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM pg_trigger WHERE tgrelid = 'other'::regclass"),
        "0",
        "nothing installed"
    );
    let out = run(
        &project,
        &["capture", "enable", "acct", "--mode", "logical"],
    );
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("already captured in trigger mode"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sqlite_refuses_logical_mode() {
    let (project, _db) = setup_on(Db::sqlite_project());
    let out = run(
        &project,
        &["capture", "enable", "acct", "--mode", "logical"],
    );
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("SQLite has no logical decoding"),
        "{}",
        stderr(&out)
    );
}

/// `capture sync` killed (SIGKILL) at different moments of a sync that spans several
/// rounds, then run again: every batch is in the log exactly once, and a batch revert
/// afterwards brings the table back exactly.
#[test]
fn logical_sync_killed_mid_way_converges_when_run_again() {
    let (project, db) = setup_on(Db::postgres_logical_project());
    // Three loads of 120,000 rows each: 360,000 decoded changes, two rounds and more.
    for (batch, from) in [("L1", 1_000), ("L2", 200_000), ("L3", 400_000)] {
        db.exec(&format!(
            "SET ripcord.batch = '{batch}'; INSERT INTO acct SELECT g, 'load', g FROM generate_series({from}, {from} + 119999) g; RESET ripcord.batch;"
        ));
    }
    let logged = |batch: &str| {
        db.scalar(&format!(
            "SELECT count(*)::text || '/' || coalesce(sum(rows), 0)::text FROM ripcord.capture_statements WHERE batch = '{batch}'"
        ))
    };
    for delay_ms in [150, 600, 1500] {
        let mut child = ripcord_in(project.path())
            .args(["capture", "sync"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Never a batch half in the log, and never twice.
        for batch in ["L1", "L2", "L3"] {
            let seen = logged(batch);
            assert!(
                seen == "0/0" || seen == "1/120000",
                "after a kill at {delay_ms} ms, {batch} is logged as {seen}"
            );
        }
    }
    ok(&project, &["capture", "sync"]);
    ok(&project, &["capture", "sync"]);
    for batch in ["L1", "L2", "L3"] {
        assert_eq!(logged(batch), "1/120000", "{batch}");
    }
    ok(&project, &["batch", "revert", "L2"]);
    assert_eq!(
        db.scalar("SELECT count(*)::text || ':' || sum(balance)::text FROM acct"),
        db.scalar(
            "SELECT (4 + 240000)::text || ':' || (100 + (SELECT sum(g) FROM generate_series(1000, 120999) g) + (SELECT sum(g) FROM generate_series(400000, 519999) g))::text"
        ),
        "L2 undone, L1 and L3 kept"
    );
}
