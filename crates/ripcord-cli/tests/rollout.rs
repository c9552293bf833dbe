//! `ripcord rollout`, `recover` and `flag` against four real PostgreSQL servers (each
//! with its own data directory and port), with probes answered by local HTTP servers.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::{expect_exit, ripcord_in, stderr, stdout};
use ripcord_testkit::{Project, TestDatabase, pg_fleet, pg_without_prepared_transactions};

/// Four fresh databases, one per server, as targets s1..s4 of fleet `prod`.
struct Fleet {
    project: Project,
    dbs: Vec<TestDatabase>,
}

const ORDERS: &str = "-- ripcord:deploy\nCREATE TABLE orders (id integer PRIMARY KEY, total integer NOT NULL);\n\
    -- ripcord:revert\nDROP TABLE orders;\n";

impl Fleet {
    /// `fleet` is the `[fleets.prod]` body after `targets`; `rest` more config.
    fn new(fleet: &str, rest: &str) -> Fleet {
        let dbs: Vec<TestDatabase> = pg_fleet().iter().map(|s| s.create_database()).collect();
        let project = Project::new(&dbs[0].url);
        let mut config = String::from("[project]\nname = \"shop\"\n\n");
        for (i, db) in dbs.iter().enumerate() {
            config.push_str(&format!("[targets.s{}]\nurl = \"{}\"\n\n", i + 1, db.url));
        }
        config.push_str(&format!(
            "[fleets.prod]\ntargets = [\"s1\", \"s2\", \"s3\", \"s4\"]\n{fleet}\n\n{rest}\n"
        ));
        project.write_config(&config);
        Fleet { project, dbs }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        ripcord_in(self.project.path())
            .args(args)
            .output()
            .expect("run ripcord")
    }

    fn run_with(&self, env: (&str, &str), args: &[&str]) -> std::process::Output {
        ripcord_in(self.project.path())
            .env(env.0, env.1)
            .args(args)
            .output()
            .expect("run ripcord")
    }

    fn scalar(&self, target: usize, sql: &str) -> String {
        let mut client = self.dbs[target].connect();
        let row = client
            .query_one(&format!("SELECT ({sql})::text"), &[])
            .unwrap_or_else(|e| panic!("{sql} on s{}: {e}", target + 1));
        row.get::<_, Option<String>>(0).unwrap_or_default()
    }

    fn exec(&self, target: usize, sql: &str) {
        self.dbs[target].connect().batch_execute(sql).unwrap();
    }

    fn has_ledger(&self, target: usize) -> bool {
        self.scalar(target, "SELECT to_regclass('ripcord.changes') IS NOT NULL") == "true"
    }

    fn deployed(&self, target: usize, change: &str) -> bool {
        self.has_ledger(target)
            && self.scalar(
                target,
                &format!("SELECT EXISTS (SELECT 1 FROM ripcord.changes WHERE name = '{change}')"),
            ) == "true"
    }

    fn events(&self, target: usize, kind: &str, change: &str) -> i64 {
        if !self.has_ledger(target) {
            return 0;
        }
        self.scalar(
            target,
            &format!(
                "SELECT count(*) FROM ripcord.events WHERE kind = '{kind}' AND change = '{change}'"
            ),
        )
        .parse()
        .unwrap()
    }

    fn prepared(&self, target: usize) -> i64 {
        self.scalar(
            target,
            "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'ripcord:%' AND database = current_database()",
        )
        .parse()
        .unwrap()
    }

