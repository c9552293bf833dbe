//! Rebuild when a change file is added or removed (editing one is tracked already).
fn main() {
    println!("cargo:rerun-if-changed=changes");
}
