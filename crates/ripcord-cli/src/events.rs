//! Structured step events through `tracing`: with `--log-format json` each becomes one
//! JSON line on stderr with stable field names (docs/observe.md), written by a small
//! layer of our own so the names are ours and not a formatter's.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};

use crate::cli::LogFormat;

static JSON: AtomicBool = AtomicBool::new(false);

/// Whether step events are written as JSON lines (then progress lines that would mix
/// with them on stderr are left out).
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Install the event writer for `format`: JSON lines, or for `human` only the
/// warnings, as plain lines (none with `quiet`).
pub fn install(format: LogFormat, quiet: bool) {
    if format == LogFormat::Json {
        JSON.store(true, Ordering::Relaxed);
        let subscriber = tracing_subscriber::registry().with(JsonLines);
        let _ = tracing::subscriber::set_global_default(subscriber);
    } else if !quiet {
        let subscriber = tracing_subscriber::registry().with(Warnings);
        let _ = tracing::subscriber::set_global_default(subscriber);
    }
}

/// Writes warnings (a wait for a dead lock holder, …) as `ripcord: <message>` lines.
struct Warnings;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() > tracing::Level::WARN {
            return;
        }
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        if let Some(Value::String(message)) = fields.0.get("message") {
            let _ = writeln!(std::io::stderr().lock(), "ripcord: {message}");
        }
    }
}

/// One step of an operation ended: `op` on `target` (and `change`), with its outcome
/// (`success` or `failure`) and how long it took.
pub fn step(
    event: &str,
    op: &str,
    target: &str,
    change: Option<&str>,
    duration_ms: Option<u64>,
    outcome: &str,
    message: &str,
) {
    tracing::info!(
        event,
        op,
        target = target,
        change,
        duration_ms,
        outcome,
        "{message}"
    );
}

/// Writes each event as a JSON line on stderr.
struct JsonLines;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for JsonLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields(Map::new());
        fields.0.insert(
            "ts".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        fields.0.insert(
            "level".into(),
            Value::String(event.metadata().level().as_str().to_lowercase()),
        );
        event.record(&mut fields);
        let line = Value::Object(fields.0).to_string();
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

struct Fields(Map<String, Value>);

impl Fields {
    /// Empty text is left out; `detail` is JSON text, kept as JSON.
    fn text(&mut self, field: &Field, value: String) {
        if value.is_empty() {
            return;
        }
        let value = match field.name() {
            "detail" => serde_json::from_str(&value).unwrap_or(Value::String(value)),
            _ => Value::String(value),
        };
        self.0.insert(field.name().into(), value);
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }
}
