//! `ripcord rollout`: pending changes deployed wave by wave across a fleet, probes
//! watched after each wave, and on a failure every target changed by the rollout
//! reverted, in reverse order of change (DESIGN §5.8).
//!
//! Every target's state is written to the coordinator as it changes, so a rollout
//! interrupted at any point (kill -9 included) is resumed by running it again: each
//! target's own ledger says what is deployed there, so nothing is applied twice, and an
//! interrupted rollback is finished before anything else.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use chrono::Utc;
use ripcord::Target;
use ripcord::deploy::DeployOptions;
use ripcord_core::config::{CheckConfig, NotifyConfig, OnFailure};
use ripcord_core::fingerprint::Fingerprint;
use ripcord_core::fleet::{RolloutRecord, RolloutStep};
use ripcord_core::{LockHolder, Plan, SessionLimits};
use serde_json::json;

use crate::error::RolloutError;
use crate::fleet::{Fleet, Member};
use crate::notify::Notifier;
use crate::probe::{ProbeScope, Verdict};
use crate::report::{Event, Reporter, RolloutReport, TargetOutcome, WaveWatch};

/// What to roll out, and how.
#[derive(Debug, Clone, Default)]
pub struct RolloutOptions {
    /// Stop after this change.
    pub to: Option<String>,
    /// Only report what would run where (nothing is written anywhere).
    pub dry_run: bool,
    /// All targets or none, with two-phase commit.
    pub atomic: bool,
    /// Inconclusive probes fail the rollout (and roll it back) instead of pausing it.
    pub no_pause: bool,
    /// Roll back the unfinished (paused or interrupted) rollout of the fleet.
    pub abort: bool,
    /// Changes deployed without a revert, with consent.
    pub accept_irreversible: Vec<String>,
    /// The project's checks (for `check` probes).
    pub checks: Vec<CheckConfig>,
    /// `[[notify]]`.
    pub notify: Vec<NotifyConfig>,
    /// The project (`[project] name`).
    pub project: Option<String>,
    /// Timeouts of every change transaction.
    pub limits: SessionLimits,
    /// The coordinator `(name, url)`; default: the fleet's first target.
    pub coordinator: Option<(String, String)>,
}

/// How to open a target's connection (again).
#[derive(Debug, Clone)]
pub(crate) struct Link {
    base_dir: std::path::PathBuf,
    project: Option<String>,
    limits: SessionLimits,
}

impl Link {
    pub(crate) fn new(fleet: &Fleet, options: &RolloutOptions) -> Link {
        Link {
            base_dir: fleet.base_dir.clone(),
            project: options.project.clone(),
            limits: options.limits,
        }
    }

    pub(crate) fn open(&self, member: &Member) -> Result<Target, RolloutError> {
        let mut target = ripcord::target::connect(&member.name, &member.url, &self.base_dir)
            .map_err(|e| RolloutError::Unreachable {
                target: member.name.clone(),
                reason: e.to_string(),
            })?;
        target.project = self.project.clone();
        target.limits = self.limits;
        Ok(target)
    }
}

/// One target while the rollout runs. Its connection is opened when a step needs it
/// and released after, so a rollout over hundreds of targets holds at most
/// `max_parallel` connections (and their buffers) at a time.
pub(crate) struct Slot {
    pub member: Member,
    pub wave: usize,
    pub step: RolloutStep,
    pub connection: Connection,
    /// ripcord's prepared transactions seen on the target when it was first reached.
    pub in_doubt: usize,
    /// What the target held when it was first read (not read while it had in-doubt
    /// transactions, whose locks a read could wait on until recovery).
    pub surveyed: Option<Surveyed>,
}

/// A target as first read: the plan's changes deployed there, a digest of its schema,
/// and what a deploy would run there.
pub(crate) struct Surveyed {
    deployed: Vec<String>,
    schema: u64,
    pending: Vec<String>,
}

/// A target's connection, open or not.
pub(crate) struct Connection {
    link: std::sync::Arc<Link>,
    open: Option<Target>,
}

impl Connection {
    /// The connection to `member`, opened if it is not open.
    pub(crate) fn target(&mut self, member: &Member) -> Result<&mut Target, RolloutError> {
        if self.open.is_none() {
            self.open = Some(self.link.open(member)?);
        }
        Ok(self.open.as_mut().expect("the connection was just opened"))
    }
}

impl Slot {
    pub(crate) fn new(member: Member, wave: usize, link: std::sync::Arc<Link>) -> Slot {
        Slot {
            step: RolloutStep {
                rollout: String::new(),
                target: member.name.clone(),
                wave: wave as i32,
                state: "pending".into(),
                changes: Vec::new(),
                reason: None,
                updated_at: Utc::now(),
            },
            member,
            wave,
            connection: Connection { link, open: None },
            in_doubt: 0,
            surveyed: None,
        }
    }

    /// The target's connection, opened if it is not open.
    pub(crate) fn target(&mut self) -> Result<&mut Target, RolloutError> {
        self.connection.target(&self.member)
    }

    /// Close the connection until the next step needs it.
    pub(crate) fn release(&mut self) {
        self.connection.open = None;
    }
}

