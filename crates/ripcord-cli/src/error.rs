//! Errors at the command-line edge: every failure becomes a [`CommandError`] whose
//! [`Exit`] is one of the documented exit codes, with a one-line message, a hint, and a
//! source snippet when the problem sits in a file.

use std::process::ExitCode;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};
use ripcord::error::{ChangeFailure, OpError};
use ripcord_core::config::ConfigError;
use ripcord_core::{EngineError, PlanError, SourceLocation};
use serde::Serialize;

/// The documented exit codes (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// 0: success.
    Success,
    /// 1: the operation ran and failed.
    Failed,
    /// 2: usage, configuration or input error; nothing was changed.
    Usage,
    /// 3: another ripcord holds the target's lock.
    Locked,
    /// 4: a safety gate refused.
    Refused,
    /// 5: connection or engine error.
    Engine,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Locked => 3,
            Exit::Refused => 4,
            Exit::Engine => 5,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// A failure ready to be shown to a person (and as JSON).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// Which exit code.
    pub exit: Exit,
    /// One line: what went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Where, when it is in a file.
    pub location: Option<SourceLocation>,
    /// Label under the highlighted source.
    pub label: Option<String>,
    /// Shown as a warning rather than an error (lint findings).
    pub warning: bool,
    /// What the operation did before it failed (with `--json`, under `report`).
    pub report: Option<serde_json::Value>,
    snippet: Option<NamedSource<String>>,
}

impl CommandError {
    /// A new error.
    pub fn new(exit: Exit, message: impl Into<String>) -> CommandError {
        CommandError {
            exit,
            message: message.into(),
            hint: None,
            location: None,
            label: None,
            warning: false,
            report: None,
            snippet: None,
        }
    }

    /// With a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> CommandError {
        self.hint = Some(hint.into());
        self
    }

    /// Pointing into a source.
    pub fn at(mut self, location: SourceLocation, label: Option<String>) -> CommandError {
        self.snippet = Some(NamedSource::new(
            location.name.display().to_string(),
            location.text.to_string(),
        ));
        self.location = Some(location);
        self.label = label;
        self
    }

    /// Render for a terminal (or plain text when `color` is false).
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(100);
        let mut out = String::new();
        if handler.render_report(&mut out, self).is_err() {
            out = format!("error: {}\n", self.message);
        }
        out
    }

    /// The JSON form printed on stdout with `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "exit_code": self.exit.code(),
                "kind": self.exit,
                "message": self.message,
                "hint": self.hint,
                "at": self.location.as_ref().map(|l| l.display_short()),
            },
            "report": self.report,
        })
    }
}

impl Diagnostic for CommandError {
    fn severity(&self) -> Option<miette::Severity> {
        self.warning.then_some(miette::Severity::Warning)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.snippet.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let location = self.location.as_ref()?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            self.label.clone(),
            miette::SourceSpan::from((location.span.start, location.span.len())),
        ))))
    }
}

impl From<ConfigError> for CommandError {
    fn from(error: ConfigError) -> CommandError {
        match error {
            ConfigError::Io { .. } => CommandError::new(Exit::Usage, error.to_string()),
            ConfigError::Invalid {
                message,
                hint,
                location,
            } => {
                let mut e = CommandError::new(Exit::Usage, message);
                e.hint = hint;
                if let Some(location) = location {
                    e = e.at(location, None);
                }
                e
            }
        }
    }
}

impl From<PlanError> for CommandError {
    fn from(error: PlanError) -> CommandError {
        let message = error.to_string();
        match error {
            PlanError::File(ripcord_core::change::ChangeFileError::Syntax {
                message,
                hint,
                location,
            }) => {
                let mut e = CommandError::new(Exit::Usage, format!("{}: {message}", location.display_short()));
                e.hint = hint;
                e.at(location, Some(message))
            }
            PlanError::File(ripcord_core::change::ChangeFileError::BadFileName { .. }) => CommandError::new(Exit::Usage, message)
                .hint("name change files `<ID>_<slug>.sql`, e.g. `0004_add_coupon.sql`; `ripcord new <slug>` does it for you"),
            PlanError::UnknownRequirement {
                suggestion, location, ..
            } => {
                let e = CommandError::new(Exit::Usage, message).at(location, Some("no such change".into()));
                match suggestion {
                    Some(s) => e.hint(format!("did you mean `{s}`?")),
                    None => e.hint("`requires:` takes change names like `0001_create_users`"),
                }
            }
            PlanError::Cycle { location, .. } => CommandError::new(Exit::Usage, message)
                .at(location, Some("this requirement closes the cycle".into()))
                .hint("a change can only require changes with a lower ID"),
            PlanError::RequiresLater { location, .. } => CommandError::new(Exit::Usage, message)
                .at(location, Some("deploys after this change".into()))
                .hint("a change can only require changes with a lower ID: renumber one of them"),
            PlanError::DuplicateId { .. } => {
                CommandError::new(Exit::Usage, message).hint("give one of them a new ID (`ripcord new` picks the next free one)")
            }
            PlanError::Io { .. } => CommandError::new(Exit::Usage, message)
                .hint("create it, or point `[project] changes` in ripcord.toml at the right directory"),
            PlanError::File(_) => CommandError::new(Exit::Usage, message),
        }
    }
}

