//! `ripcord.toml`: the project's configuration, parsed strictly.
//!
//! Every key is known: an unknown key is an error naming its line with a "did you mean".
//! Secrets never live in the file: a target's `url` may not carry a password; put the
//! URL in the environment and name it with `url_env`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::location::SourceLocation;
use crate::suggest::did_you_mean;

/// The configuration file's name.
pub const CONFIG_FILE: &str = "ripcord.toml";

/// The whole of `ripcord.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[project]`.
    #[serde(default)]
    pub project: ProjectConfig,
    /// `[targets.NAME]`.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    /// `[safety]`.
    #[serde(default)]
    pub safety: SafetyConfig,
    /// `[capture]`.
    #[serde(default)]
    pub capture: CaptureConfig,
    /// `[snapshots]`.
    #[serde(default)]
    pub snapshots: SnapshotsConfig,
    /// `[[checks]]`.
    #[serde(default)]
    pub checks: Vec<CheckConfig>,
    /// `[fleets.NAME]`.
    #[serde(default)]
    pub fleets: BTreeMap<String, FleetConfig>,
    /// `[health]`.
    #[serde(default)]
    pub health: HealthConfig,
    /// `[[notify]]`.
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
    /// `[coordinator]`.
    pub coordinator: Option<CoordinatorConfig>,
    /// `[audit]`.
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[drill]`.
    #[serde(default)]
    pub drill: DrillConfig,
    /// `[fingerprint]`.
    #[serde(default)]
    pub fingerprint: FingerprintConfig,
}

/// `[fingerprint]`: how drill, `ripcord fingerprint` and checksum checks hash tables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintConfig {
    /// Most connections hashing tables at once, each table on one of them, all reading
    /// one exported snapshot (PostgreSQL). Default: the machine's CPUs.
    pub connections: Option<std::num::NonZeroUsize>,
}

/// `[project]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// The project's name, shown in output.
    pub name: Option<String>,
    /// Directory of change files, relative to the config file (default `changes`).
    pub changes: Option<String>,
    /// Target used when neither `--target` nor `--url` is given.
    pub default_target: Option<String>,
}

/// `[targets.NAME]`: exactly one of `url` and `url_env`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The URL itself (no password allowed).
    pub url: Option<String>,
    /// Name of the environment variable holding the URL.
    pub url_env: Option<String>,
}

/// Whether to preserve data before destructive statements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preserve {
    /// Preserve automatically (default).
    #[default]
    Auto,
    /// Never preserve.
    Off,
}

/// `[safety]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    /// `SET lock_timeout` for every change.
    pub lock_timeout: Option<DurationSetting>,
    /// `SET statement_timeout` for every change.
    pub statement_timeout: Option<DurationSetting>,
    /// Vault data before destructive statements.
    #[serde(default)]
    pub preserve: Preserve,
    /// When deploy snapshots the tables pending changes touch.
    #[serde(default)]
    pub snapshot_before: SnapshotBefore,
}

/// `[safety] snapshot_before`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotBefore {
    /// Only with `deploy --snapshot` (default).
    #[default]
    Never,
    /// When a pending statement destroys rows or values (DROP TABLE/COLUMN, TRUNCATE,
    /// DELETE, UPDATE, ALTER COLUMN … TYPE).
    Preserving,
    /// Whenever pending changes write to existing tables.
    Always,
}

/// A duration written like `5s` or `30min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSetting(pub Duration);

impl<'de> Deserialize<'de> for DurationSetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map(DurationSetting)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration `{text}` ({e}); write e.g. \"5s\" or \"30min\""
                ))
            })
    }
}

/// `[capture]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Tables whose row changes are captured.
    #[serde(default)]
    pub tables: Vec<String>,
    /// How `capture enable` captures them when `--mode` is not given: `trigger`
    /// (default) or `logical`.
    #[serde(default)]
    pub mode: Option<crate::capture::CaptureMode>,
    /// Logical mode: warn when the replication slot retains more WAL than this, e.g.
    /// `"1GB"` (default) or `"512MB"`.
    #[serde(default)]
    pub max_retained_wal: Option<String>,
}

impl CaptureConfig {
    /// `max_retained_wal` in bytes (1 GB when unset); `Err` names what is wrong.
    pub fn max_retained_wal_bytes(&self) -> Result<i64, String> {
        let Some(text) = &self.max_retained_wal else {
            return Ok(1 << 30);
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let factor: i64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1 << 10,
            "mb" => 1 << 20,
            "gb" => 1 << 30,
            "tb" => 1 << 40,
            _ => {
                return Err(format!(
                    "[capture] max_retained_wal = \"{text}\": unknown unit (use kB, MB, GB or TB)"
                ));
            }
        };
        number
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .ok_or_else(|| {
                format!("[capture] max_retained_wal = \"{text}\" is not a size such as \"1GB\"")
            })
    }
}

/// `[snapshots]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsConfig {
    /// Store URI (`file://…`, `s3://…`).
    pub store: Option<String>,
}

