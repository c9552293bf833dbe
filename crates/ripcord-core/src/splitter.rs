//! SQL statement boundaries: splits a script into statements at top-level semicolons.
//!
//! The splitter understands what PostgreSQL and SQLite put between semicolons without
//! ending a statement: single-quoted strings (with `''` and `E'\''` escapes), quoted
//! identifiers, dollar quotes (`$$ … $$`, `$tag$ … $tag$`), line and nested block
//! comments, SQL-standard `BEGIN ATOMIC … END` function bodies and SQLite
//! `CREATE TRIGGER … BEGIN … END` bodies. Spans are byte ranges into the input, starting
//! at the statement's first token and ending after its last one (no semicolon), so
//! that errors can be mapped back to a line and column of the change file.

use std::ops::Range;

/// A script could not be split because a quote or comment never ends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} starting here is never closed")]
pub struct SplitError {
    /// What was left open, e.g. "string literal", "dollar-quoted string $body$".
    pub what: String,
    /// Byte offset where it opened.
    pub offset: usize,
}

#[derive(Clone, PartialEq, Eq)]
enum State {
    Normal,
    LineComment,
    BlockComment { depth: usize },
    Single { backslash_escapes: bool },
    Quoted { close: u8 },
    Dollar { tag_end: usize, tag_start: usize },
}

/// Split `text` into statement spans (byte ranges into `text`).
pub fn split(text: &str) -> Result<Vec<Range<usize>>, SplitError> {
    split_range(text, 0..text.len())
}

/// Split the part `range` of `text`; the spans returned index into the whole `text`.
pub fn split_range(text: &str, range: Range<usize>) -> Result<Vec<Range<usize>>, SplitError> {
    Ok(split_with_depth(text, range)?
        .into_iter()
        .map(|(span, _)| span)
        .collect())
}

/// Like [`split_range`], with each statement's deepest nesting of parentheses outside
/// strings, identifiers and comments (parsers recurse once per level).
pub fn split_with_depth(
    text: &str,
    range: Range<usize>,
) -> Result<Vec<(Range<usize>, usize)>, SplitError> {
    scan(text, range, &mut Vec::new())
}

/// The spans of `text`'s string literals, quoted identifiers and dollar-quoted bodies,
/// or `None` when one is left open.
pub fn literal_spans(text: &str) -> Option<Vec<Range<usize>>> {
    let mut literals = Vec::new();
    scan(text, 0..text.len(), &mut literals).ok()?;
    Some(literals)
}

