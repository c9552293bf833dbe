//! `ripcord serve` through the binary: the JSON API and `/metrics` against a real
//! PostgreSQL target with history, a target that is down, a taken port and the token.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use common::*;

/// A running `ripcord serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(project: &Project, env: &[(&str, &str)]) -> Server {
        Server::start_with(project, env, &[])
    }

    fn start_with(project: &Project, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut command = ripcord_in(project.path());
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start ripcord serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Server { child, base }
    }

    /// Status and body of GET `path`.
    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().expect("the server answers");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path, None);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const A: &str = "-- ripcord:deploy\nCREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL);\nINSERT INTO acct VALUES (1, 10), (2, 20);\n-- ripcord:revert\nDROP TABLE acct;\n";
const B: &str = "-- ripcord:deploy\nCREATE TABLE b (id int);\n-- ripcord:revert\nDROP TABLE b;\n";

/// The value of the sample `name` with exactly `labels`, from a parsed scrape.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match found.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name} is {other:?}"),
    }
}

#[test]
fn the_api_and_metrics_show_a_postgres_targets_history() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(database) = &db else {
        unreachable!()
    };
    project.write_config(&format!(
        "[project]\nname = \"test\"\ndefault_target = \"test\"\n\n[targets.test]\nurl = \"{}\"\n\n\
         [[checks]]\nname = \"no negative balances\"\nsql = \"select id from acct where balance < 0\"\n\
         expect = {{ zero_rows = true }}\ntables = [\"acct\"]\n",
        database.url
    ));
    project.change("0001_acct", A);
    project.change("0002_b", B);
    ok(&project, &["deploy"]);
    ok(&project, &["revert", "--yes"]);
    // 0002_b is pending again: a drill proves it; a snapshot goes to the store.
    ok(&project, &["drill"]);
    ok(&project, &["snapshot", "create", "--tables", "public.acct"]);
    ok(&project, &["capture", "enable", "acct"]);
    db.exec("SET ripcord.batch = 'load-7'; UPDATE acct SET balance = 0; RESET ripcord.batch;");
    ok(&project, &["batch", "revert", "load-7"]);
    let server = Server::start(&project, &[]);

    let targets = server.json("/api/targets");
    let test = &targets["targets"][0];
    assert_eq!(test["name"], "test");
    assert_eq!(test["reachable"], true);
    assert_eq!(test["deployed"], serde_json::json!(["0001_acct"]));
    assert_eq!(test["pending"], serde_json::json!(["0002_b"]));
    assert_eq!(test["chain_intact"], true);
    assert!(
        !test["url"].as_str().unwrap().contains("password"),
        "{test}"
    );

    let history = server.json("/api/targets/test/history");
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "deploy_completed").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"revert_completed"), "{kinds:?}");

    // Paged events: two at a time, in order, to the end.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = server.json(&format!("/api/targets/test/events?after={after}&limit=2"));
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        seen.extend(events.iter().map(|e| e["seq"].as_i64().unwrap()));
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    let total = server.json("/api/targets/test/events?limit=1000")["total"]
        .as_u64()
        .unwrap();
    assert_eq!(seen, (1..=total as i64).collect::<Vec<_>>());

    let checks = server.json("/api/targets/test/checks");
    assert_eq!(checks["gates"][0]["kind"], "gate_passed", "{checks}");
    let drills = server.json("/api/targets/test/drills");
    assert_eq!(drills["drills"][0]["detail"]["passed"], true, "{drills}");
    let snapshots = server.json("/api/snapshots");
    assert_eq!(
        snapshots["snapshots"][0]["tables"],
        serde_json::json!(["public.acct"]),
        "{snapshots}"
    );

    let batches = server.json("/api/targets/test/batches");
    assert!(batches.to_string().contains("load-7"), "{batches}");
    let audit = server.json("/api/targets/test/audit");
    assert!(audit["broken"].is_null(), "{audit}");

    // Unknown target and a path that is not there: JSON 404s, and the server goes on.
    let (status, body) = server.get("/api/targets/nope/history", None);
    assert_eq!(status, 404);
    assert!(body.contains("no target `nope`"), "{body}");
    let (status, _) = server.get("/api/../../etc/passwd", None);
    assert_eq!(status, 404);

    let (status, text) = server.get("/metrics", None);
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the scrape parses as Prometheus text");
    let test = [("target", "test")];
    assert_eq!(sample(&scrape, "ripcord_target_up", &test), 1.0);
    assert_eq!(
        sample(
            &scrape,
            "ripcord_deploys_total",
            &[("target", "test"), ("outcome", "success")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &scrape,
            "ripcord_reverts_total",
            &[("target", "test"), ("outcome", "success")]
        ),
        1.0
    );
    assert_eq!(sample(&scrape, "ripcord_batch_reverts_total", &test), 1.0);
    assert_eq!(sample(&scrape, "ripcord_pending_changes", &test), 1.0);
    assert_eq!(sample(&scrape, "ripcord_deployed_changes", &test), 1.0);
    assert_eq!(sample(&scrape, "ripcord_audit_chain_valid", &test), 1.0);
    assert_eq!(sample(&scrape, "ripcord_check_pass_ratio", &test), 1.0);
    // The one pending change (0002_b) was proved by the drill at its checksum.
    assert_eq!(sample(&scrape, "ripcord_drill_coverage_ratio", &test), 1.0);
    assert_eq!(sample(&scrape, "ripcord_snapshots_stored", &[]), 1.0);
    // Edited after the drill, the pending change is no longer proved (the server reads
    // the project's files when it starts).
    drop(server);
    project.change("0002_b", &B.replace("(id int)", "(id bigint)"));
    let server = Server::start(&project, &[]);
    let (_, text) = server.get("/metrics", None);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    assert_eq!(sample(&scrape, "ripcord_drill_coverage_ratio", &test), 0.0);
    assert_eq!(
        sample(&scrape, "ripcord_prepared_transactions_in_doubt", &test),
        0.0
    );
    // Metric names follow Prometheus conventions: ripcord_ prefix, snake case, base
    // units, `_total` only on counters.
    for s in &scrape.samples {
        assert!(s.metric.starts_with("ripcord_"), "{}", s.metric);
        assert!(
            s.metric
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
            "{}",
            s.metric
        );
        let family = s.metric.strip_suffix("_total").unwrap_or(&s.metric);
        let is_counter = text.contains(&format!("# TYPE {family} counter\n"));
        assert_eq!(s.metric.ends_with("_total"), is_counter, "{}", s.metric);
    }
    // The page is served, self-contained (no CDN).
    let (status, page) = server.get("/", None);
    assert_eq!(status, 200);
    assert!(page.contains("<svg") || page.contains("createElementNS"));
    assert!(
        !page.contains("https://"),
        "the dashboard loads nothing from outside"
    );
}

