//! Drill: rehearse pending changes on a scratch database and prove that each one comes
//! back exactly (DESIGN §5.4). Per change: fingerprint F0 → deploy + verify → F1 →
//! revert → must equal F0 → deploy + verify again → must equal F1. Differences are told
//! in words; on PostgreSQL every deploy statement's strongest new lock on a table that
//! existed before, and any table rewrite, are measured from the drill's own session.
//!
//! The target is only read. A scratch database made by drill is dropped when the drill
//! ends, fails or is interrupted ([`drop_active_scratch`] for signal handlers), and a
//! later drill drops the leftovers of one that was killed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use ripcord_core::fingerprint::{Difference, Fingerprint};
use ripcord_core::{Change, ChangeState, Plan, RelationLock, TransactionMode};
use serde::Serialize;

use crate::error::{OpError, Phase};
use crate::failpoint;
use crate::observe::Silent;
use crate::run::{Script, run_statement};
use crate::target::{Target, connect};
use crate::vault::{Keeper, why_not_generated};

/// What to rehearse, and where.
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// Use this empty database instead of creating one.
    pub scratch: Option<String>,
    /// Start from a copy of the target's data instead of replaying its ledger.
    pub from_target: bool,
    /// Only pending changes in this range (names or IDs; either end may be open).
    pub changes: Option<(Option<String>, Option<String>)>,
    /// Rehearse every change even after one fails.
    pub keep_going: bool,
    /// Seed script run after the replay (`[drill] seed`).
    pub seed: Option<PathBuf>,
    /// A revert may restore columns in another order (`[drill] column_order = "ignore"`).
    pub ignore_column_order: bool,
    /// Most connections hashing the scratch database's tables at once (`[fingerprint]
    /// connections`; default: the machine's CPUs).
    pub hash_connections: Option<usize>,
}

/// The locks one deploy statement took on tables that existed before the change.
#[derive(Debug, Clone, Serialize)]
pub struct StatementLocks {
    /// 1-based statement number in the deploy section.
    pub statement: usize,
    /// `file:line:column`.
    pub at: String,
    /// Locks it newly took or strengthened (strongest per table).
    pub locks: Vec<RelationLock>,
    /// Tables it rewrote (their storage file changed).
    pub rewrote: Vec<String>,
}

/// The verdict on one change.
#[derive(Debug, Clone, Serialize)]
pub struct DrillOutcome {
    /// The change.
    pub change: String,
    /// Deployed, reverted exactly and redeployed identically.
    pub passed: bool,
    /// Not rehearsed (declared irreversible), with why.
    pub skipped: Option<String>,
    /// A statement that failed, or another reason the rehearsal stopped.
    pub problem: Option<String>,
    /// How the state after revert differs from the state before the change.
    pub revert_differences: Vec<Difference>,
    /// How the state after the second deploy differs from after the first.
    pub redeploy_differences: Vec<Difference>,
    /// Time of the first deploy + verify.
    pub deploy_ms: u64,
    /// Time of the revert.
    pub revert_ms: u64,
    /// Time of the second deploy + verify.
    pub redeploy_ms: u64,
    /// Lock trace of the first deploy (PostgreSQL).
    pub locks: Vec<StatementLocks>,
    /// The first deploy failed, so the change is not on the scratch.
    pub deploy_failed: bool,
    /// Its deploy failed after this earlier change could not be deployed on the scratch:
    /// most likely a knock-on of that failure rather than a failure of its own.
    pub knock_on_of: Option<String>,
    /// After this change failed, the scratch was rebuilt (starting state plus every
    /// change deployed so far, this one included when its deploy works), so that the
    /// next changes are rehearsed against the state they expect.
    pub rebuilt: bool,
}

