//! `truncate-table`: `TRUNCATE` removes every row; only kept data brings them back.

use ripcord_core::splitter::leading_words;

/// The finding's message, when `statement` truncates.
pub(crate) fn check(statement: &str) -> Option<String> {
    (leading_words(statement, 1).first().map(String::as_str) == Some("TRUNCATE")).then(|| {
        "TRUNCATE removes every row; a revert cannot bring them back unless they are kept".into()
    })
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn truncate_is_found() {
        assert!(check("truncate t").is_some());
        assert!(check("DELETE FROM t").is_none());
    }
}