/// A rollout in progress.
pub(crate) struct Run<'a> {
    pub fleet: &'a Fleet,
    pub plan: &'a Plan,
    pub options: &'a RolloutOptions,
    pub reporter: &'a dyn Reporter,
    pub coordinator: Mutex<Target>,
    pub record: Mutex<RolloutRecord>,
    pub notifier: Notifier,
    /// Targets in the order their changes landed.
    pub changed_order: Mutex<Vec<String>>,
}

impl Run<'_> {
    pub(crate) fn emit(
        &self,
        kind: &'static str,
        target: Option<&str>,
        wave: Option<usize>,
        message: String,
        detail: serde_json::Value,
    ) {
        let id = self.record.lock().map(|r| r.id.clone()).unwrap_or_default();
        let event = Event {
            kind,
            rollout: id,
            fleet: self.fleet.name.clone(),
            target: target.map(String::from),
            wave,
            message,
            detail,
            at: Utc::now(),
        };
        self.reporter.event(&event);
        for failure in self.notifier.send(&event) {
            self.reporter.event(&Event {
                kind: "notify_failed",
                message: failure,
                detail: json!({ "event": kind }),
                ..event.clone()
            });
        }
    }

    /// Write a step to the coordinator (and keep it in the slot).
    pub(crate) fn save_step(
        &self,
        step: &mut RolloutStep,
        state: &str,
        reason: Option<String>,
    ) -> Result<(), RolloutError> {
        step.state = state.to_string();
        step.reason = reason;
        step.updated_at = Utc::now();
        let mut coordinator = self.coordinator.lock().unwrap_or_else(|e| e.into_inner());
        let name = coordinator.display_url.clone();
        coordinator
            .engine
            .fleet()
            .ok_or_else(|| no_fleet(&name))?
            .put_step(step)
            .map_err(|e| coordinator_error(&name, e.into()))
    }

    /// Record `slot`'s target as failed with `message`, and say so.
    pub(crate) fn target_failed(&self, slot: &mut Slot, message: &str) -> Result<(), RolloutError> {
        let name = slot.member.name.clone();
        let saved = self.save_step(&mut slot.step, "failed", Some(message.to_string()));
        self.emit(
            "target_failed",
            Some(&name),
            Some(slot.wave),
            format!("{name}: {message}"),
            json!({}),
        );
        saved
    }

    pub(crate) fn save_record(
        &self,
        state: &str,
        detail: Option<serde_json::Value>,
    ) -> Result<(), RolloutError> {
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        record.state = state.to_string();
        if !record.unfinished() {
            record.finished_at = Some(Utc::now());
        }
        if let Some(detail) = detail {
            record.detail = detail;
        }
        let mut coordinator = self.coordinator.lock().unwrap_or_else(|e| e.into_inner());
        let name = coordinator.display_url.clone();
        coordinator
            .engine
            .fleet()
            .ok_or_else(|| no_fleet(&name))?
            .put_rollout(&record)
            .map_err(|e| coordinator_error(&name, e.into()))
    }
}

pub(crate) fn no_fleet(name: &str) -> RolloutError {
    RolloutError::Usage {
        message: format!("{name} cannot coordinate a rollout"),
        hint: "use a PostgreSQL or SQLite coordinator".into(),
    }
}

pub(crate) fn coordinator_error(name: &str, source: ripcord::OpError) -> RolloutError {
    match source {
        ripcord::OpError::Engine(e @ ripcord_core::EngineError::LockBusy { .. }) => {
            RolloutError::Busy(e)
        }
        source => RolloutError::Coordinator {
            coordinator: name.to_string(),
            source,
        },
    }
}

