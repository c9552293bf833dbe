//! What a rollout needs from a database (DESIGN §5.8): the coordinator's durable
//! records of rollouts and of each target's state in them (with the two-phase commit
//! decision), feature flags, and PostgreSQL's prepared transactions.
//!
//! Engines implement [`FleetLedger`] on the ledger (version 6) and [`TwoPhase`] where
//! the server has `PREPARE TRANSACTION`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::EngineError;
use crate::lock::LockHolder;

/// Prefix of every global transaction id ripcord prepares: `ripcord:<rollout>:<n>`.
pub const GID_PREFIX: &str = "ripcord:";

/// One rollout, as the coordinator records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutRecord {
    /// Unique id (time, host and process: unique across coordinators and reruns).
    pub id: String,
    /// The fleet.
    pub fleet: String,
    /// The project rolled out.
    pub project: Option<String>,
    /// Two-phase commit across the fleet.
    pub atomic: bool,
    /// `running`, `rolling_back`, `paused`, `completed`, `rolled_back`, `failed`,
    /// `stopped`.
    pub state: String,
    /// Who started it, from where.
    pub holder: LockHolder,
    /// `commit` once the coordinator decided to commit prepared transactions.
    pub decision: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it ended as it did, what breached (JSON).
    pub detail: serde_json::Value,
}

impl RolloutRecord {
    /// Whether the rollout has not reached an end state.
    pub fn unfinished(&self) -> bool {
        matches!(self.state.as_str(), "running" | "rolling_back" | "paused")
    }
}

/// A target's state in a rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutStep {
    /// The rollout.
    pub rollout: String,
    /// The target's name.
    pub target: String,
    /// Its wave (0 = canary).
    pub wave: i32,
    /// `pending`, `running`, `prepared`, `applied`, `verified`, `failed`,
    /// `rolled_back`, `skipped`.
    pub state: String,
    /// The changes this rollout deployed there, in deploy order.
    pub changes: Vec<String>,
    /// Why (failure, skip reason, what rolled it back).
    pub reason: Option<String>,
    /// Last change of state.
    pub updated_at: DateTime<Utc>,
}

/// A feature flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// Its name.
    pub name: String,
    /// On or off.
    pub enabled: bool,
    /// Last set.
    pub updated_at: DateTime<Utc>,
    /// By whom.
    pub updated_by: String,
}

/// A prepared transaction on a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreparedTransaction {
    /// Its global id.
    pub gid: String,
    /// When it was prepared.
    pub prepared_at: DateTime<Utc>,
}

impl PreparedTransaction {
    /// The rollout id inside a ripcord gid (`ripcord:<rollout>:<n>`).
    pub fn rollout(&self) -> Option<&str> {
        rollout_of_gid(&self.gid)
    }
}

/// The rollout id inside a ripcord gid.
pub fn rollout_of_gid(gid: &str) -> Option<&str> {
    let rest = gid.strip_prefix(GID_PREFIX)?;
    rest.rsplit_once(':').map(|(rollout, _)| rollout)
}

/// The coordinator's records and the flags, in the ledger.
pub trait FleetLedger {
    /// Take the coordinator's lock for rollouts of `fleet`; [`EngineError::LockBusy`]
    /// when another process holds it. Released by [`FleetLedger::unlock_fleet`] or
    /// when the session ends.
    fn lock_fleet(&mut self, fleet: &str, me: &LockHolder) -> Result<(), EngineError>;
    /// Release [`FleetLedger::lock_fleet`].
    fn unlock_fleet(&mut self, fleet: &str) -> Result<(), EngineError>;
    /// Insert or replace a rollout (commits on its own).
    fn put_rollout(&mut self, rollout: &RolloutRecord) -> Result<(), EngineError>;
    /// Rollouts, newest first.
    fn rollouts(&mut self, limit: usize) -> Result<Vec<RolloutRecord>, EngineError>;
    /// Insert or replace a target's step (commits on its own).
    fn put_step(&mut self, step: &RolloutStep) -> Result<(), EngineError>;
    /// The steps of a rollout, by wave and target.
    fn steps(&mut self, rollout: &str) -> Result<Vec<RolloutStep>, EngineError>;
    /// Record the decision to commit a rollout's prepared transactions, durably, unless
    /// one is recorded; the decision in force.
    fn decide(&mut self, rollout: &str, decision: &str) -> Result<String, EngineError>;
    /// Set a flag (inside the caller's transaction, with its audit event).
    fn set_flag(&mut self, name: &str, enabled: bool, by: &str) -> Result<(), EngineError>;
    /// Every flag, by name (empty without a ledger).
    fn flags(&mut self) -> Result<Vec<Flag>, EngineError>;
}

/// PostgreSQL's two-phase commit.
pub trait TwoPhase {
    /// `max_prepared_transactions` of the server.
    fn max_prepared_transactions(&mut self) -> Result<u32, EngineError>;
    /// `PREPARE TRANSACTION gid` for the open transaction.
    fn prepare(&mut self, gid: &str) -> Result<(), EngineError>;
    /// Prepared transactions of this database whose gid starts with `prefix`.
    fn prepared(&mut self, prefix: &str) -> Result<Vec<PreparedTransaction>, EngineError>;
    /// `COMMIT PREPARED` (`commit`) or `ROLLBACK PREPARED`; false when no such
    /// transaction is prepared any more.
    fn finish(&mut self, gid: &str, commit: bool) -> Result<bool, EngineError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gids_name_their_rollout() {
        assert_eq!(
            rollout_of_gid("ripcord:r20261204-ab12:3"),
            Some("r20261204-ab12")
        );
        assert_eq!(rollout_of_gid("other:x:1"), None);
        assert_eq!(rollout_of_gid("ripcord:nocolon"), None);
    }
}
