//! Pieces shared by the operations: the target lock, audit appends, running a section.

use std::ops::Range;
use std::sync::Arc;

use chrono::Utc;
use ripcord_core::audit::{AuditEvent, NewEvent, Stamp};
use ripcord_core::location::byte_offset_of_char;
use ripcord_core::splitter::split;
use ripcord_core::{EngineError, LockHolder, SourceLocation, SqlError};

use crate::error::{ChangeFailure, OpError, Phase};
use crate::observe::Observer;
use crate::target::Target;
use serde_json::json;

/// Run `work` while holding the target's lock; the lock is released however it ends.
pub(crate) fn with_lock<T>(
    target: &mut Target,
    command: &str,
    work: impl FnOnce(&mut Target) -> Result<T, OpError>,
) -> Result<T, OpError> {
    let me = LockHolder {
        host: target.identity.host.clone(),
        pid: std::process::id(),
        since: Utc::now(),
        command: command.to_string(),
    };
    take_lock(target, &me)?;
    if let Err(e) = start_chain_or_seal(target) {
        let _ = target.engine.unlock();
        return Err(e);
    }
    let result = work(target);
    let _ = target.engine.rollback();
    let unlocked = target.engine.unlock();
    match (result, unlocked) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e),
    }
}

/// How long to wait for the database session of a holder that died on this host.
const DEAD_HOLDER_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Take the target's lock. When the holder is a process of this host that no longer
/// runs (killed), its server session may not have ended yet: wait for it, bounded,
/// saying so, instead of failing with "locked" right after a kill -9.
fn take_lock(target: &mut Target, me: &LockHolder) -> Result<(), OpError> {
    let mut waiting: Option<std::time::Instant> = None;
    loop {
        match target.engine.lock(me) {
            Err(EngineError::LockBusy {
                holder: Some(holder),
            }) if holder.host == me.host
                && holder.pid != me.pid
                && !ripcord_core::engine::process_runs(holder.pid) =>
            {
                let since = *waiting.get_or_insert_with(|| {
                    tracing::warn!(
                        event = "lock_wait",
                        target = target.name.as_str(),
                        "the lock of {} is held by process {} ({}), which no longer runs on this host; waiting up to {} s for its database session to end",
                        target.name,
                        holder.pid,
                        holder.command,
                        DEAD_HOLDER_WAIT.as_secs()
                    );
                    std::time::Instant::now()
                });
                if since.elapsed() > DEAD_HOLDER_WAIT {
                    return Err(EngineError::LockBusy {
                        holder: Some(holder),
                    }
                    .into());
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other.map_err(OpError::from),
        }
    }
}

/// A new ledger starts its chain with `ledger_created` (also when a run died between
/// creating the ledger and that event); rows an older ripcord wrote get their
/// definitions sealed into the chain.
fn start_chain_or_seal(target: &mut Target) -> Result<(), OpError> {
    let rows = target.engine.changes()?;
    let events = target.engine.events()?;
    if events.is_empty() && rows.is_empty() {
        append_event_in_own_tx(
            target,
            NewEvent {
                kind: "ledger_created",
                change: None,
                detail: serde_json::json!({ "ledger_version": ripcord_core::engine::LEDGER_VERSION }),
            },
        )?;
        return Ok(());
    }
    crate::integrity::seal_old_rows(target, &rows, &events)?;
    crate::failpoint::hit("ledger_ready");
    Ok(())
}

/// Write ledger `rows` and an event of `kind` recording their definition checksums
/// (`detail.ledger_rows`), then `more`, in one transaction: the chain always vouches
/// for what the rows say.
pub(crate) fn put_rows_with_event(
    target: &mut Target,
    rows: &[ripcord_core::DeployedChange],
    kind: &'static str,
    mut detail: serde_json::Value,
    more: impl FnOnce(&mut Target) -> Result<(), EngineError>,
) -> Result<(), OpError> {
    in_transaction(target, |target| {
        let mut definitions = serde_json::Map::new();
        for row in rows {
            target.engine.put_change(row)?;
            definitions.insert(row.name.clone(), row.definition_checksum().into());
        }
        detail["ledger_rows"] = definitions.into();
        append_event(
            target,
            NewEvent {
                kind,
                change: None,
                detail,
            },
        )?;
        more(target)
    })
}

/// Run `work` in one transaction with the target's limits: committed when it succeeds,
/// rolled back when it fails.
pub(crate) fn in_transaction(
    target: &mut Target,
    work: impl FnOnce(&mut Target) -> Result<(), EngineError>,
) -> Result<(), OpError> {
    let limits = target.limits;
    target.engine.begin(&limits)?;
    match work(target).and_then(|()| target.engine.commit()) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = target.engine.rollback();
            Err(e.into())
        }
    }
}