/// A rollout id: unique across coordinators and reruns (time, host, process).
fn new_id() -> String {
    let host = gethostname::gethostname().to_string_lossy().to_string();
    let tag = blake3_like(&format!(
        "{host}:{}:{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    format!("r{}-{tag}", Utc::now().format("%Y%m%dT%H%M%S"))
}

/// Six hex digits of a string's hash (enough to tell coordinators apart in an id).
fn blake3_like(text: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    format!("{:06x}", hasher.finish() & 0xff_ffff)
}

/// Every member of `fleet` as a slot, each connected once (several at a time) to prove
/// it is reachable and to count ripcord's prepared transactions there, then released.
/// With `plan`, each target without such transactions is surveyed in the same visit.
pub(crate) fn reach_all(
    fleet: &Fleet,
    options: &RolloutOptions,
    plan: Option<&Plan>,
) -> Result<Vec<Slot>, RolloutError> {
    let link = std::sync::Arc::new(Link::new(fleet, options));
    let mut slots: Vec<(Slot, Option<RolloutError>)> = fleet
        .members()
        .map(|(wave, member)| (Slot::new(member.clone(), wave, link.clone()), None))
        .collect();
    parallel(&mut slots, fleet.max_parallel, |(slot, error)| {
        let name = slot.member.name.clone();
        let counted = slot
            .target()
            .and_then(|target| match target.engine.two_phase() {
                None => Ok(0),
                Some(mut two_phase) => two_phase
                    .prepared(ripcord_core::fleet::GID_PREFIX)
                    .map(|p| p.len())
                    .map_err(|e| RolloutError::Unreachable {
                        target: name,
                        reason: e.to_string(),
                    }),
            });
        match counted {
            Ok(count) => slot.in_doubt = count,
            Err(e) => *error = Some(e),
        }
        if let Some(plan) = plan
            && error.is_none()
            && slot.in_doubt == 0
        {
            *error = survey_one(plan, options, slot).err();
        }
        slot.release();
    });
    slots
        .into_iter()
        .map(|(slot, error)| match error {
            Some(error) => Err(error),
            None => Ok(slot),
        })
        .collect()
}

/// Read what `slot`'s target holds into `slot.surveyed`.
fn survey_one(plan: &Plan, options: &RolloutOptions, slot: &mut Slot) -> Result<(), RolloutError> {
    let name = slot.member.name.clone();
    let target = slot.target()?;
    let unreachable = |e: ripcord::OpError| RolloutError::Unreachable {
        target: name.clone(),
        reason: e.to_string(),
    };
    let deployed = deployed_names(target, plan).map_err(unreachable)?;
    let schema = schema_of(target).map_err(unreachable)?;
    let pending = planned_changes(target, plan, options).map_err(unreachable)?;
    slot.surveyed = Some(Surveyed {
        deployed,
        schema: {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            schema.schema.hash(&mut hasher);
            hasher.finish()
        },
        pending,
    });
    Ok(())
}

fn schema_of(target: &mut Target) -> Result<Fingerprint, ripcord::OpError> {
    Ok(Fingerprint::new(
        target.engine.schema_objects()?,
        Vec::new(),
    ))
}

/// Open the coordinator: `options.coordinator`, else the fleet's first target.
pub(crate) fn open_coordinator(
    fleet: &Fleet,
    options: &RolloutOptions,
) -> Result<(String, Target), RolloutError> {
    let member = match &options.coordinator {
        Some((name, url)) => Member {
            name: name.clone(),
            url: url.clone(),
        },
        None => fleet.waves[0][0].clone(),
    };
    let target = Link::new(fleet, options).open(&member)?;
    Ok((member.name, target))
}

fn deployed_names(target: &mut Target, plan: &Plan) -> Result<Vec<String>, ripcord::OpError> {
    Ok(ripcord::scope::scoped(target, plan)?
        .mine
        .into_iter()
        .filter(|d| d.state == ripcord_core::ChangeState::Deployed)
        .map(|d| d.name)
        .collect())
}

/// Roll `plan` out across `fleet`.
pub fn rollout(
    fleet: &Fleet,
    plan: &Plan,
    options: &RolloutOptions,
    reporter: &dyn Reporter,
) -> Result<RolloutReport, RolloutError> {
    let started = Instant::now();
    // Every target reachable before anything changes anywhere.
    let mut slots = reach_all(fleet, options, Some(plan))?;
    if options.dry_run {
        return dry_run(fleet, plan, options, &mut slots, started);
    }
    let (_, mut coordinator) = open_coordinator(fleet, options)?;
    let shown = coordinator.display_url.clone();
    coordinator
        .ensure_ledger()
        .map_err(|e| coordinator_error(&shown, e))?;
    let me = LockHolder {
        host: coordinator.identity.host.clone(),
        pid: std::process::id(),
        since: Utc::now(),
        command: "rollout".into(),
    };
    coordinator
        .engine
        .fleet()
        .ok_or_else(|| no_fleet(&shown))?
        .lock_fleet(&fleet.name, &me)
        .map_err(|e| coordinator_error(&shown, e.into()))?;
    let (mut coordinator, result) = locked(
        fleet,
        plan,
        options,
        reporter,
        coordinator,
        &mut slots,
        me,
        started,
    );
    if let Some(mut ledger) = coordinator.engine.fleet() {
        let _ = ledger.unlock_fleet(&fleet.name);
    }
    result
}

/// The rollout inside the coordinator's fleet lock; gives the coordinator back.
#[allow(clippy::too_many_arguments)]
fn locked(
    fleet: &Fleet,
    plan: &Plan,
    options: &RolloutOptions,
    reporter: &dyn Reporter,
    mut coordinator: Target,
    slots: &mut [Slot],
    me: LockHolder,
    started: Instant,
) -> (Target, Result<RolloutReport, RolloutError>) {
    let shown = coordinator.display_url.clone();
    macro_rules! attempt {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return (coordinator, Err(e)),
            }
        };
    }
    let recovered = attempt!(crate::atomic::recover_in_doubt(
        &mut coordinator,
        slots,
        reporter
    ));
    let rollouts = attempt!(
        coordinator
            .engine
            .fleet()
            .ok_or_else(|| no_fleet(&shown))
            .and_then(|mut f| f
                .rollouts(50)
                .map_err(|e| coordinator_error(&shown, e.into())))
    );
    let unfinished = rollouts
        .into_iter()
        .find(|r| r.fleet == fleet.name && r.unfinished());
    let resumed = unfinished.is_some();
    let record = match unfinished {
        Some(mut record) => {
            record.holder = me.clone();
            let steps = attempt!(
                coordinator
                    .engine
                    .fleet()
                    .ok_or_else(|| no_fleet(&shown))
                    .and_then(|mut f| f
                        .steps(&record.id)
                        .map_err(|e| coordinator_error(&shown, e.into())))
            );
            for slot in slots.iter_mut() {
                if let Some(step) = steps.iter().find(|s| s.target == slot.member.name) {
                    slot.step = step.clone();
                }
            }
            record
        }
        None if options.abort => {
            return (
                coordinator,
                Err(RolloutError::Usage {
                    message: format!("fleet `{}` has no unfinished rollout to abort", fleet.name),
                    hint: "`ripcord rollout status` shows the last rollout".into(),
                }),
            );
        }
        None => RolloutRecord {
            id: new_id(),
            fleet: fleet.name.clone(),
            project: options.project.clone(),
            atomic: options.atomic,
            state: "running".into(),
            holder: me.clone(),
            decision: None,
            started_at: Utc::now(),
            finished_at: None,
            detail: json!({}),
        },
    };
    for slot in slots.iter_mut() {
        slot.step.rollout = record.id.clone();
    }
    let changed_order: Vec<String> = slots
        .iter()
        .filter(|s| !s.step.changes.is_empty())
        .map(|s| s.member.name.clone())
        .collect();
    let run = Run {
        fleet,
        plan,
        options,
        reporter,
        coordinator: Mutex::new(coordinator),
        record: Mutex::new(record),
        notifier: Notifier::new(options.notify.clone()),
        changed_order: Mutex::new(changed_order),
    };
    let mut outcome = drive(&run, slots, resumed, started);
    if let Ok(report) = &mut outcome {
        report.recovered = recovered;
    }
    let coordinator = run
        .coordinator
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    (coordinator, outcome)
}

