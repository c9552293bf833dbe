//! `enum-add-value`: `ALTER TYPE … ADD VALUE` cannot be undone — PostgreSQL has no way
//! to remove a value from an enum (the type must be re-created and every column using
//! it rewritten).

use squawk_syntax::ast::{self, AstNode};

/// The finding's message, when `stmt` adds a value to an enum.
pub(crate) fn check(stmt: &ast::Stmt) -> Option<String> {
    let ast::Stmt::AlterType(alter) = stmt else {
        return None;
    };
    let text = alter.syntax().text().to_string().to_ascii_uppercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .any(|w| w == ["ADD", "VALUE"])
        .then(|| "an enum value cannot be removed again; a revert would have to re-create the type and rewrite every column that uses it".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use squawk_syntax::SourceFile;

    fn first(sql: &str) -> ast::Stmt {
        SourceFile::parse(sql).tree().stmts().next().unwrap()
    }

    #[test]
    fn adding_a_value_is_reported() {
        assert!(check(&first("ALTER TYPE mood ADD VALUE 'meh' AFTER 'ok'")).is_some());
        assert!(check(&first("ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh'")).is_some());
    }

    #[test]
    fn renaming_a_value_is_not() {
        assert_eq!(
            check(&first("ALTER TYPE mood RENAME VALUE 'a' TO 'b'")),
            None
        );
    }
}
