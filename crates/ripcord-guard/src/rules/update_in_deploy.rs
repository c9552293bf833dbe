//! `update-in-deploy`: an `UPDATE` in a deploy section overwrites values a revert needs;
//! backfills belong in tagged batches.

use ripcord_core::splitter::leading_words;

/// The finding's message, when `statement` is an UPDATE.
pub(crate) fn check(statement: &str) -> Option<String> {
    (leading_words(statement, 1).first().map(String::as_str) == Some("UPDATE"))
        .then(|| "UPDATE in a deploy overwrites values; a revert needs the old ones".into())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn update_is_found() {
        assert!(check("UPDATE t SET a = 1").is_some());
        assert!(check("SELECT 1").is_none());
    }
}
