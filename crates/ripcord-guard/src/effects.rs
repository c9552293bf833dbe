//! Statement recognition for the vault and generated reverts: what one deploy
//! statement does to the objects it touches ([`Effect`]), or `None` when ripcord does
//! not know how to undo it (the statement is then irreversible until the author writes
//! a revert).

use ripcord_core::vault::{CreatedKind, Effect};
use squawk_syntax::SourceFile;
use squawk_syntax::ast::{self, AstNode};

fn text(node: &impl AstNode) -> String {
    node.syntax().text().to_string().trim().to_string()
}

/// The schema part of a qualified name as written (`s` of `s.t`), if any.
fn qualifier(name: &str) -> Option<&str> {
    // Quoted names may hold dots; only a dot outside quotes separates.
    let mut quoted = false;
    let mut last_dot = None;
    for (i, c) in name.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => last_dot = Some(i),
            _ => {}
        }
    }
    last_dot.map(|i| &name[..i])
}

fn contains_dml(node: &impl AstNode) -> bool {
    node.syntax().descendants().any(|n| {
        ast::Insert::can_cast(n.kind())
            || ast::Update::can_cast(n.kind())
            || ast::Delete::can_cast(n.kind())
            || ast::Merge::can_cast(n.kind())
    })
}

/// The effects of one statement, or `None` when ripcord cannot undo it.
pub fn statement_effects(sql: &str) -> Option<Vec<Effect>> {
    let parsed = SourceFile::parse(sql);
    if !parsed.errors().is_empty() {
        return None;
    }
    let file = parsed.tree();
    let mut effects = Vec::new();
    for stmt in file.stmts() {
        effects.extend(stmt_effects(stmt)?);
    }
    Some(effects)
}

fn created(kind: CreatedKind, name: String, if_not_exists: bool) -> Effect {
    Effect::Creates {
        kind,
        name,
        if_not_exists,
        concurrently: false,
    }
}

fn stmt_effects(stmt: ast::Stmt) -> Option<Vec<Effect>> {
    use ast::Stmt;
    let one = |e: Effect| Some(vec![e]);
    match stmt {
        Stmt::CreateTable(s) => {
            if s.partition_of().is_some() || s.inherits().is_some() {
                return None;
            }
            let name = text(&s.table_name()?.path()?);
            one(created(
                CreatedKind::Table,
                name,
                s.if_not_exists().is_some(),
            ))
        }
        Stmt::CreateTableAs(s) => {
            let name = text(&s.table_name()?.path()?);
            one(created(
                CreatedKind::Table,
                name,
                s.if_not_exists().is_some(),
            ))
        }
        Stmt::CreateIndex(s) => {
            let index = text(&s.index()?.path()?);
            let table = text(&s.table_relation_name()?.table_name_ref()?.path_ref()?);
            // An index lives in its table's schema.
            let name = match (qualifier(&index), qualifier(&table)) {
                (None, Some(schema)) => format!("{schema}.{index}"),
                _ => index,
            };
            one(Effect::Creates {
                kind: CreatedKind::Index,
                name,
                if_not_exists: s.if_not_exists().is_some(),
                concurrently: s.concurrently_token().is_some(),
            })
        }
        Stmt::CreateView(s) => {
            if s.or_replace().is_some() {
                return None;
            }
            one(created(CreatedKind::View, text(&s.view()?.path()?), false))
        }
        Stmt::CreateMaterializedView(s) => one(created(
            CreatedKind::MaterializedView,
            text(&s.view()?.path()?),
            s.if_not_exists().is_some(),
        )),
        Stmt::CreateSequence(s) => one(created(
            CreatedKind::Sequence,
            text(&s.sequence()?.path()?),
            s.if_not_exists().is_some(),
        )),
        Stmt::AlterTable(s) => alter_table(s),
        Stmt::DropTable(s) => {
            let if_exists = s.if_exists().is_some();
            let tables: Vec<Effect> = s
                .table_name_refs()
                .map(|t| {
                    Some(Effect::DropTable {
                        table: text(&t.path_ref()?),
                        if_exists,
                    })
                })
                .collect::<Option<_>>()?;
            (!tables.is_empty()).then_some(tables)
        }
        Stmt::Truncate(s) => {
            // CASCADE empties other tables too, RESTART IDENTITY resets sequences.
            if matches!(s.drop_behavior(), Some(ast::DropBehavior::Cascade(_)))
                || matches!(
                    s.identity_action(),
                    Some(ast::IdentityAction::RestartIdentity(_))
                )
            {
                return None;
            }
            s.table_list()?
                .table_relation_names()
                .map(|t| {
                    Some(Effect::Truncate {
                        table: text(&t.table_name_ref()?.path_ref()?),
                    })
                })
                .collect()
        }
        Stmt::Delete(s) => {
            if s.with_clause().is_some_and(|w| contains_dml(&w)) {
                return None;
            }
            one(Effect::Delete {
                table: text(&s.relation_name()?.relation_name_ref()?.path_ref()?),
            })
        }
        Stmt::Update(s) => {
            if s.with_clause().is_some_and(|w| contains_dml(&w)) {
                return None;
            }
            one(Effect::Update {
                table: text(&s.relation_name()?.relation_name_ref()?.path_ref()?),
            })
        }
        Stmt::Insert(s) => {
            if s.with_clause().is_some_and(|w| contains_dml(&w)) {
                return None;
            }
            let table = text(&s.relation_name_ref()?.path_ref()?);
            let mut effects = Vec::new();
            // An upsert may update rows that were there before.
            if s.on_conflict_clause().is_some_and(|c| {
                c.syntax()
                    .text()
                    .to_string()
                    .to_ascii_lowercase()
                    .contains("update")
            }) {
                effects.push(Effect::Update {
                    table: table.clone(),
                });
            }
            effects.push(Effect::Insert { table });
            Some(effects)
        }
        Stmt::DropIndex(s) => {
            // CONCURRENTLY runs outside a transaction, where the vault keeps nothing;
            // CASCADE takes constraints along.
            if s.concurrently_token().is_some()
                || matches!(s.drop_behavior(), Some(ast::DropBehavior::Cascade(_)))
            {
                return None;
            }
            let if_exists = s.if_exists().is_some();
            let indexes: Vec<Effect> = s
                .index_refs()
                .map(|i| {
                    Some(Effect::DropIndex {
                        name: text(&i.path_ref()?),
                        if_exists,
                    })
                })
                .collect::<Option<_>>()?;
            (!indexes.is_empty()).then_some(indexes)
        }
        Stmt::DropFunction(s) => {
            if matches!(s.drop_behavior(), Some(ast::DropBehavior::Cascade(_))) {
                return None;
            }
            let if_exists = s.if_exists().is_some();
            let functions: Vec<Effect> = s
                .function_sig_list()?
                .function_sigs()
                .map(|f| Effect::DropFunction {
                    signature: text(&f),
                    if_exists,
                })
                .collect();
            (!functions.is_empty()).then_some(functions)
        }
        Stmt::CommentOn(_) => one(Effect::Comment),
        Stmt::Grant(s) => relation_privileges(&text(&s.on_privilege_objects_clause()?)),
        Stmt::Revoke(s) => relation_privileges(&text(&s.on_privilege_objects_clause()?)),
        Stmt::Set(_) | Stmt::Analyze(_) => Some(Vec::new()),
        _ => None,
    }
}

