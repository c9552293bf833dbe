//! Target URLs: parsing never panics, and redaction never leaves a password behind.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ripcord_core::url::TargetUrl::parse(text);
    let _ = ripcord_core::url::pg_url_problem(text);
    // The planted password must not come back; text that spells it itself would
    // (in a host name, say) and proves nothing.
    if text.contains("Secr3tPlant") {
        return;
    }
    let planted = format!("postgres://u:Secr3tPlant@{text}");
    assert!(!ripcord_core::url::redact(&planted).contains("Secr3tPlant"));
});
