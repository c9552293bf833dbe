//! `rollout --atomic` and `ripcord recover`: PostgreSQL's two-phase commit across a
//! fleet.
//!
//! Every target deploys the pending changes in one transaction and prepares it as
//! `ripcord:<rollout>:<n>`; only when all are prepared does the coordinator record the
//! decision to commit (durably, in its ledger) and then `COMMIT PREPARED` everywhere.
//! Any failure before the decision rolls every prepared transaction back. Recovery
//! follows what Citus learned (its issue 1029): the decision record decides, never the
//! list of prepared transactions alone. A prepared transaction whose rollout has a
//! commit decision is committed; one whose rollout the coordinator knows without a
//! decision is rolled back (the coordinator's fleet lock proves no run is deciding);
//! one the coordinator does not know is left alone and reported.

use chrono::Utc;
use ripcord_core::fleet::GID_PREFIX;
use serde::Serialize;
use serde_json::json;

use crate::error::RolloutError;
use crate::fleet::Fleet;
use crate::report::{Event, Reporter};
use crate::rollout::{RolloutOptions, Run, Slot, coordinator_error, no_fleet};

/// An in-doubt transaction finished by recovery.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    /// The target.
    pub target: String,
    /// The prepared transaction.
    pub gid: String,
    /// Its rollout.
    pub rollout: Option<String>,
    /// `committed`, `rolled_back` or `left` (not this coordinator's).
    pub action: String,
    /// Seconds it had been prepared.
    pub age_seconds: i64,
}

fn gid(rollout: &str, index: usize) -> String {
    format!("{GID_PREFIX}{rollout}:{index}")
}

/// Refuse `--atomic` before anything runs when a target cannot prepare transactions or
/// a pending change cannot run inside one.
pub(crate) fn refuse_unless_possible(
    run: &Run<'_>,
    slots: &mut [Slot],
) -> Result<(), RolloutError> {
    for slot in slots.iter_mut().filter(|s| s.step.state != "skipped") {
        let name = slot.member.name.clone();
        let target = slot.connection.target(&slot.member)?;
        let Some(mut two_phase) = target.engine.two_phase() else {
            return Err(RolloutError::AtomicRefused {
                reason: format!(
                    "{name} cannot take part in an atomic rollout: its engine has no two-phase commit"
                ),
                hint: "--atomic needs PostgreSQL targets; roll out without --atomic".into(),
            });
        };
        let max = two_phase
            .max_prepared_transactions()
            .map_err(|e| RolloutError::Unreachable {
                target: name.clone(),
                reason: e.to_string(),
            })?;
        drop(two_phase);
        if max == 0 {
            return Err(RolloutError::AtomicRefused {
                reason: format!("{name} has max_prepared_transactions = 0, so it cannot prepare transactions"),
                hint: "set max_prepared_transactions (e.g. 10) in its postgresql.conf and restart it, or roll out without --atomic".into(),
            });
        }
        let pending =
            crate::rollout::planned_changes(target, run.plan, run.options).map_err(|e| {
                RolloutError::Unreachable {
                    target: name.clone(),
                    reason: e.to_string(),
                }
            })?;
        let changes: Vec<&ripcord_core::Change> =
            pending.iter().filter_map(|n| run.plan.get(n)).collect();
        if let Some(reason) = ripcord::deploy::atomic_obstacle_of(target, &changes) {
            return Err(RolloutError::AtomicRefused {
                reason,
                hint: "roll out without --atomic (waves and rollback still apply), or split the change".into(),
            });
        }
    }
    Ok(())
}

/// Prepare on every target, decide, commit. On a failure before the decision every
/// prepared transaction is rolled back and the error says where it failed. The
/// connections stay open from PREPARE to COMMIT PREPARED (a short prepared window
/// matters more than their memory) and are released after.
pub(crate) fn apply_all(run: &Run<'_>, slots: &mut [Slot]) -> Result<(), String> {
    let result = prepare_decide_commit(run, slots);
    for slot in slots.iter_mut() {
        slot.release();
    }
    result
}

