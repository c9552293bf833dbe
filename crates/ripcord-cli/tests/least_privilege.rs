//! The least-privilege setup of docs/reliability.md, run as written (the role renamed)
//! against a real PostgreSQL server: a deploy role that does not own the ledger does
//! all its work, and cannot rewrite, delete or silence the audit chain.

#[macro_use]
mod common;

use common::*;

/// The GRANT block of docs/reliability.md's least-privilege section.
fn documented_grants(role: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/reliability.md"
    ))
    .unwrap();
    let section = doc
        .split("## Least privilege")
        .nth(1)
        .expect("the section exists");
    let block = section
        .split("```sql\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section has an SQL block");
    block.replace("deployer", role)
}

#[test]
fn a_deploy_role_works_but_cannot_touch_the_audit_chain() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    // The administrator creates the ledger.
    ok(&project, &["deploy"]);
    let role = format!("{}_deployer", pg.name);
    db.exec(&format!("CREATE ROLE {role} LOGIN"));
    db.exec(&documented_grants(&role));
    let as_deployer = pg.url.replace("postgres@", &format!("{role}@"));
    let run_as = |args: &[&str]| {
        let mut all = vec!["--url", as_deployer.as_str()];
        all.extend_from_slice(args);
        run(&project, &all)
    };

    project.change(
        "0001_accounts",
        "-- ripcord:deploy\nCREATE TABLE accounts (id int PRIMARY KEY, owner text, note text);\nINSERT INTO accounts VALUES (1, 'ada', 'keep me'), (2, 'bob', 'me too');\n-- ripcord:revert\nDROP TABLE accounts;\n",
    );
    project.change(
        "0002_drop_note",
        "-- ripcord:deploy\nALTER TABLE accounts DROP COLUMN note;\n",
    );
    expect_exit(&run_as(&["deploy"]), 0);
    assert!(!db.has_column("accounts", "note"));
    expect_exit(&run_as(&["revert", "--yes"]), 0);
    assert_eq!(
        db.scalar("SELECT string_agg(note, ',' ORDER BY id) FROM accounts"),
        "keep me,me too",
        "the vault kept and put back the dropped column's values"
    );
    expect_exit(&run_as(&["capture", "enable", "accounts"]), 0);
    db.exec("SET ripcord.batch = 'bad'; UPDATE accounts SET owner = 'x'; RESET ripcord.batch;");
    expect_exit(&run_as(&["batch", "revert", "bad"]), 0);
    assert_eq!(
        db.scalar("SELECT string_agg(owner, ',' ORDER BY id) FROM accounts"),
        "ada,bob"
    );
    expect_exit(&run_as(&["snapshot", "create", "--tables", "accounts"]), 0);
    expect_exit(&run_as(&["audit", "verify"]), 0);

    // The chain cannot be rewritten, emptied, dropped or silenced by the deploy role.
    let mut deployer = postgres::Client::connect(&as_deployer, postgres::NoTls).unwrap();
    for attack in [
        "UPDATE ripcord.events SET kind = 'nothing happened'",
        "DELETE FROM ripcord.events",
        "TRUNCATE ripcord.events",
        "DROP TABLE ripcord.events",
        "ALTER TABLE ripcord.events DISABLE TRIGGER ALL",
    ] {
        let error = deployer.batch_execute(attack).unwrap_err();
        let message = error.as_db_error().unwrap().message().to_string();
        assert!(
            message.contains("permission denied") || message.contains("must be owner"),
            "{attack}: {message}"
        );
    }
    expect_exit(&run_as(&["audit", "verify"]), 0);

    // drill needs a database to rehearse in: said plainly, and --scratch works.
    project.change(
        "0003_index",
        "-- ripcord:deploy\nCREATE INDEX accounts_owner ON accounts (owner);\n-- ripcord:revert\nDROP INDEX accounts_owner;\n",
    );
    let refused = run_as(&["drill"]);
    expect_exit(&refused, 2);
    assert!(
        stderr(&refused).contains("CREATEDB"),
        "{}",
        stderr(&refused)
    );
    let scratch = ripcord_testkit::pg().create_database();
    db.exec(&format!("ALTER DATABASE {} OWNER TO {role}", scratch.name));
    let scratch_url = scratch.url.replace("postgres@", &format!("{role}@"));
    let drilled = run_as(&["drill", "--scratch", &scratch_url]);
    expect_exit(&drilled, 0);
}
