//! Capture, batches and flashback over engines that can capture row changes (DESIGN
//! §5.5): enable/disable capture on tables, list batches, and undo one batch — or every
//! change of a table after a moment — in one transaction, with conflict detection. An
//! undo is itself captured under the tag `revert-of-<batch>` (or `flashback-…`), so it
//! can be undone in turn.

use ripcord_core::EngineError;
use ripcord_core::audit::NewEvent;
use ripcord_core::capture::{
    BatchSummary, Capture, CaptureMode, CapturedTable, ConflictMode, SyncReport, UndoOutcome,
    UndoProgress, UndoScope,
};
use serde::Serialize;
use serde_json::json;

use crate::error::OpError;
use crate::run::{append_event, append_event_in_own_tx, with_lock};
use crate::target::Target;

fn capture_of(target: &mut Target) -> Result<Box<dyn Capture + '_>, OpError> {
    target.engine.capture().ok_or_else(|| {
        OpError::Engine(EngineError::Invalid {
            reason: "row-change capture is not available on this engine yet".into(),
            hint: Some("capture, batch revert and flashback work on PostgreSQL targets".into()),
        })
    })
}

/// Start capturing `tables` in `mode`.
pub fn enable(
    target: &mut Target,
    tables: &[String],
    mode: CaptureMode,
) -> Result<Vec<CapturedTable>, OpError> {
    with_lock(target, "capture enable", |target| {
        let mut out = Vec::new();
        for table in tables {
            let status = capture_of(target)?.enable(table, mode)?;
            append_event_in_own_tx(
                target,
                NewEvent {
                    kind: "capture_enabled",
                    change: None,
                    detail: json!({ "table": status.table, "key": status.key_columns, "mode": mode.as_str() }),
                },
            )?;
            out.push(status);
        }
        Ok(out)
    })
}

/// What happened to one `[capture] tables` entry after a deploy.
#[derive(Debug, Clone, Serialize)]
pub struct EnsuredCapture {
    /// The table as configured.
    pub table: String,
    /// `already`, `enabled`, or `skipped: <why>`.
    pub result: String,
}

/// Make sure the configured tables are captured (after a deploy created them): tables
/// that are already captured are left alone; ones that do not exist (yet) or cannot be
/// captured are reported, not errors.
pub fn ensure_configured(
    target: &mut Target,
    tables: &[String],
    mode: CaptureMode,
) -> Result<Vec<EnsuredCapture>, OpError> {
    if tables.is_empty() || target.engine.capture().is_none() {
        return Ok(Vec::new());
    }
    let captured: Vec<String> = status(target)?
        .into_iter()
        .filter(|t| t.enabled)
        .map(|t| t.table)
        .collect();
    let mut out = Vec::new();
    for table in tables {
        let already = captured
            .iter()
            .any(|c| c == table || c.rsplit_once('.').is_some_and(|(_, name)| name == table));
        let result = if already {
            "already".to_string()
        } else {
            match enable(target, std::slice::from_ref(table), mode) {
                Ok(_) => "enabled".to_string(),
                Err(OpError::Engine(EngineError::Invalid { reason, .. })) => {
                    format!("skipped: {reason}")
                }
                Err(e) => return Err(e),
            }
        };
        out.push(EnsuredCapture {
            table: table.clone(),
            result,
        });
    }
    Ok(out)
}

/// Stop capturing `tables` (their logs are kept).
pub fn disable(target: &mut Target, tables: &[String]) -> Result<(), OpError> {
    with_lock(target, "capture disable", |target| {
        for table in tables {
            capture_of(target)?.disable(table)?;
            append_event_in_own_tx(
                target,
                NewEvent {
                    kind: "capture_disabled",
                    change: None,
                    detail: json!({ "table": table }),
                },
            )?;
        }
        Ok(())
    })
}

/// Captured tables (empty when the target has no ledger yet).
pub fn status(target: &mut Target) -> Result<Vec<CapturedTable>, OpError> {
    if target.engine.ledger_version()?.is_none() {
        return Ok(Vec::new());
    }
    Ok(capture_of(target)?.tables()?)
}

/// Remove log entries older than `before`.
pub fn prune(target: &mut Target, before: &str) -> Result<i64, OpError> {
    with_lock(target, "capture prune", |target| {
        let removed = capture_of(target)?.prune(before)?;
        append_event_in_own_tx(
            target,
            NewEvent {
                kind: "capture_pruned",
                change: None,
                detail: json!({ "before": before, "entries": removed }),
            },
        )?;
        Ok(removed)
    })
}

/// Batches in the log, newest first (logical mode: after a sync, so that the list
/// includes what was committed up to now).
pub fn batches(target: &mut Target) -> Result<Vec<BatchSummary>, OpError> {
    if target.engine.ledger_version()?.is_none() {
        return Ok(Vec::new());
    }
    let mut capture = capture_of(target)?;
    capture.sync()?;
    Ok(capture.batches()?)
}

/// Move changes decoded from the replication slot into the capture log (tables in
/// logical mode; nothing to do otherwise). Safe to run at any time and concurrently:
/// syncs take turns, and a killed one leaves the changes in the slot.
pub fn sync(target: &mut Target) -> Result<SyncReport, OpError> {
    if target.engine.ledger_version()?.is_none() {
        return Ok(SyncReport::default());
    }
    Ok(capture_of(target)?.sync()?)
}