fn prepare_decide_commit(run: &Run<'_>, slots: &mut [Slot]) -> Result<(), String> {
    let id = run
        .record
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .id
        .clone();
    let failures = std::sync::Mutex::new(Vec::new());
    let mut chosen: Vec<(usize, &mut Slot)> = slots
        .iter_mut()
        .enumerate()
        .filter(|(_, s)| s.step.state != "skipped")
        .collect();
    for chunk in chosen.chunks_mut(run.fleet.max_parallel) {
        std::thread::scope(|scope| {
            for (index, slot) in chunk.iter_mut() {
                let failures = &failures;
                let gid = gid(&id, *index);
                scope.spawn(move || {
                    if let Err(e) = prepare_one(run, slot, &gid) {
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{}: {e}", slot.member.name));
                    }
                });
            }
        });
    }
    let failures = failures.into_inner().unwrap_or_default();
    if let Some(first) = failures.first() {
        let why = format!("the deploy failed on {first}");
        for (index, slot) in slots.iter_mut().enumerate() {
            if slot.step.state != "prepared" {
                continue;
            }
            let gid = gid(&id, index);
            let finished = slot
                .target()
                .map(|t| t.engine.two_phase().map(|mut t| t.finish(&gid, false)));
            let reason = match finished {
                Err(e) => {
                    format!("ROLLBACK PREPARED failed ({e}); `ripcord recover` will finish it")
                }
                Ok(Some(Ok(_))) => format!("prepared transaction rolled back: {why}"),
                Ok(Some(Err(e))) => {
                    format!("ROLLBACK PREPARED failed ({e}); `ripcord recover` will finish it")
                }
                Ok(None) => continue,
            };
            let _ = run.save_step(&mut slot.step, "rolled_back", Some(reason));
        }
        return Err(why);
    }
    ripcord::failpoint::hit("atomic_after_prepare");
    // The decision: from here on, recovery commits.
    let decided = {
        let mut coordinator = run.coordinator.lock().unwrap_or_else(|e| e.into_inner());
        coordinator
            .engine
            .fleet()
            .map(|mut f| f.decide(&id, "commit"))
    };
    match decided {
        Some(Ok(decision)) if decision == "commit" => {}
        Some(Ok(other)) => return Err(format!("the coordinator holds the decision `{other}`")),
        Some(Err(e)) => {
            // No decision recorded: roll back what is prepared.
            for (index, slot) in slots.iter_mut().enumerate() {
                if slot.step.state == "prepared"
                    && let Ok(target) = slot.target()
                    && let Some(mut two_phase) = target.engine.two_phase()
                {
                    let _ = two_phase.finish(&gid(&id, index), false);
                }
            }
            return Err(format!(
                "the coordinator could not record the decision: {e}"
            ));
        }
        None => return Err("the coordinator cannot record decisions".into()),
    }
    {
        let mut record = run.record.lock().unwrap_or_else(|e| e.into_inner());
        record.decision = Some("commit".into());
    }
    ripcord::failpoint::hit("atomic_after_decision");
    let mut committed = 0;
    for (index, slot) in slots.iter_mut().enumerate() {
        if slot.step.state != "prepared" {
            continue;
        }
        let gid = gid(&id, index);
        let result = match slot.target() {
            Ok(target) => target.engine.two_phase().map(|mut t| t.finish(&gid, true)),
            Err(e) => Some(Err(ripcord_core::EngineError::Connect {
                target: slot.member.name.clone(),
                reason: e.to_string(),
            })),
        };
        match result {
            Some(Ok(_)) => {
                let _ = run.save_step(&mut slot.step, "applied", None);
                run.changed_order
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(slot.member.name.clone());
                run.emit(
                    "target_applied",
                    Some(&slot.member.name),
                    Some(slot.wave),
                    format!(
                        "{}: committed {} changes",
                        slot.member.name,
                        slot.step.changes.len()
                    ),
                    json!({ "gid": gid }),
                );
            }
            // Decided: a commit that did not go through now is finished by recover.
            Some(Err(e)) => {
                let _ = run.save_step(
                    &mut slot.step,
                    "prepared",
                    Some(format!(
                        "COMMIT PREPARED failed ({e}); `ripcord recover` commits it"
                    )),
                );
            }
            None => {}
        }
        committed += 1;
        if committed == 1 {
            ripcord::failpoint::hit("atomic_after_first_commit");
        }
    }
    Ok(())
}

