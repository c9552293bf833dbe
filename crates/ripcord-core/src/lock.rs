//! Who holds a target's lock, and whether that process still runs.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The process holding a target's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// When it took the lock.
    pub since: DateTime<Utc>,
    /// What it is doing (`deploy`, `revert`, …).
    pub command: String,
}

/// Whether process `pid` of this host still runs (assumed so where it cannot be told:
/// without `/proc`).
pub fn process_runs(pid: u32) -> bool {
    let proc_root = std::path::Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    proc_root.join(pid.to_string()).exists()
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`ripcord {}` on host {}, pid {}, since {}",
            self.command,
            self.host,
            self.pid,
            self.since.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}