fn scan(
    text: &str,
    range: Range<usize>,
    literals: &mut Vec<Range<usize>>,
) -> Result<Vec<(Range<usize>, usize)>, SplitError> {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut statements = Vec::new();
    let mut state = State::Normal;
    let mut opened_at = range.start;
    let mut stmt_start: Option<usize> = None;
    let mut last_token_end = range.start;
    let mut words = WordTracker::default();
    let mut i = range.start;
    let end = range.end;

    while i < end {
        let b = bytes[i];
        match state {
            State::Normal => {
                if b == b'-' && bytes.get(i + 1) == Some(&b'-') && i + 1 < end {
                    words.flush(text);
                    state = State::LineComment;
                    i += 2;
                    continue;
                }
                if b == b'/' && bytes.get(i + 1) == Some(&b'*') && i + 1 < end {
                    words.flush(text);
                    opened_at = i;
                    state = State::BlockComment { depth: 1 };
                    i += 2;
                    continue;
                }
                if b.is_ascii_whitespace() {
                    words.flush(text);
                    i += 1;
                    continue;
                }
                if b == b';' && words.flush_then_depth(text) == 0 {
                    if let Some(start) = stmt_start.take() {
                        statements.push((start..last_token_end, deepest));
                    }
                    (depth, deepest) = (0, 0);
                    words.reset();
                    i += 1;
                    continue;
                }
                stmt_start.get_or_insert(i);
                match b {
                    b'\'' => {
                        let backslash_escapes = words.pending_is_e_prefix(text, i);
                        words.flush(text);
                        opened_at = i;
                        state = State::Single { backslash_escapes };
                        i += 1;
                    }
                    b'"' | b'`' => {
                        words.flush(text);
                        opened_at = i;
                        state = State::Quoted { close: b };
                        i += 1;
                    }
                    b'$' if !words.in_word() => {
                        if let Some(tag_end) = dollar_tag_end(bytes, i, end) {
                            opened_at = i;
                            state = State::Dollar {
                                tag_start: i,
                                tag_end,
                            };
                            i = tag_end + 1;
                        } else {
                            i += 1;
                        }
                        words.flush(text);
                    }
                    _ if is_word_byte(b) => {
                        words.push(i);
                        i += 1;
                    }
                    _ => {
                        if b == b'(' {
                            depth += 1;
                            deepest = deepest.max(depth);
                        } else if b == b')' {
                            depth = depth.saturating_sub(1);
                        }
                        words.flush(text);
                        i += 1;
                    }
                }
                last_token_end = i;
            }
            State::LineComment => {
                if b == b'\n' {
                    state = State::Normal;
                }
                i += 1;
            }
            State::BlockComment { depth } => {
                if b == b'*' && bytes.get(i + 1) == Some(&b'/') {
                    state = if depth == 1 {
                        State::Normal
                    } else {
                        State::BlockComment { depth: depth - 1 }
                    };
                    i += 2;
                } else if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
                    state = State::BlockComment { depth: depth + 1 };
                    i += 2;
                } else {
                    i += 1;
                }
            }
            State::Single { backslash_escapes } => {
                if backslash_escapes && b == b'\\' {
                    i += 2;
                } else if b == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                    } else {
                        state = State::Normal;
                        i += 1;
                        literals.push(opened_at..i);
                    }
                } else {
                    i += 1;
                }
                last_token_end = i.min(end);
            }
            State::Quoted { close } => {
                if b == close {
                    if bytes.get(i + 1) == Some(&close) {
                        i += 2;
                    } else {
                        state = State::Normal;
                        i += 1;
                        literals.push(opened_at..i);
                    }
                } else {
                    i += 1;
                }
                last_token_end = i.min(end);
            }
            State::Dollar { tag_start, tag_end } => {
                let tag = &bytes[tag_start..=tag_end];
                if b == b'$' && bytes[i..end].starts_with(tag) {
                    i += tag.len();
                    state = State::Normal;
                    literals.push(tag_start..i);
                } else {
                    i += 1;
                }
                last_token_end = i.min(end);
            }
        }
    }

    let open = match &state {
        State::Normal | State::LineComment => None,
        State::BlockComment { .. } => Some("block comment".to_string()),
        State::Single { .. } => Some("string literal".to_string()),
        State::Quoted { close: b'"' } => Some("quoted identifier".to_string()),
        State::Quoted { .. } => Some("backtick-quoted identifier".to_string()),
        State::Dollar { tag_start, tag_end } => Some(format!(
            "dollar-quoted string {}",
            &text[*tag_start..=*tag_end]
        )),
    };
    if let Some(what) = open {
        return Err(SplitError {
            what,
            offset: opened_at,
        });
    }
    if let Some(start) = stmt_start {
        statements.push((start..last_token_end, deepest));
    }
    Ok(statements)
}

/// If a dollar-quote tag (`$$` or `$name$`) opens at `i`, the index of its closing `$`.
fn dollar_tag_end(bytes: &[u8], i: usize, end: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < end {
        let b = bytes[j];
        if b == b'$' {
            return Some(j);
        }
        let ok = if j == i + 1 {
            b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
        } else {
            b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
        };
        if !ok {
            return None;
        }
        j += 1;
    }
    None
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80 || b == b'$'
}

/// Follows the keywords that open and close compound bodies in which semicolons do
/// not end the statement.
#[derive(Default)]
struct WordTracker {
    current: Option<usize>,
    words_in_statement: usize,
    leading: Vec<String>,
    previous: String,
    depth: usize,
}

impl WordTracker {
    fn in_word(&self) -> bool {
        self.current.is_some()
    }

    fn push(&mut self, i: usize) {
        self.current.get_or_insert(i);
    }

    /// True when the word right before a quote at `quote` is a lone `E` (an escape string).
    fn pending_is_e_prefix(&self, text: &str, quote: usize) -> bool {
        self.current
            .is_some_and(|start| text[start..quote].eq_ignore_ascii_case("e"))
    }

    fn flush_then_depth(&mut self, text: &str) -> usize {
        self.flush(text);
        self.depth
    }

    fn is_trigger(&self) -> bool {
        let words: Vec<&str> = self.leading.iter().map(String::as_str).collect();
        matches!(
            words.as_slice(),
            ["CREATE", "TRIGGER", ..]
                | ["CREATE", "TEMP" | "TEMPORARY", "TRIGGER", ..]
                | ["CREATE", "OR", "REPLACE", "TRIGGER", ..]
        )
    }

