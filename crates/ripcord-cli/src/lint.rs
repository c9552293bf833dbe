//! `ripcord lint`: guardrail findings for change files, as diagnostics with the source
//! highlighted, JSON, or SARIF 2.1.0 for code-scanning tools; and `ripcord plan`, the
//! same verdicts per statement of a target's pending changes.

use ripcord_core::Change;
use ripcord_guard::{ColumnTypes, Finding, Severity, lint_change_with, rule_info};
use serde_json::json;

use crate::cli::{GlobalArgs, LintArgs, LintFormat, PlanArgs};
use crate::error::{CommandError, Exit};
use crate::printer::Printer;
use crate::settings::Project;

/// The changes to lint, in deploy order, with a finding for each file that cannot be
/// read. Project files are read as change files; files named on the command line may
/// also be other tools' plain migrations (one deploy section).
fn changes_to_lint(
    args: &LintArgs,
    global: &GlobalArgs,
) -> Result<(Vec<Change>, Vec<Finding>), CommandError> {
    if let Some(tool) = &args.from {
        return other_tools_layout(tool, args);
    }
    if args.files.is_empty() {
        let project = Project::discover(global)?;
        let plan = project.plan()?;
        let invalid = plan
            .invalid()
            .iter()
            .map(|f| Finding::invalid_file(&f.error))
            .collect();
        return Ok((plan.changes().to_vec(), invalid));
    }
    let mut changes = Vec::new();
    let mut invalid = Vec::new();
    for path in &args.files {
        match ripcord_core::change::read_any_sql(path) {
            Ok(change) => changes.push(change),
            Err(error) => invalid.push(Finding::invalid_file(&error)),
        }
    }
    Ok((changes, invalid))
}

/// The deploy parts of a directory laid out by `tool`, each located in its own source
/// file: where the deploy SQL is a stretch of the file (the whole file, or the part after
/// goose's or dbmate's up marker), the change is the file up to its end, so that line
/// numbers and snippets are the file's; only the marker comments precede it.
fn other_tools_layout(
    tool: &str,
    args: &LintArgs,
) -> Result<(Vec<Change>, Vec<Finding>), CommandError> {
    let [dir] = args.files.as_slice() else {
        let mut error = CommandError::new(
            Exit::Usage,
            format!(
                "lint --from {tool} takes one directory, not {} paths",
                args.files.len()
            ),
        );
        error.hint = Some(format!("ripcord lint --from {tool} path/to/migrations"));
        return Err(error);
    };
    let dialect = args.dialect.as_deref().unwrap_or("postgres");
    let imported = ripcord::import::read_layout(tool, dir, dialect)?;
    let mut changes = Vec::new();
    let mut invalid = Vec::new();
    for migration in imported {
        let source = dir.join(&migration.sources[0]);
        let file = std::fs::read_to_string(&source).unwrap_or_default();
        let text = match file.find(migration.deploy.as_str()) {
            Some(at) => &file[..at + migration.deploy.len()],
            None => migration.deploy.as_str(),
        };
        match ripcord_core::change::parse_any_sql(&source, text) {
            Ok(mut change) => {
                if migration.no_transaction {
                    change.transaction = ripcord_core::TransactionMode::None;
                }
                changes.push(change);
            }
            Err(error) => invalid.push(Finding::invalid_file(&error)),
        }
    }
    Ok((changes, invalid))
}

/// One finding as `--format json` prints it.
fn finding_json(finding: &Finding) -> serde_json::Value {
    json!({
        "file": finding.location.name.display().to_string(),
        "line": finding.line,
        "column": finding.column,
        "rule": finding.rule,
        "severity": finding.severity,
        "class": finding.class,
        "lock": finding.lock,
        "rewrite": finding.rewrite,
        "message": finding.message,
        "hint": finding.hint,
    })
}

/// The findings as a SARIF 2.1.0 log.
fn sarif(findings: &[Finding]) -> serde_json::Value {
    let mut rule_ids: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
    rule_ids.sort();
    rule_ids.dedup();
    let rules: Vec<serde_json::Value> = rule_ids
        .iter()
        .map(|id| {
            let info = rule_info(id);
            json!({
                "id": id,
                "shortDescription": { "text": id.replace('-', " ") },
                "help": { "text": info.hint.unwrap_or("see the finding's message") },
                "properties": { "reversibility": info.class, "lock": info.lock, "rewrite": info.rewrite },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            let end = ripcord_core::LineCol::of(&f.location.text, f.location.span.end);
            json!({
                "ruleId": f.rule,
                "ruleIndex": rule_ids.iter().position(|id| *id == f.rule),
                "level": match f.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "message": { "text": match &f.hint {
                    Some(hint) => format!("{} ({hint})", f.message),
                    None => f.message.clone(),
                }},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": f.location.name.display().to_string().replace('\\', "/") },
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "endLine": end.line,
                            "endColumn": end.column,
                        }
                    }
                }],
                "properties": { "reversibility": f.class, "lock": f.lock, "rewrite": f.rewrite },
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "ripcord",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/ripcord",
                "rules": rules,
            }},
            "results": results,
        }]
    })
}

