//! One function per command: resolve settings, call the library, print the report.
#![allow(missing_docs)] // command functions are documented by their `--help`.

use ripcord::deploy::{DeployOptions, deploy};
use ripcord::revert::{RevertOptions, Selection, preview, revert};
use ripcord::{Observer, Phase};
use ripcord_core::config::{CONFIG_FILE, init_template};

use crate::cli::{
    AuditCommand, DeployArgs, EngineChoice, GlobalArgs, InitArgs, NewArgs, RehashArgs, RevertArgs,
};
use crate::error::{CommandError, Exit};
use crate::printer::{Printer, paint, style};
use crate::render;
use crate::settings::Project;
use ripcord_core::capture::CaptureMode;

/// Prints each change as it completes, and with `-v` each statement as it starts.
pub struct ProgressLines {
    /// Where to print.
    pub printer: Printer,
    /// The target's name, for the step events.
    pub target: String,
}

impl Observer for ProgressLines {
    fn statement_started(&mut self, change: &str, phase: Phase, index: usize, sql: &str) {
        if self.printer.verbose {
            let first_line = sql.lines().next().unwrap_or_default();
            self.printer.line(paint(
                style::DIM,
                format!(
                    "    {change} {} #{}: {first_line}",
                    phase.as_str(),
                    index + 1
                ),
            ));
        }
    }

    fn lock_busy(
        &mut self,
        change: &str,
        attempt: usize,
        attempts: usize,
        pause: std::time::Duration,
    ) {
        self.printer.line(format!(
            "  {} {change} waited too long for a lock (attempt {attempt} of {attempts}); rolled back, retrying in {:.2} s",
            paint(style::DIM, "~"),
            pause.as_secs_f64()
        ));
    }

    fn change_finished(&mut self, change: &str, phase: Phase, duration_ms: u64) {
        crate::events::step(
            match phase {
                Phase::Revert => "change_reverted",
                _ => "change_deployed",
            },
            phase.as_str(),
            &self.target,
            Some(change),
            Some(duration_ms),
            "success",
            "",
        );
        let mark = match phase {
            Phase::Revert => paint(style::UNDO, "-"),
            _ => paint(style::OK, "+"),
        };
        self.printer.line(format!(
            "  {mark} {change} {}",
            paint(style::DIM, format!("({duration_ms} ms)"))
        ));
    }
}

/// `name (url)`, or just the URL for an ad-hoc target named by it.
fn label(target: &ripcord::Target) -> String {
    render::target_label(&target.name, &target.display_url)
}

pub fn init(args: &InitArgs, global: &GlobalArgs, printer: Printer) -> Result<Exit, CommandError> {
    let dir = args.dir.clone().unwrap_or_else(|| ".".into());
    std::fs::create_dir_all(&dir).map_err(|e| {
        CommandError::new(Exit::Usage, format!("cannot create {}: {e}", dir.display()))
    })?;
    let config_path = dir.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(CommandError::new(
            Exit::Usage,
            format!("{} already exists", config_path.display()),
        )
        .hint("ripcord init never overwrites a project; edit the file instead"));
    }
    let name = args.name.clone().unwrap_or_else(|| {
        std::fs::canonicalize(&dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "project".into())
    });
    let (url, url_env) = match (&global.url, args.engine) {
        (Some(url), _) if ripcord_core::url::has_password(url) => {
            return Err(CommandError::new(Exit::Usage, "the --url holds a password, which must not be written to ripcord.toml")
                .hint("run `ripcord init --engine postgres` (the target reads DATABASE_URL) and export the URL instead"));
        }
        (Some(url), _) => (Some(url.clone()), None),
        (None, Some(EngineChoice::Postgres)) => (None, Some("DATABASE_URL")),
        (None, _) => (None, None),
    };
    std::fs::write(&config_path, init_template(&name, url.as_deref(), url_env)).map_err(|e| {
        CommandError::new(
            Exit::Usage,
            format!("cannot write {}: {e}", config_path.display()),
        )
    })?;
    let changes = dir.join("changes");
    std::fs::create_dir_all(&changes).map_err(|e| {
        CommandError::new(
            Exit::Usage,
            format!("cannot create {}: {e}", changes.display()),
        )
    })?;
    printer.json(&serde_json::json!({ "config": config_path, "changes": changes }));
    printer.line(format!(
        "Created {} and {}/",
        config_path.display(),
        changes.display()
    ));
    printer.line("Next: `ripcord new <slug>` writes your first change.");
    Ok(Exit::Success)
}

pub fn new(args: &NewArgs, global: &GlobalArgs, printer: Printer) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let config = project.require_config()?;
    let slug_ok = !args.slug.is_empty()
        && args
            .slug
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !slug_ok {
        return Err(
            CommandError::new(Exit::Usage, format!("`{}` is not a valid slug", args.slug))
                .hint("use letters, digits, `_` and `-`, e.g. add_coupon"),
        );
    }
    // Names and IDs from file names only: another change may still be an unfilled template.
    let dir = config.changes_dir();
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        CommandError::new(Exit::Usage, format!("cannot read {}: {e}", dir.display()))
            .hint("create it, or point `[project] changes` in ripcord.toml at the right directory")
    })?;
    let mut existing: Vec<(ripcord_core::ChangeId, String)> = entries
        .flatten()
        .filter_map(|e| ripcord_core::change::parse_file_name(e.file_name().to_str()?))
        .collect();
    existing.sort_by(|a, b| a.0.cmp(&b.0));
    let mut requires = Vec::new();
    for required in &args.requires {
        let found = existing.iter().find(|(id, name)| {
            name == required || ripcord_core::ChangeId::parse(required).is_some_and(|r| r == *id)
        });
        match found {
            Some((_, name)) => requires.push(name.clone()),
            None => {
                return Err(CommandError::new(
                    Exit::Usage,
                    format!("--requires {required}: no such change"),
                )
                .hint("`ripcord status` lists the changes"));
            }
        }
    }
    let id =
        ripcord_core::plan::next_id_after(existing.last().map(|(id, _)| id), chrono::Utc::now());
    let path = dir.join(format!("{id}_{}.sql", args.slug));
    std::fs::write(&path, ripcord_core::change::template(&requires)).map_err(|e| {
        CommandError::new(Exit::Usage, format!("cannot write {}: {e}", path.display()))
    })?;
    printer.json(&serde_json::json!({ "change": format!("{id}_{}", args.slug), "path": path }));
    printer.line(format!("Created {}", path.display()));
    Ok(Exit::Success)
}

