//! `[[notify]]`: rollout events sent to a webhook or a command, with a body rendered
//! from a minijinja template. A notification that fails is reported, never retried in
//! the way of a rollback.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use ripcord_core::config::NotifyConfig;

use crate::report::Event;

/// The default body: Slack-style JSON.
pub const DEFAULT_TEMPLATE: &str =
    r#"{"text": {{ ("ripcord rollout " ~ rollout ~ " (" ~ fleet ~ "): " ~ message) | tojson }}}"#;

/// Sends events to the configured receivers.
pub struct Notifier {
    receivers: Vec<NotifyConfig>,
}

impl Notifier {
    /// For `receivers` (from `[[notify]]`).
    pub fn new(receivers: Vec<NotifyConfig>) -> Notifier {
        Notifier { receivers }
    }

    /// Send `event` to every receiver that wants it; what failed, one line each.
    pub fn send(&self, event: &Event) -> Vec<String> {
        let mut failures = Vec::new();
        for receiver in &self.receivers {
            if !receiver.on.is_empty() && !receiver.on.iter().any(|k| k == event.kind) {
                continue;
            }
            let body = match render(
                receiver.template.as_deref().unwrap_or(DEFAULT_TEMPLATE),
                event,
            ) {
                Ok(body) => body,
                Err(e) => {
                    failures.push(format!("the [[notify]] template does not render: {e}"));
                    continue;
                }
            };
            let sent = match (&receiver.webhook, &receiver.command) {
                (Some(url), _) => post(url, "application/json", &body),
                (None, Some(command)) => run(command, &body),
                (None, None) => Ok(()),
            };
            if let Err(e) = sent {
                failures.push(e);
            }
        }
        failures
    }
}

/// Render `template` with the event's fields (`kind`, `rollout`, `fleet`, `target`,
/// `wave`, `message`, `detail`, `at`).
pub fn render(template: &str, event: &Event) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.add_template("body", template)
        .map_err(|e| e.to_string())?;
    env.get_template("body")
        .and_then(|t| t.render(minijinja::Value::from_serialize(event)))
        .map_err(|e| e.to_string())
}

/// POST `body` to `url` (5 s at most); an error names the URL without its password.
pub fn post(url: &str, content_type: &str, body: &str) -> Result<(), String> {
    let shown = ripcord_core::url::redact(url);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .post(url)
        .header("content-type", content_type)
        .send(body)
        .map_err(|e| format!("webhook {shown}: {e}"))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("webhook {shown} answered {status}"))
    }
}

fn run(command: &str, body: &str) -> Result<(), String> {
    let mut child = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run `{command}`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(body.as_bytes());
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{command}` exited {}",
            status.code().unwrap_or(-1)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_body_is_slack_json_with_the_message() {
        let event = Event {
            kind: "probe_failed",
            rollout: "r1".into(),
            fleet: "prod".into(),
            target: None,
            wave: Some(0),
            message: "probe \"errors\" failed: 7 > max 5".into(),
            detail: serde_json::json!({}),
            at: chrono::Utc::now(),
        };
        let body = render(DEFAULT_TEMPLATE, &event).unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json["text"],
            "ripcord rollout r1 (prod): probe \"errors\" failed: 7 > max 5"
        );
    }
}
