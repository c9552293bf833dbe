//! Health probes and their three-valued samples (as in Argo Rollouts' analysis): a
//! sample passes, fails (the value breaches a bound, a command exits non-zero), or is
//! inconclusive (a timeout, an error talking to the source, an empty Prometheus
//! vector, NaN, a value that is no number). Inconclusive never counts as healthy.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ripcord_core::SessionLimits;
use ripcord_core::config::{CheckConfig, HealthConfig, ProbeConfig};
use serde::Serialize;

/// A sample's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Healthy.
    Pass,
    /// A bound breached.
    Fail,
    /// Could not tell.
    Inconclusive,
}

/// One evaluation of one probe.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// The probe.
    pub probe: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// The value read, when one was.
    pub value: Option<f64>,
    /// The target it was read on, for SQL and check probes.
    pub target: Option<String>,
    /// What was seen, in words.
    pub message: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Where SQL and check probes run: the targets changed so far.
pub struct ProbeScope<'a> {
    /// `(name, url)` of each target changed so far.
    pub targets: &'a [(String, String)],
    /// Where relative SQLite paths are.
    pub base_dir: &'a std::path::Path,
    /// The project's checks, for `check` probes.
    pub checks: &'a [CheckConfig],
    /// Targets probed at once (the fleet's `max_parallel`).
    pub parallel: usize,
}

/// `sample` of every `(name, url)`, several at a time, in their order.
fn on_each(
    targets: &[(String, String)],
    parallel: usize,
    sample: impl Fn(&str, &str) -> Sample + Sync,
) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(targets.len());
    for chunk in targets.chunks(parallel.max(1)) {
        std::thread::scope(|scope| {
            let running: Vec<_> = chunk
                .iter()
                .map(|(name, url)| {
                    let sample = &sample;
                    scope.spawn(move || sample(name, url))
                })
                .collect();
            for thread in running {
                if let Ok(taken) = thread.join() {
                    samples.push(taken);
                }
            }
        });
    }
    samples
}

/// The settings of a probe with the health defaults applied.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between samples.
    pub interval: Duration,
    /// Consecutive failures allowed.
    pub failure_limit: u32,
    /// Consecutive inconclusive samples allowed.
    pub inconclusive_limit: u32,
    /// One sample's limit.
    pub timeout: Duration,
}

impl Timing {
    /// `probe`'s settings, else `health`'s, else the defaults.
    pub fn of(probe: &ProbeConfig, health: &HealthConfig) -> Timing {
        Timing {
            interval: probe
                .interval
                .or(health.interval)
                .map_or(Duration::from_secs(5), |d| d.0),
            failure_limit: probe.failure_limit.or(health.failure_limit).unwrap_or(0),
            inconclusive_limit: probe
                .inconclusive_limit
                .or(health.inconclusive_limit)
                .unwrap_or(1),
            timeout: probe
                .timeout
                .or(health.timeout)
                .map_or(Duration::from_secs(10), |d| d.0),
        }
    }
}

/// Why `value` breaches `probe`'s bounds, if it does.
pub fn breach(probe: &ProbeConfig, value: f64) -> Option<String> {
    if let Some(max) = probe.max
        && value > max
    {
        return Some(format!("{value} > max {max}"));
    }
    if let Some(min) = probe.min
        && value < min
    {
        return Some(format!("{value} < min {min}"));
    }
    if let Some(equals) = probe.equals
        && value != equals
    {
        return Some(format!("{value} ≠ {equals}"));
    }
    None
}

fn judged(probe: &ProbeConfig, value: f64, target: Option<String>, what: &str) -> Sample {
    if value.is_nan() {
        return sample(
            probe,
            Verdict::Inconclusive,
            None,
            target,
            format!("{what} is NaN"),
        );
    }
    match breach(probe, value) {
        Some(reason) => sample(probe, Verdict::Fail, Some(value), target, reason),
        None => sample(
            probe,
            Verdict::Pass,
            Some(value),
            target,
            format!("{what} = {value}"),
        ),
    }
}

fn sample(
    probe: &ProbeConfig,
    verdict: Verdict,
    value: Option<f64>,
    target: Option<String>,
    message: String,
) -> Sample {
    Sample {
        probe: probe.name.clone(),
        verdict,
        value,
        target,
        message,
        at: Utc::now(),
    }
}

