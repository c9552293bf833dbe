//! Snapshots through the binary: round trips asserted row for row, restores into
//! another database, damage caught and refused, consistency under concurrent writes,
//! kill -9 during create and restore, deploy --snapshot, object storage (S3 protocol
//! against a real moto server) and SQLite.

#[macro_use]
mod common;

use std::path::PathBuf;

use common::*;

/// A content checksum of a table computed in the database: equal means equal rows.
fn checksum(db: &Db, table: &str) -> String {
    match db {
        Db::Postgres(_) => db.scalar(&format!(
            "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-') FROM {table} t"
        )),
        Db::Sqlite(_) => db.scalar(&format!(
            "SELECT count(*) || ':' || coalesce(group_concat(r, '|'), '-') FROM \
             (SELECT quote(id) || ',' || quote(name) || ',' || quote(qty) AS r FROM {table} ORDER BY id)"
        )),
    }
}

/// Tables with every kind of value the issue names, a serial and an identity column,
/// a generated column, a check, a unique key, an index and foreign keys in and out.
fn shop(db: &Db) {
    db.exec(
        "CREATE TABLE parent (
             id bigserial PRIMARY KEY,
             name text NOT NULL UNIQUE,
             price numeric(10,2),
             data bytea,
             doc jsonb,
             tags text[],
             at timestamptz DEFAULT now(),
             total numeric GENERATED ALWAYS AS (price * 2) STORED);
         CREATE TABLE child (
             id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             parent_id bigint REFERENCES parent(id),
             note text CHECK (note <> ''));
         CREATE INDEX child_parent_idx ON child (parent_id);
         CREATE TABLE other (id int PRIMARY KEY, parent_id bigint REFERENCES parent(id));
         INSERT INTO parent (name, price, data, doc, tags, at)
             SELECT 'p' || g, g * 1.5, decode(md5(g::text), 'hex'), jsonb_build_object('g', g, 'x', ARRAY[g]),
                    ARRAY['a', 'b' || g], timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute'
             FROM generate_series(1, 3000) g;
         INSERT INTO parent (name) VALUES ('all nulls');
         INSERT INTO child (parent_id, note) SELECT (g % 100) + 1, 'n' || g FROM generate_series(1, 2000) g;
         INSERT INTO other VALUES (1, 5);",
    );
}

/// Damage the live tables the way a bad load would.
fn bad_load(db: &Db) {
    db.exec(
        "DELETE FROM child WHERE id > 100;
         UPDATE parent SET name = name || '-bad', price = 0 WHERE id < 50;
         INSERT INTO parent (name) VALUES ('bad row');",
    );
}