impl DrillOutcome {
    fn new(change: &str) -> DrillOutcome {
        DrillOutcome {
            change: change.to_string(),
            passed: false,
            skipped: None,
            problem: None,
            revert_differences: Vec::new(),
            redeploy_differences: Vec::new(),
            deploy_ms: 0,
            revert_ms: 0,
            redeploy_ms: 0,
            locks: Vec::new(),
            deploy_failed: false,
            knock_on_of: None,
            rebuilt: false,
        }
    }
}

/// Where a rehearsal left the scratch, so that `--keep-going` can go on from a state
/// where the change is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Left {
    /// The change is deployed, as after its first deploy.
    Deployed,
    /// Its deploy failed and rolled back: the scratch is as before the change.
    NotDeployed,
    /// Anything else; `deployable` says whether its first deploy worked.
    Unknown { deployable: bool },
}

/// The result of a drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// Target name.
    pub target: String,
    /// The scratch database (password hidden).
    pub scratch: String,
    /// `replay` (ledger replayed from empty) or `copy` (`--from-target`).
    pub starting_state: &'static str,
    /// Deployed changes replayed into the scratch.
    pub replayed: usize,
    /// Whether a seed script ran.
    pub seeded: bool,
    /// Leftover scratch databases of killed drills that were dropped first.
    pub cleaned_up: Vec<String>,
    /// One entry per rehearsed change, in plan order.
    pub changes: Vec<DrillOutcome>,
    /// Every change passed.
    pub passed: bool,
    /// Failures that are knock-ons of an earlier change that could not be deployed.
    pub knock_ons: usize,
    /// Wall time.
    pub duration_ms: u64,
}

struct ActiveScratch {
    admin_url: String,
    scratch_url: String,
}

static ACTIVE: Mutex<Option<ActiveScratch>> = Mutex::new(None);
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`drop_active_scratch`] was called: errors the drill reports afterwards are
/// the scratch being dropped under it, not problems to show.
pub fn was_interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Drop the scratch database of a drill in progress (for Ctrl-C handlers); returns
/// whether there was one.
pub fn drop_active_scratch() -> bool {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(active) = active else {
        return false;
    };
    if let Ok(mut admin) = connect("admin", &active.admin_url, &PathBuf::from(".")) {
        let _ = admin.engine.drop_scratch(&active.scratch_url);
    }
    true
}

/// The pending changes to rehearse.
fn selected<'a>(
    plan: &'a Plan,
    target: &mut Target,
    options: &DrillOptions,
) -> Result<Vec<&'a Change>, OpError> {
    let ledger = target.engine.changes()?;
    let resolve = |name: &Option<String>| -> Result<Option<&'a Change>, OpError> {
        name.as_ref()
            .filter(|n| !n.is_empty())
            .map(|n| crate::error::resolve_change(plan, n))
            .transpose()
    };
    let (from, to) = match &options.changes {
        Some((from, to)) => (resolve(from)?, resolve(to)?),
        None => (None, None),
    };
    if let Some(error) = crate::error::invalid_files(plan.invalid_through(to.map(|t| &t.id))) {
        return Err(error);
    }
    Ok(plan
        .changes()
        .iter()
        .filter(|c| !ledger.iter().any(|d| d.name == c.name))
        .filter(|c| from.is_none_or(|f| c.id >= f.id))
        .filter(|c| to.is_none_or(|t| c.id <= t.id))
        .collect())
}

