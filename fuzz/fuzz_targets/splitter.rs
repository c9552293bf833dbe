//! The SQL splitter: statements stay in bounds and on character boundaries.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(statements) = ripcord_core::splitter::split(text) {
        for span in statements {
            assert!(span.start <= span.end && span.end <= text.len());
            assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
        }
    }
    let _ = ripcord_core::splitter::literal_spans(text);
});
