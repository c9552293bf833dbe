//! `table-rewrite`: `VACUUM FULL`, `CLUSTER` and `SET LOGGED/UNLOGGED` rewrite the
//! whole table under an ACCESS EXCLUSIVE lock.

use ripcord_core::splitter::leading_words;

/// The finding's message, when `statement` rewrites a table.
pub(crate) fn check(statement: &str) -> Option<String> {
    let words = leading_words(statement, 4);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let upper = statement.to_ascii_uppercase();
    match words.as_slice() {
        ["VACUUM", "FULL", ..] | ["CLUSTER", ..] => {
            Some("this rewrites the whole table while holding an ACCESS EXCLUSIVE lock".into())
        }
        ["ALTER", "TABLE", ..]
            if upper.contains("SET UNLOGGED") || upper.contains("SET LOGGED") =>
        {
            Some(
                "SET LOGGED / SET UNLOGGED rewrites the whole table under an ACCESS EXCLUSIVE lock"
                    .into(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn rewrites_are_found() {
        assert!(check("VACUUM FULL t").is_some());
        assert!(check("CLUSTER t USING i").is_some());
        assert!(check("ALTER TABLE t SET UNLOGGED").is_some());
    }

    #[test]
    fn plain_maintenance_is_not() {
        assert!(check("VACUUM t").is_none());
        assert!(check("ANALYZE t").is_none());
    }
}
