//! Change files: `changes/<ID>_<slug>.sql` with header directives and
//! `-- ripcord:deploy|revert|verify` sections, parsed with byte spans kept so that every
//! problem (here or reported later by the database) points at a line and column.

use std::cmp::Ordering;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checksum::change_checksum;
use crate::location::SourceLocation;
use crate::splitter::{leading_words, split_with_depth};

/// The deepest nesting of parentheses ripcord reads in a statement: its SQL parser
/// recurses once per level, and a file nesting thousands deep would exhaust the stack.
pub const MAX_NESTING: usize = 1000;
use crate::suggest::did_you_mean;

/// The numeric ID of a change (`0004`, `20261124093000`); ordered by value, not text.
#[derive(Debug, Clone, Eq)]
pub struct ChangeId(String);

impl ChangeId {
    /// An ID from its digits; `None` when `digits` is empty or not all ASCII digits.
    pub fn parse(digits: &str) -> Option<ChangeId> {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| ChangeId(digits.to_string()))
    }

    /// The ID as written in the file name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn significant(&self) -> &str {
        let trimmed = self.0.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }
    }
}

impl PartialEq for ChangeId {
    fn eq(&self, other: &Self) -> bool {
        self.significant() == other.significant()
    }
}

impl Ord for ChangeId {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for ChangeId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Whether a change runs in one transaction or statement by statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransactionMode {
    /// Deploy, verify, ledger row and audit event commit together (the default).
    PerChange,
    /// Each statement commits on its own with its progress recorded, so that a rerun
    /// resumes after the last completed one (for `CREATE INDEX CONCURRENTLY` and friends).
    None,
}

impl TransactionMode {
    /// The spelling used in change files and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionMode::PerChange => "per-change",
            TransactionMode::None => "none",
        }
    }

    /// Parse the spelling used in change files and the ledger.
    pub fn parse(text: &str) -> Option<TransactionMode> {
        match text {
            "per-change" => Some(TransactionMode::PerChange),
            "none" => Some(TransactionMode::None),
            _ => None,
        }
    }
}

/// Which part of a change a section is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    /// Applies the change.
    Deploy,
    /// Undoes it.
    Revert,
    /// Proves it is in place; fails by raising an error.
    Verify,
}

impl SectionKind {
    /// The section's name as written after `-- ripcord:`.
    pub fn as_str(self) -> &'static str {
        match self {
            SectionKind::Deploy => "deploy",
            SectionKind::Revert => "revert",
            SectionKind::Verify => "verify",
        }
    }
}

const SECTION_NAMES: [&str; 3] = ["deploy", "revert", "verify"];
const DIRECTIVES: [&str; 5] = [
    "requires",
    "transaction",
    "irreversible",
    "flags",
    "column-order",
];
/// Marker words after `-- ripcord:` that are not sections (reserved for inline suppressions).
const NON_SECTION_MARKERS: [&str; 1] = ["allow"];

/// One section of a change file.
#[derive(Debug, Clone)]
pub struct Section {
    /// Which section.
    pub kind: SectionKind,
    /// Byte range of the section's body (after its marker line) in the file text.
    pub body: Range<usize>,
    /// Byte ranges of its statements in the file text.
    pub statements: Vec<Range<usize>>,
}

/// A `requires:` entry with where it was written.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// The required change's name.
    pub name: String,
    /// Byte range of the name in the file text.
    pub span: Range<usize>,
}

/// A parsed change file.
#[derive(Debug, Clone)]
pub struct Change {
    /// The numeric ID from the file name.
    pub id: ChangeId,
    /// `<ID>_<slug>`: how the change is named everywhere.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// The file's full text.
    pub text: Arc<str>,
    /// Changes that must be deployed before this one.
    pub requires: Vec<Requirement>,
    /// Transaction mode from the `transaction:` directive.
    pub transaction: TransactionMode,
    /// The author's reason when the change declares itself `irreversible:`.
    pub irreversible: Option<String>,
    /// Feature flags to switch off on revert.
    pub flags: Vec<String>,
    /// `column-order: rebuild`: the revert ripcord writes for a dropped column rebuilds
    /// the table so that the column comes back in its place, not at the end.
    pub rebuild_column_order: bool,
    /// The deploy section (required).
    pub deploy: Section,
    /// The revert section, if written.
    pub revert: Option<Section>,
    /// The verify section, if written.
    pub verify: Option<Section>,
    /// Checksum of the three sections (see [`crate::checksum`]).
    pub checksum: String,
}

