//! ripcord's operations over core and the engines: the library users embed.
//!
//! Open a [`Target`] with [`target::connect`], load a [`ripcord_core::Plan`], then call
//! [`deploy::deploy`], [`revert::revert`], [`verify::verify`], [`status::status`],
//! [`rehash::rehash`] or the [`audit`] functions. Each returns a serializable report;
//! failures are [`OpError`]s that keep the report of what was done before them.
//!
//! Applications that deploy their own changes on start use [`embed::Migrator`], with
//! the change files compiled in by [`embed_changes!`].
#![forbid(unsafe_code)]

pub mod audit;
pub mod baseline;
pub mod capture;
pub mod check;
pub mod checkpoint;
pub mod deploy;
pub mod diff;
pub mod drill;
pub mod embed;
pub mod env_vars;
pub mod error;
pub mod failpoint;
pub mod flags;
pub mod identity;
pub mod import;
pub mod integrity;
pub mod observe;
pub mod plan;
pub mod rehash;
pub mod revert;
mod run;
pub mod runbook;
pub mod scope;
pub mod snapshot;
pub mod status;
pub mod target;
pub mod unlock;
pub mod vault;
pub mod verify;

pub use error::{ChangeFailure, OpError, Phase};
pub use observe::{Observer, Silent};
pub use target::Target;

/// Compile a directory of change files into the binary; see [`embed::Migrator`].
pub use ripcord_macros::embed_changes;
