//! Human renderings of reports: plain text with styles, kept apart from the commands
//! so they are easy to read and to snapshot.

use std::fmt::Write;

use ripcord::audit::ChainReport;
use ripcord::deploy::DeployReport;
use ripcord::drill::{DrillOutcome, DrillReport, FingerprintReport};
use ripcord::revert::RevertReport;
use ripcord::status::{ChangeStatus, StatusReport};
use ripcord::verify::VerifyReport;
use ripcord_core::audit::AuditEvent;

use crate::printer::{paint, style};

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `name (url)`, or only the URL for an ad-hoc target named by its URL.
pub fn target_label(name: &str, url: &str) -> String {
    if name == url || name.contains("://") {
        url.to_string()
    } else {
        format!("{name} ({url})")
    }
}

/// `ripcord status`.
pub fn status(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}",
        paint(style::HEAD, "Target"),
        target_label(&report.target, &report.url)
    );
    if report.changes.is_empty() {
        out.push_str("  No changes in this project yet. Create one with `ripcord new <slug>`.\n");
        out.push_str(&other_projects(report));
        return out;
    }
    let width = report
        .changes
        .iter()
        .map(|c| c.change.len())
        .max()
        .unwrap_or(0);
    for entry in &report.changes {
        let label = entry.status.label();
        let styled = match entry.status {
            ChangeStatus::Deployed => paint(style::OK, format!("{label:<9}")),
            ChangeStatus::Pending => paint(style::DIM, format!("{label:<9}")),
            _ => paint(style::BAD, format!("{label:<9}")),
        };
        let note = match entry.status {
            ChangeStatus::Deployed => match (&entry.deployed_at, &entry.deployed_by) {
                (Some(at), Some(by)) => format!("{} by {by}", at.format("%Y-%m-%d %H:%M:%S UTC")),
                _ => String::new(),
            },
            ChangeStatus::Pending => String::new(),
            ChangeStatus::Modified => format!(
                "file changed since deploy: `ripcord rehash {} --reason \"…\"` accepts it",
                entry.change
            ),
            ChangeStatus::MissingFile => {
                "deployed, but its file is gone (revert still works from the ledger)".into()
            }
            ChangeStatus::PartlyDeployed => {
                let (done, total) = entry.progress.unwrap_or_default();
                format!(
                    "deploy stopped after {done} of {total} statements: `ripcord deploy` resumes it"
                )
            }
            ChangeStatus::PartlyReverted => {
                let (done, total) = entry.progress.unwrap_or_default();
                format!(
                    "revert stopped after {done} of {total} statements: `ripcord revert` resumes it"
                )
            }
            ChangeStatus::Invalid => format!(
                "{}{}",
                entry.problem.as_deref().unwrap_or("cannot be read"),
                if entry.deployed_at.is_some() {
                    " (deployed)"
                } else {
                    ""
                }
            ),
        };
        if note.is_empty() {
            let _ = writeln!(out, "  {styled} {}", entry.change);
        } else {
            let _ = writeln!(
                out,
                "  {styled} {:<width$}  {}",
                entry.change,
                paint(style::DIM, note)
            );
        }
    }
    let mut counts = Vec::new();
    for status in [
        ChangeStatus::Deployed,
        ChangeStatus::Pending,
        ChangeStatus::Modified,
        ChangeStatus::MissingFile,
        ChangeStatus::PartlyDeployed,
        ChangeStatus::PartlyReverted,
        ChangeStatus::Invalid,
    ] {
        let n = report.count(status);
        if n > 0 {
            counts.push(format!("{n} {}", status.label()));
        }
    }
    let _ = writeln!(out, "{}", counts.join(", "));
    out.push_str(&other_projects(report));
    out
}

/// The other projects' changes on a status's target, in one line each.
fn other_projects(report: &StatusReport) -> String {
    let mut out = others_note(&report.other_projects);
    if !report.other_projects.is_empty() && report.project.as_deref() == Some("") {
        let _ = writeln!(
            out,
            "{}",
            paint(
                style::DIM,
                "This project has no name: set `name` under [project] in ripcord.toml so that projects sharing a database stay apart."
            )
        );
    }
    out
}