fn dry_run(
    fleet: &Fleet,
    plan: &Plan,
    options: &RolloutOptions,
    slots: &mut [Slot],
    started: Instant,
) -> Result<RolloutReport, RolloutError> {
    let mut targets = Vec::new();
    let (planned, drift) = survey(plan, options, slots, fleet.max_parallel)?;
    for (slot, pending) in slots.iter().zip(planned) {
        let held = drift.get(&slot.member.name).cloned();
        targets.push(TargetOutcome {
            target: slot.member.name.clone(),
            wave: slot.wave,
            state: if held.is_some() {
                "skipped".into()
            } else {
                "pending".into()
            },
            changes: pending,
            reason: held,
        });
    }
    Ok(RolloutReport {
        id: String::new(),
        fleet: fleet.name.clone(),
        atomic: options.atomic,
        dry_run: true,
        state: "planned".into(),
        targets,
        watches: Vec::new(),
        recovered: Vec::new(),
        detected_at: None,
        recovered_at: None,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

fn deploy_options(options: &RolloutOptions) -> DeployOptions {
    DeployOptions {
        to: options.to.clone(),
        accept_irreversible: options.accept_irreversible.clone(),
        ..Default::default()
    }
}

/// The changes a deploy would run on `target`, by name.
pub(crate) fn planned_changes(
    target: &mut Target,
    plan: &Plan,
    options: &RolloutOptions,
) -> Result<Vec<String>, ripcord::OpError> {
    let preview = ripcord::deploy::deploy(
        target,
        plan,
        &DeployOptions {
            dry_run: true,
            ..deploy_options(options)
        },
        &mut ripcord::Silent,
    )?;
    Ok(preview.planned.into_iter().map(|p| p.change).collect())
}

/// Per target (in slot order) the changes a deploy would run; the targets held back.
type Survey = (Vec<Vec<String>>, BTreeMap<String, String>);

/// What a deploy would run on each target (in slot order), and the targets held back
/// because their schema differs from the canary's although their ledgers agree: drift
/// someone made by hand (target name → why). Targets not surveyed when first reached
/// are read now, several at a time.
fn survey(
    plan: &Plan,
    options: &RolloutOptions,
    slots: &mut [Slot],
    max_parallel: usize,
) -> Result<Survey, RolloutError> {
    let mut unread: Vec<(&mut Slot, Option<RolloutError>)> = slots
        .iter_mut()
        .filter(|s| s.surveyed.is_none())
        .map(|s| (s, None))
        .collect();
    parallel(&mut unread, max_parallel, |(slot, error)| {
        *error = survey_one(plan, options, slot).err();
        slot.release();
    });
    if let Some(error) = unread.into_iter().find_map(|(_, e)| e) {
        return Err(error);
    }
    let mut held = BTreeMap::new();
    if let Some((canary, rest)) = slots.split_first_mut() {
        let (canary_deployed, canary_schema) = match &canary.surveyed {
            Some(s) => (s.deployed.clone(), s.schema),
            None => (Vec::new(), 0),
        };
        let mut canary_objects: Option<Fingerprint> = None;
        for slot in rest.iter_mut() {
            let Some(seen) = &slot.surveyed else { continue };
            if seen.deployed != canary_deployed || seen.schema == canary_schema {
                continue;
            }
            // Rare: read both schemas again to say how they differ.
            let unreachable = |name: &str, e: ripcord::OpError| RolloutError::Unreachable {
                target: name.to_string(),
                reason: e.to_string(),
            };
            if canary_objects.is_none() {
                let name = canary.member.name.clone();
                let objects = schema_of(canary.target()?).map_err(|e| unreachable(&name, e))?;
                canary.release();
                canary_objects = Some(objects);
            }
            let name = slot.member.name.clone();
            let objects = schema_of(slot.target()?).map_err(|e| unreachable(&name, e))?;
            slot.release();
            let differences = canary_objects
                .as_ref()
                .map(|c| c.differences(&objects, "here", "on the canary", 3))
                .unwrap_or_default();
            if let Some(first) = differences.first() {
                held.insert(
                    name,
                    format!(
                        "drift: its schema differs from the canary {}'s ({}{})",
                        canary.member.name,
                        first.text,
                        if differences.len() > 1 {
                            format!(", and {} more", differences.len() - 1)
                        } else {
                            String::new()
                        }
                    ),
                );
            }
        }
    }
    let planned = slots
        .iter_mut()
        .map(|s| s.surveyed.take().map(|s| s.pending).unwrap_or_default())
        .collect();
    Ok((planned, held))
}

/// Run `work` on every item, at most `max` at a time, each on its own thread.
pub(crate) fn parallel<T: Send>(items: &mut [T], max: usize, work: impl Fn(&mut T) + Sync) {
    for chunk in items.chunks_mut(max.max(1)) {
        std::thread::scope(|scope| {
            for item in chunk.iter_mut() {
                let work = &work;
                scope.spawn(move || work(item));
            }
        });
    }
}

fn outcomes(slots: &[Slot]) -> Vec<TargetOutcome> {
    slots
        .iter()
        .map(|s| TargetOutcome {
            target: s.member.name.clone(),
            wave: s.wave,
            state: s.step.state.clone(),
            changes: s.step.changes.clone(),
            reason: s.step.reason.clone(),
        })
        .collect()
}

/// Run (or resume) the rollout whose record `run` holds.
fn drive(
    run: &Run<'_>,
    slots: &mut [Slot],
    resumed: bool,
    started: Instant,
) -> Result<RolloutReport, RolloutError> {
    let fleet = run.fleet;
    let record = run.record.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut report = RolloutReport {
        id: record.id.clone(),
        fleet: fleet.name.clone(),
        atomic: record.atomic,
        dry_run: false,
        state: "running".into(),
        targets: Vec::new(),
        watches: Vec::new(),
        recovered: Vec::new(),
        detected_at: None,
        recovered_at: None,
        duration_ms: 0,
    };
    let finish = |report: &mut RolloutReport, slots: &[Slot], state: &str| {
        report.state = state.to_string();
        report.targets = outcomes(slots);
        report.duration_ms = started.elapsed().as_millis() as u64;
    };
    if record.state == "rolling_back" || run.options.abort {
        let why = if run.options.abort {
            "aborted by the operator (`ripcord rollout --abort`)".to_string()
        } else {
            "finishing the rollback an interrupted run started".to_string()
        };
        report.detected_at = Some(Utc::now());
        let state = rollback(run, slots, &why)?;
        report.recovered_at = Some(Utc::now());
        finish(&mut report, slots, &state);
        return Err(RolloutError::Failed {
            summary: format!("rollout {} rolled back: {why}", record.id),
            report: Box::new(report),
        });
    }
    if !resumed {
        // Held back: targets that drifted from the canary.
        let mut pending_changes = std::collections::BTreeSet::new();
        let (planned, held) = survey(run.plan, run.options, slots, fleet.max_parallel)?;
        for (slot, pending) in slots.iter_mut().zip(planned) {
            pending_changes.extend(pending.iter().cloned());
            slot.step.changes = Vec::new();
            slot.step.reason = None;
            if let Some(reason) = held.get(&slot.member.name) {
                slot.step.state = "skipped".into();
                slot.step.reason = Some(reason.clone());
            } else if pending.is_empty() {
                slot.step.state = "skipped".into();
                slot.step.reason = Some("nothing pending".into());
            }
        }
        if slots.iter().all(|s| s.step.state == "skipped") {
            finish(&mut report, slots, "nothing_to_do");
            return Ok(report);
        }
        if record.atomic {
            crate::atomic::refuse_unless_possible(run, slots)?;
        }
        run.save_record("running", None)?;
        for slot in slots.iter_mut() {
            let (state, reason) = (slot.step.state.clone(), slot.step.reason.clone());
            run.save_step(&mut slot.step, &state, reason)?;
            if state == "skipped" && slot.step.reason.as_deref() != Some("nothing pending") {
                run.emit(
                    "target_skipped",
                    Some(&slot.member.name),
                    Some(slot.wave),
                    format!(
                        "{} held back: {}",
                        slot.member.name,
                        slot.step.reason.clone().unwrap_or_default()
                    ),
                    json!({}),
                );
            }
        }
        run.emit(
            "rollout_started",
            None,
            None,
            format!(
                "rollout {} of {} changes to {} targets in {} waves{}",
                record.id,
                pending_changes.len(),
                slots.iter().filter(|s| s.step.state != "skipped").count(),
                fleet.waves.len(),
                if record.atomic { " (atomic)" } else { "" }
            ),
            json!({
                "atomic": record.atomic,
                "targets": slots.iter().filter(|s| s.step.state != "skipped").count(),
            }),
        );
    } else {
        run.save_record("running", None)?;
        run.emit(
            "rollout_started",
            None,
            None,
            format!("resuming rollout {}", record.id),
            json!({
                "resumed": true,
                "targets": slots
                    .iter()
                    .filter(|s| !matches!(s.step.state.as_str(), "skipped" | "verified"))
                    .count(),
            }),
        );
    }

    // A resumed atomic rollout whose decision is recorded was committed by recovery.
    if record.atomic
        && record.decision.is_none()
        && let Err(failure) = crate::atomic::apply_all(run, slots)
    {
        report.detected_at = Some(Utc::now());
        finish(&mut report, slots, "rolled_back");
        run.save_record("rolled_back", Some(json!({ "reason": failure })))?;
        run.emit(
            "rollback_completed",
            None,
            None,
            format!("nothing changed anywhere: {failure}"),
            json!({}),
        );
        return Err(RolloutError::Failed {
            summary: format!(
                "atomic rollout {} aborted, no target changed: {failure}",
                record.id
            ),
            report: Box::new(report),
        });
    }
    if record.atomic {
        let waves: Vec<usize> = (0..fleet.waves.len()).collect();
        return watch_and_finish(run, slots, &waves, report, started, fleet.waves.len() - 1);
    }

    for wave in 0..fleet.waves.len() {
        let indexes: Vec<usize> = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.wave == wave
                    && matches!(
                        s.step.state.as_str(),
                        "pending" | "running" | "failed" | "applied"
                    )
            })
            .map(|(i, _)| i)
            .collect();
        if indexes.is_empty() {
            continue;
        }
        let failures = deploy_wave(run, slots, &indexes);
        ripcord::failpoint::hit("rollout_after_wave");
        if let Some(failure) = failures.first() {
            report.detected_at = Some(Utc::now());
            return fail(
                run,
                slots,
                report,
                started,
                format!("the deploy failed on {failure}"),
            );
        }
        let watched = watch_wave(run, slots, wave, &mut report);
        match watched {
            Verdict::Pass => {
                for slot in slots
                    .iter_mut()
                    .filter(|s| s.wave == wave && s.step.state == "applied")
                {
                    let reason = slot.step.reason.clone();
                    run.save_step(&mut slot.step, "verified", reason)?;
                }
                run.emit(
                    "wave_completed",
                    None,
                    Some(wave),
                    format!("wave {} healthy", wave + 1),
                    json!({ "wave": wave }),
                );
            }
            Verdict::Fail => {
                report.detected_at = Some(Utc::now());
                let reason = run_reason(&report);
                return fail(
                    run,
                    slots,
                    report,
                    started,
                    format!("health breached after wave {}: {reason}", wave + 1),
                );
            }
            Verdict::Inconclusive => {
                let reason = run_reason(&report);
                if run.options.no_pause {
                    report.detected_at = Some(Utc::now());
                    return fail(
                        run,
                        slots,
                        report,
                        started,
                        format!(
                            "probes inconclusive after wave {} (--no-pause): {reason}",
                            wave + 1
                        ),
                    );
                }
                run.save_record("paused", Some(json!({ "reason": reason, "wave": wave })))?;
                finish(&mut report, slots, "paused");
                return Err(RolloutError::Paused {
                    summary: format!(
                        "rollout {} paused after wave {}: {reason}",
                        report.id,
                        wave + 1
                    ),
                    report: Box::new(report),
                });
            }
        }
    }
    run.save_record("completed", None)?;
    finish(&mut report, slots, "completed");
    run.emit(
        "rollout_completed",
        None,
        None,
        format!("rollout {} completed", report.id),
        json!({}),
    );
    Ok(report)
}

fn run_reason(report: &RolloutReport) -> String {
    report
        .watches
        .last()
        .and_then(|w| w.reason.clone())
        .unwrap_or_else(|| "no sample".into())
}

/// After an atomic commit: watch the probes over the whole fleet.
fn watch_and_finish(
    run: &Run<'_>,
    slots: &mut [Slot],
    _waves: &[usize],
    mut report: RolloutReport,
    started: Instant,
    last_wave: usize,
) -> Result<RolloutReport, RolloutError> {
    match watch_wave(run, slots, last_wave, &mut report) {
        Verdict::Pass => {
            for slot in slots.iter_mut().filter(|s| s.step.state == "applied") {
                run.save_step(&mut slot.step, "verified", None)?;
            }
            run.save_record("completed", None)?;
            report.state = "completed".into();
            report.targets = outcomes(slots);
            report.duration_ms = started.elapsed().as_millis() as u64;
            run.emit(
                "rollout_completed",
                None,
                None,
                format!("rollout {} completed", report.id),
                json!({}),
            );
            Ok(report)
        }
        verdict => {
            report.detected_at = Some(Utc::now());
            let reason = run_reason(&report);
            if verdict == Verdict::Inconclusive && !run.options.no_pause {
                run.save_record("paused", Some(json!({ "reason": reason })))?;
                report.state = "paused".into();
                report.targets = outcomes(slots);
                return Err(RolloutError::Paused {
                    summary: format!("rollout {} paused: {reason}", report.id),
                    report: Box::new(report),
                });
            }
            fail(
                run,
                slots,
                report,
                started,
                format!("health breached after the commit: {reason}"),
            )
        }
    }
}

/// A failure: stop, or roll back every changed target, per the fleet's `on_failure`.
fn fail(
    run: &Run<'_>,
    slots: &mut [Slot],
    mut report: RolloutReport,
    started: Instant,
    why: String,
) -> Result<RolloutReport, RolloutError> {
    run.emit("probe_failed", None, None, why.clone(), json!({}));
    let state = if run.fleet.on_failure == OnFailure::Stop {
        run.save_record("stopped", Some(json!({ "reason": why })))?;
        "stopped".to_string()
    } else {
        let state = rollback(run, slots, &why)?;
        report.recovered_at = Some(Utc::now());
        state
    };
    report.state = state.clone();
    report.targets = outcomes(slots);
    report.duration_ms = started.elapsed().as_millis() as u64;
    let summary = if state == "stopped" {
        format!(
            "rollout {} stopped: {why}; changed targets left as they are (on_failure = \"stop\")",
            report.id
        )
    } else {
        format!("rollout {} rolled back: {why}", report.id)
    };
    Err(RolloutError::Failed {
        summary,
        report: Box::new(report),
    })
}

/// Deploy to the targets `indexes` in parallel (at most `max_parallel` at a time); the
/// failures, `target: error`.
fn deploy_wave(run: &Run<'_>, slots: &mut [Slot], indexes: &[usize]) -> Vec<String> {
    let failures = Mutex::new(Vec::new());
    let mut chosen: Vec<&mut Slot> = slots
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| indexes.contains(i))
        .map(|(_, s)| s)
        .collect();
    for chunk in chosen.chunks_mut(run.fleet.max_parallel) {
        std::thread::scope(|scope| {
            for slot in chunk.iter_mut() {
                let failures = &failures;
                scope.spawn(move || {
                    if let Err(e) = deploy_one(run, slot) {
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{}: {e}", slot.member.name));
                    }
                });
            }
        });
    }
    failures.into_inner().unwrap_or_default()
}

