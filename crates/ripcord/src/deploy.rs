//! Deploy: apply pending changes in plan order, each with its verify, ledger row and
//! audit event in one transaction (DESIGN §5.2). `transaction: none` changes commit
//! statement by statement with their progress, and a rerun resumes after the last
//! completed statement.

use std::time::Instant;

use chrono::Utc;
use ripcord_core::audit::NewEvent;
use ripcord_core::splitter::split;
use ripcord_core::{Change, ChangeState, DeployedChange, Plan, SectionKind, TransactionMode};
use serde::Serialize;
use serde_json::json;

use crate::error::{ModifiedChange, OpError, Phase};
use crate::failpoint;
use crate::observe::Observer;
use crate::run::{
    Script, append_event, append_event_in_own_tx, record_change_failure, retry_on_lock_timeout,
    run_statement, run_statement_with_progress, run_verify, with_lock,
};
use crate::target::Target;
use crate::vault::Keeper;

/// What to deploy.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Stop after this change (name or ID).
    pub to: Option<String>,
    /// Only report what would run.
    pub dry_run: bool,
    /// Snapshot the existing tables that pending changes write to, before running them.
    pub snapshot: Option<SnapshotBefore>,
    /// Changes (names or IDs) to deploy although they have no revert section and do
    /// not declare themselves irreversible: the operator's consent, recorded in the
    /// audit chain.
    pub accept_irreversible: Vec<String>,
    /// The project's checks: a baseline before the first change, the checks after the
    /// last, and this run's changes reverted when an error-severity check fails.
    pub checks: Vec<ripcord_core::config::CheckConfig>,
    /// Deploy without the checks' gate (recorded in the audit chain).
    pub no_gate: bool,
}

/// A change that cannot be reverted and does not say why needs consent to deploy;
/// `Some(reason)` names what keeps ripcord from writing its revert.
fn needs_consent(
    change: &Change,
    vault_available: Option<ripcord_core::EngineKind>,
) -> Option<Option<String>> {
    if change.revert.is_some() || change.irreversible.is_some() {
        return None;
    }
    crate::vault::why_not_generated(change, vault_available).map(Some)
}

/// The first statement of a `transaction: none` change (with a revert of its own) that
/// destroys data: the vault cannot keep it outside a transaction.
fn data_not_kept(
    change: &Change,
    vault_available: Option<ripcord_core::EngineKind>,
) -> Option<String> {
    if change.transaction != TransactionMode::None
        || change.revert.is_none()
        || change.irreversible.is_some()
        || vault_available.is_none()
    {
        return None;
    }
    crate::vault::change_effects(change)
        .iter()
        .enumerate()
        .find(|(_, effects)| {
            effects
                .as_ref()
                .is_some_and(|e| e.iter().any(|e| e.destroys_data()))
        })
        .map(|(index, _)| {
            format!(
                "statement {} ({}) destroys data",
                index + 1,
                change
                    .location(change.deploy.statements[index].clone())
                    .display_short()
            )
        })
}

fn is_accepted(plan: &Plan, change: &Change, accepted: &[String]) -> bool {
    accepted
        .iter()
        .any(|name| plan.resolve(name).is_some_and(|c| c.name == change.name))
}

/// When and where deploy takes a snapshot first.
#[derive(Debug, Clone)]
pub struct SnapshotBefore {
    /// The store.
    pub store: std::sync::Arc<crate::snapshot::Store>,
    /// Only when a pending statement destroys data (`[safety] snapshot_before =
    /// "preserving"`); otherwise whenever pending changes write to existing tables.
    pub only_destructive: bool,
    /// Tables copied at once.
    pub parallel: usize,
}

/// One statement that deploy runs (or would run).
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStatement {
    /// deploy or verify.
    pub phase: Phase,
    /// `file:line:column`.
    pub at: String,
    /// The SQL.
    pub sql: String,
}

/// One change that deploy runs (or would run).
#[derive(Debug, Clone, Serialize)]
pub struct PlannedChange {
    /// The change.
    pub change: String,
    /// Its transaction mode.
    pub transaction: TransactionMode,
    /// For a part-way `transaction: none` change: statements already applied.
    pub resume_at: usize,
    /// Statements in order.
    pub statements: Vec<PlannedStatement>,
}