/// One line per other project with changes on the target.
fn others_note(others: &[ripcord::scope::OtherProject]) -> String {
    let mut out = String::new();
    for other in others {
        let whose = match other.project.as_deref() {
            Some("") => "an unnamed project".to_string(),
            Some(name) => format!("project {name}"),
            None => "before ripcord recorded projects, and in no file of this project".into(),
        };
        let _ = writeln!(
            out,
            "{}",
            paint(
                style::DIM,
                format!(
                    "Also on this target, deployed by {whose}: {} (not this project's; deploy and revert leave {} alone)",
                    other.changes.join(", "),
                    if other.changes.len() == 1 {
                        "it"
                    } else {
                        "them"
                    }
                )
            )
        );
    }
    out
}

/// `ripcord deploy --dry-run`: exactly the SQL that would run.
pub fn deploy_dry_run(report: &DeployReport) -> String {
    let mut out = String::new();
    if report.planned.is_empty() {
        let _ = writeln!(
            out,
            "Nothing to deploy on {}: every change is deployed.",
            report.target
        );
        return out;
    }
    let _ = writeln!(
        out,
        "Would deploy {} to {}, each in its own transaction unless marked `transaction: none`:",
        plural(report.planned.len(), "change", "changes"),
        target_label(&report.target, &report.url),
    );
    for change in &report.planned {
        let _ = writeln!(
            out,
            "\n-- change {} (transaction: {})",
            change.change,
            change.transaction.as_str()
        );
        if change.resume_at > 0 {
            let _ = writeln!(out, "-- resuming after statement {}", change.resume_at);
        }
        for statement in &change.statements {
            let _ = writeln!(
                out,
                "-- {} {}\n{};",
                statement.phase.as_str(),
                statement.at,
                statement.sql
            );
        }
    }
    out
}

/// The summary after a deploy (the per-change lines are printed as they finish).
pub fn deploy_summary(report: &DeployReport) -> String {
    let summary = if report.deployed.is_empty() {
        format!(
            "Nothing to deploy on {}: every change is deployed.\n",
            report.target
        )
    } else {
        format!(
            "Deployed {} to {} in {} ms.\n",
            plural(report.deployed.len(), "change", "changes"),
            report.target,
            report.duration_ms
        )
    };
    summary + &others_note(&report.other_projects)
}

/// `ripcord revert --dry-run`.
pub fn revert_dry_run(report: &RevertReport) -> String {
    let mut out = String::new();
    if report.planned.is_empty() {
        let _ = writeln!(out, "Nothing to revert on {}.", report.target);
        out.push_str(&others_note(&report.other_projects));
        return out;
    }
    let _ = writeln!(
        out,
        "Would revert {} on {}, newest first:",
        plural(report.planned.len(), "change", "changes"),
        target_label(&report.target, &report.url)
    );
    for change in &report.planned {
        let _ = writeln!(
            out,
            "\n-- revert {} (from {})",
            change.change, change.source
        );
        for sql in &change.statements {
            let _ = writeln!(out, "{sql};");
        }
    }
    out
}

/// The summary after a revert.
pub fn revert_summary(report: &RevertReport) -> String {
    let summary = if report.reverted.is_empty() {
        format!("Nothing to revert on {}.\n", report.target)
    } else {
        format!(
            "Reverted {} on {} in {} ms.\n",
            plural(report.reverted.len(), "change", "changes"),
            report.target,
            report.duration_ms
        )
    };
    summary + &others_note(&report.other_projects)
}

/// `ripcord verify`.
pub fn verify(report: &VerifyReport) -> String {
    let mut out = String::new();
    if report.changes.is_empty() {
        let _ = writeln!(out, "Nothing deployed on {}.", report.target);
        return out;
    }
    for change in &report.changes {
        match change.result {
            "passed" => {
                let _ = writeln!(out, "  {} {}", paint(style::OK, "ok  "), change.change);
            }
            "failed" => {
                let _ = writeln!(
                    out,
                    "  {} {}: {} ({})",
                    paint(style::BAD, "FAIL"),
                    change.change,
                    change.error.as_deref().unwrap_or_default(),
                    change.at.as_deref().unwrap_or_default()
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "  {} {} (no verify section)",
                    paint(style::DIM, "--  "),
                    change.change
                );
            }
        }
    }
    let passed = report
        .changes
        .iter()
        .filter(|c| c.result == "passed")
        .count();
    let _ = writeln!(out, "{passed} passed, {} failed", report.failed());
    out
}

