//! The pinned checksum of a change: blake3 over its normalized sections.
//!
//! The algorithm is versioned (`CHECKSUM_VERSION`): changing what is hashed would mark
//! every deployed change as modified, so any change here needs a new version and a
//! ledger upgrade that re-labels old checksums.

/// Prefix of every checksum string; names the algorithm and its version.
pub const CHECKSUM_VERSION: &str = "b3v1";

/// Normalize a section: line endings become `\n`, leading and trailing whitespace goes.
pub fn normalize_section(text: &str) -> String {
    text.replace("\r\n", "\n").trim().to_string()
}

/// Feed one optional text into `hasher` in the pinned, length-prefixed encoding shared
/// by change checksums, definition checksums and the audit chain: `1 ‖ length as u64
/// LE ‖ bytes`, or `0` when absent.
pub fn hash_field(hasher: &mut blake3::Hasher, field: Option<&str>) {
    match field {
        Some(text) => {
            hasher.update(&[1]);
            hasher.update(&(text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        None => {
            hasher.update(&[0]);
        }
    }
}

/// Checksum of a change's three sections (absent sections hash as absent, not empty).
pub fn change_checksum(deploy: &str, revert: Option<&str>, verify: Option<&str>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"ripcord-change\0");
    for (name, body) in [
        ("deploy", Some(deploy)),
        ("revert", revert),
        ("verify", verify),
    ] {
        hasher.update(name.as_bytes());
        hash_field(&mut hasher, body.map(normalize_section).as_deref());
    }
    format!("{CHECKSUM_VERSION}:{}", hasher.finalize().to_hex())
}

/// Prefix of a ledger row's definition checksum.
pub const DEFINITION_VERSION: &str = "l1";

/// Checksum of what a ledger row makes ripcord run or decide: the change's name and
/// project, its deploy, revert and verify SQL as stored, its transaction mode and its
/// irreversible reason. Recorded in the audit chain whenever ripcord writes the row, so
/// that a row edited behind ripcord's back (a revert swapped for `DROP TABLE …`) is
/// caught before its SQL runs.
pub fn definition_checksum(fields: &[Option<&str>]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"ripcord-ledger-row\0");
    for field in fields {
        hash_field(&mut hasher, *field);
    }
    format!("{DEFINITION_VERSION}:{}", hasher.finalize().to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_and_outer_whitespace_do_not_matter() {
        let a = change_checksum("create table t (a int);\n", Some("drop table t;"), None);
        let b = change_checksum(
            "\r\ncreate table t (a int);\r\n\r\n",
            Some("drop table t;  "),
            None,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn any_section_edit_changes_the_checksum() {
        let base = change_checksum("create table t (a int);", Some("drop table t;"), None);
        assert_ne!(
            base,
            change_checksum("create table t (a bigint);", Some("drop table t;"), None)
        );
        assert_ne!(
            base,
            change_checksum(
                "create table t (a int);",
                Some("drop table if exists t;"),
                None
            )
        );
        assert_ne!(
            base,
            change_checksum("create table t (a int);", Some("drop table t;"), Some(""))
        );
        assert_ne!(
            base,
            change_checksum("create table t (a int);", None, Some("drop table t;"))
        );
    }

    #[test]
    fn checksum_is_pinned() {
        // A changed value here means every deployed change in the world reads as modified.
        assert_eq!(
            change_checksum("select 1;", None, None),
            change_checksum("select 1;", None, None)
        );
        assert!(change_checksum("select 1;", None, None).starts_with("b3v1:"));
        insta::assert_snapshot!(change_checksum(
            "select 1;",
            Some("select 2;"),
            Some("select 3;")
        ));
    }
}
