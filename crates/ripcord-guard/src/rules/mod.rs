//! The rule catalogue: for every rule id (squawk's and ripcord's own), its severity, the
//! reversibility class of the statements it finds, the lock they take, whether they
//! rewrite the table, and a hint; and the dispatch to ripcord's own rules, which squawk
//! does not have, one module each.

use squawk_syntax::SourceFile;
use squawk_syntax::ast;

mod blocking_refresh;
mod delete_in_deploy;
mod enum_add_value;
mod foreign_key_without_index;
mod lossy_type_change;
mod opaque_do_block;
mod set_not_null_scan;
mod statement_needs_own_transaction;
mod table_rewrite;
mod truncate_table;
mod update_in_deploy;

use crate::{Reversibility, Severity};

/// What ripcord knows about a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    /// Rule id.
    pub id: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// Reversibility class of the statements it finds.
    pub class: Reversibility,
    /// The lock those statements take.
    pub lock: Option<&'static str>,
    /// They rewrite the table.
    pub rewrite: bool,
    /// What to do instead (when the rule's own help says nothing).
    pub hint: Option<&'static str>,
}

const fn rule(
    id: &'static str,
    severity: Severity,
    class: Reversibility,
    lock: Option<&'static str>,
    rewrite: bool,
    hint: Option<&'static str>,
) -> RuleInfo {
    RuleInfo {
        id,
        severity,
        class,
        lock,
        rewrite,
        hint,
    }
}

use Reversibility::{Irreversible, Preserving, Safe};
use Severity::{Error, Warning};

const ACCESS_EXCLUSIVE: Option<&str> = Some("ACCESS EXCLUSIVE (blocks reads and writes)");