fn snapshot_ids(project: &Project) -> Vec<String> {
    let out = ok(project, &["snapshot", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn store_dir(project: &Project) -> PathBuf {
    project.path().join(".ripcord/snapshots")
}

fn manifest(project: &Project, id: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(store_dir(project).join(id).join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn create_one(project: &Project, args: &[&str]) -> String {
    let mut all = vec!["snapshot", "create"];
    all.extend_from_slice(args);
    let out = ok(project, &[all, vec!["--json"]].concat());
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    summary["id"].as_str().unwrap().to_string()
}

#[test]
fn postgres_round_trip_restores_every_row_key_sequence_and_foreign_key() {
    let (project, db) = Db::postgres_project();
    shop(&db);
    let before = (checksum(&db, "parent"), checksum(&db, "child"));
    let id = create_one(&project, &["--tables", "parent", "child"]);
    let m = manifest(&project, &id);
    assert_eq!(m["tables"][0]["rows"], 3001);
    assert_eq!(m["tables"][1]["rows"], 2000);
    assert!(
        m["lsn"].as_str().unwrap().contains('/'),
        "the manifest records the snapshot's LSN: {m}"
    );
    let verified = ok(&project, &["snapshot", "verify", &id]);
    assert!(verified.contains("is intact"), "{verified}");

    bad_load(&db);
    assert_ne!(checksum(&db, "parent"), before.0);
    let out = ok(&project, &["snapshot", "restore", &id]);
    assert!(out.contains("swapped in"), "{out}");
    assert!(out.contains("public.other.other_parent_id_fkey"), "{out}");

    assert_eq!((checksum(&db, "parent"), checksum(&db, "child")), before);
    // Generated values are recomputed, sequences continue after the snapshot's values.
    assert_eq!(db.scalar("SELECT total FROM parent WHERE id = 2"), "6.00");
    assert_eq!(db.scalar("SELECT nextval('parent_id_seq')"), "3002");
    db.exec("INSERT INTO child (parent_id, note) VALUES (1, 'after')");
    assert_eq!(db.scalar("SELECT max(id) FROM child"), "2001");
    // Constraints, indexes and foreign keys (in and out) are back and enforced.
    assert_eq!(
        db.scalar(
            "SELECT string_agg(conname || '=' || convalidated, ',' ORDER BY conname) FROM pg_constraint \
             WHERE conrelid IN ('parent'::regclass, 'child'::regclass, 'other'::regclass)"
        ),
        "child_note_check=true,child_parent_id_fkey=true,child_pkey=true,other_parent_id_fkey=true,other_pkey=true,parent_name_key=true,parent_pkey=true"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'child' AND indexname = 'child_parent_idx'"),
        "1"
    );
    for bad in [
        "INSERT INTO other VALUES (2, 999999)",
        "INSERT INTO child (parent_id, note) VALUES (999999, 'x')",
        "INSERT INTO parent (name) VALUES ('p1')",
        "INSERT INTO child (parent_id, note) VALUES (1, '')",
    ] {
        let Db::Postgres(pg) = &db else {
            unreachable!()
        };
        assert!(
            pg.connect().batch_execute(bad).is_err(),
            "{bad} must be refused"
        );
    }
    // The replaced rows are kept in the vault.
    let vault = db.scalar("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ripcord_vault_%'");
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {vault}.parent WHERE name = 'bad row'"
        )),
        "1"
    );
    // No staging schema is left behind, and both operations are in the audit chain.
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ripcord_restore_%'"),
        "0"
    );
    // Pruning everything older than now drops the snapshot and the restore's vault.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let live = checksum(&db, "child");
    let pruned = ok(&project, &["snapshot", "prune", "--older-than", "0s"]);
    assert!(pruned.contains(&vault), "{pruned}");
    assert!(snapshot_ids(&project).is_empty());
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ripcord_vault_%'"),
        "0"
    );
    assert_eq!(
        checksum(&db, "child"),
        live,
        "the live tables are untouched"
    );
    let log = ok(&project, &["audit", "log"]);
    assert!(
        log.contains("snapshot_completed") && log.contains("snapshot_restored"),
        "{log}"
    );
    ok(&project, &["audit", "verify"]);
}

#[test]
fn postgres_restore_into_another_database_and_as_new_tables() {
    let (project, db) = Db::postgres_project();
    shop(&db);
    let before = checksum(&db, "parent");
    let id = create_one(&project, &["--all"]);
    let other = pg().create_database();
    let out = ok(
        &project,
        &["snapshot", "restore", &id, "--into", &other.url],
    );
    assert!(out.contains("public.other"), "{out}");
    let there = Db::Postgres(other);
    assert_eq!(checksum(&there, "parent"), before);
    assert_eq!(
        there.scalar("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated"),
        "2"
    );
    // Restoring into a database that has the tables already is refused, changing nothing.
    let again = run(
        &project,
        &["snapshot", "restore", &id, "--into", &there_url(&there)],
    );
    expect_exit(&again, 2);
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    bad_load(&db);
    let out = ok(
        &project,
        &[
            "snapshot",
            "restore",
            &id,
            "--tables",
            "public.parent",
            "--as-new-tables",
        ],
    );
    let schema = format!("ripcord_restore_{}", id.to_lowercase().replace('-', "_"));
    assert!(out.contains(&schema), "{out}");
    assert_eq!(checksum(&db, &format!("{schema}.parent")), before);
    assert_ne!(
        checksum(&db, "parent"),
        before,
        "the live table is left as it is"
    );
}

