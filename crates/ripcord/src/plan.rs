//! `ripcord plan`: the pending changes of a target, each deploy statement with the
//! guardrails' verdict (reversibility class, lock, rewrite) and the safety net that
//! deploy will use for it. Reads the target's ledger only.

use ripcord_core::{Change, ChangeState, Plan, TransactionMode};
use ripcord_guard::{ColumnTypes, Finding, Reversibility, classify_change_with};
use serde::Serialize;

use crate::error::OpError;
use crate::target::Target;

/// How deploy would protect data that statements destroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SafetyNets {
    /// Deploy takes a snapshot of touched tables first (`--snapshot` or
    /// `[safety] snapshot_before`).
    pub snapshot: bool,
}

/// One deploy statement.
#[derive(Debug, Clone, Serialize)]
pub struct StatementPlan {
    /// `file:line:column`.
    pub at: String,
    /// Its first line.
    pub sql: String,
    /// The worst class among its findings (`safe` without findings).
    pub class: Reversibility,
    /// The strongest lock a finding names.
    pub lock: Option<&'static str>,
    /// A finding says it rewrites the table.
    pub rewrite: bool,
    /// Rules it triggers.
    pub rules: Vec<String>,
    /// What brings things back if it goes wrong.
    pub safety_net: String,
}

/// One pending change.
#[derive(Debug, Clone, Serialize)]
pub struct ChangePlan {
    /// The change.
    pub change: String,
    /// Its transaction mode.
    pub transaction: TransactionMode,
    /// It has a revert section.
    pub revert: bool,
    /// The author's irreversible reason.
    pub irreversible: Option<String>,
    /// Who writes its revert: `author`, `ripcord` (from the deploy section, with the
    /// vault) or `none`.
    pub revert_by: &'static str,
    /// Deploy refuses it without `--accept-irreversible`.
    pub needs_consent: bool,
    /// Its deploy statements.
    pub statements: Vec<StatementPlan>,
}

/// The plan for a target.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// Target name.
    pub target: String,
    /// Target URL without password.
    pub url: String,
    /// Pending changes in deploy order.
    pub changes: Vec<ChangePlan>,
}

fn rank(class: Reversibility) -> u8 {
    match class {
        Reversibility::Safe => 0,
        Reversibility::Preserving => 1,
        Reversibility::Irreversible => 2,
    }
}

/// Who writes the revert of `change`: `author`, `ripcord` (from the deploy section,
/// with the vault), or `none`.
fn revert_by(change: &Change, vault: Option<ripcord_core::EngineKind>) -> &'static str {
    if change.revert.is_some() {
        "author"
    } else if change.irreversible.is_none()
        && crate::vault::why_not_generated(change, vault).is_none()
    {
        "ripcord"
    } else {
        "none"
    }
}

fn safety_net(
    change: &Change,
    statement: &str,
    class: Reversibility,
    nets: SafetyNets,
    vault: Option<ripcord_core::EngineKind>,
) -> String {
    let keeps = vault.is_some_and(|engine| {
        change.transaction == TransactionMode::PerChange
            && change.irreversible.is_none()
            && ripcord_guard::statement_effects(statement)
                .is_some_and(|effects| effects.iter().all(|e| e.kept_by(engine)))
    });
    let undo = match revert_by(change, vault) {
        "author" if keeps => "its revert section, then ripcord puts the kept data back",
        "author" => "its revert section",
        "ripcord" => "the revert ripcord writes from the deploy section",
        _ => "nothing (no revert section)",
    };
    let failure = match change.transaction {
        TransactionMode::PerChange => "a failure rolls the whole change back",
        TransactionMode::None => "a failure keeps the statements before it; deploy resumes",
    };
    match class {
        Reversibility::Safe => format!("{failure}; undone by {undo}"),
        Reversibility::Preserving if keeps => {
            format!("{failure}; the data it destroys is kept in the vault first; undone by {undo}")
        }
        Reversibility::Preserving if nets.snapshot => {
            format!(
                "{failure}; the data it destroys is in the snapshot deploy takes first; undone by {undo}"
            )
        }
        Reversibility::Preserving => format!(
            "{failure}; the data it destroys is NOT kept (use `deploy --snapshot`); {undo} cannot bring it back"
        ),
        Reversibility::Irreversible => format!("{failure}; nothing undoes it"),
    }
}

