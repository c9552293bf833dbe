//! The JSON API under `/api/`: each target's changes, history, audit events (paged),
//! chain verdict, capture batches, vault, flags and the rollouts it coordinated.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ripcord::Target;
use ripcord::status::ChangeStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Served;

/// An API failure, as JSON with its HTTP status.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// No such target or path (404).
    NotFound(String),
    /// The target cannot be reached (503).
    Unreachable(String),
    /// Reading the ledger failed (500).
    Failed(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, hint) = match self {
            ApiError::NotFound(m) => (
                StatusCode::NOT_FOUND,
                m,
                "GET /api/targets lists what is served",
            ),
            ApiError::Unreachable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                m,
                "the target is retried on the next request",
            ),
            ApiError::Failed(m) => (StatusCode::INTERNAL_SERVER_ERROR, m, "see the server's log"),
        };
        (status, Json(json!({ "error": message, "hint": hint }))).into_response()
    }
}

impl From<ripcord::OpError> for ApiError {
    fn from(e: ripcord::OpError) -> ApiError {
        ApiError::Failed(e.to_string())
    }
}

impl From<ripcord_core::EngineError> for ApiError {
    fn from(e: ripcord_core::EngineError) -> ApiError {
        ApiError::Failed(e.to_string())
    }
}

pub(crate) fn routes() -> Router<Arc<Served>> {
    Router::new()
        .route("/targets", get(targets))
        .route("/targets/{name}", get(target_status))
        .route("/targets/{name}/history", get(history))
        .route("/targets/{name}/events", get(events))
        .route("/targets/{name}/audit", get(audit))
        .route("/targets/{name}/batches", get(batches))
        .route("/targets/{name}/vault", get(vault))
        .route("/targets/{name}/flags", get(flags))
        .route("/targets/{name}/rollouts", get(rollouts))
        .route("/targets/{name}/checks", get(checks))
        .route("/targets/{name}/drills", get(drills))
        .route("/snapshots", get(snapshots))
}

/// Events of `kinds` from the target's chain, oldest first.
pub(crate) fn events_of(target: &mut Target, kinds: &[&str]) -> Result<Vec<Value>, ApiError> {
    Ok(ripcord::audit::events(target)?
        .iter()
        .filter(|e| kinds.contains(&e.kind.as_str()))
        .map(event_json)
        .collect())
}

/// Check gates run by deploy and revert, and the baselines they compare with.
async fn checks(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    on_target(served, name, |target, _| {
        let gates = events_of(target, &["gate_passed", "gate_failed", "gate_skipped"])?;
        let baselines = target.engine.baselines().unwrap_or_default();
        Ok(json!({ "gates": gates, "baselines": baselines }))
    })
    .await
}

/// Drills noted in the target's chain, oldest first.
async fn drills(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    on_target(served, name, |target, _| {
        Ok(json!({ "drills": events_of(target, &["drill_completed"])? }))
    })
    .await
}

/// The snapshots in the project's store, oldest first.
async fn snapshots(State(served): State<Arc<Served>>) -> Result<Json<Value>, ApiError> {
    let listed = tokio::task::spawn_blocking(move || snapshot_list(&served))
        .await
        .map_err(|e| ApiError::Failed(format!("the request failed: {e}")))??;
    Ok(Json(json!({ "snapshots": listed })))
}

/// The store's snapshots. The store drives its own runtime, so it is opened and used on
/// a thread of its own, outside the server's.
pub(crate) fn snapshot_list(
    served: &Served,
) -> Result<Vec<ripcord::snapshot::SnapshotSummary>, ApiError> {
    let Some((uri, base)) = served.options.snapshot_store.clone() else {
        return Ok(Vec::new());
    };
    std::thread::spawn(move || {
        let store = ripcord::snapshot::Store::open(&uri, &base)
            .map_err(|e| ApiError::Unreachable(e.to_string()))?;
        ripcord::snapshot::list(&store).map_err(ApiError::from)
    })
    .join()
    .unwrap_or_else(|_| Err(ApiError::Failed("listing the snapshots failed".into())))
}

/// Run `read` on a fresh connection to `name`, off the async threads.
async fn on_target<T: Serialize + Send + 'static>(
    served: Arc<Served>,
    name: String,
    read: impl FnOnce(&mut Target, &Served) -> Result<T, ApiError> + Send + 'static,
) -> Result<Json<T>, ApiError> {
    tokio::task::spawn_blocking(move || {
        let mut target = served.open(&name)?;
        read(&mut target, &served)
    })
    .await
    .map_err(|e| ApiError::Failed(format!("the request failed: {e}")))?
    .map(Json)
}

/// One target in `/api/targets`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TargetSummary {
    pub name: String,
    pub url: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub ledger: bool,
    pub deployed: Vec<String>,
    pub pending: Vec<String>,
    pub modified: Vec<String>,
    pub other: Vec<Value>,
    pub chain_intact: Option<bool>,
    /// Each pending change with the worst reversibility class of its statements, as
    /// `ripcord plan` judges them.
    pub pending_risk: Vec<Value>,
}