pub fn status(global: &GlobalArgs, printer: Printer) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let plan = project.plan()?;
    let mut target = project.target(global)?;
    let report = ripcord::status::status(&mut target, &plan)?;
    printer.json(&report);
    printer.block(render::status(&report));
    Ok(Exit::Success)
}

pub fn deploy_cmd(
    args: &DeployArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let plan = project.plan()?;
    let mut target = project.target(global)?;
    let policy = project
        .config
        .as_ref()
        .map(|c| c.config.safety.snapshot_before)
        .unwrap_or_default();
    let snapshot = match (args.snapshot, policy) {
        (false, ripcord_core::config::SnapshotBefore::Never) => None,
        (explicit, policy) => Some(ripcord::deploy::SnapshotBefore {
            store: std::sync::Arc::new(project.snapshot_store(None)?),
            only_destructive: !explicit
                && policy == ripcord_core::config::SnapshotBefore::Preserving,
            parallel: (std::thread::available_parallelism().map_or(2, |n| n.get()) / 2).max(1),
        }),
    };
    let options = DeployOptions {
        to: args.to.clone(),
        dry_run: args.dry_run,
        snapshot,
        accept_irreversible: args.accept_irreversible.clone(),
        checks: project
            .config
            .as_ref()
            .map(|c| c.config.checks.clone())
            .unwrap_or_default(),
        no_gate: args.no_gate,
    };
    if !args.dry_run {
        printer.line(format!("Deploying to {}", label(&target)));
    }
    let mut progress = ProgressLines {
        printer,
        target: target.name.clone(),
    };
    let report = match deploy(&mut target, &plan, &options, &mut progress) {
        Ok(report) => report,
        Err(error) => {
            // What the checks saw, then the refusal naming the failing check.
            if let ripcord::OpError::GateFailed { report, .. } = &error
                && !printer.json
            {
                printer.block(crate::checks::report(report, "Checks after the deploy"));
            }
            return Err(error.into());
        }
    };
    if args.dry_run {
        printer.json(&report);
        printer.block(render::deploy_dry_run(&report));
        return Ok(Exit::Success);
    }
    // `[capture] tables` are captured as soon as a deploy has created them.
    let configured = project
        .config
        .as_ref()
        .map(|c| c.config.capture.tables.clone())
        .unwrap_or_default();
    let captures =
        ripcord::capture::ensure_configured(&mut target, &configured, configured_mode(&project))?;
    let mut json = serde_json::to_value(&report).expect("reports serialize");
    json["capture"] = serde_json::to_value(&captures).expect("reports serialize");
    printer.json(&json);
    if let Some(snapshot) = &report.snapshot {
        printer.line(format!(
            "Snapshot {} of {} taken before the changes ({} rows); `ripcord snapshot restore {}` brings them back.",
            snapshot.id,
            snapshot.tables.join(", "),
            snapshot.rows,
            snapshot.id
        ));
    }
    if let Some(gate) = &report.gate {
        printer.block(crate::checks::report(gate, "Checks after the deploy"));
    }
    printer.block(render::deploy_summary(&report));
    for capture in captures.iter().filter(|c| c.result != "already") {
        printer.line(format!("  capture {}: {}", capture.table, capture.result));
    }
    Ok(Exit::Success)
}

pub fn revert_cmd(
    args: &RevertArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let plan = project.plan_if_any()?;
    let mut target = project.target(global)?;
    let selection = match (&args.selection.to, args.selection.last, args.selection.all) {
        (Some(to), _, _) => Selection::To(to.clone()),
        (_, Some(0), _) => return Err(CommandError::new(Exit::Usage, "--last needs at least 1")),
        (_, Some(n), _) => Selection::Last(n),
        (_, _, true) => Selection::All,
        _ => Selection::Last(1),
    };
    if !args.dry_run && !global.yes && printer.interactive() {
        let names = preview(&mut target, &plan, &selection)?;
        if names.is_empty() {
            printer.line(format!("Nothing to revert on {}.", target.name));
            return Ok(Exit::Success);
        }
        let question = format!(
            "Revert {} on {}?\n  {}\n",
            if names.len() == 1 {
                "1 change".to_string()
            } else {
                format!("{} changes", names.len())
            },
            label(&target),
            names.join("\n  ")
        );
        if !printer.confirm(&question) {
            printer.line("Nothing reverted.");
            return Ok(Exit::Refused);
        }
    }
    if !args.dry_run {
        printer.line(format!("Reverting on {}", label(&target)));
    }
    let options = RevertOptions {
        selection,
        dry_run: args.dry_run,
        checks: project
            .config
            .as_ref()
            .map(|c| c.config.checks.clone())
            .unwrap_or_default(),
    };
    let mut progress = ProgressLines {
        printer,
        target: target.name.clone(),
    };
    let report = revert(&mut target, &plan, &options, &mut progress)?;
    printer.json(&report);
    if args.dry_run {
        printer.block(render::revert_dry_run(&report));
    } else {
        printer.block(render::revert_summary(&report));
    }
    if let Some(checked) = &report.checked {
        let heading = match &checked.against {
            Some(_) => "Checks after the revert, compared with the state before its deploy",
            None => "Checks after the revert",
        };
        printer.block(crate::checks::report(checked, heading));
        if !checked.passed {
            return Err(CommandError::new(
                Exit::Failed,
                format!(
                    "the revert ran, but the data did not come back: check `{}` failed ({})",
                    checked.failures()[0].name,
                    checked.failures()[0].reasons.join("; ")
                ),
            )
            .hint("`ripcord check --against` the baseline shows the checks again; a snapshot restore or `batch revert` may bring the rest back"));
        }
    }
    Ok(Exit::Success)
}

