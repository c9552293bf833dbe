//! `delete-in-deploy`: a `DELETE` in a deploy section removes rows a revert needs.

use ripcord_core::splitter::leading_words;

/// The finding's message, when `statement` is a DELETE.
pub(crate) fn check(statement: &str) -> Option<String> {
    (leading_words(statement, 1).first().map(String::as_str) == Some("DELETE"))
        .then(|| "DELETE in a deploy removes rows; a revert needs them".into())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn delete_is_found() {
        assert!(check("DELETE FROM t WHERE a = 1").is_some());
        assert!(check("SELECT 1").is_none());
    }
}