/// Every served target with its changes by state (unreachable ones say why).
pub(crate) fn summaries(served: &Served) -> Vec<TargetSummary> {
    served
        .options
        .targets
        .iter()
        .map(|t| {
            let mut summary = TargetSummary {
                name: t.name.clone(),
                url: ripcord_core::url::redact(&t.url),
                reachable: false,
                error: None,
                ledger: false,
                deployed: Vec::new(),
                pending: Vec::new(),
                modified: Vec::new(),
                other: Vec::new(),
                chain_intact: None,
                pending_risk: Vec::new(),
            };
            let read = served.open(&t.name).and_then(|mut target| {
                let status = ripcord::status::status(&mut target, &served.options.plan)?;
                let chain = if status.ledger {
                    Some(
                        ripcord::audit::verify(&mut target, &served.options.trusted_keys)?.intact(),
                    )
                } else {
                    None
                };
                let planned = ripcord::plan::plan(
                    &mut target,
                    &served.options.plan,
                    None,
                    Default::default(),
                )
                .map(|p| p.changes)
                .unwrap_or_default();
                Ok((status, chain, planned))
            });
            match read {
                Ok((status, chain, planned)) => {
                    summary.pending_risk = planned
                        .iter()
                        .map(|c| {
                            let worst = c
                                .statements
                                .iter()
                                .map(|s| serde_json::to_value(s.class).unwrap_or_default())
                                .max_by_key(|v| match v.as_str() {
                                    Some("irreversible") => 2,
                                    Some("preserving") => 1,
                                    _ => 0,
                                })
                                .unwrap_or_else(|| json!("safe"));
                            json!({ "change": c.change, "risk": worst })
                        })
                        .collect();
                    summary.reachable = true;
                    summary.ledger = status.ledger;
                    summary.chain_intact = chain;
                    for entry in status.changes {
                        match entry.status {
                            ChangeStatus::Deployed => summary.deployed.push(entry.change),
                            ChangeStatus::Pending => summary.pending.push(entry.change),
                            ChangeStatus::Modified => summary.modified.push(entry.change),
                            other => summary.other.push(json!({
                                "change": entry.change,
                                "status": other.label(),
                            })),
                        }
                    }
                }
                Err(ApiError::Unreachable(e) | ApiError::Failed(e) | ApiError::NotFound(e)) => {
                    summary.error = Some(e);
                }
            }
            summary
        })
        .collect()
}

async fn targets(State(served): State<Arc<Served>>) -> Result<Json<Value>, ApiError> {
    let listed = tokio::task::spawn_blocking(move || summaries(&served))
        .await
        .map_err(|e| ApiError::Failed(format!("the request failed: {e}")))?;
    Ok(Json(json!({ "targets": listed })))
}

async fn target_status(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
) -> Result<Json<ripcord::status::StatusReport>, ApiError> {
    on_target(served, name, |target, served| {
        Ok(ripcord::status::status(target, &served.options.plan)?)
    })
    .await
}

async fn history(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    on_target(served, name, |target, _| {
        Ok(ripcord::audit::history(target)?
            .iter()
            .map(event_json)
            .collect())
    })
    .await
}

/// `?after=SEQ&limit=N`: events after a sequence number, oldest first.
#[derive(Debug, Deserialize)]
struct Page {
    after: Option<i64>,
    limit: Option<usize>,
}

async fn events(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    on_target(served, name, move |target, _| {
        let after = page.after.unwrap_or(0);
        let limit = page.limit.unwrap_or(100).clamp(1, 1000);
        let all = ripcord::audit::events(target)?;
        let total = all.len();
        let page: Vec<Value> = all
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .map(event_json)
            .collect();
        let next = page
            .last()
            .and_then(|e| e["seq"].as_i64())
            .filter(|last| all.last().is_some_and(|e| e.seq > *last));
        Ok(json!({ "events": page, "total": total, "next_after": next }))
    })
    .await
}

/// An audit event with its detail as JSON rather than a string.
pub(crate) fn event_json(event: &ripcord_core::audit::AuditEvent) -> Value {
    json!({
        "seq": event.seq,
        "at": event.at,
        "actor": event.actor,
        "host": event.host,
        "kind": event.kind,
        "target": event.target,
        "change": event.change,
        "detail": event.detail_json(),
        "hash": event.hash,
    })
}

async fn audit(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
) -> Result<Json<ripcord::audit::ChainReport>, ApiError> {
    let trusted = served.options.trusted_keys.clone();
    on_target(served, name, move |target, _| {
        Ok(ripcord::audit::verify(target, &trusted)?)
    })
    .await
}

async fn batches(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    on_target(served, name, |target, _| {
        Ok(match ripcord::capture::batches(target) {
            Ok(batches) => json!({ "batches": batches }),
            // SQLite has no capture: an empty list says so without failing the page.
            Err(e) => json!({ "batches": [], "unavailable": e.to_string() }),
        })
    })
    .await
}

async fn vault(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
) -> Result<Json<ripcord::vault::VaultReport>, ApiError> {
    on_target(served, name, |target, _| Ok(ripcord::vault::list(target)?)).await
}

async fn flags(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    on_target(served, name, |target, _| {
        Ok(json!({ "flags": ripcord::flags::list(target)? }))
    })
    .await
}

async fn rollouts(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    on_target(served, name, |target, _| {
        Ok(json!({ "rollouts": rollouts_of(target)? }))
    })
    .await
}

/// The rollouts `target` coordinated, newest first, each with its steps.
pub(crate) fn rollouts_of(target: &mut Target) -> Result<Vec<Value>, ApiError> {
    if target.engine.ledger_version()?.is_none() {
        return Ok(Vec::new());
    }
    let Some(mut fleet) = target.engine.fleet() else {
        return Ok(Vec::new());
    };
    let mut listed = Vec::new();
    for record in fleet.rollouts(100)? {
        let steps = fleet.steps(&record.id)?;
        listed.push(json!({ "rollout": record, "steps": steps }));
    }
    Ok(listed)
}
