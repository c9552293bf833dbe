//! Settings resolution: from flags, environment and ripcord.toml to the project and the
//! target a command works on — in one place, so precedence is the same everywhere:
//! `--url` > `--target` > `RIPCORD_URL` > `[project] default_target` (or the only
//! target) > `DATABASE_URL`.

use std::path::{Path, PathBuf};

use ripcord::env_vars;
use ripcord::target::{Target, connect};
use ripcord_core::config::{Config, LoadedConfig};
use ripcord_core::url::redact;
use ripcord_core::{Plan, SessionLimits};

use crate::cli::GlobalArgs;
use crate::error::{CommandError, Exit};

/// The project the command runs in, when there is one.
pub struct Project {
    /// The loaded ripcord.toml.
    pub config: Option<LoadedConfig>,
}

impl Project {
    /// Load ripcord.toml from `--config` or the current directory and its parents.
    pub fn discover(global: &GlobalArgs) -> Result<Project, CommandError> {
        let path = match &global.config {
            Some(path) => {
                if !path.is_file() {
                    return Err(CommandError::new(
                        Exit::Usage,
                        format!("no config file at {}", path.display()),
                    )
                    .hint("check the --config path, or run `ripcord init` to create one"));
                }
                Some(path.clone())
            }
            None => {
                let cwd = std::env::current_dir().map_err(|e| {
                    CommandError::new(Exit::Usage, format!("no current directory: {e}"))
                })?;
                Config::find(&cwd).map(|found| relative_to(&found, &cwd))
            }
        };
        let config = path.map(|p| Config::load(&p)).transpose()?;
        Ok(Project { config })
    }

    /// The config, or an error telling how to get one.
    pub fn require_config(&self) -> Result<&LoadedConfig, CommandError> {
        self.config.as_ref().ok_or_else(|| {
            CommandError::new(
                Exit::Usage,
                "no ripcord.toml in this directory or its parents",
            )
            .hint("run `ripcord init` to create a project, or pass --config PATH")
        })
    }

    /// The plan from the changes directory (required).
    pub fn plan(&self) -> Result<Plan, CommandError> {
        let config = self.require_config()?;
        Ok(Plan::load(&config.changes_dir())?)
    }

    /// The plan when there is a project, else an empty one (for commands that can work
    /// from the ledger alone, like revert and verify).
    pub fn plan_if_any(&self) -> Result<Plan, CommandError> {
        match &self.config {
            Some(config) if config.changes_dir().is_dir() => Ok(Plan::load(&config.changes_dir())?),
            _ => Ok(Plan::default()),
        }
    }

    /// The snapshot store: `--store`, else `[snapshots] store`, else
    /// `file://.ripcord/snapshots` next to ripcord.toml.
    pub fn snapshot_store(
        &self,
        given: Option<&str>,
    ) -> Result<ripcord::snapshot::Store, CommandError> {
        let configured = self
            .config
            .as_ref()
            .and_then(|c| c.config.snapshots.store.clone());
        let uri = given
            .map(str::to_string)
            .or(configured)
            .unwrap_or_else(|| "file://.ripcord/snapshots".into());
        let base = self
            .config
            .as_ref()
            .map_or_else(|| PathBuf::from("."), |c| c.root.clone());
        Ok(ripcord::snapshot::Store::open(&uri, &base)?)
    }

    /// Open the target the flags, environment and config name.
    pub fn target(&self, global: &GlobalArgs) -> Result<Target, CommandError> {
        let (name, url, base) = self.resolve_url(global)?;
        let mut target = connect(&name, &url, &base)?;
        if let Some(config) = &self.config {
            target.project = Some(config.config.project.name.clone().unwrap_or_default());
            let safety = &config.config.safety;
            target.limits = SessionLimits {
                lock_timeout: safety.lock_timeout.map(|d| d.0),
                statement_timeout: safety.statement_timeout.map(|d| d.0),
            };
            if let Some(connections) = config.config.fingerprint.connections {
                target.engine.set_hash_connections(connections.get());
            }
            if let Some(variable) = &config.config.audit.signing_key_env {
                match std::env::var(variable)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                {
                    Some(private) => {
                        target.signer = Some(ripcord::audit::signing_key(&private)?);
                    }
                    None => eprintln!(
                        "warning: [audit] signing_key_env names ${variable}, which is not set: events of this run are unsigned, and `audit verify` with the public key will flag them"
                    ),
                }
            }
        }
        Ok(target)
    }

