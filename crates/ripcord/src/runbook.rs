//! `ripcord runbook`: what the on-call engineer needs before the pending deploy, in one
//! document: each change with its risk class, locks and safety nets, how to revert it
//! (the exact command, its revert SQL or the revert ripcord writes) and what the revert
//! restores, the checks and probes that gate it, who is notified, and a rough time from
//! the sizes of the tables it touches. Reads the target; changes nothing. The output
//! depends only on the project and the target's state (no clock), so it can be kept
//! under review with the change.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use ripcord_core::config::{CheckConfig, CheckSeverity, HealthConfig, NotifyConfig};
use ripcord_core::vault::Effect;
use ripcord_core::{Change, Plan, SectionKind, TableSize, TransactionMode};
use ripcord_guard::Reversibility;
use serde::Serialize;

use crate::error::OpError;
use crate::plan::{SafetyNets, StatementPlan};
use crate::target::Target;

/// Seconds per million rows a statement rewrites, copies into the vault or changes;
/// a rough figure for a server with its data in memory, said as such in the runbook.
const SECONDS_PER_MILLION_ROWS: f64 = 1.0;
/// Seconds for any other statement.
const SECONDS_PER_STATEMENT: f64 = 0.01;

/// The project's settings a runbook reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunbookInputs<'a> {
    /// Stop after this change.
    pub to: Option<&'a str>,
    /// Deploy takes a snapshot first.
    pub snapshot: bool,
    /// `[[checks]]`: deploy's gate.
    pub checks: &'a [CheckConfig],
    /// `[health]`: a rollout's probes.
    pub health: Option<&'a HealthConfig>,
    /// `[[notify]]`.
    pub notify: &'a [NotifyConfig],
}

/// A table a change touches, with its size now.
#[derive(Debug, Clone, Serialize)]
pub struct TableEstimate {
    /// As the change names it.
    pub table: String,
    /// Its size, when it exists.
    pub size: Option<TableSize>,
}

/// One pending change in the runbook.
#[derive(Debug, Clone, Serialize)]
pub struct RunbookChange {
    /// The change.
    pub change: String,
    /// The worst class among its statements.
    pub risk: Reversibility,
    /// Locks its statements take, strongest first as the guardrails name them.
    pub locks: Vec<&'static str>,
    /// A statement rewrites a table.
    pub rewrites: bool,
    /// Its transaction mode.
    pub transaction: TransactionMode,
    /// Safety nets deploy will use: `transaction`, `vault`, `snapshot`, `capture`.
    pub safety_nets: Vec<String>,
    /// Its deploy statements with the guardrails' verdict.
    pub statements: Vec<StatementPlan>,
    /// Who writes its revert: `author`, `ripcord` or `none`.
    pub revert_by: &'static str,
    /// The command that reverts it (and the changes after it).
    pub revert_command: String,
    /// Its revert section, when the author wrote one.
    pub revert_sql: Option<String>,
    /// What the revert does, step by step (for a revert ripcord writes, from the
    /// deploy statements, newest first).
    pub revert_steps: Vec<String>,
    /// What the revert brings back.
    pub restores: Vec<String>,
    /// Why it cannot be reverted, when it cannot.
    pub irreversible: Option<String>,
    /// Tables it touches, with their size.
    pub tables: Vec<TableEstimate>,
    /// Rough seconds to deploy it.
    pub estimate_seconds: f64,
}

/// A check that gates the deploy.
#[derive(Debug, Clone, Serialize)]
pub struct GateCheck {
    /// Its name.
    pub name: String,
    /// `error` (fails the gate) or `warn`.
    pub severity: &'static str,
    /// It runs only when a change touches these tables (all when empty).
    pub tables: Vec<String>,
}

/// The runbook of a pending deploy.
#[derive(Debug, Clone, Serialize)]
pub struct Runbook {
    /// Target name.
    pub target: String,
    /// Its URL without password.
    pub url: String,
    /// The last change of the project deployed there before this deploy.
    pub deployed_last: Option<String>,
    /// The pending changes, in deploy order.
    pub changes: Vec<RunbookChange>,
    /// Checks deploy runs after the last change (an error-severity failure reverts
    /// this deploy).
    pub checks: Vec<GateCheck>,
    /// A rollout's health probes: `name (kind)`.
    pub probes: Vec<String>,
    /// Who is notified, and on which events (webhook hosts only: their paths may hold
    /// secrets).
    pub notify: Vec<String>,
    /// Rough seconds for the whole deploy.
    pub estimate_seconds: f64,
}