fn deploy_one(run: &Run<'_>, slot: &mut Slot) -> Result<(), String> {
    let result = deploy_connected(run, slot);
    slot.release();
    result
}

fn deploy_connected(run: &Run<'_>, slot: &mut Slot) -> Result<(), String> {
    let name = slot.member.name.clone();
    let planned = planned_changes(
        slot.target().map_err(|e| e.to_string())?,
        run.plan,
        run.options,
    )
    .map_err(|e| e.to_string())?;
    let mut changes = slot.step.changes.clone();
    for change in &planned {
        if !changes.contains(change) {
            changes.push(change.clone());
        }
    }
    slot.step.changes = changes;
    run.save_step(&mut slot.step, "running", None)
        .map_err(|e| e.to_string())?;
    run.emit(
        "target_started",
        Some(&name),
        Some(slot.wave),
        format!("{name}: deploying {} changes", planned.len()),
        json!({ "changes": planned }),
    );
    let target = slot.target().map_err(|e| e.to_string())?;
    let deployed = ripcord::deploy::deploy(
        target,
        run.plan,
        &deploy_options(run.options),
        &mut ripcord::Silent,
    );
    // What landed: the rollout's changes the target's ledger now holds.
    let now = deployed_names(target, run.plan).unwrap_or_default();
    slot.step.changes.retain(|c| now.contains(c));
    if !slot.step.changes.is_empty() {
        let mut order = run.changed_order.lock().unwrap_or_else(|e| e.into_inner());
        order.retain(|n| n != &name);
        order.push(name.clone());
    }
    match deployed {
        Ok(report) => {
            run.save_step(&mut slot.step, "applied", None)
                .map_err(|e| e.to_string())?;
            run.emit(
                "target_applied",
                Some(&name),
                Some(slot.wave),
                format!("{name}: {} changes deployed", report.deployed.len()),
                json!({ "deployed": report.deployed.iter().map(|d| d.change.clone()).collect::<Vec<_>>() }),
            );
            Ok(())
        }
        Err(error) => {
            let message = error.to_string();
            let _ = run.target_failed(slot, &message);
            Err(message)
        }
    }
}

