//! Checks (DESIGN §5.7): queries with expectations, run on demand (`ripcord check`)
//! and as gates around deploy and revert. Each check measures something — a value, the
//! rows of an invariant, a column's distribution, tables' checksums — and its
//! expectations judge the measure, some against a baseline saved earlier in the ledger.
//!
//! Queries run in a transaction that is rolled back, one check at a time, so a check
//! that fails with a database error is a failed check, not a crash. Distribution checks
//! over the same query share one scan.

use std::collections::BTreeMap;

use chrono::Utc;
use ripcord_core::config::{CheckConfig, CheckSeverity, Expectation};
use ripcord_core::vault::identifier_value;
use ripcord_core::{Baseline, EngineError};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::OpError;
use crate::target::Target;

/// Rows of an invariant shown in a report.
const SAMPLE_ROWS: usize = 5;

/// What to run the checks for.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Save what the checks measure as a baseline of this name.
    pub save_baseline: Option<String>,
    /// Compare with this baseline (default: the latest saved, unless
    /// `no_default_baseline`).
    pub against: Option<BaselineRef>,
    /// Without `against`, compare with no baseline (gates: only the baseline saved for
    /// that deploy is meaningful).
    pub no_default_baseline: bool,
    /// Only checks about these tables (and checks about no table in particular).
    pub touching: Option<Vec<String>>,
    /// Only checks that compare with a baseline (to save one before a deploy).
    pub only_baseline_checks: bool,
    /// The changes a saved baseline comes before (recorded in its audit event, so that
    /// reverting them can compare with it).
    pub before_changes: Vec<String>,
}

/// A baseline by name, and version (latest when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineRef {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: Option<i64>,
}

impl BaselineRef {
    /// `name` or `name@version`.
    pub fn parse(text: &str) -> BaselineRef {
        match text.rsplit_once('@') {
            Some((name, version)) if version.parse::<i64>().is_ok() => BaselineRef {
                name: name.to_string(),
                version: version.parse().ok(),
            },
            _ => BaselineRef {
                name: text.to_string(),
                version: None,
            },
        }
    }
}

impl std::fmt::Display for BaselineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    /// The check.
    pub name: String,
    /// What it measured (a value, a row count, a distribution, tables' checksums).
    pub value: Value,
    /// Its expectations.
    pub expect: Expectation,
    /// Every expectation holds.
    pub passed: bool,
    /// `error` or `warn`.
    pub severity: CheckSeverity,
    /// Why it failed, in words.
    pub reasons: Vec<String>,
    /// The database's error, when its query failed.
    pub error: Option<String>,
    /// Expectations that could not be judged (no baseline), with why.
    pub skipped: Option<String>,
    /// What the baseline measured, for expectations that compare with one.
    pub baseline: Option<Value>,
    /// Rows an invariant found (the first few).
    pub sample: Vec<Value>,
}

/// The result of a check run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Target name.
    pub target: String,
    /// One entry per check run.
    pub checks: Vec<CheckOutcome>,
    /// No error-severity check failed.
    pub passed: bool,
    /// The baseline compared with.
    pub against: Option<BaselineRef>,
    /// The baseline saved by this run.
    pub saved: Option<BaselineRef>,
}

impl CheckReport {
    /// The error-severity checks that failed.
    pub fn failures(&self) -> Vec<&CheckOutcome> {
        self.checks
            .iter()
            .filter(|c| !c.passed && c.severity == CheckSeverity::Error)
            .collect()
    }
}

/// A saved baseline, for listings.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineSummary {
    /// Name and version.
    pub name: String,
    /// Version.
    pub version: i64,
    /// When.
    pub created_at: chrono::DateTime<Utc>,
    /// Who.
    pub created_by: String,
    /// The checks it holds measures of.
    pub checks: Vec<String>,
}

/// Every saved baseline, oldest first.
pub fn list_baselines(target: &mut Target) -> Result<Vec<BaselineSummary>, OpError> {
    Ok(target
        .engine
        .baselines()?
        .into_iter()
        .map(|b| BaselineSummary {
            checks: b
                .measures
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            name: b.name,
            version: b.version,
            created_at: b.created_at,
            created_by: b.created_by,
        })
        .collect())
}

/// The baseline `reference` names (latest version when none is given).
fn find_baseline(baselines: &[Baseline], reference: &BaselineRef) -> Option<Baseline> {
    baselines
        .iter()
        .filter(|b| b.name == reference.name)
        .filter(|b| reference.version.is_none_or(|v| v == b.version))
        .max_by_key(|b| b.version)
        .cloned()
}

