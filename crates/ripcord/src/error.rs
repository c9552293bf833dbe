//! What operations report when they stop, and what they had done by then.

use ripcord_core::{EngineError, SourceLocation, SqlError};
use serde::Serialize;

fn plural_changes(n: usize) -> String {
    if n == 1 {
        "change".into()
    } else {
        format!("{n} changes")
    }
}

/// Refuse to act past unreadable change files (`None` when there are none).
pub fn invalid_files(files: Vec<&ripcord_core::plan::InvalidFile>) -> Option<OpError> {
    (!files.is_empty()).then(|| OpError::InvalidFiles {
        files: files.into_iter().map(|f| f.error.clone()).collect(),
    })
}

/// Which part of a change was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The deploy section.
    Deploy,
    /// The verify section.
    Verify,
    /// The revert section.
    Revert,
}

impl Phase {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Deploy => "deploy",
            Phase::Verify => "verify",
            Phase::Revert => "revert",
        }
    }
}

/// A statement of a change failed.
#[derive(Debug, Clone)]
pub struct ChangeFailure {
    /// The change.
    pub change: String,
    /// The section that failed.
    pub phase: Phase,
    /// 1-based number of the failing statement in its section.
    pub statement: usize,
    /// Statements in that section.
    pub statements: usize,
    /// The failing statement (or, when the database names one, the failing token).
    pub location: SourceLocation,
    /// The database's error.
    pub error: SqlError,
    /// Changes completed before this one in the same run.
    pub completed: Vec<String>,
    /// For `transaction: none` changes: statements that stay applied.
    pub kept_statements: Option<usize>,
    /// Times the whole change was retried after a lock timeout.
    pub lock_retries: usize,
    /// Sessions seen blocking the failing statement (after lock timeouts).
    pub blockers: Vec<ripcord_core::Blocker>,
}

/// A change whose file no longer matches what was deployed.
#[derive(Debug, Clone, Serialize)]
pub struct ModifiedChange {
    /// The change.
    pub change: String,
    /// Checksum in the ledger.
    pub recorded: String,
    /// Checksum of the file now.
    pub found: String,
}