#[test]
fn a_target_that_is_down_is_shown_unreachable_and_the_others_are_served() {
    let project = Project::sqlite();
    project.change("0001_b", B);
    ok(&project, &["deploy"]);
    project.write_config(
        "[project]\nname = \"test\"\n\n[targets.test]\nurl = \"sqlite://test.db\"\n\n[targets.down]\nurl = \"postgres://nobody@127.0.0.1:1/nothing\"\n",
    );
    let server = Server::start(&project, &[]);
    let targets = server.json("/api/targets")["targets"].clone();
    let by_name = |name: &str| {
        targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("down")["reachable"], false);
    assert!(
        by_name("down")["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect")
    );
    assert_eq!(by_name("test")["deployed"], serde_json::json!(["0001_b"]));
    let (status, body) = server.get("/api/targets/down/history", None);
    assert_eq!(status, 503, "{body}");
    let (_, metrics) = server.get("/metrics", None);
    assert!(
        metrics.contains("ripcord_target_up{target=\"down\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ripcord_target_up{target=\"test\"} 1"),
        "{metrics}"
    );

    // A second server on the same port: exit 2 naming the address.
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let output = ripcord_in(project.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    expect_exit(&output, 2);
    assert!(
        stderr(&output).contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn with_a_token_every_request_needs_it() {
    let project = Project::sqlite();
    project.change("0001_b", B);
    ok(&project, &["deploy"]);
    let server = Server::start(&project, &[("RIPCORD_SERVE_TOKEN", "s3cret")]);
    for path in ["/api/targets", "/metrics", "/"] {
        let (status, _) = server.get(path, None);
        assert_eq!(status, 401, "{path} without the token");
        let (status, _) = server.get(path, Some("wrong"));
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, _) = server.get(path, Some("s3cret"));
        assert_eq!(status, 200, "{path} with the token");
    }
    let (status, _) = server.get("/?token=s3cret", None);
    assert_eq!(status, 200);
}

/// A new ed25519 key pair from `ripcord audit keygen`: (private, public).
fn keypair(project: &Project) -> (String, String) {
    let keys: serde_json::Value =
        serde_json::from_str(&ok(project, &["audit", "keygen", "--json"])).unwrap();
    (
        keys["private_key"].as_str().unwrap().to_string(),
        keys["public_key"].as_str().unwrap().to_string(),
    )
}

#[test]
fn the_chain_verdict_checks_signatures_against_the_trusted_key() {
    let project = Project::sqlite();
    let (signing, signing_public) = keypair(&project);
    let (_, other_public) = keypair(&project);
    let config = |public: &str| {
        project.write_config(&format!(
            "[project]\nname = \"test\"\ndefault_target = \"test\"\n\n[targets.test]\nurl = \"sqlite://test.db\"\n\n\
             [audit]\nsigning_key_env = \"TEST_SIGNING_KEY\"\npublic_key = \"{public}\"\n"
        ))
    };
    config(&signing_public);
    project.change("0001_acct", A);
    let deployed = ripcord_in(project.path())
        .args(["deploy"])
        .env("TEST_SIGNING_KEY", &signing)
        .output()
        .unwrap();
    expect_exit(&deployed, 0);
    // Signed by a key the project does not trust: the server says the chain is broken,
    // as `audit verify` does.
    config(&other_public);
    expect_exit(&run(&project, &["audit", "verify"]), 1);
    {
        let server = Server::start(&project, &[]);
        let targets = server.json("/api/targets");
        assert_eq!(targets["targets"][0]["chain_intact"], false, "{targets}");
        let audit = server.json("/api/targets/test/audit");
        assert!(
            audit["signatures"]["problem"]
                .to_string()
                .contains("not a trusted key"),
            "{audit}"
        );
        let (_, metrics) = server.get("/metrics", None);
        let scrape =
            prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string()))).unwrap();
        assert_eq!(
            sample(&scrape, "ripcord_audit_chain_valid", &[("target", "test")]),
            0.0
        );
    }
    config(&signing_public);
    let server = Server::start(&project, &[]);
    assert_eq!(
        server.json("/api/targets")["targets"][0]["chain_intact"],
        true
    );
}

