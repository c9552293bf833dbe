//! ripcord's model, free of any database or command-line crate.
//!
//! - [`change`] reads change files and [`splitter`] finds their statements;
//! - [`plan`] orders them and checks `requires`; [`checksum`] pins their identity;
//! - [`config`] reads `ripcord.toml`; [`url`] recognizes and redacts target URLs;
//! - [`audit`] seals and verifies the hash-chained audit events;
//! - [`engine`] is the trait every database engine implements; [`error`] what it
//!   reports when something goes wrong.
#![forbid(unsafe_code)]

pub mod audit;
pub mod capture;
pub mod change;
pub mod checksum;
pub mod config;
pub mod diff;
pub mod engine;
pub mod error;
pub mod fingerprint;
pub mod fleet;
pub mod kind;
pub mod location;
pub mod lock;
pub mod plan;
pub mod snapshot;
pub mod splitter;
pub mod suggest;
pub mod url;
pub mod vault;

pub use change::{Change, ChangeId, SectionKind, TransactionMode};
pub use engine::{
    Baseline, Blocker, Capabilities, ChangeState, DeployedChange, Distribution, Engine,
    EngineError, EngineKind, LockHolder, QueryRows, RelationLock, SessionLimits, SqlError,
    TableSize,
};
pub use location::{LineCol, SourceLocation};
pub use plan::{Plan, PlanError};
