//! What a rollout reports, and the events it emits while it runs.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::probe::Sample;

/// A target's part in a rollout.
#[derive(Debug, Clone, Serialize)]
pub struct TargetOutcome {
    /// The target.
    pub target: String,
    /// Its wave (0 = canary).
    pub wave: usize,
    /// `pending`, `running`, `prepared`, `applied`, `verified`, `failed`, `rolled_back`,
    /// `skipped`.
    pub state: String,
    /// Changes this rollout deployed there.
    pub changes: Vec<String>,
    /// Why (failure, skip reason, rollback cause).
    pub reason: Option<String>,
}

/// The watch after one wave.
#[derive(Debug, Clone, Serialize)]
pub struct WaveWatch {
    /// The wave.
    pub wave: usize,
    /// `pass`, `fail` or `inconclusive`.
    pub outcome: String,
    /// Why it did not pass.
    pub reason: Option<String>,
    /// Samples taken.
    pub samples: Vec<Sample>,
}

/// The result of a rollout (or of the part that ran).
#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    /// The rollout's id.
    pub id: String,
    /// The fleet.
    pub fleet: String,
    /// Two-phase commit.
    pub atomic: bool,
    /// Only planned.
    pub dry_run: bool,
    /// `completed`, `rolled_back`, `failed`, `stopped`, `paused`, `nothing_to_do`.
    pub state: String,
    /// Per target, wave by wave.
    pub targets: Vec<TargetOutcome>,
    /// The watches.
    pub watches: Vec<WaveWatch>,
    /// In-doubt transactions finished before the rollout.
    pub recovered: Vec<crate::atomic::Recovered>,
    /// When the breach was detected and when the last target was reverted.
    pub detected_at: Option<DateTime<Utc>>,
    /// When the rollback finished.
    pub recovered_at: Option<DateTime<Utc>>,
    /// Wall time.
    pub duration_ms: u64,
}

impl RolloutReport {
    /// Milliseconds from detection to the last target reverted.
    pub fn detection_to_recovery_ms(&self) -> Option<i64> {
        Some((self.recovered_at? - self.detected_at?).num_milliseconds())
    }
}

/// One step of a rollout, as it happens (for progress lines and notifications).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `rollout_started`, `target_started`, `target_applied`, `target_failed`,
    /// `target_skipped`, `wave_completed`, `probe_sample`, `probe_failed`,
    /// `rollback_started`, `target_rolled_back`, `rollback_completed`,
    /// `rollout_completed`, `recovered`, `notify_failed`.
    pub kind: &'static str,
    /// The rollout.
    pub rollout: String,
    /// The fleet.
    pub fleet: String,
    /// The target concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The wave concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wave: Option<usize>,
    /// What happened, in one line.
    pub message: String,
    /// More, by kind.
    pub detail: serde_json::Value,
    /// When.
    pub at: DateTime<Utc>,
}

/// Receives events as the rollout runs (from several threads).
pub trait Reporter: Sync {
    /// One event.
    fn event(&self, event: &Event);
}

/// A reporter that drops every event.
pub struct Quiet;

impl Reporter for Quiet {
    fn event(&self, _event: &Event) {}
}
