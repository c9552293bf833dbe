use std::path::Path;

use ripcord_core::change::parse_change;

use super::*;

fn lint(deploy: &str) -> Vec<Finding> {
    lint_with_header("", deploy)
}

fn lint_with_header(header: &str, deploy: &str) -> Vec<Finding> {
    let text = format!("{header}-- ripcord:deploy\n{deploy}\n-- ripcord:revert\nSELECT 1;\n");
    let change = parse_change(Path::new("changes/0001_x.sql"), &text).unwrap();
    lint_change(&change)
}

fn rules_of(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn destructive_statements_are_errors_that_need_preserving() {
    let found = lint("ALTER TABLE t DROP COLUMN c;\nDROP TABLE u;\nTRUNCATE v;");
    assert_eq!(
        rules_of(&found),
        vec!["ban-drop-column", "ban-drop-table", "truncate-table"]
    );
    assert!(
        found
            .iter()
            .all(|f| f.severity == Severity::Error && f.class == Reversibility::Preserving)
    );
    assert_eq!((found[1].line, found[1].column), (3, 1), "{}", found[1].at);
}

#[test]
fn lock_findings_name_their_lock() {
    let found = lint("CREATE INDEX t_a ON t (a);");
    assert_eq!(rules_of(&found), vec!["require-concurrent-index-creation"]);
    assert_eq!(found[0].severity, Severity::Warning);
    assert!(found[0].lock.unwrap().contains("SHARE"));
}

#[test]
fn an_index_on_a_table_made_in_the_same_change_is_fine() {
    let found = lint("CREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);");
    assert!(
        !rules_of(&found).contains(&"require-concurrent-index-creation"),
        "{found:?}"
    );
}

#[test]
fn concurrently_inside_the_change_transaction_is_an_error() {
    let found = lint("CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a);");
    assert_eq!(rules_of(&found), vec!["statement-needs-own-transaction"]);
    assert_eq!(found[0].severity, Severity::Error);
    let alone = lint_with_header(
        "-- transaction: none\n",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a);",
    );
    assert!(rules_of(&alone).is_empty(), "{alone:?}");
}

#[test]
fn dml_and_do_blocks_are_ripcords_own_rules() {
    let found = lint("UPDATE t SET a = 1;\nDELETE FROM t;\nDO $$ BEGIN PERFORM 1; END $$;");
    assert_eq!(
        rules_of(&found),
        vec!["update-in-deploy", "delete-in-deploy", "opaque-do-block"]
    );
    assert_eq!(found[2].class, Reversibility::Irreversible);
}

#[test]
fn a_suppression_with_a_reason_accepts_the_next_statement_only() {
    let found = lint(
        "-- ripcord:allow ban-drop-column because nothing reads it since 0003\nALTER TABLE t DROP COLUMN c;\nALTER TABLE t DROP COLUMN d;",
    );
    assert_eq!(rules_of(&found), vec!["ban-drop-column"]);
    assert_eq!(found[0].line, 4);
}

#[test]
fn classification_ignores_suppressions() {
    let text = "-- ripcord:deploy\n-- ripcord:allow ban-drop-column because unused\nALTER TABLE t DROP COLUMN c;\n-- ripcord:revert\nSELECT 1;\n";
    let change = parse_change(Path::new("changes/0001_x.sql"), text).unwrap();
    assert!(lint_change(&change).is_empty());
    let classified = classify_change(&change);
    assert_eq!(rules_of(&classified), vec!["ban-drop-column"]);
    assert_eq!(classified[0].class, Reversibility::Preserving);
}

#[test]
fn bad_suppressions_are_errors() {
    let found = lint("-- ripcord:allow ban-drop-colum because typo\nALTER TABLE t DROP COLUMN c;");
    assert_eq!(
        rules_of(&found),
        vec!["invalid-suppression", "ban-drop-column"]
    );
    assert!(found[0].message.contains("ban-drop-colum"));
    let found = lint("-- ripcord:allow ban-drop-column\nALTER TABLE t DROP COLUMN c;");
    assert_eq!(
        rules_of(&found),
        vec!["invalid-suppression", "ban-drop-column"]
    );
    assert!(found[0].message.contains("no reason"));
    let found =
        lint("-- ripcord:allow ban-drop-table because old\nALTER TABLE t ADD COLUMN c bigint;");
    assert_eq!(rules_of(&found), vec!["unused-suppression"]);
}

#[test]
fn safe_changes_have_no_findings() {
    let found = lint(
        "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);\nALTER TABLE orders ADD COLUMN total numeric;",
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn every_catalogued_rule_exists() {
    for info in rules() {
        let meta = matches!(info.id, "invalid-suppression" | "unused-suppression");
        assert!(meta || known_rule(info.id), "{} is not a rule", info.id);
    }
    assert!(!known_rule("ban-drop-colunm"));
    for own in own_rules() {
        assert!(
            rules().iter().any(|r| r.id == *own),
            "{own} has no catalogue entry"
        );
    }
}

#[test]
fn rewrites_and_blocking_refreshes_are_named() {
    let found = lint_with_header(
        "-- transaction: none\n",
        "VACUUM FULL t;\nCLUSTER t USING t_pkey;\nALTER TABLE t SET UNLOGGED;\nREFRESH MATERIALIZED VIEW v;\nREFRESH MATERIALIZED VIEW CONCURRENTLY v;",
    );
    let ours: Vec<&Finding> = found
        .iter()
        .filter(|f| f.rule != "prefer-robust-stmts")
        .collect();
    let rules: Vec<(&str, usize)> = ours.iter().map(|f| (f.rule.as_str(), f.line)).collect();
    assert_eq!(
        rules,
        vec![
            ("table-rewrite", 3),
            ("table-rewrite", 4),
            ("table-rewrite", 5),
            ("blocking-refresh", 6)
        ]
    );
    assert!(ours[0].rewrite && ours[3].lock.unwrap().contains("readers"));
}

#[test]
fn set_not_null_is_one_finding_not_two() {
    let found = lint("ALTER TABLE t ALTER COLUMN c SET NOT NULL;");
    assert_eq!(rules_of(&found), vec!["set-not-null-scan"]);
    // A suppression written with squawk's name for the same hazard silences it.
    let found = lint(
        "-- ripcord:allow adding-not-nullable-field because the table is tiny\n\
         ALTER TABLE t ALTER COLUMN c SET NOT NULL;",
    );
    assert!(found.is_empty(), "{:?}", rules_of(&found));
    // Squawk's finding stays where ripcord's rule does not fire on that statement.
    let found = lint("ALTER TABLE t ADD COLUMN d int NOT NULL;");
    assert!(
        !rules_of(&found).contains(&"set-not-null-scan"),
        "{:?}",
        rules_of(&found)
    );
}
