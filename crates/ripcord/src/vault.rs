//! The vault in deploy and revert (DESIGN §5.3): before each recognized statement of a
//! one-transaction change runs, the engine keeps what it destroys; afterwards it says
//! how to undo it. The undo becomes the change's revert in the ledger: written whole by
//! ripcord for a change without a revert section, or appended to the author's revert so
//! that kept data goes back into the objects it re-creates. `ripcord vault list|prune`
//! shows and removes kept data whose change can no longer be reverted.

use ripcord_core::vault::{Effect, Kept, Undo, VaultEntry, VaultOrigin, identifier_value};
use ripcord_core::{Change, EngineError, EngineKind, SectionKind, TransactionMode};
use serde::Serialize;

use crate::error::{ChangeFailure, OpError, Phase};
use crate::run::{Script, with_lock};
use crate::target::Target;

/// Marks where the vault's part of a ledgered revert begins.
pub const VAULT_MARKER: &str = "-- ripcord vault:";

/// The effects of each deploy statement of `change`; `None` where ripcord does not
/// know how to undo the statement.
pub fn change_effects(change: &Change) -> Vec<Option<Vec<Effect>>> {
    change
        .deploy
        .statements
        .iter()
        .map(|span| ripcord_guard::statement_effects(&change.text[span.clone()]))
        .collect()
}

/// Why ripcord cannot write the revert of `change` itself on `engine` (`None`: an
/// engine without a vault), or `None` when it can.
pub fn why_not_generated(change: &Change, engine: Option<EngineKind>) -> Option<String> {
    let Some(engine) = engine else {
        return Some("this engine has no vault, so ripcord cannot write reverts".into());
    };
    if change.transaction == TransactionMode::None {
        return Some(
            "it runs with `transaction: none`; ripcord writes reverts only for one-transaction changes"
                .into(),
        );
    }
    for (index, effects) in change_effects(change).iter().enumerate() {
        let at = || {
            change
                .location(change.deploy.statements[index].clone())
                .display_short()
        };
        match effects {
            None => {
                let sql = &change.text[change.deploy.statements[index].clone()];
                return Some(format!(
                    "statement {} ({}) is not one ripcord knows how to undo: {}",
                    index + 1,
                    at(),
                    why_unknown(sql)
                ));
            }
            Some(effects) if effects.iter().any(|e| !e.kept_by(engine)) => {
                return Some(format!(
                    "statement {} ({}) is not one ripcord can undo on {}",
                    index + 1,
                    at(),
                    match engine {
                        EngineKind::Postgres => "PostgreSQL",
                        EngineKind::Sqlite => "SQLite",
                    }
                ));
            }
            Some(_) => {}
        }
    }
    None
}

/// Why the vault does not undo `sql`, a statement it has no effect for.
fn why_unknown(sql: &str) -> String {
    let words = ripcord_core::splitter::leading_words(sql, 5);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    // The verb, and the kind of object after DROP/ALTER/CREATE (never a name).
    let named = match words.as_slice() {
        [verb @ ("DROP" | "ALTER" | "CREATE"), kind, ..] => format!("{verb} {kind}"),
        [verb, ..] => verb.to_string(),
        [] => "this statement".into(),
    };
    let cascade = sql
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|w| w.eq_ignore_ascii_case("CASCADE"));
    match words.as_slice() {
        ["DROP", "TYPE" | "DOMAIN", ..] => {
            "it drops a type; ripcord does not keep types (nor the columns a CASCADE drops with them)".into()
        }
        ["DROP", "SCHEMA", ..] => {
            "it drops a schema; ripcord does not keep schemas (nor what a CASCADE drops in them)".into()
        }
        ["GRANT" | "REVOKE", ..] => {
            "it changes privileges on something other than a table, view or sequence (a schema, function, type or role membership); ripcord reverts grants on relations only".into()
        }
        ["CREATE", "OR", "REPLACE", ..] => {
            "it replaces a definition without keeping the old one".into()
        }
        ["DO", ..] => "it runs a procedural block whose effects ripcord cannot read".into(),
        _ if cascade => format!("`{named} … CASCADE` drops what depends on it, which ripcord does not keep"),
        _ => format!("ripcord has no undo for `{named}`"),
    }
}

/// The engine of `target` when it has a vault.
pub(crate) fn vault_engine(target: &mut Target) -> Option<EngineKind> {
    let has_vault = target.engine.vault().is_some();
    has_vault.then(|| target.engine.kind())
}

