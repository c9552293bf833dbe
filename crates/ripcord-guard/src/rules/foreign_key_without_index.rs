//! `foreign-key-without-index`: a foreign key whose referencing columns have no index
//! in the same change makes every delete or key update on the referenced table scan
//! the referencing one (and take its locks for longer). An index made elsewhere is not
//! seen: suppress with the reason when one exists.

use squawk_syntax::ast::{self, AstNode};

fn lower(node: &impl AstNode) -> String {
    node.syntax().text().to_string().to_ascii_lowercase()
}

/// The first referencing column of each foreign key in `stmt`, with its table.
fn foreign_keys(stmt: &ast::Stmt) -> Vec<(String, String)> {
    let (table, scope) = match stmt {
        ast::Stmt::CreateTable(create) => (
            create.table_name().map(|n| lower(&n)).unwrap_or_default(),
            create.syntax().clone(),
        ),
        ast::Stmt::AlterTable(alter) => (
            alter
                .table_relation_name()
                .map(|n| lower(&n))
                .unwrap_or_default(),
            alter.syntax().clone(),
        ),
        _ => return Vec::new(),
    };
    let mut found = Vec::new();
    for node in scope.descendants() {
        if let Some(fk) = ast::ForeignKeyConstraint::cast(node.clone()) {
            // FOREIGN KEY (a, b) REFERENCES …: the first column leads the index.
            let text = lower(&fk);
            if let Some(open) = text.find('(') {
                let inner = &text[open + 1..];
                let first = inner
                    .split([',', ')'])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                found.push((table.clone(), first));
            }
        } else if let Some(references) = ast::ReferencesConstraint::cast(node.clone()) {
            // Inline `col type REFERENCES …`: the column the constraint belongs to.
            let column = references.syntax().ancestors().find_map(|a| {
                ast::Column::cast(a.clone())
                    .and_then(|c| c.name())
                    .or_else(|| ast::AddColumn::cast(a).and_then(|c| c.column_name()))
            });
            if let Some(name) = column {
                found.push((table.clone(), lower(&name)));
            }
        }
    }
    found
}

/// Is there a `CREATE INDEX … ON table (column …` in `statements`?
fn indexed(statements: &[Option<ast::Stmt>], table: &str, column: &str) -> bool {
    statements.iter().flatten().any(|stmt| {
        let ast::Stmt::CreateIndex(index) = stmt else {
            return false;
        };
        let on = index
            .table_relation_name()
            .map(|n| lower(&n))
            .unwrap_or_default();
        let text = lower(index);
        let columns = text
            .split_once(&format!("{on} ("))
            .or_else(|| text.split_once(&format!("{on}(")))
            .map(|(_, rest)| rest.trim_start().to_string())
            .unwrap_or_default();
        on.trim() == table.trim() && columns.starts_with(column)
    })
}

/// `(statement index, message)` for each foreign key without an index in the change.
pub(crate) fn check(statements: &[Option<ast::Stmt>]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, stmt) in statements.iter().enumerate() {
        let Some(stmt) = stmt else { continue };
        for (table, column) in foreign_keys(stmt) {
            if !indexed(statements, &table, &column) {
                found.push((
                    index,
                    format!(
                        "the foreign key on {table}.{column} has no index in this change: deletes on the referenced table will scan {table}"
                    ),
                ));
            }
        }
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
    fn an_unindexed_foreign_key_is_reported() {
        let found = check(&stmts(
            "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id));",
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.contains("orders.user_id"), "{}", found[0].1);
        let found = check(&stmts(
            "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;",
        ));
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn an_index_in_the_change_covers_it() {
        let found = check(&stmts(
            "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id));\n\
             CREATE INDEX orders_user_idx ON orders (user_id);",
        ));
        assert!(found.is_empty(), "{found:?}");
    }
}
