//! Checkpoints of the audit chain kept outside the database: the chain's head
//! (sequence and hash) written as a small signed note, in the style of transparency
//! logs. The chain alone detects an edited or reordered event, but not a deleted tail
//! or a history rewritten from some point on and re-hashed; a checkpoint kept elsewhere
//! (a file, a ticket, a webhook's log) does: `audit verify --checkpoint` finds the
//! checkpoint's event in the chain with the same hash, or says what happened.
//!
//! Keys are ed25519 (`ripcord audit keygen`), base64; the private key is read from an
//! environment variable (`[audit] signing_key_env`), never from a file of the project.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::Serialize;

use crate::error::OpError;
use crate::target::Target;

const TITLE: &str = "ripcord audit checkpoint";

/// An input error (exit 2 at the command line).
fn invalid(reason: String, hint: Option<String>) -> OpError {
    OpError::Engine(ripcord_core::EngineError::Invalid { reason, hint })
}

/// A new key pair, base64.
#[derive(Debug, Clone, Serialize)]
pub struct KeyPair {
    /// Keep secret: put it in the environment variable `[audit] signing_key_env` names.
    pub private_key: String,
    /// For `[audit] public_key`, where checkpoints are verified.
    pub public_key: String,
}

/// Make a new ed25519 key pair.
pub fn keygen() -> Result<KeyPair, OpError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| invalid(format!("no randomness for a key: {e}"), None))?;
    let key = SigningKey::from_bytes(&seed);
    Ok(KeyPair {
        private_key: B64.encode(key.to_bytes()),
        public_key: B64.encode(key.verifying_key().to_bytes()),
    })
}

/// The head of a target's chain at a moment, maybe signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// The target's name.
    pub target: String,
    /// The last event's sequence number.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
    /// When the checkpoint was taken.
    pub at: DateTime<Utc>,
    /// `(key id, base64 signature)` over the note's body.
    pub signature: Option<(String, String)>,
}

impl Checkpoint {
    fn body(&self) -> String {
        format!(
            "{TITLE}\n{}\n{}\n{}\n{}\n",
            self.target,
            self.seq,
            self.hash,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    }

    /// The note: its body, then a blank line and the signature line when signed.
    pub fn render(&self) -> String {
        let mut text = self.body();
        if let Some((key, signature)) = &self.signature {
            text.push_str(&format!("\n— {key} {signature}\n"));
        }
        text
    }

    /// Read a note written by [`Checkpoint::render`].
    pub fn parse(text: &str) -> Result<Checkpoint, OpError> {
        let bad = |why: &str| {
            invalid(
                format!("not a ripcord checkpoint: {why}"),
                Some("`ripcord audit checkpoint --out FILE` writes one".into()),
            )
        };
        let text = text.replace("\r\n", "\n");
        let (body, rest) = text.split_once("\n\n").unwrap_or((text.trim_end(), ""));
        let lines: Vec<&str> = body.lines().collect();
        let [title, target, seq, hash, at] = lines.as_slice() else {
            return Err(bad(
                "it needs five lines: title, target, sequence, hash, time",
            ));
        };
        if *title != TITLE {
            return Err(bad("its first line is not `ripcord audit checkpoint`"));
        }
        let seq = seq
            .parse()
            .map_err(|_| bad("the sequence is not a number"))?;
        let at = DateTime::parse_from_rfc3339(at)
            .map_err(|_| bad("the time is not RFC 3339"))?
            .with_timezone(&Utc);
        let signature = match rest.trim() {
            "" => None,
            line => {
                let mut words = line.trim_start_matches('—').split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some(key), Some(signature), None) => {
                        Some((key.to_string(), signature.to_string()))
                    }
                    _ => return Err(bad("the signature line is not `— KEY SIGNATURE`")),
                }
            }
        };
        Ok(Checkpoint {
            target: target.to_string(),
            seq,
            hash: hash.to_string(),
            at,
            signature,
        })
    }
}

pub(crate) fn signing_key(private_b64: &str) -> Result<SigningKey, OpError> {
    let bytes: [u8; 32] = B64
        .decode(private_b64.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            invalid(
                "the signing key is not a base64 ed25519 private key".into(),
                Some("`ripcord audit keygen` makes one".into()),
            )
        })?;
    Ok(SigningKey::from_bytes(&bytes))
}

