//! Progress callbacks, so a front end can show work as it happens.

use crate::Phase;

/// Receives progress of long operations. Every method has a no-op default.
pub trait Observer {
    /// A change starts `phase` with `statements` statements (from `resume_at`).
    fn change_started(
        &mut self,
        _change: &str,
        _phase: Phase,
        _statements: usize,
        _resume_at: usize,
    ) {
    }
    /// A statement is about to run.
    fn statement_started(&mut self, _change: &str, _phase: Phase, _index: usize, _sql: &str) {}
    /// A change's transaction timed out waiting for a lock and will run again after
    /// `pause` (attempt `attempt` of `attempts`).
    fn lock_busy(
        &mut self,
        _change: &str,
        _attempt: usize,
        _attempts: usize,
        _pause: std::time::Duration,
    ) {
    }
    /// A change finished `phase` after `duration_ms`.
    fn change_finished(&mut self, _change: &str, _phase: Phase, _duration_ms: u64) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}
