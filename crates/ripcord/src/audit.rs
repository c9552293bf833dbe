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

/// `ed25519:<key id>:<base64 signature>` of an event's hash.
pub(crate) fn sign(key: &ed25519_dalek::SigningKey, hash: &str) -> String {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let signature = key.sign(hash.as_bytes());
    format!(
        "ed25519:{}:{}",
        crate::checkpoint::key_id(&key.verifying_key()),
        base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
    )
}

/// The signing key of `[audit] signing_key_env` (base64, from `ripcord audit keygen`).
pub fn signing_key(private_b64: &str) -> Result<ed25519_dalek::SigningKey, OpError> {
    crate::checkpoint::signing_key(private_b64)
}

/// Record that signing moves to `new_public_b64`: an event signed with the current key
/// (the target's signer), naming both keys.
pub fn record_rotation(target: &mut Target, new_public_b64: &str) -> Result<AuditEvent, OpError> {
    let new_key = crate::checkpoint::verifying_key(new_public_b64)?;
    let Some(current) = &target.signer else {
        return Err(OpError::Engine(ripcord_core::EngineError::Invalid {
            reason: "a key rotation is signed with the current key, and none is set".into(),
            hint: Some(
                "set the variable `[audit] signing_key_env` names to the current private key"
                    .into(),
            ),
        }));
    };
    let old_id = crate::checkpoint::key_id(&current.verifying_key());
    let new_id = crate::checkpoint::key_id(&new_key);
    Ok(crate::run::append_event_in_own_tx(
        target,
        ripcord_core::audit::NewEvent {
            kind: "signing_key_rotated",
            change: None,
            detail: serde_json::json!({
                "old_key": old_id,
                "new_key": new_id,
                "new_public_key": new_public_b64.trim(),
            }),
        },
    )?)
}

/// What the signatures of a chain say, checked against the trusted public keys.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignatureReport {
    /// Events carrying a signature.
    pub signed: usize,
    /// Unsigned events before the first signed one (appended before signing began).
    pub unsigned_before_signing: usize,
    /// Whether signatures were checked (a public key was given).
    pub checked: bool,
    /// The first event whose signature is missing (after signing began), does not
    /// verify, or names a key that is not trusted: `(seq, why)`.
    pub problem: Option<(i64, String)>,
}

/// Check every event's signature against `trusted` (base64 ed25519 public keys:
/// `[audit] public_key` and `previous_public_keys`). Once one event is signed, every
/// later one must be: a stripped signature is as suspect as a bad one.
pub fn check_signatures(
    events: &[AuditEvent],
    trusted: &[String],
) -> Result<SignatureReport, OpError> {
    use base64::Engine as _;
    use ed25519_dalek::Verifier as _;
    let mut keys = std::collections::HashMap::new();
    for public in trusted {
        let key = crate::checkpoint::verifying_key(public)?;
        keys.insert(crate::checkpoint::key_id(&key), key);
    }
    let mut report = SignatureReport {
        checked: !keys.is_empty(),
        ..Default::default()
    };
    for event in events {
        let claimed = serde_json::from_str::<serde_json::Value>(&event.detail)
            .ok()
            .and_then(|d| d["signed_by"].as_str().map(String::from));
        let Some(signature) = &event.signature else {
            if let Some(key_id) = claimed {
                if report.problem.is_none() {
                    report.problem = Some((
                        event.seq,
                        format!("it was signed by {key_id}, and the signature is gone"),
                    ));
                }
                continue;
            }
            if report.signed == 0 {
                report.unsigned_before_signing += 1;
            } else if report.checked && report.problem.is_none() {
                report.problem = Some((
                    event.seq,
                    "unsigned, after signed events (a signature removed, or a writer without the signing key)".into(),
                ));
            }
            continue;
        };
        report.signed += 1;
        if !report.checked || report.problem.is_some() {
            continue;
        }
        let mut parts = signature.splitn(3, ':');
        let (Some("ed25519"), Some(key_id), Some(encoded)) =
            (parts.next(), parts.next(), parts.next())
        else {
            report.problem = Some((event.seq, "the signature is malformed".into()));
            continue;
        };
        let Some(key) = keys.get(key_id) else {
            report.problem = Some((
                event.seq,
                format!("signed by {key_id}, which is not a trusted key"),
            ));
            continue;
        };
        let valid = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .map(|bytes| ed25519_dalek::Signature::from_bytes(&bytes))
            .is_some_and(|sig| key.verify(event.hash.as_bytes(), &sig).is_ok());
        if !valid {
            report.problem = Some((
                event.seq,
                format!("its signature by {key_id} does not verify"),
            ));
        }
    }
    Ok(report)
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
    /// The events' signatures.
    pub signatures: SignatureReport,
}

impl ChainReport {
    /// The chain is intact and the ledger matches it.
    pub fn intact(&self) -> bool {
        self.broken.is_none()
            && self.ledger.problems.is_empty()
            && self.signatures.problem.is_none()
    }
}

/// Recompute the chain and name its first broken link; check every ledger row against
/// what the chain recorded for it, and every signature against `trusted` public keys.
pub fn verify(target: &mut Target, trusted: &[String]) -> Result<ChainReport, OpError> {
    let events = events(target)?;
    let broken = verify_chain(&events).err();
    let rows = target.engine.changes()?;
    Ok(ChainReport {
        target: target.name.clone(),
        events: events.len(),
        head: events.last().map(|e| e.hash.clone()),
        broken,
        ledger: crate::integrity::check(&rows, &events),
        signatures: check_signatures(&events, trusted)?,
    })
}
