//! Column types as the project's changes (or a target's catalog) define them, so that
//! `ALTER COLUMN … TYPE` can be judged against the type it replaces: the same type or a
//! known widening loses nothing, a narrowing can, and without the old type ripcord says
//! it does not know.

use std::collections::HashMap;

use ripcord_core::Change;
use ripcord_core::vault::identifier_value;
use squawk_syntax::SourceFile;
use squawk_syntax::ast::{self, AstNode};

/// `(table, column) -> type`, names folded as PostgreSQL folds them.
#[derive(Debug, Clone, Default)]
pub struct ColumnTypes {
    types: HashMap<(String, String), String>,
}

/// A table name as a key: unquoted parts fold to lower case, `public.` is dropped.
fn table_key(name: &str) -> String {
    let parts: Vec<String> = split_qualified(name)
        .iter()
        .map(|p| identifier_value(p))
        .collect();
    match parts.as_slice() {
        [schema, table] if schema == "public" => table.clone(),
        _ => parts.join("."),
    }
}

/// `a."b.c"` → `["a", "\"b.c\""]`: dots inside quotes do not split.
fn split_qualified(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in name.trim().chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// A type's canonical spelling: lower case, single spaces, aliases resolved.
pub fn normalize_type(ty: &str) -> String {
    let ty = ty
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    let (base, args) = match ty.find('(') {
        Some(open) => (ty[..open].trim().to_string(), ty[open..].replace(' ', "")),
        None => (ty.clone(), String::new()),
    };
    let (base, array) = match base.strip_suffix("[]") {
        Some(b) => (b.trim().to_string(), "[]"),
        None => (base, ""),
    };
    let base = match base.as_str() {
        "int" | "int4" | "integer" | "serial" | "serial4" => "integer",
        "int8" | "bigint" | "bigserial" | "serial8" => "bigint",
        "int2" | "smallint" | "smallserial" | "serial2" => "smallint",
        "varchar" | "character varying" => "character varying",
        "char" | "character" | "bpchar" => "character",
        "bool" | "boolean" => "boolean",
        "float8" | "double precision" | "float" => "double precision",
        "float4" | "real" => "real",
        "decimal" | "numeric" => "numeric",
        "timestamptz" | "timestamp with time zone" => "timestamp with time zone",
        "timestamp" | "timestamp without time zone" => "timestamp without time zone",
        "timetz" | "time with time zone" => "time with time zone",
        "time" | "time without time zone" => "time without time zone",
        other => other,
    };
    format!("{base}{args}{array}")
}

/// `(base, arguments)` of a normalized type: `numeric(10,2)` → `("numeric", [10, 2])`.
fn parts(ty: &str) -> (&str, Vec<u32>) {
    match ty.find('(') {
        Some(open) => (
            &ty[..open],
            ty[open + 1..]
                .trim_end_matches(')')
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect(),
        ),
        None => (ty, Vec::new()),
    }
}

/// What a type change does to the values it converts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversion {
    /// Every old value converts to the same value and back.
    Lossless,
    /// Values may be cut, rounded or refused.
    Lossy,
    /// The old type is not known, so neither is the answer.
    Unknown,
}

/// Does converting `from` to `to` keep every value? `from` is `None` when unknown.
pub fn conversion(from: Option<&str>, to: &str) -> Conversion {
    let to = normalize_type(to);
    // Every value has a text form that reads back as itself.
    if to == "text" || to == "character varying" {
        return Conversion::Lossless;
    }
    let Some(from) = from.map(normalize_type) else {
        return Conversion::Unknown;
    };
    if from == to {
        return Conversion::Lossless;
    }
    let ((from_base, from_args), (to_base, to_args)) = (parts(&from), parts(&to));
    let widening = match (from_base, to_base) {
        ("smallint", "integer" | "bigint" | "numeric")
        | ("integer", "bigint" | "numeric")
        | ("bigint", "numeric")
        | ("real", "double precision")
        | ("character varying" | "character", "text") => to_args.is_empty(),
        ("character varying", "character varying") | ("character", "character") => {
            to_args.is_empty()
                || from_args
                    .first()
                    .zip(to_args.first())
                    .is_some_and(|(f, t)| t >= f)
        }
        ("numeric", "numeric") => match (from_args.as_slice(), to_args.as_slice()) {
            (_, []) => true,
            ([p1, s1], [p2, s2]) => s2 >= s1 && p2 - s2 >= p1 - s1,
            ([p1], [p2, s2]) => p2 - s2 >= *p1,
            ([p1], [p2]) => p2 >= p1,
            _ => false,
        },
        _ => false,
    };
    if widening {
        Conversion::Lossless
    } else {
        Conversion::Lossy
    }
}

impl ColumnTypes {
    /// No types known.
    pub fn new() -> ColumnTypes {
        ColumnTypes::default()
    }

    /// Record the type of `table.column` (names as written in SQL or as the catalog
    /// spells them).
    pub fn insert(&mut self, table: &str, column: &str, ty: &str) {
        self.types.insert(
            (table_key(table), identifier_value(column)),
            normalize_type(ty),
        );
    }

    /// Record a column as the catalog names it (exact names, no quoting): `schema` is
    /// `None` on engines without schemas.
    pub fn insert_catalog(&mut self, schema: Option<&str>, table: &str, column: &str, ty: &str) {
        let table = match schema {
            None | Some("public") => table.to_string(),
            Some(schema) => format!("{schema}.{table}"),
        };
        self.types
            .insert((table, column.to_string()), normalize_type(ty));
    }

