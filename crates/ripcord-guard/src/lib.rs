//! Guardrails (DESIGN §5.3), first part: every statement of a change's deploy section is
//! read before it runs and reported with the risk it carries: the lock it takes, whether
//! it rewrites the table, and whether what it does can be undone (its reversibility
//! class). Lock and destructive-statement rules come from squawk's own rule crate
//! (`squawk-linter`, pinned with its pure-Rust PostgreSQL parser); ripcord adds the
//! reversibility class, its own rules for data-destroying DML, and suppressions that
//! must give a reason.
#![forbid(unsafe_code)]

pub mod column_types;
mod effects;
mod rules;
mod suppress;

use std::ops::Range;

use ripcord_core::{Change, SourceLocation, TransactionMode};
use serde::Serialize;
use squawk_linter::{Linter, Rule};
use squawk_syntax::SourceFile;

pub use column_types::ColumnTypes;
pub use effects::statement_effects;
pub use rules::{RuleInfo, known_rule, own_rules, rule_info, rules};

/// How bad a finding is: errors fail `ripcord lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails the lint.
    Error,
    /// Reported; fails only with `--deny-warnings`.
    Warning,
}

/// Whether what a statement does can be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reversibility {
    /// An inverse statement undoes it exactly.
    Safe,
    /// It destroys rows or values; undoing it needs them preserved first.
    Preserving,
    /// Nothing ripcord can keep brings it back.
    Irreversible,
}

/// One finding in a change file.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Rule id, e.g. `ban-drop-column`.
    pub rule: String,
    /// Error or warning.
    pub severity: Severity,
    /// The statement's reversibility class.
    pub class: Reversibility,
    /// The lock it takes, when the rule is about one.
    pub lock: Option<&'static str>,
    /// Whether it rewrites the table.
    pub rewrite: bool,
    /// What is wrong.
    pub message: String,
    /// What to do instead.
    pub hint: Option<String>,
    /// Where in the file.
    #[serde(skip)]
    pub location: SourceLocation,
    /// `path:line:column`.
    pub at: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Finding {
    fn new(
        change: &Change,
        rule: &str,
        message: String,
        hint: Option<String>,
        span: Range<usize>,
    ) -> Finding {
        Finding::problem(rule, message, hint, change.location(span))
    }
}

impl Finding {
    /// A file that cannot be read as a change, as a finding (`invalid-file`), so that
    /// `lint` reports it with the others in every format.
    pub fn invalid_file(error: &ripcord_core::change::ChangeFileError) -> Finding {
        use ripcord_core::change::ChangeFileError;
        let (message, hint, location) = match error {
            ChangeFileError::Syntax {
                message,
                hint,
                location,
            } => (message.clone(), hint.clone(), location.clone()),
            ChangeFileError::BadFileName { path } | ChangeFileError::Io { path, .. } => (
                error.to_string(),
                None,
                SourceLocation {
                    name: path.clone(),
                    text: std::fs::read_to_string(path).unwrap_or_default().into(),
                    span: 0..0,
                },
            ),
        };
        Finding::problem("invalid-file", message, hint, location)
    }

    /// A finding of `rule` at `location` (a statement, or a file that cannot be read).
    pub fn problem(
        rule: &str,
        message: String,
        hint: Option<String>,
        location: SourceLocation,
    ) -> Finding {
        let info = rule_info(rule);
        let start = location.start();
        Finding {
            rule: rule.into(),
            severity: info.severity,
            class: info.class,
            lock: info.lock,
            rewrite: info.rewrite,
            message,
            hint: hint.or_else(|| info.hint.map(str::to_string)),
            at: location.display_short(),
            line: start.line,
            column: start.column,
            location,
        }
    }
}

/// squawk rules that do not apply to ripcord changes.
fn excluded() -> Vec<Rule> {
    vec![
        // ripcord sets lock_timeout and statement_timeout itself, from [safety].
        Rule::RequireTimeoutSettings,
        Rule::RequireLockTimeout,
        Rule::RequireStatementTimeout,
        // ripcord owns the transaction and refuses BEGIN/COMMIT in a change.
        Rule::TransactionNesting,
        Rule::BanUncommittedTransaction,
        // Replaced by statement-needs-own-transaction, which knows how ripcord runs
        // the change (squawk only flags it when other statements share the file).
        Rule::BanConcurrentIndexCreationInTransaction,
    ]
}

/// Lint the deploy section of `change`; suppressions (`-- ripcord:allow <rule> because
/// <reason>`) are applied and checked.
pub fn lint_change(change: &Change) -> Vec<Finding> {
    lint_change_with(change, &ColumnTypes::new())
}

