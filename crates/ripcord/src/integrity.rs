//! The ledger checked against the audit chain. Every time ripcord writes a change's
//! ledger row it records the row's definition checksum in the event of the same
//! transaction (`detail.ledger`, or `detail.ledger_rows` for several rows); a revert
//! records that the row is gone. Replaying the chain therefore says what every row must
//! be, and a row edited, added or removed behind ripcord's back shows up — before
//! `revert`, `verify` or `drill` run its SQL, and in `ripcord audit verify`.
//!
//! Rows whose last event predates ledger version 4 carry no checksum; the first locking
//! command of a newer ripcord seals them (`ledger_sealed`) as they are.

use std::collections::BTreeMap;

use ripcord_core::DeployedChange;
use ripcord_core::audit::{AuditEvent, NewEvent};
use serde::Serialize;

use crate::error::OpError;
use crate::target::Target;

/// What the chain says about one change.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    /// Deployed with this definition (by event `seq`).
    Definition { seq: i64, checksum: String },
    /// Deployed by event `seq`, written before rows carried checksums.
    Unsealed { seq: i64 },
    /// Reverted by event `seq`: no row.
    Gone { seq: i64 },
}

/// Events that write a change's row.
const WRITES_ROW: &[&str] = &["deploy_started", "deploy_completed", "rehash", "baselined"];

fn expectations(events: &[AuditEvent]) -> BTreeMap<String, Expected> {
    let mut expected = BTreeMap::new();
    for event in events {
        let detail = event.detail_json();
        if let Some(rows) = detail.get("ledger_rows").and_then(|r| r.as_object()) {
            for (name, checksum) in rows {
                if let Some(checksum) = checksum.as_str() {
                    expected.insert(
                        name.clone(),
                        Expected::Definition {
                            seq: event.seq,
                            checksum: checksum.to_string(),
                        },
                    );
                }
            }
            continue;
        }
        let Some(change) = &event.change else {
            continue;
        };
        if event.kind == "revert_completed" {
            expected.insert(change.clone(), Expected::Gone { seq: event.seq });
        } else if WRITES_ROW.contains(&event.kind.as_str()) {
            let entry = match detail.get("ledger").and_then(|l| l.as_str()) {
                Some(checksum) => Expected::Definition {
                    seq: event.seq,
                    checksum: checksum.to_string(),
                },
                None => Expected::Unsealed { seq: event.seq },
            };
            expected.insert(change.clone(), entry);
        }
    }
    expected
}

/// A ledger row that is not what the audit chain recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum LedgerProblem {
    /// The chain is empty while the ledger holds changes: events were removed.
    #[error("the audit chain is empty but the ledger holds {rows} deployed changes")]
    EmptyChain {
        /// Ledger rows.
        rows: usize,
    },
    /// The row differs from what the chain recorded for it.
    #[error(
        "the ledger row of {change} was altered: it no longer matches what event {seq} recorded (its SQL, transaction mode, irreversible reason or project changed outside ripcord)"
    )]
    Altered {
        /// The change.
        change: String,
        /// The event that recorded the row.
        seq: i64,
    },
    /// No event recorded this row.
    #[error(
        "the ledger row of {change} was not written by ripcord: no event of the audit chain deployed it"
    )]
    Unrecorded {
        /// The change.
        change: String,
    },
    /// The chain says the change was reverted, yet its row is there.
    #[error("the ledger row of {change} is back although event {seq} recorded its revert")]
    Reappeared {
        /// The change.
        change: String,
        /// The revert event.
        seq: i64,
    },
    /// The chain says the change is deployed, yet its row is gone.
    #[error("{change} is deployed according to event {seq}, but its ledger row is gone")]
    Missing {
        /// The change.
        change: String,
        /// The event that recorded the row.
        seq: i64,
    },
}

impl LedgerProblem {
    /// The change concerned, if one.
    pub fn change(&self) -> Option<&str> {
        match self {
            LedgerProblem::EmptyChain { .. } => None,
            LedgerProblem::Altered { change, .. }
            | LedgerProblem::Unrecorded { change }
            | LedgerProblem::Reappeared { change, .. }
            | LedgerProblem::Missing { change, .. } => Some(change),
        }
    }
}