    /// The known type of `table.column`.
    pub fn get(&self, table: &str, column: &str) -> Option<&str> {
        self.types
            .get(&(table_key(table), identifier_value(column)))
            .map(String::as_str)
    }

    /// How many columns are known.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// No column known.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Learn what the deploy section of `change` does to column types.
    pub fn learn_change(&mut self, change: &Change) {
        for span in &change.deploy.statements {
            self.learn(&change.text[span.clone()]);
        }
    }

    /// Learn what one statement does to column types.
    pub fn learn(&mut self, statement: &str) {
        let parsed = SourceFile::parse(statement);
        for stmt in parsed.tree().stmts() {
            match stmt {
                ast::Stmt::CreateTable(create) => {
                    let Some(table) = create.table_name().map(|n| text(&n)) else {
                        continue;
                    };
                    let Some(args) = create.table_arg_list() else {
                        continue;
                    };
                    for node in args.syntax().children() {
                        if let Some(column) = ast::Column::cast(node)
                            && let (Some(name), Some(ty)) = (column.name(), column.ty())
                        {
                            self.insert(&table, &text(&name), &text(&ty));
                        }
                    }
                }
                ast::Stmt::AlterTable(alter) => {
                    let Some(table) = alter.table_relation_name().map(|n| text(&n)) else {
                        continue;
                    };
                    let table = table
                        .trim_start_matches("ONLY ")
                        .trim_start_matches("only ");
                    for action in alter.actions() {
                        self.learn_action(table, action);
                    }
                }
                ast::Stmt::DropTable(drop) => {
                    for name in drop.table_name_refs() {
                        let key = table_key(&text(&name));
                        self.types.retain(|(t, _), _| *t != key);
                    }
                }
                _ => {}
            }
        }
    }

    fn learn_action(&mut self, table: &str, action: ast::AlterTableAction) {
        match action {
            ast::AlterTableAction::AddColumn(add) => {
                if let (Some(name), Some(ty)) = (add.column_name(), add.ty()) {
                    self.insert(table, &text(&name), &text(&ty));
                }
            }
            ast::AlterTableAction::AlterColumn(column) => {
                if let (Some(name), Some(ast::AlterColumnOption::SetType(set))) =
                    (column.column_name_ref(), column.option())
                    && let Some(ty) = set.ty()
                {
                    self.insert(table, &text(&name), &text(&ty));
                }
            }
            ast::AlterTableAction::DropColumn(drop) => {
                if let Some(name) = drop.column_name_ref() {
                    self.types
                        .remove(&(table_key(table), identifier_value(&text(&name))));
                }
            }
            ast::AlterTableAction::RenameColumn(rename) => {
                if let (Some(from), Some(to)) = (rename.column_name_ref(), rename.column_name()) {
                    let key = (table_key(table), identifier_value(&text(&from)));
                    if let Some(ty) = self.types.remove(&key) {
                        self.types.insert((key.0, identifier_value(&text(&to))), ty);
                    }
                }
            }
            _ => {}
        }
    }
}

fn text(node: &impl AstNode) -> String {
    node.syntax().text().to_string().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_type_and_widenings_lose_nothing() {
        assert_eq!(conversion(Some("uuid"), "UUID"), Conversion::Lossless);
        assert_eq!(conversion(Some("int4"), "integer"), Conversion::Lossless);
        assert_eq!(conversion(Some("integer"), "bigint"), Conversion::Lossless);
        assert_eq!(
            conversion(Some("varchar(10)"), "varchar(20)"),
            Conversion::Lossless
        );
        assert_eq!(
            conversion(Some("numeric(6,2)"), "numeric(10,2)"),
            Conversion::Lossless
        );
        assert_eq!(conversion(None, "text"), Conversion::Lossless);
    }

    #[test]
    fn narrowings_are_lossy_and_unknown_sources_are_unknown() {
        assert_eq!(conversion(Some("bigint"), "integer"), Conversion::Lossy);
        assert_eq!(
            conversion(Some("varchar(20)"), "varchar(10)"),
            Conversion::Lossy
        );
        assert_eq!(
            conversion(Some("numeric(10,2)"), "numeric(10,0)"),
            Conversion::Lossy
        );
        assert_eq!(conversion(Some("text"), "uuid"), Conversion::Lossy);
        assert_eq!(conversion(None, "uuid"), Conversion::Unknown);
        assert_eq!(conversion(None, "bigint"), Conversion::Unknown);
    }

    #[test]
    fn types_follow_the_statements() {
        let mut types = ColumnTypes::new();
        types.learn(
            "CREATE TABLE public.identities (id uuid PRIMARY KEY, nid UUID, \"Name\" varchar(40))",
        );
        assert_eq!(types.get("identities", "nid"), Some("uuid"));
        assert_eq!(
            types.get("public.identities", "\"Name\""),
            Some("character varying(40)")
        );
        types.learn("ALTER TABLE identities ALTER COLUMN nid TYPE text, ADD COLUMN n int8");
        assert_eq!(types.get("identities", "nid"), Some("text"));
        assert_eq!(types.get("identities", "n"), Some("bigint"));
        types.learn("ALTER TABLE identities RENAME COLUMN n TO m");
        assert_eq!(types.get("identities", "m"), Some("bigint"));
        types.learn("ALTER TABLE identities DROP COLUMN m");
        assert_eq!(types.get("identities", "m"), None);
        types.learn("DROP TABLE identities");
        assert!(types.is_empty());
    }
}
