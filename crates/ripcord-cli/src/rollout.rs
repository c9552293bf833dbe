//! `ripcord rollout`, `rollout status`, `recover` and `flag`: the fleet commands over
//! `ripcord-rollout`, with progress lines as the rollout runs.

use std::fmt::Write as _;
use std::io::Write as _;

use ripcord_rollout::fleet::Fleet;
use ripcord_rollout::report::{Event, Reporter, RolloutReport};
use ripcord_rollout::{RolloutError, RolloutOptions};

use crate::cli::{FlagCommand, GlobalArgs, OnOff, RecoverArgs, RolloutAction, RolloutArgs};
use crate::error::{CommandError, Exit};
use crate::printer::{Printer, paint, style};
use crate::settings::{Project, named_target_url};

/// Progress lines on stderr (JSON lines with `--json`), as the rollout runs; on a
/// terminal, a bar of the targets done under them.
struct Progress {
    printer: Printer,
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl Progress {
    fn new(printer: Printer) -> Progress {
        Progress {
            printer,
            bar: std::sync::Mutex::new(None),
        }
    }

    /// Keep the bar in step with the rollout: a new one for the deploy and for a
    /// rollback (only on a terminal, never with -q or --json).
    fn track(&self, event: &Event) {
        use std::io::IsTerminal;
        if self.printer.quiet || self.printer.json || !std::io::stderr().is_terminal() {
            return;
        }
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        let start = |length: u64, what: &str| {
            let new = indicatif::ProgressBar::new(length);
            new.set_style(
                indicatif::ProgressStyle::with_template("  {msg} [{bar:30}] {pos}/{len} targets")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            new.set_message(what.to_string());
            new
        };
        match event.kind {
            "rollout_started" => {
                let length = event.detail["targets"].as_u64().unwrap_or(0);
                *bar = Some(start(length, "deploying"));
            }
            "rollback_started" => {
                if let Some(old) = bar.take() {
                    old.finish_and_clear();
                }
                let length = event.detail["targets"].as_array().map_or(0, |t| t.len());
                *bar = Some(start(length as u64, "rolling back"));
            }
            "target_applied" | "target_prepared" | "target_failed" | "target_rolled_back" => {
                if let Some(bar) = bar.as_ref() {
                    bar.inc(1);
                }
            }
            "rollout_completed" | "rollback_completed" => {
                if let Some(old) = bar.take() {
                    old.finish_and_clear();
                }
            }
            _ => {}
        }
    }

    /// A line above the bar (or plain, without one).
    fn line(&self, text: String) {
        let bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match bar.as_ref() {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(anstream::stderr(), "{text}");
            }
        }
    }
}

impl Reporter for Progress {
    fn event(&self, event: &Event) {
        tracing::info!(
            event = event.kind,
            op = "rollout",
            rollout = event.rollout.as_str(),
            fleet = event.fleet.as_str(),
            target = event.target.as_deref().unwrap_or_default(),
            wave = event.wave.map(|w| w as u64 + 1),
            detail = %event.detail,
            "{}",
            event.message
        );
        if crate::events::json() {
            return;
        }
        if self.printer.quiet {
            return;
        }
        if self.printer.json {
            let _ = writeln!(
                anstream::stderr(),
                "{}",
                serde_json::to_string(event).unwrap_or_default()
            );
            return;
        }
        self.track(event);
        // Passing samples are noise unless asked for.
        if event.kind == "probe_sample"
            && !self.printer.verbose
            && event.detail["verdict"] == "pass"
        {
            return;
        }
        let mark = match event.kind {
            "target_failed" | "probe_failed" | "rollback_started" => paint(style::BAD, "✗"),
            "target_rolled_back" | "rollback_completed" => paint(style::UNDO, "↩"),
            "target_applied" | "target_prepared" | "wave_completed" | "rollout_completed" => {
                paint(style::OK, "✓")
            }
            _ => paint(style::DIM, "·"),
        };
        self.line(format!(
            "{mark} {} {}",
            paint(style::DIM, event.at.format("%H:%M:%S")),
            event.message
        ));
    }
}

fn fleet_name(project: &Project, asked: Option<&str>) -> Result<String, CommandError> {
    let config = project.require_config()?;
    if let Some(name) = asked {
        return Ok(name.to_string());
    }
    let fleets: Vec<&String> = config.config.fleets.keys().collect();
    match fleets.as_slice() {
        [only] => Ok((*only).clone()),
        [] => Err(CommandError::new(Exit::Usage, "this project has no fleet")
            .hint("add a [fleets.NAME] section with `targets = [...]` to ripcord.toml (`ripcord rollout --help` shows one)")),
        many => Err(CommandError::new(Exit::Usage, "which fleet?").hint(format!(
            "pick one with --fleet ({})",
            many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

pub(crate) fn resolve(
    project: &Project,
    asked: Option<&str>,
) -> Result<(Fleet, RolloutOptions), CommandError> {
    let config = project.require_config()?;
    let name = fleet_name(project, asked)?;
    let url_of = |target: &str| {
        named_target_url(config, target).map_err(|e| RolloutError::Usage {
            message: e.message.clone(),
            hint: e.hint.clone().unwrap_or_default(),
        })
    };
    let fleet = ripcord_rollout::fleet::resolve(config, &name, &url_of).map_err(error)?;
    let safety = &config.config.safety;
    let coordinator = match &config.config.coordinator {
        Some(c) => Some(match (&c.target, &c.url, &c.url_env) {
            (Some(target), _, _) => (target.clone(), named_target_url(config, target)?),
            (None, Some(url), _) => (ripcord_core::url::redact(url), url.clone()),
            (None, None, Some(variable)) => {
                let url = std::env::var(variable)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| {
                        CommandError::new(
                            Exit::Usage,
                            format!(
                                "[coordinator] reads its URL from ${variable}, which is not set"
                            ),
                        )
                        .hint(format!("export {variable}=postgres://…"))
                    })?;
                (ripcord_core::url::redact(&url), url)
            }
            (None, None, None) => unreachable!("validated: [coordinator] names one"),
        }),
        None => None,
    };
    let options = RolloutOptions {
        checks: config.config.checks.clone(),
        notify: config.config.notify.clone(),
        project: Some(config.config.project.name.clone().unwrap_or_default()),
        limits: ripcord_core::SessionLimits {
            lock_timeout: safety.lock_timeout.map(|d| d.0),
            statement_timeout: safety.statement_timeout.map(|d| d.0),
        },
        coordinator,
        ..Default::default()
    };
    Ok((fleet, options))
}

/// A rollout error as the CLI shows it.
pub(crate) fn error(e: RolloutError) -> CommandError {
    let message = e.to_string();
    match e {
        RolloutError::Usage { hint, .. } => CommandError::new(Exit::Usage, message).hint(hint),
        RolloutError::Unreachable { .. } => CommandError::new(Exit::Engine, message)
            .hint("nothing was changed on any target; check the URL and that the server runs"),
        RolloutError::AtomicRefused { hint, .. } => CommandError::new(Exit::Refused, message).hint(hint),
        RolloutError::Busy(engine) => {
            CommandError::from(engine).hint("another rollout or recover of this fleet is running; `ripcord rollout status` shows it")
        }
        RolloutError::Coordinator { .. } => CommandError::new(Exit::Engine, message)
            .hint("the coordinator keeps the rollout's records; check that it is reachable"),
        RolloutError::Failed { .. } => CommandError::new(Exit::Failed, message)
            .hint("`ripcord rollout status` shows each target; the audit chain of each target has the details"),
        RolloutError::Paused { .. } => CommandError::new(Exit::Failed, message).hint(
            "run `ripcord rollout` again to watch again and go on, or `ripcord rollout --abort` to roll back",
        ),
    }
}

/// The per-target table of a rollout report.
pub fn render(report: &RolloutReport) -> String {
    let mut out = String::new();
    let heading = if report.dry_run {
        format!(
            "Rollout plan for fleet {}{}:",
            report.fleet,
            if report.atomic { " (atomic)" } else { "" }
        )
    } else {
        format!(
            "Rollout {} of fleet {}: {}",
            report.id,
            report.fleet,
            report.state.replace('_', " ")
        )
    };
    let _ = writeln!(out, "{}", paint(style::HEAD, heading));
    let width = report
        .targets
        .iter()
        .map(|t| t.target.len())
        .max()
        .unwrap_or(0);
    for t in &report.targets {
        let state = match t.state.as_str() {
            "verified" | "applied" => paint(style::OK, &t.state),
            "rolled_back" => paint(style::UNDO, "rolled back"),
            "failed" => paint(style::BAD, &t.state),
            other => other.to_string(),
        };
        let changes = if t.changes.is_empty() {
            "-".to_string()
        } else {
            t.changes.join(", ")
        };
        let _ = write!(
            out,
            "  wave {}  {:width$}  {state}  {changes}",
            t.wave + 1,
            t.target
        );
        if let Some(reason) = &t.reason {
            let _ = write!(out, "  {}", paint(style::DIM, reason));
        }
        out.push('\n');
    }
    for r in &report.recovered {
        let _ = writeln!(
            out,
            "  recovered {} on {}: {} (in doubt {}s)",
            r.gid,
            r.target,
            r.action.replace('_', " "),
            r.age_seconds
        );
    }
    if let (Some(detected), Some(recovered)) = (report.detected_at, report.recovered_at) {
        let _ = writeln!(
            out,
            "Detected {}, every target back by {} ({:.1} s)",
            detected.format("%H:%M:%S%.3f"),
            recovered.format("%H:%M:%S%.3f"),
            report.detection_to_recovery_ms().unwrap_or(0) as f64 / 1000.0
        );
    }
    out
}

/// `ripcord rollout` and `ripcord rollout status`.
pub fn rollout(
    args: &RolloutArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let (fleet, mut options) = resolve(&project, args.fleet.as_deref())?;
    if let Some(RolloutAction::Status { id }) = &args.action {
        let status =
            ripcord_rollout::status::status(&fleet, &options, id.as_deref()).map_err(error)?;
        printer.json(&status);
        printer.block(render_status(&status));
        return Ok(Exit::Success);
    }
    let plan = project.plan()?;
    options.to = args.to.clone();
    options.dry_run = args.dry_run;
    options.atomic = args.atomic;
    options.no_pause = args.no_pause;
    options.abort = args.abort;
    options.accept_irreversible = args.accept_irreversible.clone();
    let progress = Progress::new(printer);
    match ripcord_rollout::rollout(&fleet, &plan, &options, &progress) {
        Ok(report) => {
            printer.json(&report);
            if report.state == "nothing_to_do" {
                printer.line(format!(
                    "Nothing to roll out: every target of fleet {} is up to date.",
                    fleet.name
                ));
            } else {
                printer.block(render(&report));
            }
            Ok(Exit::Success)
        }
        Err(e) => {
            let report = e.report().cloned();
            if let Some(report) = &report
                && !printer.json
                && !printer.quiet
            {
                let _ = write!(anstream::stderr(), "{}", render(report));
            }
            let mut failure = error(e);
            failure.report = report.and_then(|r| serde_json::to_value(r).ok());
            Err(failure)
        }
    }
}

fn render_status(status: &ripcord_rollout::status::FleetStatus) -> String {
    let mut out = String::new();
    match &status.rollout {
        None => {
            let _ = writeln!(
                out,
                "Fleet {} has no rollout yet (coordinator {}).",
                status.fleet, status.coordinator
            );
        }
        Some(r) => {
            let _ = writeln!(
                out,
                "{}",
                paint(
                    style::HEAD,
                    format!(
                        "Rollout {} of fleet {}: {}{} (started {} by {} on {}, pid {})",
                        r.id,
                        r.fleet,
                        r.state.replace('_', " "),
                        if r.atomic { ", atomic" } else { "" },
                        r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        r.holder.command,
                        r.holder.host,
                        r.holder.pid
                    )
                )
            );
            if let Some(reason) = r.detail["reason"].as_str() {
                let _ = writeln!(out, "  why: {reason}");
            }
            if let Some(decision) = &r.decision {
                let _ = writeln!(out, "  two-phase commit decision: {decision}");
            }
            let width = status
                .steps
                .iter()
                .map(|s| s.target.len())
                .max()
                .unwrap_or(0);
            for s in &status.steps {
                let changes = if s.changes.is_empty() {
                    "-".to_string()
                } else {
                    s.changes.join(", ")
                };
                let _ = write!(
                    out,
                    "  wave {}  {:width$}  {}  {changes}",
                    s.wave + 1,
                    s.target,
                    s.state.replace('_', " ")
                );
                if let Some(reason) = &s.reason {
                    let _ = write!(out, "  {}", paint(style::DIM, reason));
                }
                out.push('\n');
            }
        }
    }
    for d in &status.in_doubt {
        let _ = writeln!(
            out,
            "{} in-doubt prepared transaction {} on {}, prepared {}s ago: it holds locks and holds back VACUUM; run `ripcord recover`",
            paint(style::BAD, "!"),
            d.gid,
            d.target,
            d.age_seconds
        );
    }
    for (target, why) in &status.unreachable {
        let _ = writeln!(out, "{} {target} not asked: {why}", paint(style::BAD, "!"));
    }
    out
}

/// `ripcord recover`.
pub fn recover(
    args: &RecoverArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let (fleet, options) = resolve(&project, args.fleet.as_deref())?;
    let progress = Progress::new(printer);
    let recovered = ripcord_rollout::atomic::recover(&fleet, &options, &progress).map_err(error)?;
    printer.json(&serde_json::json!({ "fleet": fleet.name, "recovered": recovered }));
    if recovered.is_empty() {
        printer.line(format!("No in-doubt transaction on fleet {}.", fleet.name));
    }
    for r in &recovered {
        printer.line(format!(
            "{}: {} {} (in doubt {}s)",
            r.target,
            r.gid,
            r.action.replace('_', " "),
            r.age_seconds
        ));
    }
    Ok(if recovered.iter().any(|r| r.action == "left") {
        Exit::Failed
    } else {
        Exit::Success
    })
}

/// `ripcord flag set|get|list`.
pub fn flag(
    command: &FlagCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let fleet = match command {
        FlagCommand::Set { fleet, .. }
        | FlagCommand::Get { fleet, .. }
        | FlagCommand::List { fleet } => fleet.clone(),
    };
    let mut targets = Vec::new();
    match &fleet {
        Some(name) => {
            let (fleet, options) = resolve(&project, Some(name))?;
            for (_, member) in fleet.members() {
                let mut target =
                    ripcord::target::connect(&member.name, &member.url, &fleet.base_dir)?;
                target.project = options.project.clone();
                targets.push(target);
            }
        }
        None => targets.push(project.target(global)?),
    }
    match command {
        FlagCommand::Set { name, value, .. } => {
            let enabled = *value == OnOff::On;
            let mut results = Vec::new();
            for target in &mut targets {
                let changed = ripcord::flags::set(target, name, enabled, "ripcord flag set")?;
                results.push(serde_json::json!({ "target": target.name, "flag": name, "enabled": enabled, "changed": changed }));
                printer.line(format!(
                    "{}: {name} {}{}",
                    target.name,
                    if enabled { "on" } else { "off" },
                    if changed { "" } else { " (already)" }
                ));
            }
            printer.json(&serde_json::json!({ "flags": results }));
        }
        FlagCommand::Get { name, .. } => {
            let mut results = Vec::new();
            for target in &mut targets {
                let flag = ripcord::flags::get(target, name)?;
                let enabled = flag.as_ref().is_some_and(|f| f.enabled);
                results.push(serde_json::json!({ "target": target.name, "flag": name, "enabled": enabled, "set": flag.is_some() }));
                let value = if enabled { "on" } else { "off" };
                if fleet.is_none() {
                    printer.line(value);
                } else {
                    printer.line(format!("{}: {value}", target.name));
                }
            }
            if fleet.is_none() {
                printer.json(&results[0]);
            } else {
                printer.json(&serde_json::json!({ "flags": results }));
            }
        }
        FlagCommand::List { .. } => {
            let mut results = Vec::new();
            for target in &mut targets {
                let flags = ripcord::flags::list(target)?;
                if flags.is_empty() {
                    printer.line(format!(
                        "{}: no flags yet (`ripcord flag set NAME on`)",
                        target.name
                    ));
                }
                for f in &flags {
                    printer.line(format!(
                        "{}: {} {}  set by {} at {}",
                        target.name,
                        f.name,
                        if f.enabled { "on" } else { "off" },
                        f.updated_by,
                        f.updated_at.format("%Y-%m-%d %H:%M:%S UTC")
                    ));
                }
                results.push(serde_json::json!({ "target": target.name, "flags": flags }));
            }
            printer.json(&serde_json::json!({ "targets": results }));
        }
    }
    Ok(Exit::Success)
}
