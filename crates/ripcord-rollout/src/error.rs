//! What can stop a rollout, each with the exit class the CLI maps it to.

use ripcord::OpError;
use ripcord_core::EngineError;

use crate::report::RolloutReport;

/// A rollout (or recover) that did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The fleet or the request is wrong; nothing was changed.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// A target cannot be reached before anything changed: nothing was changed anywhere.
    #[error("cannot reach {target}: {reason}")]
    Unreachable {
        /// The target.
        target: String,
        /// Why (password hidden).
        reason: String,
    },
    /// `--atomic` cannot be used here (a change or a server cannot take part).
    #[error("{reason}")]
    AtomicRefused {
        /// Why.
        reason: String,
        /// What to do.
        hint: String,
    },
    /// Another rollout of this fleet holds the coordinator's lock.
    #[error(transparent)]
    Busy(EngineError),
    /// The coordinator's records cannot be read or written.
    #[error("coordinator {coordinator}: {source}")]
    Coordinator {
        /// The coordinator (password hidden).
        coordinator: String,
        /// Why.
        source: OpError,
    },
    /// The rollout failed (a deploy failed, a probe breached, a probe was inconclusive
    /// with `--no-pause`) and what happened per target is in the report.
    #[error("{summary}")]
    Failed {
        /// One sentence.
        summary: String,
        /// Per target.
        report: Box<RolloutReport>,
    },
    /// Probes were inconclusive: the rollout is paused with its changed targets as
    /// they are.
    #[error("{summary}")]
    Paused {
        /// One sentence.
        summary: String,
        /// Per target.
        report: Box<RolloutReport>,
    },
}

impl RolloutError {
    /// The report carried, when the rollout got as far as one.
    pub fn report(&self) -> Option<&RolloutReport> {
        match self {
            RolloutError::Failed { report, .. } | RolloutError::Paused { report, .. } => {
                Some(report)
            }
            _ => None,
        }
    }
}
