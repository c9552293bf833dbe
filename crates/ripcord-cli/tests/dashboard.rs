//! The dashboard of `ripcord serve` in a real headless Chromium: the page loads with no
//! console error, the timeline shows the fixture's deploys and reverts, and the Gantt of
//! a rolled-back rollout has one row per target. A screenshot is kept as an artifact.
//!
//! Needs Debian's `chromium`: installed with apt-get when missing and running as root;
//! otherwise the test fails and says how to install it, it never skips.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;

fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RIPCORD_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let output = Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .ok()?;
            output
                .status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        })
}

/// Chromium, installed with apt-get when it is missing and the tests run as root (as
/// the harness installs moto), so `cargo test --workspace` needs no set-up of its own.
fn chromium() -> PathBuf {
    if let Some(path) = find_chromium() {
        return path;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        let _ = Command::new("sh")
            .args([
                "-c",
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(path) = find_chromium() {
            return path;
        }
    }
    panic!(
        "the dashboard test needs a headless Chromium: install Debian's package \
         (`apt-get install -y chromium`, as .ci/run does) or set RIPCORD_CHROMIUM to its path"
    );
}

/// Chromium run headless on `url`, given time for the page's requests.
fn headless(url: &str, extra: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}

const CONFIG: &str = "[project]\nname = \"shops\"\n\n\
[targets.eu]\nurl = \"sqlite://eu.db\"\n[targets.us]\nurl = \"sqlite://us.db\"\n[targets.asia]\nurl = \"sqlite://asia.db\"\n\n\
[fleets.shops]\ntargets = [\"eu\", \"us\", \"asia\"]\nwaves = [[\"eu\"], [\"us\", \"asia\"]]\n\n\
[health]\nprobes = [{ name = \"canary only\", command = \"test $(echo $RIPCORD_TARGETS | tr , '\\\\n' | wc -l) -lt 2\" }]\n";

#[test]
fn the_dashboard_shows_the_timeline_and_a_gantt_row_per_target_without_console_errors() {
    let project = Project::sqlite();
    project.write_config(CONFIG);
    project.change(
        "0001_orders",
        "-- ripcord:deploy\nCREATE TABLE orders (id integer PRIMARY KEY);\n-- ripcord:revert\nDROP TABLE orders;\n",
    );
    // Healthy on the canary, breached once the second wave is in: all three reverted.
    let rollout = ripcord_in(project.path())
        .args(["rollout"])
        .output()
        .unwrap();
    expect_exit(&rollout, 1);
    assert!(
        stderr(&rollout).contains("rolled back"),
        "{}",
        stderr(&rollout)
    );

    let mut server = ripcord_in(project.path())
        .args(["serve", "--fleet", "shops", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();

    let page = headless(&url, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&page.stdout).to_string();
    let log = String::from_utf8_lossy(&page.stderr).to_string();
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let screenshot = headless(&url, &[&format!("--screenshot={}", shot.display())]);
    let _ = server.kill();
    let _ = server.wait();

    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page did not finish loading: {dom}"
    );
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    for kind in ["deploy_completed", "revert_completed"] {
        for target in ["eu", "us", "asia"] {
            assert!(
                dom.contains(&format!("data-kind=\"{kind}\" data-target=\"{target}\"")),
                "no {kind} of {target} on the timeline"
            );
        }
    }
    assert_eq!(dom.matches("class=\"gantt\"").count(), 1, "one rollout");
    for target in ["eu", "us", "asia"] {
        assert_eq!(
            dom.matches(&format!(
                "class=\"gantt-row\" data-target=\"{target}\" data-state=\"rolled_back\""
            ))
            .count(),
            1,
            "one rolled-back Gantt row for {target}"
        );
    }
    assert_eq!(dom.matches("class=\"gantt-row\"").count(), 3);
    // The pending change, shown with its risk class on each target.
    assert_eq!(
        dom.matches("data-risk=\"safe\"").count(),
        3,
        "pending changes with their risk"
    );
    // Time to detect against time to roll back: one incident, the rolled-back rollout.
    assert_eq!(
        dom.matches("class=\"incident\"").count(),
        1,
        "the incident is listed"
    );
    assert!(
        screenshot.status.success() && shot.metadata().map(|m| m.len() > 10_000).unwrap_or(false),
        "no screenshot at {}",
        shot.display()
    );
}
