//! Snapshot manifests of any bytes: refused with a reason, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ripcord_core::snapshot::Manifest::parse(data);
});