/// Does `check` concern one of `tables`? Checks naming no table concern every change.
pub(crate) fn concerns(check: &CheckConfig, tables: &[String]) -> bool {
    let short = |name: &str| {
        name.rsplit('.')
            .next()
            .map(identifier_value)
            .unwrap_or_default()
    };
    check.tables.is_empty()
        || check
            .tables
            .iter()
            .any(|t| tables.iter().any(|u| short(t) == short(u)))
}

/// What one check measured: the value stored in a baseline, and what the report shows.
#[derive(Debug, Clone)]
struct Measured {
    measure: Value,
    shown: Value,
    sample: Vec<Value>,
}

/// Run `checks` on `target` as `options` say. Saving a baseline takes the target's lock
/// and records an audit event; a plain run writes nothing.
pub fn run(
    target: &mut Target,
    checks: &[CheckConfig],
    options: &CheckOptions,
) -> Result<CheckReport, OpError> {
    match &options.save_baseline {
        Some(_) => crate::run::with_lock(target, "check", |target| {
            run_locked(target, checks, options)
        }),
        None => run_locked(target, checks, options),
    }
}

/// [`run`] inside a lock the caller holds (deploy's and revert's gates).
pub(crate) fn run_locked(
    target: &mut Target,
    checks: &[CheckConfig],
    options: &CheckOptions,
) -> Result<CheckReport, OpError> {
    let selected: Vec<&CheckConfig> = checks
        .iter()
        .filter(|c| options.touching.as_ref().is_none_or(|t| concerns(c, t)))
        .filter(|c| !options.only_baseline_checks || c.expect.needs_baseline())
        .collect();
    let baselines = target.engine.baselines()?;
    let against = match &options.against {
        Some(reference) => Some(find_baseline(&baselines, reference).ok_or_else(|| {
            OpError::UnknownBaseline {
                name: reference.to_string(),
                known: baselines
                    .iter()
                    .map(|b| format!("{}@{}", b.name, b.version))
                    .collect(),
            }
        })?),
        None if options.save_baseline.is_none() && !options.no_default_baseline => baselines
            .iter()
            .max_by_key(|b| (b.created_at, b.version))
            .cloned(),
        None => None,
    };
    let measured = measure_all(target, &selected)?;
    let mut outcomes = Vec::new();
    for check in &selected {
        let outcome = match measured.get(&check.name) {
            Some(Ok(measured)) => judge(check, measured, against.as_ref()),
            Some(Err(error)) => failed_query(check, error),
            None => failed_query(check, "not measured"),
        };
        outcomes.push(outcome);
    }
    let mut saved = None;
    if let Some(name) = &options.save_baseline {
        let version = baselines
            .iter()
            .filter(|b| b.name == *name)
            .map(|b| b.version)
            .max()
            .unwrap_or(0)
            + 1;
        let mut measures = serde_json::Map::new();
        for (check, result) in &measured {
            if let Ok(m) = result {
                measures.insert(check.clone(), m.measure.clone());
            }
        }
        let baseline = Baseline {
            name: name.clone(),
            version,
            created_at: Utc::now(),
            created_by: target.identity.actor.clone(),
            measures: Value::Object(measures),
        };
        save(target, &baseline, &options.before_changes)?;
        saved = Some(BaselineRef {
            name: name.clone(),
            version: Some(version),
        });
    }
    let passed = outcomes
        .iter()
        .all(|o| o.passed || o.severity == CheckSeverity::Warn);
    Ok(CheckReport {
        target: target.name.clone(),
        checks: outcomes,
        passed,
        against: against.map(|b| BaselineRef {
            name: b.name,
            version: Some(b.version),
        }),
        saved,
    })
}

fn save(target: &mut Target, baseline: &Baseline, before: &[String]) -> Result<(), OpError> {
    crate::run::in_transaction(target, |target| {
        target.engine.save_baseline(baseline)?;
        crate::run::append_event(
            target,
            ripcord_core::audit::NewEvent {
                kind: "baseline_saved",
                change: None,
                detail: json!({
                    "name": baseline.name,
                    "version": baseline.version,
                    "checks": baseline.measures.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()),
                    "before": before,
                }),
            },
        )?;
        Ok(())
    })
}

fn failed_query(check: &CheckConfig, error: &str) -> CheckOutcome {
    CheckOutcome {
        name: check.name.clone(),
        value: Value::Null,
        expect: check.expect.clone(),
        passed: false,
        severity: check.severity,
        reasons: vec![format!("its query failed: {error}")],
        error: Some(error.to_string()),
        skipped: None,
        baseline: None,
        sample: Vec::new(),
    }
}

