//! Fingerprints of a database and their differences, told in words.
//!
//! A [`Fingerprint`] is what drill compares: every schema object outside the ledger as
//! `(kind, name) -> definition`, and per table a row count and an order-independent hash
//! of all rows, both computed by the engine inside the database. Definitions are lines
//! of `key: value`, so a difference can name the attribute that changed ("column
//! public.t.v: default 'z'::text (was 'x'::text)") instead of showing a diff.

use std::collections::BTreeMap;

use serde::Serialize;

/// Kind of the object that lists a table's columns in their order (its name is the
/// table's). `SELECT *`, `INSERT … VALUES` and `COPY` without a column list depend on
/// that order, so a revert that puts a column back elsewhere does not restore the schema.
pub const COLUMN_ORDER: &str = "column order";

/// One schema object as the engine describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaObject {
    /// What it is: `table`, `column`, `index`, `constraint`, `view`, `function`, …
    pub kind: String,
    /// Its qualified name (`public.orders`, `public.orders.total`, `public.f(integer)`).
    pub name: String,
    /// Its normalized definition, as `key: value` lines where that makes sense.
    pub definition: String,
}

/// Row count and content hash of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableData {
    /// Rows.
    pub rows: i64,
    /// Order-independent hash of all rows (a sum of 64-bit row hashes, as text).
    pub hash: String,
}

/// Schema and data of a database at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fingerprint {
    /// `(kind, name) -> definition`.
    pub schema: BTreeMap<(String, String), String>,
    /// Table name -> data.
    pub data: BTreeMap<String, TableData>,
}

/// One difference between two fingerprints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Object kind (`index`, `column`, …) or `data`.
    pub category: String,
    /// The difference in words.
    pub text: String,
}

impl Fingerprint {
    /// Build from what the engine reported.
    pub fn new(objects: Vec<SchemaObject>, tables: Vec<(String, TableData)>) -> Fingerprint {
        Fingerprint {
            schema: objects
                .into_iter()
                .map(|o| ((o.kind, o.name), o.definition))
                .collect(),
            data: tables.into_iter().collect(),
        }
    }

    /// Differences of `actual` from `self` (the expected state), at most `per_category`
    /// of each kind (plus a line saying how many more). `when` reads like "after revert",
    /// `baseline` like "before".
    pub fn differences(
        &self,
        actual: &Fingerprint,
        when: &str,
        baseline: &str,
        per_category: usize,
    ) -> Vec<Difference> {
        let mut by_category: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for ((kind, name), definition) in &actual.schema {
            if kind == COLUMN_ORDER {
                if let Some(expected) = self.schema.get(&(kind.clone(), name.clone()))
                    && let Some(text) = reordered(name, expected, definition, when, baseline)
                {
                    by_category.entry(kind.clone()).or_default().push(text);
                }
                continue;
            }
            match self.schema.get(&(kind.clone(), name.clone())) {
                None => by_category
                    .entry(kind.clone())
                    .or_default()
                    .push(format!("{kind} {name} exists {when} but not {baseline}")),
                Some(expected) if expected != definition => {
                    by_category.entry(kind.clone()).or_default().push(format!(
                        "{kind} {name}: {}",
                        describe_change(expected, definition)
                    ))
                }
                Some(_) => {}
            }
        }
        for (kind, name) in self.schema.keys() {
            if kind != COLUMN_ORDER && !actual.schema.contains_key(&(kind.clone(), name.clone())) {
                by_category.entry(kind.clone()).or_default().push(format!(
                    "{kind} {name} is missing {when} (it existed {baseline})"
                ));
            }
        }
        for (table, data) in &actual.data {
            let Some(expected) = self.data.get(table) else {
                continue; // a new table is already reported as a schema difference
            };
            if expected == data {
                continue;
            }
            let text = if expected.rows != data.rows {
                format!(
                    "table {table}: rows differ (count {} → {})",
                    expected.rows, data.rows
                )
            } else {
                format!(
                    "table {table}: contents differ (same count {}, different values)",
                    data.rows
                )
            };
            by_category.entry("data".into()).or_default().push(text);
        }
        let mut out = Vec::new();
        // Schema first (in kind order), data last.
        let data = by_category.remove("data");
        for (category, texts) in by_category
            .into_iter()
            .chain(data.map(|d| ("data".to_string(), d)))
        {
            let total = texts.len();
            for text in texts.into_iter().take(per_category) {
                out.push(Difference {
                    category: category.clone(),
                    text,
                });
            }
            if total > per_category {
                out.push(Difference {
                    category: category.clone(),
                    text: format!("… and {} more {category} differences", total - per_category),
                });
            }
        }
        out
    }
}

/// The same columns in another order, in words; `None` when the columns themselves
/// differ (each added or missing column is told on its own) or the order is the same.
fn reordered(
    table: &str,
    expected: &str,
    actual: &str,
    when: &str,
    baseline: &str,
) -> Option<String> {
    if expected == actual {
        return None;
    }
    fn sorted(text: &str) -> Vec<&str> {
        let mut columns: Vec<&str> = text.split(", ").collect();
        columns.sort_unstable();
        columns
    }
    (sorted(expected) == sorted(actual)).then(|| {
        format!("column order of {table} differs {when}: {actual} ({baseline}: {expected})")
    })
}