/// The ledger checked against the chain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LedgerCheck {
    /// Ledger rows.
    pub rows: usize,
    /// Rows whose definition matched a checksum of the chain.
    pub checked: usize,
    /// Rows last written before rows carried checksums (not yet sealed).
    pub unsealed: Vec<String>,
    /// What does not match.
    pub problems: Vec<LedgerProblem>,
}

/// Compare `rows` with what `events` recorded.
pub fn check(rows: &[DeployedChange], events: &[AuditEvent]) -> LedgerCheck {
    let mut report = LedgerCheck {
        rows: rows.len(),
        ..LedgerCheck::default()
    };
    if events.is_empty() {
        if !rows.is_empty() {
            report
                .problems
                .push(LedgerProblem::EmptyChain { rows: rows.len() });
        }
        return report;
    }
    let expected = expectations(events);
    for row in rows {
        match expected.get(&row.name) {
            None => report.problems.push(LedgerProblem::Unrecorded {
                change: row.name.clone(),
            }),
            Some(Expected::Gone { seq }) => report.problems.push(LedgerProblem::Reappeared {
                change: row.name.clone(),
                seq: *seq,
            }),
            Some(Expected::Unsealed { .. }) => report.unsealed.push(row.name.clone()),
            Some(Expected::Definition { seq, checksum }) => {
                if row.definition_checksum() == *checksum {
                    report.checked += 1;
                } else {
                    report.problems.push(LedgerProblem::Altered {
                        change: row.name.clone(),
                        seq: *seq,
                    });
                }
            }
        }
    }
    for (change, expectation) in &expected {
        let seq = match expectation {
            Expected::Definition { seq, .. } | Expected::Unsealed { seq } => *seq,
            Expected::Gone { .. } => continue,
        };
        if !rows.iter().any(|r| r.name == *change) {
            report.problems.push(LedgerProblem::Missing {
                change: change.clone(),
                seq,
            });
        }
    }
    report
}

/// Check the target's ledger against its chain.
pub fn check_target(target: &mut Target) -> Result<LedgerCheck, OpError> {
    let rows = target.engine.changes()?;
    let events = target.engine.events()?;
    Ok(check(&rows, &events))
}

/// Refuse (exit 4) when any of `changes` has a ledger row that the chain does not vouch
/// for: its SQL is about to run.
pub(crate) fn require_intact(target: &mut Target, changes: &[&str]) -> Result<(), OpError> {
    if changes.is_empty() {
        return Ok(());
    }
    let report = check_target(target)?;
    let problem = report.problems.into_iter().find(|p| match p {
        LedgerProblem::EmptyChain { .. } => true,
        other => other.change().is_some_and(|c| changes.contains(&c)),
    });
    match problem {
        Some(problem) => Err(OpError::LedgerTampered {
            change: problem.change().map(String::from),
            problem: problem.to_string(),
        }),
        None => Ok(()),
    }
}

