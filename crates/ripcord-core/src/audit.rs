//! The audit chain: append-only events, each hashed together with its predecessor's
//! hash (blake3 over a pinned, length-prefixed encoding), so that an edited, removed or
//! reordered event breaks the chain at a point `audit verify` can name.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Version tag hashed into every event; a new encoding needs a new tag.
const ENCODING: &[u8] = b"ripcord-audit-v1";

/// One event of the chain, as stored in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When, as canonical RFC 3339 UTC with microseconds (what is hashed).
    pub at: String,
    /// Who ran the command.
    pub actor: String,
    /// Where it ran.
    pub host: String,
    /// What happened: `deploy_completed`, `revert_completed`, `rehash`, …
    pub kind: String,
    /// The target's name.
    pub target: String,
    /// The change concerned, if any.
    pub change: Option<String>,
    /// Details as canonical JSON (sorted keys, no whitespace).
    pub detail: String,
    /// Hash of the previous event ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// Hash of this event.
    pub hash: String,
    /// `ed25519:<key id>:<base64 signature of the hash>`, when the event was appended
    /// with `[audit] signing_key_env` set. Not part of the hash: it vouches for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What an operation wants recorded; [`AuditEvent::seal`] chains it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Event kind.
    pub kind: &'static str,
    /// The change concerned, if any.
    pub change: Option<String>,
    /// Details.
    pub detail: serde_json::Value,
}

/// Who and where, stamped on every event.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// The acting user.
    pub actor: String,
    /// The host.
    pub host: String,
    /// The target's name.
    pub target: String,
    /// The time.
    pub at: DateTime<Utc>,
}

/// Canonical text of a time: RFC 3339, UTC, microseconds.
pub fn canonical_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl AuditEvent {
    /// Chain `event` after the event `(seq, hash)` (or start the chain).
    pub fn seal(previous: Option<(i64, &str)>, stamp: &Stamp, event: NewEvent) -> AuditEvent {
        let (seq, prev_hash) = match previous {
            Some((seq, hash)) => (seq + 1, hash.to_string()),
            None => (1, GENESIS_HASH.to_string()),
        };
        let mut sealed = AuditEvent {
            seq,
            at: canonical_time(stamp.at),
            actor: stamp.actor.clone(),
            host: stamp.host.clone(),
            kind: event.kind.to_string(),
            target: stamp.target.clone(),
            change: event.change,
            // serde_json's map is ordered by key, so this is canonical.
            detail: event.detail.to_string(),
            prev_hash,
            hash: String::new(),
            signature: None,
        };
        sealed.hash = sealed.compute_hash();
        sealed
    }

    /// The hash this event's content and `prev_hash` call for.
    pub fn compute_hash(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(ENCODING);
        hasher.update(&self.seq.to_le_bytes());
        let fields: [Option<&str>; 8] = [
            Some(&self.at),
            Some(&self.actor),
            Some(&self.host),
            Some(&self.kind),
            Some(&self.target),
            self.change.as_deref(),
            Some(&self.detail),
            Some(&self.prev_hash),
        ];
        for field in fields {
            crate::checksum::hash_field(&mut hasher, field);
        }
        hasher.finalize().to_hex().to_string()
    }

    /// The details parsed back into JSON.
    pub fn detail_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.detail).unwrap_or(serde_json::Value::Null)
    }
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ChainBreak {
    /// Sequence numbers jump: events were removed.
    #[error("events are missing before seq {found} (expected seq {expected})")]
    Gap {
        /// The seq that should come next.
        expected: i64,
        /// The seq found instead.
        found: i64,
    },
    /// An event's content no longer matches its hash: it was edited.
    #[error("event {seq} was altered: its content no longer matches its hash")]
    Altered {
        /// The edited event.
        seq: i64,
    },
    /// An event does not point at its predecessor's hash: the chain was rewritten.
    #[error("event {seq} does not follow event {}: its prev_hash is not that event's hash", seq - 1)]
    Unlinked {
        /// The event whose link is wrong.
        seq: i64,
    },
}

impl ChainBreak {
    /// The seq of the first event that cannot be trusted.
    pub fn seq(&self) -> i64 {
        match self {
            ChainBreak::Gap { found, .. } => *found,
            ChainBreak::Altered { seq } | ChainBreak::Unlinked { seq } => *seq,
        }
    }
}

/// Check a whole chain, in seq order; the number of events on success.
pub fn verify_chain(events: &[AuditEvent]) -> Result<usize, ChainBreak> {
    let mut prev_hash = GENESIS_HASH.to_string();
    for (expected_seq, event) in (1..).zip(events) {
        if event.seq != expected_seq {
            return Err(ChainBreak::Gap {
                expected: expected_seq,
                found: event.seq,
            });
        }
        if event.prev_hash != prev_hash {
            return Err(ChainBreak::Unlinked { seq: event.seq });
        }
        if event.compute_hash() != event.hash {
            return Err(ChainBreak::Altered { seq: event.seq });
        }
        prev_hash = event.hash.clone();
    }
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: usize) -> Vec<AuditEvent> {
        let stamp = Stamp {
            actor: "alice".into(),
            host: "ops-1".into(),
            target: "dev".into(),
            at: DateTime::parse_from_rfc3339("2026-11-24T10:00:00.123456Z")
                .unwrap()
                .to_utc(),
        };
        let mut events: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let previous = events.last().map(|e| (e.seq, e.hash.as_str()));
            let event = AuditEvent::seal(
                previous,
                &stamp,
                NewEvent {
                    kind: "deploy_completed",
                    change: Some(format!("{i:04}_c")),
                    detail: json!({"duration_ms": i, "checksum": "x"}),
                },
            );
            events.push(event);
        }
        events
    }

    #[test]
    fn an_intact_chain_verifies() {
        let events = chain(5);
        assert_eq!(verify_chain(&events), Ok(5));
        assert_eq!(events[0].prev_hash, GENESIS_HASH);
        assert_eq!(events[0].at, "2026-11-24T10:00:00.123456Z");
        assert_eq!(events[0].detail, r#"{"checksum":"x","duration_ms":0}"#);
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut events = chain(5);
        events[2].actor = "mallory".into();
        assert_eq!(verify_chain(&events), Err(ChainBreak::Altered { seq: 3 }));
    }

    #[test]
    fn a_rehashed_edit_breaks_the_next_link() {
        let mut events = chain(5);
        events[2].detail = "{}".into();
        events[2].hash = events[2].compute_hash();
        assert_eq!(verify_chain(&events), Err(ChainBreak::Unlinked { seq: 4 }));
    }

    #[test]
    fn a_removed_event_is_a_gap() {
        let mut events = chain(5);
        events.remove(1);
        assert_eq!(
            verify_chain(&events),
            Err(ChainBreak::Gap {
                expected: 2,
                found: 3
            })
        );
    }

    #[test]
    fn the_encoding_is_pinned() {
        insta::assert_snapshot!(chain(1)[0].hash);
    }
}
