//! `lossy-type-change`: `ALTER COLUMN … TYPE` to a type that can hold less than most
//! sources (a bounded varchar, a smaller integer, a numeric with a scale, boolean,
//! date) or with an explicit `USING` conversion: values may be cut, rounded or refused,
//! and only the vault brings the old ones back. Widening targets (`text`, `bigint`,
//! unbounded `numeric`, `jsonb`) without `USING` are not reported.

use squawk_syntax::ast::{self, AstNode};

use crate::column_types::{ColumnTypes, Conversion, conversion, normalize_type};

/// `(rule, message)` when `stmt` changes a column's type in a way that may lose values
/// (`lossy-type-change`), or from a type ripcord does not know (`unknown-type-change`).
/// The same type and known widenings are not reported.
pub(crate) fn check(stmt: &ast::Stmt, types: &ColumnTypes) -> Option<(&'static str, String)> {
    let ast::Stmt::AlterTable(alter) = stmt else {
        return None;
    };
    let table = alter
        .table_relation_name()
        .map(|n| n.syntax().text().to_string())
        .unwrap_or_default();
    for action in alter.actions() {
        let ast::AlterTableAction::AlterColumn(column) = action else {
            continue;
        };
        let Some(ast::AlterColumnOption::SetType(set_type)) = column.option() else {
            continue;
        };
        let target = set_type
            .ty()
            .map(|t| t.syntax().text().to_string())
            .unwrap_or_default();
        let shown = normalize_type(&target);
        let name = column
            .column_name_ref()
            .map(|c| c.syntax().text().to_string())
            .unwrap_or_default();
        let old = types.get(table.trim(), name.trim());
        if set_type.using_expr().is_some() && old.map(normalize_type) != Some(shown.clone()) {
            return Some((
                "lossy-type-change",
                format!(
                    "column {name} is converted to {shown} with USING: values that do not convert the same way back are lost without the vault"
                ),
            ));
        }
        match conversion(old, &target) {
            Conversion::Lossless => {}
            Conversion::Lossy => {
                return Some((
                    "lossy-type-change",
                    format!(
                        "column {name} goes from {} to {shown}, which may hold less: values can be cut, rounded or refused",
                        old.unwrap_or_default()
                    ),
                ));
            }
            Conversion::Unknown => {
                return Some((
                    "unknown-type-change",
                    format!(
                        "column {name} becomes {shown}; its old type is unknown to ripcord (no change it read created it), so whether every value survives is unknown"
                    ),
                ));
            }
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

    fn known() -> ColumnTypes {
        let mut types = ColumnTypes::new();
        types.learn("CREATE TABLE t (c varchar(40), n numeric(10,2), i int, u uuid)");
        types
    }

    fn rule(sql: &str, types: &ColumnTypes) -> Option<&'static str> {
        check(&first(sql), types).map(|(rule, _)| rule)
    }

    #[test]
    fn narrowing_and_using_are_lossy() {
        let types = known();
        assert_eq!(
            rule("ALTER TABLE t ALTER COLUMN c TYPE varchar(10)", &types),
            Some("lossy-type-change")
        );
        assert_eq!(
            rule(
                "ALTER TABLE t ALTER COLUMN c TYPE integer USING c::integer",
                &types
            ),
            Some("lossy-type-change")
        );
        assert_eq!(
            rule("ALTER TABLE t ALTER COLUMN n TYPE numeric(6,2)", &types),
            Some("lossy-type-change")
        );
        assert_eq!(
            rule("ALTER TABLE t ALTER COLUMN i TYPE smallint", &types),
            Some("lossy-type-change")
        );
    }

    #[test]
    fn the_same_type_and_widening_are_not() {
        let types = known();
        for sql in [
            "ALTER TABLE t ALTER COLUMN u TYPE uuid",
            "ALTER TABLE public.t ALTER COLUMN u TYPE UUID USING u::uuid",
            "ALTER TABLE t ALTER COLUMN i TYPE bigint",
            "ALTER TABLE t ALTER COLUMN c TYPE varchar(80)",
            "ALTER TABLE t ALTER COLUMN c TYPE text",
            "ALTER TABLE t ADD COLUMN x int",
        ] {
            assert_eq!(rule(sql, &types), None, "{sql}");
        }
    }

    #[test]
    fn an_unknown_old_type_is_unknown() {
        let types = ColumnTypes::new();
        assert_eq!(
            rule("ALTER TABLE t ALTER COLUMN nid TYPE uuid", &types),
            Some("unknown-type-change")
        );
        assert_eq!(
            rule("ALTER TABLE t ALTER COLUMN nid TYPE text", &types),
            None
        );
    }
}
