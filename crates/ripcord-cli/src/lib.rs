//! The `ripcord` command line: clap definitions ([`cli`]), settings resolution
//! ([`settings`]), output ([`printer`], [`render`]) and the mapping of every failure
//! to a documented exit code ([`error`]). The work itself lives in the `ripcord` crate.

pub mod checks;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod error;
pub mod events;
mod lint;
pub mod printer;
pub mod render;
pub mod rollout;
pub mod serve;
pub mod settings;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};
use crate::error::{CommandError, Exit};
use crate::printer::Printer;

/// Parse the command line, run the command, print any error, return the exit code.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let printer = Printer {
        json: cli.global.json,
        quiet: cli.global.quiet,
        verbose: cli.global.verbose > 0,
    };
    events::install(cli.global.log_format, cli.global.quiet);
    let started = std::time::Instant::now();
    let result = run(&cli, printer);
    // The command's own end, as one event: its outcome, exit code and duration.
    let op = matches.subcommand_name().unwrap_or("ripcord");
    let target = match (&cli.global.url, &cli.global.target) {
        (Some(url), _) => ripcord_core::url::redact(url),
        (None, Some(name)) => name.clone(),
        (None, None) => String::new(),
    };
    let (outcome, exit, message) = match &result {
        Ok(exit) => ("success", *exit, String::new()),
        Err(error) => ("failure", error.exit, error.message.clone()),
    };
    tracing::info!(
        event = "command_finished",
        op,
        target = target.as_str(),
        outcome,
        exit = exit.code() as u64,
        duration_ms = started.elapsed().as_millis() as u64,
        "{message}"
    );
    match result {
        Ok(exit) => exit.into(),
        Err(error) => {
            if printer.json {
                printer.json(&error.to_json());
            }
            eprint!("{}", error.render(printer.stderr_color()));
            error.exit.into()
        }
    }
}

/// Write generated text to stdout; a reader that stops early (`| head`) is fine.
fn write_stdout(text: &[u8]) -> Result<Exit, CommandError> {
    use std::io::Write as _;
    match std::io::stdout().write_all(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CommandError::new(
            Exit::Failed,
            format!("cannot write to stdout: {e}"),
        )),
        _ => Ok(Exit::Success),
    }
}

fn run(cli: &Cli, printer: Printer) -> Result<Exit, CommandError> {
    let global = &cli.global;
    match &cli.command {
        Command::Init(args) => commands::init(args, global, printer),
        Command::New(args) => commands::new(args, global, printer),
        Command::Lint(args) => lint::run(args, global, printer),
        Command::Plan(args) => lint::plan(args, global, printer),
        Command::Runbook(args) => commands::runbook(args, global, printer),
        Command::Status => commands::status(global, printer),
        Command::Deploy(args) => commands::deploy_cmd(args, global, printer),
        Command::Revert(args) => commands::revert_cmd(args, global, printer),
        Command::Drill(args) => commands::drill(args, global, printer),
        Command::Fingerprint(args) => commands::fingerprint(args, global, printer),
        Command::Check(args) => checks::run(args, global, printer),
        Command::Rollout(args) => rollout::rollout(args, global, printer),
        Command::Recover(args) => rollout::recover(args, global, printer),
        Command::Flag(command) => rollout::flag(command, global, printer),
        Command::Diff(args) => commands::diff(args, global, printer),
        Command::Verify => commands::verify(global, printer),
        Command::Log => commands::log(global, printer),
        Command::Rehash(args) => commands::rehash(args, global, printer),
        Command::Snapshot(command) => commands::snapshot(command, global, printer),
        Command::Audit(command) => commands::audit(command, global, printer),
        Command::Capture(command) => commands::capture(command, global, printer),
        Command::Batch(command) => commands::batch(command, global, printer),
        Command::Vault(command) => commands::vault(command, global, printer),
        Command::Flashback(args) => commands::flashback(args, global, printer),
        Command::Serve(args) => serve::serve(args, global, printer),
        Command::Unlock(args) => commands::unlock(args, global, printer),
        Command::Import(args) => commands::import(args, global, printer),
        Command::Baseline(args) => commands::baseline(args, global, printer),
        Command::Completions { shell } => {
            let mut command = <Cli as CommandFactory>::command();
            let mut text = Vec::new();
            clap_complete::generate(*shell, &mut command, "ripcord", &mut text);
            write_stdout(&text)
        }
        Command::Man => {
            let mut text = Vec::new();
            clap_mangen::Man::new(<Cli as CommandFactory>::command())
                .render(&mut text)
                .map_err(|e| {
                    CommandError::new(Exit::Failed, format!("cannot render the manual: {e}"))
                })?;
            write_stdout(&text)
        }
        Command::Demo(args) => demo::run(args, printer),
    }
}