/// Take one sample of `probe`: for SQL and check probes on the targets, the worst of
/// their samples (any failure fails; else any inconclusive is inconclusive).
pub fn take(probe: &ProbeConfig, timing: &Timing, scope: &ProbeScope<'_>) -> Sample {
    match probe.kind() {
        Some("sql") => {
            let on: Vec<(String, String)> = match probe_url(probe) {
                Ok(Some(url)) => vec![(ripcord_core::url::redact(&url), url)],
                Ok(None) => scope.targets.to_vec(),
                Err(message) => return sample(probe, Verdict::Inconclusive, None, None, message),
            };
            worst(
                probe,
                on_each(&on, scope.parallel, |name, url| {
                    sql(probe, timing, name, url, scope)
                })
                .into_iter(),
            )
        }
        Some("check") => worst(
            probe,
            on_each(scope.targets, scope.parallel, |name, url| {
                check(probe, name, url, scope)
            })
            .into_iter(),
        ),
        Some("http") => http(probe, timing),
        Some("prometheus") => prometheus(probe, timing),
        Some("command") => command(probe, timing, scope),
        _ => sample(
            probe,
            Verdict::Inconclusive,
            None,
            None,
            "the probe has no single kind".into(),
        ),
    }
}

fn probe_url(probe: &ProbeConfig) -> Result<Option<String>, String> {
    if let Some(url) = &probe.url {
        return Ok(Some(url.clone()));
    }
    match &probe.url_env {
        Some(variable) => std::env::var(variable)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(Some)
            .ok_or_else(|| format!("${variable} is not set")),
        None => Ok(None),
    }
}

fn worst(probe: &ProbeConfig, samples: impl Iterator<Item = Sample>) -> Sample {
    let samples: Vec<Sample> = samples.collect();
    if samples.is_empty() {
        return sample(
            probe,
            Verdict::Inconclusive,
            None,
            None,
            "no target to run on yet".into(),
        );
    }
    for verdict in [Verdict::Fail, Verdict::Inconclusive] {
        if let Some(found) = samples.iter().find(|s| s.verdict == verdict) {
            return found.clone();
        }
    }
    let mut first = samples[0].clone();
    if samples.len() > 1 {
        first.message = format!("{} (and {} more targets)", first.message, samples.len() - 1);
        first.target = None;
    }
    first
}

fn sql(
    probe: &ProbeConfig,
    timing: &Timing,
    name: &str,
    url: &str,
    scope: &ProbeScope<'_>,
) -> Sample {
    let target = Some(name.to_string());
    let mut connection = match ripcord::target::connect(name, url, scope.base_dir) {
        Ok(t) => t,
        Err(e) => return sample(probe, Verdict::Inconclusive, None, target, e.to_string()),
    };
    let limits = SessionLimits {
        lock_timeout: Some(timing.timeout),
        statement_timeout: Some(timing.timeout),
    };
    let query = probe.sql.as_deref().unwrap_or_default();
    let rows = connection
        .engine
        .begin(&limits)
        .and_then(|()| connection.engine.query_rows(query, 1));
    let _ = connection.engine.rollback();
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return sample(probe, Verdict::Inconclusive, None, target, e.to_string()),
    };
    let Some(value) = rows.rows.first().and_then(|r| r.first()) else {
        return sample(
            probe,
            Verdict::Inconclusive,
            None,
            target,
            "the query returned no row".into(),
        );
    };
    match number(value) {
        Some(v) => judged(probe, v, target, "the query"),
        None => sample(
            probe,
            Verdict::Inconclusive,
            None,
            target,
            format!("the query returned {value}, not a number"),
        ),
    }
}

fn number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn check(probe: &ProbeConfig, name: &str, url: &str, scope: &ProbeScope<'_>) -> Sample {
    let target = Some(name.to_string());
    let wanted = probe.check.as_deref().unwrap_or_default();
    let checks: Vec<CheckConfig> = scope
        .checks
        .iter()
        .filter(|c| c.name == wanted)
        .cloned()
        .collect();
    let mut connection = match ripcord::target::connect(name, url, scope.base_dir) {
        Ok(t) => t,
        Err(e) => return sample(probe, Verdict::Inconclusive, None, target, e.to_string()),
    };
    let options = ripcord::check::CheckOptions {
        no_default_baseline: true,
        ..Default::default()
    };
    match ripcord::check::run(&mut connection, &checks, &options) {
        Ok(report) => match report.checks.first() {
            Some(outcome) if outcome.error.is_some() => sample(
                probe,
                Verdict::Inconclusive,
                None,
                target,
                outcome.error.clone().unwrap_or_default(),
            ),
            Some(outcome) if !outcome.passed => sample(
                probe,
                Verdict::Fail,
                outcome.value.as_f64(),
                target,
                format!("check `{wanted}`: {}", outcome.reasons.join("; ")),
            ),
            Some(outcome) => sample(
                probe,
                Verdict::Pass,
                outcome.value.as_f64(),
                target,
                format!("check `{wanted}` passed"),
            ),
            None => sample(
                probe,
                Verdict::Inconclusive,
                None,
                target,
                format!("check `{wanted}` did not run"),
            ),
        },
        Err(e) => sample(probe, Verdict::Inconclusive, None, target, e.to_string()),
    }
}