/// Rehearse the pending changes of `plan` against a scratch copy of `target`.
pub fn drill(
    target: &mut Target,
    plan: &Plan,
    options: &DrillOptions,
    on_change: &mut dyn FnMut(&DrillOutcome),
) -> Result<DrillReport, OpError> {
    let started = Instant::now();
    let cleaned_up = target.engine.drop_stale_scratches()?;
    let pending = selected(plan, target, options)?;

    let (scratch_url, created) = match &options.scratch {
        Some(url) => (url.clone(), false),
        None => {
            let url = target.engine.create_scratch()?;
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(ActiveScratch {
                admin_url: target.url.clone(),
                scratch_url: url.clone(),
            });
            (url, true)
        }
    };
    let result = (|| {
        let mut scratch = connect("scratch", &scratch_url, &PathBuf::from("."))?;
        if let Some(connections) = options.hash_connections {
            scratch.engine.set_hash_connections(connections);
        }
        let display = scratch.display_url.clone();
        let occupied = scratch
            .engine
            .schema_objects()?
            .iter()
            .any(|o| o.kind != "extension" && !(o.kind == "schema" && o.name == "public"));
        if options.scratch.is_some() && occupied {
            return Err(OpError::ScratchNotEmpty { scratch: display });
        }
        failpoint::hit("drill_scratch_ready");
        let (starting_state, replayed, seeded) = prepare(target, &mut scratch, options)?;
        let mut report = DrillReport {
            target: target.name.clone(),
            scratch: display,
            starting_state,
            replayed,
            seeded,
            cleaned_up: cleaned_up.clone(),
            changes: Vec::new(),
            passed: true,
            knock_ons: 0,
            duration_ms: 0,
        };
        // What the scratch holds beyond its starting state, to rebuild it when needed.
        let mut applied: Vec<&Change> = Vec::new();
        let mut undeployable: Vec<String> = Vec::new();
        for (position, change) in pending.iter().enumerate() {
            let mut name_rows = |scratch: &mut Target, tables: &[String]| {
                rows_behind(target, scratch, options, &applied, tables)
            };
            let (mut outcome, left) = rehearse(&mut scratch, change, options, &mut name_rows)?;
            if outcome.deploy_failed {
                outcome.knock_on_of = undeployable.first().cloned();
            }
            let more = position + 1 < pending.len();
            match left {
                Left::Deployed => applied.push(change),
                Left::NotDeployed => undeployable.push(change.name.clone()),
                Left::Unknown { deployable } => {
                    if deployable {
                        applied.push(change);
                    } else {
                        undeployable.push(change.name.clone());
                    }
                    if options.keep_going && more {
                        let lost = rebuild(target, &mut scratch, options, &mut applied)?;
                        undeployable.extend(lost);
                        outcome.rebuilt = true;
                    }
                }
            }
            on_change(&outcome);
            let failed = !outcome.passed;
            report.passed &= outcome.passed;
            if failed && outcome.knock_on_of.is_some() {
                report.knock_ons += 1;
            }
            report.changes.push(outcome);
            if failed && !options.keep_going {
                break;
            }
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    })();
    if let Ok(report) = &result {
        record(target, plan, report);
    }
    if created {
        // The scratch connection is closed by now; drop even if the drill failed.
        let dropped = target.engine.drop_scratch(&scratch_url);
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let (Ok(_), Err(e)) = (&result, dropped) {
            return Err(e.into());
        }
    }
    result
}

/// Note the drill in the target's audit chain (`drill_completed`, each change with the
/// checksum it was rehearsed at), so `ripcord serve` can say which pending changes a
/// drill proved. Best effort: a target without a ledger, or whose lock is held, keeps
/// no note, and the drill's own result stands.
fn record(target: &mut Target, plan: &Plan, report: &DrillReport) {
    if !matches!(target.engine.ledger_version(), Ok(Some(_))) {
        return;
    }
    let changes: Vec<serde_json::Value> = report
        .changes
        .iter()
        .map(|outcome| {
            serde_json::json!({
                "change": outcome.change,
                "checksum": plan.get(&outcome.change).map(|c| c.checksum.clone()),
                "passed": outcome.passed,
                "skipped": outcome.skipped.is_some(),
            })
        })
        .collect();
    let _ = crate::run::with_lock(target, "drill", |target| {
        crate::run::append_event_in_own_tx(
            target,
            ripcord_core::audit::NewEvent {
                kind: "drill_completed",
                change: None,
                detail: serde_json::json!({
                    "passed": report.passed,
                    "changes": changes,
                    "duration_ms": report.duration_ms,
                }),
            },
        )?;
        Ok(())
    });
}

/// Bring the scratch to the target's state; `(how, replayed changes, seeded)`.
fn prepare(
    target: &mut Target,
    scratch: &mut Target,
    options: &DrillOptions,
) -> Result<(&'static str, usize, bool), OpError> {
    let ledger: Vec<_> = target
        .engine
        .changes()?
        .into_iter()
        .filter(|d| d.state == ChangeState::Deployed)
        .collect();
    // The replay runs the ledger's SQL: only what the audit chain vouches for.
    let names: Vec<&str> = ledger.iter().map(|d| d.name.as_str()).collect();
    crate::integrity::require_intact(target, &names)?;
    if options.from_target && scratch.engine.capabilities().copy_includes_schema {
        scratch.engine.copy_from(&target.url)?;
        return Ok(("copy", 0, false));
    }
    for deployed in &ledger {
        let script = Script::from_ledger(&deployed.name, Phase::Deploy, &deployed.deploy_sql);
        apply(
            scratch,
            &deployed.name,
            Phase::Deploy,
            &script,
            deployed.transaction,
        )
        .map_err(|e| OpError::DrillSetup {
            reason: format!(
                "replaying deployed change {} into the scratch failed: {e}",
                deployed.name
            ),
        })?;
    }
    if options.from_target {
        scratch.engine.copy_from(&target.url)?;
        return Ok(("copy", ledger.len(), false));
    }
    let mut seeded = false;
    if let Some(seed) = &options.seed {
        let sql = std::fs::read_to_string(seed).map_err(|e| OpError::DrillSetup {
            reason: format!("cannot read the seed script {}: {e}", seed.display()),
        })?;
        let script = Script::from_ledger("seed", Phase::Deploy, &sql);
        apply(
            scratch,
            "seed",
            Phase::Deploy,
            &script,
            TransactionMode::PerChange,
        )
        .map_err(|e| OpError::DrillSetup {
            reason: format!("the seed script {} failed: {e}", seed.display()),
        })?;
        seeded = true;
    }
    Ok(("replay", ledger.len(), seeded))
}

/// Rows per table named in a drill report.
const ROWS_NAMED: usize = 5;

/// The rows behind data differences after a revert, in words: the state before the
/// change is built again on a second scratch (starting state plus `applied`), and
/// `ripcord diff` compares it with the reverted scratch. Best effort: when the second
/// scratch cannot be built, the counts drill already gave stand alone.
fn rows_behind(
    target: &mut Target,
    scratch: &mut Target,
    options: &DrillOptions,
    applied: &[&Change],
    tables: &[String],
) -> Vec<Difference> {
    let Ok(url) = target.engine.create_scratch() else {
        return Vec::new();
    };
    let named = (|| -> Result<Vec<Difference>, OpError> {
        let mut before = connect("before", &url, &PathBuf::from("."))?;
        if let Some(connections) = options.hash_connections {
            before.engine.set_hash_connections(connections);
        }
        let replay = DrillOptions {
            scratch: Some(url.clone()),
            ..options.clone()
        };
        prepare(target, &mut before, &replay)?;
        for change in applied {
            deploy_traced(&mut before, change, false, None)?;
        }
        let report = crate::diff::diff(
            &mut before,
            scratch,
            &crate::diff::DiffOptions {
                tables: tables.to_vec(),
                row_limit: ROWS_NAMED,
                ..Default::default()
            },
        )?;
        let mut out = Vec::new();
        for table in report.tables {
            for row in &table.rows {
                let key: Vec<String> = row
                    .key
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("NULL")))
                    .collect();
                let what = match row.kind {
                    "added" => "is there after revert but was not before the change".to_string(),
                    "removed" => {
                        "is missing after revert (it existed before the change)".to_string()
                    }
                    _ => format!("differs after revert in {}", row.columns.join(", ")),
                };
                out.push(Difference {
                    category: "data".into(),
                    text: format!("table {}: row {} {what}", table.table, key.join(" ")),
                });
            }
        }
        Ok(out)
    })();
    let _ = target.engine.drop_scratch(&url);
    named.unwrap_or_default()
}