/// Keeps what a change's statements destroy while the change deploys, and collects
/// their undo.
pub(crate) struct Keeper {
    engine: EngineKind,
    effects: Vec<Option<Vec<Effect>>>,
    /// The change has no revert section: ripcord writes it.
    generate: bool,
    /// Undo of each statement run so far, in statement order.
    undone: Vec<(usize, Vec<Undo>)>,
    /// Tables created earlier in this change: nothing of theirs needs keeping.
    created: Vec<String>,
    /// Steps whose helpers are removed when the change ends.
    to_release: Vec<Kept>,
    /// What could not be kept (a change with its own revert deploys anyway).
    pub(crate) not_kept: Vec<String>,
    /// The operator consented (`--accept-irreversible`) to deploying this change
    /// without a revert should ripcord fail to write one.
    accepted: bool,
    /// Why ripcord gave up writing the revert (with consent): the change is recorded
    /// without one.
    pub(crate) gave_up: Option<String>,
}

fn same_table(a: &str, b: &str) -> bool {
    let parts = |s: &str| -> Vec<String> { s.split('.').map(identifier_value).collect() };
    let (a, b) = (parts(a), parts(b));
    if a.len() == b.len() {
        a == b
    } else {
        a.last() == b.last()
    }
}

impl Keeper {
    /// A keeper for `change`, or `None` when nothing is kept (no vault, `transaction:
    /// none`, or a change declared irreversible).
    pub(crate) fn for_change(change: &Change, engine: Option<EngineKind>) -> Option<Keeper> {
        Keeper::with_consent(change, engine, false)
    }

    /// [`Keeper::for_change`], where `accepted` says the operator consented to
    /// deploying `change` without a revert if ripcord cannot write one.
    pub(crate) fn with_consent(
        change: &Change,
        engine: Option<EngineKind>,
        accepted: bool,
    ) -> Option<Keeper> {
        let engine = engine?;
        if change.transaction == TransactionMode::None || change.irreversible.is_some() {
            return None;
        }
        let effects = change_effects(change);
        let generate = change.revert.is_none() && why_not_generated(change, Some(engine)).is_none();
        if !generate
            && !effects
                .iter()
                .flatten()
                .flatten()
                .any(|e| e.destroys_data() || matches!(e, Effect::Insert { .. }))
        {
            return None;
        }
        Some(Keeper {
            engine,
            effects,
            generate,
            undone: Vec::new(),
            created: Vec::new(),
            to_release: Vec::new(),
            not_kept: Vec::new(),
            accepted,
            gave_up: None,
        })
    }

    fn wanted(&self, effect: &Effect) -> bool {
        if !effect.kept_by(self.engine) {
            return false;
        }
        let data = effect.destroys_data() || matches!(effect, Effect::Insert { .. });
        if let Some(table) = effect.table()
            && self.created.iter().any(|c| same_table(c, table))
        {
            // Its rows go when the revert drops the table; only a drop of it must be
            // undone first, so that the drop of what was created finds the table.
            return self.generate && (!data || matches!(effect, Effect::DropTable { .. }));
        }
        self.generate || data
    }

    /// Before statement `index` runs.
    pub(crate) fn before(
        &mut self,
        target: &mut Target,
        change: &Change,
        script: &Script,
        index: usize,
    ) -> Result<Vec<Kept>, OpError> {
        let Some(Some(effects)) = self.effects.get(index).cloned() else {
            return Ok(Vec::new());
        };
        let origin = VaultOrigin {
            change: change.name.clone(),
            statement: index,
            // Only a revert ripcord writes: an author's revert orders columns itself.
            rebuild_column_order: change.rebuild_column_order && self.generate,
        };
        let mut kept = Vec::new();
        let wanted: Vec<&Effect> = effects.iter().filter(|e| self.wanted(e)).collect();
        for effect in wanted {
            let mut vault = target.engine.vault().expect("vault checked before");
            match vault.keep(effect, &origin) {
                Ok(one) => kept.push(one),
                // The author's revert is the way back; the vault only completes it.
                Err(EngineError::Invalid { reason, .. }) if !self.generate => {
                    self.not_kept
                        .push(format!("statement {}: {reason}", index + 1));
                }
                Err(EngineError::Invalid { reason, .. }) => {
                    self.cannot_write(change, index, &reason)?;
                }
                Err(e) => return Err(vault_failure(change, script, index, e)),
            }
            crate::failpoint::hit("vault_kept");
        }
        for effect in &effects {
            if let Effect::Creates {
                kind: ripcord_core::vault::CreatedKind::Table,
                name,
                ..
            } = effect
            {
                self.created.push(name.clone());
            }
        }
        Ok(kept)
    }