fn agent(timing: &Timing) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timing.timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

fn http(probe: &ProbeConfig, timing: &Timing) -> Sample {
    let url = probe.http.as_deref().unwrap_or_default();
    let shown = ripcord_core::url::redact(url);
    let mut response = match agent(timing).get(url).call() {
        Ok(r) => r,
        Err(e) => {
            return sample(
                probe,
                Verdict::Inconclusive,
                None,
                None,
                format!("GET {shown}: {e}"),
            );
        }
    };
    let status = response.status().as_u16();
    if let Some(expected) = probe.status {
        let verdict = if status == expected {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        return sample(
            probe,
            verdict,
            Some(f64::from(status)),
            None,
            format!("GET {shown}: status {status} (expected {expected})"),
        );
    }
    let ok = (200..300).contains(&status);
    let Some(pointer) = &probe.json_pointer else {
        let verdict = if ok { Verdict::Pass } else { Verdict::Fail };
        return sample(
            probe,
            verdict,
            Some(f64::from(status)),
            None,
            format!("GET {shown}: status {status}"),
        );
    };
    if !ok {
        return sample(
            probe,
            Verdict::Inconclusive,
            None,
            None,
            format!("GET {shown}: status {status}"),
        );
    }
    let body: serde_json::Value = match response.body_mut().read_json() {
        Ok(b) => b,
        Err(e) => {
            return sample(
                probe,
                Verdict::Inconclusive,
                None,
                None,
                format!("GET {shown}: not JSON ({e})"),
            );
        }
    };
    match body.pointer(pointer).and_then(number) {
        Some(value) => judged(probe, value, None, pointer),
        None => sample(
            probe,
            Verdict::Inconclusive,
            None,
            None,
            format!("GET {shown}: no number at {pointer}"),
        ),
    }
}

fn prometheus(probe: &ProbeConfig, timing: &Timing) -> Sample {
    let base = probe
        .prometheus
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/');
    let query = probe.query.as_deref().unwrap_or_default();
    let shown = ripcord_core::url::redact(base);
    let inconclusive = |message: String| sample(probe, Verdict::Inconclusive, None, None, message);
    let mut response = match agent(timing)
        .get(format!("{base}/api/v1/query"))
        .query("query", query)
        .call()
    {
        Ok(r) => r,
        Err(e) => return inconclusive(format!("Prometheus {shown}: {e}")),
    };
    let status = response.status().as_u16();
    let body: serde_json::Value = match response.body_mut().read_json() {
        Ok(b) => b,
        Err(e) => {
            return inconclusive(format!(
                "Prometheus {shown}: status {status}, not JSON ({e})"
            ));
        }
    };
    if body["status"] != "success" {
        return inconclusive(format!(
            "Prometheus {shown}: {}",
            body["error"].as_str().unwrap_or("the query failed")
        ));
    }
    let data = &body["data"];
    let values: Vec<f64> = match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .filter_map(|s| s["value"][1].as_str().and_then(|v| v.parse().ok()))
                    .collect()
            })
            .unwrap_or_default(),
        Some("scalar") => data["result"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .into_iter()
            .collect(),
        other => {
            return inconclusive(format!(
                "Prometheus {shown}: result type {other:?} is not a vector or scalar"
            ));
        }
    };
    if values.is_empty() {
        return inconclusive(format!("Prometheus {shown}: the query returned no series"));
    }
    // The worst series decides: any breach fails, any NaN is inconclusive.
    let samples: Vec<Sample> = values
        .iter()
        .map(|v| judged(probe, *v, None, "the query"))
        .collect();
    worst(probe, samples.into_iter())
}

