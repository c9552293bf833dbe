//! ripcord.toml of any text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ripcord_core::config::Config::parse(std::path::Path::new("ripcord.toml"), text);
    }
});