impl ChangeFileError {
    /// One line with where: `changes/0004_x.sql:2:1: the deploy section is empty`.
    pub fn describe(&self) -> String {
        match self {
            ChangeFileError::Syntax {
                message, location, ..
            } => format!("{}: {message}", location.display_short()),
            other => other.to_string(),
        }
    }
}

impl Change {
    /// The normalized text of a section's body, as stored in the ledger.
    pub fn section_sql(&self, kind: SectionKind) -> Option<String> {
        let section = match kind {
            SectionKind::Deploy => Some(&self.deploy),
            SectionKind::Revert => self.revert.as_ref(),
            SectionKind::Verify => self.verify.as_ref(),
        }?;
        Some(crate::checksum::normalize_section(
            &self.text[section.body.clone()],
        ))
    }

    /// A location inside this file, for diagnostics.
    pub fn location(&self, span: Range<usize>) -> SourceLocation {
        SourceLocation {
            name: self.path.clone(),
            text: self.text.clone(),
            span,
        }
    }
}

/// Why a change file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChangeFileError {
    /// The file name does not follow `<ID>_<slug>.sql`.
    #[error("change file name `{}` is not `<ID>_<slug>.sql`", path.display())]
    BadFileName {
        /// The offending file.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's content is malformed.
    #[error("{message}")]
    Syntax {
        /// One line saying what is wrong.
        message: String,
        /// What to do about it.
        hint: Option<String>,
        /// Where.
        location: SourceLocation,
    },
}

/// Split a file name `<ID>_<slug>.sql` into ID and name.
pub fn parse_file_name(file_name: &str) -> Option<(ChangeId, String)> {
    // `.SQL` too: a file that looks like a change is never skipped for its case.
    let dot = file_name.len().checked_sub(4)?;
    if !file_name.is_char_boundary(dot) || !file_name[dot..].eq_ignore_ascii_case(".sql") {
        return None;
    }
    let stem = &file_name[..dot];
    let (digits, slug) = stem.split_once('_')?;
    let id = ChangeId::parse(digits)?;
    let slug_ok = !slug.is_empty()
        && slug
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    slug_ok.then(|| (id, stem.to_string()))
}

/// Read and parse one change file.
pub fn read_change(path: &Path) -> Result<Change, ChangeFileError> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if parse_file_name(file_name).is_none() {
        return Err(ChangeFileError::BadFileName {
            path: path.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| ChangeFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_change(path, &text)
}

/// Read any SQL file for linting: a change file as usual, and another tool's migration
/// (no `-- ripcord:` markers) as one deploy section; a file name that is not
/// `<ID>_<slug>.sql` names the change by its stem.
pub fn read_any_sql(path: &Path) -> Result<Change, ChangeFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ChangeFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_any_sql(path, &text)
}

/// [`read_any_sql`] of `text` read from `path`.
pub fn parse_any_sql(path: &Path, text: &str) -> Result<Change, ChangeFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text).to_string();
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let (id, name) = parse_file_name(file_name).unwrap_or_else(|| {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(file_name);
        (ChangeId("0".into()), stem.to_string())
    });
    let has_markers =
        lines_with_offsets(&text).any(|(_, line)| section_marker(line.trim()).is_some());
    if has_markers {
        return parse_named(path, id, name, &text);
    }
    let text: Arc<str> = Arc::from(text.as_str());
    let body = 0..text.len();
    let located = |span: Range<usize>| SourceLocation {
        name: path.to_path_buf(),
        text: text.clone(),
        span,
    };
    let split = split_with_depth(&text, body.clone()).map_err(|e| ChangeFileError::Syntax {
        message: format!("{e}"),
        hint: Some("close it; ripcord cannot tell where the statement ends".into()),
        location: located(e.offset..e.offset + 1),
    })?;
    if let Some((span, depth)) = split.iter().find(|(_, d)| *d > MAX_NESTING) {
        return Err(ChangeFileError::Syntax {
            message: format!(
                "a statement nests parentheses {depth} deep; ripcord reads at most {MAX_NESTING}"
            ),
            hint: Some(
                "flatten the expression (PostgreSQL itself stops at its max_stack_depth)".into(),
            ),
            location: located(span.start..span.start + 1),
        });
    }
    let statements: Vec<Range<usize>> = split.into_iter().map(|(span, _)| span).collect();
    let checksum = change_checksum(&text, None, None);
    Ok(Change {
        id,
        name,
        path: path.to_path_buf(),
        text,
        requires: Vec::new(),
        transaction: TransactionMode::PerChange,
        irreversible: None,
        flags: Vec::new(),
        rebuild_column_order: false,
        deploy: Section {
            kind: SectionKind::Deploy,
            body,
            statements,
        },
        revert: None,
        verify: None,
        checksum,
    })
}

