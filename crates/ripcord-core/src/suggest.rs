//! "Did you mean …" suggestions for misspelled keys, directives and names.

/// The candidate closest to `input` when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(input, c), c))
        .filter(|(distance, c)| *distance <= 2.max(c.len() / 4) && *distance < c.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("requries", ["requires", "transaction"]),
            Some("requires")
        );
        assert_eq!(did_you_mean("url_evn", ["url", "url_env"]), Some("url_env"));
        assert_eq!(did_you_mean("zzz", ["requires", "transaction"]), None);
    }
}