/// A change that was deployed.
#[derive(Debug, Clone, Serialize)]
pub struct DeployedOutcome {
    /// The change.
    pub change: String,
    /// Deploy statements run in this run.
    pub statements: usize,
    /// Verify statements run.
    pub verify_statements: usize,
    /// Set when a part-way change was resumed: statements that were already applied.
    pub resumed_at: Option<usize>,
    /// Time for deploy and verify.
    pub duration_ms: u64,
}

/// The result of a deploy.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    /// Target name.
    pub target: String,
    /// Target URL without password.
    pub url: String,
    /// Nothing was run.
    pub dry_run: bool,
    /// What was (or would be) run.
    pub planned: Vec<PlannedChange>,
    /// What was deployed.
    pub deployed: Vec<DeployedOutcome>,
    /// The snapshot taken before the changes ran.
    pub snapshot: Option<crate::snapshot::SnapshotSummary>,
    /// Other projects' changes on the target (left alone).
    pub other_projects: Vec<crate::scope::OtherProject>,
    /// The checks run after the changes (deploy's gate).
    pub gate: Option<crate::check::CheckReport>,
    /// Wall time.
    pub duration_ms: u64,
}

struct Pending<'a> {
    change: &'a Change,
    resume_at: usize,
}

/// Decide what deploy would run, refusing anything unsafe before a statement runs.
fn pending<'a>(
    plan: &'a Plan,
    scoped: &crate::scope::Scoped,
    to: Option<&str>,
    accepted: &[String],
    vault_available: Option<ripcord_core::EngineKind>,
) -> Result<Vec<Pending<'a>>, OpError> {
    for name in accepted {
        crate::error::resolve_change(plan, name)?;
    }
    let ledger = &scoped.mine;
    let mut modified = Vec::new();
    for deployed in ledger {
        if deployed.state == ChangeState::Reverting {
            return Err(OpError::RevertInProgress {
                change: deployed.name.clone(),
                done: deployed.statements_done,
                total: deployed.statements_total,
            });
        }
        let Some(change) = plan.get(&deployed.name) else {
            if deployed.state == ChangeState::Deploying {
                return Err(OpError::FileGone {
                    change: deployed.name.clone(),
                });
            }
            continue;
        };
        if deployed.checksum == change.checksum {
            continue;
        }
        let resumable =
            deployed.state == ChangeState::Deploying && applied_prefix_unchanged(deployed, change);
        if !resumable {
            modified.push(ModifiedChange {
                change: deployed.name.clone(),
                recorded: deployed.checksum.clone(),
                found: change.checksum.clone(),
            });
        }
    }
    if !modified.is_empty() {
        return Err(OpError::Modified { modified });
    }

    let last = match to {
        Some(name) => {
            let change = crate::error::resolve_change(plan, name)?;
            Some(change.name.clone())
        }
        None => None,
    };
    let last_id = last.as_deref().and_then(|n| plan.get(n)).map(|c| &c.id);
    if let Some(error) = crate::error::invalid_files(plan.invalid_through(last_id)) {
        return Err(error);
    }

    let mut pending = Vec::new();
    for change in plan.changes() {
        if let Some(row) = scoped.held_elsewhere(&change.name) {
            return Err(OpError::OtherProject {
                change: change.name.clone(),
                project: row.project.clone(),
            });
        }
        let deployed = ledger.iter().find(|d| d.name == change.name);
        match deployed {
            Some(d) if d.state == ChangeState::Deployed => {}
            Some(d) => pending.push(Pending {
                change,
                resume_at: d.statements_done.max(0) as usize,
            }),
            None => pending.push(Pending {
                change,
                resume_at: 0,
            }),
        }
        if last.as_deref() == Some(change.name.as_str()) {
            break;
        }
    }

    for (position, p) in pending.iter().enumerate() {
        if let Some(reason) = needs_consent(p.change, vault_available)
            && !is_accepted(plan, p.change, accepted)
        {
            return Err(OpError::MissingRevert {
                change: p.change.name.clone(),
                reason,
            });
        }
        if let Some(reason) = data_not_kept(p.change, vault_available)
            && !is_accepted(plan, p.change, accepted)
        {
            return Err(OpError::DataNotKept {
                change: p.change.name.clone(),
                reason,
            });
        }
        for requirement in &p.change.requires {
            let deployed = ledger
                .iter()
                .any(|d| d.name == requirement.name && d.state == ChangeState::Deployed);
            let earlier = pending[..position]
                .iter()
                .any(|q| q.change.name == requirement.name);
            if !deployed && !earlier {
                return Err(OpError::UnmetRequirement {
                    change: p.change.name.clone(),
                    required: requirement.name.clone(),
                });
            }
        }
    }
    Ok(pending)
}