    fn status(&self) -> serde_json::Value {
        let output = self.run(&["rollout", "status", "--json"]);
        expect_exit(&output, 0);
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn states(&self) -> Vec<String> {
        let status = self.status();
        let steps = status["steps"].as_array().cloned().unwrap_or_default();
        (1..=4)
            .map(|n| {
                steps
                    .iter()
                    .find(|s| s["target"] == format!("s{n}"))
                    .map(|s| s["state"].as_str().unwrap_or_default().to_string())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Deploy 0001_orders everywhere with totals of 100 (and whatever `extra` rows).
    fn with_orders(&self) {
        self.project.change("0001_orders", ORDERS);
        let output = self.run(&["rollout"]);
        expect_exit(&output, 0);
        for i in 0..4 {
            self.exec(i, "INSERT INTO orders VALUES (1, 100), (2, 100)");
        }
    }
}

const NEGATIVE_PROBE: &str = "[health]\nprobes = [{ name = \"no negative totals\", sql = \"select count(*) from orders where total < 0\", max = 0 }]\n";

const WAVES: &str = "waves = [[\"s1\"], [\"s2\", \"s3\", \"s4\"]]";

#[test]
fn a_canary_breach_reverts_the_canary_and_leaves_wave_two_untouched() {
    let fleet = Fleet::new(WAVES, NEGATIVE_PROBE);
    fleet.with_orders();
    fleet.project.change(
        "0002_discount",
        "-- ripcord:deploy\nUPDATE orders SET total = total - 150;\n-- ripcord:revert\nUPDATE orders SET total = total + 150;\n",
    );
    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("health breached after wave 1"), "{err}");
    assert!(err.contains("no negative totals"), "{err}");
    assert!(!fleet.deployed(0, "0002_discount"));
    assert_eq!(fleet.scalar(0, "SELECT sum(total) FROM orders"), "200");
    assert_eq!(fleet.events(0, "revert_completed", "0002_discount"), 1);
    for i in 1..4 {
        assert!(!fleet.deployed(i, "0002_discount"));
        assert_eq!(
            fleet.events(i, "deploy_completed", "0002_discount"),
            0,
            "s{} was touched",
            i + 1
        );
    }
    assert_eq!(
        fleet.states(),
        ["rolled_back", "pending", "pending", "pending"]
    );
    let status = fleet.status();
    assert_eq!(status["rollout"]["state"], "rolled_back");
}

#[test]
fn a_breach_after_wave_two_reverts_every_target_newest_change_first() {
    let fleet = Fleet::new(WAVES, NEGATIVE_PROBE);
    fleet.with_orders();
    // Only s3 goes negative, so the canary passes and wave two breaches.
    fleet.exec(2, "UPDATE orders SET total = 5 WHERE id = 2");
    fleet.project.change(
        "0002_fee",
        "-- ripcord:deploy\nUPDATE orders SET total = total - 10;\n-- ripcord:revert\nUPDATE orders SET total = total + 10;\n",
    );
    let output = fleet.run(&["rollout", "--json"]);
    expect_exit(&output, 1);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["error"]["exit_code"], 1);
    let report = &json["report"];
    assert_eq!(report["state"], "rolled_back");
    assert_eq!(report["watches"][0]["outcome"], "pass");
    assert_eq!(report["watches"][1]["outcome"], "fail");
    for i in 0..4 {
        assert!(!fleet.deployed(i, "0002_fee"), "s{} still has it", i + 1);
        assert_eq!(fleet.events(i, "revert_completed", "0002_fee"), 1);
    }
    assert_eq!(fleet.scalar(2, "SELECT min(total) FROM orders"), "5");
    // The canary was changed first, so it is reverted last.
    let reverted_at = |i: usize| {
        fleet.scalar(
            i,
            "SELECT extract(epoch FROM at)::numeric(20,6) FROM ripcord.events WHERE kind = 'revert_completed' AND change = '0002_fee'",
        )
        .parse::<f64>()
        .unwrap()
    };
    let canary = reverted_at(0);
    for i in 1..4 {
        assert!(
            reverted_at(i) <= canary,
            "s{} was reverted after the canary",
            i + 1
        );
    }
    assert!(report["detected_at"].is_string() && report["recovered_at"].is_string());
}

#[test]
fn a_deploy_failing_on_the_third_target_rolls_back_the_first_two_and_its_own_partial_work() {
    let fleet = Fleet::new("waves = [[\"s1\"], [\"s2\"], [\"s3\"], [\"s4\"]]", "");
    fleet.with_orders();
    // Data the canary cannot see: s3 holds an order the new constraint refuses.
    fleet.exec(2, "INSERT INTO orders VALUES (3, 5000)");
    fleet.project.change(
        "0002_status",
        "-- ripcord:deploy\nALTER TABLE orders ADD COLUMN status text;\n-- ripcord:revert\nALTER TABLE orders DROP COLUMN status;\n",
    );
    fleet.project.change(
        "0003_limit",
        "-- ripcord:deploy\nALTER TABLE orders ADD CONSTRAINT small CHECK (total < 1000);\n-- ripcord:revert\nALTER TABLE orders DROP CONSTRAINT small;\n",
    );
    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("the deploy failed on s3"), "{err}");
    for i in 0..3 {
        assert!(!fleet.deployed(i, "0002_status"), "s{} keeps 0002", i + 1);
        assert!(!fleet.deployed(i, "0003_limit"), "s{} keeps 0003", i + 1);
        assert_eq!(
            fleet.scalar(i, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'status'"),
            "0"
        );
    }
    assert_eq!(
        fleet.events(2, "deploy_completed", "0002_status"),
        1,
        "s3 applied 0002 before 0003 failed"
    );
    assert_eq!(fleet.events(2, "revert_completed", "0002_status"), 1);
    assert_eq!(
        fleet.events(3, "deploy_completed", "0002_status"),
        0,
        "s4 was never touched"
    );
    let states = fleet.states();
    assert_eq!(states[0], "rolled_back");
    assert_eq!(states[1], "rolled_back");
    assert_eq!(states[2], "rolled_back");
    assert_eq!(states[3], "pending");
}

#[test]
fn on_failure_stop_leaves_changed_targets_as_they_are() {
    let fleet = Fleet::new(&format!("{WAVES}\non_failure = \"stop\""), NEGATIVE_PROBE);
    fleet.with_orders();
    fleet.project.change(
        "0002_discount",
        "-- ripcord:deploy\nUPDATE orders SET total = total - 150;\n-- ripcord:revert\nUPDATE orders SET total = total + 150;\n",
    );
    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 1);
    assert!(stderr(&output).contains("stopped"), "{}", stderr(&output));
    assert!(fleet.deployed(0, "0002_discount"));
    assert!(!fleet.deployed(1, "0002_discount"));
    assert_eq!(fleet.status()["rollout"]["state"], "stopped");
}

#[test]
fn an_atomic_rollout_with_one_failing_target_changes_no_target() {
    let fleet = Fleet::new("", "");
    fleet.with_orders();
    fleet.exec(3, "INSERT INTO orders VALUES (3, 5000)");
    fleet.project.change(
        "0002_coupons",
        "-- ripcord:deploy\nCREATE TABLE coupons (code text PRIMARY KEY);\nINSERT INTO coupons VALUES ('A');\n\
         ALTER TABLE orders ADD CONSTRAINT small CHECK (total < 1000);\n\
         -- ripcord:revert\nALTER TABLE orders DROP CONSTRAINT small;\nDROP TABLE coupons;\n",
    );
    let output = fleet.run(&["rollout", "--atomic"]);
    expect_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("no target changed"), "{err}");
    for i in 0..4 {
        assert!(!fleet.deployed(i, "0002_coupons"), "s{} has it", i + 1);
        assert_eq!(
            fleet.prepared(i),
            0,
            "s{} has an in-doubt transaction",
            i + 1
        );
    }
    for i in 0..3 {
        assert_eq!(
            fleet.scalar(i, "SELECT to_regclass('coupons') IS NULL"),
            "true"
        );
    }
    // Fixed, the same rollout lands everywhere at once.
    fleet.exec(3, "DELETE FROM orders WHERE id = 3");
    let output = fleet.run(&["rollout", "--atomic"]);
    expect_exit(&output, 0);
    for i in 0..4 {
        assert!(fleet.deployed(i, "0002_coupons"));
        assert_eq!(fleet.scalar(i, "SELECT count(*) FROM coupons"), "1");
    }
}