/// Append an event inside the caller's open transaction.
pub(crate) fn append_event(
    target: &mut Target,
    event: NewEvent,
) -> Result<AuditEvent, EngineError> {
    let last = target.engine.last_event()?;
    let stamp = Stamp {
        actor: target.identity.actor.clone(),
        host: target.identity.host.clone(),
        target: target.name.clone(),
        at: Utc::now(),
    };
    let mut event = event;
    if let (Some(key), Some(detail)) = (&target.signer, event.detail.as_object_mut()) {
        // Inside the hashed content: a signature removed later leaves an event that
        // says it was signed, and removing that too breaks the chain.
        detail.insert(
            "signed_by".into(),
            crate::checkpoint::key_id(&key.verifying_key()).into(),
        );
    }
    let mut sealed = AuditEvent::seal(
        last.as_ref().map(|(seq, hash)| (*seq, hash.as_str())),
        &stamp,
        event,
    );
    if let Some(key) = &target.signer {
        sealed.signature = Some(crate::audit::sign(key, &sealed.hash));
    }
    target.engine.insert_event(&sealed)?;
    Ok(sealed)
}

/// Append an event in a transaction of its own.
pub(crate) fn append_event_in_own_tx(
    target: &mut Target,
    event: NewEvent,
) -> Result<AuditEvent, EngineError> {
    target.engine.begin(&Default::default())?;
    match append_event(target, event) {
        Ok(sealed) => {
            target.engine.commit()?;
            Ok(sealed)
        }
        Err(e) => {
            let _ = target.engine.rollback();
            Err(e)
        }
    }
}

/// SQL with its statements located in some source (a change file or the ledger).
pub(crate) struct Script {
    pub source: SourceLocation,
    pub statements: Vec<Range<usize>>,
}

impl Script {
    /// Statements of a section of a change file.
    pub fn from_file(location: SourceLocation, statements: Vec<Range<usize>>) -> Script {
        Script {
            source: location,
            statements,
        }
    }

    /// Statements of SQL read back from the ledger, named `ledger:<change>/<phase>`.
    pub fn from_ledger(change: &str, phase: Phase, sql: &str) -> Script {
        let text: Arc<str> = Arc::from(sql);
        // Ledgered SQL was split when it was deployed; if it no longer splits, the
        // database will say what is wrong with it as one statement.
        let statements = split(sql).unwrap_or_else(|_| std::iter::once(0..sql.len()).collect());
        Script {
            source: SourceLocation {
                name: format!("ledger:{change}/{}", phase.as_str()).into(),
                text,
                span: 0..0,
            },
            statements,
        }
    }

    pub fn len(&self) -> usize {
        self.statements.len()
    }

    pub fn sql(&self, index: usize) -> &str {
        &self.source.text[self.statements[index].clone()]
    }

    /// Where statement `index` failed: the token the database points at, else the statement.
    pub fn failure_location(&self, index: usize, error: &SqlError) -> SourceLocation {
        let statement = self.statements[index].clone();
        let span = match error.position {
            Some(position) if position > 0 => {
                let sql = &self.source.text[statement.clone()];
                let offset = statement.start + byte_offset_of_char(sql, position - 1);
                let end = self.source.text[offset..]
                    .char_indices()
                    .nth(1)
                    .map_or(self.source.text.len(), |(i, _)| offset + i);
                offset..end.min(statement.end).max(offset)
            }
            _ => statement,
        };
        SourceLocation {
            name: self.source.name.clone(),
            text: self.source.text.clone(),
            span,
        }
    }
}

/// Run statements `from..` of `script`; a statement error becomes a [`ChangeFailure`].
pub(crate) fn run_statements(
    target: &mut Target,
    change: &str,
    phase: Phase,
    script: &Script,
    from: usize,
    observer: &mut dyn Observer,
    completed: &[String],
) -> Result<(), OpError> {
    for index in from..script.len() {
        run_statement(
            target, change, phase, script, index, observer, completed, None,
        )?;
    }
    Ok(())
}

/// Run statement `index` of `script`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_statement(
    target: &mut Target,
    change: &str,
    phase: Phase,
    script: &Script,
    index: usize,
    observer: &mut dyn Observer,
    completed: &[String],
    kept_statements: Option<usize>,
) -> Result<(), OpError> {
    let sql = script.sql(index);
    observer.statement_started(change, phase, index, sql);
    match target.engine.execute(sql) {
        Ok(()) => Ok(()),
        Err(EngineError::Sql(error)) => Err(OpError::ChangeFailed(Box::new(ChangeFailure {
            change: change.to_string(),
            phase,
            statement: index + 1,
            statements: script.len(),
            location: script.failure_location(index, &error),
            error,
            completed: completed.to_vec(),
            kept_statements,
            lock_retries: 0,
            blockers: Vec::new(),
        }))),
        Err(other) => Err(other.into()),
    }
}