fn event_line(event: &AuditEvent, with_seq: bool) -> String {
    let at = event.at.replace('T', " ").trim_end_matches('Z').to_string();
    let at = at.split('.').next().unwrap_or(&at).to_string();
    let detail = event.detail_json();
    let mut extra = Vec::new();
    if let Some(ms) = detail.get("duration_ms").and_then(|v| v.as_u64()) {
        extra.push(format!("{ms} ms"));
    }
    if let Some(reason) = detail.get("reason").and_then(|v| v.as_str()) {
        extra.push(format!("reason: {reason}"));
    }
    if let Some(error) = detail.get("error").and_then(|v| v.as_str()) {
        extra.push(format!("error: {error}"));
    }
    let kind = match event.kind.as_str() {
        k if k.ends_with("failed") => paint(style::BAD, format!("{k:<17}")),
        k if k.starts_with("revert") => paint(style::UNDO, format!("{k:<17}")),
        k => paint(style::OK, format!("{k:<17}")),
    };
    let seq = if with_seq {
        format!("#{:<4} ", event.seq)
    } else {
        String::new()
    };
    let line = format!(
        "{seq}{at} UTC  {kind} {:<24} {}@{}  {}",
        event.change.as_deref().unwrap_or("-"),
        event.actor,
        event.host,
        extra.join(", ")
    );
    line.trim_end().to_string()
}

/// `ripcord log`.
pub fn history(target: &str, events: &[AuditEvent]) -> String {
    if events.is_empty() {
        return format!("No deploys or reverts recorded on {target} yet.\n");
    }
    events.iter().map(|e| event_line(e, false) + "\n").collect()
}

/// `ripcord audit log`.
pub fn audit_log(target: &str, events: &[AuditEvent]) -> String {
    if events.is_empty() {
        return format!("The audit chain of {target} is empty (no ledger yet).\n");
    }
    events
        .iter()
        .map(|e| {
            format!(
                "{}  {}\n",
                event_line(e, true),
                paint(style::DIM, &e.hash[..16])
            )
        })
        .collect()
}

/// `ripcord audit verify`.
pub fn audit_verify(report: &ChainReport) -> String {
    let mut out = match (&report.broken, &report.head) {
        (Some(broken), _) => format!(
            "{} audit chain of {} is broken: {broken}. Events from #{} on cannot be trusted.\n",
            paint(style::BAD, "BROKEN"),
            report.target,
            broken.seq()
        ),
        (None, Some(head)) if report.ledger.problems.is_empty() => format!(
            "{} audit chain of {}: {} intact, head {}; {} of the ledger match it\n",
            paint(style::OK, "OK"),
            report.target,
            plural(report.events, "event", "events"),
            head,
            plural(report.ledger.checked, "deployed change", "deployed changes"),
        ),
        (None, Some(head)) => format!(
            "{} audit chain of {}: {} intact, head {}; but the ledger does not match it:\n",
            paint(style::BAD, "BROKEN"),
            report.target,
            plural(report.events, "event", "events"),
            head
        ),
        (None, None) if report.ledger.problems.is_empty() => format!(
            "The audit chain of {} is empty (no ledger yet).\n",
            report.target
        ),
        (None, None) => format!(
            "{} audit chain of {} is empty:\n",
            paint(style::BAD, "BROKEN"),
            report.target
        ),
    };
    for problem in &report.ledger.problems {
        let _ = writeln!(out, "  - {problem}");
    }
    if !report.ledger.unsealed.is_empty() {
        let _ = writeln!(
            out,
            "  {} written by an older ripcord {} not checked until the next deploy or revert records {}",
            plural(report.ledger.unsealed.len(), "ledger row", "ledger rows"),
            if report.ledger.unsealed.len() == 1 {
                "is"
            } else {
                "are"
            },
            if report.ledger.unsealed.len() == 1 {
                "it"
            } else {
                "them"
            },
        );
    }
    let signatures = &report.signatures;
    if let Some((seq, why)) = &signatures.problem {
        let _ = writeln!(
            out,
            "{} signature of event #{seq}: {why}",
            paint(style::BAD, "BROKEN")
        );
    } else if signatures.signed > 0 {
        let _ = writeln!(
            out,
            "  {} signed{}{}",
            plural(signatures.signed, "event", "events"),
            if signatures.checked {
                ", every signature verified"
            } else {
                " (set [audit] public_key to verify the signatures)"
            },
            if signatures.unsigned_before_signing > 0 {
                format!(
                    "; the first {} predate signing",
                    signatures.unsigned_before_signing
                )
            } else {
                String::new()
            }
        );
    }
    out
}