pub(crate) fn verifying_key(public_b64: &str) -> Result<VerifyingKey, OpError> {
    let bad = || {
        invalid(
            "[audit] public_key is not a base64 ed25519 public key".into(),
            Some("copy `public_key` from `ripcord audit keygen --json`".into()),
        )
    };
    let bytes: [u8; 32] = B64
        .decode(public_b64.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
}

/// A short name for a public key: `ripcord-` and 8 hex digits of its hash.
pub(crate) fn key_id(key: &VerifyingKey) -> String {
    let hash = blake3::hash(&key.to_bytes());
    format!("ripcord-{}", &hash.to_hex()[..8])
}

/// The checkpoint of `target`'s chain now, signed with `private_b64` when given.
pub fn take(target: &mut Target, private_b64: Option<&str>) -> Result<Checkpoint, OpError> {
    let events = crate::audit::events(target)?;
    let Some(last) = events.last() else {
        return Err(invalid(
            format!("{} has no audit chain yet", target.name),
            Some("deploy something first".into()),
        ));
    };
    let mut checkpoint = Checkpoint {
        target: target.name.clone(),
        seq: last.seq,
        hash: last.hash.clone(),
        at: Utc::now(),
        signature: None,
    };
    if let Some(private) = private_b64 {
        let key = signing_key(private)?;
        let signature = key.sign(checkpoint.body().as_bytes());
        checkpoint.signature = Some((
            key_id(&key.verifying_key()),
            B64.encode(signature.to_bytes()),
        ));
    }
    Ok(checkpoint)
}

/// What checking a checkpoint against a chain found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointVerdict {
    /// `valid`, `invalid`, `unsigned`, or `unchecked` (no public key configured).
    pub signature: &'static str,
    /// `contains` (the chain has the checkpoint's event, same hash), `truncated` (it
    /// ends before it), or `rewritten` (that event's hash differs).
    pub chain: &'static str,
    /// In words.
    pub detail: String,
}

impl CheckpointVerdict {
    /// Nothing wrong: the chain contains the checkpoint, and its signature (if any, when
    /// a key is configured) is valid.
    pub fn ok(&self) -> bool {
        self.chain == "contains" && self.signature != "invalid"
    }
}

/// Check `checkpoint` against `target`'s chain (and its signature with `public_b64`).
pub fn check(
    target: &mut Target,
    checkpoint: &Checkpoint,
    public_b64: Option<&str>,
) -> Result<CheckpointVerdict, OpError> {
    let signature = match (&checkpoint.signature, public_b64) {
        (None, _) => "unsigned",
        (Some(_), None) => "unchecked",
        (Some((_, signature)), Some(public)) => {
            let key = verifying_key(public)?;
            let valid = B64
                .decode(signature)
                .ok()
                .and_then(|b| <[u8; 64]>::try_from(b).ok())
                .map(|b| ed25519_dalek::Signature::from_bytes(&b))
                .is_some_and(|s| key.verify(checkpoint.body().as_bytes(), &s).is_ok());
            if valid { "valid" } else { "invalid" }
        }
    };
    let events = crate::audit::events(target)?;
    let last = events.last().map_or(0, |e| e.seq);
    let (chain, detail) = match events.iter().find(|e| e.seq == checkpoint.seq) {
        None => (
            "truncated",
            format!(
                "the chain of {} ends at event {last}, but the checkpoint of {} saw event {}: events were deleted",
                target.name,
                checkpoint.at.format("%Y-%m-%d %H:%M:%S UTC"),
                checkpoint.seq
            ),
        ),
        Some(event) if event.hash != checkpoint.hash => (
            "rewritten",
            format!(
                "event {} of {} does not have the hash the checkpoint of {} recorded: history was rewritten",
                checkpoint.seq,
                target.name,
                checkpoint.at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        ),
        Some(_) => (
            "contains",
            format!(
                "the chain of {} holds event {} as the checkpoint recorded it ({} events after it)",
                target.name,
                checkpoint.seq,
                last - checkpoint.seq
            ),
        ),
    };
    let detail = match signature {
        "invalid" => {
            format!("{detail}; the checkpoint's signature is NOT valid for [audit] public_key")
        }
        "unchecked" => format!("{detail}; signed, but no [audit] public_key to check it"),
        _ => detail,
    };
    Ok(CheckpointVerdict {
        signature,
        chain,
        detail,
    })
}
