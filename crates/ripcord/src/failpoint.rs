//! Named failpoints for crash-safety tests (DESIGN §7).
//!
//! `RIPCORD_FAILPOINT=nontx_statement_done#2` aborts the process (like `kill -9`: no
//! cleanup, open transactions die with the connection) the second time that point is
//! reached; `=sleep(3000)` pauses there instead. Several points are comma-separated.
//! Without the variable, [`hit`] costs one lookup of a cached empty list.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::env_vars::RIPCORD_FAILPOINT;

#[derive(Debug, Clone, PartialEq)]
enum Action {
    Abort,
    Sleep(Duration),
}

#[derive(Debug, Clone, PartialEq)]
struct Point {
    name: String,
    nth: usize,
    action: Action,
}

fn parse(spec: &str) -> Vec<Point> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|entry| {
            let (target, action) = entry.split_once('=').unwrap_or((entry, "abort"));
            let (name, nth) = target.split_once('#').unwrap_or((target, "1"));
            let action = action
                .trim()
                .strip_prefix("sleep(")
                .and_then(|rest| rest.strip_suffix(')'))
                .and_then(|ms| ms.parse().ok())
                .map_or(Action::Abort, |ms| Action::Sleep(Duration::from_millis(ms)));
            Point {
                name: name.trim().to_string(),
                nth: nth.trim().parse().unwrap_or(1),
                action,
            }
        })
        .collect()
}

fn points() -> &'static [Point] {
    static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var(RIPCORD_FAILPOINT)
            .map(|s| parse(&s))
            .unwrap_or_default()
    })
}

/// Mark that execution reached the failpoint `name`.
pub fn hit(name: &str) {
    let points = points();
    if points.is_empty() {
        return;
    }
    static COUNTS: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    let count = {
        let mut counts = COUNTS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(name.to_string()).or_default();
        *count += 1;
        *count
    };
    for point in points.iter().filter(|p| p.name == name && p.nth == count) {
        match point.action {
            Action::Abort => {
                eprintln!("ripcord: failpoint {name} reached, aborting");
                std::process::abort();
            }
            Action::Sleep(duration) => std::thread::sleep(duration),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_counts_and_actions() {
        assert_eq!(
            parse("a,b#3=sleep(250), c=abort"),
            vec![
                Point {
                    name: "a".into(),
                    nth: 1,
                    action: Action::Abort
                },
                Point {
                    name: "b".into(),
                    nth: 3,
                    action: Action::Sleep(Duration::from_millis(250))
                },
                Point {
                    name: "c".into(),
                    nth: 1,
                    action: Action::Abort
                },
            ]
        );
        assert!(parse("").is_empty());
    }
}