/// One rehearsed change of `ripcord drill`.
pub fn drill_outcome(outcome: &DrillOutcome) -> String {
    let mut out = String::new();
    if let Some(skipped) = &outcome.skipped {
        let _ = writeln!(
            out,
            "  {} {}: {skipped}",
            paint(style::DIM, "skip"),
            outcome.change
        );
        return out;
    }
    let timing = paint(
        style::DIM,
        format!(
            "(deploy {} ms, revert {} ms, redeploy {} ms)",
            outcome.deploy_ms, outcome.revert_ms, outcome.redeploy_ms
        ),
    );
    if outcome.passed {
        let _ = writeln!(
            out,
            "  {} {} {timing}",
            paint(style::OK, "pass"),
            outcome.change
        );
    } else if let Some(cause) = &outcome.knock_on_of {
        let _ = writeln!(
            out,
            "  {} {} (knock-on: {cause} could not be deployed before it)",
            paint(style::BAD, "FAIL"),
            outcome.change
        );
    } else {
        let _ = writeln!(out, "  {} {}", paint(style::BAD, "FAIL"), outcome.change);
    }
    if let Some(problem) = &outcome.problem {
        let _ = writeln!(out, "       {problem}");
    }
    if !outcome.revert_differences.is_empty() {
        let _ = writeln!(
            out,
            "       the revert does not restore the state before the change:"
        );
        for difference in &outcome.revert_differences {
            let _ = writeln!(out, "         - {}", difference.text);
        }
    }
    if !outcome.redeploy_differences.is_empty() {
        let _ = writeln!(
            out,
            "       deploying again does not reproduce the first deploy:"
        );
        for difference in &outcome.redeploy_differences {
            let _ = writeln!(out, "         - {}", difference.text);
        }
    }
    for statement in &outcome.locks {
        let locks: Vec<String> = statement
            .locks
            .iter()
            .map(|l| format!("{} on {}", l.mode, l.table))
            .collect();
        let mut line = format!(
            "       statement {} ({}): {}",
            statement.statement,
            statement.at,
            locks.join(", ")
        );
        if !statement.rewrote.is_empty() {
            line.push_str(&format!("; rewrote {}", statement.rewrote.join(", ")));
        }
        let _ = writeln!(out, "{}", paint(style::DIM, line));
    }
    if outcome.rebuilt {
        let _ = writeln!(
            out,
            "{}",
            paint(
                style::DIM,
                "       the scratch was rebuilt so that the next changes start with this one deployed"
            )
        );
    }
    out
}

