//! Verify: run the verify SQL of every deployed change (as recorded at deploy) inside
//! a transaction that is always rolled back, and report which pass.

use ripcord_core::{ChangeState, EngineError};
use serde::Serialize;

use crate::error::{OpError, Phase};
use crate::run::Script;
use crate::target::Target;

/// The verdict for one change.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyOutcome {
    /// The change.
    pub change: String,
    /// `passed`, `failed` or `no-verify`.
    pub result: &'static str,
    /// The database's message on failure.
    pub error: Option<String>,
    /// Where it failed (`ledger:<change>/verify:line:col`).
    pub at: Option<String>,
}

/// The result of verify.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Target name.
    pub target: String,
    /// One entry per deployed change, in deploy order.
    pub changes: Vec<VerifyOutcome>,
}

impl VerifyReport {
    /// Changes whose verify failed.
    pub fn failed(&self) -> usize {
        self.changes.iter().filter(|c| c.result == "failed").count()
    }
}

/// Verify every deployed change of `target`.
pub fn verify(target: &mut Target, plan: &ripcord_core::Plan) -> Result<VerifyReport, OpError> {
    let ledger = crate::scope::scoped(target, plan)?.mine;
    let with_verify: Vec<&str> = ledger
        .iter()
        .filter(|d| d.verify_sql.is_some())
        .map(|d| d.name.as_str())
        .collect();
    crate::integrity::require_intact(target, &with_verify)?;
    let mut changes = Vec::new();
    for deployed in ledger.iter().filter(|d| d.state == ChangeState::Deployed) {
        let Some(sql) = deployed.verify_sql.as_deref() else {
            changes.push(VerifyOutcome {
                change: deployed.name.clone(),
                result: "no-verify",
                error: None,
                at: None,
            });
            continue;
        };
        let script = Script::from_ledger(&deployed.name, Phase::Verify, sql);
        target.engine.begin(&target.limits.clone())?;
        let mut failure = None;
        for index in 0..script.len() {
            match target.engine.execute(script.sql(index)) {
                Ok(()) => {}
                Err(EngineError::Sql(error)) => {
                    failure = Some((
                        error.message.clone(),
                        script.failure_location(index, &error).display_short(),
                    ));
                    break;
                }
                Err(other) => return Err(other.into()),
            }
        }
        target.engine.rollback()?;
        changes.push(match failure {
            None => VerifyOutcome {
                change: deployed.name.clone(),
                result: "passed",
                error: None,
                at: None,
            },
            Some((error, at)) => VerifyOutcome {
                change: deployed.name.clone(),
                result: "failed",
                error: Some(error),
                at: Some(at),
            },
        });
    }
    Ok(VerifyReport {
        target: target.name.clone(),
        changes,
    })
}