fn there_url(db: &Db) -> String {
    match db {
        Db::Postgres(d) => d.url.clone(),
        Db::Sqlite(_) => unreachable!(),
    }
}

#[test]
fn a_flipped_byte_is_named_by_verify_and_refused_by_restore() {
    let (project, db) = Db::postgres_project();
    shop(&db);
    let id = create_one(&project, &["--tables", "parent"]);
    bad_load(&db);
    let live = checksum(&db, "parent");
    let chunk = store_dir(&project).join(&id).join("t000/p000/000000.zst");
    let mut bytes = std::fs::read(&chunk).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&chunk, bytes).unwrap();

    let verify = run(&project, &["snapshot", "verify", &id]);
    expect_exit(&verify, 1);
    assert!(
        stderr(&verify).contains("p000/000000.zst"),
        "{}",
        stderr(&verify)
    );
    let restore = run(&project, &["snapshot", "restore", &id]);
    expect_exit(&restore, 1);
    assert!(stderr(&restore).contains("damaged"), "{}", stderr(&restore));
    assert_eq!(checksum(&db, "parent"), live, "live table untouched");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ripcord\\_%' AND nspname <> 'ripcord'"),
        "0"
    );
    // An edited manifest is caught too.
    let path = store_dir(&project).join(&id).join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"rows\": 3001", "\"rows\": 3000");
    std::fs::write(&path, text).unwrap();
    let verify = run(&project, &["snapshot", "verify", &id]);
    expect_exit(&verify, 1);
    assert!(stderr(&verify).contains("manifest"), "{}", stderr(&verify));
}