/// The end of `ripcord drill`.
pub fn drill_summary(report: &DrillReport) -> String {
    let mut out = String::new();
    if !report.cleaned_up.is_empty() {
        let _ = writeln!(
            out,
            "Dropped leftovers of an interrupted drill: {}",
            report.cleaned_up.join(", ")
        );
    }
    if report.changes.is_empty() {
        let _ = writeln!(out, "Nothing to rehearse: no pending changes.");
        return out;
    }
    let failed = report.changes.iter().filter(|c| !c.passed).count();
    let start = match report.starting_state {
        "copy" => "a copy of the target".to_string(),
        _ => format!(
            "{} replayed{}",
            plural(report.replayed, "deployed change", "deployed changes"),
            if report.seeded {
                " and the seed script"
            } else {
                ""
            }
        ),
    };
    if failed == 0 {
        let _ = writeln!(
            out,
            "{} {} came back exactly (starting from {start}) in {} ms.",
            paint(style::OK, "Drill passed:"),
            plural(report.changes.len(), "change", "changes"),
            report.duration_ms
        );
    } else {
        let own = failed - report.knock_ons;
        let knock_ons = if report.knock_ons > 0 {
            format!(
                "; {} more failed only because an earlier change could not be deployed",
                report.knock_ons
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{} {} of {} did not come back exactly (starting from {start}){knock_ons}.",
            paint(style::BAD, "Drill failed:"),
            own,
            plural(report.changes.len(), "change", "changes")
        );
    }
    out
}

/// `ripcord fingerprint`.
pub fn fingerprint(report: &FingerprintReport) -> String {
    let mut out = String::new();
    if let (Some(objects), Some(digest)) = (report.schema_objects, &report.schema_digest) {
        let _ = writeln!(out, "schema  {objects} objects, digest {digest}");
    }
    let width = report
        .tables
        .iter()
        .map(|t| t.table.len())
        .max()
        .unwrap_or(0);
    for table in &report.tables {
        let _ = writeln!(
            out,
            "table   {:<width$}  {:>10} rows  hash {}",
            table.table, table.rows, table.hash
        );
    }
    let _ = writeln!(
        out,
        "{} of {} in {} ms",
        plural(report.tables.len(), "table", "tables"),
        report.target,
        report.duration_ms
    );
    out
}

/// A byte count as people read it (binary units).
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

/// `ripcord capture status`.
pub fn capture_status(target: &str, tables: &[ripcord_core::capture::CapturedTable]) -> String {
    if tables.is_empty() {
        return format!(
            "No table of {target} is captured. Start with `ripcord capture enable <table>`.\n"
        );
    }
    let mut out = String::new();
    for t in tables {
        let _ = writeln!(
            out,
            "  {} {}  key ({})  {} log rows  oldest {}  reachable from {}",
            if t.enabled {
                paint(style::OK, "on ")
            } else {
                paint(style::DIM, "off")
            },
            t.table,
            t.key_columns.join(", "),
            t.log_rows,
            t.oldest.map_or("-".to_string(), |o| o
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()),
            t.history_from.format("%Y-%m-%d %H:%M:%S UTC")
        );
        if t.mode == ripcord_core::capture::CaptureMode::Logical {
            let _ = writeln!(
                out,
                "      logical mode; the replication slot retains {} of WAL",
                t.retained_wal_bytes.map_or("-".to_string(), bytes)
            );
        }
    }
    out
}

/// `ripcord batch list`.
pub fn batches(batches: &[ripcord_core::capture::BatchSummary]) -> String {
    if batches.is_empty() {
        return "No captured batches.\n".into();
    }
    let width = batches.iter().map(|b| b.batch.len()).max().unwrap_or(0);
    batches
        .iter()
        .map(|b| {
            format!(
                "  {:<width$}  +{} ~{} -{}  {}  {} .. {}\n",
                b.batch,
                b.inserted,
                b.updated,
                b.deleted,
                b.tables.join(", "),
                b.first_at.format("%Y-%m-%d %H:%M:%S"),
                b.last_at.format("%H:%M:%S UTC")
            )
        })
        .collect()
}

/// `ripcord batch revert` and `ripcord flashback`.
pub fn undo(report: &ripcord::capture::UndoReport, dry_run: bool) -> String {
    let mut out = String::new();
    let conflicts = &report.outcome.conflicts;
    if !conflicts.is_empty() {
        let _ = writeln!(
            out,
            "{} {} changed later by other batches:",
            paint(style::BAD, "Conflicts:"),
            plural(conflicts.len(), "row was", "rows were")
        );
        for c in conflicts.iter().take(20) {
            let _ = writeln!(
                out,
                "  {} key ({}) changed by {} at {}",
                c.table,
                c.key,
                c.later_batch,
                c.at.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
        if conflicts.len() > 20 {
            let _ = writeln!(out, "  … and {} more (see --json)", conflicts.len() - 20);
        }
    }
    for t in &report.outcome.tables {
        let _ = writeln!(
            out,
            "  {}: {} deleted, {} restored, {} re-inserted{}",
            t.table,
            t.deleted,
            t.updated,
            t.inserted,
            if t.skipped > 0 {
                format!(", {} skipped (conflicts)", t.skipped)
            } else {
                String::new()
            }
        );
    }
    let verdict = if report.committed {
        format!(
            "Undid {} (its own changes are tagged {}, so it can be undone too).",
            report.scope, report.tag
        )
    } else if dry_run {
        format!("Dry run: nothing of {} was changed.", report.scope)
    } else {
        format!(
            "Nothing changed: {} conflicts. Re-run with --on-conflict skip (leave those rows) or --on-conflict force (restore them anyway).",
            report.scope
        )
    };
    let _ = writeln!(out, "{verdict}");
    out
}

/// `ripcord vault list` and `ripcord vault prune`.
pub fn vault(report: &ripcord::vault::VaultReport, pruned: bool) -> String {
    if report.entries.is_empty() {
        return if pruned {
            "Nothing to prune: every vault entry is still needed by a deployed change's revert.\n"
                .into()
        } else {
            format!("The vault of {} is empty.\n", report.target)
        };
    }
    let mut out = String::new();
    let _ = if pruned {
        writeln!(
            out,
            "Pruned {} vault entries of {}:",
            report.entries.len(),
            report.target
        )
    } else {
        writeln!(out, "Vault of {}:", report.target)
    };
    let width = report
        .entries
        .iter()
        .map(|e| e.change.len())
        .max()
        .unwrap_or(0);
    for e in &report.entries {
        let _ = writeln!(
            out,
            "  #{:<4} {:<width$}  statement {:<3} {:<11} {:<24} {:>9} rows  {:>10}  {}{}",
            e.id,
            e.change,
            e.statement,
            e.action,
            e.table,
            e.rows,
            if e.bytes > 0 {
                format!("{} KB", (e.bytes + 1023) / 1024)
            } else {
                String::new()
            },
            e.created_at.format("%Y-%m-%d %H:%M"),
            if e.live {
                "  (its revert needs it)"
            } else {
                ""
            }
        );
    }
    out
}

/// `ripcord diff`.
pub fn diff(report: &ripcord::diff::DiffReport) -> String {
    let mut out = String::new();
    for table in &report.tables {
        let total = table.added + table.removed + table.changed;
        let counts = format!(
            "{} added, {} removed, {} changed",
            table.added, table.removed, table.changed
        );
        let _ = writeln!(
            out,
            "{} {} (key {}): {}",
            if total == 0 && table.schema.is_empty() {
                paint(style::OK, "same")
            } else {
                paint(style::BAD, "DIFF")
            },
            table.table,
            table.key.join(", "),
            counts
        );
        for note in &table.schema {
            let _ = writeln!(out, "       {note}");
        }
        if table.duplicate_keys > 0 {
            let _ = writeln!(
                out,
                "       {} key values appear on more than one row (the key does not identify rows)",
                table.duplicate_keys
            );
        }
        for row in &table.rows {
            let key: Vec<String> = row
                .key
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect();
            let columns = if row.columns.is_empty() {
                String::new()
            } else {
                format!(": {}", row.columns.join(", "))
            };
            let _ = writeln!(out, "       {:<7} {}{columns}", row.kind, key.join(" "));
        }
        if (table.rows.len() as u64) < total {
            let _ = writeln!(
                out,
                "       … and {} more rows (--limit shows more)",
                total - table.rows.len() as u64
            );
        }
    }
    if report.total_differences == 0 {
        let _ = writeln!(
            out,
            "{} {} and {} hold the same rows ({} ms).",
            paint(style::OK, "No differences:"),
            report.a,
            report.b,
            report.duration_ms
        );
    } else {
        let _ = writeln!(
            out,
            "{} {} between {} (A) and {} (B) in {} ms.",
            paint(style::BAD, "Differences:"),
            report.total_differences,
            report.a,
            report.b,
            report.duration_ms
        );
    }
    out
}