/// Parse change file `text` read from `path` (whose file name gives ID and name).
pub fn parse_change(path: &Path, text: &str) -> Result<Change, ChangeFileError> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let (id, name) = parse_file_name(file_name).ok_or_else(|| ChangeFileError::BadFileName {
        path: path.to_path_buf(),
    })?;
    parse_named(path, id, name, text)
}

fn parse_named(
    path: &Path,
    id: ChangeId,
    name: String,
    text: &str,
) -> Result<Change, ChangeFileError> {
    // A byte-order mark is encoding, not SQL before the first section.
    let text: Arc<str> = Arc::from(text.strip_prefix('\u{feff}').unwrap_or(text));
    // A marker-like line inside a string or dollar-quoted body is SQL, not a marker.
    let literals = crate::splitter::literal_spans(&text).unwrap_or_default();
    let in_literal = |offset: usize| literals.iter().any(|l| l.start < offset && offset < l.end);
    let syntax =
        |message: String, hint: Option<String>, span: Range<usize>| ChangeFileError::Syntax {
            message,
            hint,
            location: SourceLocation {
                name: path.to_path_buf(),
                text: text.clone(),
                span,
            },
        };

    let mut requires = Vec::new();
    let mut transaction = TransactionMode::PerChange;
    let mut irreversible = None;
    let mut rebuild_column_order = false;
    let mut flags = Vec::new();
    let mut markers: Vec<(SectionKind, Range<usize>, usize)> = Vec::new(); // kind, marker span, body start
    let mut in_header = true;
    let mut in_header_block_comment = false;

    for (line_start, line) in lines_with_offsets(&text) {
        let trimmed = line.trim();
        let lead = line.len() - line.trim_start().len();
        let line_span = line_start + lead..line_start + lead + trimmed.len();
        if in_literal(line_start + lead) {
            continue;
        }
        if let Some(marker) = section_marker(trimmed) {
            let word = marker.to_ascii_lowercase();
            if NON_SECTION_MARKERS.contains(&word.as_str()) {
                continue;
            }
            let kind = match word.as_str() {
                "deploy" => SectionKind::Deploy,
                "revert" => SectionKind::Revert,
                "verify" => SectionKind::Verify,
                _ => {
                    let hint = did_you_mean(&word, SECTION_NAMES)
                        .map(|s| format!("did you mean `-- ripcord:{s}`?"))
                        .or_else(|| Some("sections are `-- ripcord:deploy`, `-- ripcord:revert` and `-- ripcord:verify`".into()));
                    return Err(syntax(
                        format!("unknown section `{marker}`"),
                        hint,
                        line_span,
                    ));
                }
            };
            if markers.iter().any(|(k, _, _)| *k == kind) {
                return Err(syntax(
                    format!("section `{}` appears twice", kind.as_str()),
                    Some("merge the two sections into one".into()),
                    line_span,
                ));
            }
            markers.push((kind, line_span, line_start + line.len()));
            in_header = false;
            continue;
        }
        if !in_header {
            continue;
        }
        if in_header_block_comment {
            in_header_block_comment = !trimmed.contains("*/");
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with("/*") {
            in_header_block_comment = !trimmed.contains("*/");
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("--") else {
            return Err(syntax(
                "SQL before the first section".into(),
                Some("put statements under `-- ripcord:deploy`, `-- ripcord:revert` or `-- ripcord:verify`".into()),
                line_span,
            ));
        };
        let comment_offset = line_span.start + 2 + (comment.len() - comment.trim_start().len());
        let comment = comment.trim();
        let Some((key, value)) = comment.split_once(':') else {
            continue;
        };
        let key_trimmed = key.trim();
        if key_trimmed.is_empty()
            || !key_trimmed
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-')
        {
            continue;
        }
        let key_lower = key_trimmed.to_ascii_lowercase();
        let value_offset =
            comment_offset + key.len() + 1 + (value.len() - value.trim_start().len());
        let value = value.trim();
        match key_lower.as_str() {
            "requires" => {
                let mut offset = value_offset;
                for part in value.split(',') {
                    let name = part.trim();
                    let start = offset + (part.len() - part.trim_start().len());
                    if !name.is_empty() {
                        requires.push(Requirement {
                            name: name.to_string(),
                            span: start..start + name.len(),
                        });
                    }
                    offset += part.len() + 1;
                }
            }
            "transaction" => {
                transaction = TransactionMode::parse(&value.to_ascii_lowercase()).ok_or_else(|| {
                    syntax(
                        format!("unknown transaction mode `{value}`"),
                        Some("use `-- transaction: per-change` (default) or `-- transaction: none`".into()),
                        value_offset..value_offset + value.len(),
                    )
                })?;
            }
            "irreversible" => {
                if value.is_empty() {
                    return Err(syntax(
                        "`irreversible:` needs a reason".into(),
                        Some("write why the change cannot be undone, e.g. `-- irreversible: drops the legacy audit table`".into()),
                        line_span,
                    ));
                }
                irreversible = Some(value.to_string());
            }
            "column-order" => {
                rebuild_column_order = match value.to_ascii_lowercase().as_str() {
                    "rebuild" => true,
                    "append" => false,
                    _ => {
                        return Err(syntax(
                            format!("unknown column order `{value}`"),
                            Some("use `-- column-order: rebuild` (a dropped column comes back in its place; the revert rewrites the table) or `append` (the default: it comes back last)".into()),
                            value_offset..value_offset + value.len(),
                        ));
                    }
                };
            }
            "flags" => flags.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(String::from),
            ),
            _ => {
                if let Some(suggestion) = did_you_mean(&key_lower, DIRECTIVES) {
                    return Err(syntax(
                        format!("unknown directive `{key_trimmed}:`"),
                        Some(format!("did you mean `{suggestion}:`?")),
                        comment_offset..comment_offset + key_trimmed.len(),
                    ));
                }
            }
        }
    }

    let mut sections: Vec<Section> = Vec::new();
    for (index, (kind, _, body_start)) in markers.iter().enumerate() {
        let body_end = markers
            .get(index + 1)
            .map_or(text.len(), |(_, next_marker, _)| {
                line_start_of(&text, next_marker.start)
            });
        let body = (*body_start).min(body_end)..body_end;
        let split = split_with_depth(&text, body.clone()).map_err(|e| {
            syntax(
                format!("{} in the {} section", e, kind.as_str()),
                Some("close it; ripcord cannot tell where the statement ends".into()),
                e.offset..e.offset + 1,
            )
        })?;
        if let Some((span, depth)) = split.iter().find(|(_, d)| *d > MAX_NESTING) {
            return Err(syntax(
                format!(
                    "a statement of the {} section nests parentheses {depth} deep; ripcord reads at most {MAX_NESTING}",
                    kind.as_str()
                ),
                Some(
                    "flatten the expression (PostgreSQL itself stops at its max_stack_depth)"
                        .into(),
                ),
                span.start..span.start + 1,
            ));
        }
        let statements: Vec<Range<usize>> = split.into_iter().map(|(span, _)| span).collect();
        for span in &statements {
            let words = leading_words(&text[span.clone()], 2);
            let control = matches!(
                words
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .as_slice(),
                ["BEGIN", ..]
                    | ["START", "TRANSACTION"]
                    | ["COMMIT", ..]
                    | ["END", ..]
                    | ["ROLLBACK", ..]
                    | ["ABORT", ..]
            );
            if control {
                return Err(syntax(
                    format!("transaction control statement `{}` in a change", words.join(" ")),
                    Some("ripcord runs each change in its own transaction: remove it (for statements that cannot run in a transaction, declare `-- transaction: none`)".into()),
                    span.clone(),
                ));
            }
        }
        sections.push(Section {
            kind: *kind,
            body,
            statements,
        });
    }

    let take = |kind: SectionKind, sections: &mut Vec<Section>| {
        sections
            .iter()
            .position(|s| s.kind == kind)
            .map(|i| sections.remove(i))
    };
    let Some(deploy) = take(SectionKind::Deploy, &mut sections) else {
        return Err(syntax(
            "change has no deploy section".into(),
            Some(
                "add a line `-- ripcord:deploy` followed by the statements that apply the change"
                    .into(),
            ),
            0..0,
        ));
    };
    if deploy.statements.is_empty() && text[deploy.body.clone()].trim().is_empty() {
        // Not even a comment: an unfilled template, not a deliberate no-op.
        let marker = markers
            .iter()
            .find(|(k, _, _)| *k == SectionKind::Deploy)
            .map(|(_, span, _)| span.clone());
        return Err(syntax(
            "the deploy section is empty".into(),
            Some("write the statements that apply the change under `-- ripcord:deploy` (for a change that deliberately does nothing, a comment saying why)".into()),
            marker.unwrap_or(0..0),
        ));
    }
    let revert = take(SectionKind::Revert, &mut sections);
    let verify = take(SectionKind::Verify, &mut sections);
    let body = |s: &Section| text[s.body.clone()].to_string();
    let checksum = change_checksum(
        &body(&deploy),
        revert.as_ref().map(body).as_deref(),
        verify.as_ref().map(body).as_deref(),
    );
    // A revert section without statements would "revert" by doing nothing: the change
    // has no revert (ripcord writes one, or deploy asks for consent). A change whose
    // deploy does nothing (a no-op kept for numbering) keeps its empty revert.
    let revert = revert.filter(|r| !r.statements.is_empty() || deploy.statements.is_empty());
    let verify = verify.filter(|v| !v.statements.is_empty());

    Ok(Change {
        id,
        name,
        path: path.to_path_buf(),
        text,
        requires,
        transaction,
        irreversible,
        flags,
        rebuild_column_order,
        deploy,
        revert,
        verify,
        checksum,
    })
}

/// `Some(word)` when the trimmed line is a `-- ripcord:<word>` marker.
fn section_marker(trimmed: &str) -> Option<&str> {
    let rest = trimmed.strip_prefix("--")?.trim_start();
    let rest = rest
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("ripcord:"))
        .map(|_| &rest[8..])?;
    let word = rest.split_whitespace().next().unwrap_or("");
    Some(word)
}

fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    text.split_inclusive('\n').map(move |line| {
        let start = offset;
        offset += line.len();
        (start, line.trim_end_matches(['\n', '\r']))
    })
}

fn line_start_of(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

/// The change template written by `ripcord new`.
pub fn template(requires: &[String]) -> String {
    let mut out = String::new();
    if !requires.is_empty() {
        out.push_str(&format!("-- requires: {}\n", requires.join(", ")));
    }
    out.push_str(
        "-- ripcord:deploy\n\n\
         -- ripcord:revert\n\n\
         -- ripcord:verify\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Change, ChangeFileError> {
        parse_change(Path::new("changes/0003_orders.sql"), text)
    }

    fn syntax_error(text: &str) -> (String, Option<String>, String) {
        match parse(text).unwrap_err() {
            ChangeFileError::Syntax {
                message,
                hint,
                location,
            } => (message, hint, location.display_short()),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    const FULL: &str = "-- Orders get a coupon.\n\
        -- requires: 0001_users, 0002_products\n\
        -- transaction: none\n\
        -- flags: coupons\n\
        -- ripcord:deploy\n\
        ALTER TABLE orders ADD COLUMN coupon text;\n\
        CREATE INDEX CONCURRENTLY orders_coupon_idx ON orders (coupon);\n\
        -- ripcord:revert\n\
        DROP INDEX CONCURRENTLY orders_coupon_idx;\n\
        ALTER TABLE orders DROP COLUMN coupon;\n\
        -- ripcord:verify\n\
        SELECT coupon FROM orders WHERE false;\n";

    #[test]
    fn parses_header_and_sections() {
        let change = parse(FULL).unwrap();
        assert_eq!(change.name, "0003_orders");
        assert_eq!(change.id.as_str(), "0003");
        let names: Vec<_> = change.requires.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["0001_users", "0002_products"]);
        assert_eq!(
            &change.text[change.requires[1].span.clone()],
            "0002_products"
        );
        assert_eq!(change.transaction, TransactionMode::None);
        assert_eq!(change.flags, ["coupons"]);
        assert_eq!(change.deploy.statements.len(), 2);
        assert_eq!(change.revert.as_ref().unwrap().statements.len(), 2);
        assert_eq!(
            change.section_sql(SectionKind::Verify).unwrap(),
            "SELECT coupon FROM orders WHERE false;"
        );
        let second = change.location(change.deploy.statements[1].clone());
        assert_eq!(second.display_short(), "changes/0003_orders.sql:7:1");
    }

    #[test]
    fn column_order_directive_reads_rebuild_and_append_and_names_a_bad_value() {
        let body = "-- ripcord:deploy\nALTER TABLE t DROP COLUMN b;\n";
        assert!(!parse(body).unwrap().rebuild_column_order);
        assert!(
            parse(&format!("-- Column-Order: Rebuild\n{body}"))
                .unwrap()
                .rebuild_column_order
        );
        assert!(
            !parse(&format!("-- column-order: append\n{body}"))
                .unwrap()
                .rebuild_column_order
        );
        let (message, hint, at) = syntax_error(&format!("-- column-order: sideways\n{body}"));
        assert_eq!(message, "unknown column order `sideways`");
        assert!(hint.unwrap().contains("rebuild"));
        assert_eq!(at, "changes/0003_orders.sql:1:18");
        let (message, _, _) = syntax_error(&format!("-- colum-order: rebuild\n{body}"));
        assert_eq!(message, "unknown directive `colum-order:`");
    }

    #[test]
    fn ids_order_by_value() {
        let a = ChangeId::parse("0009").unwrap();
        let b = ChangeId::parse("10").unwrap();
        assert!(a < b);
        assert_eq!(ChangeId::parse("0004"), ChangeId::parse("4"));
        assert!(ChangeId::parse("12a").is_none());
    }

    #[test]
    fn file_names_must_have_id_and_slug() {
        assert!(parse_file_name("0001_users.sql").is_some());
        assert!(parse_file_name("20261124093000_add-index.sql").is_some());
        for bad in [
            "users.sql",
            "0001.sql",
            "0001_.sql",
            "x001_users.sql",
            "0001_users.txt",
            "0001_us ers.sql",
        ] {
            assert!(parse_file_name(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn misspelled_directive_is_an_error_with_a_suggestion() {
        let (message, hint, at) =
            syntax_error("-- requries: 0001_users\n-- ripcord:deploy\nselect 1;\n");
        assert_eq!(message, "unknown directive `requries:`");
        assert_eq!(hint.as_deref(), Some("did you mean `requires:`?"));
        assert_eq!(at, "changes/0003_orders.sql:1:4");
    }

    #[test]
    fn free_comments_with_colons_are_fine() {
        let change = parse("-- Note: see ticket OPS-12\n-- ripcord:deploy\nselect 1;\n").unwrap();
        assert!(change.requires.is_empty());
    }

    #[test]
    fn unknown_and_duplicate_sections_are_errors() {
        let (message, hint, at) =
            syntax_error("-- ripcord:deploy\nselect 1;\n-- ripcord:revrt\nselect 2;\n");
        assert_eq!(message, "unknown section `revrt`");
        assert_eq!(hint.as_deref(), Some("did you mean `-- ripcord:revert`?"));
        assert_eq!(at, "changes/0003_orders.sql:3:1");
        let (message, _, at) =
            syntax_error("-- ripcord:deploy\nselect 1;\n-- ripcord:deploy\nselect 2;\n");
        assert_eq!(message, "section `deploy` appears twice");
        assert_eq!(at, "changes/0003_orders.sql:3:1");
    }

    #[test]
    fn missing_deploy_is_an_error_but_an_empty_one_is_a_no_op() {
        assert_eq!(
            syntax_error("-- ripcord:revert\nselect 1;\n").0,
            "change has no deploy section"
        );
        assert_eq!(
            syntax_error("-- ripcord:deploy\n\n-- ripcord:revert\n").0,
            "the deploy section is empty"
        );
        let no_op =
            parse("-- ripcord:deploy\n-- nothing to do any more\n-- ripcord:revert\n").unwrap();
        assert!(no_op.deploy.statements.is_empty());
        assert_eq!(no_op.section_sql(SectionKind::Revert).as_deref(), Some(""));
    }

    #[test]
    fn an_empty_revert_section_is_no_revert() {
        let change =
            parse("-- ripcord:deploy\ncreate table t (a int);\n-- ripcord:revert\n-- todo\n-- ripcord:verify\n")
                .unwrap();
        assert!(change.revert.is_none());
        assert!(change.verify.is_none());
        // The checksum still covers the file as written, so deployed changes stay unmodified.
        let without = parse("-- ripcord:deploy\ncreate table t (a int);\n").unwrap();
        assert_ne!(change.checksum, without.checksum);
    }

    #[test]
    fn sql_before_sections_is_an_error() {
        let (message, _, at) =
            syntax_error("create table t (a int);\n-- ripcord:deploy\nselect 1;\n");
        assert_eq!(message, "SQL before the first section");
        assert_eq!(at, "changes/0003_orders.sql:1:1");
    }

    #[test]
    fn transaction_control_is_refused_with_its_position() {
        let (message, _, at) =
            syntax_error("-- ripcord:deploy\nBEGIN;\ncreate table t (a int);\nCOMMIT;\n");
        assert_eq!(message, "transaction control statement `BEGIN` in a change");
        assert_eq!(at, "changes/0003_orders.sql:2:1");
    }

    #[test]
    fn bad_transaction_mode_and_empty_irreversible_are_errors() {
        assert_eq!(
            syntax_error("-- transaction: maybe\n-- ripcord:deploy\nselect 1;\n").0,
            "unknown transaction mode `maybe`"
        );
        assert_eq!(
            syntax_error("-- irreversible:\n-- ripcord:deploy\nselect 1;\n").0,
            "`irreversible:` needs a reason"
        );
    }

    #[test]
    fn unterminated_string_points_at_its_start() {
        let (message, _, at) =
            syntax_error("-- ripcord:deploy\nselect 1;\ninsert into t values ('oops);\n");
        assert_eq!(
            message,
            "string literal starting here is never closed in the deploy section"
        );
        assert_eq!(at, "changes/0003_orders.sql:3:23");
    }

    #[test]
    fn checksum_ignores_header_comments_but_not_sql() {
        let a = parse("-- ripcord:deploy\nselect 1;\n").unwrap();
        let b = parse("-- A comment.\n-- ripcord:deploy\nselect 1;\n\n").unwrap();
        let c = parse("-- ripcord:deploy\nselect 2;\n").unwrap();
        assert_eq!(a.checksum, b.checksum);
        assert_ne!(a.checksum, c.checksum);
    }

    #[test]
    fn plain_sql_files_are_one_deploy_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("V2__add_nid.sql");
        std::fs::write(&path, "-- Flyway migration\nALTER TABLE identities ADD COLUMN nid uuid;\nCREATE INDEX i ON identities (nid);\n").unwrap();
        let change = read_any_sql(&path).unwrap();
        assert_eq!(change.name, "V2__add_nid");
        assert_eq!(change.deploy.statements.len(), 2);
        assert!(change.revert.is_none());
        let marked = dir.path().join("0001_x.sql");
        std::fs::write(
            &marked,
            "-- ripcord:deploy\nSELECT 1;\n-- ripcord:revert\nSELECT 2;\n",
        )
        .unwrap();
        assert!(read_any_sql(&marked).unwrap().revert.is_some());
    }

    #[test]
    fn template_parses_once_filled() {
        let text = template(&["0001_users".into()])
            .replace("-- ripcord:deploy\n", "-- ripcord:deploy\nselect 1;\n");
        let change = parse(&text).unwrap();
        assert_eq!(change.requires[0].name, "0001_users");
    }
}