pub fn drill(
    args: &crate::cli::DrillArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let plan = project.plan()?;
    let mut target = project.target(global)?;
    // Ctrl-C must not leave a scratch database behind.
    let _ = ctrlc::set_handler(|| {
        let dropped = ripcord::drill::drop_active_scratch();
        eprintln!(
            "ripcord: interrupted{}",
            if dropped {
                "; the scratch database was dropped"
            } else {
                ""
            }
        );
        std::process::exit(130);
    });
    let seed = project
        .config
        .as_ref()
        .and_then(|c| c.config.drill.seed.as_ref().map(|s| c.root.join(s)));
    let options = ripcord::drill::DrillOptions {
        scratch: args.scratch.clone(),
        from_target: args.from_target,
        changes: args.changes.as_deref().map(ripcord::drill::parse_range),
        keep_going: args.keep_going,
        seed,
        ignore_column_order: project.config.as_ref().is_some_and(|c| {
            c.config.drill.column_order == ripcord_core::config::ColumnOrder::Ignore
        }),
        hash_connections: project
            .config
            .as_ref()
            .and_then(|c| c.config.fingerprint.connections)
            .map(|n| n.get()),
    };
    printer.line(format!("Drill on a scratch copy of {}", label(&target)));
    let target_name = target.name.clone();
    let result = ripcord::drill::drill(&mut target, &plan, &options, &mut |outcome| {
        crate::events::step(
            "change_drilled",
            "drill",
            &target_name,
            Some(&outcome.change),
            Some(outcome.deploy_ms + outcome.revert_ms + outcome.redeploy_ms),
            if outcome.passed || outcome.skipped.is_some() {
                "success"
            } else {
                "failure"
            },
            outcome
                .problem
                .as_deref()
                .or(outcome.skipped.as_deref())
                .unwrap_or_default(),
        );
        printer.block(render::drill_outcome(outcome));
    });
    if result.is_err() && ripcord::drill::was_interrupted() {
        // The Ctrl-C handler dropped the scratch under us and ends the process itself.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    let report = result?;
    printer.json(&report);
    printer.block(render::drill_summary(&report));
    Ok(if report.passed {
        Exit::Success
    } else {
        Exit::Failed
    })
}

pub fn fingerprint(
    args: &crate::cli::FingerprintArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let mut target = project.target(global)?;
    let bar = spinner(&printer, format!("hashing the tables of {}", target.name));
    let report = ripcord::drill::fingerprint_target(&mut target, args.data_only);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    printer.json(&report);
    printer.block(render::fingerprint(&report));
    Ok(Exit::Success)
}

/// A spinner with the elapsed time on a terminal, for work that reports no steps
/// (none with -q, --json, --log-format json, or when stderr is not a terminal).
fn spinner(printer: &Printer, message: String) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if printer.quiet || printer.json || crate::events::json() || !std::io::stderr().is_terminal() {
        return None;
    }
    // Cleared when dropped, so an error path leaves no spinner behind.
    let bar =
        indicatif::ProgressBar::new_spinner().with_finish(indicatif::ProgressFinish::AndClear);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

pub fn verify(global: &GlobalArgs, printer: Printer) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let plan = project.plan_if_any()?;
    let mut target = project.target(global)?;
    let report = ripcord::verify::verify(&mut target, &plan)?;
    printer.json(&report);
    printer.block(render::verify(&report));
    Ok(if report.failed() > 0 {
        Exit::Failed
    } else {
        Exit::Success
    })
}

pub fn log(global: &GlobalArgs, printer: Printer) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let mut target = project.target(global)?;
    let events = ripcord::audit::history(&mut target)?;
    printer.json(&serde_json::json!({ "target": target.name, "events": events }));
    printer.block(render::history(&target.name, &events));
    Ok(Exit::Success)
}

pub fn rehash(
    args: &RehashArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    if args.reason.trim().is_empty() {
        return Err(CommandError::new(Exit::Usage, "--reason must say why")
            .hint("e.g. --reason \"fixed a typo in the verify query\""));
    }
    let project = Project::discover(global)?;
    let plan = project.plan()?;
    let mut target = project.target(global)?;
    let report = ripcord::rehash::rehash(&mut target, &plan, &args.change, &args.reason)?;
    printer.json(&report);
    if report.changed {
        printer.line(format!(
            "Recorded the current file of {} as its deployed definition ({} -> {}); reason kept in the audit chain.",
            report.change,
            short(&report.old_checksum),
            short(&report.new_checksum)
        ));
    } else {
        printer.line(format!(
            "{} already matches its deployed definition; nothing recorded.",
            report.change
        ));
    }
    Ok(Exit::Success)
}

fn short(checksum: &str) -> &str {
    &checksum[..checksum.len().min(17)]
}