/// The runbook of the pending changes of `plan` on `target`.
pub fn runbook(
    target: &mut Target,
    plan: &Plan,
    inputs: RunbookInputs<'_>,
) -> Result<Runbook, OpError> {
    let planned = crate::plan::plan(
        target,
        plan,
        inputs.to,
        SafetyNets {
            snapshot: inputs.snapshot,
        },
    )?;
    let deployed_last = crate::scope::scoped(target, plan)?
        .mine
        .iter()
        .filter(|d| d.state == ripcord_core::ChangeState::Deployed)
        .max_by_key(|d| d.deploy_seq)
        .map(|d| d.name.clone());
    let vault = crate::vault::vault_engine(target);
    let captured: BTreeSet<String> = crate::capture::status(target)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.enabled)
        .map(|t| t.table)
        .collect();
    let count = planned.changes.len();
    let mut changes = Vec::new();
    for (index, change_plan) in planned.changes.into_iter().enumerate() {
        let Some(change) = plan.get(&change_plan.change) else {
            continue;
        };
        let effects = crate::vault::change_effects(change);
        let mut tables = Vec::new();
        for table in effects.iter().flatten().flatten().filter_map(Effect::table) {
            if !tables.iter().any(|t: &TableEstimate| t.table == table) {
                tables.push(TableEstimate {
                    table: table.to_string(),
                    size: target.engine.table_size(table)?,
                });
            }
        }
        let estimate_seconds = estimate(&change_plan.statements, &effects, &tables);
        let keeps = crate::vault::Keeper::for_change(change, vault).is_some();
        let mut safety_nets = Vec::new();
        if change.transaction == TransactionMode::PerChange {
            safety_nets.push("transaction: a failure rolls the whole change back".into());
        }
        if keeps {
            safety_nets.push("vault: what its statements destroy is kept for the revert".into());
        }
        if inputs.snapshot && !tables.is_empty() {
            safety_nets
                .push("snapshot: deploy snapshots the existing tables it writes first".into());
        }
        let watched: Vec<&str> = tables
            .iter()
            .map(|t| t.table.as_str())
            .filter(|t| captured.iter().any(|c| same_table(c, t)))
            .collect();
        if !watched.is_empty() {
            safety_nets.push(format!(
                "capture: row changes of {} are logged (batch revert, flashback)",
                watched.join(", ")
            ));
        }
        let risk = change_plan
            .statements
            .iter()
            .map(|s| s.class)
            .max_by_key(|c| rank(*c))
            .unwrap_or(Reversibility::Safe);
        // Whatever its statements are, a change nothing can revert is irreversible.
        let risk = if change_plan.revert_by == "none" {
            Reversibility::Irreversible
        } else {
            risk
        };
        let mut locks: Vec<&'static str> = Vec::new();
        for lock in change_plan.statements.iter().filter_map(|s| s.lock) {
            if !locks.contains(&lock) {
                locks.push(lock);
            }
        }
        let revert_sql = change.section_sql(SectionKind::Revert);
        let kept_by = if keeps { vault } else { None };
        let (revert_steps, restores) =
            revert_story(change, &effects, change_plan.revert_by, kept_by);
        changes.push(RunbookChange {
            change: change_plan.change.clone(),
            risk,
            locks,
            rewrites: change_plan.statements.iter().any(|s| s.rewrite),
            transaction: change.transaction,
            safety_nets,
            statements: change_plan.statements,
            revert_by: change_plan.revert_by,
            revert_command: format!(
                "ripcord --target {} revert --last {}",
                target.name,
                count - index
            ),
            revert_sql,
            revert_steps,
            restores,
            irreversible: change.irreversible.clone().or_else(|| {
                (change_plan.revert_by == "none")
                    .then(|| "no revert section, and ripcord cannot write one".to_string())
            }),
            tables,
            estimate_seconds,
        });
    }
    let touched: Vec<&str> = changes
        .iter()
        .flat_map(|c| c.tables.iter().map(|t| t.table.as_str()))
        .collect();
    let checks = inputs
        .checks
        .iter()
        .filter(|c| {
            c.tables.is_empty()
                || c.tables
                    .iter()
                    .any(|t| touched.iter().any(|u| same_table(t, u)))
        })
        .map(|c| GateCheck {
            name: c.name.clone(),
            severity: match c.severity {
                CheckSeverity::Error => "error",
                CheckSeverity::Warn => "warn",
            },
            tables: c.tables.clone(),
        })
        .collect();
    let probes = inputs
        .health
        .map(|h| {
            h.probes
                .iter()
                .map(|p| format!("{} ({})", p.name, p.kind().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    let notify = inputs
        .notify
        .iter()
        .map(|n| {
            let to = match (&n.webhook, &n.command) {
                (Some(url), _) => format!("webhook to {}", host_of(url)),
                (None, Some(command)) => format!("command `{command}`"),
                (None, None) => "nobody".into(),
            };
            if n.on.is_empty() {
                format!("{to}, on every event")
            } else {
                format!("{to}, on {}", n.on.join(", "))
            }
        })
        .collect();
    let estimate_seconds = round(changes.iter().map(|c| c.estimate_seconds).sum());
    Ok(Runbook {
        target: planned.target,
        url: planned.url,
        deployed_last,
        changes,
        checks,
        probes,
        notify,
        estimate_seconds,
    })
}

fn rank(class: Reversibility) -> u8 {
    match class {
        Reversibility::Safe => 0,
        Reversibility::Preserving => 1,
        Reversibility::Irreversible => 2,
    }
}

/// `orders` and `public.orders` name the same table here.
fn same_table(a: &str, b: &str) -> bool {
    let bare = |t: &str| ripcord_core::vault::identifier_value(t.rsplit('.').next().unwrap_or(t));
    a == b || bare(a) == bare(b)
}

fn round(seconds: f64) -> f64 {
    (seconds * 100.0).round() / 100.0
}

/// Rough seconds: per statement, its rows if it rewrites a table, keeps data in the
/// vault or changes rows; a small constant otherwise.
fn estimate(
    statements: &[StatementPlan],
    effects: &[Option<Vec<Effect>>],
    tables: &[TableEstimate],
) -> f64 {
    let rows_of = |table: &str| {
        tables
            .iter()
            .find(|t| t.table == table)
            .and_then(|t| t.size)
            .map_or(0, |s| s.rows.max(0))
    };
    let mut seconds = 0.0;
    for (index, statement) in statements.iter().enumerate() {
        let touched: i64 = effects
            .get(index)
            .and_then(|e| e.as_ref())
            .map(|effects| {
                effects
                    .iter()
                    .filter(|e| {
                        statement.rewrite || e.destroys_data() || matches!(e, Effect::Insert { .. })
                    })
                    .filter_map(Effect::table)
                    .map(rows_of)
                    .sum()
            })
            .unwrap_or(0);
        seconds += SECONDS_PER_STATEMENT + touched as f64 / 1e6 * SECONDS_PER_MILLION_ROWS;
    }
    round(seconds)
}

/// What the revert does and what it brings back.
fn revert_story(
    change: &Change,
    effects: &[Option<Vec<Effect>>],
    revert_by: &str,
    kept_by: Option<ripcord_core::EngineKind>,
) -> (Vec<String>, Vec<String>) {
    let mut steps = Vec::new();
    let mut restores = Vec::new();
    let all: Vec<&Effect> = effects.iter().flatten().flatten().collect();
    if revert_by == "ripcord" {
        for effect in all.iter().rev() {
            if let Some(step) = undo_of(effect) {
                steps.push(step);
            }
        }
    } else if revert_by == "author" {
        steps.push("runs its revert section (below)".into());
    }
    // What the vault keeps comes back only with a revert that runs.
    if let Some(engine) = kept_by.filter(|_| revert_by != "none") {
        for effect in all.iter().filter(|e| e.kept_by(engine)) {
            if let Some(back) = kept_of(effect) {
                restores.push(back);
            }
        }
    }
    if revert_by == "author" && restores.is_empty() {
        restores.push("what its revert section rebuilds; nothing kept by ripcord is needed".into());
    }
    if revert_by == "none" {
        restores.push(match &change.irreversible {
            Some(reason) => format!("nothing: declared irreversible ({reason})"),
            None => "nothing: deploy refuses it without --accept-irreversible".into(),
        });
    }
    (steps, restores)
}

fn undo_of(effect: &Effect) -> Option<String> {
    Some(match effect {
        Effect::Creates { kind, name, .. } => format!("DROP {} {name}", kind.keyword()),
        Effect::AddColumn { table, column } => format!("drops column {table}.{column}"),
        Effect::DropColumn { table, column } => {
            format!("adds column {table}.{column} back with its kept values")
        }
        Effect::AlterType { table, column } => {
            format!("gives {table}.{column} its old type and kept values back")
        }
        Effect::ColumnDefault { table, column } => {
            format!("restores the old default of {table}.{column}")
        }
        Effect::ColumnNotNull { table, column } => {
            format!("restores the old NOT NULL setting of {table}.{column}")
        }
        Effect::AddConstraint { table } => format!("drops the constraints it added to {table}"),
        Effect::DropConstraint { table, name } => {
            format!("adds constraint {name} back to {table} from its kept definition")
        }
        Effect::RenameTable { table, to } => format!("renames {to} back to {table}"),
        Effect::RenameColumn { table, column, to } => {
            format!("renames {table}.{to} back to {column}")
        }
        Effect::DropTable { table, .. } => {
            format!("recreates {table} from its kept definition and rows")
        }
        Effect::Truncate { table } => format!("puts the kept rows of {table} back"),
        Effect::Delete { table } => format!("puts the deleted rows of {table} back"),
        Effect::Update { table } => {
            format!("puts the old values of the updated rows of {table} back")
        }
        Effect::Insert { table } => format!("deletes the rows it inserted into {table}"),
        Effect::DropIndex { name, .. } => {
            format!("re-creates index {name} from its kept definition")
        }
        Effect::DropFunction { signature, .. } => {
            format!("re-creates {signature} from its kept definition, privileges and owner")
        }
        Effect::Comment => "sets the comments it changed back".into(),
        Effect::Privileges => "gives the tables it changed their old privileges back".into(),
        Effect::Nothing => return None,
    })
}

fn kept_of(effect: &Effect) -> Option<String> {
    Some(match effect {
        Effect::DropColumn { table, column } => format!("the values of {table}.{column}"),
        Effect::AlterType { table, column } => {
            format!("the values of {table}.{column} in their old type")
        }
        Effect::DropTable { table, .. } => format!("table {table}, its definition and rows"),
        Effect::Truncate { table } => format!("every row of {table}"),
        Effect::Delete { table } => format!("the rows deleted from {table}"),
        Effect::Update { table } => format!("the old values of the rows updated in {table}"),
        Effect::DropConstraint { table, name } => format!("constraint {name} of {table}"),
        Effect::DropIndex { name, .. } => format!("the definition of index {name}"),
        Effect::DropFunction { signature, .. } => format!("the definition of {signature}"),
        _ => return None,
    })
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    host.rsplit('@').next().unwrap_or(host).to_string()
}

/// The runbook as Markdown.
pub fn markdown(book: &Runbook) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Runbook: deploy to {} ({})\n", book.target, book.url);
    let count = book.changes.len();
    if count == 0 {
        let _ = writeln!(md, "Nothing is pending: the target is up to date.");
        return md;
    }
    let _ = writeln!(
        md,
        "{count} pending {}, about {} s in all (a rough figure: {SECONDS_PER_MILLION_ROWS} s per million rows a statement rewrites, keeps or changes; {} s per other statement).\n",
        if count == 1 { "change" } else { "changes" },
        book.estimate_seconds,
        SECONDS_PER_STATEMENT
    );
    let _ = writeln!(md, "## Before\n");
    let _ = writeln!(
        md,
        "- Deployed last: {}",
        book.deployed_last.as_deref().unwrap_or("nothing yet")
    );
    let _ = writeln!(md, "- Rehearse: `ripcord --target {} drill`", book.target);
    let _ = writeln!(md, "- Review: `ripcord --target {} plan`\n", book.target);
    let _ = writeln!(md, "## Deploy\n");
    let _ = writeln!(md, "```sh\nripcord --target {} deploy\n```\n", book.target);
    let _ = writeln!(md, "## Way back\n");
    let _ = writeln!(
        md,
        "- Everything this deploy changed: `ripcord --target {} revert --last {count}`",
        book.target
    );
    match &book.deployed_last {
        Some(last) => {
            let _ = writeln!(
                md,
                "- The same, named: `ripcord --target {} revert --to {last}` (keeps {last})\n",
                book.target
            );
        }
        None => {
            let _ = writeln!(
                md,
                "- The same, named: `ripcord --target {} revert --all`\n",
                book.target
            );
        }
    }
    let _ = writeln!(md, "## Gates\n");
    if book.checks.is_empty() {
        let _ = writeln!(md, "- Checks: none (add `[[checks]]` to ripcord.toml)");
    } else {
        let _ = writeln!(
            md,
            "- Checks after the last change (an `error` failure reverts this deploy):"
        );
        for check in &book.checks {
            let _ = writeln!(
                md,
                "  - {} ({}{})",
                check.name,
                check.severity,
                if check.tables.is_empty() {
                    String::new()
                } else {
                    format!(", when {} change", check.tables.join(", "))
                }
            );
        }
    }
    if book.probes.is_empty() {
        let _ = writeln!(md, "- Rollout probes: none");
    } else {
        let _ = writeln!(md, "- Rollout probes: {}", book.probes.join("; "));
    }
    if book.notify.is_empty() {
        let _ = writeln!(md, "- Notified: nobody (add `[[notify]]`)\n");
    } else {
        let _ = writeln!(md, "- Notified: {}\n", book.notify.join("; "));
    }
    let _ = writeln!(md, "## Changes\n");
    for change in &book.changes {
        let _ = writeln!(md, "### {}\n", change.change);
        let _ = writeln!(
            md,
            "- Risk: {}{}{}",
            class_word(change.risk),
            if change.locks.is_empty() {
                String::new()
            } else {
                format!("; locks: {}", change.locks.join(", "))
            },
            if change.rewrites {
                "; rewrites a table"
            } else {
                ""
            }
        );
        let _ = writeln!(md, "- About {} s", change.estimate_seconds);
        for table in &change.tables {
            let size = match table.size {
                Some(TableSize {
                    rows,
                    bytes: Some(bytes),
                }) => format!("{rows} rows, {bytes} bytes"),
                Some(TableSize { rows, bytes: None }) => format!("{rows} rows"),
                None => "not there yet".into(),
            };
            let _ = writeln!(md, "- Table {}: {size}", table.table);
        }
        for net in &change.safety_nets {
            let _ = writeln!(md, "- Safety net: {net}");
        }
        let _ = writeln!(md, "\nStatements:\n");
        for statement in &change.statements {
            let _ = writeln!(
                md,
                "- `{}` ({}{}) at {}: {}",
                statement.sql,
                class_word(statement.class),
                statement.lock.map(|l| format!(", {l}")).unwrap_or_default(),
                statement.at,
                statement.safety_net
            );
        }
        let _ = writeln!(md, "\nRevert: `{}`\n", change.revert_command);
        if let Some(reason) = &change.irreversible {
            let _ = writeln!(md, "- Cannot be reverted: {reason}");
        }
        for step in &change.revert_steps {
            let _ = writeln!(md, "- {step}");
        }
        for back in &change.restores {
            let _ = writeln!(md, "- Brings back: {back}");
        }
        if let Some(sql) = &change.revert_sql {
            let _ = writeln!(md, "\n```sql\n{}\n```", sql.trim_end());
        }
        let _ = writeln!(md);
    }
    md
}

fn class_word(class: Reversibility) -> &'static str {
    match class {
        Reversibility::Safe => "safe",
        Reversibility::Preserving => "reversible with data preservation",
        Reversibility::Irreversible => "irreversible",
    }
}