fn atomic_crash(failpoint: &str, committed: bool) {
    let fleet = Fleet::new("", "");
    fleet.with_orders();
    fleet.project.change(
        "0002_status",
        "-- ripcord:deploy\nALTER TABLE orders ADD COLUMN status text;\n-- ripcord:revert\nALTER TABLE orders DROP COLUMN status;\n",
    );
    let output = fleet.run_with(("RIPCORD_FAILPOINT", failpoint), &["rollout", "--atomic"]);
    assert_ne!(output.status.code(), Some(0), "the failpoint did not fire");
    let in_doubt: i64 = (0..4).map(|i| fleet.prepared(i)).sum();
    assert!(in_doubt > 0, "nothing in doubt after {failpoint}");
    let status = fleet.status();
    assert!(!status["in_doubt"].as_array().unwrap().is_empty());
    assert!(status["in_doubt"][0]["age_seconds"].as_i64().unwrap() >= 0);

    let output = fleet.run(&["recover"]);
    expect_exit(&output, 0);
    for i in 0..4 {
        assert_eq!(fleet.prepared(i), 0);
        assert_eq!(
            fleet.deployed(i, "0002_status"),
            committed,
            "s{} after {failpoint}",
            i + 1
        );
    }
    // The rerun converges: every target has the change once, and the rollout still
    // knows what it changed where (a later breach must revert it).
    let output = fleet.run(&["rollout", "--atomic"]);
    expect_exit(&output, 0);
    for i in 0..4 {
        assert!(fleet.deployed(i, "0002_status"));
        assert_eq!(fleet.events(i, "deploy_completed", "0002_status"), 1);
    }
    let status = fleet.status();
    assert_eq!(status["rollout"]["state"], "completed");
    for step in status["steps"].as_array().unwrap() {
        assert_eq!(step["state"], "verified", "{step}");
        assert_eq!(
            step["changes"],
            serde_json::json!(["0002_status"]),
            "{step}"
        );
    }
}