pub fn audit(
    command: &AuditCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    if let AuditCommand::Keygen = command {
        let pair = ripcord::checkpoint::keygen()?;
        printer.json(&pair);
        printer.line(format!("private_key {}", pair.private_key));
        printer.line(format!("public_key  {}", pair.public_key));
        return Ok(Exit::Success);
    }
    let audit = project.config.as_ref().map(|c| c.config.audit.clone());
    let trusted: Vec<String> = audit.as_ref().map(|a| a.trusted_keys()).unwrap_or_default();
    let mut target = project.target(global)?;
    match command {
        AuditCommand::Keygen => unreachable!("handled above"),
        AuditCommand::RotateKey { new_public_key } => {
            let event = ripcord::audit::record_rotation(&mut target, new_public_key)?;
            printer.json(&event);
            printer.line(format!(
                "Recorded event #{}: signing moves to {}. Now put the new private key in the environment, set [audit] public_key to the new key and add the old one to previous_public_keys.",
                event.seq,
                serde_json::from_str::<serde_json::Value>(&event.detail).ok().and_then(|d| d["new_key"].as_str().map(String::from)).unwrap_or_default()
            ));
            Ok(Exit::Success)
        }
        AuditCommand::Checkpoint { out, store, post } => {
            let private = match audit.as_ref().and_then(|a| a.signing_key_env.clone()) {
                Some(variable) => Some(std::env::var(&variable).ok().filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                    CommandError::new(Exit::Usage, format!("[audit] signing_key_env names ${variable}, which is not set"))
                        .hint(format!("export {variable}=<private_key from `ripcord audit keygen`>, or remove signing_key_env to write unsigned checkpoints"))
                })?),
                None => None,
            };
            let checkpoint = ripcord::checkpoint::take(&mut target, private.as_deref())?;
            let text = checkpoint.render();
            if let Some(uri) = store {
                let store = project.snapshot_store(Some(uri.as_str()))?;
                let safe = ripcord::import::slug(&target.name);
                let name = format!("checkpoints/{safe}/{:012}.checkpoint", checkpoint.seq);
                store.put(&name, text.clone().into_bytes())?;
                eprintln!("Checkpoint kept in {} as {name}", store.uri());
            }
            if let Some(url) = post {
                ripcord_rollout::notify::post(url, "text/plain; charset=utf-8", &text).map_err(|e| {
                    CommandError::new(Exit::Engine, format!("the checkpoint was not posted: {e}"))
                        .hint("the anchor is unreachable or refused it; the checkpoint itself is fine, post it again")
                })?;
                eprintln!("Checkpoint posted to {}", ripcord_core::url::redact(url));
            }
            match out {
                Some(path) => {
                    std::fs::write(path, &text).map_err(|e| {
                        CommandError::new(
                            Exit::Usage,
                            format!("cannot write {}: {e}", path.display()),
                        )
                    })?;
                    printer.json(&checkpoint);
                    printer.line(format!(
                        "Checkpoint of {} at event {} written to {}{}",
                        target.name,
                        checkpoint.seq,
                        path.display(),
                        if checkpoint.signature.is_some() {
                            " (signed)"
                        } else {
                            ""
                        }
                    ));
                }
                None if printer.json => printer.json(&checkpoint),
                None => print!("{text}"),
            }
            Ok(Exit::Success)
        }
        AuditCommand::Verify {
            checkpoint: Some(path),
        } => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CommandError::new(Exit::Usage, format!("cannot read {}: {e}", path.display()))
            })?;
            let checkpoint = ripcord::checkpoint::Checkpoint::parse(&text)?;
            let public = audit.as_ref().and_then(|a| a.public_key.clone());
            let verdict = ripcord::checkpoint::check(&mut target, &checkpoint, public.as_deref())?;
            let report = ripcord::audit::verify(&mut target, &trusted)?;
            printer.json(&serde_json::json!({ "chain": report, "checkpoint": verdict }));
            printer.block(render::audit_verify(&report));
            printer.line(format!(
                "{} checkpoint: {}",
                if verdict.ok() { "OK" } else { "BROKEN" },
                verdict.detail
            ));
            Ok(if report.intact() && verdict.ok() {
                Exit::Success
            } else {
                Exit::Failed
            })
        }
        AuditCommand::Export { format: _, after } => {
            use std::io::Write as _;
            let events = ripcord::audit::events(&mut target)?;
            let mut out = std::io::stdout().lock();
            for event in events.iter().filter(|e| e.seq > *after) {
                let line = serde_json::to_string(event).expect("an event serializes");
                if writeln!(out, "{line}").is_err() {
                    break; // the reader went away (a closed pipe)
                }
            }
            Ok(Exit::Success)
        }
        AuditCommand::Log => {
            let events = ripcord::audit::events(&mut target)?;
            printer.json(&serde_json::json!({ "target": target.name, "events": events }));
            printer.block(render::audit_log(&target.name, &events));
            Ok(Exit::Success)
        }
        AuditCommand::Verify { checkpoint: None } => {
            let report = ripcord::audit::verify(&mut target, &trusted)?;
            printer.json(&report);
            printer.block(render::audit_verify(&report));
            Ok(if report.intact() {
                Exit::Success
            } else {
                Exit::Failed
            })
        }
    }
}