impl From<EngineError> for CommandError {
    fn from(error: EngineError) -> CommandError {
        let message = error.to_string();
        match error {
            EngineError::LockBusy { .. } => CommandError::new(Exit::Locked, message).hint(
                "wait for it to finish (or check that process is still alive); `ripcord status` shows where the target stands",
            ),
            EngineError::BadUrl { hint, .. } => CommandError::new(Exit::Usage, message).hint(hint),
            EngineError::Driver { .. } => CommandError::new(Exit::Engine, message).hint(
                "nothing was sent to the database; this is a fault in ripcord, please report it with the command that failed",
            ),
            EngineError::Connect { .. } => CommandError::new(Exit::Engine, message)
                .hint("check the URL, that the server is up and accepts connections from here, and the credentials"),
            EngineError::ConnectionLost { .. } => CommandError::new(Exit::Engine, message)
                .hint("the current change was rolled back by the server; run the same command again once the database is back"),
            EngineError::LedgerTooNew { .. } => {
                CommandError::new(Exit::Usage, message).hint("upgrade ripcord to the version that wrote this ledger")
            }
            EngineError::Invalid { hint, .. } => {
                let mut e = CommandError::new(Exit::Usage, message);
                e.hint = hint;
                e
            }
            // A value or a name given on the command line that the database cannot read
            // (a timestamp, a table name): the input is wrong, nothing ran.
            EngineError::Sql(ref sql)
                if matches!(
                    sql.code.as_deref(),
                    Some("22007" | "22008" | "22P02" | "42602")
                ) =>
            {
                CommandError::new(Exit::Usage, message)
                    .hint("check the value given on the command line")
            }
            EngineError::Ledger { .. } | EngineError::Sql(_) => CommandError::new(Exit::Engine, message),
        }
    }
}