#[test]
fn killed_before_prepare_nothing_changes_anywhere_and_the_rerun_converges() {
    let fleet = Fleet::new("", "");
    fleet.with_orders();
    fleet.project.change(
        "0002_status",
        "-- ripcord:deploy\nALTER TABLE orders ADD COLUMN status text;\n-- ripcord:revert\nALTER TABLE orders DROP COLUMN status;\n",
    );
    let output = fleet.run_with(
        ("RIPCORD_FAILPOINT", "atomic_before_prepare"),
        &["rollout", "--atomic"],
    );
    assert_ne!(output.status.code(), Some(0), "the failpoint did not fire");
    // Whatever another target prepared meanwhile is finished by recovery: no commit
    // decision was recorded, so nothing is committed anywhere.
    expect_exit(&fleet.run(&["recover"]), 0);
    for i in 0..4 {
        assert_eq!(fleet.prepared(i), 0);
        assert!(!fleet.deployed(i, "0002_status"), "s{}", i + 1);
    }
    expect_exit(&fleet.run(&["rollout", "--atomic"]), 0);
    for i in 0..4 {
        assert_eq!(fleet.events(i, "deploy_completed", "0002_status"), 1);
    }
}

#[test]
fn killed_after_prepare_and_before_the_decision_recover_rolls_everything_back() {
    atomic_crash("atomic_after_prepare", false);
}

#[test]
fn killed_after_the_decision_recover_commits_everywhere() {
    atomic_crash("atomic_after_decision", true);
}

#[test]
fn killed_between_two_commits_recover_commits_the_rest() {
    atomic_crash("atomic_after_first_commit", true);
}

#[test]
fn a_rerun_after_a_kill_between_prepare_and_decision_recovers_first_then_rolls_out() {
    let fleet = Fleet::new("", "");
    fleet.with_orders();
    fleet.project.change(
        "0002_status",
        "-- ripcord:deploy\nALTER TABLE orders ADD COLUMN status text;\n-- ripcord:revert\nALTER TABLE orders DROP COLUMN status;\n",
    );
    let output = fleet.run_with(
        ("RIPCORD_FAILPOINT", "atomic_after_prepare"),
        &["rollout", "--atomic"],
    );
    assert_ne!(output.status.code(), Some(0));
    let output = fleet.run(&["rollout", "--atomic"]);
    expect_exit(&output, 0);
    assert!(
        stderr(&output).contains("rolled back by recovery"),
        "{}",
        stderr(&output)
    );
    for i in 0..4 {
        assert_eq!(fleet.prepared(i), 0);
        assert_eq!(fleet.events(i, "deploy_completed", "0002_status"), 1);
    }
}

#[test]
fn atomic_is_refused_for_changes_that_cannot_run_in_a_transaction() {
    let fleet = Fleet::new("", "");
    fleet.with_orders();
    fleet.project.change(
        "0002_index",
        "-- transaction: none\n-- ripcord:deploy\nCREATE INDEX CONCURRENTLY orders_total ON orders (total);\n-- ripcord:revert\nDROP INDEX CONCURRENTLY orders_total;\n",
    );
    let output = fleet.run(&["rollout", "--atomic"]);
    expect_exit(&output, 4);
    assert!(
        stderr(&output).contains("transaction: none"),
        "{}",
        stderr(&output)
    );
    for i in 0..4 {
        assert!(!fleet.deployed(i, "0002_index"));
    }
}