/// Empty the scratch, bring it to the starting state again and deploy `applied` on it;
/// the changes whose deploy no longer works are taken out of `applied` and returned.
fn rebuild(
    target: &mut Target,
    scratch: &mut Target,
    options: &DrillOptions,
    applied: &mut Vec<&Change>,
) -> Result<Vec<String>, OpError> {
    scratch.engine.clear_scratch()?;
    prepare(target, scratch, options)?;
    let mut lost = Vec::new();
    let mut kept = Vec::new();
    for change in applied.drain(..) {
        match deploy_traced(scratch, change, false, None) {
            Ok(_) => kept.push(change),
            Err(OpError::ChangeFailed(_)) => lost.push(change.name.clone()),
            Err(e) => return Err(e),
        }
    }
    *applied = kept;
    Ok(lost)
}

/// Run a whole script: in one transaction, or statement by statement.
fn apply(
    scratch: &mut Target,
    name: &str,
    phase: Phase,
    script: &Script,
    mode: TransactionMode,
) -> Result<(), OpError> {
    let in_transaction = mode == TransactionMode::PerChange;
    if in_transaction {
        scratch.engine.begin(&Default::default())?;
    }
    for index in 0..script.len() {
        if let Err(e) = run_statement(scratch, name, phase, script, index, &mut Silent, &[], None) {
            if in_transaction {
                let _ = scratch.engine.rollback();
            }
            return Err(e);
        }
    }
    if in_transaction {
        scratch.engine.commit()?;
    }
    Ok(())
}

