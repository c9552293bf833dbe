//! Revert: undo deployed changes in reverse deploy order (not file order), running the
//! revert SQL recorded at deploy time, so a revert works even when the file has since
//! changed or is gone. One transaction per change: revert, ledger row removal and
//! audit event commit together.

use std::time::Instant;

use ripcord_core::audit::NewEvent;
use ripcord_core::checksum::normalize_section;
use ripcord_core::{ChangeState, DeployedChange, Plan, TransactionMode};
use serde::Serialize;
use serde_json::json;

use crate::error::{OpError, Phase};
use crate::failpoint;
use crate::observe::Observer;
use crate::run::{
    Script, append_event, record_change_failure, retry_on_lock_timeout,
    run_statement_with_progress, run_statements, with_lock,
};
use crate::target::Target;

/// Which deployed changes to revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The last `n` deployed.
    Last(usize),
    /// Everything deployed after this change (which stays deployed).
    To(String),
    /// Everything.
    All,
}

/// What to revert.
#[derive(Debug, Clone)]
pub struct RevertOptions {
    /// Which changes.
    pub selection: Selection,
    /// Only report what would run.
    pub dry_run: bool,
    /// The project's checks, run after the revert against the baseline saved before
    /// the deploy of the oldest change reverted ("did we get back?").
    pub checks: Vec<ripcord_core::config::CheckConfig>,
}

/// One change that revert runs (or would run).
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRevert {
    /// The change.
    pub change: String,
    /// Where the SQL comes from: the change file (when unchanged) or the ledger.
    pub source: String,
    /// Statements already reverted by an interrupted run.
    pub resume_at: usize,
    /// The statements.
    pub statements: Vec<String>,
}

/// A change that was reverted.
#[derive(Debug, Clone, Serialize)]
pub struct RevertedOutcome {
    /// The change.
    pub change: String,
    /// Statements run.
    pub statements: usize,
    /// Time taken.
    pub duration_ms: u64,
}

/// The result of a revert.
#[derive(Debug, Clone, Serialize)]
pub struct RevertReport {
    /// Target name.
    pub target: String,
    /// Target URL without password.
    pub url: String,
    /// Nothing was run.
    pub dry_run: bool,
    /// What was (or would be) run, in order.
    pub planned: Vec<PlannedRevert>,
    /// What was reverted.
    pub reverted: Vec<RevertedOutcome>,
    /// Other projects' changes on the target (left alone).
    pub other_projects: Vec<crate::scope::OtherProject>,
    /// The checks after the revert, against the baseline before the deploy reverted.
    pub checked: Option<crate::check::CheckReport>,
    /// Wall time.
    pub duration_ms: u64,
}

/// The ledgered changes `selection` names, newest first.
fn select(
    ledger: &[DeployedChange],
    selection: &Selection,
) -> Result<Vec<DeployedChange>, OpError> {
    let mut newest_first: Vec<DeployedChange> = ledger.to_vec();
    newest_first.sort_by_key(|d| std::cmp::Reverse(d.deploy_seq));
    let chosen = match selection {
        Selection::All => newest_first,
        Selection::Last(n) => newest_first.into_iter().take(*n).collect(),
        Selection::To(name) => {
            let keep = ledger
                .iter()
                .find(|d| d.name == *name || d.name.split('_').next() == Some(name.as_str()))
                .ok_or_else(|| OpError::NotDeployed { name: name.clone() })?;
            newest_first
                .into_iter()
                .filter(|d| d.deploy_seq > keep.deploy_seq)
                .collect()
        }
    };
    for change in &chosen {
        let Some(revert) = &change.revert_sql else {
            return Err(OpError::Irreversible {
                change: change.name.clone(),
                reason: change.irreversible.clone(),
            });
        };
        // An empty revert of a change that did something would "succeed" doing nothing.
        if statement_count(revert) == 0 && statement_count(&change.deploy_sql) > 0 {
            return Err(OpError::EmptyRevert {
                change: change.name.clone(),
            });
        }
    }
    Ok(chosen)
}

fn statement_count(sql: &str) -> usize {
    ripcord_core::splitter::split(sql).map_or(1, |spans| spans.len())
}

/// Vault entries a ledgered revert puts back (`ripcord.vault_put_back(<id>)`).
fn vault_entries(sql: &str) -> Vec<i64> {
    const CALL: &str = "vault_put_back(";
    sql.match_indices(CALL)
        .filter_map(|(at, _)| {
            let rest = &sql[at + CALL.len()..];
            rest[..rest.find(')')?].trim().parse().ok()
        })
        .collect()
}

/// The revert statements: located in the change file when it still holds exactly the
/// ledgered revert SQL (so errors point at the file), else in the ledger's copy.
fn revert_script(plan: &Plan, deployed: &DeployedChange) -> Script {
    let sql = deployed.revert_sql.as_deref().unwrap_or_default();
    if let Some(change) = plan.get(&deployed.name)
        && let Some(section) = &change.revert
        && normalize_section(&change.text[section.body.clone()]) == sql
    {
        return Script::from_file(change.location(0..0), section.statements.clone());
    }
    Script::from_ledger(&deployed.name, Phase::Revert, sql)
}

