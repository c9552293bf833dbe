//! `ripcord::embed::Migrator` with changes compiled in by `embed_changes!`, against a
//! real PostgreSQL server: deploy on start, status, revert (including the revert ripcord
//! writes itself for a change without one), and the errors an application sees.

use ripcord::embed::{EmbeddedChange, Migrator};
use ripcord::revert::Selection;
use ripcord::status::ChangeStatus;

static CHANGES: &[EmbeddedChange] = ripcord::embed_changes!("tests/embedded_changes");

fn scalar(url: &str, sql: &str) -> String {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn an_application_deploys_reverts_and_reads_status_of_embedded_changes() {
    let db = ripcord_testkit::pg().create_database();
    assert_eq!(CHANGES.len(), 2);
    assert_eq!(CHANGES[0].file_name, "0001_accounts.sql");
    let migrator = Migrator::new(&db.url)
        .with_embedded(CHANGES)
        .project("bank");
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let report = runtime.block_on(migrator.deploy()).unwrap();
    assert_eq!(report.deployed.len(), 2);
    assert_eq!(
        scalar(
            &db.url,
            "SELECT string_agg(name || ':' || balance_cents, ',') FROM accounts"
        ),
        "ada:0"
    );
    assert_eq!(
        scalar(
            &db.url,
            "SELECT string_agg(DISTINCT project, ',') FROM ripcord.changes"
        ),
        "bank"
    );
    // Idempotent: a second start deploys nothing.
    assert!(
        runtime
            .block_on(migrator.deploy())
            .unwrap()
            .deployed
            .is_empty()
    );
    let status = runtime.block_on(migrator.status()).unwrap();
    assert!(
        status
            .changes
            .iter()
            .all(|c| c.status == ChangeStatus::Deployed),
        "{status:?}"
    );

    // The second change had no revert: ripcord wrote one (drop the added column).
    let reverted = migrator.revert_blocking(Selection::Last(1)).unwrap();
    assert_eq!(reverted.reverted.len(), 1);
    assert_eq!(
        scalar(
            &db.url,
            "SELECT count(*)::text FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'balance_cents'"
        ),
        "0"
    );
    assert_eq!(scalar(&db.url, "SELECT name FROM accounts"), "ada");
}

#[test]
fn changes_from_a_directory_and_the_errors_an_application_sees() {
    let db = ripcord_testkit::pg().create_database();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_t.sql"),
        "-- ripcord:deploy\nCREATE TABLE t (id int);\n-- ripcord:revert\nDROP TABLE t;\n",
    )
    .unwrap();
    let migrator = Migrator::new(&db.url).with_dir(dir.path());
    assert_eq!(migrator.deploy_blocking().unwrap().deployed.len(), 1);

    // A malformed file: named, and nothing runs.
    std::fs::write(
        dir.path().join("0002_bad.sql"),
        "-- ripcord:deploy\nSELECT 'never closed;\n",
    )
    .unwrap();
    let error = migrator.deploy_blocking().unwrap_err().to_string();
    assert!(error.contains("0002_bad.sql"), "{error}");

    // A wrong URL: a clear error without the password.
    let error = Migrator::new("postgres://app:s3cret@127.0.0.1:1/app")
        .with_dir(dir.path())
        .deploy_blocking()
        .unwrap_err()
        .to_string();
    assert!(!error.contains("s3cret"), "{error}");
}
