//! `set-not-null-scan`: `ALTER COLUMN … SET NOT NULL` scans the whole table under an
//! ACCESS EXCLUSIVE lock, unless a validated `CHECK (col IS NOT NULL)` already proves
//! it (PostgreSQL 12+ then skips the scan). Reported unless the same change adds such a
//! check and validates it first.

use squawk_syntax::ast::{self, AstNode};

/// `(statement index, message)` for every SET NOT NULL in `statements` that no
/// earlier validated check covers.
pub(crate) fn check(statements: &[Option<ast::Stmt>]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut seen_sql = String::new();
    for (index, stmt) in statements.iter().enumerate() {
        let Some(stmt) = stmt else { continue };
        let text = stmt.syntax().text().to_string();
        if let ast::Stmt::AlterTable(alter) = stmt {
            for action in alter.actions() {
                let ast::AlterTableAction::AlterColumn(column) = action else {
                    continue;
                };
                if !matches!(column.option(), Some(ast::AlterColumnOption::SetNotNull(_))) {
                    continue;
                }
                let name = column
                    .column_name_ref()
                    .map(|c| c.syntax().text().to_string())
                    .unwrap_or_default();
                let covered = {
                    let earlier = seen_sql.to_ascii_lowercase();
                    earlier.contains(&format!("{} is not null", name.to_ascii_lowercase()))
                        && earlier.contains("validate constraint")
                };
                if !covered {
                    found.push((
                        index,
                        format!(
                            "SET NOT NULL on {name} scans every row under an ACCESS EXCLUSIVE lock"
                        ),
                    ));
                }
            }
        }
        seen_sql.push_str(&text);
        seen_sql.push('\n');
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use squawk_syntax::SourceFile;

    fn stmts(sql: &str) -> Vec<Option<ast::Stmt>> {
        SourceFile::parse(sql).tree().stmts().map(Some).collect()
    }

    #[test]
    fn a_bare_set_not_null_is_reported() {
        let found = check(&stmts("ALTER TABLE t ALTER COLUMN c SET NOT NULL;"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 0);
    }

    #[test]
    fn a_validated_check_first_is_fine() {
        let found = check(&stmts(
            "ALTER TABLE t ADD CONSTRAINT c_nn CHECK (c IS NOT NULL) NOT VALID;\n\
             ALTER TABLE t VALIDATE CONSTRAINT c_nn;\n\
             ALTER TABLE t ALTER COLUMN c SET NOT NULL;",
        ));
        assert!(found.is_empty(), "{found:?}");
    }
}
