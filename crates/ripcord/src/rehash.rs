//! Rehash: accept the edited file of a deployed change as its deployed definition,
//! with the reason recorded in the audit chain.

use ripcord_core::audit::NewEvent;
use ripcord_core::{Plan, SectionKind};
use serde::Serialize;
use serde_json::json;

use crate::error::OpError;
use crate::run::{append_event, with_lock};
use crate::target::Target;

/// The result of a rehash.
#[derive(Debug, Clone, Serialize)]
pub struct RehashReport {
    /// The change.
    pub change: String,
    /// Checksum before.
    pub old_checksum: String,
    /// Checksum now.
    pub new_checksum: String,
    /// False when the file already matched (nothing recorded).
    pub changed: bool,
}

/// Record the current file of `name` as its deployed definition.
pub fn rehash(
    target: &mut Target,
    plan: &Plan,
    name: &str,
    reason: &str,
) -> Result<RehashReport, OpError> {
    let unreadable: Vec<_> = plan
        .invalid()
        .iter()
        .filter(|f| {
            f.name.as_deref() == Some(name)
                || f.id
                    .as_ref()
                    .is_some_and(|id| Some(id) == ripcord_core::ChangeId::parse(name).as_ref())
        })
        .collect();
    if let Some(error) = crate::error::invalid_files(unreadable) {
        return Err(error);
    }
    with_lock(target, "rehash", |target| {
        crate::scope::claim_old_rows(target, plan)?;
        let ledger = crate::scope::scoped(target, plan)?.mine;
        let deployed = ledger
            .iter()
            .find(|d| d.name == name || d.name.split('_').next() == Some(name))
            .ok_or_else(|| match plan.resolve(name) {
                Some(change) => OpError::NotDeployed {
                    name: change.name.clone(),
                },
                None => OpError::unknown_change(name, ledger.iter().map(|d| d.name.as_str())),
            })?;
        let change = plan.get(&deployed.name).ok_or_else(|| OpError::FileGone {
            change: deployed.name.clone(),
        })?;
        let mut report = RehashReport {
            change: change.name.clone(),
            old_checksum: deployed.checksum.clone(),
            new_checksum: change.checksum.clone(),
            changed: deployed.checksum != change.checksum,
        };
        if !report.changed {
            return Ok(report);
        }
        let mut updated = deployed.clone();
        updated.checksum = change.checksum.clone();
        updated.deploy_sql = change.section_sql(SectionKind::Deploy).unwrap_or_default();
        updated.revert_sql = crate::vault::rehashed_revert(
            deployed.revert_sql.as_deref(),
            change.section_sql(SectionKind::Revert),
        );
        updated.verify_sql = change.section_sql(SectionKind::Verify);
        updated.irreversible = change.irreversible.clone();
        updated.requires = change.requires.iter().map(|r| r.name.clone()).collect();
        updated.file = change.path.display().to_string();
        let limits = target.limits;
        target.engine.begin(&limits)?;
        target.engine.put_change(&updated)?;
        append_event(
            target,
            NewEvent {
                kind: "rehash",
                change: Some(change.name.clone()),
                detail: json!({
                    "reason": reason,
                    "old_checksum": deployed.checksum,
                    "new_checksum": change.checksum,
                    "ledger": updated.definition_checksum(),
                }),
            },
        )?;
        target.engine.commit()?;
        report.changed = true;
        Ok(report)
    })
}
