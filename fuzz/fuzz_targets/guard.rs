//! The guardrail classifier over any SQL (another tool's migration: one deploy section).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("V1__any.sql");
    if let Ok(change) = ripcord_core::change::parse_any_sql(path, text) {
        let _ = ripcord_guard::classify_change(&change);
        let _ = ripcord_guard::lint_change(&change);
    }
});
