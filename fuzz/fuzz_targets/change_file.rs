//! A change file of any bytes: parsed, then classified and linted when it parses.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("changes/0001_x.sql");
    if let Ok(change) = ripcord_core::change::parse_change(path, text) {
        for section in [
            Some(&change.deploy),
            change.revert.as_ref(),
            change.verify.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            for span in &section.statements {
                assert!(span.end <= change.text.len() && change.text.is_char_boundary(span.start));
            }
        }
        let _ = ripcord_guard::classify_change(&change);
        let _ = ripcord_guard::lint_change(&change);
    }
});