/// The result of `batch revert` or `flashback`.
#[derive(Debug, Clone, Serialize)]
pub struct UndoReport {
    /// What was undone, in words.
    pub scope: String,
    /// The tag the undo's own changes carry.
    pub tag: String,
    /// Nothing was committed (dry run, or conflicts with `abort`).
    pub committed: bool,
    /// Conflict handling.
    pub on_conflict: ConflictMode,
    /// Conflicts and per-table counts.
    #[serde(flatten)]
    pub outcome: UndoOutcome,
}

/// Undo `scope` in one transaction.
pub fn undo(
    target: &mut Target,
    scope: &UndoScope,
    mode: ConflictMode,
    dry_run: bool,
) -> Result<UndoReport, OpError> {
    undo_with_progress(target, scope, mode, dry_run, &mut |_| {})
}

/// [`undo`], reporting each step (rows collected, conflicts checked, rows deleted,
/// images restored, per table) as it completes.
pub fn undo_with_progress(
    target: &mut Target,
    scope: &UndoScope,
    mode: ConflictMode,
    dry_run: bool,
    progress: &mut dyn FnMut(&UndoProgress),
) -> Result<UndoReport, OpError> {
    let (described, tag, kind) = match scope {
        UndoScope::Batch(batch) => (
            format!("batch {batch}"),
            format!("revert-of-{batch}"),
            "batch_reverted",
        ),
        UndoScope::After { table, after } => (
            format!("{table} back to {after}"),
            format!("flashback-{table}-{after}"),
            "flashback_completed",
        ),
    };
    with_lock(target, "undo", |target| {
        // Logical mode: bring the log up to date in committed rounds first, so that the
        // undo's own transaction decodes only what arrives meanwhile.
        capture_of(target)?.sync()?;
        let limits = target.limits;
        target.engine.begin(&limits)?;
        // Each step (rows collected, conflicts checked, rows deleted, images restored)
        // is a failpoint: a kill between two steps must leave nothing half-undone.
        let mut step = |p: &UndoProgress| {
            progress(p);
            crate::failpoint::hit("undo_step_done");
        };
        let outcome =
            match capture_of(target).and_then(|mut c| Ok(c.undo(scope, mode, &tag, &mut step)?)) {
                Ok(outcome) => outcome,
                Err(e) => {
                    let _ = target.engine.rollback();
                    return Err(e);
                }
            };
        let mut report = UndoReport {
            scope: described.clone(),
            tag: tag.clone(),
            committed: false,
            on_conflict: mode,
            outcome,
        };
        crate::failpoint::hit("undo_applied");
        let blocked = mode == ConflictMode::Abort && !report.outcome.conflicts.is_empty();
        if dry_run || blocked {
            target.engine.rollback()?;
            return Ok(report);
        }
        append_event(
            target,
            NewEvent {
                kind,
                change: None,
                detail: json!({
                    "scope": described,
                    "tag": tag,
                    "on_conflict": mode,
                    "conflicts": report.outcome.conflicts.len(),
                    "tables": report.outcome.tables,
                }),
            },
        )?;
        crate::failpoint::hit("undo_before_commit");
        target.engine.commit()?;
        report.committed = true;
        Ok(report)
    })
}

/// Run `loader` with its writes tagged `name`: through `PGOPTIONS` for PostgreSQL
/// loaders, and, when `target` is given, through the engine's batch context (SQLite)
/// for the duration of the run. Returns the loader's success.
pub fn run_tagged(
    target: Option<&mut Target>,
    name: &str,
    loader: &mut std::process::Command,
) -> Result<bool, OpError> {
    let existing = std::env::var("PGOPTIONS").ok();
    loader.env("PGOPTIONS", pgoptions_with_batch(existing.as_deref(), name));
    let Some(target) = target else {
        return loader
            .status()
            .map(|s| s.success())
            .map_err(|e| spawn_error(loader, e));
    };
    if target.engine.ledger_version()?.is_some() {
        capture_of(target)?.set_batch_context(Some(name))?;
    }
    let status = loader.status();
    if target.engine.ledger_version()?.is_some() {
        capture_of(target)?.set_batch_context(None)?;
    }
    status
        .map(|s| s.success())
        .map_err(|e| spawn_error(loader, e))
}

fn spawn_error(loader: &std::process::Command, error: std::io::Error) -> OpError {
    OpError::Engine(EngineError::Invalid {
        reason: format!(
            "cannot run `{}`: {error}",
            loader.get_program().to_string_lossy()
        ),
        hint: Some("check the command after `--`".into()),
    })
}

/// `PGOPTIONS` for a loader whose writes should carry batch tag `name`.
pub fn pgoptions_with_batch(existing: Option<&str>, name: &str) -> String {
    let escaped = name.replace('\\', "\\\\").replace(' ', "\\ ");
    let option = format!("-c ripcord.batch={escaped}");
    match existing.filter(|e| !e.trim().is_empty()) {
        Some(existing) => format!("{existing} {option}"),
        None => option,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgoptions_keep_what_was_there_and_escape_spaces() {
        assert_eq!(
            pgoptions_with_batch(None, "load-1"),
            "-c ripcord.batch=load-1"
        );
        assert_eq!(
            pgoptions_with_batch(Some("-c work_mem=64MB"), "nightly load"),
            "-c work_mem=64MB -c ripcord.batch=nightly\\ load"
        );
    }
}