#[test]
fn a_snapshot_taken_during_writes_is_one_moment() {
    let (project, db) = Db::postgres_project();
    db.exec(
        "CREATE TABLE a (id bigserial PRIMARY KEY, pad text);
         CREATE TABLE b (id bigserial PRIMARY KEY, pad text);
         INSERT INTO a (pad) SELECT repeat('x', 250) FROM generate_series(1, 150000);
         INSERT INTO b (pad) SELECT repeat('x', 250) FROM generate_series(1, 150000);",
    );
    let Db::Postgres(database) = &db else {
        unreachable!()
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut client = database.connect();
        std::thread::spawn(move || {
            let mut transactions = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // Every transaction adds one row to each table: any moment has equal counts.
                client
                    .batch_execute(
                        "BEGIN; INSERT INTO a (pad) VALUES ('w'); INSERT INTO b (pad) VALUES ('w'); COMMIT;",
                    )
                    .unwrap();
                transactions += 1;
            }
            transactions
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let id = create_one(&project, &["--tables", "a", "b", "--parallel", "2"]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let transactions = writer.join().unwrap();
    assert!(
        transactions > 10,
        "the writer kept writing ({transactions})"
    );
    let m = manifest(&project, &id);
    let (rows_a, rows_b) = (
        m["tables"][0]["rows"].as_u64().unwrap(),
        m["tables"][1]["rows"].as_u64().unwrap(),
    );
    assert_eq!(rows_a, rows_b, "both tables are from the same moment");
    assert!(rows_a > 150000, "writes before the snapshot are in it");
    // Big tables are copied in parallel parts (page ranges), all from the same moment.
    assert_eq!(
        m["tables"][0]["parts"].as_array().unwrap().len(),
        2,
        "{}",
        m["tables"][0]["parts"]
    );
    // And they restore whole, part by part.
    stop_and_restore(&project, &db, &id, rows_a);
}

fn stop_and_restore(project: &Project, db: &Db, id: &str, rows: u64) {
    db.exec("DELETE FROM a WHERE id % 2 = 0");
    ok(project, &["snapshot", "restore", id, "--tables", "a"]);
    assert_eq!(db.scalar("SELECT count(*) FROM a"), rows.to_string());
    assert_eq!(
        db.scalar("SELECT count(DISTINCT id) FROM a"),
        rows.to_string()
    );
}

#[test]
fn kill_during_create_publishes_nothing_and_a_rerun_completes() {
    let (project, db) = Db::postgres_project();
    shop(&db);
    let killed = ripcord_in(project.path())
        .args(["snapshot", "create", "--all"])
        .env("RIPCORD_FAILPOINT", "snapshot_chunks_stored")
        .output()
        .unwrap();
    assert!(
        killed.status.code().is_none() || killed.status.code() != Some(0),
        "it was killed"
    );
    assert!(
        snapshot_ids(&project).is_empty(),
        "nothing half-written is listed"
    );
    assert!(
        store_dir(&project).read_dir().unwrap().next().is_some(),
        "chunks were written"
    );
    let id = create_one(&project, &["--all"]);
    assert_eq!(snapshot_ids(&project), vec![id.clone()]);
    ok(&project, &["snapshot", "verify", &id]);
}

#[test]
fn kill_during_restore_keeps_the_live_tables_and_a_rerun_completes() {
    let (project, db) = Db::postgres_project();
    shop(&db);
    let before = (checksum(&db, "parent"), checksum(&db, "child"));
    let id = create_one(&project, &["--tables", "parent", "child"]);
    bad_load(&db);
    let damaged = (checksum(&db, "parent"), checksum(&db, "child"));
    let killed = ripcord_in(project.path())
        .args(["snapshot", "restore", &id, "--parallel", "1"])
        .env("RIPCORD_FAILPOINT", "restore_tables_loaded")
        .output()
        .unwrap();
    assert_ne!(
        killed.status.code(),
        Some(0),
        "it was killed: {}",
        stderr(&killed)
    );
    assert_eq!(
        (checksum(&db, "parent"), checksum(&db, "child")),
        damaged,
        "live tables intact"
    );
    // The lock of the killed run is released with its session; the rerun converges.
    ok(&project, &["snapshot", "restore", &id]);
    assert_eq!((checksum(&db, "parent"), checksum(&db, "child")), before);
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ripcord_restore_%'"),
        "0"
    );
}

#[test]
fn deploy_with_snapshot_protects_the_tables_a_change_destroys() {
    let (project, db) = Db::postgres_project();
    shop(&db);
    let before = checksum(&db, "child");
    project.simple_change(
        "0001_drop_note",
        "ALTER TABLE child DROP COLUMN note;\nDELETE FROM child WHERE id > 10;\nCREATE TABLE fresh (id int);",
        "ALTER TABLE child ADD COLUMN note text;\nDROP TABLE fresh;",
        "SELECT 1;",
    );
    let out = ok(&project, &["deploy", "--snapshot"]);
    assert!(out.contains("Snapshot "), "{out}");
    let ids = snapshot_ids(&project);
    assert_eq!(ids.len(), 1);
    let m = manifest(&project, &ids[0]);
    assert_eq!(m["label"], "before 0001_drop_note");
    assert_eq!(
        m["tables"].as_array().unwrap().len(),
        1,
        "only the existing table it touches: {m}"
    );
    assert_eq!(m["tables"][0]["definition"]["name"], "child");
    let log = ok(&project, &["audit", "log", "--json"]);
    assert!(log.contains("snapshot_completed"), "{log}");
    // The revert brings the column back empty; the snapshot brings the values back.
    ok(&project, &["revert", "--yes"]);
    ok(&project, &["snapshot", "restore", &ids[0]]);
    assert_eq!(checksum(&db, "child"), before);
}

#[test]
fn snapshot_before_preserving_skips_changes_that_destroy_nothing() {
    let (project, db) = Db::postgres_project();
    shop(&db);
    let config = std::fs::read_to_string(project.path().join("ripcord.toml")).unwrap();
    project.write_config(&format!(
        "{config}\n[safety]\nsnapshot_before = \"preserving\"\n"
    ));
    project.simple_change(
        "0001_add",
        "ALTER TABLE child ADD COLUMN extra int;",
        "ALTER TABLE child DROP COLUMN extra;",
        "SELECT 1;",
    );
    ok(&project, &["deploy"]);
    assert!(
        snapshot_ids(&project).is_empty(),
        "adding a column destroys nothing"
    );
    project.simple_change("0002_trunc", "TRUNCATE other;", "SELECT 1;", "SELECT 1;");
    ok(&project, &["deploy"]);
    assert_eq!(snapshot_ids(&project).len(), 1);
}

#[test]
fn prune_keeps_the_newest() {
    let (project, db) = Db::postgres_project();
    shop(&db);
    let first = create_one(&project, &["--tables", "other"]);
    let second = create_one(&project, &["--tables", "other"]);
    let third = create_one(&project, &["--tables", "other"]);
    let out = ok(&project, &["snapshot", "prune", "--keep", "2", "--json"]);
    assert!(out.contains(&first), "{out}");
    assert_eq!(snapshot_ids(&project), vec![second, third]);
    assert!(
        !store_dir(&project).join(&first).exists(),
        "its files are gone"
    );
    let unknown = run(&project, &["snapshot", "verify", &first]);
    expect_exit(&unknown, 2);
}

#[test]
fn sqlite_snapshot_restores_rows_and_keeps_the_ledger() {
    let (project, db) = Db::sqlite_project();
    db.exec(
        "CREATE TABLE stock (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty REAL);
         CREATE INDEX stock_name ON stock (name);
         INSERT INTO stock VALUES (1, 'bolt', 10), (2, 'nut', NULL), (3, 'gear', 2.5);",
    );
    let before = checksum(&db, "stock");
    let id = create_one(&project, &["--all"]);
    ok(&project, &["snapshot", "verify", &id]);
    db.exec("DELETE FROM stock WHERE id = 1; UPDATE stock SET qty = 0; INSERT INTO stock VALUES (9, 'bad', 1);");
    let events_before = db.scalar("SELECT count(*) FROM ripcord_events");
    let out = ok(&project, &["snapshot", "restore", &id]);
    assert!(out.contains("stock (3 rows)"), "{out}");
    assert_eq!(checksum(&db, "stock"), before);
    let vault = db.scalar("SELECT name FROM sqlite_master WHERE name LIKE 'ripcord_vault_stock_%'");
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM \"{vault}\" WHERE name = 'bad'"
        )),
        "1"
    );
    // The ledger is not rolled back with the data: the restore is one more event.
    let events_after: i64 = db
        .scalar("SELECT count(*) FROM ripcord_events")
        .parse()
        .unwrap();
    assert_eq!(events_after, events_before.parse::<i64>().unwrap() + 1);
    ok(&project, &["audit", "verify"]);

    // Into another database file: the tables are created there with their indexes.
    let other = project.path().join("other.db");
    let into = format!("sqlite://{}", other.display());
    ok(&project, &["snapshot", "restore", &id, "--into", &into]);
    let there = Db::Sqlite(other);
    assert_eq!(checksum(&there, "stock"), before);
    assert_eq!(
        there.scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'stock_name'"
        ),
        "1"
    );
    let refused = run(&project, &["snapshot", "restore", &id, "--as-new-tables"]);
    expect_exit(&refused, 2);
    let bad_store = run(&project, &["snapshot", "list", "--store", "ftp://x/y"]);
    expect_exit(&bad_store, 2);
    assert!(
        stderr(&bad_store).contains("ftp://"),
        "{}",
        stderr(&bad_store)
    );

    // A table whose definition changed since is refused, changing nothing.
    db.exec("ALTER TABLE stock ADD COLUMN extra TEXT; UPDATE stock SET qty = 7;");
    let refused = run(&project, &["snapshot", "restore", &id]);
    expect_exit(&refused, 2);
    assert!(
        stderr(&refused).contains("different definition"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        db.scalar("SELECT group_concat(qty) FROM stock"),
        "7.0,7.0,7.0"
    );
}

