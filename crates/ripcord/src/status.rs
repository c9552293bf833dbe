//! Where each change stands on a target: deployed, pending, modified, missing its file,
//! or stopped part-way.

use chrono::{DateTime, Utc};
use ripcord_core::{ChangeId, ChangeState, DeployedChange, Plan};
use serde::Serialize;

use crate::error::OpError;
use crate::target::Target;

/// The state of one change on one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeStatus {
    /// Deployed, file unchanged.
    Deployed,
    /// In the project, not deployed.
    Pending,
    /// Deployed, but the file changed since.
    Modified,
    /// Deployed, but its file is gone from the project.
    MissingFile,
    /// A `transaction: none` deploy stopped part-way.
    PartlyDeployed,
    /// A `transaction: none` revert stopped part-way.
    PartlyReverted,
    /// Its file cannot be read as a change (see `problem`).
    Invalid,
}

impl ChangeStatus {
    /// Short human word.
    pub fn label(self) -> &'static str {
        match self {
            ChangeStatus::Deployed => "deployed",
            ChangeStatus::Pending => "pending",
            ChangeStatus::Modified => "modified",
            ChangeStatus::MissingFile => "missing-file",
            ChangeStatus::PartlyDeployed => "partly-deployed",
            ChangeStatus::PartlyReverted => "partly-reverted",
            ChangeStatus::Invalid => "invalid",
        }
    }
}

/// One line of the status.
#[derive(Debug, Clone, Serialize)]
pub struct StatusEntry {
    /// The change.
    pub change: String,
    /// Its state.
    pub status: ChangeStatus,
    /// When it was deployed.
    pub deployed_at: Option<DateTime<Utc>>,
    /// By whom.
    pub deployed_by: Option<String>,
    /// Progress of a part-way change: statements done and total.
    pub progress: Option<(i32, i32)>,
    /// Why its file cannot be read (`invalid`), with where.
    pub problem: Option<String>,
}

/// The status of a target.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Target name.
    pub target: String,
    /// Target URL without password.
    pub url: String,
    /// Whether the target has a ledger yet.
    pub ledger: bool,
    /// The project whose changes these are.
    pub project: Option<String>,
    /// Every change, by ID.
    pub changes: Vec<StatusEntry>,
    /// Changes other projects deployed on the same target (not this project's to touch).
    pub other_projects: Vec<crate::scope::OtherProject>,
}

impl StatusReport {
    /// How many changes have `status`.
    pub fn count(&self, status: ChangeStatus) -> usize {
        self.changes.iter().filter(|c| c.status == status).count()
    }
}

/// Classify ledger rows against the plan.
pub fn classify(plan: &Plan, ledger: &[DeployedChange]) -> Vec<StatusEntry> {
    let mut entries: Vec<(Option<ChangeId>, StatusEntry)> = Vec::new();
    for change in plan.changes() {
        let deployed = ledger.iter().find(|d| d.name == change.name);
        let status = match deployed {
            None => ChangeStatus::Pending,
            Some(d) if d.state == ChangeState::Deploying => ChangeStatus::PartlyDeployed,
            Some(d) if d.state == ChangeState::Reverting => ChangeStatus::PartlyReverted,
            Some(d) if d.checksum != change.checksum => ChangeStatus::Modified,
            Some(_) => ChangeStatus::Deployed,
        };
        entries.push((
            Some(change.id.clone()),
            entry(&change.name, status, deployed),
        ));
    }
    for file in plan.invalid() {
        let deployed = file
            .name
            .as_ref()
            .and_then(|name| ledger.iter().find(|d| d.name == *name));
        let name = file
            .name
            .clone()
            .unwrap_or_else(|| match file.error.as_ref() {
                ripcord_core::change::ChangeFileError::BadFileName { path }
                | ripcord_core::change::ChangeFileError::Io { path, .. } => {
                    path.display().to_string()
                }
                ripcord_core::change::ChangeFileError::Syntax { location, .. } => {
                    location.name.display().to_string()
                }
            });
        let mut line = entry(&name, ChangeStatus::Invalid, deployed);
        line.problem = Some(file.error.describe());
        entries.push((file.id.clone(), line));
    }
    let invalid_names: Vec<&str> = plan
        .invalid()
        .iter()
        .filter_map(|f| f.name.as_deref())
        .collect();
    for deployed in ledger
        .iter()
        .filter(|d| plan.get(&d.name).is_none() && !invalid_names.contains(&d.name.as_str()))
    {
        let status = match deployed.state {
            ChangeState::Deploying => ChangeStatus::PartlyDeployed,
            ChangeState::Reverting => ChangeStatus::PartlyReverted,
            ChangeState::Deployed => ChangeStatus::MissingFile,
        };
        let id = deployed.name.split('_').next().and_then(ChangeId::parse);
        entries.push((id, entry(&deployed.name, status, Some(deployed))));
    }
    entries.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.change.cmp(&y.change)));
    entries.into_iter().map(|(_, e)| e).collect()
}

fn entry(name: &str, status: ChangeStatus, deployed: Option<&DeployedChange>) -> StatusEntry {
    let partial = matches!(
        status,
        ChangeStatus::PartlyDeployed | ChangeStatus::PartlyReverted
    );
    StatusEntry {
        change: name.to_string(),
        status,
        deployed_at: deployed.map(|d| d.deployed_at),
        deployed_by: deployed.map(|d| d.deployed_by.clone()),
        progress: deployed
            .filter(|_| partial)
            .map(|d| (d.statements_done, d.statements_total)),
        problem: None,
    }
}

/// Read the target's ledger (without creating it) and classify every change.
pub fn status(target: &mut Target, plan: &Plan) -> Result<StatusReport, OpError> {
    let ledger_exists = target.engine.ledger_version()?.is_some();
    let scoped = crate::scope::scoped(target, plan)?;
    Ok(StatusReport {
        target: target.name.clone(),
        url: target.display_url.clone(),
        ledger: ledger_exists,
        project: target.project.clone(),
        changes: classify(plan, &scoped.mine),
        other_projects: scoped.other_projects(),
    })
}
