//! All output goes through the [`Printer`]: it knows about `--json`, `-q`/`-v`,
//! terminals and `NO_COLOR` (colors are stripped by `anstream` when stdout is not a
//! terminal or `NO_COLOR` is set).

use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};
use serde::Serialize;

/// Styles used in human output.
pub mod style {
    use super::*;
    /// Something done.
    pub const OK: Style = AnsiColor::Green.on_default().bold();
    /// Something undone.
    pub const UNDO: Style = AnsiColor::Yellow.on_default().bold();
    /// Something wrong.
    pub const BAD: Style = AnsiColor::Red.on_default().bold();
    /// Headings.
    pub const HEAD: Style = Style::new().bold();
    /// Secondary text.
    pub const DIM: Style = Style::new().dimmed();
}

/// Wrap `text` in `style` (stripped later when colors are off).
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// Where output goes and in which form.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// One JSON document on stdout.
    pub json: bool,
    /// Only errors.
    pub quiet: bool,
    /// Print statements as they run.
    pub verbose: bool,
}

impl Printer {
    /// Print a line of human output (nothing with `--json` or `-q`).
    pub fn line(&self, text: impl AsRef<str>) {
        if self.json || self.quiet {
            return;
        }
        let mut out = anstream::stdout();
        let _ = writeln!(out, "{}", text.as_ref());
    }

    /// Print a block of human output as is.
    pub fn block(&self, text: impl AsRef<str>) {
        if self.json || self.quiet {
            return;
        }
        let mut out = anstream::stdout();
        let _ = write!(out, "{}", text.as_ref());
        let _ = out.flush();
    }

    /// Print the JSON document (only with `--json`).
    pub fn json(&self, value: &impl Serialize) {
        if self.json {
            let text = serde_json::to_string_pretty(value).expect("reports serialize");
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{text}");
        }
    }

    /// Print a warning on stderr (even with `--json`, never with `-q`).
    pub fn warn(&self, text: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let mut err = anstream::stderr();
        let _ = writeln!(err, "{} {}", paint(style::UNDO, "warning:"), text.as_ref());
    }

    /// Whether stdout shows colors.
    pub fn stdout_color(&self) -> bool {
        std::env::var_os(ripcord::env_vars::NO_COLOR).is_none() && std::io::stdout().is_terminal()
    }

    /// Whether stderr shows colors.
    pub fn stderr_color(&self) -> bool {
        std::env::var_os(ripcord::env_vars::NO_COLOR).is_none() && std::io::stderr().is_terminal()
    }

    /// Whether we may ask the person at the terminal.
    pub fn interactive(&self) -> bool {
        !self.json && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    }

    /// Ask a yes/no question on the terminal (default no).
    pub fn confirm(&self, question: &str) -> bool {
        let mut err = anstream::stderr();
        let _ = write!(err, "{question} [y/N] ");
        let _ = err.flush();
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }
}