fn prepare_one(run: &Run<'_>, slot: &mut Slot, gid: &str) -> Result<(), String> {
    let name = slot.member.name.clone();
    let pending = crate::rollout::planned_changes(
        slot.target().map_err(|e| e.to_string())?,
        run.plan,
        run.options,
    )
    .map_err(|e| e.to_string())?;
    if pending.is_empty() {
        // Up to date (a resumed rollout): nothing to prepare, what it holds stays.
        let reason = slot.step.reason.clone();
        return run
            .save_step(&mut slot.step, "applied", reason)
            .map_err(|e| e.to_string());
    }
    slot.step.changes = pending;
    run.save_step(&mut slot.step, "running", None)
        .map_err(|e| e.to_string())?;
    let options = ripcord::deploy::DeployOptions {
        to: run.options.to.clone(),
        accept_irreversible: run.options.accept_irreversible.clone(),
        ..Default::default()
    };
    match ripcord::deploy::deploy_prepared(
        slot.target().map_err(|e| e.to_string())?,
        run.plan,
        &options,
        gid,
        &mut ripcord::Silent,
    ) {
        Ok(report) => {
            slot.step.changes = report.deployed.iter().map(|d| d.change.clone()).collect();
            run.save_step(&mut slot.step, "prepared", Some(gid.to_string()))
                .map_err(|e| e.to_string())?;
            run.emit(
                "target_prepared",
                Some(&name),
                Some(slot.wave),
                format!(
                    "{name}: {} changes prepared as {gid}",
                    report.deployed.len()
                ),
                json!({ "gid": gid }),
            );
            Ok(())
        }
        Err(error) => {
            let message = error.to_string();
            slot.step.changes.clear();
            let _ = run.target_failed(slot, &message);
            Err(message)
        }
    }
}

/// Finish every in-doubt ripcord transaction on the fleet's targets from the
/// coordinator's decisions (the caller holds the fleet lock).
pub(crate) fn recover_in_doubt(
    coordinator: &mut ripcord::Target,
    slots: &mut [Slot],
    reporter: &dyn Reporter,
) -> Result<Vec<Recovered>, RolloutError> {
    let shown = coordinator.display_url.clone();
    let mut recovered = Vec::new();
    let mut touched_rollouts = std::collections::BTreeSet::new();
    for slot in slots.iter_mut().filter(|s| s.in_doubt > 0) {
        let result = recover_on(coordinator, slot, reporter, &mut touched_rollouts);
        slot.release();
        recovered.extend(result?);
    }
    // A rollout without a commit decision whose transactions were rolled back is over.
    for id in touched_rollouts {
        let mut ledger = coordinator.engine.fleet().ok_or_else(|| no_fleet(&shown))?;
        let records = ledger
            .rollouts(10_000)
            .map_err(|e| coordinator_error(&shown, e.into()))?;
        if let Some(mut record) = records.into_iter().find(|r| r.id == id)
            && record.decision.is_none()
            && record.unfinished()
        {
            record.state = "rolled_back".into();
            record.finished_at = Some(Utc::now());
            record.detail = json!({ "reason": "interrupted before the commit decision; its prepared transactions were rolled back by recovery" });
            ledger
                .put_rollout(&record)
                .map_err(|e| coordinator_error(&shown, e.into()))?;
        }
    }
    Ok(recovered)
}