/// A finding as a diagnostic with its source highlighted.
fn diagnostic(finding: &Finding) -> CommandError {
    let mut label = finding.rule.clone();
    if let Some(lock) = finding.lock {
        label.push_str(&format!(" · takes {lock}"));
    }
    if finding.rewrite {
        label.push_str(" · rewrites the table");
    }
    let class = match finding.class {
        ripcord_guard::Reversibility::Safe => "reversible",
        ripcord_guard::Reversibility::Preserving => "destroys data: a revert needs it preserved",
        ripcord_guard::Reversibility::Irreversible => "irreversible",
    };
    let mut e = CommandError::new(
        Exit::Failed,
        format!("[{}] {} ({class})", finding.rule, finding.message),
    );
    e.warning = finding.severity == Severity::Warning;
    if let Some(hint) = &finding.hint {
        e = e.hint(hint.clone());
    }
    e.at(finding.location.clone(), Some(label))
}

pub fn run(args: &LintArgs, global: &GlobalArgs, printer: Printer) -> Result<Exit, CommandError> {
    let format = if global.json {
        LintFormat::Json
    } else {
        args.format
    };
    let (changes, mut findings) = match changes_to_lint(args, global) {
        Ok(found) => found,
        // json and sarif readers always get a document, also when nothing could be read.
        Err(error) if format != LintFormat::Human => {
            let location = error
                .location
                .clone()
                .unwrap_or_else(|| ripcord_core::SourceLocation {
                    name: ".".into(),
                    text: "".into(),
                    span: 0..0,
                });
            (
                Vec::new(),
                vec![Finding::problem(
                    "invalid-file",
                    error.message.clone(),
                    error.hint.clone(),
                    location,
                )],
            )
        }
        Err(error) => return Err(error),
    };
    // Column types as the changes before each one leave them, so that a type change is
    // judged against the type it replaces.
    let mut types = ColumnTypes::new();
    for change in &changes {
        findings.extend(lint_change_with(change, &types));
        types.learn_change(change);
    }
    let files = changes.len() + findings.iter().filter(|f| f.rule == "invalid-file").count();
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error || args.deny_warnings)
        .count();
    let warnings = findings.len() - errors;
    match format {
        LintFormat::Json => {
            let doc = json!({
                "files": files,
                "errors": errors,
                "warnings": warnings,
                "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        }
        LintFormat::Sarif => {
            println!(
                "{}",
                serde_json::to_string_pretty(&sarif(&findings)).expect("json")
            );
        }
        LintFormat::Human => {
            for finding in &findings {
                printer.block(diagnostic(finding).render(printer.stdout_color()));
            }
            printer.line(format!(
                "{} {} checked: {errors} error{}, {warnings} warning{}.",
                files,
                if files == 1 { "change" } else { "changes" },
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" },
            ));
        }
    }
    Ok(if errors > 0 {
        Exit::Failed
    } else {
        Exit::Success
    })
}

pub fn plan(args: &PlanArgs, global: &GlobalArgs, printer: Printer) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let plan = project.plan()?;
    let mut target = project.target(global)?;
    let policy = project
        .config
        .as_ref()
        .map(|c| c.config.safety.snapshot_before)
        .unwrap_or_default();
    let nets = ripcord::plan::SafetyNets {
        snapshot: args.snapshot || policy != ripcord_core::config::SnapshotBefore::Never,
    };
    let report = ripcord::plan::plan(&mut target, &plan, args.to.as_deref(), nets)?;
    printer.json(&report);
    let count = report.changes.len();
    printer.line(format!(
        "Plan for {}: {count} pending {}",
        crate::render::target_label(&report.target, &report.url),
        if count == 1 { "change" } else { "changes" }
    ));
    for change in &report.changes {
        let mut about = vec![match change.transaction {
            ripcord_core::TransactionMode::PerChange => "one transaction".to_string(),
            ripcord_core::TransactionMode::None => "statement by statement".to_string(),
        }];
        about.push(if change.revert {
            "revert section".into()
        } else if let Some(reason) = &change.irreversible {
            format!("irreversible: {reason}")
        } else if change.revert_by == "ripcord" {
            "no revert section: ripcord writes the revert, with the vault".into()
        } else {
            "no revert section: deploy needs --accept-irreversible".into()
        });
        printer.line(format!("  {} ({})", change.change, about.join(", ")));
        for statement in &change.statements {
            let class = match statement.class {
                ripcord_guard::Reversibility::Safe => "safe",
                ripcord_guard::Reversibility::Preserving => "preserving",
                ripcord_guard::Reversibility::Irreversible => "irreversible",
            };
            let mut verdict = vec![class.to_string()];
            if let Some(lock) = statement.lock {
                verdict.push(lock.to_string());
            }
            if statement.rewrite {
                verdict.push("rewrites the table".into());
            }
            if !statement.rules.is_empty() {
                verdict.push(statement.rules.join(", "));
            }
            printer.line(format!("    {}  {}", statement.at, statement.sql));
            printer.line(format!("      {}", verdict.join(" · ")));
            printer.line(format!("      safety net: {}", statement.safety_net));
        }
    }
    Ok(Exit::Success)
}