    /// After statement `index` ran.
    pub(crate) fn after(
        &mut self,
        target: &mut Target,
        change: &Change,
        script: &Script,
        index: usize,
        kept: Vec<Kept>,
    ) -> Result<(), OpError> {
        let mut undos = Vec::new();
        for one in &kept {
            let mut vault = target.engine.vault().expect("vault checked before");
            let undo = vault
                .undo(one)
                .map_err(|e| vault_failure(change, script, index, e))?;
            if self.generate
                && let Some(reason) = &undo.cannot_generate
            {
                self.cannot_write(change, index, reason)?;
            }
            undos.push(undo);
        }
        self.undone.push((index, undos));
        self.to_release.extend(kept);
        Ok(())
    }

    /// ripcord cannot write the revert because of statement `index`: refused like a
    /// change without a revert (exit 4), unless the operator consented, in which case
    /// the change is recorded without a revert and the reason kept for the ledger.
    fn cannot_write(&mut self, change: &Change, index: usize, reason: &str) -> Result<(), OpError> {
        let reason = format!(
            "statement {} ({}): {reason}",
            index + 1,
            change
                .location(change.deploy.statements[index].clone())
                .display_short()
        );
        if !self.accepted {
            return Err(OpError::MissingRevert {
                change: change.name.clone(),
                reason: Some(reason),
            });
        }
        self.generate = false;
        self.not_kept.push(reason.clone());
        self.gave_up.get_or_insert(reason);
        Ok(())
    }

    /// After the last statement, before the change commits.
    pub(crate) fn finish(&mut self, target: &mut Target) -> Result<(), OpError> {
        let kept = std::mem::take(&mut self.to_release);
        if !kept.is_empty() {
            let mut vault = target.engine.vault().expect("vault checked before");
            vault.release(&kept)?;
        }
        Ok(())
    }

    /// How the ledgered revert came about, for the audit event.
    pub(crate) fn revert_kind(&self) -> &'static str {
        if self.generate {
            "written by ripcord"
        } else if self
            .undone
            .iter()
            .any(|(_, u)| u.iter().any(|u| !u.restore.is_empty()))
        {
            "author's revert, then kept data put back"
        } else {
            "author's revert"
        }
    }

    /// The revert to record in the ledger.
    pub(crate) fn revert_sql(&self, change: &Change) -> Option<String> {
        if self.gave_up.is_some() {
            // Kept data alone would put rows back into objects nothing re-created.
            return None;
        }
        let newest_first = self.undone.iter().rev();
        if self.generate {
            let mut sql = format!(
                "{VAULT_MARKER} written by ripcord from the deploy section of {}; kept data is in ripcord.vault\n",
                change.name
            );
            for (index, undos) in newest_first {
                sql.push_str(&format!("-- undoes statement {}\n", index + 1));
                for undo in undos.iter().rev() {
                    for statement in &undo.generated {
                        sql.push_str(statement);
                        sql.push_str(";\n");
                    }
                }
            }
            return Some(sql);
        }
        let author = change.section_sql(SectionKind::Revert);
        let restores: Vec<&String> = newest_first
            .flat_map(|(_, undos)| undos.iter().rev().flat_map(|u| u.restore.iter()))
            .collect();
        if restores.is_empty() {
            return author;
        }
        let mut sql = author.unwrap_or_default();
        if !sql.ends_with('\n') {
            sql.push('\n');
        }
        sql.push_str(&format!(
            "{VAULT_MARKER} put back what the deploy destroyed, after the revert above\n"
        ));
        for statement in restores {
            sql.push_str(statement);
            sql.push_str(";\n");
        }
        Some(sql)
    }
}

/// A ledgered revert with the author's part replaced by `author` (after a rehash),
/// keeping the vault's part.
pub fn rehashed_revert(old: Option<&str>, author: Option<String>) -> Option<String> {
    let vault_part = old.and_then(|o| o.find(VAULT_MARKER).map(|at| &o[at..]));
    match (author, vault_part) {
        (None, Some(part)) if old.is_some_and(|o| o.starts_with(VAULT_MARKER)) => {
            Some(part.to_string())
        }
        (Some(author), Some(part)) if !old.is_some_and(|o| o.starts_with(VAULT_MARKER)) => {
            Some(format!("{}\n{part}", author.trim_end()))
        }
        (author, _) => author,
    }
}