/// Watch the probes after `wave` over every target changed so far.
fn watch_wave(run: &Run<'_>, slots: &[Slot], wave: usize, report: &mut RolloutReport) -> Verdict {
    let changed: Vec<(String, String)> = slots
        .iter()
        .filter(|s| s.wave <= wave && matches!(s.step.state.as_str(), "applied" | "verified"))
        .map(|s| (s.member.name.clone(), s.member.url.clone()))
        .collect();
    let scope = ProbeScope {
        targets: &changed,
        base_dir: &run.fleet.base_dir,
        checks: &run.options.checks,
        parallel: run.fleet.max_parallel,
    };
    let watched = crate::probe::watch(&run.fleet.health, run.fleet.watch(), &scope, &|sample| {
        run.emit(
            "probe_sample",
            sample.target.as_deref(),
            Some(wave),
            format!(
                "probe `{}` {:?}: {}",
                sample.probe, sample.verdict, sample.message
            )
            .to_lowercase(),
            serde_json::to_value(sample).unwrap_or_default(),
        );
    });
    report.watches.push(WaveWatch {
        wave,
        outcome: format!("{:?}", watched.verdict).to_lowercase(),
        reason: watched.reason.clone(),
        samples: watched.samples.clone(),
    });
    watched.verdict
}