/// `[[checks]]`: a query and what its result must be.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Shown in reports; unique in the project.
    pub name: String,
    /// The query: one row whose first column is the value, or a set of rows (for
    /// `zero_rows` and the distribution expectations). Not needed for
    /// `checksum_equals_baseline`, which hashes `tables`.
    pub sql: Option<String>,
    /// The expectations, e.g. `{ within_pct_of_baseline = 1.0 }`.
    pub expect: Expectation,
    /// Tables the check is about: deploy's gate runs it only when a pending change
    /// touches one of them (every time when empty).
    #[serde(default)]
    pub tables: Vec<String>,
    /// `error` (default: fails `ripcord check`, and deploy's gate reverts) or `warn`.
    #[serde(default)]
    pub severity: CheckSeverity,
    /// The column distribution expectations look at (default: the query's first).
    pub column: Option<String>,
}

/// How much a failed check matters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckSeverity {
    /// Fails the check run (exit 1) and deploy's gate.
    #[default]
    Error,
    /// Reported only.
    Warn,
}

/// What a check's result must be; a check may hold several expectations.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The value equals this (number, string or boolean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
    /// The value is at least this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The value is at most this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The value lies in `[low, high]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub between: Option<[f64; 2]>,
    /// The value is within this many percent of the baseline's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within_pct_of_baseline: Option<f64>,
    /// The query returns no rows (an invariant: orphans, duplicates, negative totals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero_rows: Option<bool>,
    /// Each of `tables` has the row count and content hash of the baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_equals_baseline: Option<bool>,
    /// At most this fraction (0–1) of the column is NULL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub null_fraction_max: Option<f64>,
    /// The column's number of distinct values is within this many percent of the
    /// baseline's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_count_within_pct: Option<f64>,
    /// The column's median and 95th percentile are each within this many percent of
    /// the baseline's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantiles_within_pct: Option<f64>,
}

impl Expectation {
    /// Whether any expectation compares with a saved baseline.
    pub fn needs_baseline(&self) -> bool {
        self.within_pct_of_baseline.is_some()
            || self.checksum_equals_baseline == Some(true)
            || self.distinct_count_within_pct.is_some()
            || self.quantiles_within_pct.is_some()
    }

    /// Whether an expectation looks at one column's distribution.
    pub fn on_distribution(&self) -> bool {
        self.null_fraction_max.is_some()
            || self.distinct_count_within_pct.is_some()
            || self.quantiles_within_pct.is_some()
    }

    /// Whether an expectation looks at the query's single value.
    pub fn on_value(&self) -> bool {
        self.equals.is_some()
            || self.min.is_some()
            || self.max.is_some()
            || self.between.is_some()
            || self.within_pct_of_baseline.is_some()
    }

    /// No expectation at all.
    pub fn is_empty(&self) -> bool {
        self == &Expectation::default()
    }
}

/// `[fleets.NAME]`: targets deployed together, in waves.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Member targets (names of `[targets.*]`).
    #[serde(default)]
    pub targets: Vec<String>,
    /// More members from a file of URLs (`file:tenants.txt`, one `URL` or `NAME URL`
    /// per line, `#` comments, relative to ripcord.toml) or from a query on a target
    /// (`query:catalog:select name, url from tenants`, rows of `url` or `name, url`).
    pub targets_from: Option<String>,
    /// Deploy waves; the first is the canary. Default: the first target alone, then
    /// the rest.
    #[serde(default)]
    pub waves: Vec<Vec<String>>,
    /// Parallel targets within a wave (default 8).
    pub max_parallel: Option<u32>,
    /// What a failed deploy or a breached probe does: `rollback` (default) or `stop`.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Probes of this fleet (instead of `[health]`).
    pub health: Option<HealthConfig>,
}

/// `on_failure` of a fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Revert every target changed by the rollout, in reverse order of change.
    #[default]
    Rollback,
    /// Stop where it is, leaving changed targets as they are.
    Stop,
}

/// `[coordinator]`: the database holding rollout records and two-phase commit
/// decisions (default: the fleet's first target).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// A target of `[targets.*]`.
    pub target: Option<String>,
    /// Or a URL.
    pub url: Option<String>,
    /// Or the environment variable holding one.
    pub url_env: Option<String>,
}

/// `[health]`: probes watched after each wave.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Health probes.
    #[serde(default)]
    pub probes: Vec<ProbeConfig>,
    /// How long to watch after each wave (bake time; default: one sample).
    pub watch: Option<DurationSetting>,
    /// Default time between samples (5s).
    pub interval: Option<DurationSetting>,
    /// Default consecutive failures allowed (0: the first failure breaches).
    pub failure_limit: Option<u32>,
    /// Default consecutive inconclusive samples allowed (1).
    pub inconclusive_limit: Option<u32>,
    /// Default time one sample may take (10s).
    pub timeout: Option<DurationSetting>,
}

