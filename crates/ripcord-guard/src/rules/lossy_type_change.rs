//! `lossy-type-change`: `ALTER COLUMN … TYPE` to a type that can hold less than most
//! sources (a bounded varchar, a smaller integer, a numeric with a scale, boolean,
//! date) or with an explicit `USING` conversion: values may be cut, rounded or refused,
//! and only the vault brings the old ones back. Widening targets (`text`, `bigint`,
//! unbounded `numeric`, `jsonb`) without `USING` are not reported.

use squawk_syntax::ast::{self, AstNode};

/// Target types that widen whatever they are given.
const WIDENING: &[&str] = &[
    "text",
    "bigint",
    "int8",
    "numeric",
    "decimal",
    "jsonb",
    "double precision",
    "float8",
    "varchar",
    "character varying",
    "timestamptz",
    "timestamp with time zone",
];

/// The finding's message, when `stmt` changes a column's type in a lossy way.
pub(crate) fn check(stmt: &ast::Stmt) -> Option<String> {
    let ast::Stmt::AlterTable(alter) = stmt else {
        return None;
    };
    for action in alter.actions() {
        let ast::AlterTableAction::AlterColumn(column) = action else {
            continue;
        };
        let Some(ast::AlterColumnOption::SetType(set_type)) = column.option() else {
            continue;
        };
        let target = set_type
            .ty()
            .map(|t| t.syntax().text().to_string().trim().to_ascii_lowercase())
            .unwrap_or_default();
        let name = column
            .column_name_ref()
            .map(|c| c.syntax().text().to_string())
            .unwrap_or_default();
        if set_type.using_expr().is_some() {
            return Some(format!(
                "column {name} is converted to {target} with USING: values that do not convert the same way back are lost without the vault"
            ));
        }
        if !WIDENING.contains(&target.as_str()) {
            return Some(format!(
                "column {name} becomes {target}, which may hold less than the old type: values can be cut, rounded or refused"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use squawk_syntax::SourceFile;

    fn first(sql: &str) -> ast::Stmt {
        SourceFile::parse(sql).tree().stmts().next().unwrap()
    }

    #[test]
    fn narrowing_and_using_are_lossy() {
        assert!(check(&first("ALTER TABLE t ALTER COLUMN c TYPE varchar(10)")).is_some());
        assert!(
            check(&first(
                "ALTER TABLE t ALTER COLUMN c TYPE integer USING c::integer"
            ))
            .is_some()
        );
        assert!(check(&first("ALTER TABLE t ALTER COLUMN c TYPE numeric(6,2)")).is_some());
    }

    #[test]
    fn widening_is_not() {
        assert_eq!(
            check(&first("ALTER TABLE t ALTER COLUMN c TYPE text")),
            None
        );
        assert_eq!(
            check(&first("ALTER TABLE t ALTER COLUMN c TYPE bigint")),
            None
        );
        assert_eq!(check(&first("ALTER TABLE t ADD COLUMN c int")), None);
    }
}