/// A real S3-compatible server (moto, from PyPI), started on a free port.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto from PyPI: installed by the harness on first use (PyPI is one of this
/// project's registries), so `cargo test --workspace` needs no set-up step.
fn ensure_moto() {
    let present = |_: ()| {
        std::process::Command::new("python3")
            .args(["-c", "import moto.server, boto3"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if present(()) {
        return;
    }
    let installed = std::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "moto[server]"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed && present(()),
        "the object-storage test needs moto (a real S3-compatible server): `python3 -m pip install 'moto[server]'` failed"
    );
}

fn moto() -> Moto {
    ensure_moto();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("python3")
        .args(["-m", "moto.server", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto's server with python3 ({e})"));
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let made = std::process::Command::new("python3")
        .args([
            "-c",
            &format!(
                "import boto3; boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='k', \
                 aws_secret_access_key='s', region_name='us-east-1').create_bucket(Bucket='snaps')"
            ),
        ])
        .status()
        .unwrap();
    assert!(made.success(), "bucket created");
    Moto { child, endpoint }
}

#[test]
fn object_storage_round_trip_on_an_s3_compatible_server() {
    let server = moto();
    let (project, db) = Db::postgres_project();
    shop(&db);
    let before = checksum(&db, "parent");
    let s3 = |args: &[&str]| {
        let output = ripcord_in(project.path())
            .args(args)
            .args(["--store", "s3://snaps/prod/shop"])
            .env("AWS_ENDPOINT", &server.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "k")
            .env("AWS_SECRET_ACCESS_KEY", "s")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap();
        expect_exit(&output, 0);
        stdout(&output)
    };
    let created: serde_json::Value = serde_json::from_str(&s3(&[
        "snapshot", "create", "--tables", "parent", "child", "--json",
    ]))
    .unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(s3(&["snapshot", "list"]).contains(id));
    assert!(s3(&["snapshot", "verify", id]).contains("is intact"));
    bad_load(&db);
    s3(&["snapshot", "restore", id]);
    assert_eq!(checksum(&db, "parent"), before);
    assert!(
        snapshot_ids(&project).is_empty(),
        "nothing went to the local store"
    );
}

#[test]
fn bad_input_changes_nothing_and_says_why() {
    let (project, db) = Db::postgres_project();
    shop(&db);
    let unknown = run(
        &project,
        &["snapshot", "create", "--tables", "parent", "nosuch"],
    );
    expect_exit(&unknown, 2);
    assert!(
        stderr(&unknown).contains("no table named nosuch"),
        "{}",
        stderr(&unknown)
    );
    assert!(snapshot_ids(&project).is_empty());
    let neither = run(&project, &["snapshot", "create"]);
    expect_exit(&neither, 2);
    let missing = run(
        &project,
        &["snapshot", "restore", "20990101T000000Z-000000"],
    );
    expect_exit(&missing, 2);
    assert!(
        stderr(&missing).contains("no snapshot 20990101T000000Z-000000"),
        "{}",
        stderr(&missing)
    );

    // While a deploy holds the target's lock, a snapshot waits for nobody: exit 3.
    project.simple_change("0001_noop", "SELECT 1;", "SELECT 1;", "SELECT 1;");
    let mut deploy = ripcord_in(project.path())
        .args(["deploy"])
        .env("RIPCORD_FAILPOINT", "deploy_statements_done=sleep(4000)")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.scalar("SELECT to_regclass('ripcord.lock') IS NOT NULL") != "true"
        || db.scalar("SELECT count(*) FROM ripcord.lock") != "1"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the deploy never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let locked = run(&project, &["snapshot", "create", "--all"]);
    expect_exit(&locked, 3);
    assert!(
        stderr(&locked).contains("`ripcord deploy`"),
        "{}",
        stderr(&locked)
    );
    assert!(deploy.wait().unwrap().success());
    assert!(snapshot_ids(&project).is_empty());
}

#[test]
fn restore_brings_back_row_security_policies_comments_and_column_privileges() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    let reader = format!("{}_reader", pg.name);
    db.exec(&format!(
        "CREATE ROLE {reader};
         CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, secret text);
         INSERT INTO accounts SELECT g, 'user' || (g % 3), 'x' || g FROM generate_series(1, 50) g;
         ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
         ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
         CREATE POLICY own_rows ON accounts AS PERMISSIVE FOR SELECT TO {reader} USING (owner = current_user);
         CREATE POLICY no_blank ON accounts AS RESTRICTIVE FOR INSERT TO PUBLIC WITH CHECK (owner <> '');
         COMMENT ON TABLE accounts IS 'who owns what; it''s RLS-protected';
         COMMENT ON COLUMN accounts.secret IS 'never shown to readers';
         GRANT SELECT (id, owner) ON accounts TO {reader};
         GRANT UPDATE (owner) ON accounts TO {reader} WITH GRANT OPTION;"
    ));
    let fingerprint = |project: &Project| {
        let out = ok(project, &["fingerprint", "--json"]);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        doc["schema_digest"].as_str().unwrap().to_string()
    };
    let column_privileges = |db: &Db| {
        db.scalar(&format!(
            "SELECT string_agg(column_name || ':' || privilege_type || ':' || is_grantable, ',' \
                ORDER BY column_name, privilege_type) \
             FROM information_schema.column_privileges \
             WHERE table_name = 'accounts' AND grantee = '{reader}'"
        ))
    };
    let schema_before = fingerprint(&project);
    let privileges_before = column_privileges(&db);
    assert_eq!(
        privileges_before,
        "id:SELECT:NO,owner:SELECT:NO,owner:UPDATE:YES"
    );
    let rows_before = checksum(&db, "accounts");
    let id = create_one(&project, &["--tables", "accounts"]);

    // Someone strips the table's protection and damages its rows.
    db.exec(&format!(
        "DROP POLICY own_rows ON accounts; DROP POLICY no_blank ON accounts;
         ALTER TABLE accounts NO FORCE ROW LEVEL SECURITY; ALTER TABLE accounts DISABLE ROW LEVEL SECURITY;
         COMMENT ON TABLE accounts IS NULL; COMMENT ON COLUMN accounts.secret IS NULL;
         REVOKE ALL (id, owner) ON accounts FROM {reader};
         DELETE FROM accounts WHERE id > 10;"
    ));
    assert_ne!(fingerprint(&project), schema_before);

    ok(&project, &["snapshot", "restore", &id]);
    assert_eq!(checksum(&db, "accounts"), rows_before);
    assert_eq!(
        fingerprint(&project),
        schema_before,
        "policies, row security and comments are back as they were"
    );
    assert_eq!(column_privileges(&db), privileges_before);
    assert_eq!(
        db.scalar("SELECT relrowsecurity::text || relforcerowsecurity::text FROM pg_class WHERE oid = 'accounts'::regclass"),
        "truetrue"
    );
    // The policies work: the reader sees only its own rows (none are its name).
    let mut client = pg.connect();
    client
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA public TO {reader}; SET ROLE {reader}"
        ))
        .unwrap();
    let seen: i64 = client
        .query_one("SELECT count(id) FROM accounts", &[])
        .unwrap()
        .get(0);
    assert_eq!(seen, 0);
    assert!(
        client
            .query_one("SELECT count(secret) FROM accounts", &[])
            .is_err(),
        "the column privilege is still only on id and owner"
    );
    let m = manifest(&project, &id).to_string();
    assert!(
        m.contains("own_rows") && m.contains("never shown to readers"),
        "{m}"
    );
}