/// One health probe: exactly one of `sql`, `http`, `prometheus`, `command`, `check`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Shown in reports.
    pub name: String,
    /// Query returning one number, on every target changed so far (or on `url`).
    pub sql: Option<String>,
    /// GET this URL; bound the number at `json_pointer`, or expect `status`.
    pub http: Option<String>,
    /// A Prometheus HTTP API base URL; `query` is an instant query.
    pub prometheus: Option<String>,
    /// A shell command; exit 0 passes.
    pub command: Option<String>,
    /// A check of `[[checks]]` by name, run on every target changed so far.
    pub check: Option<String>,
    /// The PromQL query of a `prometheus` probe.
    pub query: Option<String>,
    /// Where the number is in an `http` probe's JSON answer (RFC 6901).
    pub json_pointer: Option<String>,
    /// The status an `http` probe expects (default: any 2xx).
    pub status: Option<u16>,
    /// A monitoring database for a `sql` probe (instead of the targets).
    pub url: Option<String>,
    /// The environment variable holding that URL.
    pub url_env: Option<String>,
    /// Breach above this.
    pub max: Option<f64>,
    /// Breach below this.
    pub min: Option<f64>,
    /// Breach unless equal.
    pub equals: Option<f64>,
    /// Time between samples.
    pub interval: Option<DurationSetting>,
    /// Consecutive failures allowed.
    pub failure_limit: Option<u32>,
    /// Consecutive inconclusive samples allowed.
    pub inconclusive_limit: Option<u32>,
    /// Time one sample may take.
    pub timeout: Option<DurationSetting>,
}

impl ProbeConfig {
    /// Which kind of probe (`sql`, `http`, …), when exactly one is set.
    pub fn kind(&self) -> Option<&'static str> {
        let kinds: Vec<&'static str> = [
            ("sql", self.sql.is_some()),
            ("http", self.http.is_some()),
            ("prometheus", self.prometheus.is_some()),
            ("command", self.command.is_some()),
            ("check", self.check.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k)
        .collect();
        (kinds.len() == 1).then(|| kinds[0])
    }
}

/// `[[notify]]`: where rollout events are sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// POST the body to this URL.
    pub webhook: Option<String>,
    /// Or run this shell command with the body on stdin.
    pub command: Option<String>,
    /// Events sent (all when empty): rollout_started, wave_completed, probe_failed,
    /// rollback_started, rollback_completed, rollout_completed.
    #[serde(default)]
    pub on: Vec<String>,
    /// A minijinja template of the body; default: Slack-style `{"text": …}`.
    pub template: Option<String>,
}

/// The events `[[notify]] on` can name.
pub const NOTIFY_EVENTS: [&str; 6] = [
    "rollout_started",
    "wave_completed",
    "probe_failed",
    "rollback_started",
    "rollback_completed",
    "rollout_completed",
];

/// `[audit]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Environment variable holding the ed25519 signing key (base64) that signs
    /// checkpoints of the audit chain.
    pub signing_key_env: Option<String>,
    /// The ed25519 public key (base64) checkpoints and signed events are verified with.
    pub public_key: Option<String>,
    /// Keys used before a rotation, still trusted for the events they signed.
    #[serde(default)]
    pub previous_public_keys: Vec<String>,
}

impl AuditConfig {
    /// Every key whose signatures `audit verify` accepts: the current one, then those
    /// before rotations.
    pub fn trusted_keys(&self) -> Vec<String> {
        self.public_key
            .iter()
            .chain(&self.previous_public_keys)
            .cloned()
            .collect()
    }
}

/// `[drill]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// Seed script run on the scratch database before rehearsing.
    pub seed: Option<String>,
    /// Whether a revert that restores every column but in another order passes.
    #[serde(default)]
    pub column_order: ColumnOrder,
}

/// `[drill] column_order`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnOrder {
    /// Columns must come back in their order (default): `SELECT *`, `INSERT … VALUES`
    /// and `COPY` without a column list depend on it.
    #[default]
    Exact,
    /// A different column order is not a failure.
    Ignore,
}

/// A problem with `ripcord.toml`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is malformed or holds something it must not.
    #[error("{message}")]
    Invalid {
        /// One line.
        message: String,
        /// What to do.
        hint: Option<String>,
        /// Where in the file, when known.
        location: Option<SourceLocation>,
    },
}

/// A loaded configuration with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed file.
    pub config: Config,
    /// The file's path.
    pub path: PathBuf,
    /// The project root (the file's directory).
    pub root: PathBuf,
}

impl LoadedConfig {
    /// The changes directory.
    pub fn changes_dir(&self) -> PathBuf {
        let changes = self.config.project.changes.as_deref().unwrap_or("changes");
        if self.root == Path::new(".") {
            PathBuf::from(changes)
        } else {
            self.root.join(changes)
        }
    }
}