/// Why an operation stopped.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The database could not be reached, the lock is busy, or the ledger is unusable.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Deployed changes were edited since; deploy refuses until `rehash`.
    #[error("{} deployed {} changed since {}: {}", modified.len(), if modified.len() == 1 { "change was" } else { "changes were" }, if modified.len() == 1 { "its deploy" } else { "their deploy" }, modified.iter().map(|m| m.change.as_str()).collect::<Vec<_>>().join(", "))]
    Modified {
        /// The changes.
        modified: Vec<ModifiedChange>,
    },
    /// A change has no revert section and does not declare itself irreversible.
    #[error("{change} has no revert section{}", reason.as_deref().map(|r| format!(" and ripcord cannot write one: {r}")).unwrap_or_default())]
    MissingRevert {
        /// The change.
        change: String,
        /// Why ripcord cannot write the revert itself.
        reason: Option<String>,
    },
    /// A `transaction: none` change destroys data the vault cannot keep (outside a
    /// transaction), so its own revert would bring back the objects without the data.
    #[error(
        "{change} runs with `transaction: none` and {reason}; the vault keeps data only inside a change's transaction, so its revert could not bring it back"
    )]
    DataNotKept {
        /// The change.
        change: String,
        /// The statement and what it destroys.
        reason: String,
    },
    /// A change to revert has no revert SQL.
    #[error("{change} cannot be reverted: {}", reason.as_deref().map(|r| format!("declared irreversible ({r})")).unwrap_or_else(|| "it was deployed without a revert section".into()))]
    Irreversible {
        /// The change.
        change: String,
        /// The author's reason.
        reason: Option<String>,
    },
    /// A change is half-way through a revert; deploying over it would be a guess.
    #[error("{change} stopped part-way through a revert ({done} of {total} statements)")]
    RevertInProgress {
        /// The change.
        change: String,
        /// Statements reverted.
        done: i32,
        /// Statements in the revert.
        total: i32,
    },
    /// No change of that name.
    #[error("no change named `{name}`")]
    UnknownChange {
        /// What was asked for.
        name: String,
        /// A close name.
        suggestion: Option<String>,
    },
    /// The change exists but is not deployed on the target.
    #[error("{name} is not deployed on this target")]
    NotDeployed {
        /// The change.
        name: String,
    },
    /// A deployed change's file is gone, so it cannot be rehashed.
    #[error("{change} has no file in the project any more")]
    FileGone {
        /// The change.
        change: String,
    },
    /// A pending change needs a change that is neither deployed nor deployed before it.
    #[error("{change} requires {required}, which is not deployed")]
    UnmetRequirement {
        /// The change.
        change: String,
        /// What it needs.
        required: String,
    },
    /// `--scratch` names a database that already holds objects.
    #[error("the scratch database {scratch} is not empty")]
    ScratchNotEmpty {
        /// The scratch, password hidden.
        scratch: String,
    },
    /// The drill could not bring its scratch database to the starting state.
    #[error("{reason}")]
    DrillSetup {
        /// What failed.
        reason: String,
    },
    /// The snapshot store cannot be read or written.
    #[error("snapshot store {store}: {reason}")]
    Store {
        /// The store URI.
        store: String,
        /// What went wrong.
        reason: String,
    },
    /// No snapshot with that id in the store.
    #[error("no snapshot {id} in {store}")]
    UnknownSnapshot {
        /// What was asked for.
        id: String,
        /// The store.
        store: String,
    },
    /// A snapshot's manifest or chunks do not match their hashes.
    #[error("snapshot {id} is damaged: {reason}")]
    SnapshotDamaged {
        /// The snapshot.
        id: String,
        /// The first damage found.
        reason: String,
    },
    /// Without a project (no ripcord.toml) the ledger holds several projects' changes.
    #[error("this target's ledger holds the changes of several projects ({}), and no project is selected", projects.join(", "))]
    WhichProject {
        /// The projects.
        projects: Vec<String>,
    },
    /// A change of this project has the name of a change another project deployed.
    #[error("{change} is deployed on this target by {}", project.as_deref().map(|p| if p.is_empty() { "an unnamed project".to_string() } else { format!("project `{p}`") }).unwrap_or_else(|| "a project ripcord did not record (deployed before ripcord kept project names)".into()))]
    OtherProject {
        /// The change.
        change: String,
        /// Its project (`None`: an old row nobody claimed).
        project: Option<String>,
    },
    /// A ledger row does not match what the audit chain recorded: its SQL is not run.
    #[error("{problem}")]
    LedgerTampered {
        /// The change concerned, if one.
        change: Option<String>,
        /// What does not match.
        problem: String,
    },
    /// A deployed change's revert has no statements although its deploy has some.
    #[error(
        "{change} cannot be reverted: its revert section is empty, so a revert would leave everything its deploy did in place"
    )]
    EmptyRevert {
        /// The change.
        change: String,
    },
    /// Files of the changes directory cannot be read as changes.
    #[error("{}", if files.len() == 1 { files[0].describe() } else { format!("{} change files cannot be read: {}", files.len(), files.iter().map(|f| f.describe()).collect::<Vec<_>>().join("; ")) })]
    InvalidFiles {
        /// Every unreadable file, with why.
        files: Vec<std::sync::Arc<ripcord_core::change::ChangeFileError>>,
    },
    /// A diff cannot be run as asked (no key, mismatched key types, no such table);
    /// nothing was read beyond what told so.
    #[error("{reason}")]
    DiffInput {
        /// What is wrong.
        reason: String,
        /// What to do.
        hint: String,
    },
    /// No baseline of that name (and version).
    #[error("no baseline {name}")]
    UnknownBaseline {
        /// What was asked for.
        name: String,
        /// The baselines there are (`name@version`).
        known: Vec<String>,
    },
    /// Deploy's gate: a check failed after the changes ran, and the changes of this run
    /// were reverted.
    #[error("check `{check}` failed after the deploy ({reason}); the {} deployed by this run {} reverted", plural_changes(reverted.len()), if reverted.len() == 1 { "was" } else { "were" })]
    GateFailed {
        /// The first failing check.
        check: String,
        /// Why, in words (value and expectation).
        reason: String,
        /// The changes reverted, newest first.
        reverted: Vec<String>,
        /// The whole check report.
        report: Box<crate::check::CheckReport>,
    },
    /// A statement failed; everything of that change was rolled back (unless it runs
    /// with `transaction: none`, see `kept_statements`).
    #[error("{} {} failed: {}", .0.change, .0.phase.as_str(), .0.error)]
    ChangeFailed(Box<ChangeFailure>),
}

impl OpError {
    /// No change named `name`; the closest of `known` is suggested.
    pub(crate) fn unknown_change<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> OpError {
        OpError::UnknownChange {
            name: name.to_string(),
            suggestion: ripcord_core::suggest::did_you_mean(name, known).map(String::from),
        }
    }
}

/// The change of `plan` named (or numbered) `name`, or an error suggesting a close name.
pub(crate) fn resolve_change<'p>(
    plan: &'p ripcord_core::Plan,
    name: &str,
) -> Result<&'p ripcord_core::Change, OpError> {
    plan.resolve(name).ok_or_else(|| {
        OpError::unknown_change(name, plan.changes().iter().map(|c| c.name.as_str()))
    })
}