fn fingerprint(scratch: &mut Target) -> Result<Fingerprint, OpError> {
    Ok(Fingerprint::new(
        scratch.engine.schema_objects()?,
        scratch.engine.table_data()?,
    ))
}

fn problem_text(error: &OpError) -> String {
    match error {
        OpError::ChangeFailed(f) => format!(
            "{} failed at {}: {}",
            f.phase.as_str(),
            f.location.display_short(),
            f.error
        ),
        other => other.to_string(),
    }
}

const LOCK_RANK: [&str; 8] = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

fn rank(mode: &str) -> usize {
    LOCK_RANK
        .iter()
        .position(|m| *m == mode)
        .map_or(0, |p| p + 1)
}

/// Deploy (and verify) `change` on the scratch, tracing locks when the engine can.
fn deploy_traced(
    scratch: &mut Target,
    change: &Change,
    trace: bool,
    mut keeper: Option<&mut Keeper>,
) -> Result<Vec<StatementLocks>, OpError> {
    let deploy = Script::from_file(change.location(0..0), change.deploy.statements.clone());
    let verify = Script::from_file(
        change.location(0..0),
        change
            .verify
            .as_ref()
            .map(|v| v.statements.clone())
            .unwrap_or_default(),
    );
    let in_transaction = change.transaction == TransactionMode::PerChange;
    let mut files: BTreeMap<String, String> = if trace {
        scratch.engine.relation_files()?.into_iter().collect()
    } else {
        BTreeMap::new()
    };
    let mut held: BTreeMap<String, usize> = BTreeMap::new();
    let mut trace_out = Vec::new();
    let fail = |scratch: &mut Target, e: OpError| {
        if in_transaction {
            let _ = scratch.engine.rollback();
        }
        Err(e)
    };
    if in_transaction {
        scratch.engine.begin(&Default::default())?;
    }
    for index in 0..deploy.len() {
        let kept = match keeper.as_deref_mut() {
            Some(keeper) => match keeper.before(scratch, change, &deploy, index) {
                Ok(kept) => kept,
                Err(e) => return fail(scratch, e),
            },
            None => Vec::new(),
        };
        if let Err(e) = run_statement(
            scratch,
            &change.name,
            Phase::Deploy,
            &deploy,
            index,
            &mut Silent,
            &[],
            None,
        ) {
            return fail(scratch, e);
        }
        if let Some(keeper) = keeper.as_deref_mut()
            && let Err(e) = keeper.after(scratch, change, &deploy, index, kept)
        {
            return fail(scratch, e);
        }
        if trace {
            let mut locks = Vec::new();
            for lock in scratch.engine.held_locks()? {
                if !files.contains_key(&lock.table) {
                    continue; // created by this change: nobody else can be waiting on it
                }
                let level = rank(&lock.mode);
                if level > held.get(&lock.table).copied().unwrap_or(0) {
                    held.insert(lock.table.clone(), level);
                    locks.retain(|l: &RelationLock| l.table != lock.table);
                    locks.push(lock);
                }
            }
            let mut rewrote = Vec::new();
            for (table, file) in scratch.engine.relation_files()? {
                if let Some(before) = files.get_mut(&table)
                    && *before != file
                {
                    rewrote.push(table.clone());
                    *before = file;
                }
            }
            if !locks.is_empty() || !rewrote.is_empty() {
                trace_out.push(StatementLocks {
                    statement: index + 1,
                    at: change
                        .location(change.deploy.statements[index].clone())
                        .display_short(),
                    locks,
                    rewrote,
                });
            }
        }
    }
    if let Some(keeper) = keeper
        && let Err(e) = keeper.finish(scratch)
    {
        return fail(scratch, e);
    }
    // Verify runs as deploy runs it: its writes, if any, are undone (see run::run_verify).
    if !in_transaction && !verify.statements.is_empty() {
        scratch.engine.begin(&Default::default())?;
    }
    if let Err(e) = crate::run::run_verify(scratch, &change.name, &verify, &mut Silent, &[], None) {
        let _ = scratch.engine.rollback();
        return Err(e);
    }
    if in_transaction || !verify.statements.is_empty() {
        scratch.engine.commit()?;
    }
    files.clear();
    Ok(trace_out)
}

