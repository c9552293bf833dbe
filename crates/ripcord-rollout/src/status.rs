//! `ripcord rollout status`: the last rollout of a fleet as the coordinator recorded
//! it, and any in-doubt prepared transaction on its targets with its age.

use chrono::Utc;
use ripcord_core::fleet::{GID_PREFIX, RolloutRecord, RolloutStep};
use serde::Serialize;

use crate::error::RolloutError;
use crate::fleet::Fleet;
use crate::rollout::{RolloutOptions, coordinator_error, no_fleet};

/// A prepared transaction waiting for a decision.
#[derive(Debug, Clone, Serialize)]
pub struct InDoubt {
    /// The target.
    pub target: String,
    /// Its global id.
    pub gid: String,
    /// Seconds since it was prepared (it holds locks and holds back VACUUM meanwhile).
    pub age_seconds: i64,
}

/// What `rollout status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    /// The fleet.
    pub fleet: String,
    /// The coordinator (password hidden).
    pub coordinator: String,
    /// The latest rollout (or the one asked for).
    pub rollout: Option<RolloutRecord>,
    /// Its steps.
    pub steps: Vec<RolloutStep>,
    /// In-doubt transactions on the fleet's targets.
    pub in_doubt: Vec<InDoubt>,
    /// Targets that could not be asked, with why.
    pub unreachable: Vec<(String, String)>,
}

/// The status of `fleet` (of rollout `id`, else the latest).
pub fn status(
    fleet: &Fleet,
    options: &RolloutOptions,
    id: Option<&str>,
) -> Result<FleetStatus, RolloutError> {
    let (_, mut coordinator) = crate::rollout::open_coordinator(fleet, options)?;
    let shown = coordinator.display_url.clone();
    let mut ledger = coordinator.engine.fleet().ok_or_else(|| no_fleet(&shown))?;
    let rollouts = ledger
        .rollouts(10_000)
        .map_err(|e| coordinator_error(&shown, e.into()))?;
    let rollout =
        match id {
            Some(id) => Some(rollouts.into_iter().find(|r| r.id == id).ok_or_else(|| {
                RolloutError::Usage {
                    message: format!("no rollout {id} on the coordinator {shown}"),
                    hint: "`ripcord rollout status` without an id shows the latest".into(),
                }
            })?),
            None => rollouts.into_iter().find(|r| r.fleet == fleet.name),
        };
    let steps = match &rollout {
        Some(r) => ledger
            .steps(&r.id)
            .map_err(|e| coordinator_error(&shown, e.into()))?,
        None => Vec::new(),
    };
    drop(ledger);
    let mut in_doubt = Vec::new();
    let mut unreachable = Vec::new();
    for (_, member) in fleet.members() {
        let mut target = match crate::rollout::Link::new(fleet, options).open(member) {
            Ok(t) => t,
            Err(e) => {
                unreachable.push((member.name.clone(), e.to_string()));
                continue;
            }
        };
        let Some(mut two_phase) = target.engine.two_phase() else {
            continue;
        };
        match two_phase.prepared(GID_PREFIX) {
            Ok(prepared) => in_doubt.extend(prepared.into_iter().map(|p| InDoubt {
                target: member.name.clone(),
                age_seconds: (Utc::now() - p.prepared_at).num_seconds(),
                gid: p.gid,
            })),
            Err(e) => unreachable.push((member.name.clone(), e.to_string())),
        }
    }
    Ok(FleetStatus {
        fleet: fleet.name.clone(),
        coordinator: shown,
        rollout,
        steps,
        in_doubt,
        unreachable,
    })
}