/// Revert every target changed by this rollout, newest change first; the final state
/// (`rolled_back`, or `failed` when a revert failed: those targets are named).
pub(crate) fn rollback(
    run: &Run<'_>,
    slots: &mut [Slot],
    why: &str,
) -> Result<String, RolloutError> {
    // Kept in the record: `ripcord serve` reports detection to recovery from it.
    let detected_at = Utc::now();
    run.save_record(
        "rolling_back",
        Some(json!({ "reason": why, "detected_at": detected_at })),
    )?;
    let order: Vec<String> = {
        let mut order = run
            .changed_order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for slot in slots.iter() {
            if !slot.step.changes.is_empty() && !order.contains(&slot.member.name) {
                order.push(slot.member.name.clone());
            }
        }
        order
    };
    run.emit(
        "rollback_started",
        None,
        None,
        format!("rolling back {} targets: {why}", order.len()),
        json!({ "targets": order.iter().rev().collect::<Vec<_>>() }),
    );
    // Newest wave first; the targets of one wave changed together, so they go back
    // together (at most max_parallel at a time).
    let mut batches: Vec<Vec<String>> = Vec::new();
    let mut last_wave = None;
    for name in order.iter().rev() {
        let wave = slots
            .iter()
            .find(|s| &s.member.name == name)
            .map(|s| s.wave);
        if wave != last_wave || batches.is_empty() {
            batches.push(Vec::new());
            last_wave = wave;
        }
        if let Some(batch) = batches.last_mut() {
            batch.push(name.clone());
        }
    }
    let failed = Mutex::new(Vec::new());
    let step_errors = Mutex::new(Vec::new());
    for (count, batch) in batches.iter().enumerate() {
        let mut chosen: Vec<&mut Slot> = slots
            .iter_mut()
            .filter(|s| batch.contains(&s.member.name))
            .collect();
        for chunk in chosen.chunks_mut(run.fleet.max_parallel) {
            std::thread::scope(|scope| {
                for slot in chunk.iter_mut() {
                    let (failed, step_errors) = (&failed, &step_errors);
                    scope.spawn(move || {
                        if let Err(e) = revert_one(run, slot, why, failed) {
                            step_errors
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(e);
                        }
                    });
                }
            });
        }
        if count == 0 {
            ripcord::failpoint::hit("rollout_after_first_revert");
        }
    }
    if let Some(error) = step_errors
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .next()
    {
        return Err(error);
    }
    let failed = failed.into_inner().unwrap_or_default();
    let state = if failed.is_empty() {
        "rolled_back"
    } else {
        "failed"
    };
    run.save_record(
        state,
        Some(json!({
            "reason": why,
            "revert_failed": failed,
            "detected_at": detected_at,
            "recovered_at": Utc::now(),
        })),
    )?;
    run.emit(
        "rollback_completed",
        None,
        None,
        if failed.is_empty() {
            format!("{} targets rolled back", order.len())
        } else {
            format!(
                "rollback incomplete: the revert failed on {}",
                failed.join(", ")
            )
        },
        json!({ "failed": failed }),
    );
    Ok(state.to_string())
}