/// Revert as `ripcord revert` would: with the revert the vault recorded, else the
/// file's revert section.
fn revert_like_the_ledger(
    scratch: &mut Target,
    change: &Change,
    recorded: Option<String>,
) -> Result<(), OpError> {
    let script = match (recorded, &change.revert) {
        (Some(sql), _) => Script::from_ledger(&change.name, Phase::Revert, &sql),
        (None, Some(section)) => {
            Script::from_file(change.location(0..0), section.statements.clone())
        }
        (None, None) => unreachable!("checked by the caller"),
    };
    apply(
        scratch,
        &change.name,
        Phase::Revert,
        &script,
        change.transaction,
    )
}

/// Deploy → revert → deploy one change, comparing fingerprints; also where it left the
/// scratch.
fn rehearse(
    scratch: &mut Target,
    change: &Change,
    options: &DrillOptions,
    name_rows: &mut dyn FnMut(&mut Target, &[String]) -> Vec<Difference>,
) -> Result<(DrillOutcome, Left), OpError> {
    let mut outcome = DrillOutcome::new(&change.name);
    let vault = crate::vault::vault_engine(scratch);
    // A failed deploy of a `transaction: none` change may have applied some statements.
    let failed_deploy_leaves = match change.transaction {
        TransactionMode::PerChange => Left::NotDeployed,
        TransactionMode::None => Left::Unknown { deployable: false },
    };
    let failed_deploy = |mut outcome: DrillOutcome, e: OpError, context: &str| {
        // A refusal found while the change runs (a revert ripcord cannot write after
        // all) is this change's verdict, as a failed statement is; the change's
        // transaction was rolled back.
        if !matches!(
            e,
            OpError::ChangeFailed(_) | OpError::MissingRevert { .. } | OpError::DataNotKept { .. }
        ) {
            return Err(e);
        }
        outcome.deploy_failed = true;
        outcome.problem = Some(format!("{context}{}", problem_text(&e)));
        Ok((outcome, failed_deploy_leaves))
    };
    if change.revert.is_none() {
        let verdict = match &change.irreversible {
            Some(reason) => Some(Ok(format!(
                "declared irreversible ({reason}): deployed, not reverted"
            ))),
            None => why_not_generated(change, vault).map(|reason| {
                Err(format!(
                    "no revert section, and ripcord cannot write one: {reason}"
                ))
            }),
        };
        if let Some(verdict) = verdict {
            // Deploy it all the same, so that later changes see the state they expect.
            let clock = Instant::now();
            if let Err(e) = deploy_traced(scratch, change, false, None) {
                return failed_deploy(outcome, e, "");
            }
            outcome.deploy_ms = clock.elapsed().as_millis() as u64;
            match verdict {
                Ok(skipped) => {
                    outcome.passed = true;
                    outcome.skipped = Some(skipped);
                }
                Err(problem) => outcome.problem = Some(problem),
            }
            return Ok((outcome, Left::Deployed));
        }
    }
    let mut keeper = Keeper::for_change(change, vault);
    let trace = scratch.engine.capabilities().lock_trace;

    let before = fingerprint(scratch)?;
    let clock = Instant::now();
    match deploy_traced(scratch, change, trace, keeper.as_mut()) {
        Ok(locks) => outcome.locks = locks,
        Err(e) => return failed_deploy(outcome, e, ""),
    }
    outcome.deploy_ms = clock.elapsed().as_millis() as u64;
    let deployed = fingerprint(scratch)?;

    let clock = Instant::now();
    let recorded = keeper.as_ref().and_then(|k| k.revert_sql(change));
    if let Err(e) = revert_like_the_ledger(scratch, change, recorded) {
        if !matches!(e, OpError::ChangeFailed(_)) {
            return Err(e);
        }
        outcome.problem = Some(problem_text(&e));
        // A revert in one transaction rolled back: the change should still be there.
        let left = if fingerprint(scratch)? == deployed {
            Left::Deployed
        } else {
            Left::Unknown { deployable: true }
        };
        return Ok((outcome, left));
    }
    outcome.revert_ms = clock.elapsed().as_millis() as u64;
    let reverted = fingerprint(scratch)?;
    outcome.revert_differences = compared(
        &before,
        &reverted,
        "after revert",
        "before the change",
        options,
    );
    // Name the rows behind a data difference, while the scratch is as the revert left it.
    let tables: Vec<String> = before
        .data
        .iter()
        .filter(|(table, data)| reverted.data.get(*table).is_some_and(|now| now != *data))
        .map(|(table, _)| table.clone())
        .collect();
    if !tables.is_empty() {
        outcome
            .revert_differences
            .extend(name_rows(scratch, &tables));
    }
    if !outcome.revert_differences.is_empty() {
        // Only to go on from the deployed state: deploying over a half-reverted state
        // would tell nothing new about this change.
        let left = if options.keep_going {
            redeploy_over(scratch, change, vault, &deployed)?
        } else {
            Left::Unknown { deployable: true }
        };
        return Ok((outcome, left));
    }

    let clock = Instant::now();
    let mut keeper = Keeper::for_change(change, vault);
    if let Err(e) = deploy_traced(scratch, change, false, keeper.as_mut()) {
        if !matches!(e, OpError::ChangeFailed(_)) {
            return Err(e);
        }
        outcome.problem = Some(format!(
            "deploying again after the revert: {}",
            problem_text(&e)
        ));
        return Ok((outcome, Left::Unknown { deployable: true }));
    }
    outcome.redeploy_ms = clock.elapsed().as_millis() as u64;
    let redeployed = fingerprint(scratch)?;
    outcome.redeploy_differences = compared(
        &deployed,
        &redeployed,
        "after the second deploy",
        "after the first",
        options,
    );
    outcome.passed =
        outcome.revert_differences.is_empty() && outcome.redeploy_differences.is_empty();
    Ok((outcome, Left::Deployed))
}

