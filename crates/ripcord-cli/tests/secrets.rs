//! No password reaches any output: a password planted in the target's URL (given
//! through an environment variable, as ripcord.toml refuses passwords) is looked for in
//! the stdout and stderr of every command, in `--json` and `--log-format json` output,
//! in error messages of failing commands, in what `ripcord serve` answers, and in every
//! row ripcord writes to the target (ledger, audit chain, lock, rollouts).

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::*;

const PLANTED: &str = "Pl4nted-S3cret-pw";

#[test]
fn a_planted_password_appears_in_no_output_and_no_ledger_row() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(database) = &db else {
        unreachable!()
    };
    // The test server trusts local connections, so the password is sent and ignored.
    let url = database.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{PLANTED}@"),
        1,
    );
    assert!(url.contains(PLANTED), "{url}");
    project.write_config(
        "[project]\nname = \"shop\"\ndefault_target = \"shop\"\n\n[targets.shop]\nurl_env = \"SHOP_URL\"\n\n\
         [fleets.all]\ntargets = [\"shop\"]\n\n\
         [[checks]]\nname = \"no negative\"\nsql = \"select id from acct where v < 0\"\nexpect = { zero_rows = true }\n",
    );
    project.change(
        "0001_acct",
        "-- ripcord:deploy\nCREATE TABLE acct (id int PRIMARY KEY, v int);\nINSERT INTO acct VALUES (1, 1);\n-- ripcord:revert\nDROP TABLE acct;\n",
    );
    project.change(
        "0002_b",
        "-- ripcord:deploy\nCREATE TABLE b (id int);\n-- ripcord:revert\nDROP TABLE b;\n",
    );
    let commands: &[&[&str]] = &[
        &["status"],
        &["plan"],
        &["runbook"],
        &["deploy", "--to", "0001_acct"],
        &["drill"],
        &["log"],
        &["verify"],
        &["fingerprint"],
        &["audit", "log"],
        &["audit", "verify"],
        &["capture", "enable", "public.acct"],
        &["batch", "list"],
        &["snapshot", "create", "--tables", "public.acct"],
        &["snapshot", "list"],
        &["vault", "list"],
        &["check"],
        &["flag", "set", "promo", "on"],
        &["rollout"],
        &["rollout", "status"],
        &["revert", "--yes"],
        &["diff", "shop", "shop", "--table", "public.acct"],
        // Failing on purpose: an error chain must not carry it either.
        &["deploy", "--to", "nope"],
        &[
            "--url",
            "postgres://someone:Pl4nted-S3cret-pw@127.0.0.1:1/x",
            "status",
        ],
    ];
    // The URL is the one used (its password hidden), and the commands do run.
    let status = ripcord_in(project.path())
        .env("SHOP_URL", &url)
        .args(["status", "--json"])
        .output()
        .unwrap();
    expect_exit(&status, 0);
    assert!(
        stdout(&status).contains("postgres://postgres:***@127.0.0.1"),
        "{}",
        stdout(&status)
    );
    for args in commands {
        for extra in [
            &[][..],
            &["--json"][..],
            &["--log-format", "json", "-v"][..],
        ] {
            let output = ripcord_in(project.path())
                .env("SHOP_URL", &url)
                .args(*args)
                .args(extra)
                .output()
                .unwrap();
            for (stream, text) in [("stdout", stdout(&output)), ("stderr", stderr(&output))] {
                assert!(
                    !text.contains(PLANTED),
                    "{args:?} {extra:?} printed the password on {stream}: {text}"
                );
            }
        }
    }

    // What the server answers.
    let mut server = ripcord_in(project.path())
        .env("SHOP_URL", &url)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(!line.contains(PLANTED), "{line}");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    for path in [
        "/api/targets",
        "/api/targets/shop",
        "/api/targets/shop/events?limit=1000",
        "/api/targets/shop/rollouts",
        "/api/targets/shop/checks",
        "/api/targets/shop/drills",
        "/api/snapshots",
        "/metrics",
    ] {
        let body = ureq::get(format!("{base}{path}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert!(!body.contains(PLANTED), "{path}: {body}");
    }
    let _ = server.kill();
    let _ = server.wait();

    // Every row ripcord wrote to the target.
    let written = db.scalar(
        "SELECT string_agg(t, ' ') FROM (
           SELECT row_to_json(x)::text AS t FROM ripcord.events x
           UNION ALL SELECT row_to_json(x)::text FROM ripcord.changes x
           UNION ALL SELECT row_to_json(x)::text FROM ripcord.lock x
           UNION ALL SELECT row_to_json(x)::text FROM ripcord.rollouts x
           UNION ALL SELECT row_to_json(x)::text FROM ripcord.rollout_steps x
           UNION ALL SELECT row_to_json(x)::text FROM ripcord.flags x
         ) rows",
    );
    assert!(written.contains("deploy_completed"), "the rows were read");
    assert!(
        !written.contains(PLANTED),
        "a ledger row holds the password"
    );
    // And the snapshot store's manifests.
    for entry in walk(&project.path().join(".ripcord")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(PLANTED),
            "{} holds the password",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}