fn command(probe: &ProbeConfig, timing: &Timing, scope: &ProbeScope<'_>) -> Sample {
    let script = probe.command.as_deref().unwrap_or_default();
    let names: Vec<&str> = scope.targets.iter().map(|(n, _)| n.as_str()).collect();
    let child = Command::new("sh")
        .args(["-c", script])
        .env("RIPCORD_TARGETS", names.join(","))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return sample(
                probe,
                Verdict::Inconclusive,
                None,
                None,
                format!("cannot run `{script}`: {e}"),
            );
        }
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                let last = stderr.lines().last().unwrap_or_default().trim().to_string();
                return match status.code() {
                    Some(0) => sample(probe, Verdict::Pass, Some(0.0), None, "exit 0".into()),
                    Some(code) => sample(
                        probe,
                        Verdict::Fail,
                        Some(f64::from(code)),
                        None,
                        if last.is_empty() {
                            format!("exit {code}")
                        } else {
                            format!("exit {code}: {last}")
                        },
                    ),
                    None => sample(
                        probe,
                        Verdict::Inconclusive,
                        None,
                        None,
                        "killed by a signal".into(),
                    ),
                };
            }
            Ok(None) if started.elapsed() >= timing.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return sample(
                    probe,
                    Verdict::Inconclusive,
                    None,
                    None,
                    format!("no answer within {:?}", timing.timeout),
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return sample(probe, Verdict::Inconclusive, None, None, e.to_string()),
        }
    }
}

/// The outcome of watching the probes for a bake time.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Pass only if every probe stayed healthy and took the samples asked for.
    pub verdict: Verdict,
    /// Why it did not pass.
    pub reason: Option<String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

struct ProbeState<'a> {
    probe: &'a ProbeConfig,
    timing: Timing,
    wanted: u32,
    taken: u32,
    failures: u32,
    inconclusive: u32,
    next: Instant,
    last: Option<Verdict>,
}