#[test]
fn atomic_is_refused_on_a_server_without_prepared_transactions_naming_the_setting() {
    let fleet = Fleet::new("", "");
    fleet.with_orders();
    let other = pg_without_prepared_transactions().create_database();
    let config = std::fs::read_to_string(fleet.project.path().join("ripcord.toml")).unwrap();
    let config = config.replace(&fleet.dbs[3].url, &other.url);
    fleet.project.write_config(&config);
    fleet.project.change(
        "0002_status",
        "-- ripcord:deploy\nALTER TABLE orders ADD COLUMN status text;\n-- ripcord:revert\nALTER TABLE orders DROP COLUMN status;\n",
    );
    let output = fleet.run(&["rollout", "--atomic"]);
    expect_exit(&output, 4);
    let err = stderr(&output);
    assert!(err.contains("max_prepared_transactions = 0"), "{err}");
    for i in 0..3 {
        assert!(!fleet.deployed(i, "0002_status"));
    }
}

/// A local HTTP server answering every request with `answer(path)`, recording bodies.
fn http_server(
    answer: impl Fn(&str) -> (u16, String) + Send + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            if length > 0 {
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let (status, text) = answer(&path);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, bodies)
}

#[test]
fn an_http_probe_breach_rolls_back_and_the_webhook_receives_the_rendered_body() {
    let (api, _) = http_server(|_| (200, r#"{"errors": 7}"#.into()));
    let (hook, received) = http_server(|_| (200, "{}".into()));
    let fleet = Fleet::new(
        WAVES,
        &format!(
            "[health]\nprobes = [{{ name = \"api errors\", http = \"{api}/health\", json_pointer = \"/errors\", max = 5 }}]\n\n\
             [[notify]]\nwebhook = \"{hook}/hook\"\non = [\"probe_failed\", \"rollback_completed\"]\ntemplate = '{{\"kind\": \"{{{{ kind }}}}\", \"fleet\": \"{{{{ fleet }}}}\"}}'\n"
        ),
    );
    fleet.project.change("0001_orders", ORDERS);
    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 1);
    assert!(stderr(&output).contains("7 > max 5"), "{}", stderr(&output));
    assert!(!fleet.deployed(0, "0001_orders"));
    let bodies = received.lock().unwrap().clone();
    assert!(
        bodies.contains(&r#"{"kind": "probe_failed", "fleet": "prod"}"#.to_string()),
        "{bodies:?}"
    );
    assert!(
        bodies.contains(&r#"{"kind": "rollback_completed", "fleet": "prod"}"#.to_string()),
        "{bodies:?}"
    );
}

#[test]
fn a_prometheus_probe_with_no_series_pauses_the_rollout_and_abort_rolls_it_back() {
    let (prometheus, _) = http_server(|path| {
        assert!(path.starts_with("/api/v1/query?query="), "{path}");
        (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.into(),
        )
    });
    let fleet = Fleet::new(
        WAVES,
        &format!(
            "[health]\nprobes = [{{ name = \"p99\", prometheus = \"{prometheus}\", query = \"histogram_quantile(0.99, rate(x[1m]))\", max = 0.5, inconclusive_limit = 0 }}]\n"
        ),
    );
    fleet.project.change("0001_orders", ORDERS);
    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("paused"), "{err}");
    assert!(err.contains("no series"), "{err}");
    assert!(
        fleet.deployed(0, "0001_orders"),
        "a paused rollout keeps the canary as it is"
    );
    assert!(
        !fleet.deployed(1, "0001_orders"),
        "inconclusive must not promote a wave"
    );
    assert_eq!(fleet.status()["rollout"]["state"], "paused");

    let output = fleet.run(&["rollout", "--abort"]);
    expect_exit(&output, 1);
    assert!(!fleet.deployed(0, "0001_orders"));
    assert_eq!(fleet.status()["rollout"]["state"], "rolled_back");
}

#[test]
fn a_prometheus_probe_within_bounds_promotes_and_no_pause_fails_on_nan() {
    let (prometheus, _) = http_server(|path| {
        let body = if path.contains("nan") {
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#
        } else {
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.2"]}]}}"#
        };
        (200, body.into())
    });
    let fleet = Fleet::new(
        WAVES,
        &format!(
            "[health]\nprobes = [{{ name = \"p99\", prometheus = \"{prometheus}\", query = \"ok\", max = 0.5 }}]\n"
        ),
    );
    fleet.project.change("0001_orders", ORDERS);
    expect_exit(&fleet.run(&["rollout"]), 0);
    for i in 0..4 {
        assert!(fleet.deployed(i, "0001_orders"));
    }
    let config = std::fs::read_to_string(fleet.project.path().join("ripcord.toml")).unwrap();
    fleet
        .project
        .write_config(&config.replace("query = \"ok\"", "query = \"nan\", inconclusive_limit = 0"));
    fleet.project.change(
        "0002_status",
        "-- ripcord:deploy\nALTER TABLE orders ADD COLUMN status text;\n-- ripcord:revert\nALTER TABLE orders DROP COLUMN status;\n",
    );
    let output = fleet.run(&["rollout", "--no-pause"]);
    expect_exit(&output, 1);
    assert!(stderr(&output).contains("NaN"), "{}", stderr(&output));
    assert!(!fleet.deployed(0, "0002_status"));
}

#[test]
fn flags_of_a_change_are_switched_off_before_its_revert_on_every_target_it_touches() {
    let fleet = Fleet::new(WAVES, NEGATIVE_PROBE);
    fleet.with_orders();
    let output = fleet.run(&["flag", "set", "checkout_v2", "on", "--fleet", "prod"]);
    expect_exit(&output, 0);
    fleet.project.change(
        "0002_discount",
        "-- flags: checkout_v2\n-- ripcord:deploy\nUPDATE orders SET total = total - 150;\n-- ripcord:revert\nUPDATE orders SET total = total + 150;\n",
    );
    expect_exit(&fleet.run(&["rollout"]), 1);
    let get = |target: &str| {
        let output = fleet.run(&["--target", target, "flag", "get", "checkout_v2"]);
        expect_exit(&output, 0);
        stdout(&output).trim().to_string()
    };
    assert_eq!(get("s1"), "off");
    assert_eq!(
        get("s2"),
        "on",
        "a target the revert did not touch keeps its flag"
    );
    // Off before the revert ran: its event comes first in the chain.
    let order = fleet.scalar(
        0,
        "SELECT string_agg(kind, ',' ORDER BY seq) FROM ripcord.events WHERE kind IN ('flag_set', 'revert_completed') AND seq > (SELECT max(seq) FROM ripcord.events WHERE kind = 'deploy_completed')",
    );
    assert_eq!(order, "flag_set,revert_completed");
    // Applications read it with one SELECT.
    assert_eq!(
        fleet.scalar(
            0,
            "SELECT enabled FROM ripcord.flags WHERE name = 'checkout_v2'"
        ),
        "false"
    );
    let output = fleet.run(&["--target", "s2", "flag", "get", "checkout_v2", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["enabled"], true);
}

#[test]
fn an_unreachable_target_stops_the_rollout_before_anything_changes() {
    let fleet = Fleet::new(WAVES, "");
    fleet.project.change("0001_orders", ORDERS);
    let config = std::fs::read_to_string(fleet.project.path().join("ripcord.toml")).unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("postgres://postgres@127.0.0.1:{closed}/nothing");
    fleet
        .project
        .write_config(&config.replace(&fleet.dbs[3].url, &dead));
    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 5);
    let err = stderr(&output);
    assert!(err.contains("cannot reach s4"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    for i in 0..3 {
        assert_eq!(
            fleet.scalar(i, "SELECT to_regnamespace('ripcord') IS NULL"),
            "true",
            "s{} got a ledger",
            i + 1
        );
    }
}

#[test]
fn killed_during_a_rollback_the_rerun_finishes_it() {
    let fleet = Fleet::new(WAVES, NEGATIVE_PROBE);
    fleet.with_orders();
    fleet.exec(3, "UPDATE orders SET total = 5 WHERE id = 2");
    fleet.project.change(
        "0002_fee",
        "-- ripcord:deploy\nUPDATE orders SET total = total - 10;\n-- ripcord:revert\nUPDATE orders SET total = total + 10;\n",
    );
    let output = fleet.run_with(
        ("RIPCORD_FAILPOINT", "rollout_after_first_revert"),
        &["rollout"],
    );
    assert_ne!(output.status.code(), Some(0));
    assert_ne!(output.status.code(), Some(1), "the failpoint did not fire");
    let still: usize = (0..4).filter(|&i| fleet.deployed(i, "0002_fee")).count();
    assert_eq!(
        still, 1,
        "wave two was reverted before the kill, the canary not yet"
    );
    assert!(fleet.deployed(0, "0002_fee"));
    assert_eq!(fleet.status()["rollout"]["state"], "rolling_back");

    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 1);
    assert!(
        stderr(&output).contains("finishing the rollback"),
        "{}",
        stderr(&output)
    );
    for i in 0..4 {
        assert!(!fleet.deployed(i, "0002_fee"));
        assert_eq!(
            fleet.events(i, "revert_completed", "0002_fee"),
            1,
            "s{}",
            i + 1
        );
        assert_eq!(fleet.events(i, "deploy_completed", "0002_fee"), 1);
    }
    assert_eq!(fleet.scalar(3, "SELECT min(total) FROM orders"), "5");
}

#[test]
fn killed_after_a_wave_the_rerun_goes_on_without_applying_anything_twice() {
    let fleet = Fleet::new(WAVES, NEGATIVE_PROBE);
    fleet.with_orders();
    fleet.project.change(
        "0002_status",
        "-- ripcord:deploy\nALTER TABLE orders ADD COLUMN status text;\n-- ripcord:revert\nALTER TABLE orders DROP COLUMN status;\n",
    );
    let output = fleet.run_with(("RIPCORD_FAILPOINT", "rollout_after_wave"), &["rollout"]);
    assert!(output.status.code() != Some(0) && output.status.code() != Some(1));
    assert!(fleet.deployed(0, "0002_status"));
    assert!(!fleet.deployed(1, "0002_status"));

    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 0);
    assert!(
        stderr(&output).contains("resuming rollout"),
        "{}",
        stderr(&output)
    );
    for i in 0..4 {
        assert!(fleet.deployed(i, "0002_status"));
        assert_eq!(
            fleet.events(i, "deploy_completed", "0002_status"),
            1,
            "s{}",
            i + 1
        );
    }
    assert_eq!(
        fleet.states(),
        ["verified", "verified", "verified", "verified"]
    );
}

#[test]
fn a_target_that_drifted_from_the_canary_is_held_back_and_reported() {
    let fleet = Fleet::new(WAVES, "");
    fleet.with_orders();
    fleet.exec(2, "CREATE INDEX handmade ON orders (total)");
    fleet.project.change(
        "0002_status",
        "-- ripcord:deploy\nALTER TABLE orders ADD COLUMN status text;\n-- ripcord:revert\nALTER TABLE orders DROP COLUMN status;\n",
    );
    let output = fleet.run(&["rollout", "--dry-run", "--json"]);
    expect_exit(&output, 0);
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["targets"][2]["state"], "skipped");
    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 0);
    let err = stderr(&output);
    assert!(err.contains("s3 held back: drift"), "{err}");
    assert!(err.contains("handmade"), "{err}");
    assert!(!fleet.deployed(2, "0002_status"));
    for i in [0, 1, 3] {
        assert!(fleet.deployed(i, "0002_status"));
    }
}

