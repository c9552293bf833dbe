//! Rollout records, feature flags and two-phase commit on PostgreSQL (ledger v6).

use chrono::{DateTime, Utc};
use postgres::Client;
use ripcord_core::fleet::{
    Flag, FleetLedger, PreparedTransaction, RolloutRecord, RolloutStep, TwoPhase,
};
use ripcord_core::{EngineError, LockHolder};

use crate::sql::{literal, map_error};

/// Ledger version 6: rollouts and their per-target steps (with the coordinator's
/// commit decision), and feature flags.
pub const LEDGER_STEP: &str = r#"
CREATE TABLE ripcord.rollouts (
    id          text PRIMARY KEY,
    fleet       text NOT NULL,
    project     text,
    atomic      boolean NOT NULL,
    state       text NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    command     text NOT NULL,
    decision    text,
    decided_at  timestamptz,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    detail      text NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE ripcord.rollouts IS 'ripcord rollouts coordinated from this database; `decision` is the durable two-phase commit decision. `ripcord rollout status`.';
CREATE TABLE ripcord.rollout_steps (
    rollout    text NOT NULL,
    target     text NOT NULL,
    wave       integer NOT NULL,
    state      text NOT NULL,
    changes    text NOT NULL DEFAULT '[]',
    reason     text,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (rollout, target)
);
CREATE TABLE ripcord.flags (
    name       text PRIMARY KEY,
    enabled    boolean NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL
);
COMMENT ON TABLE ripcord.flags IS 'ripcord feature flags: SELECT enabled FROM ripcord.flags WHERE name = ''…''. Set with `ripcord flag set`.';
"#;

/// First key of the fleet lock (the second is the fleet name's hash).
const FLEET_LOCK_CLASS: i32 = 0x7269_7063;

pub(crate) struct PgFleet<'a> {
    pub client: &'a mut Client,
}

fn has_v6(client: &mut Client) -> Result<bool, EngineError> {
    let row = client
        .query_one("SELECT to_regclass('ripcord.rollouts') IS NOT NULL", &[])
        .map_err(map_error)?;
    Ok(row.get(0))
}