pub fn capture(
    command: &crate::cli::CaptureCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    use crate::cli::CaptureCommand;
    let project = Project::discover(global)?;
    let mut target = project.target(global)?;
    match command {
        CaptureCommand::Enable { tables, mode } => {
            let mode = mode.map_or_else(|| configured_mode(&project), CaptureMode::from);
            let tables = if tables.is_empty() {
                let configured = project
                    .config
                    .as_ref()
                    .map(|c| c.config.capture.tables.clone())
                    .unwrap_or_default();
                if configured.is_empty() {
                    return Err(CommandError::new(Exit::Usage, "no tables to capture")
                        .hint("name them (`ripcord capture enable public.orders`) or list them under [capture] tables in ripcord.toml"));
                }
                configured
            } else {
                tables.clone()
            };
            let enabled = ripcord::capture::enable(&mut target, &tables, mode)?;
            printer.json(&enabled);
            for table in &enabled {
                printer.line(format!(
                    "Capturing {} (rows identified by {}, {} mode)",
                    table.table,
                    table.key_columns.join(", "),
                    table.mode.as_str()
                ));
            }
            if mode == CaptureMode::Logical {
                printer.line(
                    "Changes reach the capture log on `ripcord capture sync` (run by `ripcord serve`, and before every batch revert and flashback).",
                );
            }
            Ok(Exit::Success)
        }
        CaptureCommand::Sync => {
            let report = ripcord::capture::sync(&mut target)?;
            printer.json(&report);
            printer.line(format!(
                "Synced {} transactions ({} row changes) into the capture log{}.",
                report.transactions,
                report.rows,
                report
                    .retained_wal_bytes
                    .map(|b| format!("; the slot retains {}", render::bytes(b)))
                    .unwrap_or_default()
            ));
            if let Some(bytes) = report.retained_wal_bytes {
                warn_retained_wal(&project, &printer, bytes)?;
            }
            Ok(Exit::Success)
        }
        CaptureCommand::Disable { tables } => {
            ripcord::capture::disable(&mut target, tables)?;
            printer.json(&serde_json::json!({ "disabled": tables }));
            printer.line(format!(
                "Stopped capturing {}; their logs are kept.",
                tables.join(", ")
            ));
            Ok(Exit::Success)
        }
        CaptureCommand::Status => {
            // Logical mode: the log's counts include what was committed up to now.
            if let Err(e) = ripcord::capture::sync(&mut target) {
                printer.warn(format!(
                    "capture sync failed, the counts below miss what it did not write: {e}"
                ));
            }
            let tables = ripcord::capture::status(&mut target)?;
            printer.json(&tables);
            printer.block(render::capture_status(&target.name, &tables));
            if let Some(bytes) = tables.iter().find_map(|t| t.retained_wal_bytes) {
                warn_retained_wal(&project, &printer, bytes)?;
            }
            Ok(Exit::Success)
        }
        CaptureCommand::Prune { before } => {
            let removed = ripcord::capture::prune(&mut target, before)?;
            printer.json(&serde_json::json!({ "removed": removed, "before": before }));
            printer.line(format!(
                "Removed {removed} log entries older than {before}."
            ));
            Ok(Exit::Success)
        }
    }
}

/// `[capture] mode` of ripcord.toml (trigger when unset).
fn configured_mode(project: &Project) -> CaptureMode {
    project
        .config
        .as_ref()
        .and_then(|c| c.config.capture.mode)
        .unwrap_or_default()
}

/// `[capture] max_retained_wal` in bytes (its default without a config).
pub(crate) fn max_retained_wal(project: &Project) -> Result<i64, CommandError> {
    project
        .config
        .as_ref()
        .map_or_else(
            || ripcord_core::config::CaptureConfig::default().max_retained_wal_bytes(),
            |c| c.config.capture.max_retained_wal_bytes(),
        )
        .map_err(|reason| {
            CommandError::new(Exit::Usage, reason)
                .hint("e.g. max_retained_wal = \"1GB\" under [capture]")
        })
}

/// Warn on stderr when the logical slot keeps more WAL than `[capture] max_retained_wal`.
fn warn_retained_wal(project: &Project, printer: &Printer, bytes: i64) -> Result<(), CommandError> {
    let limit = max_retained_wal(project)?;
    if bytes > limit {
        printer.warn(format!(
            "the capture slot retains {} of WAL, above [capture] max_retained_wal ({}): run `ripcord capture sync` (or keep `ripcord serve` running), or the server's disk fills",
            render::bytes(bytes),
            render::bytes(limit)
        ));
    }
    Ok(())
}

fn conflict_mode(mode: crate::cli::OnConflict) -> ripcord_core::capture::ConflictMode {
    match mode {
        crate::cli::OnConflict::Abort => ripcord_core::capture::ConflictMode::Abort,
        crate::cli::OnConflict::Skip => ripcord_core::capture::ConflictMode::Skip,
        crate::cli::OnConflict::Force => ripcord_core::capture::ConflictMode::Force,
    }
}

pub fn vault(
    command: &crate::cli::VaultCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    use crate::cli::VaultCommand;
    let project = Project::discover(global)?;
    let mut target = project.target(global)?;
    let (report, pruned) = match command {
        VaultCommand::List => (ripcord::vault::list(&mut target)?, false),
        VaultCommand::Prune {
            changes,
            older_than,
        } => {
            let older_than = older_than_arg(older_than.as_deref())?;
            // A name the target never saw is a typo: say so rather than "nothing to prune".
            let known: Vec<String> = target
                .engine
                .changes()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.name)
                .collect();
            if let Some(unknown) = changes.iter().find(|c| !known.contains(c)) {
                let error = CommandError::new(
                    Exit::Usage,
                    format!("no change `{unknown}` in the ledger of {}", target.name),
                );
                return Err(
                    match ripcord_core::suggest::did_you_mean(
                        unknown,
                        known.iter().map(String::as_str),
                    ) {
                        Some(s) => error.hint(format!("did you mean `{s}`?")),
                        None => {
                            error.hint("`ripcord vault list` shows the changes whose data is kept")
                        }
                    },
                );
            }
            (
                ripcord::vault::prune_older(&mut target, changes, older_than)?,
                true,
            )
        }
    };
    printer.json(&report);
    printer.block(render::vault(&report, pruned));
    Ok(Exit::Success)
}