#[test]
fn fleet_configuration_errors_name_the_problem_and_change_nothing() {
    let fleet = Fleet::new("waves = [[\"s1\"], [\"s9\"]]", "");
    fleet.project.change("0001_orders", ORDERS);
    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 2);
    assert!(
        stderr(&output).contains("names `s9`, which is not in the fleet"),
        "{}",
        stderr(&output)
    );

    let config = std::fs::read_to_string(fleet.project.path().join("ripcord.toml")).unwrap();
    fleet.project.write_config(
        &config
            .replace("waves = [[\"s1\"], [\"s9\"]]", "")
            .replace("\"s4\"]", "\"s4\", \"s5\"]"),
    );
    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 2);
    assert!(
        stderr(&output).contains("unknown target `s5`"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        fleet.scalar(0, "SELECT to_regnamespace('ripcord') IS NULL"),
        "true"
    );
}

#[test]
fn a_second_rollout_of_the_same_fleet_is_refused_while_one_runs() {
    let fleet = Fleet::new(
        WAVES,
        "[health]\nwatch = \"3s\"\ninterval = \"1s\"\nprobes = [{ name = \"ok\", command = \"true\" }]\n",
    );
    fleet.project.change("0001_orders", ORDERS);
    let mut first = ripcord_in(fleet.project.path())
        .args(["rollout"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let output = fleet.run(&["rollout"]);
    expect_exit(&output, 3);
    assert!(stderr(&output).contains("pid"), "{}", stderr(&output));
    assert!(first.wait().unwrap().success());
}

#[test]
fn a_plain_revert_on_sqlite_switches_the_change_flags_off_first() {
    let project = Project::sqlite();
    project.change(
        "0001_coupons",
        "-- flags: coupons, fast_path\n-- ripcord:deploy\nCREATE TABLE coupons (code text);\n-- ripcord:revert\nDROP TABLE coupons;\n",
    );
    let run = |args: &[&str]| ripcord_in(project.path()).args(args).output().unwrap();
    expect_exit(&run(&["deploy"]), 0);
    expect_exit(&run(&["flag", "set", "coupons", "on"]), 0);
    expect_exit(&run(&["flag", "set", "fast_path", "on"]), 0);
    assert_eq!(stdout(&run(&["flag", "get", "coupons"])).trim(), "on");
    expect_exit(&run(&["revert", "--yes"]), 0);
    assert_eq!(stdout(&run(&["flag", "get", "coupons"])).trim(), "off");
    assert_eq!(stdout(&run(&["flag", "get", "fast_path"])).trim(), "off");
    let list = stdout(&run(&["flag", "list"]));
    assert!(list.contains("coupons off"), "{list}");
    // A flag name that could not be a header's is refused with exit 2.
    let output = run(&["flag", "set", "bad name;", "on"]);
    expect_exit(&output, 2);
    assert!(
        stderr(&output).contains("is not a flag name"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_fleet_read_from_a_file_or_a_catalogue_query_rolls_out_to_every_listed_tenant() {
    let project = Project::sqlite();
    project.change("0001_orders", ORDERS);
    std::fs::write(
        project.path().join("tenants.txt"),
        "# one tenant per line\nacme sqlite://acme.db\nsqlite://globex.db\n",
    )
    .unwrap();
    let catalogue = rusqlite::Connection::open(project.path().join("catalogue.db")).unwrap();
    catalogue
        .execute_batch(
            "CREATE TABLE tenants (name text, url text);
             INSERT INTO tenants VALUES ('initech', 'sqlite://initech.db'), ('hooli', 'sqlite://hooli.db');",
        )
        .unwrap();
    project.write_config(
        "[project]\nname = \"shop\"\n\n[targets.catalogue]\nurl = \"sqlite://catalogue.db\"\n\n\
         [fleets.listed]\ntargets_from = \"file:tenants.txt\"\n\n\
         [fleets.queried]\ntargets_from = \"query:catalogue:select name, url from tenants order by name\"\n",
    );
    let run = |args: &[&str]| ripcord_in(project.path()).args(args).output().unwrap();
    for fleet in ["listed", "queried"] {
        let output = run(&["--json", "rollout", "--fleet", fleet]);
        expect_exit(&output, 0);
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let names: Vec<&str> = report["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["target"].as_str().unwrap())
            .collect();
        let expected: &[&str] = if fleet == "listed" {
            &["acme", "sqlite://globex.db"]
        } else {
            &["hooli", "initech"]
        };
        assert_eq!(names, expected, "{fleet}");
    }
    for tenant in ["acme", "globex", "initech", "hooli"] {
        let db = rusqlite::Connection::open(project.path().join(format!("{tenant}.db"))).unwrap();
        let tables: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'orders'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1, "{tenant} has the orders table");
    }

    // A query naming an unknown catalogue is a config error with the line, exit 2.
    project.write_config(
        "[project]\nname = \"shop\"\n\n[fleets.queried]\ntargets_from = \"query:catalog:select url from tenants\"\n",
    );
    let output = run(&["rollout", "--fleet", "queried"]);
    expect_exit(&output, 2);
    assert!(
        stderr(&output).contains("queries an unknown target `catalog`"),
        "{}",
        stderr(&output)
    );
}
