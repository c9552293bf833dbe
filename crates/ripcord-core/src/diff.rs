//! Table diffs (DESIGN §5.7): what an engine reports about a table so that two copies
//! can be compared row by row without moving every row — per-bucket counts and hashes
//! computed inside the database, then the rows of the buckets that differ.
//!
//! Rows and keys travel as the text form of each value (`None` for NULL), so that
//! every difference a reader could see is one: NULL vs `''`, a trailing space, `-0` vs
//! `0`, `1.0` vs `1.00`, a timestamp's precision.

use serde::Serialize;

/// Hash buckets of a table's keys in pass 1 (a power of two): few enough that the
/// database groups them in a small hash table, many enough that a scattered difference
/// makes only its bucket's keys travel in pass 2.
pub const BUCKETS: u32 = 1 << 12;

/// A table as a diff sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableShape {
    /// Qualified name (`public.orders`; the bare name on SQLite).
    pub name: String,
    /// Columns in table order: name and type.
    pub columns: Vec<(String, String)>,
    /// The primary key, else a unique index over NOT NULL columns.
    pub key: Option<Vec<String>>,
}

/// Rows and hash of one bucket of keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketSummary {
    /// The bucket (`hash(key) & (BUCKETS - 1)`).
    pub bucket: i64,
    /// Rows in it.
    pub rows: i64,
    /// Order-independent hash of its rows (xor or sum of row hashes, as text).
    pub hash: String,
}

/// One row as text values: its key's values and the compared columns' values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyedRow {
    /// Key values, in key order (`None`: NULL).
    pub key: Vec<Option<String>>,
    /// Values of the compared columns, in the order asked.
    pub values: Vec<Option<String>>,
}

/// What an engine does for a diff.
pub trait DiffSource {
    /// The user tables, qualified.
    fn tables(&mut self) -> Result<Vec<String>, crate::EngineError>;
    /// The shape of `table` (as SQL names it), `None` when there is no such table.
    fn shape(&mut self, table: &str) -> Result<Option<TableShape>, crate::EngineError>;
    /// For a `--key` that may not be a key: rows whose key has a NULL, and key values
    /// found on more than one row.
    fn key_problems(
        &mut self,
        table: &str,
        key: &[String],
    ) -> Result<(i64, i64), crate::EngineError>;
    /// Pass 1: per non-empty bucket of `key`, the rows and the hash of `columns`.
    fn bucket_summaries(
        &mut self,
        table: &str,
        key: &[String],
        columns: &[String],
    ) -> Result<Vec<BucketSummary>, crate::EngineError>;
    /// Pass 2: the key and row hash of every row of `buckets`.
    fn keys_in_buckets(
        &mut self,
        table: &str,
        key: &[String],
        columns: &[String],
        buckets: &[i64],
    ) -> Result<Vec<KeyHash>, crate::EngineError>;
    /// Pass 3: the rows of `keys` (rows whose hash or presence differs).
    fn rows_by_keys(
        &mut self,
        table: &str,
        key: &[String],
        columns: &[String],
        keys: &[Vec<Option<String>>],
    ) -> Result<Vec<KeyedRow>, crate::EngineError>;
}

/// A row's key (as text) and the hash of its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyHash {
    /// Key values, in key order.
    pub key: Vec<Option<String>>,
    /// The row's hash, as text.
    pub hash: String,
}
