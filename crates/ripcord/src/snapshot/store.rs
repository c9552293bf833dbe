//! Snapshot stores: a local directory (`file://`) or object storage (`s3://`, `gs://`,
//! `az://`), all through `object_store`, so there is one code path for both. Objects
//! are only ever created whole (`put`) and never changed; a snapshot is published by
//! writing its manifest last.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::error::OpError;

/// An open snapshot store.
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    uri: String,
    runtime: tokio::runtime::Runtime,
    /// The directory of a `file://` store (object stores have no directories to tidy).
    local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("uri", &self.uri).finish()
    }
}

/// One object in a store.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// Name relative to the store's root.
    pub name: String,
    /// Last write.
    pub modified: DateTime<Utc>,
}

fn store_error(uri: &str, e: impl std::fmt::Display) -> OpError {
    OpError::Store {
        store: uri.to_string(),
        reason: e.to_string(),
    }
}

impl Store {
    /// Open `uri`: `file://DIR` (relative to `base_dir`), a bare directory, or
    /// `s3://bucket/prefix`, `gs://…`, `az://…` with credentials from the environment
    /// (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as object_store reads them).
    pub fn open(uri: &str, base_dir: &Path) -> Result<Store, OpError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| store_error(uri, e))?;
        let scheme = uri.split_once("://").map(|(s, _)| s);
        let mut local_root = None;
        let (inner, prefix): (Arc<dyn ObjectStore>, ObjectPath) = match scheme {
            None | Some("file") => {
                let dir = uri.strip_prefix("file://").unwrap_or(uri);
                let dir = if Path::new(dir).is_absolute() {
                    Path::new(dir).to_path_buf()
                } else {
                    base_dir.join(dir)
                };
                std::fs::create_dir_all(&dir).map_err(|e| {
                    store_error(uri, format!("cannot create {}: {e}", dir.display()))
                })?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| store_error(uri, e))?;
                local_root = Some(dir);
                (Arc::new(local), ObjectPath::default())
            }
            Some("memory") => (
                Arc::new(object_store::memory::InMemory::new()),
                ObjectPath::default(),
            ),
            Some("s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss") => {
                let prefix = ObjectPath::from(path_in_bucket(uri));
                let inner: Arc<dyn ObjectStore> = match scheme {
                    Some("s3" | "s3a") => Arc::new(
                        object_store::aws::AmazonS3Builder::from_env()
                            .with_url(uri)
                            .build()
                            .map_err(|e| store_error(uri, e))?,
                    ),
                    Some("gs") => Arc::new(
                        object_store::gcp::GoogleCloudStorageBuilder::from_env()
                            .with_url(uri)
                            .build()
                            .map_err(|e| store_error(uri, e))?,
                    ),
                    _ => Arc::new(
                        object_store::azure::MicrosoftAzureBuilder::from_env()
                            .with_url(uri)
                            .build()
                            .map_err(|e| store_error(uri, e))?,
                    ),
                };
                (inner, prefix)
            }
            Some(other) => {
                return Err(OpError::Engine(ripcord_core::EngineError::Invalid {
                    reason: format!("unknown snapshot store scheme `{other}://` in {uri}"),
                    hint: Some("use file://DIR, s3://bucket/prefix, gs://… or az://…".into()),
                }));
            }
        };
        Ok(Store {
            inner,
            prefix,
            uri: uri.to_string(),
            runtime,
            local_root,
        })
    }

    /// The URI it was opened with.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn path(&self, name: &str) -> ObjectPath {
        let mut path = self.prefix.clone();
        for part in name.split('/') {
            path = path.child(part);
        }
        path
    }

    fn relative(&self, path: &ObjectPath) -> String {
        path.prefix_match(&self.prefix)
            .map(|parts| {
                parts
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_else(|| path.to_string())
    }

    /// Write `name` whole.
    pub fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), OpError> {
        let path = self.path(name);
        self.runtime
            .block_on(self.inner.put(&path, Bytes::from(bytes).into()))
            .map(|_| ())
            .map_err(|e| store_error(&self.uri, e))
    }

    /// Read `name`; `Ok(None)` when it does not exist.
    pub fn get(&self, name: &str) -> Result<Option<Bytes>, OpError> {
        let path = self.path(name);
        self.runtime
            .block_on(async {
                match self.inner.get(&path).await {
                    Ok(found) => found.bytes().await.map(Some),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .map_err(|e| store_error(&self.uri, e))
    }

    /// Names of the top-level directories (snapshot ids).
    pub fn top_level(&self) -> Result<Vec<String>, OpError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listed = self
            .runtime
            .block_on(self.inner.list_with_delimiter(prefix))
            .map_err(|e| store_error(&self.uri, e))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .map(|p| self.relative(p))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every object under `dir`.
    pub fn list(&self, dir: &str) -> Result<Vec<StoredObject>, OpError> {
        let path = self.path(dir);
        let found: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.inner.list(Some(&path)).try_collect())
            .map_err(|e| store_error(&self.uri, e))?;
        Ok(found
            .into_iter()
            .map(|meta| StoredObject {
                name: self.relative(&meta.location),
                modified: meta.last_modified,
            })
            .collect())
    }

    /// Remove the (empty) directory left by deleting every object under `dir`.
    pub fn tidy(&self, dir: &str) {
        if let Some(root) = &self.local_root {
            let path = root.join(dir);
            let empty = std::fs::read_dir(&path).is_ok_and(|_| walk_files(&path) == 0);
            if empty {
                let _ = std::fs::remove_dir_all(path);
            }
        }
    }

    /// Delete one object (gone already is fine).
    pub fn delete(&self, name: &str) -> Result<(), OpError> {
        let path = self.path(name);
        match self.runtime.block_on(self.inner.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(&self.uri, e)),
        }
    }
}

fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let path = e.path();
                if path.is_dir() { walk_files(&path) } else { 1 }
            })
            .sum()
    })
}

/// `s3://bucket/a/b` → `a/b`.
fn path_in_bucket(uri: &str) -> &str {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    rest.find('/')
        .map(|at| rest[at..].trim_matches('/'))
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_store_keeps_what_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open("file://snaps", dir.path()).unwrap();
        store.put("a/manifest.json", b"{}".to_vec()).unwrap();
        store.put("a/t/000000.zst", b"x".to_vec()).unwrap();
        store.put("b/t/000000.zst", b"y".to_vec()).unwrap();
        assert_eq!(store.top_level().unwrap(), vec!["a", "b"]);
        assert_eq!(
            store.get("a/manifest.json").unwrap().unwrap().as_ref(),
            b"{}"
        );
        assert!(store.get("a/missing").unwrap().is_none());
        let mut names: Vec<_> = store
            .list("a")
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        names.sort();
        assert_eq!(names, vec!["a/manifest.json", "a/t/000000.zst"]);
        store.delete("a/manifest.json").unwrap();
        assert!(dir.path().join("snaps/a/t/000000.zst").is_file());
        assert!(!dir.path().join("snaps/a/manifest.json").exists());
    }

    #[test]
    fn an_unknown_scheme_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open("ftp://x/y", dir.path()).err().unwrap();
        assert!(err.to_string().contains("ftp://"), "{err}");
    }
}
