//! Feature flags (DESIGN §3): stored in each target's ledger, every change recorded in
//! the audit chain, read by applications with one SELECT. A change whose header says
//! `flags: a, b` has those flags switched off before its revert runs.

use ripcord_core::EngineError;
use ripcord_core::audit::NewEvent;
use ripcord_core::fleet::Flag;
use serde_json::json;

use crate::error::OpError;
use crate::run::{append_event, in_transaction, with_lock};
use crate::target::Target;

/// The SQL an application runs to read a flag, per engine.
pub fn read_sql(kind: ripcord_core::EngineKind, name: &str) -> String {
    let table = match kind {
        ripcord_core::EngineKind::Postgres => "ripcord.flags",
        ripcord_core::EngineKind::Sqlite => "ripcord_flags",
    };
    format!(
        "SELECT enabled FROM {table} WHERE name = '{}'",
        name.replace('\'', "''")
    )
}

/// A flag name: letters, digits, `_`, `-`, `.`; what the change header can name.
pub fn validate_name(name: &str) -> Result<(), OpError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(OpError::Engine(EngineError::Invalid {
            reason: format!("`{name}` is not a flag name"),
            hint: Some(
                "flag names use letters, digits, `_`, `-` and `.` (at most 100 characters)".into(),
            ),
        }))
    }
}

fn no_fleet() -> EngineError {
    EngineError::Invalid {
        reason: "this engine keeps no flags".into(),
        hint: None,
    }
}

/// Every flag of the target (none before the first is set).
pub fn list(target: &mut Target) -> Result<Vec<Flag>, OpError> {
    let mut fleet = target.engine.fleet().ok_or_else(no_fleet)?;
    Ok(fleet.flags()?)
}

/// One flag; `None` when it was never set (applications should treat that as off).
pub fn get(target: &mut Target, name: &str) -> Result<Option<Flag>, OpError> {
    validate_name(name)?;
    Ok(list(target)?.into_iter().find(|f| f.name == name))
}

/// Set a flag, recording who and why in the audit chain (`flag_set`); returns whether
/// the value changed.
pub fn set(target: &mut Target, name: &str, enabled: bool, why: &str) -> Result<bool, OpError> {
    validate_name(name)?;
    with_lock(target, "flag set", |target| {
        set_locked(target, name, enabled, why)
    })
}

/// [`set`] inside the caller's lock.
pub(crate) fn set_locked(
    target: &mut Target,
    name: &str,
    enabled: bool,
    why: &str,
) -> Result<bool, OpError> {
    let before = list(target)?
        .into_iter()
        .find(|f| f.name == name)
        .map(|f| f.enabled);
    let actor = target.identity.actor.clone();
    in_transaction(target, |target| {
        target
            .engine
            .fleet()
            .ok_or_else(no_fleet)?
            .set_flag(name, enabled, &actor)?;
        append_event(
            target,
            NewEvent {
                kind: "flag_set",
                change: None,
                detail: json!({
                    "flag": name,
                    "enabled": enabled,
                    "was": before,
                    "why": why,
                }),
            },
        )?;
        Ok(())
    })?;
    Ok(before != Some(enabled))
}

/// Before a revert of `change`: switch its flags off (each in the chain); the flags
/// switched.
pub(crate) fn switch_off_for_revert(
    target: &mut Target,
    change: &str,
    flags: &[String],
) -> Result<Vec<String>, OpError> {
    let mut switched = Vec::new();
    for flag in flags {
        set_locked(
            target,
            flag,
            false,
            &format!("before the revert of {change}"),
        )?;
        switched.push(flag.clone());
    }
    Ok(switched)
}
