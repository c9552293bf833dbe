//! A fleet resolved from ripcord.toml: its members with their URLs, in waves.

use std::path::Path;
use std::time::Duration;

use ripcord_core::SessionLimits;
use ripcord_core::config::{FleetConfig, HealthConfig, LoadedConfig, OnFailure};

use crate::error::RolloutError;

/// One target of a fleet.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its name (`[targets.NAME]`, or from `targets_from`).
    pub name: String,
    /// Its URL, password included: never printed.
    pub url: String,
}

/// A fleet ready to roll out to.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Its name.
    pub name: String,
    /// Members in waves; the first wave is the canary.
    pub waves: Vec<Vec<Member>>,
    /// Parallel targets within a wave.
    pub max_parallel: usize,
    /// What a failure does.
    pub on_failure: OnFailure,
    /// The probes watched after each wave.
    pub health: HealthConfig,
    /// Where SQLite paths are relative to.
    pub base_dir: std::path::PathBuf,
}

impl Fleet {
    /// Every member, wave by wave.
    pub fn members(&self) -> impl Iterator<Item = (usize, &Member)> {
        self.waves
            .iter()
            .enumerate()
            .flat_map(|(wave, members)| members.iter().map(move |m| (wave, m)))
    }

    /// How long to watch after a wave.
    pub fn watch(&self) -> Duration {
        self.health.watch.map(|d| d.0).unwrap_or(Duration::ZERO)
    }
}