/// Savepoint around a verify section.
const VERIFY_SAVEPOINT: &str = "ripcord_verify";

/// Run the verify section `script` inside the open transaction, then undo whatever it
/// wrote: verify proves a change is in place, it must not change data (a `DELETE` in
/// verify would otherwise commit with the change, unvaulted and beyond any revert).
pub(crate) fn run_verify(
    target: &mut Target,
    change: &str,
    script: &Script,
    observer: &mut dyn Observer,
    completed: &[String],
    kept_statements: Option<usize>,
) -> Result<(), OpError> {
    if script.len() == 0 {
        return Ok(());
    }
    target.engine.savepoint(VERIFY_SAVEPOINT)?;
    for index in 0..script.len() {
        run_statement(
            target,
            change,
            Phase::Verify,
            script,
            index,
            observer,
            completed,
            kept_statements,
        )?;
    }
    target.engine.rollback_to_savepoint(VERIFY_SAVEPOINT)?;
    Ok(())
}

/// A change whose transaction times out waiting for a lock (`lock_timeout`) is rolled
/// back and run again this many times, after pauses that double from
/// [`FIRST_LOCK_PAUSE`], so a short-lived blocker does not fail the run.
pub const LOCK_RETRIES: usize = 3;
/// The pause before the first retry.
pub const FIRST_LOCK_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// Run `attempt` (one whole change transaction) again while it fails on a lock
/// timeout; the last failure names the sessions seen blocking it.
pub(crate) fn retry_on_lock_timeout<T>(
    target: &mut Target,
    change: &str,
    observer: &mut dyn Observer,
    mut attempt: impl FnMut(&mut Target, &mut dyn Observer) -> Result<T, OpError>,
) -> Result<T, OpError> {
    let mut pause = FIRST_LOCK_PAUSE;
    for number in 0..=LOCK_RETRIES {
        let last = number == LOCK_RETRIES;
        // On the last attempt, watch who blocks us, so the failure can name them.
        target.engine.watch_blockers(last);
        let result = attempt(target, observer);
        target.engine.watch_blockers(false);
        match result {
            Err(OpError::ChangeFailed(mut failure))
                if failure.error.code.as_deref() == Some("55P03") =>
            {
                let _ = target.engine.rollback();
                if last {
                    failure.lock_retries = LOCK_RETRIES;
                    failure.blockers = target.engine.blockers();
                    return Err(OpError::ChangeFailed(failure));
                }
                observer.lock_busy(change, number + 1, LOCK_RETRIES + 1, pause);
                std::thread::sleep(pause);
                pause *= 2;
            }
            other => return other,
        }
    }
    unreachable!("the last attempt returns")
}

/// After a failed change is rolled back, keep a trace of the failure in the chain.
pub(crate) fn record_change_failure(target: &mut Target, error: &OpError) {
    let _ = target.engine.rollback();
    if let OpError::ChangeFailed(failure) = error {
        let kind = if failure.phase == Phase::Revert {
            "revert_failed"
        } else {
            "deploy_failed"
        };
        let _ = append_event_in_own_tx(
            target,
            NewEvent {
                kind,
                change: Some(failure.change.clone()),
                detail: json!({
                    "phase": failure.phase.as_str(),
                    "statement": failure.statement,
                    "at": failure.location.display_short(),
                    "error": failure.error.message,
                    "sqlstate": failure.error.code,
                    "kept_statements": failure.kept_statements,
                    "lock_retries": failure.lock_retries,
                    "blocked_by": failure.blockers,
                }),
            },
        );
    }
}

/// Run statement `index` of a `transaction: none` change and record `index + 1`
/// statements done, committed together unless the engine must run the statement alone.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_statement_with_progress(
    target: &mut Target,
    change: &str,
    phase: Phase,
    state: ripcord_core::ChangeState,
    script: &Script,
    index: usize,
    observer: &mut dyn Observer,
    completed: &[String],
) -> Result<(), OpError> {
    let (done, total) = (index as i32 + 1, script.len() as i32);
    // A statement that must run alone cannot share a transaction with its progress row:
    // if we die between the two, a rerun repeats this one statement (write it idempotently).
    let alone = target.engine.needs_own_transaction(script.sql(index));
    if !alone {
        let limits = target.limits;
        target.engine.begin(&limits)?;
    }
    run_statement(
        target,
        change,
        phase,
        script,
        index,
        observer,
        completed,
        Some(index),
    )?;
    target.engine.set_progress(change, state, done, total)?;
    if !alone {
        target.engine.commit()?;
    }
    Ok(())
}