impl Config {
    /// Parse the text of a `ripcord.toml` read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        config.validate(path, text)?;
        Ok(config)
    }

    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Config::parse(path, &text)?;
        let root = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(LoadedConfig {
            config,
            path: path.to_path_buf(),
            root,
        })
    }

    /// Find `ripcord.toml` in `start` or its ancestors.
    pub fn find(start: &Path) -> Option<PathBuf> {
        start
            .ancestors()
            .map(|dir| dir.join(CONFIG_FILE))
            .find(|candidate| candidate.is_file())
    }

    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let at = |needle: &str| locate(path, text, needle);
        for (name, target) in &self.targets {
            match (&target.url, &target.url_env) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::Invalid {
                        message: format!("target `{name}` sets both `url` and `url_env`"),
                        hint: Some("keep one of them".into()),
                        location: at(&format!("[targets.{name}]")),
                    });
                }
                (None, None) => {
                    return Err(ConfigError::Invalid {
                        message: format!("target `{name}` has neither `url` nor `url_env`"),
                        hint: Some(
                            "add `url = \"sqlite://dev.db\"` or `url_env = \"DATABASE_URL\"`"
                                .into(),
                        ),
                        location: at(&format!("[targets.{name}]")),
                    });
                }
                (Some(url), None) if crate::url::has_password(url) => {
                    // Show the line, but never the secret on it.
                    let shown = text.replace(url.as_str(), &crate::url::redact(url));
                    return Err(ConfigError::Invalid {
                        message: format!("target `{name}` has a password in its url"),
                        hint: Some(format!(
                            "secrets do not belong in ripcord.toml: put the URL in an environment variable and write `url_env = \"{}_DATABASE_URL\"`",
                            name.to_ascii_uppercase().replace('-', "_")
                        )),
                        // At this target's URL (the first `url` of the file may be another's).
                        location: locate(path, &shown, &crate::url::redact(url)),
                    });
                }
                _ => {}
            }
        }
        self.validate_checks(&at)?;
        self.validate_fleets(&at)?;
        if let Some(default) = &self.project.default_target
            && !self.targets.contains_key(default)
        {
            return Err(ConfigError::Invalid {
                message: format!("default_target `{default}` is not a target of this project"),
                hint: did_you_mean(default, self.targets.keys().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?")),
                location: at("default_target"),
            });
        }
        Ok(())
    }
}

