//! Project scope: several projects may deploy to one database, each with its own
//! changes. The ledger records which project deployed each change, and every command
//! sees only its own project's rows, so that one project's `revert` never undoes
//! another's work.
//!
//! Rows deployed before ripcord recorded projects (`project` NULL) belong to the project
//! whose changes directory holds their names; a locking command records that claim in
//! the ledger and the audit chain.

use std::collections::BTreeMap;

use ripcord_core::{DeployedChange, Plan};
use serde::Serialize;

use crate::error::OpError;
use crate::target::Target;

/// The ledger as one project sees it.
#[derive(Debug, Clone, Default)]
pub struct Scoped {
    /// This project's rows, in deploy order.
    pub mine: Vec<DeployedChange>,
    /// Rows of other projects, in deploy order.
    pub others: Vec<DeployedChange>,
    /// Rows from before projects were recorded that this project does not claim.
    pub unclaimed: Vec<DeployedChange>,
    /// Every row (for deploy order numbers and name collisions).
    pub all: Vec<DeployedChange>,
}

/// Other projects' changes on a target, for status.
#[derive(Debug, Clone, Serialize)]
pub struct OtherProject {
    /// The project (`null` for changes deployed before ripcord recorded projects).
    pub project: Option<String>,
    /// Its deployed changes, in deploy order.
    pub changes: Vec<String>,
}

impl Scoped {
    /// Other projects' changes grouped by project, unclaimed old rows last.
    pub fn other_projects(&self) -> Vec<OtherProject> {
        let mut by_project: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in &self.others {
            by_project
                .entry(row.project.clone().unwrap_or_default())
                .or_default()
                .push(row.name.clone());
        }
        let mut out: Vec<OtherProject> = by_project
            .into_iter()
            .map(|(project, changes)| OtherProject {
                project: Some(project),
                changes,
            })
            .collect();
        if !self.unclaimed.is_empty() {
            out.push(OtherProject {
                project: None,
                changes: self.unclaimed.iter().map(|r| r.name.clone()).collect(),
            });
        }
        out
    }

    /// The row of `name` if another project (or an unclaimed old row) holds it.
    pub fn held_elsewhere(&self, name: &str) -> Option<&DeployedChange> {
        self.others
            .iter()
            .chain(&self.unclaimed)
            .find(|row| row.name == name)
    }
}

/// Split the ledger of `target` into what the project sees. Without a project
/// (`target.project` is `None`: no ripcord.toml), the ledger must hold one project only.
pub fn scoped(target: &mut Target, plan: &Plan) -> Result<Scoped, OpError> {
    let all = target.engine.changes()?;
    split(all, target.project.as_deref(), plan)
}

/// [`scoped`] over rows already read.
pub fn split(
    all: Vec<DeployedChange>,
    project: Option<&str>,
    plan: &Plan,
) -> Result<Scoped, OpError> {
    let mut scoped = Scoped {
        all: all.clone(),
        ..Scoped::default()
    };
    match project {
        Some(me) => {
            for row in all {
                match row.project.as_deref() {
                    Some(p) if p == me => scoped.mine.push(row),
                    Some(_) => scoped.others.push(row),
                    None if plan.get(&row.name).is_some() => scoped.mine.push(row),
                    None => scoped.unclaimed.push(row),
                }
            }
        }
        None => {
            let mut projects: Vec<Option<String>> = all.iter().map(|r| r.project.clone()).collect();
            projects.sort();
            projects.dedup();
            if projects.len() > 1 {
                return Err(OpError::WhichProject {
                    projects: projects
                        .into_iter()
                        .map(|p| p.unwrap_or_else(|| "(not recorded)".into()))
                        .collect(),
                });
            }
            scoped.mine = all;
        }
    }
    Ok(scoped)
}

/// Record this project as the owner of its unowned old rows (inside the caller's lock);
/// returns the names claimed. Each claim is in the audit chain with the rows' new
/// definition checksums.
pub(crate) fn claim_old_rows(target: &mut Target, plan: &Plan) -> Result<Vec<String>, OpError> {
    let Some(me) = target.project.clone() else {
        return Ok(Vec::new());
    };
    let rows = target.engine.changes()?;
    let claimed: Vec<DeployedChange> = rows
        .into_iter()
        .filter(|r| r.project.is_none() && plan.get(&r.name).is_some())
        .map(|mut r| {
            r.project = Some(me.clone());
            r
        })
        .collect();
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    crate::failpoint::hit("before_claim");
    crate::run::put_rows_with_event(
        target,
        &claimed,
        "ledger_claimed",
        serde_json::json!({ "project": me }),
        |_| Ok(()),
    )?;
    Ok(claimed.into_iter().map(|r| r.name).collect())
}