/// A part-way change may be resumed with an edited file only if the statements it
/// already applied are unchanged.
fn applied_prefix_unchanged(deployed: &DeployedChange, change: &Change) -> bool {
    let done = deployed.statements_done.max(0) as usize;
    let Ok(old) = split(&deployed.deploy_sql) else {
        return false;
    };
    let new: Vec<&str> = change
        .deploy
        .statements
        .iter()
        .map(|s| &change.text[s.clone()])
        .collect();
    old.len() >= done
        && new.len() >= done
        && old[..done]
            .iter()
            .zip(&new[..done])
            .all(|(o, n)| deployed.deploy_sql[o.clone()].trim() == n.trim())
}

fn deploy_script(change: &Change) -> Script {
    Script::from_file(change.location(0..0), change.deploy.statements.clone())
}

fn verify_script(change: &Change) -> Script {
    Script::from_file(
        change.location(0..0),
        change
            .verify
            .as_ref()
            .map(|v| v.statements.clone())
            .unwrap_or_default(),
    )
}

fn planned(p: &Pending<'_>) -> PlannedChange {
    let change = p.change;
    let lines = ripcord_core::location::LineIndex::new(&change.text);
    let mut statements = Vec::new();
    for (phase, script) in [
        (Phase::Deploy, deploy_script(change)),
        (Phase::Verify, verify_script(change)),
    ] {
        let skip = if phase == Phase::Deploy {
            p.resume_at
        } else {
            0
        };
        for (index, span) in script.statements.iter().enumerate().skip(skip) {
            statements.push(PlannedStatement {
                phase,
                at: lines.display_short(&change.path, &change.text, span.start),
                sql: script.sql(index).to_string(),
            });
        }
    }
    PlannedChange {
        change: change.name.clone(),
        transaction: change.transaction,
        resume_at: p.resume_at,
        statements,
    }
}

/// The deploy order of `name`: its old one when it was deployed before (a redeploy keeps
/// its place), else the next free one.
fn seq_of(ledger: &[DeployedChange], name: &str, next_seq: &mut i64) -> i64 {
    match ledger.iter().find(|d| d.name == name) {
        Some(d) => d.deploy_seq,
        None => {
            *next_seq += 1;
            *next_seq - 1
        }
    }
}

/// `change` as it will be recorded: one deployed without a revert (with consent) carries
/// the consent as its irreversible reason, and the consent is an audit event, written
/// in the open transaction when `in_transaction`, else in its own.
fn with_consent<'a>(
    target: &mut Target,
    change: &'a Change,
    vault_available: Option<ripcord_core::EngineKind>,
    in_transaction: bool,
) -> Result<std::borrow::Cow<'a, Change>, OpError> {
    if needs_consent(change, vault_available).is_none() {
        if let Some(reason) = data_not_kept(change, vault_available) {
            // Deployed with its own revert, but what it destroys is not kept.
            let event = NewEvent {
                kind: "data_loss_accepted",
                change: Some(change.name.clone()),
                detail: json!({
                    "reason": format!("{reason} outside a transaction, not kept by the vault; accepted with --accept-irreversible"),
                    "by": target.identity.actor,
                }),
            };
            if in_transaction {
                append_event(target, event)?;
            } else {
                append_event_in_own_tx(target, event)?;
            }
        }
        return Ok(std::borrow::Cow::Borrowed(change));
    }
    let reason = format!(
        "deployed without a revert section, accepted by {} with --accept-irreversible",
        target.identity.actor
    );
    let event = NewEvent {
        kind: "irreversible_accepted",
        change: Some(change.name.clone()),
        detail: json!({ "reason": reason, "by": target.identity.actor }),
    };
    if in_transaction {
        append_event(target, event)?;
    } else {
        append_event_in_own_tx(target, event)?;
    }
    Ok(std::borrow::Cow::Owned(Change {
        irreversible: Some(reason),
        ..change.clone()
    }))
}

