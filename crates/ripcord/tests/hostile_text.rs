//! Hostile text never panics the readers of what users write: change files, the SQL
//! splitter, ripcord.toml, URLs, the guardrail classifier and audit checkpoints. Stable
//! Rust's stand-in for `cargo fuzz` (which needs nightly): proptest drives each reader
//! with arbitrary text and with text built from the tokens they look for.

use std::path::Path;

use proptest::prelude::*;

/// Text built from the pieces the readers react to, in any order.
fn tokens() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("-- ripcord:deploy\n".to_string()),
        Just("-- ripcord:revert\n".to_string()),
        Just("-- ripcord:verify\n".to_string()),
        Just("-- requires: 0001_a, 0002_b\n".to_string()),
        Just("-- transaction: none\n".to_string()),
        Just("-- irreversible: gone\n".to_string()),
        Just("-- flags: a, b\n".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("$$".to_string()),
        Just("$tag$".to_string()),
        Just("/*".to_string()),
        Just("*/".to_string()),
        Just("--".to_string()),
        Just(";".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\u{feff}".to_string()),
        Just("é".to_string()),
        Just("E'\\''".to_string()),
        Just("CREATE TABLE t (id int PRIMARY KEY, v text);".to_string()),
        Just("ALTER TABLE t DROP COLUMN v;".to_string()),
        Just("ALTER TABLE t ALTER COLUMN v TYPE bigint USING v::bigint;".to_string()),
        Just("DROP TABLE IF EXISTS t CASCADE;".to_string()),
        Just("DELETE FROM t WHERE id IN (SELECT id FROM t);".to_string()),
        Just("UPDATE t SET v = NULL;".to_string()),
        Just("CREATE INDEX CONCURRENTLY i ON t (v);".to_string()),
        Just("BEGIN;".to_string()),
        "[a-z_ ]{0,12}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

fn texts() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), tokens()]
}

proptest! {

    #[test]
    fn change_files_never_panic(text in texts()) {
        if let Ok(change) = ripcord_core::change::parse_change(Path::new("changes/0001_x.sql"), &text) {
            // What parsed can be judged and located.
            let _ = ripcord_guard::classify_change(&change);
            let _ = ripcord_guard::lint_change(&change);
            let _ = ripcord::vault::change_effects(&change);
        }
    }

    #[test]
    fn the_splitter_never_panics_and_its_spans_are_in_bounds(text in texts()) {
        if let Ok(statements) = ripcord_core::splitter::split(&text) {
            for span in statements {
                prop_assert!(span.start <= span.end && span.end <= text.len());
                prop_assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
            }
        }
        let _ = ripcord_core::splitter::literal_spans(&text);
    }

    #[test]
    fn config_files_never_panic(text in texts()) {
        let _ = ripcord_core::config::Config::parse(Path::new("ripcord.toml"), &text);
        let toml_like = format!("[project]\nname = \"x\"\n[targets.a]\nurl = \"{}\"\n", text.replace('"', "'"));
        let _ = ripcord_core::config::Config::parse(Path::new("ripcord.toml"), &toml_like);
    }

    #[test]
    fn urls_never_panic_and_never_show_a_password(text in "[a-z:/@%?&=.0-9#]{0,40}") {
        let _ = ripcord_core::url::TargetUrl::parse(&text);
        let _ = ripcord_core::url::pg_url_problem(&text);
        let planted = format!("postgres://u:Secr3t{text}@h/db");
        prop_assert!(!ripcord_core::url::redact(&planted).contains("Secr3t"));
    }

    #[test]
    fn checkpoints_never_panic(text in texts()) {
        let _ = ripcord::checkpoint::Checkpoint::parse(&text);
    }
}
