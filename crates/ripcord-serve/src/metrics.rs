//! `/metrics`: Prometheus text format, computed at each scrape from the targets'
//! ledgers and audit chains (so counters survive restarts of the server; they only
//! grow, as the chain does).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use ripcord_core::audit::AuditEvent;

use crate::Served;
use crate::api::ApiError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    target: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operation {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutState {
    coordinator: String,
    fleet: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rollback {
    fleet: String,
    rollout: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn durations() -> Histogram {
    // 5 ms to about 5.5 minutes.
    Histogram::new(exponential_buckets(0.005, 4.0, 9))
}

/// Every metric, filled from the ledgers.
struct Metrics {
    up: Family<TargetLabel, Gauge>,
    deploys: Family<Outcome, Counter>,
    reverts: Family<Outcome, Counter>,
    batch_reverts: Family<TargetLabel, Counter>,
    flashbacks: Family<TargetLabel, Counter>,
    snapshots: Family<TargetLabel, Counter>,
    restores: Family<TargetLabel, Counter>,
    gates: Family<Outcome, Counter>,
    duration: Family<Operation, Histogram, fn() -> Histogram>,
    pending: Family<TargetLabel, Gauge>,
    deployed: Family<TargetLabel, Gauge>,
    modified: Family<TargetLabel, Gauge>,
    chain_valid: Family<TargetLabel, Gauge>,
    in_doubt: Family<TargetLabel, Gauge>,
    in_doubt_age: Family<TargetLabel, FloatGauge>,
    rollouts: Family<RolloutState, Counter>,
    detection_to_recovery: Family<Rollback, FloatGauge>,
    check_pass: Family<TargetLabel, FloatGauge>,
    drill_coverage: Family<TargetLabel, FloatGauge>,
    snapshots_stored: Gauge,
    snapshot_bytes: Gauge,
    capture_retained_wal: Family<TargetLabel, Gauge>,
    capture_synced_rows: Family<TargetLabel, Counter>,
    capture_sync_failures: Family<TargetLabel, Counter>,
    capture_last_sync: Family<TargetLabel, FloatGauge>,
}

impl Metrics {
    fn new(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            up: Family::default(),
            deploys: Family::default(),
            reverts: Family::default(),
            batch_reverts: Family::default(),
            flashbacks: Family::default(),
            snapshots: Family::default(),
            restores: Family::default(),
            gates: Family::default(),
            duration: Family::new_with_constructor(durations),
            pending: Family::default(),
            deployed: Family::default(),
            modified: Family::default(),
            chain_valid: Family::default(),
            in_doubt: Family::default(),
            in_doubt_age: Family::default(),
            rollouts: Family::default(),
            detection_to_recovery: Family::default(),
            check_pass: Family::default(),
            drill_coverage: Family::default(),
            snapshots_stored: Gauge::default(),
            snapshot_bytes: Gauge::default(),
            capture_retained_wal: Family::default(),
            capture_synced_rows: Family::default(),
            capture_sync_failures: Family::default(),
            capture_last_sync: Family::default(),
        };
        let r = registry;
        r.register(
            "ripcord_target_up",
            "Whether the target answered this scrape (1) or not (0)",
            metrics.up.clone(),
        );
        r.register("ripcord_deploys", "Changes deployed (outcome success) or failed and rolled back (outcome failure), from the audit chain", metrics.deploys.clone());
        r.register(
            "ripcord_reverts",
            "Changes reverted (outcome success) or whose revert failed (outcome failure)",
            metrics.reverts.clone(),
        );
        r.register(
            "ripcord_batch_reverts",
            "ETL batches reverted",
            metrics.batch_reverts.clone(),
        );
        r.register(
            "ripcord_flashbacks",
            "Tables flashed back to a point in time",
            metrics.flashbacks.clone(),
        );
        r.register(
            "ripcord_snapshots",
            "Snapshots taken",
            metrics.snapshots.clone(),
        );
        r.register(
            "ripcord_restores",
            "Snapshots restored",
            metrics.restores.clone(),
        );
        r.register(
            "ripcord_check_gates",
            "Check gates run after a deploy or revert, by outcome (passed, failed, skipped)",
            metrics.gates.clone(),
        );
        r.register(
            "ripcord_operation_duration_seconds",
            "Time one change took to deploy or revert",
            metrics.duration.clone(),
        );
        r.register(
            "ripcord_pending_changes",
            "Changes of the project not deployed on the target",
            metrics.pending.clone(),
        );
        r.register(
            "ripcord_deployed_changes",
            "Changes of the project deployed on the target",
            metrics.deployed.clone(),
        );
        r.register(
            "ripcord_modified_changes",
            "Deployed changes whose file changed since",
            metrics.modified.clone(),
        );
        r.register(
            "ripcord_audit_chain_valid",
            "Whether the target's audit chain and ledger verify (1) or not (0)",
            metrics.chain_valid.clone(),
        );
        r.register(
            "ripcord_prepared_transactions_in_doubt",
            "ripcord's prepared transactions left on the target (ripcord recover finishes them)",
            metrics.in_doubt.clone(),
        );
        r.register(
            "ripcord_prepared_transaction_age_seconds",
            "Age of the oldest of ripcord's prepared transactions on the target",
            metrics.in_doubt_age.clone(),
        );
        r.register(
            "ripcord_rollouts",
            "Rollouts the target coordinated, by final or current state",
            metrics.rollouts.clone(),
        );
        r.register(
            "ripcord_check_pass_ratio",
            "Check gates passed, as a share of the gates that passed or failed on the target",
            metrics.check_pass.clone(),
        );
        r.register("ripcord_drill_coverage_ratio", "Share of the target's pending changes that a drill proved at their current checksum (1 with nothing pending)", metrics.drill_coverage.clone());
        r.register(
            "ripcord_snapshots_stored",
            "Complete snapshots in the project's store",
            metrics.snapshots_stored.clone(),
        );
        r.register(
            "ripcord_snapshot_stored_bytes",
            "Bytes the store's snapshots take",
            metrics.snapshot_bytes.clone(),
        );
        r.register(
            "ripcord_capture_retained_wal_bytes",
            "WAL the target's logical capture slot retains (logical capture mode only)",
            metrics.capture_retained_wal.clone(),
        );
        r.register(
            "ripcord_capture_synced_rows",
            "Row changes the server drained from the logical capture slot into the capture log since it started",
            metrics.capture_synced_rows.clone(),
        );
        r.register(
            "ripcord_capture_sync_failures",
            "Capture syncs that failed since the server started",
            metrics.capture_sync_failures.clone(),
        );
        r.register(
            "ripcord_capture_last_sync_timestamp_seconds",
            "When the server last drained the target's logical capture slot (Unix time)",
            metrics.capture_last_sync.clone(),
        );
        r.register("ripcord_rollback_detection_to_recovery_seconds", "For a rolled back rollout, seconds from the breach's detection to the last target reverted", metrics.detection_to_recovery.clone());
        metrics
    }
}

pub(crate) async fn metrics(State(served): State<Arc<Served>>) -> Response {
    let text = tokio::task::spawn_blocking(move || scrape(&served))
        .await
        .unwrap_or_else(|e| Err(format!("the scrape failed: {e}")));
    match text {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::Failed(e).into_response(),
    }
}

fn scrape(served: &Served) -> Result<String, String> {
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    // Every histogram appears even before its first sample.
    for operation in ["deploy", "revert"] {
        let _ = metrics.duration.get_or_create(&Operation {
            operation: operation.into(),
        });
    }
    for summary in crate::api::summaries(served) {
        let name = summary.name.clone();
        let label = TargetLabel {
            target: name.clone(),
        };
        metrics
            .up
            .get_or_create(&label)
            .set(i64::from(summary.reachable));
        if !summary.reachable {
            continue;
        }
        metrics
            .pending
            .get_or_create(&label)
            .set(summary.pending.len() as i64);
        metrics
            .deployed
            .get_or_create(&label)
            .set(summary.deployed.len() as i64);
        metrics
            .modified
            .get_or_create(&label)
            .set(summary.modified.len() as i64);
        for outcome in ["success", "failure"] {
            let labels = Outcome {
                target: name.clone(),
                outcome: outcome.into(),
            };
            let _ = metrics.deploys.get_or_create(&labels);
            let _ = metrics.reverts.get_or_create(&labels);
        }
        if let Some(intact) = summary.chain_intact {
            metrics
                .chain_valid
                .get_or_create(&label)
                .set(i64::from(intact));
        }
        // What went wrong reading one target leaves its other metrics out, not the scrape.
        if let Ok(mut target) = served.open(&name) {
            // The chain is read once for the counters and the ratios.
            if let Ok(events) = ripcord::audit::events(&mut target) {
                from_chain(&events, &name, &metrics);
                coverage(served, &events, &summary.pending, &label, &metrics);
            }
            let _ = from_two_phase(&mut target, &label, &metrics);
            let _ = from_rollouts(&mut target, &name, &metrics);
        }
    }
    from_capture_sync(served, &metrics);
    if let Ok(snapshots) = crate::api::snapshot_list(served) {
        metrics.snapshots_stored.set(snapshots.len() as i64);
        metrics
            .snapshot_bytes
            .set(snapshots.iter().map(|s| s.stored_bytes as i64).sum());
    }
    let mut text = String::new();
    encode(&mut text, &registry).map_err(|e| e.to_string())?;
    Ok(text)
}

fn from_capture_sync(served: &Served, metrics: &Metrics) {
    let states = served
        .sync_states
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (name, state) in states {
        let label = TargetLabel { target: name };
        metrics
            .capture_synced_rows
            .get_or_create(&label)
            .inc_by(state.rows);
        metrics
            .capture_sync_failures
            .get_or_create(&label)
            .inc_by(state.failures);
        if let Some(bytes) = state.retained_wal_bytes {
            metrics
                .capture_retained_wal
                .get_or_create(&label)
                .set(bytes);
        }
        if let Some(at) = state.last_success {
            metrics
                .capture_last_sync
                .get_or_create(&label)
                .set(at.timestamp_millis() as f64 / 1000.0);
        }
    }
}

fn from_chain(events: &[AuditEvent], name: &str, metrics: &Metrics) {
    let label = TargetLabel {
        target: name.to_string(),
    };
    let outcome = |outcome: &str| Outcome {
        target: name.to_string(),
        outcome: outcome.to_string(),
    };
    for event in events {
        let seconds = event
            .detail_json()
            .get("duration_ms")
            .and_then(|d| d.as_f64())
            .map(|ms| ms / 1000.0);
        let operation = match event.kind.as_str() {
            "deploy_completed" => {
                metrics.deploys.get_or_create(&outcome("success")).inc();
                Some("deploy")
            }
            "deploy_failed" => {
                metrics.deploys.get_or_create(&outcome("failure")).inc();
                None
            }
            "revert_completed" => {
                metrics.reverts.get_or_create(&outcome("success")).inc();
                Some("revert")
            }
            "revert_failed" => {
                metrics.reverts.get_or_create(&outcome("failure")).inc();
                None
            }
            "batch_reverted" => {
                metrics.batch_reverts.get_or_create(&label).inc();
                None
            }
            "flashback_completed" => {
                metrics.flashbacks.get_or_create(&label).inc();
                None
            }
            "snapshot_completed" => {
                metrics.snapshots.get_or_create(&label).inc();
                None
            }
            "snapshot_restored" => {
                metrics.restores.get_or_create(&label).inc();
                None
            }
            "gate_passed" | "gate_failed" | "gate_skipped" => {
                let verdict = event.kind.trim_start_matches("gate_");
                metrics.gates.get_or_create(&outcome(verdict)).inc();
                None
            }
            _ => None,
        };
        if let (Some(operation), Some(seconds)) = (operation, seconds) {
            metrics
                .duration
                .get_or_create(&Operation {
                    operation: operation.into(),
                })
                .observe(seconds);
        }
    }
}

/// The check pass ratio and the drill coverage of one target.
fn coverage(
    served: &Served,
    events: &[AuditEvent],
    pending: &[String],
    label: &TargetLabel,
    metrics: &Metrics,
) {
    let passed = events.iter().filter(|e| e.kind == "gate_passed").count();
    let failed = events.iter().filter(|e| e.kind == "gate_failed").count();
    if passed + failed > 0 {
        metrics
            .check_pass
            .get_or_create(label)
            .set(passed as f64 / (passed + failed) as f64);
    }
    // A pending change counts as covered when a drill passed it at its checksum now.
    let mut proved = std::collections::BTreeSet::new();
    for event in events.iter().filter(|e| e.kind == "drill_completed") {
        let detail = event.detail_json();
        for change in detail["changes"].as_array().into_iter().flatten() {
            if change["passed"] == true
                && let (Some(name), Some(checksum)) =
                    (change["change"].as_str(), change["checksum"].as_str())
            {
                proved.insert((name.to_string(), checksum.to_string()));
            }
        }
    }
    let covered = pending
        .iter()
        .filter(|name| {
            served
                .options
                .plan
                .get(name)
                .is_some_and(|c| proved.contains(&((*name).clone(), c.checksum.clone())))
        })
        .count();
    let ratio = if pending.is_empty() {
        1.0
    } else {
        covered as f64 / pending.len() as f64
    };
    metrics.drill_coverage.get_or_create(label).set(ratio);
}

fn from_two_phase(
    target: &mut ripcord::Target,
    label: &TargetLabel,
    metrics: &Metrics,
) -> Result<(), ripcord_core::EngineError> {
    let Some(mut two_phase) = target.engine.two_phase() else {
        return Ok(());
    };
    let prepared = two_phase.prepared(ripcord_core::fleet::GID_PREFIX)?;
    metrics
        .in_doubt
        .get_or_create(label)
        .set(prepared.len() as i64);
    let oldest = prepared
        .iter()
        .map(|p| (Utc::now() - p.prepared_at).num_milliseconds() as f64 / 1000.0)
        .fold(0.0, f64::max);
    metrics.in_doubt_age.get_or_create(label).set(oldest);
    Ok(())
}

fn from_rollouts(
    target: &mut ripcord::Target,
    name: &str,
    metrics: &Metrics,
) -> Result<(), ApiError> {
    for listed in crate::api::rollouts_of(target)? {
        let record = &listed["rollout"];
        let text = |key: &str| record[key].as_str().unwrap_or_default().to_string();
        metrics
            .rollouts
            .get_or_create(&RolloutState {
                coordinator: name.to_string(),
                fleet: text("fleet"),
                state: text("state"),
            })
            .inc();
        let time = |value: &serde_json::Value| {
            value
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        };
        if let (Some(detected), Some(recovered)) = (
            time(&record["detail"]["detected_at"]),
            time(&record["detail"]["recovered_at"]),
        ) {
            let seconds = (recovered - detected).num_milliseconds() as f64 / 1000.0;
            metrics
                .detection_to_recovery
                .get_or_create(&Rollback {
                    fleet: text("fleet"),
                    rollout: text("id"),
                })
                .set(seconds);
        }
    }
    Ok(())
}
