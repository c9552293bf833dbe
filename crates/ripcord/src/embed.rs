//! The API for applications that carry their changes and deploy them on start, as
//! `sqlx::migrate!` users do: [`Migrator`] over a URL and the change files, either
//! compiled into the binary with [`embed_changes!`](crate::embed_changes) or read from a
//! directory at run time. It runs the same deploy, revert and status as the command
//! line (ledger, lock, vault, audit chain), so a database an application migrated is one
//! `ripcord status` and `ripcord revert` understand.
//!
//! ```no_run
//! # async fn start() -> Result<(), ripcord::OpError> {
//! // The directory of change files, relative to the crate's Cargo.toml.
//! let migrator = ripcord::embed::Migrator::new("postgres://app@db/app")
//!     .with_embedded(ripcord::embed_changes!("tests/embedded_changes"))
//!     .project("shop");
//! let report = migrator.deploy().await?;
//! println!("{} changes deployed", report.deployed.len());
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use ripcord_core::{EngineError, Plan};

use crate::deploy::{DeployOptions, DeployReport};
use crate::error::OpError;
use crate::observe::Silent;
use crate::revert::{RevertOptions, RevertReport, Selection};
use crate::status::StatusReport;
use crate::target::Target;

/// A change file compiled into the binary by `embed_changes!`.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedChange {
    /// `<ID>_<name>.sql`.
    pub file_name: &'static str,
    /// The file's text.
    pub text: &'static str,
    /// The checksum ripcord computed when the binary was built.
    pub checksum: &'static str,
}

/// Where a [`Migrator`]'s changes come from.
#[derive(Debug, Clone)]
enum Changes {
    Embedded(&'static [EmbeddedChange]),
    Dir(PathBuf),
}

/// Deploy, revert and inspect one database from an application.
#[derive(Debug, Clone)]
pub struct Migrator {
    url: String,
    changes: Changes,
    project: Option<String>,
    accept_irreversible: Vec<String>,
}

fn invalid(reason: String, hint: &str) -> OpError {
    OpError::Engine(EngineError::Invalid {
        reason,
        hint: Some(hint.into()),
    })
}

impl Migrator {
    /// A migrator for the database at `url` (`postgres://…` or `sqlite://path`), with
    /// the change files of `./changes` unless told otherwise.
    pub fn new(url: impl Into<String>) -> Migrator {
        Migrator {
            url: url.into(),
            changes: Changes::Dir(PathBuf::from("changes")),
            project: None,
            accept_irreversible: Vec::new(),
        }
    }

    /// Use the changes `embed_changes!` compiled into the binary.
    pub fn with_embedded(mut self, changes: &'static [EmbeddedChange]) -> Migrator {
        self.changes = Changes::Embedded(changes);
        self
    }

    /// Read the change files of `dir` when an operation runs.
    pub fn with_dir(mut self, dir: impl Into<PathBuf>) -> Migrator {
        self.changes = Changes::Dir(dir.into());
        self
    }

    /// The project name the ledger records (`[project] name` of ripcord.toml), so that
    /// several applications can share a database.
    pub fn project(mut self, name: impl Into<String>) -> Migrator {
        self.project = Some(name.into());
        self
    }

    /// Deploy these changes although ripcord cannot write their revert: the
    /// application's consent, recorded in the audit chain as for
    /// `deploy --accept-irreversible`.
    pub fn accept_irreversible(mut self, change: impl Into<String>) -> Migrator {
        self.accept_irreversible.push(change.into());
        self
    }

    /// The changes in deploy order. Embedded files are parsed again and their checksums
    /// compared with the ones computed at build time.
    pub fn plan(&self) -> Result<Plan, OpError> {
        match &self.changes {
            Changes::Dir(dir) => {
                let plan = Plan::load(dir).map_err(|e| {
                    invalid(
                        e.to_string(),
                        "Migrator::with_dir names the directory of the change files",
                    )
                })?;
                if let Some(bad) = plan.invalid().first() {
                    return Err(invalid(
                        format!("a change file cannot be read: {}", bad.error.describe()),
                        "fix the file; `ripcord lint` shows every problem",
                    ));
                }
                Ok(plan)
            }
            Changes::Embedded(embedded) => {
                let mut changes = Vec::with_capacity(embedded.len());
                for file in embedded.iter() {
                    let path = Path::new("changes").join(file.file_name);
                    let change =
                        ripcord_core::change::parse_change(&path, file.text).map_err(|e| {
                            invalid(
                                format!(
                                    "embedded {} cannot be read: {}",
                                    file.file_name,
                                    e.describe()
                                ),
                                "rebuild the application with the same ripcord version",
                            )
                        })?;
                    if change.checksum != file.checksum {
                        return Err(invalid(
                            format!(
                                "embedded {} has checksum {} but was built with {}",
                                file.file_name, change.checksum, file.checksum
                            ),
                            "the binary and the ripcord library disagree; rebuild the application",
                        ));
                    }
                    changes.push(change);
                }
                Plan::new(changes)
                    .map_err(|e| invalid(e.to_string(), "fix the change files and rebuild"))
            }
        }
    }

    /// Open the target: the connection every operation below uses.
    pub fn connect(&self) -> Result<Target, OpError> {
        let mut target = crate::target::connect("app", &self.url, Path::new("."))?;
        target.project = Some(self.project.clone().unwrap_or_default());
        Ok(target)
    }

    /// Deploy every pending change, blocking the calling thread.
    pub fn deploy_blocking(&self) -> Result<DeployReport, OpError> {
        let plan = self.plan()?;
        let mut target = self.connect()?;
        let options = DeployOptions {
            accept_irreversible: self.accept_irreversible.clone(),
            ..Default::default()
        };
        crate::deploy::deploy(&mut target, &plan, &options, &mut Silent)
    }

    /// Which changes are deployed, pending or changed since, blocking.
    pub fn status_blocking(&self) -> Result<StatusReport, OpError> {
        let plan = self.plan()?;
        let mut target = self.connect()?;
        crate::status::status(&mut target, &plan)
    }

    /// Revert the `selection` of deployed changes, newest first, blocking.
    pub fn revert_blocking(&self, selection: Selection) -> Result<RevertReport, OpError> {
        let plan = self.plan()?;
        let mut target = self.connect()?;
        let options = RevertOptions {
            selection,
            dry_run: false,
            checks: Vec::new(),
        };
        crate::revert::revert(&mut target, &plan, &options, &mut Silent)
    }

    /// [`Migrator::deploy_blocking`] on tokio's blocking pool.
    pub async fn deploy(&self) -> Result<DeployReport, OpError> {
        let me = self.clone();
        blocking(move || me.deploy_blocking()).await
    }

    /// [`Migrator::status_blocking`] on tokio's blocking pool.
    pub async fn status(&self) -> Result<StatusReport, OpError> {
        let me = self.clone();
        blocking(move || me.status_blocking()).await
    }

    /// [`Migrator::revert_blocking`] on tokio's blocking pool.
    pub async fn revert(&self, selection: Selection) -> Result<RevertReport, OpError> {
        let me = self.clone();
        blocking(move || me.revert_blocking(selection)).await
    }
}

/// Database work is synchronous; an async caller's runtime threads stay free.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