pub fn batch(
    command: &crate::cli::BatchCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    use crate::cli::BatchCommand;
    let project = Project::discover(global)?;
    if let BatchCommand::Run { name, command } = command {
        let mut loader = std::process::Command::new(&command[0]);
        loader.args(&command[1..]);
        // A target is optional here: PostgreSQL loaders are tagged through PGOPTIONS alone.
        let mut target = project.target(global).ok();
        let success = ripcord::capture::run_tagged(target.as_mut(), name, &mut loader)?;
        // Logical mode: the loader's rows are in the log when the command returns.
        if let Some(target) = target.as_mut()
            && let Err(e) = ripcord::capture::sync(target)
        {
            printer.warn(format!(
                "capture sync after the loader failed (its changes stay in the replication slot; `ripcord capture sync` retries): {e}"
            ));
        }
        return Ok(if success { Exit::Success } else { Exit::Failed });
    }
    let mut target = project.target(global)?;
    match command {
        BatchCommand::List => {
            let batches = ripcord::capture::batches(&mut target)?;
            printer.json(&batches);
            printer.block(render::batches(&batches));
            Ok(Exit::Success)
        }
        BatchCommand::Revert {
            batch,
            on_conflict,
            dry_run,
        } => {
            let scope = ripcord_core::capture::UndoScope::Batch(batch.clone());
            let report = ripcord::capture::undo_with_progress(
                &mut target,
                &scope,
                conflict_mode(*on_conflict),
                *dry_run,
                &mut undo_progress(&printer),
            )?;
            printer.json(&report);
            printer.block(render::undo(&report, *dry_run));
            let blocked = !report.committed && !dry_run;
            Ok(if blocked { Exit::Failed } else { Exit::Success })
        }
        BatchCommand::Run { .. } => unreachable!("handled above"),
    }
}

/// Progress of a long undo on stderr: one line per step with the time since the start
/// (JSON lines when stderr is not a terminal); nothing with -q or --json.
fn undo_progress(printer: &Printer) -> impl FnMut(&ripcord_core::capture::UndoProgress) {
    use std::io::IsTerminal;
    let started = std::time::Instant::now();
    let enabled = !printer.quiet && !printer.json;
    let terminal = std::io::stderr().is_terminal();
    // On a terminal, each step's line goes above a spinner naming the step running.
    let bar = if enabled && terminal && !crate::events::json() {
        spinner(printer, "collecting the rows to undo".into())
    } else {
        None
    };
    move |p| {
        let seconds = started.elapsed().as_secs_f64();
        if crate::events::json() {
            tracing::info!(
                event = "undo_step",
                op = "undo",
                table = p.table.as_str(),
                step = p.step,
                rows = p.rows as u64,
                duration_ms = (seconds * 1000.0) as u64,
                ""
            );
            return;
        }
        if !enabled {
            return;
        }
        if terminal {
            let what = match p.step {
                "collected" => format!("{} rows to undo", p.rows),
                "checked" => format!("{} conflicting rows", p.rows),
                "deleted" => format!("{} inserted rows deleted", p.rows),
                _ => format!("{} rows given their old image", p.rows),
            };
            let line = format!("  {}: {what} ({seconds:.1} s)", p.table);
            match &bar {
                Some(bar) => {
                    bar.println(line);
                    bar.set_message(match p.step {
                        "collected" => "checking for conflicts",
                        "checked" => "deleting inserted rows",
                        _ => "putting old images back",
                    });
                }
                None => eprintln!("{line}"),
            }
        } else {
            let mut line = serde_json::to_value(p).expect("progress serializes");
            line["seconds"] = serde_json::json!((seconds * 1000.0).round() / 1000.0);
            eprintln!("{line}");
        }
    }
}

pub fn flashback(
    args: &crate::cli::FlashbackArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let mut target = project.target(global)?;
    let scope = ripcord_core::capture::UndoScope::After {
        table: args.table.clone(),
        after: args.to.clone(),
    };
    let report = ripcord::capture::undo_with_progress(
        &mut target,
        &scope,
        ripcord_core::capture::ConflictMode::Force,
        args.dry_run,
        &mut undo_progress(&printer),
    )?;
    printer.json(&report);
    printer.block(render::undo(&report, args.dry_run));
    Ok(Exit::Success)
}

