//! Inline suppressions: `-- ripcord:allow <rule> because <reason>` on its own line in a
//! deploy section accepts that rule's findings on the statement that follows. The reason
//! is required and a rule that does not exist is an error, so that a typo never
//! silences nothing (squawk#974).

use ripcord_core::Change;

use crate::{Finding, known_rule};

const MARKER: &str = "-- ripcord:allow";

/// Drop the findings that suppressions accept; add findings for bad suppressions.
pub(crate) fn apply(change: &Change, mut findings: Vec<Finding>) -> Vec<Finding> {
    let body = change.deploy.body.clone();
    let mut extra = Vec::new();
    let mut offset = body.start;
    for line in change.text[body.clone()].split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        let Some(rest) = trimmed.strip_prefix(MARKER) else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let span = start + indent..start + indent + trimmed.len();
        let rest = rest.trim();
        let (rule, reason) = match rest.split_once(char::is_whitespace) {
            Some((rule, after)) => (rule, after.trim().strip_prefix("because").map(str::trim)),
            None => (rest, None),
        };
        if rule.is_empty() {
            extra.push(Finding::new(
                change,
                "invalid-suppression",
                "this suppression names no rule".into(),
                Some("write `-- ripcord:allow <rule> because <reason>`".into()),
                span,
            ));
            continue;
        }
        if !known_rule(rule) {
            extra.push(Finding::new(
                change,
                "invalid-suppression",
                format!("`{rule}` is not a rule, so this suppression would silence nothing"),
                Some("`ripcord lint --json` names the rules it finds".into()),
                span,
            ));
            continue;
        }
        if reason.is_none_or(str::is_empty) {
            extra.push(Finding::new(
                change,
                "invalid-suppression",
                format!("the suppression of {rule} gives no reason"),
                Some(format!(
                    "write `-- ripcord:allow {rule} because <why it is safe here>`"
                )),
                span,
            ));
            continue;
        }
        let Some(statement) = change
            .deploy
            .statements
            .iter()
            .find(|s| s.end > span.end)
            .cloned()
        else {
            continue;
        };
        let before = findings.len();
        findings.retain(|f| {
            !(crate::same_hazard(&f.rule, rule)
                && f.location.span.start >= statement.start.min(span.end)
                && f.location.span.start < statement.end)
        });
        if findings.len() == before {
            extra.push(Finding::new(
                change,
                "unused-suppression",
                format!("nothing on the next statement triggers {rule}"),
                Some("remove the suppression, or move it above the statement it is about".into()),
                span,
            ));
        }
    }
    findings.extend(extra);
    findings.sort_by_key(|f| (f.location.span.start, f.rule.clone()));
    findings
}
