//! Positions inside source text: byte spans, and their line/column form for humans.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LineCol {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl LineCol {
    /// Line and column of byte `offset` in `text` (clamped to the text's end).
    pub fn of(text: &str, offset: usize) -> LineCol {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = text[line_start..offset].chars().count() + 1;
        LineCol { line, column }
    }
}

/// Where each line of a text starts, for turning many offsets of one text into lines
/// and columns without rescanning it from the start each time.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Index `text`'s lines (one pass).
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// Line and column of byte `offset` in `text` (the text indexed), as [`LineCol::of`].
    pub fn line_col(&self, text: &str, offset: usize) -> LineCol {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.starts.partition_point(|&start| start <= offset);
        let line_start = self.starts[line - 1];
        LineCol {
            line,
            column: text[line_start..offset].chars().count() + 1,
        }
    }

    /// `name:line:column`, as [`SourceLocation::display_short`].
    pub fn display_short(&self, name: &std::path::Path, text: &str, offset: usize) -> String {
        format!("{}:{}", name.display(), self.line_col(text, offset))
    }
}

impl std::fmt::Display for LineCol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Byte offset of the `char_index`-th character (0-based) of `text`, clamped to its end.
pub fn byte_offset_of_char(text: &str, char_index: usize) -> usize {
    text.char_indices()
        .nth(char_index)
        .map_or(text.len(), |(offset, _)| offset)
}

/// A span inside a named source (a change file, or SQL read back from the ledger),
/// carrying the whole text so diagnostics can show the surrounding lines.
#[derive(Debug, Clone)]
pub struct SourceLocation {
    /// What the text is called in messages: a file path, or `ledger:<change> revert`.
    pub name: PathBuf,
    /// The complete source text.
    pub text: Arc<str>,
    /// Byte range the problem is about.
    pub span: Range<usize>,
}

impl SourceLocation {
    /// Line and column where the span starts.
    pub fn start(&self) -> LineCol {
        LineCol::of(&self.text, self.span.start)
    }

    /// `path:line:column` for one-line messages.
    pub fn display_short(&self) -> String {
        format!("{}:{}", self.name.display(), self.start())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_index_agrees_with_a_scan_from_the_start() {
        let text = "ab\ncdé\n\nxyz\n";
        let index = LineIndex::new(text);
        for offset in 0..=text.len() + 2 {
            assert_eq!(
                index.line_col(text, offset),
                LineCol::of(text, offset),
                "{offset}"
            );
        }
    }

    #[test]
    fn line_and_column_count_characters() {
        let text = "ab\ncdé\nxyz";
        assert_eq!(LineCol::of(text, 0), LineCol { line: 1, column: 1 });
        assert_eq!(LineCol::of(text, 3), LineCol { line: 2, column: 1 });
        // 'é' is two bytes; the 'x' after the newline is at byte 8.
        assert_eq!(LineCol::of(text, 8), LineCol { line: 3, column: 1 });
        assert_eq!(LineCol::of(text, 7), LineCol { line: 2, column: 4 });
    }

    #[test]
    fn char_index_maps_to_byte_offset() {
        assert_eq!(byte_offset_of_char("héllo", 2), 3);
        assert_eq!(byte_offset_of_char("abc", 10), 3);
    }
}