/// Sample every probe of `health` for `watch`: at the start, every interval, and at the
/// end (one sample each when `watch` is zero). Stops at the first probe past its failure or inconclusive
/// limit. A probe that took fewer samples than the bake asked for (slow answers), or
/// whose last sample was not a pass, keeps the wave from counting as healthy.
pub fn watch(
    health: &HealthConfig,
    watch: Duration,
    scope: &ProbeScope<'_>,
    on_sample: &dyn Fn(&Sample),
) -> Watched {
    let started = Instant::now();
    let deadline = started + watch;
    let mut states: Vec<ProbeState<'_>> = health
        .probes
        .iter()
        .map(|probe| {
            let timing = Timing::of(probe, health);
            let interval = timing.interval.max(Duration::from_millis(1));
            let wanted = if watch.is_zero() {
                1
            } else {
                (watch.as_nanos() / interval.as_nanos()) as u32 + 1
            };
            ProbeState {
                probe,
                timing,
                wanted,
                taken: 0,
                failures: 0,
                inconclusive: 0,
                next: started,
                last: None,
            }
        })
        .collect();
    let mut samples = Vec::new();
    loop {
        // Samples are not taken late to make up the count: a watch whose samples were
        // slow ends with fewer, and says so.
        let in_time = Instant::now() <= deadline;
        let due = states
            .iter_mut()
            .filter(|s| s.taken == 0 || (in_time && s.next <= deadline))
            .min_by_key(|s| s.next);
        let Some(state) = due else { break };
        let now = Instant::now();
        if state.next > now {
            std::thread::sleep(state.next - now);
        }
        let sample = take(state.probe, &state.timing, scope);
        on_sample(&sample);
        state.taken += 1;
        state.next += state.timing.interval.max(Duration::from_millis(1));
        state.last = Some(sample.verdict);
        match sample.verdict {
            Verdict::Pass => {
                state.failures = 0;
                state.inconclusive = 0;
            }
            Verdict::Fail => {
                state.failures += 1;
                state.inconclusive = 0;
            }
            Verdict::Inconclusive => state.inconclusive += 1,
        }
        let message = sample.message.clone();
        samples.push(sample);
        if state.failures > state.timing.failure_limit {
            return Watched {
                verdict: Verdict::Fail,
                reason: Some(format!("probe `{}` failed: {message}", state.probe.name)),
                samples,
            };
        }
        if state.inconclusive > state.timing.inconclusive_limit {
            return Watched {
                verdict: Verdict::Inconclusive,
                reason: Some(format!(
                    "probe `{}` was inconclusive {} times in a row: {message}",
                    state.probe.name, state.inconclusive
                )),
                samples,
            };
        }
    }
    for state in &states {
        if state.taken < state.wanted {
            return Watched {
                verdict: Verdict::Inconclusive,
                reason: Some(format!(
                    "probe `{}` took {} of the {} samples the watch asked for",
                    state.probe.name, state.taken, state.wanted
                )),
                samples,
            };
        }
        match state.last {
            Some(Verdict::Fail) => {
                return Watched {
                    verdict: Verdict::Fail,
                    reason: Some(format!(
                        "probe `{}` was failing at the end of the watch",
                        state.probe.name
                    )),
                    samples,
                };
            }
            Some(Verdict::Inconclusive) => {
                return Watched {
                    verdict: Verdict::Inconclusive,
                    reason: Some(format!(
                        "probe `{}` was inconclusive at the end of the watch",
                        state.probe.name
                    )),
                    samples,
                };
            }
            _ => {}
        }
    }
    Watched {
        verdict: Verdict::Pass,
        reason: None,
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_core::config::DurationSetting;

    fn command_probe(name: &str, command: &str) -> ProbeConfig {
        ProbeConfig {
            name: name.into(),
            command: Some(command.into()),
            ..Default::default()
        }
    }

    fn health(probes: Vec<ProbeConfig>, interval_ms: u64, timeout_ms: u64) -> HealthConfig {
        HealthConfig {
            probes,
            interval: Some(DurationSetting(Duration::from_millis(interval_ms))),
            timeout: Some(DurationSetting(Duration::from_millis(timeout_ms))),
            ..Default::default()
        }
    }

    fn scope() -> ProbeScope<'static> {
        ProbeScope {
            targets: &[],
            base_dir: std::path::Path::new("."),
            checks: &[],
            parallel: 8,
        }
    }

    #[test]
    fn bounds_breach_as_written() {
        let probe = ProbeConfig {
            name: "p".into(),
            max: Some(5.0),
            min: Some(1.0),
            ..Default::default()
        };
        assert_eq!(breach(&probe, 7.0).as_deref(), Some("7 > max 5"));
        assert_eq!(breach(&probe, 0.0).as_deref(), Some("0 < min 1"));
        assert_eq!(breach(&probe, 3.0), None);
        assert_eq!(
            judged(&probe, f64::NAN, None, "x").verdict,
            Verdict::Inconclusive
        );
    }

    #[test]
    fn a_failure_within_the_limit_does_not_breach_when_the_probe_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("failed-once");
        // Fails the first time, passes afterwards.
        let script = format!(
            "if [ -e '{m}' ]; then exit 0; else touch '{m}'; exit 1; fi",
            m = marker.display()
        );
        let mut probe = command_probe("flaky", &script);
        probe.failure_limit = Some(1);
        let watched = watch(
            &health(vec![probe], 50, 2000),
            Duration::from_millis(200),
            &scope(),
            &|_| {},
        );
        assert_eq!(watched.verdict, Verdict::Pass, "{:?}", watched.reason);
        assert_eq!(watched.samples[0].verdict, Verdict::Fail);
        assert!(watched.samples.len() >= 4);
    }

    #[test]
    fn a_failure_past_the_limit_breaches_at_once() {
        let watched = watch(
            &health(
                vec![command_probe("down", "echo broken >&2; exit 3")],
                50,
                2000,
            ),
            Duration::from_secs(30),
            &scope(),
            &|_| {},
        );
        assert_eq!(watched.verdict, Verdict::Fail);
        assert_eq!(
            watched.samples.len(),
            1,
            "a breach does not wait for the watch to end"
        );
        assert_eq!(
            watched.reason.as_deref(),
            Some("probe `down` failed: exit 3: broken")
        );
    }

    #[test]
    fn a_timeout_is_inconclusive_never_a_pass() {
        let mut probe = command_probe("slow", "sleep 5");
        probe.inconclusive_limit = Some(0);
        let started = Instant::now();
        let watched = watch(
            &health(vec![probe], 50, 200),
            Duration::ZERO,
            &scope(),
            &|_| {},
        );
        assert_eq!(watched.verdict, Verdict::Inconclusive);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the timeout was not applied"
        );
        assert!(watched.reason.unwrap().contains("inconclusive"));
    }

    #[test]
    fn a_watch_with_fewer_samples_than_asked_is_not_healthy() {
        // Each sample takes 300 ms, so a 600 ms watch at 100 ms gets about 3 of 7.
        let probe = command_probe("sluggish", "sleep 0.3");
        let watched = watch(
            &health(vec![probe], 100, 2000),
            Duration::from_millis(600),
            &scope(),
            &|_| {},
        );
        assert_eq!(watched.verdict, Verdict::Inconclusive);
        assert!(watched.reason.unwrap().contains("of the 7 samples"));
    }

    #[test]
    fn without_a_watch_every_probe_is_sampled_once() {
        let watched = watch(
            &health(
                vec![command_probe("a", "true"), command_probe("b", "true")],
                5000,
                2000,
            ),
            Duration::ZERO,
            &scope(),
            &|_| {},
        );
        assert_eq!(watched.verdict, Verdict::Pass);
        assert_eq!(watched.samples.len(), 2);
    }
}
