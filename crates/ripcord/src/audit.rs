//! Reading the audit chain: the history log and chain verification.

use ripcord_core::audit::{AuditEvent, ChainBreak, verify_chain};
use serde::Serialize;

use crate::error::OpError;
use crate::target::Target;

/// Event kinds that make up the deploy/revert history shown by `ripcord log`.
pub const HISTORY_KINDS: &[&str] = &[
    "deploy_started",
    "deploy_completed",
    "deploy_failed",
    "revert_completed",
    "revert_failed",
    "rehash",
];

/// All events of the target's chain (empty without a ledger).
pub fn events(target: &mut Target) -> Result<Vec<AuditEvent>, OpError> {
    Ok(target.engine.events()?)
}

/// The deploy/revert history.
pub fn history(target: &mut Target) -> Result<Vec<AuditEvent>, OpError> {
    Ok(events(target)?
        .into_iter()
        .filter(|e| HISTORY_KINDS.contains(&e.kind.as_str()))
        .collect())
}

/// The verdict on a chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// Target name.
    pub target: String,
    /// Events checked.
    pub events: usize,
    /// Hash of the last event (an anchor to keep elsewhere).
    pub head: Option<String>,
    /// The first broken link, if any.
    pub broken: Option<ChainBreak>,
    /// The ledger's rows against what the chain recorded.
    pub ledger: crate::integrity::LedgerCheck,
}

impl ChainReport {
    /// The chain is intact and the ledger matches it.
    pub fn intact(&self) -> bool {
        self.broken.is_none() && self.ledger.problems.is_empty()
    }
}

/// Recompute the chain and name its first broken link; check every ledger row against
/// what the chain recorded for it.
pub fn verify(target: &mut Target) -> Result<ChainReport, OpError> {
    let events = events(target)?;
    let broken = verify_chain(&events).err();
    let rows = target.engine.changes()?;
    Ok(ChainReport {
        target: target.name.clone(),
        events: events.len(),
        head: events.last().map(|e| e.hash.clone()),
        broken,
        ledger: crate::integrity::check(&rows, &events),
    })
}
