//! `blocking-refresh`: `REFRESH MATERIALIZED VIEW` without `CONCURRENTLY` blocks every
//! reader of the view until it ends.

use ripcord_core::splitter::leading_words;

/// The finding's message, when `statement` refreshes a view for everyone to wait on.
pub(crate) fn check(statement: &str) -> Option<String> {
    let words = leading_words(statement, 4);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["REFRESH", "MATERIALIZED", "VIEW", next] if *next != "CONCURRENTLY" => Some(
            "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks every reader of the view until it ends"
                .into(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn only_the_blocking_form_is_found() {
        assert!(check("REFRESH MATERIALIZED VIEW v").is_some());
        assert!(check("REFRESH MATERIALIZED VIEW CONCURRENTLY v").is_none());
    }
}