/// Differences of `actual` from `expected`, without column order when it is accepted.
fn compared(
    expected: &Fingerprint,
    actual: &Fingerprint,
    when: &str,
    baseline: &str,
    options: &DrillOptions,
) -> Vec<Difference> {
    let mut differences = expected.differences(actual, when, baseline, 5);
    if options.ignore_column_order {
        differences.retain(|d| d.category != ripcord_core::fingerprint::COLUMN_ORDER);
    }
    differences
}

/// After a revert that did not come back exactly: deploy again and see whether that
/// reaches the deployed state.
fn redeploy_over(
    scratch: &mut Target,
    change: &Change,
    vault: Option<ripcord_core::EngineKind>,
    deployed: &Fingerprint,
) -> Result<Left, OpError> {
    let mut keeper = Keeper::for_change(change, vault);
    match deploy_traced(scratch, change, false, keeper.as_mut()) {
        Ok(_) if fingerprint(scratch)? == *deployed => Ok(Left::Deployed),
        Ok(_) | Err(OpError::ChangeFailed(_)) => Ok(Left::Unknown { deployable: true }),
        Err(e) => Err(e),
    }
}

/// Parse `A..B`, `A..`, `..B` or `A` (just that change).
pub fn parse_range(text: &str) -> (Option<String>, Option<String>) {
    match text.split_once("..") {
        Some((from, to)) => (
            Some(from.trim().to_string()).filter(|s| !s.is_empty()),
            Some(to.trim().to_string()).filter(|s| !s.is_empty()),
        ),
        None => (Some(text.trim().to_string()), Some(text.trim().to_string())),
    }
}