    fn flush(&mut self, text: &str) {
        let Some(start) = self.current.take() else {
            return;
        };
        // A word ends right before the byte that flushed it; find that end.
        let rest = &text.as_bytes()[start..];
        let len = rest.iter().take_while(|b| is_word_byte(**b)).count();
        let word = text[start..start + len].to_ascii_uppercase();
        if self.words_in_statement < 4 {
            self.leading.push(word.clone());
        }
        self.words_in_statement += 1;
        match word.as_str() {
            "BEGIN" if self.is_trigger() => self.depth += 1,
            "ATOMIC" if self.previous == "BEGIN" && !self.is_trigger() => self.depth += 1,
            "CASE" if self.depth > 0 => self.depth += 1,
            "END" if self.depth > 0 => self.depth -= 1,
            _ => {}
        }
        self.previous = word;
    }

    fn reset(&mut self) {
        *self = WordTracker::default();
    }
}

/// The first `n` keywords of a statement, upper-cased, skipping comments.
pub fn leading_words(sql: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sql;
    while out.len() < n {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
            continue;
        }
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
            continue;
        }
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if len == 0 {
            break;
        }
        out.push(rest[..len].to_ascii_uppercase());
        rest = &rest[len..];
    }
    out
}

/// `sql` without the semicolons and blanks that would end a subquery early (a check's
/// query wrapped in `SELECT … FROM (<sql>) q`).
pub fn as_subquery(sql: &str) -> &str {
    sql.trim().trim_end_matches(';').trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts(sql: &str) -> Vec<&str> {
        split(sql).unwrap().into_iter().map(|r| &sql[r]).collect()
    }

    #[test]
    fn splits_simple_statements_and_drops_empty_ones() {
        assert_eq!(
            texts("create table t (a int);\n\n;  insert into t values (1) ;"),
            vec!["create table t (a int)", "insert into t values (1)"]
        );
    }

    #[test]
    fn last_statement_needs_no_semicolon() {
        assert_eq!(texts("select 1;\nselect 2\n"), vec!["select 1", "select 2"]);
    }

    #[test]
    fn semicolons_inside_quotes_and_comments_do_not_split() {
        let sql = "select 'a;b', \"c;d\", 'it''s;' -- x;y\n from t; /* a; /* nested; */ b; */ select E'\\';', `x;`;";
        assert_eq!(
            texts(sql),
            vec![
                "select 'a;b', \"c;d\", 'it''s;' -- x;y\n from t",
                "select E'\\';', `x;`"
            ]
        );
    }

    #[test]
    fn dollar_quotes_with_and_without_tags() {
        let sql = "create function f() returns int as $$ begin; return 1; end $$ language plpgsql;\n\
                   do $body$ begin perform 1; end $body$;\nselect $1, a$b from t;";
        let got = texts(sql);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].ends_with("language plpgsql"));
        assert!(got[1].starts_with("do $body$"));
        assert_eq!(got[2], "select $1, a$b from t");
    }

    #[test]
    fn begin_atomic_bodies_stay_whole() {
        let sql = "create function add(a int, b int) returns int language sql\n\
                   begin atomic\n  select case when a > 0 then a else 0 end + b;\n  select 1;\nend;\nselect 2;";
        let got = texts(sql);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].ends_with("end"));
        assert_eq!(got[1], "select 2");
    }

    #[test]
    fn sqlite_trigger_bodies_stay_whole() {
        let sql = "CREATE TRIGGER t_touch AFTER UPDATE ON t BEGIN\n  UPDATE t SET n = n + 1;\n  SELECT CASE WHEN 1 THEN 2 END;\nEND;\nCREATE INDEX i ON t(n);";
        let got = texts(sql);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].ends_with("END"));
    }

    #[test]
    fn transaction_begin_is_an_ordinary_statement() {
        assert_eq!(
            texts("begin; select 1; commit;"),
            vec!["begin", "select 1", "commit"]
        );
    }

    #[test]
    fn spans_skip_leading_comments_but_keep_inner_ones() {
        let sql = "-- header\n/* c */ select /* inner */ 1 -- trailing\n;";
        assert_eq!(texts(sql), vec!["select /* inner */ 1"]);
    }

    #[test]
    fn unterminated_quote_is_reported_where_it_opened() {
        let err = split("select 1;\nselect 'oops;\n").unwrap_err();
        assert_eq!(err.what, "string literal");
        assert_eq!(err.offset, 17);
        let err = split("do $x$ begin end $y$;").unwrap_err();
        assert_eq!(err.what, "dollar-quoted string $x$");
    }

    #[test]
    fn split_range_returns_absolute_offsets() {
        let sql = "ignored; select 1; select 2;";
        let spans = split_range(sql, 9..sql.len()).unwrap();
        assert_eq!(&sql[spans[0].clone()], "select 1");
        assert_eq!(spans[0].start, 9);
    }

    #[test]
    fn leading_words_skip_comments() {
        assert_eq!(
            leading_words("-- c\n/* x */ create  index concurrently i", 3),
            vec!["CREATE", "INDEX", "CONCURRENTLY"]
        );
    }

    /// A piece of SQL that never contains a top-level semicolon, whatever it holds inside.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9_]{0,8}".prop_map(|s| s),
            "[a-z ;$]{0,8}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
            "[a-z ;']{0,8}".prop_map(|s| format!("$$ {s} $$")),
            "[a-z ;']{0,8}".prop_map(|s| format!("$fn$ {s} $fn$")),
            "[a-z ;\"]{0,8}".prop_map(|s| format!("\"{}\"", s.replace('"', "\"\""))),
            "[a-z ;]{0,8}".prop_map(|s| format!("/* {s} */ x")),
            "[a-z ;]{0,8}".prop_map(|s| format!("-- {s}\n y")),
            "[a-z; ]{0,8}".prop_map(|s| format!("begin atomic select '{s}'; select 1; end")),
        ]
    }

    fn statement() -> impl Strategy<Value = String> {
        proptest::collection::vec(piece(), 1..5).prop_map(|p| format!("select {}", p.join(" ")))
    }

    proptest! {
        #[test]
        fn split_recovers_every_statement(stmts in proptest::collection::vec(statement(), 0..6), sep in "[ \n]{0,3}") {
            let script = stmts.iter().map(|s| format!("{s};{sep}")).collect::<String>();
            let got: Vec<String> = split(&script).unwrap().into_iter().map(|r| script[r].to_string()).collect();
            prop_assert_eq!(got, stmts);
        }

        #[test]
        fn split_never_panics(script in "\\PC{0,64}") {
            if let Ok(spans) = split(&script) {
                for span in spans {
                    prop_assert!(span.start <= span.end && span.end <= script.len());
                    prop_assert!(script.is_char_boundary(span.start) && script.is_char_boundary(span.end));
                }
            }
        }
    }
}