fn rollout_from(row: &postgres::Row) -> RolloutRecord {
    let detail: String = row.get("detail");
    RolloutRecord {
        id: row.get("id"),
        fleet: row.get("fleet"),
        project: row.get("project"),
        atomic: row.get("atomic"),
        state: row.get("state"),
        holder: LockHolder {
            host: row.get("host"),
            pid: row.get::<_, i32>("pid") as u32,
            since: row.get("started_at"),
            command: row.get("command"),
        },
        decision: row.get("decision"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        detail: serde_json::from_str(&detail).unwrap_or_default(),
    }
}

impl FleetLedger for PgFleet<'_> {
    fn lock_fleet(&mut self, fleet: &str, _me: &LockHolder) -> Result<(), EngineError> {
        let row = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&FLEET_LOCK_CLASS, &fleet],
            )
            .map_err(map_error)?;
        if row.get::<_, bool>(0) {
            return Ok(());
        }
        let holder = self
            .rollouts(20)?
            .into_iter()
            .find(|r| r.fleet == fleet && r.unfinished())
            .map(|r| r.holder);
        Err(EngineError::LockBusy { holder })
    }

    fn unlock_fleet(&mut self, fleet: &str) -> Result<(), EngineError> {
        self.client
            .query_one(
                "SELECT pg_advisory_unlock($1, hashtext($2))",
                &[&FLEET_LOCK_CLASS, &fleet],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn put_rollout(&mut self, r: &RolloutRecord) -> Result<(), EngineError> {
        let detail = r.detail.to_string();
        self.client
            .execute(
                "INSERT INTO ripcord.rollouts (id, fleet, project, atomic, state, host, pid, command, decision, started_at, finished_at, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, finished_at = excluded.finished_at,
                     detail = excluded.detail, host = excluded.host, pid = excluded.pid, command = excluded.command",
                &[
                    &r.id,
                    &r.fleet,
                    &r.project,
                    &r.atomic,
                    &r.state,
                    &r.holder.host,
                    &(r.holder.pid as i32),
                    &r.holder.command,
                    &r.decision,
                    &r.started_at,
                    &r.finished_at,
                    &detail,
                ],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn rollouts(&mut self, limit: usize) -> Result<Vec<RolloutRecord>, EngineError> {
        if !has_v6(self.client)? {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT * FROM ripcord.rollouts ORDER BY started_at DESC, id DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .map_err(map_error)?;
        Ok(rows.iter().map(rollout_from).collect())
    }

    fn put_step(&mut self, s: &RolloutStep) -> Result<(), EngineError> {
        let changes = serde_json::to_string(&s.changes).unwrap_or_else(|_| "[]".into());
        self.client
            .execute(
                "INSERT INTO ripcord.rollout_steps (rollout, target, wave, state, changes, reason, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (rollout, target) DO UPDATE SET wave = excluded.wave, state = excluded.state,
                     changes = excluded.changes, reason = excluded.reason, updated_at = excluded.updated_at",
                &[&s.rollout, &s.target, &s.wave, &s.state, &changes, &s.reason, &s.updated_at],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn steps(&mut self, rollout: &str) -> Result<Vec<RolloutStep>, EngineError> {
        if !has_v6(self.client)? {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT rollout, target, wave, state, changes, reason, updated_at FROM ripcord.rollout_steps
                 WHERE rollout = $1 ORDER BY wave, target",
                &[&rollout],
            )
            .map_err(map_error)?;
        Ok(rows
            .iter()
            .map(|row| RolloutStep {
                rollout: row.get(0),
                target: row.get(1),
                wave: row.get(2),
                state: row.get(3),
                changes: serde_json::from_str(&row.get::<_, String>(4)).unwrap_or_default(),
                reason: row.get(5),
                updated_at: row.get(6),
            })
            .collect())
    }

    fn decide(&mut self, rollout: &str, decision: &str) -> Result<String, EngineError> {
        let row = self
            .client
            .query_opt(
                "UPDATE ripcord.rollouts SET decision = COALESCE(decision, $2),
                     decided_at = COALESCE(decided_at, now())
                 WHERE id = $1 RETURNING decision",
                &[&rollout, &decision],
            )
            .map_err(map_error)?
            .ok_or_else(|| EngineError::Ledger {
                reason: format!("no rollout {rollout} to record a decision for"),
            })?;
        Ok(row.get(0))
    }

    fn set_flag(&mut self, name: &str, enabled: bool, by: &str) -> Result<(), EngineError> {
        self.client
            .execute(
                "INSERT INTO ripcord.flags (name, enabled, updated_at, updated_by) VALUES ($1, $2, now(), $3)
                 ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled,
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                &[&name, &enabled, &by],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn flags(&mut self) -> Result<Vec<Flag>, EngineError> {
        if !has_v6(self.client)? {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT name, enabled, updated_at, updated_by FROM ripcord.flags ORDER BY name",
                &[],
            )
            .map_err(map_error)?;
        Ok(rows
            .iter()
            .map(|r| Flag {
                name: r.get(0),
                enabled: r.get(1),
                updated_at: r.get(2),
                updated_by: r.get(3),
            })
            .collect())
    }
}

pub(crate) struct PgTwoPhase<'a> {
    pub client: &'a mut Client,
}

impl TwoPhase for PgTwoPhase<'_> {
    fn max_prepared_transactions(&mut self) -> Result<u32, EngineError> {
        let row = self
            .client
            .query_one(
                "SELECT current_setting('max_prepared_transactions')::int",
                &[],
            )
            .map_err(map_error)?;
        Ok(row.get::<_, i32>(0).max(0) as u32)
    }

    fn prepare(&mut self, gid: &str) -> Result<(), EngineError> {
        self.client
            .batch_execute(&format!("PREPARE TRANSACTION {}", literal(gid)))
            .map_err(map_error)
    }

    fn prepared(&mut self, prefix: &str) -> Result<Vec<PreparedTransaction>, EngineError> {
        let rows = self
            .client
            .query(
                "SELECT gid, prepared FROM pg_prepared_xacts
                 WHERE database = current_database() AND starts_with(gid, $1) ORDER BY prepared",
                &[&prefix],
            )
            .map_err(map_error)?;
        Ok(rows
            .iter()
            .map(|r| PreparedTransaction {
                gid: r.get(0),
                prepared_at: r.get::<_, DateTime<Utc>>(1),
            })
            .collect())
    }

    fn finish(&mut self, gid: &str, commit: bool) -> Result<bool, EngineError> {
        let still = self
            .client
            .query_one(
                "SELECT count(*) > 0 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database()",
                &[&gid],
            )
            .map_err(map_error)?
            .get::<_, bool>(0);
        if !still {
            return Ok(false);
        }
        let verb = if commit { "COMMIT" } else { "ROLLBACK" };
        self.client
            .batch_execute(&format!("{verb} PREPARED {}", literal(gid)))
            .map_err(map_error)?;
        Ok(true)
    }
}