fn change_failure(failure: &ChangeFailure) -> CommandError {
    let statement_label = failure.error.message.clone();
    let mut message = format!(
        "{} {} failed at {}: {}",
        failure.change,
        failure.phase.as_str(),
        failure.location.display_short(),
        failure.error
    );
    if let Some(detail) = &failure.error.detail {
        message.push_str(&format!(" ({detail})"));
    }
    let earlier = match failure.completed.len() {
        0 => String::new(),
        1 => format!(
            " {} (completed earlier in this run) stays.",
            failure.completed[0]
        ),
        n => format!(" The {n} changes completed earlier in this run stay."),
    };
    let hint = match (failure.phase, failure.kept_statements) {
        (ripcord::Phase::Revert, Some(kept)) => format!(
            "statements 1-{kept} of the revert stay applied (transaction: none); fix the problem and run the same revert again to resume at statement {}.{earlier}",
            kept + 1
        ),
        (ripcord::Phase::Revert, None) => format!(
            "the revert of {} was rolled back: the change stays deployed.{earlier}",
            failure.change
        ),
        (_, Some(0)) => format!(
            "no statement of {} stays applied; fix the file and run `ripcord deploy` again.{earlier}",
            failure.change
        ),
        (_, Some(kept)) => format!(
            "statements 1-{kept} of {} stay applied (transaction: none); fix the file and run `ripcord deploy` to resume at statement {}, or `ripcord revert --last 1`.{earlier}",
            failure.change,
            kept + 1
        ),
        (_, None) => format!(
            "nothing of {} was applied (rolled back); fix the file and run `ripcord deploy` again.{earlier}",
            failure.change
        ),
    };
    let mut hint = hint;
    if failure.lock_retries > 0 {
        let blockers = if failure.blockers.is_empty() {
            "the blocking session had finished by the time it was looked up".to_string()
        } else {
            format!(
                "blocked by {}",
                failure
                    .blockers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        let first = failure
            .blockers
            .first()
            .map_or("PID".to_string(), |b| b.pid.to_string());
        hint = format!(
            "it waited for a lock {} times (lock_timeout each); {blockers}. Let that session finish (or end it: SELECT pg_terminate_backend({first})), then run the same command again.\n{hint}",
            failure.lock_retries + 1
        );
    }
    if let Some(db_hint) = &failure.error.hint {
        hint = format!("{db_hint}\n{hint}");
    }
    CommandError::new(Exit::Failed, message)
        .hint(hint)
        .at(failure.location.clone(), Some(statement_label))
}

impl From<OpError> for CommandError {
    fn from(error: OpError) -> CommandError {
        let message = error.to_string();
        match error {
            OpError::Engine(e) => e.into(),
            OpError::ChangeFailed(failure) => change_failure(&failure),
            OpError::Modified { modified } => {
                let first = &modified[0].change;
                CommandError::new(Exit::Refused, message).hint(format!(
                    "if the edit is intended, record it: `ripcord rehash {first} --reason \"…\"`; otherwise restore the file from version control"
                ))
            }
            OpError::MissingRevert { change, .. } => CommandError::new(Exit::Refused, message).hint(format!(
                "add a `-- ripcord:revert` section to {change}, declare `-- irreversible: <reason>` in its header if it truly cannot be undone, or consent for this deploy with `--accept-irreversible {change}`"
            )),
            OpError::DataNotKept { change, .. } => CommandError::new(Exit::Refused, message).hint(format!(
                "move the statement into a change that runs in one transaction, or consent for this deploy with `--accept-irreversible {change}` (recorded in the audit chain)"
            )),
            OpError::Irreversible { .. } => CommandError::new(Exit::Refused, message)
                .hint("restore from a backup or write a new change that undoes it; use `--to` to revert only the changes after it"),
            OpError::RevertInProgress { change, .. } => CommandError::new(Exit::Refused, message).hint(format!(
                "finish it first: `ripcord revert --to` the change before {change} (it resumes where it stopped)"
            )),
            OpError::UnknownChange { suggestion, .. } => {
                let e = CommandError::new(Exit::Usage, message);
                match suggestion {
                    Some(s) => e.hint(format!("did you mean `{s}`?")),
                    None => e.hint("`ripcord status` lists the changes"),
                }
            }
            OpError::NotDeployed { .. } => CommandError::new(Exit::Usage, message).hint("`ripcord status` shows what is deployed"),
            OpError::FileGone { change } => CommandError::new(Exit::Usage, message)
                .hint(format!("restore changes/{change}.sql from version control")),
            OpError::ScratchNotEmpty { .. } => CommandError::new(Exit::Usage, message)
                .hint("drill needs an empty database; omit --scratch and ripcord makes (and drops) one"),
            OpError::DrillSetup { .. } => CommandError::new(Exit::Failed, message)
                .hint("the scratch could not reach the starting state; nothing on the target was touched"),
            OpError::Store { .. } => CommandError::new(Exit::Engine, message)
                .hint("check the store URI and its credentials (AWS_*, GOOGLE_*, AZURE_* for object storage); nothing on the target was changed"),
            OpError::UnknownSnapshot { .. } => CommandError::new(Exit::Usage, message)
                .hint("`ripcord snapshot list` shows the snapshots in the store (and --store picks another store)"),
            OpError::SnapshotDamaged { .. } => CommandError::new(Exit::Failed, message)
                .hint("this snapshot cannot be trusted; nothing was restored from it; use an older one (`ripcord snapshot list`)"),
            OpError::WhichProject { .. } => CommandError::new(Exit::Usage, message)
                .hint("run the command in the project's directory (its ripcord.toml names the project), or pass --config PATH"),
            OpError::OtherProject { .. } => CommandError::new(Exit::Refused, message)
                .hint("change names must be unique among the projects that share a database: give this change another ID and slug (nothing was changed)"),
            OpError::LedgerTampered { change, .. } => CommandError::new(Exit::Refused, message).hint(format!(
                "nothing was run; `ripcord audit verify` lists every ledger row that does not match the audit chain{}",
                change.map(|c| format!("; compare the row of {c} with the change file and the chain (`ripcord audit log`) before trusting it")).unwrap_or_default()
            )),
            OpError::EmptyRevert { change } => CommandError::new(Exit::Refused, message).hint(format!(
                "write the revert in changes/{change}.sql and record it with `ripcord rehash {change} --reason \"…\"`; nothing was reverted"
            )),
            OpError::InvalidFiles { files } => {
                let mut error = CommandError::new(Exit::Usage, message)
                    .hint("fix the files (`ripcord lint` shows each with its line); `ripcord status` still shows the other changes");
                if let Some(ripcord_core::change::ChangeFileError::Syntax { location, hint, .. }) = files.first().map(|f| f.as_ref()) {
                    error = error.at(location.clone(), hint.clone());
                }
                error
            }
            OpError::DiffInput { hint, .. } => CommandError::new(Exit::Usage, message).hint(hint),
            OpError::UnknownBaseline { known, .. } => CommandError::new(Exit::Usage, message).hint(if known.is_empty() {
                "no baseline is saved yet: `ripcord check --save-baseline NAME` saves one".to_string()
            } else {
                format!("saved baselines: {} (`ripcord check --list-baselines`)", known.join(", "))
            }),
            OpError::GateFailed { .. } => CommandError::new(Exit::Failed, message)
                .hint("the target is as before this deploy; fix the change (or the check), then deploy again; `--no-gate` deploys without the checks"),
            OpError::UnmetRequirement { required, .. } => {
                CommandError::new(Exit::Usage, message).hint(format!("deploy {required} first (drop `--to`, or pick a later one)"))
            }
        }
    }
}
