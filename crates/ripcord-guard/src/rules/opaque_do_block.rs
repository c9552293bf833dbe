//! `opaque-do-block`: a `DO` block runs code ripcord cannot see into, so it cannot
//! classify, keep or undo what it does.

use ripcord_core::splitter::leading_words;

/// The finding's message, when `statement` is a DO block.
pub(crate) fn check(statement: &str) -> Option<String> {
    (leading_words(statement, 1).first().map(String::as_str) == Some("DO"))
        .then(|| "a DO block runs code ripcord cannot classify".into())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn do_blocks_are_found() {
        assert!(check("DO $$ BEGIN PERFORM 1; END $$").is_some());
        assert!(check("SELECT 1").is_none());
    }
}