/// Deploy the pending changes of `plan` to `target`.
pub fn deploy(
    target: &mut Target,
    plan: &Plan,
    options: &DeployOptions,
    observer: &mut dyn Observer,
) -> Result<DeployReport, OpError> {
    let started = Instant::now();
    let vault_available = crate::vault::vault_engine(target);
    if options.dry_run {
        let scoped = crate::scope::scoped(target, plan)?;
        let pending = pending(
            plan,
            &scoped,
            options.to.as_deref(),
            &options.accept_irreversible,
            vault_available,
        )?;
        return Ok(DeployReport {
            target: target.name.clone(),
            url: target.display_url.clone(),
            dry_run: true,
            planned: pending.iter().map(planned).collect(),
            deployed: Vec::new(),
            snapshot: None,
            other_projects: scoped.other_projects(),
            gate: None,
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }
    with_lock(target, "deploy", |target| {
        crate::scope::claim_old_rows(target, plan)?;
        let scoped = crate::scope::scoped(target, plan)?;
        let pending = pending(
            plan,
            &scoped,
            options.to.as_deref(),
            &options.accept_irreversible,
            vault_available,
        )?;
        let ledger = &scoped.mine;
        // Deploy order is shared by every project of the target.
        let mut next_seq = scoped.all.iter().map(|d| d.deploy_seq).max().unwrap_or(0) + 1;
        let mut report = DeployReport {
            target: target.name.clone(),
            url: target.display_url.clone(),
            dry_run: false,
            planned: pending.iter().map(planned).collect(),
            deployed: Vec::new(),
            snapshot: None,
            other_projects: scoped.other_projects(),
            gate: None,
            duration_ms: 0,
        };
        let changes: Vec<&Change> = pending.iter().map(|p| p.change).collect();
        let gate = Gate::open(target, options, &changes)?;
        if let (Some(policy), Some(first)) = (&options.snapshot, pending.first()) {
            report.snapshot = snapshot_before(target, policy, &changes, &first.change.name)?;
        }
        for p in &pending {
            let completed: Vec<String> = report.deployed.iter().map(|d| d.change.clone()).collect();
            let existing = ledger.iter().find(|d| d.name == p.change.name);
            let seq = seq_of(ledger, &p.change.name, &mut next_seq);
            let accepted = is_accepted(plan, p.change, &options.accept_irreversible);
            let change = with_consent(target, p.change, vault_available, false)?;
            let p = &Pending {
                change: &change,
                resume_at: p.resume_at,
            };
            let outcome = match p.change.transaction {
                TransactionMode::PerChange => {
                    retry_on_lock_timeout(target, &p.change.name, observer, |target, observer| {
                        deploy_in_one_transaction(
                            target,
                            p.change,
                            seq,
                            observer,
                            &completed,
                            vault_available,
                            accepted,
                        )
                    })
                }
                TransactionMode::None => {
                    deploy_statement_by_statement(target, p, existing, seq, observer, &completed)
                }
            };
            match outcome {
                Ok(outcome) => {
                    observer.change_finished(&outcome.change, Phase::Deploy, outcome.duration_ms);
                    report.deployed.push(outcome);
                }
                Err(error) => {
                    record_change_failure(target, &error);
                    return Err(error);
                }
            }
        }
        if let Some(gate) = gate {
            report.gate = Some(gate.close(target, plan, &report, observer)?);
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    })
}

/// Deploy the pending changes of `plan` in one transaction and leave it prepared as
/// `gid` (PostgreSQL's `PREPARE TRANSACTION`): a rollout's `--atomic` step on one
/// target. Nothing is visible until the coordinator commits the prepared transaction;
/// the report lists what it holds. Refuses changes that cannot run in a transaction.
pub fn deploy_prepared(
    target: &mut Target,
    plan: &Plan,
    options: &DeployOptions,
    gid: &str,
    observer: &mut dyn Observer,
) -> Result<DeployReport, OpError> {
    let started = Instant::now();
    let vault_available = crate::vault::vault_engine(target);
    with_lock(target, "rollout --atomic", |target| {
        crate::scope::claim_old_rows(target, plan)?;
        let scoped = crate::scope::scoped(target, plan)?;
        let pending = pending(
            plan,
            &scoped,
            options.to.as_deref(),
            &options.accept_irreversible,
            vault_available,
        )?;
        if let Some(problem) = atomic_obstacle(target, &pending) {
            return Err(OpError::Engine(ripcord_core::EngineError::Invalid {
                reason: problem,
                hint: Some("deploy it with a rollout without --atomic, or split the change".into()),
            }));
        }
        let mut next_seq = scoped.all.iter().map(|d| d.deploy_seq).max().unwrap_or(0) + 1;
        let mut report = DeployReport {
            target: target.name.clone(),
            url: target.display_url.clone(),
            dry_run: false,
            planned: pending.iter().map(planned).collect(),
            deployed: Vec::new(),
            snapshot: None,
            other_projects: scoped.other_projects(),
            gate: None,
            duration_ms: 0,
        };
        if pending.is_empty() {
            return Ok(report);
        }
        let limits = target.limits;
        target.engine.begin(&limits)?;
        for p in &pending {
            let completed: Vec<String> = report.deployed.iter().map(|d| d.change.clone()).collect();
            let seq = seq_of(&scoped.mine, &p.change.name, &mut next_seq);
            // In the open transaction: the consent is prepared (and committed) with it.
            let accepted = is_accepted(plan, p.change, &options.accept_irreversible);
            let change = with_consent(target, p.change, vault_available, true)?;
            let outcome = apply_in_transaction(
                target,
                &change,
                seq,
                observer,
                &completed,
                vault_available,
                accepted,
            )
            .inspect_err(|error| record_change_failure(target, error))?;
            observer.change_finished(&outcome.change, Phase::Deploy, outcome.duration_ms);
            report.deployed.push(outcome);
        }
        failpoint::hit("atomic_before_prepare");
        let mut two_phase =
            target
                .engine
                .two_phase()
                .ok_or_else(|| ripcord_core::EngineError::Invalid {
                    reason: format!("{} cannot prepare transactions", target.display_url),
                    hint: Some("--atomic needs PostgreSQL targets".into()),
                })?;
        two_phase.prepare(gid)?;
        drop(two_phase);
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    })
}

/// Why the pending changes cannot run inside one prepared transaction, if they cannot.
fn atomic_obstacle(target: &Target, pending: &[Pending<'_>]) -> Option<String> {
    if let Some(p) = pending.iter().find(|p| p.resume_at > 0) {
        return Some(format!(
            "{} stopped part-way through a `transaction: none` deploy and cannot be finished inside a prepared transaction",
            p.change.name
        ));
    }
    let changes: Vec<&Change> = pending.iter().map(|p| p.change).collect();
    atomic_obstacle_of(target, &changes)
}

/// Why `changes` cannot run inside one prepared transaction on `target` (a
/// `transaction: none` change, a statement that refuses a transaction block), if they
/// cannot: `rollout --atomic` refuses them before anything runs.
pub fn atomic_obstacle_of(target: &Target, changes: &[&Change]) -> Option<String> {
    for change in changes {
        let change = *change;
        if change.transaction == TransactionMode::None {
            return Some(format!(
                "{} has `transaction: none` and cannot run inside a prepared transaction",
                change.name
            ));
        }
        for span in &change.deploy.statements {
            let sql = &change.text[span.clone()];
            if target.engine.needs_own_transaction(sql) {
                let first = sql.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
                return Some(format!(
                    "{} runs `{first} …`, which cannot run inside a transaction, so not inside a prepared one",
                    change.name
                ));
            }
        }
    }
    None
}

/// Name of the baseline deploy's gate saves before the first change.
pub const PRE_DEPLOY: &str = "pre-deploy";

/// Deploy's gate: the checks about the tables pending changes write to, with a baseline
/// saved before the first change and the checks run after the last.
struct Gate {
    checks: Vec<ripcord_core::config::CheckConfig>,
    baseline: Option<crate::check::BaselineRef>,
}

impl Gate {
    /// Before the first change: `None` when there is nothing to check (or `--no-gate`,
    /// which is recorded).
    fn open(
        target: &mut Target,
        options: &DeployOptions,
        changes: &[&Change],
    ) -> Result<Option<Gate>, OpError> {
        if changes.is_empty() || options.checks.is_empty() {
            return Ok(None);
        }
        let names: Vec<String> = changes.iter().map(|c| c.name.clone()).collect();
        if options.no_gate {
            append_event_in_own_tx(
                target,
                NewEvent {
                    kind: "gate_skipped",
                    change: None,
                    detail: json!({ "changes": names, "by": target.identity.actor, "checks": options.checks.len() }),
                },
            )?;
            return Ok(None);
        }
        let sections: Vec<String> = changes
            .iter()
            .map(|c| c.section_sql(SectionKind::Deploy).unwrap_or_default())
            .collect();
        let touching: Vec<String> =
            ripcord_core::snapshot::tables_written(sections.iter().map(String::as_str))
                .into_iter()
                .map(|t| t.name)
                .collect();
        let relevant: Vec<ripcord_core::config::CheckConfig> = options
            .checks
            .iter()
            .filter(|c| crate::check::concerns(c, &touching))
            .cloned()
            .collect();
        if relevant.is_empty() {
            return Ok(None);
        }
        let baseline = if relevant.iter().any(|c| c.expect.needs_baseline()) {
            let saved = crate::check::run_locked(
                target,
                &relevant,
                &crate::check::CheckOptions {
                    save_baseline: Some(PRE_DEPLOY.into()),
                    only_baseline_checks: true,
                    before_changes: names,
                    ..Default::default()
                },
            )?;
            saved.saved
        } else {
            None
        };
        Ok(Some(Gate {
            checks: relevant,
            baseline,
        }))
    }

    /// After the last change: run the checks; when an error-severity one fails, revert
    /// what this run deployed, newest first, and fail naming the check.
    fn close(
        self,
        target: &mut Target,
        plan: &Plan,
        report: &DeployReport,
        observer: &mut dyn Observer,
    ) -> Result<crate::check::CheckReport, OpError> {
        let checks = crate::check::run_locked(
            target,
            &self.checks,
            &crate::check::CheckOptions {
                against: self.baseline.clone(),
                no_default_baseline: true,
                ..Default::default()
            },
        )?;
        let deployed: Vec<String> = report.deployed.iter().map(|d| d.change.clone()).collect();
        let Some(first) = checks.failures().first().map(|f| (*f).clone()) else {
            append_event_in_own_tx(
                target,
                NewEvent {
                    kind: "gate_passed",
                    change: None,
                    detail: json!({
                        "changes": deployed,
                        "checks": checks.checks.len(),
                        "baseline": self.baseline.as_ref().map(|b| b.to_string()),
                    }),
                },
            )?;
            return Ok(checks);
        };
        let reason = first.reasons.join("; ");
        let reverted = crate::revert::revert_within_lock(target, plan, &deployed, observer)?;
        append_event_in_own_tx(
            target,
            NewEvent {
                kind: "gate_failed",
                change: None,
                detail: json!({
                    "check": first.name,
                    "value": first.value,
                    "expect": first.expect,
                    "reasons": first.reasons,
                    "reverted": reverted,
                    "baseline": self.baseline.as_ref().map(|b| b.to_string()),
                }),
            },
        )?;
        Err(OpError::GateFailed {
            check: first.name.clone(),
            reason,
            reverted,
            report: Box::new(checks),
        })
    }
}

/// Snapshot the existing tables that `changes` write to (all of them, or only when a
/// statement destroys data, per `policy`).
fn snapshot_before(
    target: &mut Target,
    policy: &SnapshotBefore,
    changes: &[&Change],
    first: &str,
) -> Result<Option<crate::snapshot::SnapshotSummary>, OpError> {
    let sections: Vec<String> = changes
        .iter()
        .map(|c| c.section_sql(SectionKind::Deploy).unwrap_or_default())
        .collect();
    let touched = ripcord_core::snapshot::tables_written(sections.iter().map(String::as_str));
    if policy.only_destructive && !touched.iter().any(|t| t.destructive) {
        return Ok(None);
    }
    let existing = crate::snapshot::existing_tables(target, touched.into_iter().map(|t| t.name))?;
    if existing.is_empty() {
        return Ok(None);
    }
    let options = crate::snapshot::CreateOptions {
        tables: existing,
        label: format!("before {first}"),
        parallel: policy.parallel,
        progress: crate::snapshot::no_progress(),
        change: Some(first.to_string()),
    };
    crate::snapshot::create_locked(target, &policy.store, &options).map(Some)
}

pub(crate) fn ledger_row(
    change: &Change,
    seq: i64,
    target: &Target,
    state: ChangeState,
    done: usize,
    duration_ms: u64,
) -> DeployedChange {
    DeployedChange {
        name: change.name.clone(),
        deploy_seq: seq,
        checksum: change.checksum.clone(),
        deploy_sql: change.section_sql(SectionKind::Deploy).unwrap_or_default(),
        revert_sql: change.section_sql(SectionKind::Revert),
        verify_sql: change.section_sql(SectionKind::Verify),
        transaction: change.transaction,
        irreversible: change.irreversible.clone(),
        requires: change.requires.iter().map(|r| r.name.clone()).collect(),
        state,
        statements_done: done as i32,
        statements_total: change.deploy.statements.len() as i32,
        deployed_at: Utc::now(),
        deployed_by: target.identity.actor.clone(),
        deployed_host: target.identity.host.clone(),
        duration_ms: duration_ms as i64,
        file: change.path.display().to_string(),
        project: target.project.clone(),
    }
}

fn completed_event(
    change: &Change,
    row: &DeployedChange,
    statements: usize,
    duration_ms: u64,
    resumed_at: Option<usize>,
) -> NewEvent {
    NewEvent {
        kind: "deploy_completed",
        change: Some(change.name.clone()),
        detail: json!({
            "checksum": change.checksum,
            "ledger": row.definition_checksum(),
            "project": row.project,
            "no_op": change.deploy.statements.is_empty(),
            "statements": statements,
            "transaction": change.transaction.as_str(),
            "duration_ms": duration_ms,
            "resumed_at": resumed_at,
            "irreversible": change.irreversible,
            "flags": change.flags,
        }),
    }
}

fn deploy_in_one_transaction(
    target: &mut Target,
    change: &Change,
    seq: i64,
    observer: &mut dyn Observer,
    completed: &[String],
    vault_available: Option<ripcord_core::EngineKind>,
    accepted: bool,
) -> Result<DeployedOutcome, OpError> {
    let limits = target.limits;
    target.engine.begin(&limits)?;
    let outcome = apply_in_transaction(
        target,
        change,
        seq,
        observer,
        completed,
        vault_available,
        accepted,
    )?;
    failpoint::hit("before_commit");
    target.engine.commit()?;
    Ok(outcome)
}

/// Deploy and verify `change`, with its ledger row and event, inside the caller's open
/// transaction.
fn apply_in_transaction(
    target: &mut Target,
    change: &Change,
    seq: i64,
    observer: &mut dyn Observer,
    completed: &[String],
    vault_available: Option<ripcord_core::EngineKind>,
    accepted: bool,
) -> Result<DeployedOutcome, OpError> {
    let started = Instant::now();
    let deploy = deploy_script(change);
    let verify = verify_script(change);
    observer.change_started(&change.name, Phase::Deploy, deploy.len(), 0);
    let mut keeper = Keeper::with_consent(change, vault_available, accepted);
    for index in 0..deploy.len() {
        let kept = match keeper.as_mut() {
            Some(keeper) => keeper.before(target, change, &deploy, index)?,
            None => Vec::new(),
        };
        run_statement(
            target,
            &change.name,
            Phase::Deploy,
            &deploy,
            index,
            observer,
            completed,
            None,
        )?;
        if let Some(keeper) = keeper.as_mut() {
            keeper.after(target, change, &deploy, index, kept)?;
        }
    }
    if let Some(keeper) = keeper.as_mut() {
        keeper.finish(target)?;
    }
    failpoint::hit("deploy_statements_done");
    run_verify(target, &change.name, &verify, observer, completed, None)?;
    let duration_ms = started.elapsed().as_millis() as u64;
    let mut row = ledger_row(
        change,
        seq,
        target,
        ChangeState::Deployed,
        deploy.len(),
        duration_ms,
    );
    let mut gave_up = None;
    if let Some(keeper) = &keeper {
        row.revert_sql = keeper.revert_sql(change);
        if let Some(why) = &keeper.gave_up {
            let reason = format!(
                "deployed without a revert, accepted by {} with --accept-irreversible; ripcord could not write one: {why}",
                target.identity.actor
            );
            row.irreversible = Some(reason.clone());
            gave_up = Some(reason);
        }
    }
    if let Some(reason) = &gave_up {
        append_event(
            target,
            NewEvent {
                kind: "irreversible_accepted",
                change: Some(change.name.clone()),
                detail: json!({ "reason": reason, "by": target.identity.actor }),
            },
        )?;
    }
    target.engine.put_change(&row)?;
    let mut event = completed_event(change, &row, deploy.len(), duration_ms, None);
    if let Some(keeper) = &keeper {
        event.detail["revert"] = json!(keeper.revert_kind());
        if !keeper.not_kept.is_empty() {
            event.detail["not_kept"] = json!(keeper.not_kept);
        }
    }
    append_event(target, event)?;
    Ok(DeployedOutcome {
        change: change.name.clone(),
        statements: deploy.len(),
        verify_statements: verify.len(),
        resumed_at: None,
        duration_ms,
    })
}

/// A resumed `transaction: none` deploy restarts at the statement that was interrupted;
/// when that is a `CREATE INDEX CONCURRENTLY`, the INVALID index it left would make the
/// rerun fail ("already exists"), so it is dropped first and the drop recorded.
fn drop_invalid_index_left_by(
    target: &mut Target,
    change: &Change,
    index: usize,
) -> Result<(), OpError> {
    let Some(span) = change.deploy.statements.get(index) else {
        return Ok(());
    };
    let effects = ripcord_guard::statement_effects(&change.text[span.clone()]).unwrap_or_default();
    for effect in effects {
        if let ripcord_core::vault::Effect::Creates {
            kind: ripcord_core::vault::CreatedKind::Index,
            name,
            concurrently: true,
            ..
        } = effect
            && let Some(dropped) = target.engine.drop_invalid_index(&name)?
        {
            tracing::warn!(
                "dropped INVALID index {dropped} left by the interrupted statement {} of {}; building it again",
                index + 1,
                change.name
            );
            append_event_in_own_tx(
                target,
                NewEvent {
                    kind: "invalid_index_dropped",
                    change: Some(change.name.clone()),
                    detail: json!({ "index": dropped, "statement": index + 1 }),
                },
            )?;
        }
    }
    Ok(())
}

fn deploy_statement_by_statement(
    target: &mut Target,
    p: &Pending<'_>,
    existing: Option<&DeployedChange>,
    seq: i64,
    observer: &mut dyn Observer,
    completed: &[String],
) -> Result<DeployedOutcome, OpError> {
    let started = Instant::now();
    let change = p.change;
    let deploy = deploy_script(change);
    let verify = verify_script(change);
    let limits = target.limits;
    observer.change_started(&change.name, Phase::Deploy, deploy.len(), p.resume_at);

    if existing.is_none() {
        target.engine.begin(&limits)?;
        let row = ledger_row(change, seq, target, ChangeState::Deploying, 0, 0);
        target.engine.put_change(&row)?;
        append_event(
            target,
            NewEvent {
                kind: "deploy_started",
                change: Some(change.name.clone()),
                detail: json!({
                    "checksum": change.checksum,
                    "ledger": row.definition_checksum(),
                    "project": row.project,
                    "statements": deploy.len(),
                    "transaction": "none",
                }),
            },
        )?;
        target.engine.commit()?;
    }

    for index in p.resume_at..deploy.len() {
        if existing.is_some() && index == p.resume_at {
            drop_invalid_index_left_by(target, change, index)?;
        }
        run_statement_with_progress(
            target,
            &change.name,
            Phase::Deploy,
            ChangeState::Deploying,
            &deploy,
            index,
            observer,
            completed,
        )?;
        failpoint::hit("nontx_statement_done");
    }

    target.engine.begin(&limits)?;
    run_verify(
        target,
        &change.name,
        &verify,
        observer,
        completed,
        Some(deploy.len()),
    )?;
    let duration_ms = started.elapsed().as_millis() as u64;
    let row = ledger_row(
        change,
        seq,
        target,
        ChangeState::Deployed,
        deploy.len(),
        duration_ms,
    );
    target.engine.put_change(&row)?;
    let resumed_at = (p.resume_at > 0 || existing.is_some()).then_some(p.resume_at);
    append_event(
        target,
        completed_event(
            change,
            &row,
            deploy.len() - p.resume_at,
            duration_ms,
            resumed_at,
        ),
    )?;
    target.engine.commit()?;
    Ok(DeployedOutcome {
        change: change.name.clone(),
        statements: deploy.len() - p.resume_at,
        verify_statements: verify.len(),
        resumed_at,
        duration_ms,
    })
}