/// `ripcord fingerprint --json` without its timing: schema digest and per-table data.
fn fingerprint(project: &Project) -> (String, String) {
    let out: serde_json::Value =
        serde_json::from_str(&ok(project, &["fingerprint", "--json"])).unwrap();
    (
        out["schema_digest"].as_str().unwrap().to_string(),
        out["tables"].to_string(),
    )
}

const PARTITIONED: &str = "
CREATE TABLE customers (id int PRIMARY KEY, name text);
INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, 10) i;
CREATE TABLE orders (id bigint, placed date NOT NULL, customer_id int REFERENCES customers (id),
  total numeric CHECK (total >= 0), note text, PRIMARY KEY (id, placed)) PARTITION BY RANGE (placed);
CREATE TABLE orders_2025 PARTITION OF orders FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE orders_2026 PARTITION OF orders FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
  PARTITION BY RANGE (placed);
CREATE TABLE orders_2026_h1 PARTITION OF orders_2026 FOR VALUES FROM ('2026-01-01') TO ('2026-07-01');
CREATE TABLE orders_2026_h2 PARTITION OF orders_2026 DEFAULT;
CREATE TABLE orders_other PARTITION OF orders DEFAULT;
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_2025_note_idx ON orders_2025 (note);
COMMENT ON TABLE orders IS 'all orders';
GRANT SELECT ON orders TO PUBLIC;
INSERT INTO orders SELECT i, date '2025-01-01' + (i % 900), 1 + i % 10, i, 'n' || i
  FROM generate_series(1, 3000) i;
