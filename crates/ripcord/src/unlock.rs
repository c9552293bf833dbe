//! `ripcord unlock`: clear a lock whose holder is gone. A holder that is a process of
//! this host that no longer runs is cleared without asking; one on another host (or in
//! another pid namespace, which looks the same) only with `--force`, since ripcord
//! cannot tell whether it still runs. On PostgreSQL breaking the lock ends the server
//! session that holds it, which rolls back whatever that session had not committed.

use ripcord_core::LockHolder;
use ripcord_core::audit::NewEvent;
use serde::Serialize;
use serde_json::json;

use crate::error::OpError;
use crate::target::Target;

/// What `unlock` found and did.
#[derive(Debug, Clone, Serialize)]
pub struct UnlockReport {
    /// The target.
    pub target: String,
    /// The holder the lock named.
    pub holder: Option<LockHolder>,
    /// `free` (nothing held it), `released`, or `refused` (a holder that may still run;
    /// `--force` breaks it).
    pub action: &'static str,
}

/// Clear the target's lock if its holder is gone (or with `force`, in any case).
pub fn unlock(target: &mut Target, force: bool) -> Result<UnlockReport, OpError> {
    let holder = target.engine.lock_record()?;
    let name = target.name.clone();
    let report = |holder, action| UnlockReport {
        target: name.clone(),
        holder,
        action,
    };
    let Some(held) = holder else {
        return Ok(report(None, "free"));
    };
    let gone = held.host == target.identity.host && !ripcord_core::engine::process_runs(held.pid);
    if !gone && !force {
        return Ok(report(Some(held), "refused"));
    }
    let broken = target.engine.break_lock()?;
    if target.engine.ledger_version()?.is_some() {
        crate::run::append_event_in_own_tx(
            target,
            NewEvent {
                kind: "lock_broken",
                change: None,
                detail: json!({
                    "holder": broken.as_ref().map(|h| h.to_string()),
                    "forced": force && !gone,
                }),
            },
        )?;
    }
    Ok(report(broken.or(Some(held)), "released"))
}