/// A progress sink for snapshot work: a spinner on a terminal, JSON lines on stderr
/// otherwise (nothing with --quiet or --json).
fn snapshot_progress(printer: &Printer) -> ripcord::snapshot::ProgressSink {
    use std::io::IsTerminal;
    if crate::events::json() {
        let started = std::time::Instant::now();
        return std::sync::Arc::new(move |p: &ripcord::snapshot::Progress| {
            if p.done {
                tracing::info!(
                    event = if p.operation == "restore" {
                        "table_restored"
                    } else {
                        "table_snapshotted"
                    },
                    op = p.operation,
                    table = p.table.as_str(),
                    rows = p.rows,
                    bytes = p.bytes,
                    duration_ms = started.elapsed().as_millis() as u64,
                    ""
                );
            }
        });
    }
    if printer.quiet || printer.json {
        return ripcord::snapshot::no_progress();
    }
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        return std::sync::Arc::new(move |p: &ripcord::snapshot::Progress| {
            let mb = p.bytes as f64 / 1e6;
            if p.done {
                bar.println(format!(
                    "  {} {}: {} rows, {mb:.1} MB",
                    p.operation, p.table, p.rows
                ));
            } else {
                bar.set_message(format!("{} {}: {mb:.1} MB", p.operation, p.table));
            }
        });
    }
    std::sync::Arc::new(|p: &ripcord::snapshot::Progress| {
        if p.done {
            eprintln!("{}", serde_json::to_string(p).expect("progress serializes"));
        }
    })
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub fn snapshot(
    command: &crate::cli::SnapshotCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    use crate::cli::SnapshotCommand;
    let project = Project::discover(global)?;
    match command {
        SnapshotCommand::Create {
            tables,
            all: _,
            parallel,
            label,
            store,
        } => {
            let store = project.snapshot_store(store.store.as_deref())?;
            let mut target = project.target(global)?;
            let options = ripcord::snapshot::CreateOptions {
                tables: tables.clone(),
                label: label.clone(),
                parallel: *parallel,
                progress: snapshot_progress(&printer),
                change: None,
            };
            let summary = ripcord::snapshot::create(&mut target, &store, &options)?;
            printer.json(&summary);
            printer.line(format!(
                "Snapshot {} of {} in {}: {} rows, {} stored, data as of {}.",
                summary.id,
                summary.tables.join(", "),
                store.uri(),
                summary.rows,
                mb(summary.stored_bytes),
                summary.data_as_of.format("%Y-%m-%d %H:%M:%S%.3f UTC")
            ));
            Ok(Exit::Success)
        }
        SnapshotCommand::List { store } => {
            let store = project.snapshot_store(store.store.as_deref())?;
            let snapshots = ripcord::snapshot::list(&store)?;
            printer.json(&snapshots);
            if snapshots.is_empty() {
                printer.line(format!("No snapshots in {}.", store.uri()));
            }
            for s in &snapshots {
                printer.line(format!(
                    "{}  {}  {:>10} rows  {:>10}  {}  [{}]",
                    s.id,
                    s.data_as_of.format("%Y-%m-%d %H:%M:%S"),
                    s.rows,
                    mb(s.stored_bytes),
                    s.tables.join(", "),
                    s.label
                ));
            }
            Ok(Exit::Success)
        }
        SnapshotCommand::Verify { id, store } => {
            let store = project.snapshot_store(store.store.as_deref())?;
            let report = ripcord::snapshot::verify(&store, id)?;
            printer.json(&report);
            printer.line(format!(
                "Snapshot {} is intact: {} chunks, {} re-hashed, {} rows.",
                report.id,
                report.chunks,
                mb(report.raw_bytes),
                report.rows
            ));
            Ok(Exit::Success)
        }
        SnapshotCommand::Restore {
            id,
            tables,
            into,
            as_new_tables,
            parallel,
            store,
        } => {
            let store = project.snapshot_store(store.store.as_deref())?;
            let mut target = match into {
                Some(url) => ripcord::target::connect(
                    &ripcord_core::url::redact(url),
                    url,
                    std::path::Path::new("."),
                )?,
                None => project.target(global)?,
            };
            let options = ripcord::snapshot::RestoreOptions {
                tables: tables.clone(),
                as_new_tables: *as_new_tables,
                into_other_database: into.is_some(),
                parallel: *parallel,
                progress: snapshot_progress(&printer),
            };
            let report = ripcord::snapshot::restore(&mut target, &store, id, &options)?;
            printer.json(&report);
            let tables: Vec<String> = report
                .tables
                .iter()
                .map(|(t, rows)| format!("{t} ({rows} rows)"))
                .collect();
            printer.line(format!(
                "Restored {} from snapshot {} ({}).",
                tables.join(", "),
                report.id,
                report.placed
            ));
            if let Some(vault) = &report.vault {
                printer.line(format!(
                    "  The replaced data is kept in {vault} until `ripcord snapshot prune --older-than …` removes it."
                ));
            }
            if !report.repointed_foreign_keys.is_empty() {
                printer.line(format!(
                    "  Foreign keys re-pointed at the restored tables: {}",
                    report.repointed_foreign_keys.join(", ")
                ));
            }
            if !report.unvalidated_foreign_keys.is_empty() {
                printer.line(format!(
                    "  Left NOT VALID (existing rows violate them): {}",
                    report.unvalidated_foreign_keys.join(", ")
                ));
            }
            if !report.capture_reattached.is_empty() {
                printer.line(format!(
                    "  Capture continues on the restored tables: {}",
                    report.capture_reattached.join(", ")
                ));
            }
            Ok(Exit::Success)
        }
        SnapshotCommand::Prune {
            keep,
            older_than,
            store,
        } => {
            let store = project.snapshot_store(store.store.as_deref())?;
            let older_than = older_than_arg(older_than.as_deref())?;
            let mut target = project.target(global).ok();
            let report = ripcord::snapshot::prune(&store, target.as_mut(), *keep, older_than)?;
            printer.json(&report);
            printer.line(format!(
                "Removed {} snapshot(s){}{}.",
                report.removed.len(),
                if report.leftovers.is_empty() {
                    String::new()
                } else {
                    format!(", {} unfinished leftover(s)", report.leftovers.len())
                },
                if report.vaults.is_empty() {
                    String::new()
                } else {
                    format!(", vaults {}", report.vaults.join(", "))
                }
            ));
            Ok(Exit::Success)
        }
    }
}

pub fn diff(
    args: &crate::cli::DiffArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let options = ripcord::diff::DiffOptions {
        tables: args.table.clone(),
        key: (!args.key.is_empty()).then(|| args.key.clone()),
        row_limit: args.limit,
        repair_sql: args.sql,
    };
    // A side that is neither a URL nor a target may be a snapshot of the store.
    let snapshot_id =
        |text: &str| -> Result<Option<(ripcord::snapshot::Store, String)>, CommandError> {
            if text.contains("://") || text.starts_with("sqlite:") {
                return Ok(None);
            }
            if project
                .config
                .as_ref()
                .is_some_and(|c| c.config.targets.contains_key(text))
            {
                return Ok(None);
            }
            let store = project.snapshot_store(args.store.store.as_deref())?;
            let known = ripcord::snapshot::list(&store).unwrap_or_default();
            Ok(known
                .iter()
                .any(|s| s.id == text)
                .then(|| (store, text.to_string())))
        };
    let report = match (snapshot_id(&args.a)?, snapshot_id(&args.b)?) {
        (Some(_), Some(_)) => {
            return Err(CommandError::new(Exit::Usage, "both sides are snapshots")
                .hint("compare a snapshot with a database: restore one of them first (`ripcord snapshot restore ID --into URL`)"));
        }
        (Some((store, id)), None) => {
            let mut live = project.source(&args.b)?;
            ripcord::diff::diff_snapshot(&mut live, &store, &id, ripcord::diff::Side::A, &options)?
        }
        (None, Some((store, id))) => {
            let mut live = project.source(&args.a)?;
            ripcord::diff::diff_snapshot(&mut live, &store, &id, ripcord::diff::Side::B, &options)?
        }
        (None, None) => {
            let mut a = project.source(&args.a)?;
            let mut b = project.source(&args.b)?;
            ripcord::diff::diff(&mut a, &mut b, &options)?
        }
    };
    if args.sql {
        println!(
            "-- ripcord diff: statements that make {} equal {}",
            report.b, report.a
        );
        for table in &report.tables {
            for statement in &table.repair {
                println!("{statement}");
            }
        }
        eprint!("{}", render::diff(&report));
    } else {
        printer.json(&report);
        printer.block(render::diff(&report));
    }
    Ok(if report.total_differences == 0 {
        Exit::Success
    } else {
        Exit::Failed
    })
}