/// `GRANT`/`REVOKE … ON <objects>` on tables, views or sequences (also `ALL TABLES IN
/// SCHEMA`); `None` for schemas, functions, types and the other objects the vault does
/// not keep the privileges of.
fn relation_privileges(on_clause: &str) -> Option<Vec<Effect>> {
    let words: Vec<String> = on_clause
        .split_whitespace()
        .take(3)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let first = words.get(1).map(String::as_str)?;
    let relation = match first {
        "TABLE" | "SEQUENCE" => true,
        "ALL" => matches!(
            words.get(2).map(String::as_str),
            Some("TABLES" | "SEQUENCES")
        ),
        "SCHEMA" | "FUNCTION" | "PROCEDURE" | "ROUTINE" | "DATABASE" | "TYPE" | "DOMAIN"
        | "LANGUAGE" | "LARGE" | "FOREIGN" | "TABLESPACE" | "PARAMETER" => false,
        // `ON name`: a table.
        _ => true,
    };
    relation.then(|| vec![Effect::Privileges])
}

fn alter_table(s: ast::AlterTable) -> Option<Vec<Effect>> {
    if s.if_exists().is_some() {
        return None;
    }
    let table = text(&s.table_relation_name()?.table_name_ref()?.path_ref()?);
    let mut effects = Vec::new();
    for action in s.actions() {
        use ast::AlterTableAction as A;
        let effect = match action {
            A::AddColumn(a) => {
                if a.if_not_exists().is_some() {
                    return None;
                }
                Effect::AddColumn {
                    table: table.clone(),
                    column: a.column_name()?.ident_token()?.text().to_string(),
                }
            }
            A::DropColumn(d) => Effect::DropColumn {
                table: table.clone(),
                column: d.column_name_ref()?.ident_token()?.text().to_string(),
            },
            A::AlterColumn(a) => {
                let column = a.column_name_ref()?.ident_token()?.text().to_string();
                let table = table.clone();
                use ast::AlterColumnOption as O;
                match a.option()? {
                    O::SetType(_) => Effect::AlterType { table, column },
                    O::SetDefault(_) | O::DropDefault(_) => Effect::ColumnDefault { table, column },
                    O::SetNotNull(_) | O::DropNotNull(_) => Effect::ColumnNotNull { table, column },
                    _ => return None,
                }
            }
            A::AddConstraint(_) => Effect::AddConstraint {
                table: table.clone(),
            },
            A::DropConstraint(d) => Effect::DropConstraint {
                table: table.clone(),
                name: text(&d.constraint_name_ref()?.path_ref()?),
            },
            A::RenameColumn(r) => Effect::RenameColumn {
                table: table.clone(),
                column: r.column_name_ref()?.ident_token()?.text().to_string(),
                to: r.column_name()?.ident_token()?.text().to_string(),
            },
            A::TableRenameTo(r) => Effect::RenameTable {
                table: table.clone(),
                to: text(&r.table_name()?.path()?),
            },
            _ => return None,
        };
        effects.push(effect);
    }
    (!effects.is_empty()).then_some(effects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Effect {
        let mut effects = statement_effects(sql).expect("recognized");
        assert_eq!(effects.len(), 1, "{effects:?}");
        effects.remove(0)
    }

    #[test]
    fn dropped_indexes_functions_and_comments_are_kept_unless_they_cascade() {
        assert_eq!(
            statement_effects("DROP INDEX IF EXISTS a, s.b").unwrap(),
            vec![
                Effect::DropIndex {
                    name: "a".into(),
                    if_exists: true
                },
                Effect::DropIndex {
                    name: "s.b".into(),
                    if_exists: true
                },
            ]
        );
        assert_eq!(
            one("DROP FUNCTION f(integer, text)"),
            Effect::DropFunction {
                signature: "f(integer, text)".into(),
                if_exists: false
            }
        );
        assert_eq!(one("COMMENT ON COLUMN t.a IS 'x'"), Effect::Comment);
        for kept in [
            "GRANT SELECT ON t TO app",
            "REVOKE ALL ON TABLE t FROM PUBLIC",
            "GRANT SELECT (a, b) ON t TO app",
            "GRANT USAGE ON SEQUENCE s TO app",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader",
        ] {
            assert_eq!(one(kept), Effect::Privileges, "{kept}");
        }
        for refused in [
            "GRANT USAGE ON SCHEMA s TO app",
            "GRANT EXECUTE ON FUNCTION f() TO app",
            "GRANT admin TO alice",
            "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO app",
        ] {
            assert_eq!(statement_effects(refused), None, "{refused}");
        }
        for refused in [
            "DROP INDEX CONCURRENTLY a",
            "DROP INDEX a CASCADE",
            "DROP FUNCTION f() CASCADE",
        ] {
            assert_eq!(statement_effects(refused), None, "{refused}");
        }
    }

    #[test]
    fn creates_name_what_a_drop_removes() {
        assert_eq!(
            one("CREATE INDEX CONCURRENTLY idx ON app.t (a)"),
            Effect::Creates {
                kind: CreatedKind::Index,
                name: "app.idx".into(),
                if_not_exists: false,
                concurrently: true
            }
        );
        assert_eq!(
            one("create table \"Odd\".t (id int primary key)"),
            created(CreatedKind::Table, "\"Odd\".t".into(), false)
        );
    }

    #[test]
    fn alter_table_actions_each_get_an_effect() {
        let effects = statement_effects(
            "ALTER TABLE t ADD COLUMN a int, DROP COLUMN b, ALTER COLUMN c TYPE bigint, \
             ALTER COLUMN d SET DEFAULT 1, ALTER COLUMN e DROP NOT NULL, \
             ADD CONSTRAINT k CHECK (a > 0), DROP CONSTRAINT old",
        )
        .unwrap();
        let kinds: Vec<&str> = effects
            .iter()
            .map(|e| match e {
                Effect::AddColumn { .. } => "add",
                Effect::DropColumn { .. } => "drop",
                Effect::AlterType { .. } => "type",
                Effect::ColumnDefault { .. } => "default",
                Effect::ColumnNotNull { .. } => "not null",
                Effect::AddConstraint { .. } => "add constraint",
                Effect::DropConstraint { .. } => "drop constraint",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "add",
                "drop",
                "type",
                "default",
                "not null",
                "add constraint",
                "drop constraint"
            ]
        );
    }

    #[test]
    fn data_statements_name_their_table() {
        assert_eq!(
            one("DELETE FROM public.orders o USING x WHERE o.id = x.id"),
            Effect::Delete {
                table: "public.orders".into()
            }
        );
        assert_eq!(
            one("UPDATE orders SET a = 1"),
            Effect::Update {
                table: "orders".into()
            }
        );
        assert_eq!(
            statement_effects("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(statement_effects("TRUNCATE a, b").unwrap().len(), 2);
    }

    #[test]
    fn what_cannot_be_undone_is_not_recognized() {
        for sql in [
            "DROP SCHEMA s CASCADE",
            "TRUNCATE t CASCADE",
            "TRUNCATE t RESTART IDENTITY",
            "DO $$ BEGIN PERFORM 1; END $$",
            "CREATE OR REPLACE VIEW v AS SELECT 1",
            "ALTER TABLE t VALIDATE CONSTRAINT k",
            "ALTER TABLE IF EXISTS t DROP COLUMN c",
            "WITH gone AS (DELETE FROM a RETURNING *) DELETE FROM b",
            "CREATE INDEX ON t (a)",
            "this is not sql",
        ] {
            assert_eq!(statement_effects(sql), None, "{sql}");
        }
    }
}