/// "default 'z' (was 'x'); not_null false (was true)" for `key: value` definitions,
/// else "definition differs".
fn describe_change(expected: &str, actual: &str) -> String {
    let parse = |text: &str| -> Option<BTreeMap<String, String>> {
        text.lines()
            .map(|line| {
                line.split_once(": ")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    };
    match (parse(expected), parse(actual)) {
        (Some(before), Some(after)) if !before.is_empty() => {
            let mut parts = Vec::new();
            for (key, value) in &after {
                match before.get(key) {
                    Some(old) if old != value => parts.push(format!("{key} {value} (was {old})")),
                    None => parts.push(format!("{key} {value} (was unset)")),
                    _ => {}
                }
            }
            for (key, old) in &before {
                if !after.contains_key(key) {
                    parts.push(format!("{key} unset (was {old})"));
                }
            }
            if parts.is_empty() {
                "definition differs".into()
            } else {
                parts.join("; ")
            }
        }
        _ => {
            let first_difference = expected
                .lines()
                .zip(actual.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!(": `{}` (was `{}`)", b.trim(), a.trim()))
                .unwrap_or_default();
            format!("definition differs{first_difference}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, name: &str, definition: &str) -> SchemaObject {
        SchemaObject {
            kind: kind.into(),
            name: name.into(),
            definition: definition.into(),
        }
    }

    fn data(rows: i64, hash: &str) -> TableData {
        TableData {
            rows,
            hash: hash.into(),
        }
    }

    fn texts(diffs: Vec<Difference>) -> Vec<String> {
        diffs.into_iter().map(|d| d.text).collect()
    }

    #[test]
    fn equal_fingerprints_have_no_differences() {
        let f = Fingerprint::new(
            vec![object("table", "public.t", "kind: table")],
            vec![("public.t".into(), data(1, "9"))],
        );
        assert!(
            f.differences(&f.clone(), "after revert", "before", 5)
                .is_empty()
        );
    }

    #[test]
    fn differences_are_told_in_words() {
        let before = Fingerprint::new(
            vec![
                object(
                    "column",
                    "public.t.v",
                    "type: text\nnot_null: false\ndefault: 'x'::text",
                ),
                object(
                    "function",
                    "public.f()",
                    "CREATE FUNCTION f()\nRETURNS int\nAS 1",
                ),
                object("table", "public.t", "kind: table"),
            ],
            vec![
                ("public.t".into(), data(5000, "1")),
                ("public.u".into(), data(3, "2")),
            ],
        );
        let after = Fingerprint::new(
            vec![
                object(
                    "column",
                    "public.t.v",
                    "type: text\nnot_null: false\ndefault: 'z'::text",
                ),
                object(
                    "index",
                    "public.t_n_idx",
                    "CREATE INDEX t_n_idx ON public.t (n)",
                ),
                object("table", "public.t", "kind: table"),
            ],
            vec![
                ("public.t".into(), data(4990, "3")),
                ("public.u".into(), data(3, "4")),
            ],
        );
        assert_eq!(
            texts(before.differences(&after, "after revert", "before", 5)),
            vec![
                "column public.t.v: default 'z'::text (was 'x'::text)",
                "function public.f() is missing after revert (it existed before)",
                "index public.t_n_idx exists after revert but not before",
                "table public.t: rows differ (count 5000 → 4990)",
                "table public.u: contents differ (same count 3, different values)",
            ]
        );
    }

    #[test]
    fn a_reordered_table_is_its_own_difference() {
        let before = Fingerprint::new(
            vec![
                object(COLUMN_ORDER, "public.t", "a, b, c"),
                object(COLUMN_ORDER, "public.u", "a, b"),
            ],
            vec![],
        );
        let after = Fingerprint::new(
            vec![
                object(COLUMN_ORDER, "public.t", "a, c, b"),
                object(COLUMN_ORDER, "public.u", "a"),
            ],
            vec![],
        );
        let diffs = before.differences(&after, "after revert", "before the change", 5);
        assert_eq!(
            texts(diffs.clone()),
            vec![
                "column order of public.t differs after revert: a, c, b (before the change: a, b, c)"
            ]
        );
        assert_eq!(diffs[0].category, COLUMN_ORDER);
        // A table that is gone is told as a missing table, not as a column order.
        let gone = Fingerprint::default();
        assert!(
            before
                .differences(&gone, "after revert", "before", 5)
                .is_empty()
        );
    }

    #[test]
    fn long_lists_are_cut_with_a_count() {
        let before = Fingerprint::default();
        let after = Fingerprint::new(
            (0..8)
                .map(|i| object("index", &format!("i{i}"), "x"))
                .collect(),
            vec![],
        );
        let diffs = texts(before.differences(&after, "after revert", "before", 3));
        assert_eq!(diffs.len(), 4);
        assert_eq!(diffs[3], "… and 5 more index differences");
    }

    #[test]
    fn free_text_definitions_show_the_first_differing_line() {
        assert_eq!(
            describe_change("CREATE VIEW v AS\nSELECT 1", "CREATE VIEW v AS\nSELECT 2"),
            "definition differs: `SELECT 2` (was `SELECT 1`)"
        );
    }
}