/// Finish the in-doubt transactions on one target.
fn recover_on(
    coordinator: &mut ripcord::Target,
    slot: &mut Slot,
    reporter: &dyn Reporter,
    touched: &mut std::collections::BTreeSet<String>,
) -> Result<Vec<Recovered>, RolloutError> {
    let shown = coordinator.display_url.clone();
    let mut recovered = Vec::new();
    let target = slot.connection.target(&slot.member)?;
    let Some(mut two_phase) = target.engine.two_phase() else {
        return Ok(recovered);
    };
    let in_doubt = two_phase
        .prepared(GID_PREFIX)
        .map_err(|e| RolloutError::Unreachable {
            target: slot.member.name.clone(),
            reason: e.to_string(),
        })?;
    drop(two_phase);
    for prepared in in_doubt {
        let rollout = prepared.rollout().map(String::from);
        let record = match &rollout {
            Some(id) => coordinator
                .engine
                .fleet()
                .ok_or_else(|| no_fleet(&shown))?
                .rollouts(10_000)
                .map_err(|e| coordinator_error(&shown, e.into()))?
                .into_iter()
                .find(|r| &r.id == id),
            None => None,
        };
        let age_seconds = (Utc::now() - prepared.prepared_at).num_seconds();
        let action = match &record {
            None => "left",
            Some(r) if r.decision.as_deref() == Some("commit") => "committed",
            Some(_) => "rolled_back",
        };
        if action != "left" {
            let commit = action == "committed";
            target
                .engine
                .two_phase()
                .map(|mut t| t.finish(&prepared.gid, commit))
                .transpose()
                .map_err(|e| RolloutError::Unreachable {
                    target: slot.member.name.clone(),
                    reason: e.to_string(),
                })?;
            if let Some(record) = &record {
                touched.insert(record.id.clone());
                let steps = coordinator
                    .engine
                    .fleet()
                    .ok_or_else(|| no_fleet(&shown))?
                    .steps(&record.id)
                    .map_err(|e| coordinator_error(&shown, e.into()))?;
                if let Some(mut step) = steps.into_iter().find(|s| s.target == slot.member.name) {
                    step.state = if commit { "applied" } else { "rolled_back" }.into();
                    step.reason = Some(format!(
                        "in doubt for {age_seconds}s; {} by recovery ({})",
                        if commit { "committed" } else { "rolled back" },
                        if commit {
                            "the coordinator had decided to commit"
                        } else {
                            "no commit decision was recorded"
                        }
                    ));
                    step.updated_at = Utc::now();
                    coordinator
                        .engine
                        .fleet()
                        .ok_or_else(|| no_fleet(&shown))?
                        .put_step(&step)
                        .map_err(|e| coordinator_error(&shown, e.into()))?;
                }
            }
        }
        let item = Recovered {
            target: slot.member.name.clone(),
            gid: prepared.gid.clone(),
            rollout: rollout.clone(),
            action: action.into(),
            age_seconds,
        };
        reporter.event(&Event {
            kind: "recovered",
            rollout: rollout.clone().unwrap_or_default(),
            fleet: String::new(),
            target: Some(slot.member.name.clone()),
            wave: None,
            message: match action {
                "left" => format!(
                    "{}: {} is not this coordinator's; left alone",
                    slot.member.name, prepared.gid
                ),
                _ => format!(
                    "{}: {} {} by recovery",
                    slot.member.name,
                    prepared.gid,
                    action.replace('_', " ")
                ),
            },
            detail: serde_json::to_value(&item).unwrap_or_default(),
            at: Utc::now(),
        });
        recovered.push(item);
    }
    Ok(recovered)
}

/// `ripcord recover`: take the fleet lock and finish every in-doubt transaction.
pub fn recover(
    fleet: &Fleet,
    options: &RolloutOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<Recovered>, RolloutError> {
    let mut slots = crate::rollout::reach_all(fleet, options, None)?;
    let (_, mut coordinator) = crate::rollout::open_coordinator(fleet, options)?;
    let shown = coordinator.display_url.clone();
    coordinator
        .ensure_ledger()
        .map_err(|e| coordinator_error(&shown, e))?;
    let me = ripcord_core::LockHolder {
        host: coordinator.identity.host.clone(),
        pid: std::process::id(),
        since: Utc::now(),
        command: "recover".into(),
    };
    coordinator
        .engine
        .fleet()
        .ok_or_else(|| no_fleet(&shown))?
        .lock_fleet(&fleet.name, &me)
        .map_err(|e| coordinator_error(&shown, e.into()))?;
    let result = recover_in_doubt(&mut coordinator, &mut slots, reporter);
    if let Some(mut ledger) = coordinator.engine.fleet() {
        let _ = ledger.unlock_fleet(&fleet.name);
    }
    result
}