#[cfg(test)]
mod depth_tests {
    use super::split_with_depth;

    #[test]
    fn depth_counts_parentheses_outside_strings_and_comments() {
        let text = "SELECT ((1)), '((((', \"(((\" -- ((((\n; SELECT $$ ((( $$, (2)";
        let split = split_with_depth(text, 0..text.len()).unwrap();
        let depths: Vec<usize> = split.iter().map(|(_, d)| *d).collect();
        assert_eq!(depths, [2, 1]);
    }
}

#[cfg(test)]
mod literal_tests {
    use super::literal_spans;

    #[test]
    fn literal_spans_cover_strings_identifiers_and_dollar_bodies() {
        let text = "SELECT 'a\n-- x', \"b\"; DO $f$\n-- y\n$f$;";
        let spans = literal_spans(text).unwrap();
        let taken: Vec<&str> = spans.iter().map(|s| &text[s.clone()]).collect();
        assert_eq!(taken, ["'a\n-- x'", "\"b\"", "$f$\n-- y\n$f$"]);
        assert_eq!(literal_spans("SELECT 'open"), None);
    }
}

/// Whether PostgreSQL refuses `statement` inside a transaction block
/// (`CREATE/DROP INDEX CONCURRENTLY`, `REINDEX … CONCURRENTLY`, `VACUUM`, `CREATE/DROP
/// DATABASE` and `TABLESPACE`, `ALTER SYSTEM`, `DETACH PARTITION … CONCURRENTLY`): the
/// one list the engine (to run it alone) and the guardrail (to flag it in a
/// one-transaction change) both read.
pub fn postgres_refuses_in_transaction(statement: &str) -> bool {
    let words = leading_words(statement, 4);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let upper = statement.to_ascii_uppercase();
    matches!(
        words.as_slice(),
        ["CREATE", "INDEX", "CONCURRENTLY", ..]
            | ["CREATE", "UNIQUE", "INDEX", "CONCURRENTLY"]
            | ["DROP", "INDEX", "CONCURRENTLY", ..]
            | ["VACUUM", ..]
            | ["CREATE", "DATABASE", ..]
            | ["DROP", "DATABASE", ..]
            | ["ALTER", "SYSTEM", ..]
            | ["CREATE", "TABLESPACE", ..]
            | ["DROP", "TABLESPACE", ..]
    ) || (words.first() == Some(&"REINDEX") && upper.contains("CONCURRENTLY"))
        || (upper.contains("DETACH PARTITION") && upper.contains("CONCURRENTLY"))
}