#[test]
fn serve_drains_the_logical_capture_slot_into_the_capture_log() {
    let (project, db) = Db::postgres_logical_project();
    let Db::Postgres(database) = &db else {
        unreachable!()
    };
    project.write_config(&format!(
        "[project]\nname = \"test\"\ndefault_target = \"test\"\n\n[targets.test]\nurl = \"{}\"\n\n[capture]\nmode = \"logical\"\n",
        database.url
    ));
    project.change("0001_acct", A);
    ok(&project, &["deploy"]);
    ok(&project, &["capture", "enable", "acct"]);
    let server = Server::start_with(&project, &[], &["--capture-sync-every", "1"]);
    db.exec(
        "SET ripcord.batch = 'load-9'; UPDATE acct SET balance = balance + 1; RESET ripcord.batch;",
    );
    // Nothing but the server syncs here: the rows reach the log through it alone.
    let logged = || {
        db.scalar("SELECT coalesce(sum(rows), 0)::text FROM ripcord.capture_statements WHERE batch = 'load-9'")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while logged() != "2" {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not drain the slot: {} rows logged",
            logged()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (_, text) = server.get("/metrics", None);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    assert!(
        sample(
            &scrape,
            "ripcord_capture_synced_rows_total",
            &[("target", "test")]
        ) >= 2.0,
        "{text}"
    );
    assert!(
        sample(
            &scrape,
            "ripcord_capture_retained_wal_bytes",
            &[("target", "test")]
        ) >= 0.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &scrape,
            "ripcord_capture_sync_failures_total",
            &[("target", "test")]
        ),
        0.0
    );
    // What serve drained is what a batch revert undoes.
    drop(server);
    ok(&project, &["batch", "revert", "load-9"]);
    assert_eq!(db.scalar("SELECT sum(balance)::text FROM acct"), "30");
}