/// Revert what this rollout deployed on one target, recording its step.
fn revert_one(
    run: &Run<'_>,
    slot: &mut Slot,
    why: &str,
    failed: &Mutex<Vec<String>>,
) -> Result<(), RolloutError> {
    let result = revert_connected(run, slot, why, failed);
    slot.release();
    result
}

fn revert_connected(
    run: &Run<'_>,
    slot: &mut Slot,
    why: &str,
    failed: &Mutex<Vec<String>>,
) -> Result<(), RolloutError> {
    let name = slot.member.name.clone();
    let target = match slot.connection.target(&slot.member) {
        Ok(target) => target,
        Err(error) => {
            let message = format!("the revert could not start: {error}");
            run.target_failed(slot, &message)?;
            failed.lock().unwrap_or_else(|e| e.into_inner()).push(name);
            return Ok(());
        }
    };
    let now = deployed_names(target, run.plan).unwrap_or_default();
    let mut ours: Vec<String> = slot
        .step
        .changes
        .iter()
        .filter(|c| now.contains(c))
        .cloned()
        .collect();
    ours.reverse();
    let result = if ours.is_empty() {
        Ok(Vec::new())
    } else {
        ripcord::revert::revert_changes(target, run.plan, &ours, &mut ripcord::Silent)
    };
    match result {
        Ok(reverted) => {
            run.save_step(
                &mut slot.step,
                "rolled_back",
                Some(format!("rolled back: {why}")),
            )?;
            run.emit(
                "target_rolled_back",
                Some(&name),
                Some(slot.wave),
                format!("{name}: {} changes reverted", reverted.len()),
                json!({ "reverted": reverted }),
            );
        }
        Err(error) => {
            let message = format!("the revert failed: {error}");
            run.target_failed(slot, &message)?;
            failed.lock().unwrap_or_else(|e| e.into_inner()).push(name);
        }
    }
    Ok(())
}