/// Record the definition checksum of rows last written by an older ripcord, so that
/// from now on they are checked too (inside the caller's lock).
pub(crate) fn seal_old_rows(
    target: &mut Target,
    rows: &[DeployedChange],
    events: &[AuditEvent],
) -> Result<(), OpError> {
    let report = check(rows, events);
    if report.unsealed.is_empty() {
        return Ok(());
    }
    crate::failpoint::hit("before_seal");
    let mut definitions = serde_json::Map::new();
    for row in rows.iter().filter(|r| report.unsealed.contains(&r.name)) {
        definitions.insert(row.name.clone(), row.definition_checksum().into());
    }
    crate::run::append_event_in_own_tx(
        target,
        NewEvent {
            kind: "ledger_sealed",
            change: None,
            detail: serde_json::json!({
                "ledger_rows": definitions,
                "reason": "rows written by a ripcord older than ledger version 4, recorded as found",
            }),
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_core::audit::Stamp;
    use ripcord_core::{ChangeState, TransactionMode};
    use serde_json::json;

    fn row(name: &str, revert: &str) -> DeployedChange {
        DeployedChange {
            name: name.into(),
            deploy_seq: 1,
            checksum: "b3v1:x".into(),
            deploy_sql: "CREATE TABLE t (a int);".into(),
            revert_sql: Some(revert.into()),
            verify_sql: None,
            transaction: TransactionMode::PerChange,
            irreversible: None,
            requires: vec![],
            state: ChangeState::Deployed,
            statements_done: 1,
            statements_total: 1,
            deployed_at: chrono::Utc::now(),
            deployed_by: "a".into(),
            deployed_host: "h".into(),
            duration_ms: 1,
            file: "f".into(),
            project: Some("p".into()),
        }
    }

    fn chain(events: Vec<(&'static str, Option<&str>, serde_json::Value)>) -> Vec<AuditEvent> {
        let stamp = Stamp {
            actor: "a".into(),
            host: "h".into(),
            target: "t".into(),
            at: chrono::Utc::now(),
        };
        let mut out: Vec<AuditEvent> = Vec::new();
        for (kind, change, detail) in events {
            let previous = out.last().map(|e| (e.seq, e.hash.as_str()));
            out.push(AuditEvent::seal(
                previous,
                &stamp,
                NewEvent {
                    kind,
                    change: change.map(String::from),
                    detail,
                },
            ));
        }
        out
    }

    #[test]
    fn rows_match_the_checksums_their_events_recorded() {
        let good = row("0001_a", "DROP TABLE t;");
        let events = chain(vec![
            ("ledger_created", None, json!({})),
            (
                "deploy_completed",
                Some("0001_a"),
                json!({ "ledger": good.definition_checksum() }),
            ),
        ]);
        let report = check(std::slice::from_ref(&good), &events);
        assert_eq!(report.checked, 1);
        assert!(report.problems.is_empty());

        let tampered = row("0001_a", "DROP TABLE applied;");
        let report = check(&[tampered], &events);
        assert_eq!(
            report.problems,
            vec![LedgerProblem::Altered {
                change: "0001_a".into(),
                seq: 2
            }]
        );
    }

    #[test]
    fn rows_without_events_and_events_without_rows_are_problems() {
        let events = chain(vec![
            ("ledger_created", None, json!({})),
            (
                "deploy_completed",
                Some("0001_a"),
                json!({ "ledger": "l1:x" }),
            ),
            (
                "deploy_completed",
                Some("0002_b"),
                json!({ "ledger": "l1:y" }),
            ),
            ("revert_completed", Some("0002_b"), json!({})),
        ]);
        let report = check(&[row("0002_b", "x"), row("0003_c", "x")], &events);
        assert_eq!(
            report.problems,
            vec![
                LedgerProblem::Reappeared {
                    change: "0002_b".into(),
                    seq: 4
                },
                LedgerProblem::Unrecorded {
                    change: "0003_c".into()
                },
                LedgerProblem::Missing {
                    change: "0001_a".into(),
                    seq: 2
                },
            ]
        );
    }

    #[test]
    fn an_empty_chain_with_rows_is_a_problem_and_old_rows_are_unsealed() {
        let report = check(&[row("0001_a", "x")], &[]);
        assert_eq!(report.problems, vec![LedgerProblem::EmptyChain { rows: 1 }]);
        assert!(check(&[], &[]).problems.is_empty());

        let old = row("0001_a", "x");
        let events = chain(vec![("deploy_completed", Some("0001_a"), json!({}))]);
        let report = check(std::slice::from_ref(&old), &events);
        assert_eq!(report.unsealed, vec!["0001_a".to_string()]);
        assert!(report.problems.is_empty());
        let mut sealed_events = events.clone();
        let sealed = chain(vec![
            ("deploy_completed", Some("0001_a"), json!({})),
            (
                "ledger_sealed",
                None,
                json!({ "ledger_rows": { "0001_a": old.definition_checksum() } }),
            ),
        ]);
        sealed_events.clone_from(&sealed);
        let report = check(&[old], &sealed_events);
        assert_eq!(report.checked, 1);
        assert!(report.unsealed.is_empty());
    }
}