impl Config {
    fn validate_fleets(
        &self,
        at: &dyn Fn(&str) -> Option<SourceLocation>,
    ) -> Result<(), ConfigError> {
        let known = |name: &str| self.targets.contains_key(name);
        for (fleet, config) in &self.fleets {
            let location = || at(&format!("[fleets.{fleet}]"));
            if config.targets.is_empty() && config.targets_from.is_none() {
                return Err(ConfigError::Invalid {
                    message: format!("fleet `{fleet}` has no targets"),
                    hint: Some("list them: `targets = [\"s1\", \"s2\"]`, or `targets_from = \"file:tenants.txt\"`".into()),
                    location: location(),
                });
            }
            for name in &config.targets {
                if !known(name) {
                    return Err(ConfigError::Invalid {
                        message: format!("fleet `{fleet}` names an unknown target `{name}`"),
                        hint: did_you_mean(name, self.targets.keys().map(String::as_str))
                            .map(|s| format!("did you mean `{s}`?"))
                            .or_else(|| Some("add it as a [targets.NAME] section".into())),
                        location: at(&format!("\"{name}\"")).or_else(location),
                    });
                }
            }
            if let Some(from) = &config.targets_from {
                match from.strip_prefix("query:").map(|q| q.split_once(':')) {
                    None if from.starts_with("file:") => {}
                    Some(Some((source, sql))) if !sql.trim().is_empty() => {
                        if !self.targets.contains_key(source) {
                            return Err(ConfigError::Invalid {
                                message: format!("fleet `{fleet}`: targets_from queries an unknown target `{source}`"),
                                hint: did_you_mean(source, self.targets.keys().map(String::as_str))
                                    .map(|s| format!("did you mean `{s}`?"))
                                    .or_else(|| Some("add the catalogue database as a [targets.NAME] section".into())),
                                location: at("targets_from").or_else(location),
                            });
                        }
                    }
                    _ => {
                        return Err(ConfigError::Invalid {
                            message: format!("fleet `{fleet}`: targets_from `{from}` is neither `file:PATH` nor `query:TARGET:SQL`"),
                            hint: Some("write `targets_from = \"file:tenants.txt\"` (one URL, or `NAME URL`, per line) or `targets_from = \"query:catalog:select name, url from tenants\"`".into()),
                            location: at("targets_from").or_else(location),
                        });
                    }
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            for name in config.waves.iter().flatten() {
                if config.targets_from.is_none() && !config.targets.contains(name) {
                    return Err(ConfigError::Invalid {
                        message: format!(
                            "a wave of fleet `{fleet}` names `{name}`, which is not in the fleet"
                        ),
                        hint: did_you_mean(name, config.targets.iter().map(String::as_str))
                            .map(|s| format!("did you mean `{s}`?"))
                            .or_else(|| {
                                Some(format!(
                                    "the fleet's targets: {}",
                                    config.targets.join(", ")
                                ))
                            }),
                        location: at(&format!("\"{name}\"")).or_else(location),
                    });
                }
                if !seen.insert(name.clone()) {
                    return Err(ConfigError::Invalid {
                        message: format!("fleet `{fleet}` names `{name}` in two waves"),
                        hint: Some("each target belongs to one wave".into()),
                        location: location(),
                    });
                }
            }
            if config.max_parallel == Some(0) {
                return Err(ConfigError::Invalid {
                    message: format!("fleet `{fleet}`: max_parallel is 0"),
                    hint: Some("at least 1 target must run at a time".into()),
                    location: at("max_parallel").or_else(location),
                });
            }
            if let Some(health) = &config.health {
                self.validate_health(health, at)?;
            }
        }
        self.validate_health(&self.health, at)?;
        if let Some(coordinator) = &self.coordinator {
            let set = [
                coordinator.target.is_some(),
                coordinator.url.is_some(),
                coordinator.url_env.is_some(),
            ];
            if set.iter().filter(|s| **s).count() != 1 {
                return Err(ConfigError::Invalid {
                    message: "[coordinator] needs exactly one of `target`, `url`, `url_env`".into(),
                    hint: Some("e.g. `url_env = \"RIPCORD_COORDINATOR_URL\"`".into()),
                    location: at("[coordinator]"),
                });
            }
            if let Some(name) = &coordinator.target
                && !known(name)
            {
                return Err(ConfigError::Invalid {
                    message: format!("[coordinator] names an unknown target `{name}`"),
                    hint: Some("name a [targets.NAME]".into()),
                    location: at("[coordinator]"),
                });
            }
        }
        for notify in &self.notify {
            if notify.webhook.is_some() == notify.command.is_some() {
                return Err(ConfigError::Invalid {
                    message: "a [[notify]] needs exactly one of `webhook` and `command`".into(),
                    hint: Some("e.g. `webhook = \"https://chat.example.com/hook\"`".into()),
                    location: at("[[notify]]"),
                });
            }
            for event in &notify.on {
                if !NOTIFY_EVENTS.contains(&event.as_str()) {
                    return Err(ConfigError::Invalid {
                        message: format!("[[notify]] names an unknown event `{event}`"),
                        hint: did_you_mean(event, NOTIFY_EVENTS.iter().copied())
                            .map(|s| format!("did you mean `{s}`?"))
                            .or_else(|| Some(format!("events: {}", NOTIFY_EVENTS.join(", ")))),
                        location: at(&format!("\"{event}\"")),
                    });
                }
            }
        }
        Ok(())
    }

    fn validate_health(
        &self,
        health: &HealthConfig,
        at: &dyn Fn(&str) -> Option<SourceLocation>,
    ) -> Result<(), ConfigError> {
        for (index, probe) in health.probes.iter().enumerate() {
            let invalid = |message: String, hint: &str| ConfigError::Invalid {
                message,
                hint: Some(hint.to_string()),
                location: at(&format!("\"{}\"", probe.name)).or_else(|| at("probes")),
            };
            let name = &probe.name;
            if name.trim().is_empty() {
                return Err(invalid(
                    "a probe has an empty name".into(),
                    "name every probe: reports use the name",
                ));
            }
            if health.probes[..index].iter().any(|p| p.name == *name) {
                return Err(invalid(
                    format!("two probes are named `{name}`"),
                    "make probe names unique",
                ));
            }
            let Some(kind) = probe.kind() else {
                return Err(invalid(
                    format!(
                        "probe `{name}` needs exactly one of sql, http, prometheus, command, check"
                    ),
                    "e.g. `sql = \"select count(*) from orders where total < 0\", max = 0`",
                ));
            };
            let bounded = probe.max.is_some() || probe.min.is_some() || probe.equals.is_some();
            match kind {
                "sql" | "prometheus" if !bounded => {
                    return Err(invalid(
                        format!("probe `{name}` has no bound"),
                        "add `max`, `min` or `equals`",
                    ));
                }
                "prometheus" if probe.query.is_none() => {
                    return Err(invalid(
                        format!("probe `{name}` has no `query`"),
                        "write the PromQL instant query, e.g. `query = \"sum(rate(errors_total[1m]))\"`",
                    ));
                }
                "http" if probe.json_pointer.is_some() && !bounded => {
                    return Err(invalid(
                        format!(
                            "probe `{name}` reads `{}` but has no bound",
                            probe.json_pointer.as_deref().unwrap_or_default()
                        ),
                        "add `max`, `min` or `equals`",
                    ));
                }
                "http" if probe.json_pointer.is_none() && bounded => {
                    return Err(invalid(
                        format!("probe `{name}` has a bound but no `json_pointer`"),
                        "say where the number is, e.g. `json_pointer = \"/errors\"`, or expect a `status`",
                    ));
                }
                "check" => {
                    let check = probe.check.as_deref().unwrap_or_default();
                    if !self.checks.iter().any(|c| c.name == check) {
                        return Err(invalid(
                            format!("probe `{name}` names an unknown check `{check}`"),
                            "name a check of [[checks]]",
                        ));
                    }
                }
                _ => {}
            }
            if kind != "sql" && (probe.url.is_some() || probe.url_env.is_some()) {
                return Err(invalid(
                    format!("probe `{name}`: `url` is for sql probes"),
                    "an http probe's URL is its `http` value",
                ));
            }
        }
        Ok(())
    }

    fn validate_checks(
        &self,
        at: &dyn Fn(&str) -> Option<SourceLocation>,
    ) -> Result<(), ConfigError> {
        for (index, check) in self.checks.iter().enumerate() {
            let invalid = |message: String, hint: &str| ConfigError::Invalid {
                message,
                hint: Some(hint.to_string()),
                location: at(&format!("\"{}\"", check.name)).or_else(|| at("[[checks]]")),
            };
            let name = &check.name;
            if name.trim().is_empty() {
                return Err(invalid(
                    "a check has an empty name".into(),
                    "name every check: reports and baselines use the name",
                ));
            }
            if self.checks[..index].iter().any(|c| c.name == *name) {
                return Err(invalid(
                    format!("two checks are named `{name}`"),
                    "names identify checks in reports and baselines: make them unique",
                ));
            }
            let expect = &check.expect;
            if expect.is_empty() {
                return Err(invalid(
                    format!("check `{name}` expects nothing"),
                    "give `expect` one of equals, min, max, between, within_pct_of_baseline, zero_rows, checksum_equals_baseline, null_fraction_max, distinct_count_within_pct, quantiles_within_pct",
                ));
            }
            let needs_sql =
                expect.on_value() || expect.on_distribution() || expect.zero_rows.is_some();
            if needs_sql && check.sql.as_deref().is_none_or(|s| s.trim().is_empty()) {
                return Err(invalid(
                    format!("check `{name}` has no `sql`"),
                    "write the query whose result the expectation is about",
                ));
            }
            if expect.checksum_equals_baseline == Some(true) && check.tables.is_empty() {
                return Err(invalid(
                    format!("check `{name}` compares checksums but names no `tables`"),
                    "list the tables to hash, e.g. `tables = [\"orders\"]`",
                ));
            }
            if expect.zero_rows.is_some() && (expect.on_value() || expect.on_distribution()) {
                return Err(invalid(
                    format!("check `{name}` mixes `zero_rows` with expectations on a value"),
                    "write one check for the invariant and another for the value",
                ));
            }
            if expect.on_value() && expect.on_distribution() {
                return Err(invalid(
                    format!(
                        "check `{name}` mixes expectations on a value and on a column's distribution"
                    ),
                    "write one check for each",
                ));
            }
            if let Some(fraction) = expect.null_fraction_max
                && !(0.0..=1.0).contains(&fraction)
            {
                return Err(invalid(
                    format!("check `{name}`: null_fraction_max {fraction} is not between 0 and 1"),
                    "write the largest fraction of NULLs allowed, e.g. 0.01 for 1%",
                ));
            }
            if let Some([low, high]) = expect.between
                && low > high
            {
                return Err(invalid(
                    format!("check `{name}`: between [{low}, {high}] is empty"),
                    "write the lower bound first",
                ));
            }
            for pct in [
                expect.within_pct_of_baseline,
                expect.distinct_count_within_pct,
                expect.quantiles_within_pct,
            ]
            .into_iter()
            .flatten()
            {
                if pct < 0.0 {
                    return Err(invalid(
                        format!("check `{name}`: a percentage cannot be negative ({pct})"),
                        "write how far from the baseline the value may be, e.g. 1.0 for 1%",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn locate(path: &Path, text: &str, needle: &str) -> Option<SourceLocation> {
    let start = text.find(needle)?;
    Some(SourceLocation {
        name: path.to_path_buf(),
        text: Arc::from(text),
        span: start..start + needle.len(),
    })
}

fn toml_error(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let location = error.span().map(|span| SourceLocation {
        name: path.to_path_buf(),
        text: Arc::from(text),
        span,
    });
    let message = error.message().trim().to_string();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let hint = did_you_mean(key, candidates.iter().copied())
            .map(|s| format!("did you mean `{s}`?"))
            .or_else(|| {
                (!candidates.is_empty())
                    .then(|| format!("known keys here: {}", candidates.join(", ")))
            });
        return ConfigError::Invalid {
            message: format!("unknown key `{key}` in {}", path.display()),
            hint,
            location,
        };
    }
    ConfigError::Invalid {
        message: format!("invalid {}: {message}", path.display()),
        hint: None,
        location,
    }
}

/// The text `ripcord init` writes.
pub fn init_template(name: &str, target_url: Option<&str>, url_env: Option<&str>) -> String {
    let target = match (target_url, url_env) {
        (Some(url), _) => format!("url = \"{url}\""),
        (None, Some(env)) => format!("url_env = \"{env}\""),
        (None, None) => "url = \"sqlite://dev.db\"".to_string(),
    };
    format!(
        "[project]\nname = \"{name}\"\nchanges = \"changes\"\ndefault_target = \"dev\"\n\n\
         [targets.dev]\n{target}\n\n\
         [safety]\nlock_timeout = \"5s\"\nstatement_timeout = \"30min\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("ripcord.toml"), text)
    }

    fn invalid(text: &str) -> (String, Option<String>, Option<String>) {
        match parse(text).unwrap_err() {
            ConfigError::Invalid {
                message,
                hint,
                location,
            } => (message, hint, location.map(|l| l.display_short())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_design_example_parses() {
        let text = r#"
[project]
name = "shop"
changes = "changes"

[targets.dev]
url = "sqlite://dev.db"
[targets.prod]
url_env = "PROD_DATABASE_URL"
[targets.shard-01]
url_env = "SHARD_01_URL"
[targets.shard-02]
url_env = "SHARD_02_URL"
[targets.shard-03]
url_env = "SHARD_03_URL"
[targets.shard-04]
url_env = "SHARD_04_URL"

[safety]
lock_timeout = "5s"
statement_timeout = "30min"
preserve = "auto"
snapshot_before = "preserving"

[capture]
tables = ["public.orders", "public.payments"]

[snapshots]
store = "file://.ripcord/snapshots"

[[checks]]
name = "orders row count"
sql = "select count(*) from orders"
expect = { within_pct_of_baseline = 1.0 }

[fleets.prod]
targets = ["shard-01", "shard-02", "shard-03", "shard-04"]
waves = [["shard-01"], ["shard-02", "shard-03", "shard-04"]]
max_parallel = 8

[health]
probes = [{ name = "errors", sql = "select count(*) from app_errors where at > now() - interval '1 minute'", max = 10 }]
watch = "2m"

[audit]
signing_key_env = "RIPCORD_SIGNING_KEY"
"#;
        let config = parse(text).unwrap();
        assert_eq!(
            config.safety.lock_timeout,
            Some(DurationSetting(Duration::from_secs(5)))
        );
        assert_eq!(
            config.safety.statement_timeout,
            Some(DurationSetting(Duration::from_secs(1800)))
        );
        assert_eq!(
            config.targets["prod"].url_env.as_deref(),
            Some("PROD_DATABASE_URL")
        );
        assert_eq!(config.fleets["prod"].waves.len(), 2);
    }

    #[test]
    fn checks_parse_with_every_expectation() {
        let config = parse(
            r#"
[[checks]]
name = "no negative totals"
sql = "select id from orders where total < 0"
expect = { zero_rows = true }
tables = ["orders"]

[[checks]]
name = "orders row count"
sql = "select count(*) from orders"
expect = { within_pct_of_baseline = 1.0 }
severity = "warn"

[[checks]]
name = "status"
sql = "select status from settings"
expect = { equals = "open" }

[[checks]]
name = "totals"
sql = "select total from orders"
column = "total"
expect = { null_fraction_max = 0.01, distinct_count_within_pct = 5, quantiles_within_pct = 10 }

[[checks]]
name = "orders unchanged"
expect = { checksum_equals_baseline = true }
tables = ["orders"]

[[checks]]
name = "count bounds"
sql = "select count(*) from orders"
expect = { min = 1, max = 1e6, between = [1, 100] }
"#,
        )
        .unwrap();
        assert_eq!(config.checks.len(), 6);
        assert_eq!(config.checks[0].expect.zero_rows, Some(true));
        assert_eq!(config.checks[1].severity, CheckSeverity::Warn);
        assert_eq!(
            config.checks[2].expect.equals,
            Some(serde_json::json!("open"))
        );
        assert!(config.checks[3].expect.needs_baseline());
        assert!(!config.checks[0].expect.needs_baseline());
        assert_eq!(config.checks[5].expect.between, Some([1.0, 100.0]));
    }

    #[test]
    fn bad_checks_are_errors_with_their_line() {
        let (message, hint, at) =
            invalid("[[checks]]\nname = \"a\"\nsql = \"select 1\"\nexpect = { zero_row = true }\n");
        assert_eq!(message, "unknown key `zero_row` in ripcord.toml");
        assert_eq!(hint.as_deref(), Some("did you mean `zero_rows`?"));
        assert_eq!(at.as_deref(), Some("ripcord.toml:4:12"));
        let (message, _, _) =
            invalid("[[checks]]\nname = \"a\"\nsql = \"select 1\"\nexpect = { min = \"ten\" }\n");
        assert!(message.contains("invalid type"), "{message}");
        let (message, _, at) = invalid("[[checks]]\nname = \"a\"\nexpect = { min = 1 }\n");
        assert_eq!(message, "check `a` has no `sql`");
        assert_eq!(at.as_deref(), Some("ripcord.toml:2:8"));
        let (message, _, _) =
            invalid("[[checks]]\nname = \"a\"\nexpect = { checksum_equals_baseline = true }\n");
        assert_eq!(
            message,
            "check `a` compares checksums but names no `tables`"
        );
        let (message, _, _) = invalid(
            "[[checks]]\nname = \"a\"\nsql = \"x\"\nexpect = { min = 1 }\n[[checks]]\nname = \"a\"\nsql = \"x\"\nexpect = { max = 1 }\n",
        );
        assert_eq!(message, "two checks are named `a`");
        let (message, _, _) = invalid("[[checks]]\nname = \"a\"\nsql = \"x\"\nexpect = {}\n");
        assert_eq!(message, "check `a` expects nothing");
        let (message, _, _) =
            invalid("[[checks]]\nname = \"a\"\nsql = \"x\"\nexpect = { null_fraction_max = 5 }\n");
        assert!(message.contains("not between 0 and 1"), "{message}");
    }

    #[test]
    fn unknown_key_names_line_and_suggestion() {
        let (message, hint, at) = invalid("[safety]\nlock_timout = \"5s\"\n");
        assert_eq!(message, "unknown key `lock_timout` in ripcord.toml");
        assert_eq!(hint.as_deref(), Some("did you mean `lock_timeout`?"));
        assert_eq!(at.as_deref(), Some("ripcord.toml:2:1"));
        let (message, hint, _) = invalid("[targets.dev]\nurl_evn = \"X\"\n");
        assert_eq!(message, "unknown key `url_evn` in ripcord.toml");
        assert_eq!(hint.as_deref(), Some("did you mean `url_env`?"));
    }

    #[test]
    fn a_password_is_located_at_its_own_target() {
        let (message, _, at) = invalid(
            "[targets.dev]\nurl = \"sqlite://dev.db\"\n\n[targets.prod]\nurl = \"postgres://app:hunter2@db/shop\"\n",
        );
        assert_eq!(message, "target `prod` has a password in its url");
        assert_eq!(at.as_deref(), Some("ripcord.toml:5:8"));
    }

    #[test]
    fn passwords_in_the_file_are_refused_without_echoing_them() {
        let (message, hint, at) =
            invalid("[targets.prod]\nurl = \"postgres://app:hunter2@db/shop\"\n");
        assert_eq!(message, "target `prod` has a password in its url");
        assert!(hint.unwrap().contains("url_env = \"PROD_DATABASE_URL\""));
        assert_eq!(at.as_deref(), Some("ripcord.toml:2:8"));
    }

    #[test]
    fn targets_need_exactly_one_url_source() {
        assert_eq!(
            invalid("[targets.a]\n").0,
            "target `a` has neither `url` nor `url_env`"
        );
        assert_eq!(
            invalid("[targets.a]\nurl = \"sqlite://a\"\nurl_env = \"A\"\n").0,
            "target `a` sets both `url` and `url_env`"
        );
    }

    #[test]
    fn bad_durations_and_syntax_are_errors() {
        let (message, _, at) = invalid("[safety]\nlock_timeout = \"soon\"\n");
        assert!(message.contains("invalid duration `soon`"), "{message}");
        assert_eq!(at.as_deref(), Some("ripcord.toml:2:16"));
        assert!(invalid("[project\n").0.starts_with("invalid ripcord.toml"));
    }

    #[test]
    fn init_template_parses() {
        let config = parse(&init_template("shop", None, None)).unwrap();
        assert_eq!(config.project.default_target.as_deref(), Some("dev"));
        parse(&init_template("shop", None, Some("DATABASE_URL"))).unwrap();
    }

    const TWO: &str =
        "[targets.a]\nurl = \"sqlite://a.db\"\n[targets.b]\nurl = \"sqlite://b.db\"\n";

    #[test]
    fn fleets_probes_and_notify_are_checked_with_the_line() {
        let (message, hint, at) =
            invalid(&format!("{TWO}[fleets.prod]\ntargets = [\"a\", \"c\"]\n"));
        assert_eq!(message, "fleet `prod` names an unknown target `c`");
        assert!(hint.is_some());
        assert!(at.unwrap().contains(":6:"));
        let (message, ..) = invalid(&format!(
            "{TWO}[fleets.prod]\ntargets = [\"a\"]\nwaves = [[\"a\"], [\"b\"]]\n"
        ));
        assert_eq!(
            message,
            "a wave of fleet `prod` names `b`, which is not in the fleet"
        );
        let (message, ..) = invalid(&format!(
            "{TWO}[health]\nprobes = [{{ name = \"x\", sql = \"select 1\", http = \"http://h\", max = 1 }}]\n"
        ));
        assert_eq!(
            message,
            "probe `x` needs exactly one of sql, http, prometheus, command, check"
        );
        let (message, ..) = invalid(&format!(
            "{TWO}[health]\nprobes = [{{ name = \"x\", sql = \"select 1\" }}]\n"
        ));
        assert_eq!(message, "probe `x` has no bound");
        let (message, ..) = invalid(&format!(
            "{TWO}[health]\nprobes = [{{ name = \"x\", check = \"nope\" }}]\n"
        ));
        assert_eq!(message, "probe `x` names an unknown check `nope`");
        let (message, hint, _) = invalid(&format!(
            "{TWO}[[notify]]\nwebhook = \"http://h\"\non = [\"probe_faild\"]\n"
        ));
        assert_eq!(message, "[[notify]] names an unknown event `probe_faild`");
        assert_eq!(hint.as_deref(), Some("did you mean `probe_failed`?"));
        let (message, hint, _) = invalid(&format!(
            "{TWO}[health]\nprobes = [{{ name = \"x\", sql = \"select 1\", maxx = 1 }}]\n"
        ));
        assert_eq!(message, "unknown key `maxx` in ripcord.toml");
        assert_eq!(hint.as_deref(), Some("did you mean `max`?"));
        let config = parse(&format!(
            "{TWO}[fleets.prod]\ntargets = [\"a\", \"b\"]\non_failure = \"stop\"\n[health]\nwatch = \"30s\"\nprobes = [{{ name = \"p\", prometheus = \"http://p\", query = \"up\", min = 1, interval = \"5s\", failure_limit = 2 }}]\n"
        ))
        .unwrap();
        assert_eq!(config.fleets["prod"].on_failure, OnFailure::Stop);
        assert_eq!(config.health.probes[0].kind(), Some("prometheus"));
    }
}
