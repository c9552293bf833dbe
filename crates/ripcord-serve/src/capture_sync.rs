//! The one thing `serve` writes: it drains the logical capture slots of its
//! PostgreSQL targets into their capture logs every few seconds, so the replication
//! slot does not hold WAL between the commands that sync (DESIGN §5.5, logical mode).
//!
//! A sync commits what it decoded in rounds and records the position it reached in
//! the same transaction, so a server killed mid-sync loses nothing: the next sync
//! (here or from any command) decodes from that position again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::Served;

/// What the drain loop last saw on one target, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncState {
    /// When the last sync succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// Rows written into the capture log since the server started.
    pub rows: u64,
    /// Syncs that failed since the server started.
    pub failures: u64,
    /// WAL the slot retained after the last sync, when the target has one.
    pub retained_wal_bytes: Option<i64>,
    /// The last failure, reported once until it changes.
    last_error: Option<String>,
    /// Whether the retained-WAL warning was printed (again only after it cleared).
    warned_retained: bool,
}

/// Per-target sync states, shared by the loop and the scrapes.
pub(crate) type SyncStates = Mutex<HashMap<String, SyncState>>;

/// Sync every PostgreSQL target every `every`, until the runtime stops.
pub(crate) async fn drain_forever(served: Arc<Served>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let served = served.clone();
        // A sync is blocking database work; one round at a time, never overlapping.
        let _ = tokio::task::spawn_blocking(move || drain_once(&served)).await;
    }
}

/// One sync of each PostgreSQL target; SQLite has no logical capture.
pub(crate) fn drain_once(served: &Served) {
    for target in &served.options.targets {
        if !is_postgres(&target.url) {
            continue;
        }
        let result = served
            .open(&target.name)
            .map_err(|e| match e {
                crate::api::ApiError::NotFound(m)
                | crate::api::ApiError::Unreachable(m)
                | crate::api::ApiError::Failed(m) => m,
            })
            .and_then(|mut t| ripcord::capture::sync(&mut t).map_err(|e| e.to_string()));
        let mut states = served.sync_states.lock().unwrap_or_else(|e| e.into_inner());
        let state = states.entry(target.name.clone()).or_default();
        match result {
            Ok(report) => {
                state.last_success = Some(Utc::now());
                state.rows += report.rows.max(0) as u64;
                state.retained_wal_bytes = report.retained_wal_bytes;
                state.last_error = None;
                let above = report
                    .retained_wal_bytes
                    .is_some_and(|b| b > served.options.max_retained_wal_bytes);
                if above && !state.warned_retained {
                    eprintln!(
                        "warning: target `{}`: the capture slot retains {} bytes of WAL, above [capture] max_retained_wal ({} bytes)",
                        target.name,
                        report.retained_wal_bytes.unwrap_or(0),
                        served.options.max_retained_wal_bytes
                    );
                }
                state.warned_retained = above;
            }
            Err(e) => {
                state.failures += 1;
                if state.last_error.as_deref() != Some(e.as_str()) {
                    eprintln!(
                        "warning: target `{}`: capture sync failed: {e} (retried every {} s)",
                        target.name,
                        served.options.capture_sync_every.map_or(0, |d| d.as_secs())
                    );
                    state.last_error = Some(e);
                }
            }
        }
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}