/// [`lint_change`] knowing the column types before the change (from earlier changes or
/// the target), so that a type change can be judged against the type it replaces.
pub fn lint_change_with(change: &Change, known: &ColumnTypes) -> Vec<Finding> {
    suppress::apply(change, classify_change_with(change, known))
}

/// Every finding on the deploy section of `change`, suppressions ignored: what the
/// statements are, whatever the author accepted (for `plan` and safety nets).
pub fn classify_change(change: &Change) -> Vec<Finding> {
    classify_change_with(change, &ColumnTypes::new())
}

/// [`classify_change`] knowing the column types before the change.
pub fn classify_change_with(change: &Change, known: &ColumnTypes) -> Vec<Finding> {
    let mut types = known.clone();
    let body = change.deploy.body.clone();
    let sql = &change.text[body.clone()];
    let parsed = SourceFile::parse(sql);
    let mut findings = Vec::new();
    for error in parsed.errors() {
        let range = error.range();
        let start = body.start + usize::from(range.start());
        let end = (body.start + usize::from(range.end())).max(start);
        findings.push(Finding::new(
            change,
            "unparsed-statement",
            format!("the statement could not be parsed ({})", error.message()),
            None,
            start..end,
        ));
    }
    let mut linter = Linter::with_rules(&[], &excluded());
    linter.settings.assume_in_transaction = change.transaction == TransactionMode::PerChange;
    // Re-runnable statements matter only where a failure leaves earlier statements
    // applied and the rerun repeats one (`transaction: none`); a one-transaction change
    // rolls back whole.
    if change.transaction == TransactionMode::PerChange {
        linter.rules.remove(&Rule::PreferRobustStmts);
    }
    for violation in linter.lint(&parsed, sql) {
        let start = body.start + usize::from(violation.text_range.start());
        let end = body.start + usize::from(violation.text_range.end());
        let rule = violation.code.to_string();
        findings.push(Finding::new(
            change,
            &rule,
            violation.message,
            violation.help,
            start..end,
        ));
    }
    for span in &change.deploy.statements {
        let in_transaction = change.transaction == TransactionMode::PerChange;
        let statement = &change.text[span.clone()];
        for (rule, message) in rules::ripcord_rules(statement, in_transaction, &types) {
            findings.push(Finding::new(change, rule, message, None, span.clone()));
        }
        types.learn(statement);
    }
    if change.deploy.statements.is_empty() {
        let marker = change.deploy.body.start.saturating_sub(1);
        findings.push(Finding::new(
            change,
            "empty-deploy",
            "the deploy section has no statements: deploy records the change as a no-op".into(),
            None,
            line_start(&change.text, marker)..marker,
        ));
    }
    if let Some(verify) = &change.verify {
        for span in &verify.statements {
            if let Some(what) = rules::writes(&change.text[span.clone()]) {
                findings.push(Finding::new(
                    change,
                    "verify-writes",
                    format!("the verify section {what}: verify must not change anything, and ripcord undoes it"),
                    None,
                    span.clone(),
                ));
            }
        }
    }
    let statements: Vec<&str> = change
        .deploy
        .statements
        .iter()
        .map(|span| &change.text[span.clone()])
        .collect();
    for (index, rule, message) in rules::change_rules(&statements) {
        let span = change.deploy.statements[index].clone();
        findings.push(Finding::new(change, rule, message, None, span));
    }
    merge_same_hazard(&mut findings);
    findings.sort_by_key(|f| (f.location.span.start, f.rule.clone()));
    findings
}

/// Rules that report one hazard twice: ripcord's (kept, it knows more) and squawk's
/// (dropped where both fire on the same statement). A suppression of either name
/// silences the finding kept.
pub(crate) const SAME_HAZARD: &[(&str, &str)] =
    &[("set-not-null-scan", "adding-not-nullable-field")];

/// Whether a suppression of `named` covers a finding of `rule`.
pub(crate) fn same_hazard(rule: &str, named: &str) -> bool {
    rule == named
        || SAME_HAZARD.iter().any(|(ours, theirs)| {
            (rule == *ours && named == *theirs) || (rule == *theirs && named == *ours)
        })
}

fn merge_same_hazard(findings: &mut Vec<Finding>) {
    let kept: Vec<(String, std::ops::Range<usize>)> = findings
        .iter()
        .filter(|f| SAME_HAZARD.iter().any(|(ours, _)| f.rule == *ours))
        .map(|f| (f.rule.clone(), f.location.span.clone()))
        .collect();
    findings.retain(|f| {
        !SAME_HAZARD.iter().any(|(ours, theirs)| {
            f.rule == *theirs
                && kept
                    .iter()
                    .any(|(rule, span)| rule == ours && span.contains(&f.location.span.start))
        })
    });
}

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests;