/// A summary of a target's fingerprint, for `ripcord fingerprint`.
#[derive(Debug, Clone, Serialize)]
pub struct FingerprintReport {
    /// Target name.
    pub target: String,
    /// Schema objects described (absent with `data_only`).
    pub schema_objects: Option<usize>,
    /// blake3 over the canonical schema description (absent with `data_only`).
    pub schema_digest: Option<String>,
    /// Per table: rows and content hash.
    pub tables: Vec<TableFingerprint>,
    /// Wall time.
    pub duration_ms: u64,
}

/// One table of a [`FingerprintReport`].
#[derive(Debug, Clone, Serialize)]
pub struct TableFingerprint {
    /// Qualified name.
    pub table: String,
    /// Rows.
    pub rows: i64,
    /// Order-independent content hash.
    pub hash: String,
}

/// Fingerprint a target as drill does (schema and data, computed in the database).
pub fn fingerprint_target(
    target: &mut Target,
    data_only: bool,
) -> Result<FingerprintReport, OpError> {
    let started = Instant::now();
    let (schema_objects, schema_digest) = if data_only {
        (None, None)
    } else {
        let objects = target.engine.schema_objects()?;
        let mut hasher = blake3::Hasher::new();
        let mut sorted: Vec<_> = objects
            .iter()
            .map(|o| (&o.kind, &o.name, &o.definition))
            .collect();
        sorted.sort();
        for (kind, name, definition) in sorted {
            for part in [kind, name, definition] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
        }
        (
            Some(objects.len()),
            Some(hasher.finalize().to_hex().to_string()),
        )
    };
    let tables = target
        .engine
        .table_data()?
        .into_iter()
        .map(|(table, data)| TableFingerprint {
            table,
            rows: data.rows,
            hash: data.hash,
        })
        .collect();
    Ok(FingerprintReport {
        target: target.name.clone(),
        schema_objects,
        schema_digest,
        tables,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}