/// The pending changes of `target` (up to `to`), statement by statement.
pub fn plan(
    target: &mut Target,
    plan: &Plan,
    to: Option<&str>,
    nets: SafetyNets,
) -> Result<PlanReport, OpError> {
    let ledger = crate::scope::scoped(target, plan)?.mine;
    let vault = crate::vault::vault_engine(target);
    let last = match to {
        Some(name) => Some(crate::error::resolve_change(plan, name)?.name.clone()),
        None => None,
    };
    let last_id = last.as_deref().and_then(|n| plan.get(n)).map(|c| &c.id);
    if let Some(error) = crate::error::invalid_files(plan.invalid_through(last_id)) {
        return Err(error);
    }
    // A type change is judged against the column's type in the target as the pending
    // changes before it leave it.
    let mut types = column_types(target)?;
    let mut changes = Vec::new();
    for change in plan.changes() {
        let deployed = ledger
            .iter()
            .any(|d| d.name == change.name && d.state == ChangeState::Deployed);
        if !deployed {
            changes.push(change_plan(change, nets, vault, &types));
            types.learn_change(change);
        }
        if last.as_deref() == Some(change.name.as_str()) {
            break;
        }
    }
    Ok(PlanReport {
        target: target.name.clone(),
        url: target.display_url.clone(),
        changes,
    })
}

/// The column types of the target's tables, from its catalog.
fn column_types(target: &mut Target) -> Result<ColumnTypes, OpError> {
    let mut types = ColumnTypes::new();
    let schemas = target.engine.kind() == ripcord_core::EngineKind::Postgres;
    for object in target.engine.schema_objects()? {
        if object.kind != "column" {
            continue;
        }
        let Some(ty) = object
            .definition
            .lines()
            .find_map(|line| line.strip_prefix("type: "))
        else {
            continue;
        };
        let (schema, rest) = if schemas {
            match object.name.split_once('.') {
                Some((schema, rest)) => (Some(schema), rest),
                None => continue,
            }
        } else {
            (None, object.name.as_str())
        };
        if let Some((table, column)) = rest.rsplit_once('.') {
            types.insert_catalog(schema, table, column, ty);
        }
    }
    Ok(types)
}

fn change_plan(
    change: &Change,
    nets: SafetyNets,
    vault: Option<ripcord_core::EngineKind>,
    types: &ColumnTypes,
) -> ChangePlan {
    // Suppressions accept a risk; they do not change what a statement does.
    let findings = classify_change_with(change, types);
    let lines = ripcord_core::location::LineIndex::new(&change.text);
    let statements = change
        .deploy
        .statements
        .iter()
        .map(|span| {
            let on: Vec<&Finding> = findings
                .iter()
                .filter(|f| f.location.span.start >= span.start && f.location.span.start < span.end)
                .collect();
            let class = on
                .iter()
                .map(|f| f.class)
                .max_by_key(|c| rank(*c))
                .unwrap_or(Reversibility::Safe);
            let sql = change.text[span.clone()]
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("--"))
                .unwrap_or_default()
                .to_string();
            StatementPlan {
                at: lines.display_short(&change.path, &change.text, span.start),
                sql,
                class,
                lock: on.iter().find_map(|f| f.lock),
                rewrite: on.iter().any(|f| f.rewrite),
                rules: on.iter().map(|f| f.rule.clone()).collect(),
                safety_net: safety_net(change, &change.text[span.clone()], class, nets, vault),
            }
        })
        .collect();
    ChangePlan {
        change: change.name.clone(),
        transaction: change.transaction,
        revert: change.revert.is_some(),
        irreversible: change.irreversible.clone(),
        revert_by: revert_by(change, vault),
        needs_consent: change.revert.is_none()
            && change.irreversible.is_none()
            && crate::vault::why_not_generated(change, vault).is_some(),
        statements,
    }
}