fn vault_failure(change: &Change, script: &Script, index: usize, error: EngineError) -> OpError {
    match error {
        EngineError::Sql(mut error) => {
            error.message = format!("keeping what the statement destroys: {}", error.message);
            error.position = None;
            OpError::ChangeFailed(Box::new(ChangeFailure {
                change: change.name.clone(),
                phase: Phase::Deploy,
                statement: index + 1,
                statements: script.len(),
                location: script.failure_location(index, &error),
                error,
                completed: Vec::new(),
                kept_statements: None,
                lock_retries: 0,
                blockers: Vec::new(),
            }))
        }
        other => other.into(),
    }
}

/// The vault's entries.
#[derive(Debug, Clone, Serialize)]
pub struct VaultReport {
    /// Target name.
    pub target: String,
    /// The entries, oldest first.
    pub entries: Vec<VaultEntry>,
}

fn no_vault() -> OpError {
    OpError::Engine(EngineError::Invalid {
        reason: "this engine has no vault".into(),
        hint: Some("the vault keeps data on PostgreSQL targets".into()),
    })
}

/// List the vault's entries.
pub fn list(target: &mut Target) -> Result<VaultReport, OpError> {
    let entries = target.engine.vault().ok_or_else(no_vault)?.list()?;
    Ok(VaultReport {
        target: target.name.clone(),
        entries,
    })
}

/// Remove kept data that no deployed change's revert needs any more; with
/// `also_live`, the entries of these deployed changes too (their reverts stop working).
pub fn prune(target: &mut Target, also_live: &[String]) -> Result<VaultReport, OpError> {
    prune_older(target, also_live, None)
}

/// [`prune`], and also every entry kept longer than `older_than` (a retention limit):
/// deployed changes whose data goes become irreversible, recorded like `--change`.
pub fn prune_older(
    target: &mut Target,
    also_live: &[String],
    older_than: Option<std::time::Duration>,
) -> Result<VaultReport, OpError> {
    let cutoff = older_than.map(|age| {
        chrono::Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX)
    });
    with_lock(target, "vault prune", |target| {
        let entries = target.engine.vault().ok_or_else(no_vault)?.list()?;
        let pruned: Vec<VaultEntry> = entries
            .into_iter()
            .filter(|e| {
                !e.live
                    || also_live.contains(&e.change)
                    || cutoff.is_some_and(|cutoff| e.created_at < cutoff)
            })
            .collect();
        let ids: Vec<i64> = pruned.iter().map(|e| e.id).collect();
        if ids.is_empty() {
            return Ok(VaultReport {
                target: target.name.clone(),
                entries: pruned,
            });
        }
        let names: Vec<&str> = pruned
            .iter()
            .filter(|e| e.live)
            .map(|e| e.change.as_str())
            .collect();
        let rows: Vec<ripcord_core::DeployedChange> = target
            .engine
            .changes()?
            .into_iter()
            .filter(|c| names.contains(&c.name.as_str()))
            .map(|mut row| {
                // The revert can no longer put this data back.
                row.revert_sql = None;
                row.irreversible = Some(format!(
                    "its kept data was pruned from the vault by {}",
                    target.identity.actor
                ));
                row
            })
            .collect();
        // Rows, their event and the removal of the data commit together.
        crate::run::put_rows_with_event(
            target,
            &rows,
            "vault_pruned",
            serde_json::json!({ "entries": ids }),
            |target| match target.engine.vault() {
                Some(mut vault) => vault.prune(&ids),
                None => Ok(()),
            },
        )?;
        Ok(VaultReport {
            target: target.name.clone(),
            entries: pruned,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rehash_keeps_the_vault_part() {
        let generated = format!("{VAULT_MARKER} written\nSELECT 1;\n");
        assert_eq!(
            rehashed_revert(Some(&generated), None),
            Some(generated.clone())
        );
        let appended = format!("DROP TABLE t;\n{VAULT_MARKER} put back\nSELECT 2;\n");
        assert_eq!(
            rehashed_revert(Some(&appended), Some("DROP TABLE t2;".into())),
            Some(format!(
                "DROP TABLE t2;\n{VAULT_MARKER} put back\nSELECT 2;\n"
            ))
        );
        assert_eq!(
            rehashed_revert(Some("DROP TABLE t;"), Some("X;".into())),
            Some("X;".into())
        );
    }

    #[test]
    fn tables_match_with_or_without_schema() {
        assert!(same_table("public.t", "t"));
        assert!(same_table("\"T\"", "\"T\""));
        assert!(!same_table("T", "\"T\""));
        assert!(!same_table("a.t", "b.t"));
    }
}
