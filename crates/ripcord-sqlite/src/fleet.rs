//! Rollout records and feature flags on SQLite (ledger v6). SQLite has no two-phase
//! commit; a rollout coordinated from a SQLite file is for one machine (the demo).

use ripcord_core::fleet::{Flag, FleetLedger, RolloutRecord, RolloutStep};
use ripcord_core::{EngineError, LockHolder};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{map_error, parse_time, this_host};

/// Ledger version 6: rollouts, their steps and feature flags.
pub const LEDGER_STEP: &str = r#"
CREATE TABLE ripcord_rollouts (
    id          TEXT PRIMARY KEY,
    fleet       TEXT NOT NULL,
    project     TEXT,
    atomic      INTEGER NOT NULL,
    state       TEXT NOT NULL,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    command     TEXT NOT NULL,
    decision    TEXT,
    decided_at  TEXT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE ripcord_rollout_steps (
    rollout    TEXT NOT NULL,
    target     TEXT NOT NULL,
    wave       INTEGER NOT NULL,
    state      TEXT NOT NULL,
    changes    TEXT NOT NULL DEFAULT '[]',
    reason     TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (rollout, target)
);
CREATE TABLE ripcord_flags (
    name       TEXT PRIMARY KEY,
    enabled    INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
"#;

pub(crate) struct SqliteFleet<'a> {
    pub conn: &'a mut Connection,
}

fn has_v6(conn: &Connection) -> Result<bool, EngineError> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'ripcord_rollouts'",
        [],
        |r| r.get(0),
    )
    .map_err(map_error)
}

fn time(text: Option<String>) -> Option<chrono::DateTime<chrono::Utc>> {
    text.and_then(|t| parse_time(&t).ok())
}

