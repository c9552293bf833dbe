//! The `ripcord` command line: clap definitions ([`cli`]), settings resolution
//! ([`settings`]), output ([`printer`], [`render`]) and the mapping of every failure
//! to a documented exit code ([`error`]). The work itself lives in the `ripcord` crate.

pub mod checks;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod error;
mod lint;
pub mod printer;
pub mod render;
pub mod rollout;
pub mod serve;
pub mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::{CommandError, Exit};
use crate::printer::Printer;

/// Parse the command line, run the command, print any error, return the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let printer = Printer {
        json: cli.global.json,
        quiet: cli.global.quiet,
        verbose: cli.global.verbose > 0,
    };
    match run(&cli, printer) {
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

fn run(cli: &Cli, printer: Printer) -> Result<Exit, CommandError> {
    let global = &cli.global;
    match &cli.command {
        Command::Init(args) => commands::init(args, global, printer),
        Command::New(args) => commands::new(args, global, printer),
        Command::Lint(args) => lint::run(args, global, printer),
        Command::Plan(args) => lint::plan(args, global, printer),
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
        Command::Demo(args) => demo::run(args, printer),
    }
}
