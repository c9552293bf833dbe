//! `ripcord check`: run the project's `[[checks]]`, save and list baselines; and how a
//! check report reads, for `check` and for the gates of deploy and revert.

use std::fmt::Write as _;

use ripcord::check::{BaselineRef, CheckOptions, CheckOutcome, CheckReport};
use ripcord_core::config::{CheckSeverity, Expectation};

use crate::cli::{CheckArgs, GlobalArgs};
use crate::error::{CommandError, Exit};
use crate::printer::{Printer, paint, style};
use crate::settings::Project;

/// The expectations of a check, in words.
pub fn expectation(expect: &Expectation) -> String {
    let mut parts = Vec::new();
    if let Some(v) = &expect.equals {
        parts.push(format!("equals {v}"));
    }
    if let Some(v) = expect.min {
        parts.push(format!("at least {v}"));
    }
    if let Some(v) = expect.max {
        parts.push(format!("at most {v}"));
    }
    if let Some([a, b]) = expect.between {
        parts.push(format!("between {a} and {b}"));
    }
    if let Some(p) = expect.within_pct_of_baseline {
        parts.push(format!("within {p}% of the baseline"));
    }
    if expect.zero_rows == Some(true) {
        parts.push("no rows".into());
    }
    if expect.checksum_equals_baseline == Some(true) {
        parts.push("same rows as the baseline".into());
    }
    if let Some(f) = expect.null_fraction_max {
        parts.push(format!("NULLs at most {f}"));
    }
    if let Some(p) = expect.distinct_count_within_pct {
        parts.push(format!("distinct values within {p}% of the baseline"));
    }
    if let Some(p) = expect.quantiles_within_pct {
        parts.push(format!("p50 and p95 within {p}% of the baseline"));
    }
    parts.join(", ")
}

fn value(outcome: &CheckOutcome) -> String {
    match &outcome.value {
        serde_json::Value::Null if outcome.error.is_some() => "-".into(),
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::String(s) => format!("'{s}'"),
        serde_json::Value::Object(map) if map.contains_key("tables") => {
            let tables = map["tables"].as_object().map_or(0, |t| t.len());
            format!("{tables} table(s) hashed")
        }
        serde_json::Value::Object(map) if map.contains_key("distinct") => format!(
            "{} rows, {} NULL, {} distinct, p50 {}, p95 {}",
            map["rows"], map["nulls"], map["distinct"], map["p50"], map["p95"]
        ),
        other => other.to_string(),
    }
}

/// A check report: one line per check with value, expectation and verdict, why it
/// failed, and a summary.
pub fn report(report: &CheckReport, heading: &str) -> String {
    let mut out = String::new();
    let against = report
        .against
        .as_ref()
        .map(|b| format!(" (against baseline {b})"))
        .unwrap_or_default();
    let _ = writeln!(out, "{heading}{against}:");
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for check in &report.checks {
        let verdict = match (check.passed, check.severity) {
            (true, _) if check.skipped.is_some() => paint(style::DIM, "skip"),
            (true, _) => paint(style::OK, "pass"),
            (false, CheckSeverity::Warn) => paint(style::DIM, "warn"),
            (false, CheckSeverity::Error) => paint(style::BAD, "FAIL"),
        };
        let _ = writeln!(
            out,
            "  {verdict}  {:<width$}  {}  {}",
            check.name,
            value(check),
            paint(
                style::DIM,
                format!("(expects {})", expectation(&check.expect))
            )
        );
        for reason in &check.reasons {
            let _ = writeln!(out, "        {reason}");
        }
        for row in &check.sample {
            let _ = writeln!(out, "        {}", paint(style::DIM, row.to_string()));
        }
        if let Some(skipped) = &check.skipped {
            let _ = writeln!(out, "        {}", paint(style::DIM, skipped));
        }
    }
    let failed = report.failures().len();
    let warned = report
        .checks
        .iter()
        .filter(|c| !c.passed && c.severity == CheckSeverity::Warn)
        .count();
    let skipped = report
        .checks
        .iter()
        .filter(|c| c.passed && c.skipped.is_some())
        .count();
    let passed = report.checks.len() - failed - warned - skipped;
    let mut counts = vec![format!("{passed} passed")];
    for (n, word) in [(failed, "failed"), (warned, "warned"), (skipped, "skipped")] {
        if n > 0 {
            counts.push(format!("{n} {word}"));
        }
    }
    let _ = writeln!(
        out,
        "{} {}.",
        if failed == 0 {
            paint(style::OK, "Checks passed:")
        } else {
            paint(style::BAD, "Checks failed:")
        },
        counts.join(", ")
    );
    if let Some(saved) = &report.saved {
        let _ = writeln!(out, "Saved baseline {saved}.");
    }
    out
}

/// `ripcord check`.
pub fn run(args: &CheckArgs, global: &GlobalArgs, printer: Printer) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let config = project.require_config()?;
    let mut target = project.target(global)?;
    if args.list_baselines {
        let baselines = ripcord::check::list_baselines(&mut target)?;
        printer.json(&serde_json::json!({ "target": target.name, "baselines": baselines }));
        if baselines.is_empty() {
            printer.line(format!(
                "No baselines on {} yet: `ripcord check --save-baseline NAME` saves one.",
                target.name
            ));
        }
        for b in &baselines {
            printer.line(format!(
                "{}@{}  {}  by {}  {} checks",
                b.name,
                b.version,
                b.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                b.created_by,
                b.checks.len()
            ));
        }
        return Ok(Exit::Success);
    }
    let checks = &config.config.checks;
    if checks.is_empty() {
        return Err(CommandError::new(Exit::Usage, "this project has no checks")
            .hint("add a [[checks]] entry to ripcord.toml (`ripcord check --help` shows one)"));
    }
    let options = CheckOptions {
        save_baseline: args.save_baseline.clone(),
        against: args.against.as_deref().map(BaselineRef::parse),
        ..Default::default()
    };
    let result = ripcord::check::run(&mut target, checks, &options)?;
    for check in &result.checks {
        crate::events::step(
            "check_run",
            "check",
            &target.name,
            None,
            None,
            if check.passed { "success" } else { "failure" },
            &if check.reasons.is_empty() {
                check.name.clone()
            } else {
                format!("{}: {}", check.name, check.reasons.join("; "))
            },
        );
    }
    printer.json(&result);
    printer.block(report(&result, &format!("Checks on {}", target.name)));
    Ok(if result.passed {
        Exit::Success
    } else {
        Exit::Failed
    })
}
