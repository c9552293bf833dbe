//! Guarded rollouts across a fleet of targets (DESIGN §5.8): canary waves, health
//! probes with three-valued samples, automatic rollback in reverse order of change,
//! atomic changes with PostgreSQL's two-phase commit, recovery of in-doubt
//! transactions from the coordinator's decision record, and notifications.
//!
//! Resolve a [`fleet::Fleet`] from ripcord.toml with [`fleet::resolve`], then call
//! [`rollout::rollout`], [`atomic::recover`] or [`status::status`].
#![forbid(unsafe_code)]

pub mod atomic;
pub mod error;
pub mod fleet;
pub mod notify;
pub mod probe;
pub mod report;
pub mod rollout;
pub mod status;

pub use error::RolloutError;
pub use fleet::{Fleet, Member};
pub use report::{Event, Quiet, Reporter, RolloutReport};
pub use rollout::{RolloutOptions, rollout};