/// Resolve fleet `name` of `config`; `url_of` turns a target name into its URL
/// (reading `url_env` as the CLI does).
pub fn resolve(
    config: &LoadedConfig,
    name: &str,
    url_of: &dyn Fn(&str) -> Result<String, RolloutError>,
) -> Result<Fleet, RolloutError> {
    let fleets = &config.config.fleets;
    let fleet: &FleetConfig = fleets.get(name).ok_or_else(|| {
        let known: Vec<&str> = fleets.keys().map(String::as_str).collect();
        RolloutError::Usage {
            message: format!("no fleet `{name}` in {}", config.path.display()),
            hint: match ripcord_core::suggest::did_you_mean(name, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if known.is_empty() => {
                    "add a [fleets.NAME] section with `targets = [...]` to ripcord.toml".into()
                }
                None => format!("known fleets: {}", known.join(", ")),
            },
        }
    })?;
    let mut members: Vec<Member> = Vec::new();
    for target in &fleet.targets {
        members.push(Member {
            name: target.clone(),
            url: url_of(target)?,
        });
    }
    if let Some(from) = &fleet.targets_from {
        match from.strip_prefix("query:") {
            Some(query) => members.extend(query_targets(config, query, url_of)?),
            None => {
                let path = config.root.join(from.strip_prefix("file:").unwrap_or(from));
                members.extend(read_targets_file(&path)?);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for member in &members {
        if !seen.insert(member.name.clone()) {
            return Err(RolloutError::Usage {
                message: format!("fleet `{name}` lists target `{}` twice", member.name),
                hint: "each target belongs to the fleet once".into(),
            });
        }
    }
    let waves = if fleet.waves.is_empty() {
        let mut rest = members.clone();
        if rest.is_empty() {
            Vec::new()
        } else {
            let canary = rest.remove(0);
            let mut waves = vec![vec![canary]];
            if !rest.is_empty() {
                waves.push(rest);
            }
            waves
        }
    } else {
        let mut waves: Vec<Vec<Member>> = Vec::new();
        for wave in &fleet.waves {
            let mut members_of_wave = Vec::new();
            for target in wave {
                let member = members.iter().find(|m| &m.name == target).ok_or_else(|| {
                    RolloutError::Usage {
                        message: format!(
                            "a wave of fleet `{name}` names `{target}`, which is not in the fleet"
                        ),
                        hint: "list it under the fleet's targets (or in its targets_from file)"
                            .into(),
                    }
                })?;
                members_of_wave.push(member.clone());
            }
            waves.push(members_of_wave);
        }
        // Members no wave names go last, so none is silently left out.
        let rest: Vec<Member> = members
            .iter()
            .filter(|m| !fleet.waves.iter().flatten().any(|n| n == &m.name))
            .cloned()
            .collect();
        if !rest.is_empty() {
            waves.push(rest);
        }
        waves
    };
    if waves.is_empty() {
        return Err(RolloutError::Usage {
            message: format!("fleet `{name}` has no targets"),
            hint: "list them under [fleets.NAME] targets".into(),
        });
    }
    Ok(Fleet {
        name: name.to_string(),
        waves,
        max_parallel: fleet.max_parallel.unwrap_or(8).max(1) as usize,
        on_failure: fleet.on_failure,
        health: fleet
            .health
            .clone()
            .unwrap_or_else(|| config.config.health.clone()),
        base_dir: config.root.clone(),
    })
}

/// `targets_from = "query:SOURCE:SELECT …"`: the rows of a query on the target named
/// SOURCE (a tenant catalogue), each `url` or `name, url`.
fn query_targets(
    config: &LoadedConfig,
    query: &str,
    url_of: &dyn Fn(&str) -> Result<String, RolloutError>,
) -> Result<Vec<Member>, RolloutError> {
    let (source, sql) = query.split_once(':').unwrap_or((query, ""));
    let url = url_of(source)?;
    let unreadable = |reason: String| RolloutError::Unreachable {
        target: source.to_string(),
        reason: format!("cannot read the fleet's targets from it: {reason}"),
    };
    let mut catalogue = ripcord::target::connect(source, &url, &config.root)
        .map_err(|e| unreadable(e.to_string()))?;
    let rows = catalogue
        .engine
        .begin(&SessionLimits::default())
        .and_then(|()| catalogue.engine.query_rows(sql, 1_000_000));
    let _ = catalogue.engine.rollback();
    let rows = rows.map_err(|e| unreadable(e.to_string()))?;
    let mut members = Vec::new();
    for (number, row) in rows.rows.iter().enumerate() {
        let text = |value: &serde_json::Value| match value {
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        };
        let (name, url) = match row.as_slice() {
            [url] => (text(url).map(|u| ripcord_core::url::redact(&u)), text(url)),
            [name, url] => (text(name), text(url)),
            _ => (None, None),
        };
        let (Some(name), Some(url)) = (name, url) else {
            return Err(RolloutError::Usage {
                message: format!(
                    "row {} of the targets query on `{source}` is not `url` or `name, url` (text)",
                    number + 1
                ),
                hint: "select one text column (the URL) or two (a name, then the URL)".into(),
            });
        };
        members.push(Member { name, url });
    }
    Ok(members)
}

/// `targets_from = "file:…"`: one `URL` or `NAME URL` per line; `#` starts a comment.
fn read_targets_file(path: &Path) -> Result<Vec<Member>, RolloutError> {
    let text = std::fs::read_to_string(path).map_err(|e| RolloutError::Usage {
        message: format!(
            "cannot read the fleet's targets from {}: {e}",
            path.display()
        ),
        hint: "targets_from is relative to ripcord.toml".into(),
    })?;
    let mut members = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (name, url) = match (words.next(), words.next(), words.next()) {
            (Some(url), None, None) => (ripcord_core::url::redact(url), url.to_string()),
            (Some(name), Some(url), None) => (name.to_string(), url.to_string()),
            _ => {
                return Err(RolloutError::Usage {
                    message: format!(
                        "{}:{}: expected `URL` or `NAME URL`",
                        path.display(),
                        number + 1
                    ),
                    hint: "one target per line".into(),
                });
            }
        };
        if !url.contains("://") && !url.starts_with("sqlite:") {
            return Err(RolloutError::Usage {
                message: format!(
                    "{}:{}: `{}` is not a URL",
                    path.display(),
                    number + 1,
                    ripcord_core::url::redact(&url)
                ),
                hint: "write postgres://… or sqlite://…".into(),
            });
        }
        members.push(Member { name, url });
    }
    Ok(members)
}