/// Rules with more to say than the defaults (warning, safe, no lock).
const CATALOGUE: &[RuleInfo] = &[
    // Statements that destroy data: undoing them needs the data kept first.
    rule(
        "ban-drop-table",
        Error,
        Preserving,
        ACCESS_EXCLUSIVE,
        false,
        Some(
            "keep the table (rename it) until nothing reads it, or accept with `-- ripcord:allow ban-drop-table because …`",
        ),
    ),
    rule(
        "ban-drop-column",
        Error,
        Preserving,
        ACCESS_EXCLUSIVE,
        false,
        Some(
            "stop reading and writing the column first; accept with `-- ripcord:allow ban-drop-column because …`",
        ),
    ),
    rule(
        "ban-truncate-cascade",
        Error,
        Preserving,
        ACCESS_EXCLUSIVE,
        false,
        None,
    ),
    rule(
        "truncate-table",
        Error,
        Preserving,
        ACCESS_EXCLUSIVE,
        false,
        Some(
            "delete in batches from a loader (capture can undo a batch), or accept with `-- ripcord:allow truncate-table because …`",
        ),
    ),
    rule(
        "update-in-deploy",
        Warning,
        Preserving,
        Some("ROW EXCLUSIVE (blocks writers of the same rows)"),
        false,
        Some(
            "backfills belong in batches (`ripcord batch run`) so one can be undone; keep the old values if this stays here",
        ),
    ),
    rule(
        "delete-in-deploy",
        Warning,
        Preserving,
        Some("ROW EXCLUSIVE (blocks writers of the same rows)"),
        false,
        Some("run it as a tagged batch (`ripcord batch run`) so it can be undone"),
    ),
    // The lock and rewrite of any type change; whether values can be lost is
    // lossy-type-change's to say.
    rule(
        "changing-column-type",
        Warning,
        Safe,
        ACCESS_EXCLUSIVE,
        true,
        None,
    ),
    rule(
        "lossy-type-change",
        Warning,
        Preserving,
        ACCESS_EXCLUSIVE,
        true,
        Some(
            "add a new column, backfill it in batches and switch readers over; on deploy the vault keeps the old values",
        ),
    ),
    rule(
        "unknown-type-change",
        Warning,
        Preserving,
        ACCESS_EXCLUSIVE,
        false,
        Some(
            "lint the whole project (it reads the types the changes create) or `ripcord plan` against the target (it reads them from the database); on deploy the vault keeps the old values",
        ),
    ),
    rule(
        "verify-writes",
        Warning,
        Safe,
        None,
        false,
        Some(
            "verify proves the change is in place; ripcord undoes whatever it writes, so move the write to the deploy section",
        ),
    ),
    rule(
        "invalid-file",
        Error,
        Safe,
        None,
        false,
        Some("fix the file: ripcord cannot read it as a change, so deploy stops before it"),
    ),
    rule(
        "empty-deploy",
        Warning,
        Safe,
        None,
        false,
        Some(
            "the change is recorded as a no-op; delete the file if it is not needed for numbering",
        ),
    ),
    rule(
        "enum-add-value",
        Warning,
        Irreversible,
        None,
        false,
        Some(
            "give the change `-- irreversible: <reason>`, or keep the values in a lookup table that a revert can change",
        ),
    ),
    rule(
        "set-not-null-scan",
        Warning,
        Safe,
        Some("ACCESS EXCLUSIVE while every row is checked"),
        false,
        Some(
            "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it, then SET NOT NULL (no scan) and drop the check",
        ),
    ),
    rule(
        "foreign-key-without-index",
        Warning,
        Safe,
        None,
        false,
        Some(
            "CREATE INDEX CONCURRENTLY on the referencing columns (in a `transaction: none` change), or suppress naming the index that exists",
        ),
    ),
    // Statements nothing can undo.
    rule(
        "ban-drop-database",
        Error,
        Irreversible,
        Some("exclusive use of the database"),
        false,
        None,
    ),
    rule(
        "ban-drop-schema",
        Error,
        Irreversible,
        ACCESS_EXCLUSIVE,
        false,
        None,
    ),
    rule(
        "opaque-do-block",
        Warning,
        Irreversible,
        None,
        false,
        Some(
            "ripcord cannot see what a DO block does; write the statements out, or give the change a revert section that undoes it",
        ),
    ),
    rule(
        "unparsed-statement",
        Warning,
        Irreversible,
        None,
        false,
        Some(
            "ripcord cannot classify a statement it cannot parse; make sure the change has a revert section",
        ),
    ),
    // Suppressions that cannot be honoured.
    rule("invalid-suppression", Error, Safe, None, false, None),
    rule("unused-suppression", Warning, Safe, None, false, None),
    // Locks and rewrites.
    rule(
        "require-concurrent-index-creation",
        Warning,
        Safe,
        Some("SHARE (blocks writes while the index builds)"),
        false,
        None,
    ),
    rule(
        "require-concurrent-index-deletion",
        Warning,
        Safe,
        ACCESS_EXCLUSIVE,
        false,
        None,
    ),
    rule(
        "require-concurrent-reindex",
        Warning,
        Safe,
        Some("ACCESS EXCLUSIVE on the index, SHARE on the table"),
        false,
        None,
    ),
    rule(
        "require-concurrent-partition-detach",
        Warning,
        Safe,
        ACCESS_EXCLUSIVE,
        false,
        None,
    ),
    rule(
        "statement-needs-own-transaction",
        Error,
        Safe,
        None,
        false,
        Some("add `-- transaction: none` to the change's header so the statement runs on its own"),
    ),
    rule(
        "constraint-missing-not-valid",
        Warning,
        Safe,
        Some(
            "ACCESS EXCLUSIVE (check) or SHARE ROW EXCLUSIVE (foreign key) while every row is checked",
        ),
        false,
        None,
    ),
    rule(
        "adding-foreign-key-constraint",
        Warning,
        Safe,
        Some("SHARE ROW EXCLUSIVE on both tables while rows are checked"),
        false,
        None,
    ),
    rule(
        "adding-field-with-default",
        Warning,
        Safe,
        ACCESS_EXCLUSIVE,
        true,
        None,
    ),
    rule(
        "adding-not-nullable-field",
        Warning,
        Safe,
        Some("ACCESS EXCLUSIVE while every row is checked"),
        false,
        None,
    ),
    rule(
        "adding-required-field",
        Warning,
        Safe,
        ACCESS_EXCLUSIVE,
        false,
        None,
    ),
    rule(
        "adding-serial-primary-key-field",
        Warning,
        Safe,
        ACCESS_EXCLUSIVE,
        true,
        None,
    ),
    rule(
        "disallowed-unique-constraint",
        Warning,
        Safe,
        Some("ACCESS EXCLUSIVE while the unique index builds"),
        false,
        None,
    ),
    rule("prefer-repack", Warning, Safe, ACCESS_EXCLUSIVE, true, None),
    rule(
        "table-rewrite",
        Warning,
        Safe,
        ACCESS_EXCLUSIVE,
        true,
        Some(
            "the whole table is rewritten under the lock; on a big table use pg_repack or plan a maintenance window",
        ),
    ),
    rule(
        "blocking-refresh",
        Warning,
        Safe,
        Some("ACCESS EXCLUSIVE on the view (blocks its readers)"),
        false,
        Some(
            "REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view) keeps it readable",
        ),
    ),
    rule(
        "renaming-column",
        Warning,
        Safe,
        ACCESS_EXCLUSIVE,
        false,
        Some("running code still uses the old name; add the new column (or a view) first"),
    ),
    rule(
        "renaming-table",
        Warning,
        Safe,
        ACCESS_EXCLUSIVE,
        false,
        Some(
            "running code still uses the old name; leave a view with the old name until it is gone",
        ),
    ),
];