impl FleetLedger for SqliteFleet<'_> {
    fn lock_fleet(&mut self, fleet: &str, _me: &LockHolder) -> Result<(), EngineError> {
        // The unfinished rollout names its process; one that still runs holds the fleet.
        let holder = self
            .rollouts(20)?
            .into_iter()
            .find(|r| r.fleet == fleet && r.unfinished())
            .map(|r| r.holder)
            .filter(|h| h.pid != std::process::id())
            .filter(|h| h.host != this_host() || ripcord_core::engine::process_runs(h.pid));
        match holder {
            Some(holder) => Err(EngineError::LockBusy {
                holder: Some(holder),
            }),
            None => Ok(()),
        }
    }

    fn unlock_fleet(&mut self, _fleet: &str) -> Result<(), EngineError> {
        Ok(())
    }

    fn put_rollout(&mut self, r: &RolloutRecord) -> Result<(), EngineError> {
        self.conn
            .execute(
                "INSERT INTO ripcord_rollouts (id, fleet, project, atomic, state, host, pid, command, decision, started_at, finished_at, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, finished_at = excluded.finished_at,
                     detail = excluded.detail, host = excluded.host, pid = excluded.pid, command = excluded.command",
                params![
                    r.id,
                    r.fleet,
                    r.project,
                    r.atomic,
                    r.state,
                    r.holder.host,
                    r.holder.pid,
                    r.holder.command,
                    r.decision,
                    r.started_at.to_rfc3339(),
                    r.finished_at.map(|t| t.to_rfc3339()),
                    r.detail.to_string(),
                ],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn rollouts(&mut self, limit: usize) -> Result<Vec<RolloutRecord>, EngineError> {
        if !has_v6(self.conn)? {
            return Ok(Vec::new());
        }
        let mut statement = self
            .conn
            .prepare(
                "SELECT id, fleet, project, atomic, state, host, pid, command, decision, started_at, finished_at, detail
                 FROM ripcord_rollouts ORDER BY started_at DESC, id DESC LIMIT ?1",
            )
            .map_err(map_error)?;
        let rows = statement
            .query_map(params![limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, String>(9)?,
                    r.get::<_, Option<String>>(10)?,
                    r.get::<_, String>(11)?,
                ))
            })
            .map_err(map_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error)?;
        rows.into_iter()
            .map(
                |(
                    id,
                    fleet,
                    project,
                    atomic,
                    state,
                    host,
                    pid,
                    command,
                    decision,
                    started,
                    finished,
                    detail,
                )| {
                    let started_at = parse_time(&started)?;
                    Ok(RolloutRecord {
                        id,
                        fleet,
                        project,
                        atomic,
                        state,
                        holder: LockHolder {
                            host,
                            pid: pid as u32,
                            since: started_at,
                            command,
                        },
                        decision,
                        started_at,
                        finished_at: time(finished),
                        detail: serde_json::from_str(&detail).unwrap_or_default(),
                    })
                },
            )
            .collect()
    }

    fn put_step(&mut self, s: &RolloutStep) -> Result<(), EngineError> {
        self.conn
            .execute(
                "INSERT INTO ripcord_rollout_steps (rollout, target, wave, state, changes, reason, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (rollout, target) DO UPDATE SET wave = excluded.wave, state = excluded.state,
                     changes = excluded.changes, reason = excluded.reason, updated_at = excluded.updated_at",
                params![
                    s.rollout,
                    s.target,
                    s.wave,
                    s.state,
                    serde_json::to_string(&s.changes).unwrap_or_else(|_| "[]".into()),
                    s.reason,
                    s.updated_at.to_rfc3339(),
                ],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn steps(&mut self, rollout: &str) -> Result<Vec<RolloutStep>, EngineError> {
        if !has_v6(self.conn)? {
            return Ok(Vec::new());
        }
        let mut statement = self
            .conn
            .prepare(
                "SELECT rollout, target, wave, state, changes, reason, updated_at FROM ripcord_rollout_steps
                 WHERE rollout = ?1 ORDER BY wave, target",
            )
            .map_err(map_error)?;
        let rows = statement
            .query_map(params![rollout], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i32>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(map_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error)?;
        rows.into_iter()
            .map(|(rollout, target, wave, state, changes, reason, updated)| {
                Ok(RolloutStep {
                    rollout,
                    target,
                    wave,
                    state,
                    changes: serde_json::from_str(&changes).unwrap_or_default(),
                    reason,
                    updated_at: parse_time(&updated)?,
                })
            })
            .collect()
    }

    fn decide(&mut self, rollout: &str, decision: &str) -> Result<String, EngineError> {
        self.conn
            .execute(
                "UPDATE ripcord_rollouts SET decision = COALESCE(decision, ?2),
                     decided_at = COALESCE(decided_at, ?3) WHERE id = ?1",
                params![rollout, decision, chrono::Utc::now().to_rfc3339()],
            )
            .map_err(map_error)?;
        self.conn
            .query_row(
                "SELECT decision FROM ripcord_rollouts WHERE id = ?1",
                params![rollout],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map_err(map_error)?
            .flatten()
            .ok_or_else(|| EngineError::Ledger {
                reason: format!("no rollout {rollout} to record a decision for"),
            })
    }

    fn set_flag(&mut self, name: &str, enabled: bool, by: &str) -> Result<(), EngineError> {
        self.conn
            .execute(
                "INSERT INTO ripcord_flags (name, enabled, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled,
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                params![name, enabled, chrono::Utc::now().to_rfc3339(), by],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn flags(&mut self) -> Result<Vec<Flag>, EngineError> {
        if !has_v6(self.conn)? {
            return Ok(Vec::new());
        }
        let mut statement = self
            .conn
            .prepare(
                "SELECT name, enabled, updated_at, updated_by FROM ripcord_flags ORDER BY name",
            )
            .map_err(map_error)?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(map_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error)?;
        rows.into_iter()
            .map(|(name, enabled, updated, updated_by)| {
                Ok(Flag {
                    name,
                    enabled,
                    updated_at: parse_time(&updated)?,
                    updated_by,
                })
            })
            .collect()
    }
}
