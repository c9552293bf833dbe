//! A target: one database, opened through the engine its URL names.

use std::path::Path;

use ripcord_core::url::{TargetUrl, redact};
use ripcord_core::{Engine, EngineError, SessionLimits};
use ripcord_postgres::PostgresEngine;
use ripcord_sqlite::SqliteEngine;

use crate::identity::Identity;

/// An open connection to one target, with what operations stamp on their work.
pub struct Target {
    /// The target's name (`dev`, or the redacted URL for an ad-hoc target).
    pub name: String,
    /// Its URL without password.
    pub display_url: String,
    /// The engine.
    pub engine: Box<dyn Engine>,
    /// Timeouts applied to every change transaction.
    pub limits: SessionLimits,
    /// Who acts, from where.
    pub identity: Identity,
    /// The project acting (`[project] name`, `Some("")` when it has none); `None`
    /// without a project, where the ledger must hold one project's changes only.
    pub project: Option<String>,
    /// The URL as given, password included: for opening more connections, never printed.
    pub(crate) url: String,
    /// The key that signs every event appended through this target (`[audit]
    /// signing_key_env`); `None`: events are appended unsigned.
    pub signer: Option<ed25519_dalek::SigningKey>,
}

/// Open `url`; a relative SQLite path is taken relative to `base_dir`.
pub fn connect(name: &str, url: &str, base_dir: &Path) -> Result<Target, EngineError> {
    let parsed = TargetUrl::parse(url).map_err(|e| EngineError::BadUrl {
        target: if url.trim().is_empty() {
            "(empty)".into()
        } else {
            e.redacted.clone()
        },
        reason: if url.trim().is_empty() {
            "the URL is empty".into()
        } else {
            match url.split_once("://") {
                Some((scheme, _)) => format!("`{scheme}://` is not a scheme ripcord reads"),
                None => "it has no scheme".into(),
            }
        },
        hint: "write postgres://user@host:5432/db or sqlite://path/to/file.db".into(),
    })?;
    let (engine, display_url, url): (Box<dyn Engine>, String, String) = match parsed {
        TargetUrl::Postgres(url) => (Box::new(PostgresEngine::connect(&url)?), redact(&url), url),
        TargetUrl::Sqlite(path) => {
            let path = if path.is_absolute() {
                path
            } else {
                base_dir.join(path)
            };
            let display = format!("sqlite://{}", path.display());
            (
                Box::new(SqliteEngine::open(&path)?),
                display.clone(),
                display,
            )
        }
    };
    let mut engine = engine;
    let identity = Identity::from_env().or_role(|| engine.session_role());
    Ok(Target {
        name: name.to_string(),
        display_url,
        engine,
        limits: SessionLimits::default(),
        identity,
        project: None,
        url,
        signer: None,
    })
}

impl Target {
    /// Create or upgrade the ledger now (taking and releasing the target's lock), for
    /// work that writes ledger tables without a lock of its own (rollout records).
    pub fn ensure_ledger(&mut self) -> Result<(), crate::OpError> {
        crate::run::with_lock(self, "rollout", |_| Ok(()))
    }

    /// The URL as given, password included: for opening more connections to the same
    /// database. Never print it; print `display_url`.
    pub fn secret_url(&self) -> &str {
        &self.url
    }
}
