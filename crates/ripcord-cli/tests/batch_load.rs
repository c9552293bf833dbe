//! Load test: ten loaders write batches while `ripcord batch revert` undoes an earlier
//! bad batch on the same table (real PostgreSQL, real concurrent sessions). Nothing a
//! loader wrote may be lost: its inserted rows stay, and a row it updated keeps the
//! loader's value, either because the revert saw the update first (a conflict,
//! skipped and reported) or because the update came after the revert.

#[macro_use]
mod common;

use std::sync::{Arc, Barrier};

use common::*;

const LOADERS: usize = 10;
const TRANSACTIONS: usize = 15;
const ROWS: i64 = 2000;

#[test]
fn ten_loaders_lose_nothing_while_a_batch_is_reverted() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    db.exec(&format!(
        "CREATE TABLE acct (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);
         INSERT INTO acct SELECT g, 'o', 0 FROM generate_series(1, {ROWS}) g;"
    ));
    ok(&project, &["capture", "enable", "acct"]);
    db.exec(
        "SET ripcord.batch = 'bad'; UPDATE acct SET balance = balance - 100; RESET ripcord.batch;",
    );

    let start = Arc::new(Barrier::new(LOADERS + 1));
    let loaders: Vec<_> = (0..LOADERS)
        .map(|i| {
            let url = pg.url.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                start.wait();
                for j in 0..TRANSACTIONS {
                    let mut tx = client.transaction().unwrap();
                    tx.batch_execute(&format!(
                        "SET LOCAL ripcord.batch = 'load-{i}';
                         INSERT INTO acct VALUES ({id}, 'new-{i}-{j}', {j});",
                        id = 100_000 + i * 1000 + j
                    ))
                    .unwrap();
                    // Half the loaders also touch rows the bad batch changed, and hold
                    // the row a moment before committing.
                    if i % 2 == 0 {
                        tx.batch_execute(&format!(
                            "UPDATE acct SET owner = 'L{i}-{j}' WHERE id = {}",
                            i * 100 + j + 1
                        ))
                        .unwrap();
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(std::time::Duration::from_millis(60));
    let out = run(
        &project,
        &["batch", "revert", "bad", "--on-conflict", "skip", "--json"],
    );
    for loader in loaders {
        loader.join().unwrap();
    }
    expect_exit(&out, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let skipped = report["tables"][0]["skipped"].as_i64().unwrap();
    let conflicts = report["conflicts"].as_array().unwrap().len() as i64;

    // Every row a loader inserted is there, as written.
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM acct WHERE id >= 100000 AND owner LIKE 'new-%'"),
        (LOADERS * TRANSACTIONS).to_string()
    );
    // Every row a loader updated keeps the loader's owner.
    let mut expected = Vec::new();
    for i in (0..LOADERS).step_by(2) {
        for j in 0..TRANSACTIONS {
            expected.push(format!("{}=L{i}-{j}", i * 100 + j + 1));
        }
    }
    expected.sort();
    let mut found: Vec<String> = db
        .scalar("SELECT string_agg(id || '=' || owner, ' ') FROM acct WHERE owner LIKE 'L%'")
        .split(' ')
        .map(String::from)
        .collect();
    found.sort();
    assert_eq!(found, expected, "a loader's update was lost");
    // Rows the revert skipped still carry the bad batch's balance, and exactly those
    // were reported; every other row of the bad batch is back.
    let still_bad: i64 = db
        .scalar("SELECT count(*)::text FROM acct WHERE balance = -100")
        .parse()
        .unwrap();
    assert_eq!(still_bad, skipped, "{report}");
    assert!(conflicts >= skipped, "{report}");
    assert!(skipped > 0, "the revert ran while loaders wrote: {report}");
    assert_eq!(
        db.scalar(
            "SELECT count(*)::text FROM acct WHERE id <= 2000 AND owner = 'o' AND balance <> 0"
        ),
        "0"
    );
}
