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
    /// Every change, by ID.
    pub changes: Vec<StatusEntry>,
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
    for deployed in ledger.iter().filter(|d| plan.get(&d.name).is_none()) {
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
    }
}

/// Read the target's ledger (without creating it) and classify every change.
pub fn status(target: &mut Target, plan: &Plan) -> Result<StatusReport, OpError> {
    let ledger_exists = target.engine.ledger_version()?.is_some();
    let ledger = target.engine.changes()?;
    Ok(StatusReport {
        target: target.name.clone(),
        url: target.display_url.clone(),
        ledger: ledger_exists,
        changes: classify(plan, &ledger),
    })
}