/// ripcord's own rule ids (squawk's are known to squawk).
const OWN_RULES: &[&str] = &[
    "statement-needs-own-transaction",
    "table-rewrite",
    "blocking-refresh",
    "truncate-table",
    "update-in-deploy",
    "delete-in-deploy",
    "opaque-do-block",
    "unparsed-statement",
    "lossy-type-change",
    "unknown-type-change",
    "verify-writes",
    "empty-deploy",
    "invalid-file",
    "enum-add-value",
    "set-not-null-scan",
    "foreign-key-without-index",
];

/// What ripcord knows about `id` (defaults for rules not in the catalogue).
pub fn rule_info(id: &str) -> RuleInfo {
    CATALOGUE
        .iter()
        .find(|r| r.id == id)
        .copied()
        .unwrap_or(RuleInfo {
            id: "",
            severity: Warning,
            class: Safe,
            lock: None,
            rewrite: false,
            hint: None,
        })
}

/// Is `id` a rule (squawk's or ripcord's)?
pub fn known_rule(id: &str) -> bool {
    OWN_RULES.contains(&id) || squawk_linter::Rule::try_from(id).is_ok()
}

/// ripcord's own rule ids.
pub fn own_rules() -> &'static [&'static str] {
    OWN_RULES
}

/// The catalogue's rules, for listings and SARIF.
pub fn rules() -> &'static [RuleInfo] {
    CATALOGUE
}

/// ripcord's own rules on one statement of a change (`in_transaction`: the change runs
/// in one transaction): `(rule, message)`.
pub(crate) fn ripcord_rules(
    statement: &str,
    in_transaction: bool,
    types: &crate::column_types::ColumnTypes,
) -> Vec<(&'static str, String)> {
    let checks: [(&'static str, Option<String>); 7] = [
        (
            "statement-needs-own-transaction",
            statement_needs_own_transaction::check(statement, in_transaction),
        ),
        ("table-rewrite", table_rewrite::check(statement)),
        ("blocking-refresh", blocking_refresh::check(statement)),
        ("truncate-table", truncate_table::check(statement)),
        ("update-in-deploy", update_in_deploy::check(statement)),
        ("delete-in-deploy", delete_in_deploy::check(statement)),
        ("opaque-do-block", opaque_do_block::check(statement)),
    ];
    let mut found: Vec<(&'static str, String)> = checks
        .into_iter()
        .filter_map(|(rule, message)| message.map(|m| (rule, m)))
        .collect();
    if let Some(stmt) = parse_one(statement) {
        if let Some(finding) = lossy_type_change::check(&stmt, types) {
            found.push(finding);
        }
        if let Some(message) = enum_add_value::check(&stmt) {
            found.push(("enum-add-value", message));
        }
    }
    found
}

fn parse_one(statement: &str) -> Option<ast::Stmt> {
    let parsed = SourceFile::parse(statement);
    if !parsed.errors().is_empty() {
        return None;
    }
    parsed.tree().stmts().next()
}

/// ripcord's rules that look at the whole change (what earlier or later statements
/// do): `(statement index, rule, message)`.
pub(crate) fn change_rules(statements: &[&str]) -> Vec<(usize, &'static str, String)> {
    let parsed: Vec<Option<ast::Stmt>> = statements.iter().map(|s| parse_one(s)).collect();
    let mut found = Vec::new();
    for (index, message) in set_not_null_scan::check(&parsed) {
        found.push((index, "set-not-null-scan", message));
    }
    for (index, message) in foreign_key_without_index::check(&parsed) {
        found.push((index, "foreign-key-without-index", message));
    }
    found
}

/// What a statement of a verify section writes, in words (`None`: it only reads).
pub(crate) fn writes(statement: &str) -> Option<String> {
    let words = ripcord_core::splitter::leading_words(statement, 3);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let verb = match words.as_slice() {
        ["INSERT", ..] => "inserts rows",
        ["UPDATE", ..] => "updates rows",
        ["DELETE", ..] => "deletes rows",
        ["TRUNCATE", ..] => "truncates a table",
        ["MERGE", ..] => "merges rows",
        ["COPY", ..] if statement.to_ascii_uppercase().contains(" FROM ") => "loads rows",
        [
            "CREATE" | "ALTER" | "DROP" | "COMMENT" | "GRANT" | "REVOKE" | "REFRESH",
            ..,
        ] => "changes the schema",
        ["WITH", ..] => {
            let upper = statement.to_ascii_uppercase();
            let modifies = ["INSERT ", "UPDATE ", "DELETE "]
                .iter()
                .any(|verb| upper.contains(verb));
            if !modifies {
                return None;
            }
            "modifies rows in a WITH query"
        }
        _ => return None,
    };
    Some(verb.to_string())
}