fn resume_at(deployed: &DeployedChange) -> usize {
    if deployed.state == ChangeState::Reverting {
        deployed.statements_done.max(0) as usize
    } else {
        0
    }
}

/// Revert the selected changes on `target`.
pub fn revert(
    target: &mut Target,
    plan: &Plan,
    options: &RevertOptions,
    observer: &mut dyn Observer,
) -> Result<RevertReport, OpError> {
    let started = Instant::now();
    let planned = |chosen: &[DeployedChange]| {
        chosen
            .iter()
            .map(|d| {
                let script = revert_script(plan, d);
                PlannedRevert {
                    change: d.name.clone(),
                    source: script.source.name.display().to_string(),
                    resume_at: resume_at(d),
                    statements: (resume_at(d)..script.len())
                        .map(|i| script.sql(i).to_string())
                        .collect(),
                }
            })
            .collect::<Vec<_>>()
    };
    if options.dry_run {
        let scoped = crate::scope::scoped(target, plan)?;
        let chosen = select(&scoped.mine, &options.selection)?;
        return Ok(RevertReport {
            other_projects: scoped.other_projects(),
            checked: None,
            target: target.name.clone(),
            url: target.display_url.clone(),
            dry_run: true,
            planned: planned(&chosen),
            reverted: Vec::new(),
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }
    with_lock(target, "revert", |target| {
        crate::scope::claim_old_rows(target, plan)?;
        let scoped = crate::scope::scoped(target, plan)?;
        let chosen = select(&scoped.mine, &options.selection)?;
        // Every revert about to run must be the one ripcord recorded.
        let names: Vec<&str> = chosen.iter().map(|d| d.name.as_str()).collect();
        crate::integrity::require_intact(target, &names)?;
        let mut report = RevertReport {
            target: target.name.clone(),
            url: target.display_url.clone(),
            dry_run: false,
            planned: planned(&chosen),
            reverted: Vec::new(),
            other_projects: scoped.other_projects(),
            checked: None,
            duration_ms: 0,
        };
        report.reverted = revert_rows(target, plan, &chosen, observer)?;
        if !options.checks.is_empty() && !chosen.is_empty() {
            report.checked = Some(check_after(target, &options.checks, &chosen)?);
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    })
}

/// After a revert: the checks about the tables the reverted changes wrote to, against
/// the baseline deploy saved before the oldest of them (when one was), recorded in the
/// audit chain.
fn check_after(
    target: &mut Target,
    checks: &[ripcord_core::config::CheckConfig],
    reverted: &[DeployedChange],
) -> Result<crate::check::CheckReport, OpError> {
    let oldest = reverted.last().map(|d| d.name.clone()).unwrap_or_default();
    let touching: Vec<String> =
        ripcord_core::snapshot::tables_written(reverted.iter().map(|d| d.deploy_sql.as_str()))
            .into_iter()
            .map(|t| t.name)
            .collect();
    let before_deploy = target
        .engine
        .events()?
        .into_iter()
        .rev()
        .find(|e| {
            e.kind == "baseline_saved"
                && e.detail_json()["before"]
                    .as_array()
                    .is_some_and(|names| names.iter().any(|n| n == oldest.as_str()))
        })
        .map(|e| {
            let detail = e.detail_json();
            crate::check::BaselineRef {
                name: detail["name"].as_str().unwrap_or_default().to_string(),
                version: detail["version"].as_i64(),
            }
        });
    let report = crate::check::run_locked(
        target,
        checks,
        &crate::check::CheckOptions {
            against: before_deploy.clone(),
            touching: Some(touching),
            no_default_baseline: true,
            ..Default::default()
        },
    )?;
    crate::run::append_event_in_own_tx(
        target,
        NewEvent {
            kind: "revert_checked",
            change: None,
            detail: json!({
                "reverted": reverted.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
                "baseline": before_deploy.map(|b| b.to_string()),
                "passed": report.passed,
                "failed": report.failures().iter().map(|f| json!({ "check": f.name, "reasons": f.reasons })).collect::<Vec<_>>(),
            }),
        },
    )?;
    Ok(report)
}

/// Revert `chosen` (newest first) inside the caller's lock.
fn revert_rows(
    target: &mut Target,
    plan: &Plan,
    chosen: &[DeployedChange],
    observer: &mut dyn Observer,
) -> Result<Vec<RevertedOutcome>, OpError> {
    let mut reverted_so_far: Vec<RevertedOutcome> = Vec::new();
    for deployed in chosen {
        let completed: Vec<String> = reverted_so_far.iter().map(|r| r.change.clone()).collect();
        let flags = flags_of(target, plan, deployed)?;
        if !flags.is_empty() {
            crate::flags::switch_off_for_revert(target, &deployed.name, &flags)?;
        }
        let reverted = if deployed.transaction == TransactionMode::None {
            revert_one(target, plan, deployed, observer, &completed)
        } else {
            retry_on_lock_timeout(target, &deployed.name, observer, |target, observer| {
                revert_one(target, plan, deployed, observer, &completed)
            })
        };
        match reverted {
            Ok(outcome) => {
                observer.change_finished(&outcome.change, Phase::Revert, outcome.duration_ms);
                reverted_so_far.push(outcome);
            }
            Err(error) => {
                record_change_failure(target, &error);
                return Err(error);
            }
        }
    }
    Ok(reverted_so_far)
}

/// The flags a change's header names: from its file, or (file gone) from its deploy's
/// event in the chain.
fn flags_of(
    target: &mut Target,
    plan: &Plan,
    deployed: &DeployedChange,
) -> Result<Vec<String>, OpError> {
    if let Some(change) = plan.get(&deployed.name) {
        return Ok(change.flags.clone());
    }
    Ok(target
        .engine
        .events()?
        .into_iter()
        .rev()
        .find(|e| e.kind == "deploy_completed" && e.change.as_deref() == Some(&deployed.name))
        .and_then(|e| serde_json::from_value::<Vec<String>>(e.detail_json()["flags"].clone()).ok())
        .unwrap_or_default())
}

/// Revert the changes `names` of this project, newest first, taking the target's lock;
/// the names reverted (a rollout undoing what it deployed on one target).
pub fn revert_changes(
    target: &mut Target,
    plan: &Plan,
    names: &[String],
    observer: &mut dyn Observer,
) -> Result<Vec<String>, OpError> {
    with_lock(target, "revert", |target| {
        revert_within_lock(target, plan, names, observer)
    })
}

/// Revert the changes `names` of this project, newest first, inside the caller's lock
/// (deploy's gate undoing its own run); the names reverted.
pub(crate) fn revert_within_lock(
    target: &mut Target,
    plan: &Plan,
    names: &[String],
    observer: &mut dyn Observer,
) -> Result<Vec<String>, OpError> {
    let mut chosen: Vec<DeployedChange> = crate::scope::scoped(target, plan)?
        .mine
        .into_iter()
        .filter(|d| names.contains(&d.name))
        .collect();
    chosen.sort_by_key(|d| std::cmp::Reverse(d.deploy_seq));
    let refs: Vec<&str> = chosen.iter().map(|d| d.name.as_str()).collect();
    crate::integrity::require_intact(target, &refs)?;
    Ok(revert_rows(target, plan, &chosen, observer)?
        .into_iter()
        .map(|r| r.change)
        .collect())
}

fn revert_one(
    target: &mut Target,
    plan: &Plan,
    deployed: &DeployedChange,
    observer: &mut dyn Observer,
    completed: &[String],
) -> Result<RevertedOutcome, OpError> {
    let started = Instant::now();
    let script = revert_script(plan, deployed);
    let from = resume_at(deployed);
    let limits = target.limits;
    observer.change_started(&deployed.name, Phase::Revert, script.len(), from);

    if deployed.transaction == TransactionMode::None {
        for index in from..script.len() {
            run_statement_with_progress(
                target,
                &deployed.name,
                Phase::Revert,
                ChangeState::Reverting,
                &script,
                index,
                observer,
                completed,
            )?;
            failpoint::hit("nontx_revert_statement_done");
        }
        target.engine.begin(&limits)?;
    } else {
        target.engine.begin(&limits)?;
        run_statements(
            target,
            &deployed.name,
            Phase::Revert,
            &script,
            0,
            observer,
            completed,
        )?;
        // The revert's statements (the vault's put-back among them) ran, uncommitted.
        failpoint::hit("revert_statements_done");
    }
    target.engine.delete_change(&deployed.name)?;
    let duration_ms = started.elapsed().as_millis() as u64;
    append_event(
        target,
        NewEvent {
            kind: "revert_completed",
            change: Some(deployed.name.clone()),
            detail: json!({
                "checksum": deployed.checksum,
                "ledger": deployed.definition_checksum(),
                "project": deployed.project,
                "statements": script.len(),
                "source": script.source.name.display().to_string(),
                "vault_entries_put_back": vault_entries(deployed.revert_sql.as_deref().unwrap_or_default()),
                "duration_ms": duration_ms,
            }),
        },
    )?;
    failpoint::hit("before_commit");
    target.engine.commit()?;
    Ok(RevertedOutcome {
        change: deployed.name.clone(),
        statements: script.len() - from,
        duration_ms,
    })
}

/// What a revert with `selection` would revert, newest first (for confirmation prompts).
pub fn preview(
    target: &mut Target,
    plan: &Plan,
    selection: &Selection,
) -> Result<Vec<String>, OpError> {
    let ledger = crate::scope::scoped(target, plan)?.mine;
    Ok(select(&ledger, selection)?
        .into_iter()
        .map(|d| d.name)
        .collect())
}