CREATE TABLE notes (id int PRIMARY KEY, order_id bigint, placed date,
  FOREIGN KEY (order_id, placed) REFERENCES orders (id, placed));
INSERT INTO notes VALUES (1, 1, date '2025-01-02');
";

#[test]
fn a_partitioned_table_snapshots_and_restores_with_its_partitions() {
    let (project, db) = Db::postgres_project();
    db.exec(PARTITIONED);
    let before = fingerprint(&project);
    let id = create_one(&project, &["--tables", "orders"]);
    let m = manifest(&project, &id);
    let names: Vec<&str> = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["definition"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "orders",
            "orders_2025",
            "orders_2026",
            "orders_other",
            "orders_2026_h1",
            "orders_2026_h2"
        ],
        "the partitioned table comes with every partition, parents first"
    );
    db.exec(
        "DELETE FROM orders WHERE id % 3 = 0 AND id <> 1; UPDATE orders SET note = 'broken' WHERE id < 100;",
    );
    assert_ne!(fingerprint(&project), before);
    ok(&project, &["snapshot", "restore", &id]);
    assert_eq!(
        fingerprint(&project),
        before,
        "partitions, bounds, keys, indexes, foreign keys both ways, comment and grant are back"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated \
             AND connamespace = 'public'::regnamespace"
        ),
        "0",
        "every foreign key is validated"
    );
    // New rows still route to their partitions.
    db.exec("INSERT INTO orders VALUES (9001, '2026-03-01', 1, 1, 'new')");
    assert_eq!(
        db.scalar("SELECT tableoid::regclass::text FROM orders WHERE id = 9001"),
        "orders_2026_h1"
    );
    // A partition alone is refused, naming the table to take instead.
    let out = run(&project, &["snapshot", "create", "--tables", "orders_2025"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("is a partition of public.orders"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &project,
        &["snapshot", "restore", &id, "--tables", "public.orders_2025"],
    );
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("is a partition of public.orders"),
        "{}",
        stderr(&out)
    );
}