/// Run `work` in a transaction that is rolled back: checks never change anything.
fn read_only<T>(
    target: &mut Target,
    work: impl FnOnce(&mut Target) -> Result<T, EngineError>,
) -> Result<Result<T, String>, OpError> {
    let limits = target.limits;
    target.engine.begin(&limits)?;
    let result = work(target);
    target.engine.rollback()?;
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(EngineError::Sql(error)) => Ok(Err(error.to_string())),
        Err(other) => Err(other.into()),
    }
}

/// Measure every check: value and invariant queries once per distinct SQL, the
/// distributions of all columns over one query in one call.
fn measure_all(
    target: &mut Target,
    checks: &[&CheckConfig],
) -> Result<BTreeMap<String, Result<Measured, String>>, OpError> {
    let mut out = BTreeMap::new();
    let mut rows_of: BTreeMap<String, Result<ripcord_core::QueryRows, String>> = BTreeMap::new();
    // (sql, explicit column?) -> columns asked
    let mut groups: BTreeMap<(String, bool), Vec<String>> = BTreeMap::new();
    for check in checks {
        if check.expect.on_distribution() {
            let sql = check.sql.clone().unwrap_or_default();
            let entry = groups.entry((sql, check.column.is_some())).or_default();
            if let Some(column) = &check.column
                && !entry.contains(column)
            {
                entry.push(column.clone());
            }
        }
    }
    let mut distributions: BTreeMap<(String, Option<String>), Result<Value, String>> =
        BTreeMap::new();
    for ((sql, explicit), columns) in groups {
        let result = read_only(target, |t| t.engine.distributions(&sql, &columns))?;
        match result {
            Ok(found) => {
                for (index, distribution) in found.into_iter().enumerate() {
                    let key = if explicit {
                        Some(columns[index].clone())
                    } else {
                        None
                    };
                    distributions.insert(
                        (sql.clone(), key),
                        Ok(serde_json::to_value(&distribution).expect("serializes")),
                    );
                }
                if !explicit && !distributions.contains_key(&(sql.clone(), None)) {
                    distributions
                        .insert((sql.clone(), None), Err("the query has no column".into()));
                }
            }
            Err(error) => {
                if explicit {
                    for column in &columns {
                        distributions
                            .insert((sql.clone(), Some(column.clone())), Err(error.clone()));
                    }
                } else {
                    distributions.insert((sql.clone(), None), Err(error));
                }
            }
        }
    }
    for check in checks {
        let measured = if check.expect.on_distribution() {
            let sql = check.sql.clone().unwrap_or_default();
            match distributions.get(&(sql, check.column.clone())) {
                Some(Ok(distribution)) => Ok(Measured {
                    measure: distribution.clone(),
                    shown: distribution.clone(),
                    sample: Vec::new(),
                }),
                Some(Err(error)) => Err(error.clone()),
                None => Err("not measured".into()),
            }
        } else if check.expect.checksum_equals_baseline == Some(true) {
            match read_only(target, |t| t.engine.table_data_of(&check.tables))? {
                Ok(tables) => {
                    let tables: serde_json::Map<String, Value> = tables
                        .into_iter()
                        .map(|(name, data)| (name, json!({ "rows": data.rows, "hash": data.hash })))
                        .collect();
                    if tables.is_empty() {
                        Err(format!("no table named {}", check.tables.join(", ")))
                    } else {
                        let value = json!({ "tables": tables });
                        Ok(Measured {
                            measure: value.clone(),
                            shown: value,
                            sample: Vec::new(),
                        })
                    }
                }
                Err(error) => Err(error),
            }
        } else {
            let sql = check.sql.clone().unwrap_or_default();
            if !rows_of.contains_key(&sql) {
                let result = read_only(target, |t| t.engine.query_rows(&sql, SAMPLE_ROWS))?;
                rows_of.insert(sql.clone(), result);
            }
            match &rows_of[&sql] {
                Ok(rows) if check.expect.zero_rows.is_some() => {
                    let sample = rows
                        .rows
                        .iter()
                        .map(|r| {
                            Value::Object(
                                rows.columns
                                    .iter()
                                    .cloned()
                                    .zip(r.iter().cloned())
                                    .collect(),
                            )
                        })
                        .collect();
                    Ok(Measured {
                        measure: json!({ "rows": rows.total }),
                        shown: json!(rows.total),
                        sample,
                    })
                }
                Ok(rows) => {
                    let value = rows
                        .rows
                        .first()
                        .and_then(|r| r.first())
                        .cloned()
                        .unwrap_or(Value::Null);
                    Ok(Measured {
                        measure: json!({ "value": value }),
                        shown: value,
                        sample: Vec::new(),
                    })
                }
                Err(error) => Err(error.clone()),
            }
        };
        out.insert(check.name.clone(), measured);
    }
    Ok(out)
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

/// `|actual - expected|` within `pct` percent of `expected` (0 must stay 0).
fn within_pct(actual: f64, expected: f64, pct: f64) -> bool {
    if expected == 0.0 {
        return actual == 0.0;
    }
    ((actual - expected) / expected).abs() * 100.0 <= pct + 1e-9
}

/// Judge one check's measure against its expectations (and the baseline's measure).
fn judge(check: &CheckConfig, measured: &Measured, baseline: Option<&Baseline>) -> CheckOutcome {
    let expect = &check.expect;
    let previous = baseline.and_then(|b| b.measures.get(&check.name)).cloned();
    let mut reasons = Vec::new();
    let mut skipped = None;
    if expect.needs_baseline() && previous.is_none() {
        skipped = Some(match baseline {
            Some(b) => format!(
                "baseline {}@{} has no measure of this check",
                b.name, b.version
            ),
            None => "no baseline saved yet (`ripcord check --save-baseline NAME`)".into(),
        });
    }
    let value = measured
        .measure
        .get("value")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(expected) = &expect.equals {
        let equal = match (as_number(&value), as_number(expected)) {
            (Some(a), Some(b)) if !value.is_string() || !expected.is_string() => a == b,
            _ => value == *expected,
        };
        if !equal {
            reasons.push(format!("value {} is not {}", show(&value), show(expected)));
        }
    }
    let bounds = [
        expect.min.map(|min| (min, f64::INFINITY)),
        expect.max.map(|max| (f64::NEG_INFINITY, max)),
        expect.between.map(|[low, high]| (low, high)),
    ];
    for (low, high) in bounds.into_iter().flatten() {
        match as_number(&value) {
            Some(n) if n < low => reasons.push(format!("value {n} is below {low}")),
            Some(n) if n > high => reasons.push(format!("value {n} is above {high}")),
            Some(_) => {}
            None => reasons.push(format!("value {} is not a number", show(&value))),
        }
    }
    if let (Some(pct), Some(previous)) = (expect.within_pct_of_baseline, &previous) {
        let before = previous.get("value").cloned().unwrap_or(Value::Null);
        match (as_number(&value), as_number(&before)) {
            (Some(now), Some(then)) if !within_pct(now, then, pct) => reasons.push(format!(
                "value {now} is not within {pct}% of the baseline's {then}"
            )),
            (Some(_), Some(_)) => {}
            _ => reasons.push(format!(
                "value {} or the baseline's {} is not a number",
                show(&value),
                show(&before)
            )),
        }
    }
    if expect.zero_rows == Some(true) {
        let rows = measured.measure["rows"].as_u64().unwrap_or(0);
        if rows > 0 {
            reasons.push(format!(
                "the query returned {rows} {} (expected none)",
                if rows == 1 { "row" } else { "rows" }
            ));
        }
    }
    if let (Some(true), Some(previous)) = (expect.checksum_equals_baseline, &previous) {
        let now = measured.measure["tables"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let then = previous["tables"].as_object().cloned().unwrap_or_default();
        for (table, before) in &then {
            match now.get(table) {
                None => reasons.push(format!("table {table} is gone")),
                Some(after) if after != before => reasons.push(format!(
                    "table {table}: {} (the baseline had {} rows, hash {})",
                    if after["rows"] == before["rows"] {
                        format!("contents differ ({} rows)", after["rows"])
                    } else {
                        format!("{} rows", after["rows"])
                    },
                    before["rows"],
                    before["hash"].as_str().unwrap_or_default()
                )),
                Some(_) => {}
            }
        }
        for table in now.keys().filter(|t| !then.contains_key(*t)) {
            reasons.push(format!("table {table} is not in the baseline"));
        }
    }
    if expect.on_distribution() {
        let now: ripcord_core::Distribution =
            serde_json::from_value(measured.measure.clone()).unwrap_or_default();
        let then: Option<ripcord_core::Distribution> = previous
            .as_ref()
            .and_then(|p| serde_json::from_value(p.clone()).ok());
        if let Some(max) = expect.null_fraction_max {
            let fraction = if now.rows == 0 {
                0.0
            } else {
                now.nulls as f64 / now.rows as f64
            };
            if fraction > max {
                reasons.push(format!(
                    "{:.4} of column {} is NULL ({} of {} rows), more than {max}",
                    fraction, now.column, now.nulls, now.rows
                ));
            }
        }
        if let (Some(pct), Some(then)) = (expect.distinct_count_within_pct, &then)
            && !within_pct(now.distinct as f64, then.distinct as f64, pct)
        {
            reasons.push(format!(
                "column {} has {} distinct values, not within {pct}% of the baseline's {}",
                now.column, now.distinct, then.distinct
            ));
        }
        if let (Some(pct), Some(then)) = (expect.quantiles_within_pct, &then) {
            for (label, a, b) in [("p50", now.p50, then.p50), ("p95", now.p95, then.p95)] {
                match (a, b) {
                    (Some(a), Some(b)) if !within_pct(a, b, pct) => reasons.push(format!(
                        "{label} of column {} is {a}, not within {pct}% of the baseline's {b}",
                        now.column
                    )),
                    (None, Some(b)) => reasons.push(format!(
                        "column {} has no values; the baseline's {label} was {b}",
                        now.column
                    )),
                    _ => {}
                }
            }
        }
    }
    CheckOutcome {
        name: check.name.clone(),
        value: measured.shown.clone(),
        expect: check.expect.clone(),
        passed: reasons.is_empty(),
        severity: check.severity,
        reasons,
        error: None,
        skipped,
        baseline: previous,
        sample: measured.sample.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expect: Expectation) -> CheckConfig {
        CheckConfig {
            name: "c".into(),
            sql: Some("select 1".into()),
            expect,
            tables: Vec::new(),
            severity: CheckSeverity::Error,
            column: None,
        }
    }

    fn value(v: Value) -> Measured {
        Measured {
            measure: json!({ "value": v }),
            shown: v,
            sample: Vec::new(),
        }
    }

    fn baseline(measure: Value) -> Baseline {
        Baseline {
            name: "b".into(),
            version: 1,
            created_at: Utc::now(),
            created_by: "t".into(),
            measures: json!({ "c": measure }),
        }
    }

    #[test]
    fn values_are_judged_by_their_expectations() {
        let equals = check(Expectation {
            equals: Some(json!(3)),
            ..Expectation::default()
        });
        assert!(judge(&equals, &value(json!(3)), None).passed);
        assert!(judge(&equals, &value(json!("3")), None).passed);
        let outcome = judge(&equals, &value(json!(4)), None);
        assert_eq!(outcome.reasons, vec!["value 4 is not 3"]);
        let text = check(Expectation {
            equals: Some(json!("open")),
            ..Expectation::default()
        });
        assert!(!judge(&text, &value(json!("closed")), None).passed);
        let bounds = check(Expectation {
            between: Some([1.0, 10.0]),
            max: Some(5.0),
            ..Expectation::default()
        });
        assert_eq!(
            judge(&bounds, &value(json!(7)), None).reasons,
            vec!["value 7 is above 5"]
        );
        assert_eq!(
            judge(&bounds, &value(Value::Null), None).reasons,
            vec!["value NULL is not a number", "value NULL is not a number"]
        );
    }

    #[test]
    fn baselines_bound_the_change() {
        let pct = check(Expectation {
            within_pct_of_baseline: Some(1.0),
            ..Expectation::default()
        });
        let before = baseline(json!({ "value": 1000 }));
        assert!(judge(&pct, &value(json!(1009)), Some(&before)).passed);
        let outcome = judge(&pct, &value(json!(1020)), Some(&before));
        assert_eq!(
            outcome.reasons,
            vec!["value 1020 is not within 1% of the baseline's 1000"]
        );
        let none = judge(&pct, &value(json!(5)), None);
        assert!(none.passed && none.skipped.is_some());
    }

    #[test]
    fn checks_concern_the_tables_they_name() {
        let mut c = check(Expectation::default());
        assert!(concerns(&c, &["x".into()]));
        c.tables = vec!["public.orders".into()];
        assert!(concerns(&c, &["orders".into()]));
        assert!(concerns(&c, &["\"orders\"".into()]));
        assert!(!concerns(&c, &["customers".into()]));
    }

    #[test]
    fn baseline_references_take_a_version() {
        assert_eq!(
            BaselineRef::parse("pre@3"),
            BaselineRef {
                name: "pre".into(),
                version: Some(3)
            }
        );
        assert_eq!(BaselineRef::parse("a@b").version, None);
    }
}
