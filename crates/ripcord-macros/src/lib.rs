//! `embed_changes!("changes")`: the change files of a directory (relative to the crate
//! being built) compiled into the binary in deploy order, as `&'static
//! [ripcord::embed::EmbeddedChange]`, for `ripcord::embed::Migrator`. Every file is
//! read and checked while the crate compiles: a malformed change, a duplicate ID or a
//! missing dependency is a compile error naming the file. Use it through the `ripcord`
//! crate (`ripcord::embed_changes!`), whose types the expansion names.

use std::path::Path;

use proc_macro::TokenStream;
use quote::quote;

/// Embed the change files of a directory; see the crate documentation.
#[proc_macro]
pub fn embed_changes(input: TokenStream) -> TokenStream {
    let dir = syn::parse_macro_input!(input as syn::LitStr);
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    match expand(&Path::new(&root).join(dir.value())) {
        Ok(tokens) => tokens.into(),
        Err(message) => syn::Error::new(dir.span(), message)
            .to_compile_error()
            .into(),
    }
}

/// The expansion for the change directory `dir`, or why it cannot be embedded.
fn expand(dir: &Path) -> Result<proc_macro2::TokenStream, String> {
    if !dir.is_dir() {
        return Err(format!(
            "embed_changes!: {} is not a directory (the path is relative to the crate's Cargo.toml)",
            dir.display()
        ));
    }
    let plan = ripcord_core::Plan::load(dir).map_err(|e| format!("embed_changes!: {e}"))?;
    if let Some(invalid) = plan.invalid().first() {
        return Err(format!(
            "embed_changes!: a change file cannot be read: {}",
            invalid.error.describe()
        ));
    }
    if plan.changes().is_empty() {
        return Err(format!(
            "embed_changes!: {} holds no change files (<ID>_<name>.sql)",
            dir.display()
        ));
    }
    let items = plan.changes().iter().map(|change| {
        let file_name = change
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let absolute = std::fs::canonicalize(&change.path)
            .unwrap_or_else(|_| change.path.clone())
            .display()
            .to_string();
        let checksum = &change.checksum;
        // include_str! makes cargo rebuild when a file changes.
        quote! {
            ::ripcord::embed::EmbeddedChange {
                file_name: #file_name,
                text: include_str!(#absolute),
                checksum: #checksum,
            }
        }
    });
    Ok(quote! {
        {
            const CHANGES: &[::ripcord::embed::EmbeddedChange] = &[#(#items),*];
            CHANGES
        }
    })
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn every_change_is_embedded_in_deploy_order_with_its_checksum() {
        let dir = dir_with(&[
            (
                "0002_b.sql",
                "-- requires: 0001_a\n-- ripcord:deploy\nCREATE TABLE b (id int);\n",
            ),
            (
                "0001_a.sql",
                "-- ripcord:deploy\nCREATE TABLE a (id int);\n",
            ),
        ]);
        let out = expand(dir.path()).unwrap().to_string();
        let a = out.find("\"0001_a.sql\"").expect("first change");
        let b = out.find("\"0002_b.sql\"").expect("second change");
        assert!(a < b, "{out}");
        assert!(out.contains("include_str !"), "{out}");
        let plan = ripcord_core::Plan::load(dir.path()).unwrap();
        assert!(out.contains(&plan.changes()[0].checksum), "{out}");
    }

    #[test]
    fn bad_directories_and_files_are_compile_errors_naming_the_cause() {
        let missing = expand(std::path::Path::new("/no/such/dir")).unwrap_err();
        assert!(missing.contains("is not a directory"), "{missing}");
        let empty = tempfile::tempdir().unwrap();
        let none = expand(empty.path()).unwrap_err();
        assert!(none.contains("holds no change files"), "{none}");
        let bad = dir_with(&[("0001_a.sql", "-- ripcord:deploy\nSELECT 'open;\n")]);
        let error = expand(bad.path()).unwrap_err();
        assert!(error.contains("0001_a.sql"), "{error}");
        let unknown = dir_with(&[(
            "0001_a.sql",
            "-- requires: 0000_nothing\n-- ripcord:deploy\nSELECT 1;\n",
        )]);
        assert!(expand(unknown.path()).is_err());
    }
}