pub fn runbook(
    args: &crate::cli::RunbookArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let plan = project.plan()?;
    let mut target = project.target(global)?;
    let config = project.config.as_ref().map(|c| &c.config);
    let policy = config.map(|c| c.safety.snapshot_before).unwrap_or_default();
    let inputs = ripcord::runbook::RunbookInputs {
        to: args.to.as_deref(),
        snapshot: args.snapshot || policy != ripcord_core::config::SnapshotBefore::Never,
        checks: config.map_or(&[], |c| c.checks.as_slice()),
        health: config.map(|c| &c.health),
        notify: config.map_or(&[], |c| c.notify.as_slice()),
    };
    let book = ripcord::runbook::runbook(&mut target, &plan, inputs)?;
    if printer.json || args.format == crate::cli::RunbookFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&book).expect("the runbook serializes")
        );
    } else {
        print!("{}", ripcord::runbook::markdown(&book));
    }
    Ok(Exit::Success)
}

pub fn unlock(
    args: &crate::cli::UnlockArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let mut target = project.target(global)?;
    let report = ripcord::unlock::unlock(&mut target, args.force)?;
    match report.action {
        "refused" => {
            let holder = report
                .holder
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            Err(CommandError::new(
                Exit::Locked,
                format!("the lock of {} is held by {holder}, which may still run", target.name),
            )
            .hint("wait for it; if you know it is gone (it ran on another host or in a container that stopped), run `ripcord unlock --force`"))
        }
        action => {
            printer.json(&report);
            printer.line(match (action, &report.holder) {
                ("released", Some(holder)) => {
                    format!("Released the lock of {} held by {holder}.", target.name)
                }
                _ => format!("The lock of {} is free.", target.name),
            });
            Ok(Exit::Success)
        }
    }
}

pub fn import(
    args: &crate::cli::ImportArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let config = project.require_config()?;
    let into = args.into.clone().unwrap_or_else(|| config.changes_dir());
    // Which reverts ripcord could write depends on the engine of the default target.
    let engine = project.target(global).ok().map(|t| t.engine.kind());
    let report = ripcord::import::import(
        &args.from,
        &args.dir,
        &into,
        engine,
        args.dialect.as_deref(),
        args.dry_run,
    )?;
    printer.json(&report);
    printer.line(format!(
        "{} {} changes from {} ({}){}",
        if args.dry_run {
            "Would import"
        } else {
            "Imported"
        },
        report.changes.len(),
        args.dir.display(),
        args.from,
        if args.dry_run {
            "; nothing written"
        } else {
            ""
        }
    ));
    for change in &report.changes {
        let revert = match change.revert {
            "author" => "revert from the source".to_string(),
            "ripcord" => "no revert: ripcord writes it at deploy (vault)".to_string(),
            _ => format!(
                "NO REVERT: write one or declare `-- irreversible:` ({})",
                change.why.clone().unwrap_or_default()
            ),
        };
        printer.line(format!(
            "  {}  <- {}  · {revert}",
            change.file,
            change.sources.join(", ")
        ));
        for note in &change.notes {
            printer.line(format!("      note: {note}"));
        }
    }
    let needed = report
        .changes
        .iter()
        .filter(|c| c.revert == "needed")
        .count();
    if needed > 0 {
        printer.line(format!(
            "{needed} changes need a revert section or `-- irreversible: <reason>` before ripcord deploys them."
        ));
    }
    Ok(Exit::Success)
}

pub fn baseline(
    args: &crate::cli::BaselineArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let plan = project.plan()?;
    let mut target = project.target(global)?;
    let report = ripcord::baseline::baseline(
        &mut target,
        &plan,
        args.from_tool.as_deref(),
        args.up_to.as_deref(),
        args.dry_run,
    )?;
    printer.json(&report);
    printer.line(format!(
        "{} {} changes of {} as deployed (from {}){}",
        if report.dry_run {
            "Would record"
        } else {
            "Recorded"
        },
        report.recorded.len(),
        target.name,
        report.from,
        if report.dry_run {
            "; nothing written"
        } else {
            ", nothing run"
        }
    ));
    for name in &report.recorded {
        printer.line(format!("  = {name}"));
    }
    Ok(Exit::Success)
}

/// `--older-than` of the prune commands, e.g. `90d` or `12h`.
fn older_than_arg(text: Option<&str>) -> Result<Option<std::time::Duration>, CommandError> {
    text.map(|text| {
        humantime::parse_duration(text).map_err(|e| {
            CommandError::new(Exit::Usage, format!("invalid --older-than `{text}`: {e}"))
                .hint("write e.g. 90d, 12h or 30min")
        })
    })
    .transpose()
}