    /// A database named on the command line: a URL, or a target of ripcord.toml.
    pub fn source(&self, text: &str) -> Result<Target, CommandError> {
        if text.contains("://") || text.starts_with("sqlite:") {
            existing_sqlite(text, Path::new("."))?;
            return Ok(connect(&redact(text), text, Path::new("."))?);
        }
        let config = self.config.as_ref().ok_or_else(|| {
            CommandError::new(Exit::Usage, format!("`{text}` is neither a URL, a target nor a snapshot"))
                .hint("give a URL (postgres://… or sqlite://…), a snapshot id (`ripcord snapshot list`), or run in a project whose ripcord.toml names targets")
        })?;
        let url = named_target_url(config, text)?;
        existing_sqlite(&url, &config.root)?;
        let mut target = connect(text, &url, &config.root)?;
        if let Some(connections) = config.config.fingerprint.connections {
            target.engine.set_hash_connections(connections.get());
        }
        Ok(target)
    }

    fn resolve_url(&self, global: &GlobalArgs) -> Result<(String, String, PathBuf), CommandError> {
        let cwd = PathBuf::from(".");
        if let Some(url) = &global.url {
            return Ok((redact(url), url.clone(), cwd));
        }
        let root = self
            .config
            .as_ref()
            .map_or_else(|| cwd.clone(), |c| c.root.clone());
        if let Some(name) = &global.target {
            let config = self.require_config()?;
            return Ok((name.clone(), named_target_url(config, name)?, root));
        }
        if let Some(url) = env_var(env_vars::RIPCORD_URL) {
            return Ok((redact(&url), url, cwd));
        }
        if let Some(config) = &self.config {
            let targets = &config.config.targets;
            let default = config.config.project.default_target.clone().or_else(|| {
                (targets.len() == 1)
                    .then(|| targets.keys().next().cloned())
                    .flatten()
            });
            if let Some(name) = default {
                return Ok((name.clone(), named_target_url(config, &name)?, root));
            }
        }
        if let Some(url) = env_var(env_vars::DATABASE_URL) {
            return Ok((redact(&url), url, cwd));
        }
        let known = self
            .config
            .as_ref()
            .map(|c| {
                c.config
                    .targets
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|k| !k.is_empty());
        let mut error = CommandError::new(Exit::Usage, "no target to work on");
        error = match known {
            Some(known) => error.hint(format!(
                "pick one with --target ({known}), or set `default_target` under [project] in ripcord.toml"
            )),
            None => error.hint("pass --url postgres://… or sqlite://…, set RIPCORD_URL, or add a [targets.NAME] to ripcord.toml"),
        };
        Err(error)
    }
}

/// A database read from (not deployed to) must exist: opening a SQLite path that does
/// not would create an empty file and compare against nothing.
fn existing_sqlite(url: &str, base: &Path) -> Result<(), CommandError> {
    if let Ok(ripcord_core::url::TargetUrl::Sqlite(path)) = ripcord_core::url::TargetUrl::parse(url)
    {
        let path = if path.is_absolute() {
            path
        } else {
            base.join(path)
        };
        if !path.exists() {
            return Err(CommandError::new(
                Exit::Usage,
                format!("no SQLite database at {}", path.display()),
            )
            .hint("check the path; a database compared with must exist"));
        }
    }
    Ok(())
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub(crate) fn named_target_url(config: &LoadedConfig, name: &str) -> Result<String, CommandError> {
    let target = config.config.targets.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.config.targets.keys().map(String::as_str).collect();
        let error = CommandError::new(
            Exit::Usage,
            format!("no target `{name}` in {}", config.path.display()),
        );
        match ripcord_core::suggest::did_you_mean(name, known.iter().copied()) {
            Some(s) => error.hint(format!("did you mean `{s}`?")),
            None if known.is_empty() => error.hint("add a [targets.NAME] section to ripcord.toml"),
            None => error.hint(format!("known targets: {}", known.join(", "))),
        }
    })?;
    if let Some(url) = &target.url {
        return Ok(url.clone());
    }
    let variable = target.url_env.as_deref().unwrap_or_default();
    env_var(variable).ok_or_else(|| {
        CommandError::new(
            Exit::Usage,
            format!("target `{name}` reads its URL from ${variable}, which is not set"),
        )
        .hint(format!(
            "export {variable}=postgres://… (ripcord never stores secrets in ripcord.toml)"
        ))
    })
}

fn relative_to(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}
