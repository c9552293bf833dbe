//! `ripcord baseline`: adopt a database another tool has already migrated, without
//! running anything. The changes the other tool applied (read from its own history
//! table) or the changes up to a named one are recorded as deployed in ripcord's ledger,
//! each with a `baselined` event in the audit chain; later changes deploy as usual.
//! Changes written by `ripcord import` say where they came from in their first line,
//! which is how a history row is matched to a change.

use ripcord_core::audit::NewEvent;
use ripcord_core::{Change, ChangeState, EngineError, Plan, SectionKind};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::OpError;
use crate::target::Target;

/// The tools whose history tables `baseline --from-tool` reads.
pub const TOOLS: &[&str] = &[
    "sqitch",
    "flyway",
    "golang-migrate",
    "goose",
    "dbmate",
    "sqlx",
];

/// What a baseline recorded.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    /// The target.
    pub target: String,
    /// Where the list came from: the tool, or `--up-to`.
    pub from: String,
    /// The changes recorded as deployed, in order.
    pub recorded: Vec<String>,
    /// Nothing was written.
    pub dry_run: bool,
}

fn invalid(reason: String, hint: &str) -> OpError {
    OpError::Engine(EngineError::Invalid {
        reason,
        hint: Some(hint.into()),
    })
}

/// The sources an imported change names on its first line, for `tool`.
fn sources(change: &Change, tool: &str) -> Vec<String> {
    let first = change.text.lines().next().unwrap_or_default();
    let prefix = format!("-- imported from {tool}: ");
    first
        .strip_prefix(&prefix)
        .map(|rest| rest.split(", ").map(String::from).collect())
        .unwrap_or_default()
}

/// The leading version number of a migration file name.
fn version_of(file: &str) -> Option<u64> {
    let digits: String = file.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn rows(
    target: &mut Target,
    sql: &str,
    table: &str,
    tool: &str,
) -> Result<Vec<Vec<Value>>, OpError> {
    target.engine.begin(&Default::default())?;
    let read = target.engine.query_rows(sql, 1_000_000);
    let _ = target.engine.rollback();
    read.map(|r| r.rows).map_err(|e| {
        invalid(
            format!("cannot read {tool}'s history table {table}: {e}"),
            "baseline reads the history the tool keeps in the target database; check --from-tool and the target",
        )
    })
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether the tool applied the change with these source files.
type Applied = dyn Fn(&[String]) -> bool;

/// The plan's changes `tool` applied to the target, in plan order.
fn applied_by_tool<'p>(
    target: &mut Target,
    plan: &'p Plan,
    tool: &str,
) -> Result<Vec<&'p Change>, OpError> {
    let imported: Vec<(&Change, Vec<String>)> = plan
        .changes()
        .iter()
        .map(|c| (c, sources(c, tool)))
        .filter(|(_, s)| !s.is_empty())
        .collect();
    if imported.is_empty() {
        return Err(invalid(
            format!("no change of the project was imported from {tool}"),
            &format!(
                "run `ripcord import --from {tool} DIR` first, or name the last applied change with --up-to"
            ),
        ));
    }
    // Checksums the tool recorded, by script (Flyway) or version (sqlx).
    let mut recorded: std::collections::HashMap<String, String> = Default::default();
    let matches: Box<Applied> = match tool {
        "sqitch" => {
            let names: Vec<String> = rows(
                target,
                "SELECT change FROM sqitch.changes ORDER BY committed_at",
                "sqitch.changes",
                tool,
            )?
            .iter()
            .map(|r| text(&r[0]))
            .collect();
            Box::new(move |s: &[String]| {
                s.first()
                    .is_some_and(|f| names.iter().any(|n| f == &format!("deploy/{n}.sql")))
            })
        }
        "flyway" => {
            let history = rows(
                target,
                "SELECT script, success, checksum FROM flyway_schema_history WHERE version IS NOT NULL ORDER BY installed_rank",
                "flyway_schema_history",
                tool,
            )?;
            if let Some(failed) = history.iter().find(|r| r[1] == Value::Bool(false)) {
                return Err(invalid(
                    format!(
                        "flyway_schema_history records a failed migration: {}",
                        text(&failed[0])
                    ),
                    "repair it with Flyway (flyway repair) before adopting the database",
                ));
            }
            let scripts: Vec<String> = history.iter().map(|r| text(&r[0])).collect();
            for row in &history {
                if row[2] != Value::Null {
                    recorded.insert(text(&row[0]), text(&row[2]));
                }
            }
            Box::new(move |s: &[String]| s.first().is_some_and(|f| scripts.contains(f)))
        }
        "golang-migrate" => {
            let state = rows(
                target,
                "SELECT version, dirty FROM schema_migrations",
                "schema_migrations",
                tool,
            )?;
            let Some(row) = state.first() else {
                return Ok(Vec::new());
            };
            if row[1] == Value::Bool(true) {
                return Err(invalid(
                    format!(
                        "golang-migrate's schema_migrations is dirty at version {}: a migration failed half-way",
                        text(&row[0])
                    ),
                    "fix the database and `migrate force VERSION` before adopting it",
                ));
            }
            let current = text(&row[0]).parse::<u64>().unwrap_or(0);
            Box::new(move |s: &[String]| {
                s.first()
                    .and_then(|f| version_of(f))
                    .is_some_and(|v| v <= current)
            })
        }
        "goose" => {
            let history = rows(
                target,
                "SELECT version_id, is_applied FROM goose_db_version ORDER BY id",
                "goose_db_version",
                tool,
            )?;
            let mut applied = std::collections::BTreeMap::new();
            for row in history {
                let version = text(&row[0]).parse::<u64>().unwrap_or(0);
                applied.insert(version, row[1] == Value::Bool(true));
            }
            Box::new(move |s: &[String]| {
                s.first()
                    .and_then(|f| version_of(f))
                    .is_some_and(|v| applied.get(&v) == Some(&true))
            })
        }
        "dbmate" | "sqlx" => {
            let (sql, table) = match (tool, target.engine.kind()) {
                ("dbmate", _) => (
                    "SELECT version, true, NULL FROM schema_migrations",
                    "schema_migrations",
                ),
                (_, ripcord_core::EngineKind::Sqlite) => (
                    "SELECT version, success, lower(hex(checksum)) FROM _sqlx_migrations",
                    "_sqlx_migrations",
                ),
                _ => (
                    "SELECT version, success, encode(checksum, 'hex') FROM _sqlx_migrations",
                    "_sqlx_migrations",
                ),
            };
            let history = rows(target, sql, table, tool)?;
            if let Some(failed) = history.iter().find(|r| r[1] == Value::Bool(false)) {
                return Err(invalid(
                    format!("{table} records a failed migration: {}", text(&failed[0])),
                    "repair it with the tool before adopting the database",
                ));
            }
            let versions: Vec<u64> = history
                .iter()
                .filter_map(|r| text(&r[0]).parse().ok())
                .collect();
            for row in &history {
                if row[2] != Value::Null {
                    recorded.insert(text(&row[0]), text(&row[2]));
                }
            }
            Box::new(move |s: &[String]| {
                s.first()
                    .and_then(|f| version_of(f))
                    .is_some_and(|v| versions.contains(&v))
            })
        }
        other => {
            return Err(invalid(
                format!("ripcord cannot read the history of `{other}`"),
                &format!("--from-tool one of: {}", TOOLS.join(", ")),
            ));
        }
    };
    let applied: Vec<&Change> = imported
        .iter()
        .filter(|(_, s)| matches(s))
        .map(|(c, _)| *c)
        .collect();
    // The tool's checksum proves it ran the very file that was imported.
    for change in &applied {
        let Some(file) = sources(change, tool).into_iter().next() else {
            continue;
        };
        let key = if tool == "sqlx" {
            version_of(&file).map_or(file.clone(), |v| v.to_string())
        } else {
            file.clone()
        };
        let Some(theirs) = recorded.get(&key) else {
            continue;
        };
        let body = &change.text[change.deploy.body.clone()];
        // The body starts with the marker line's break; the importer ends a section with
        // a line break the file may not have had.
        let deploy = body.strip_prefix('\n').unwrap_or(body);
        let candidates = [Some(deploy), deploy.strip_suffix('\n')];
        let ours: Vec<String> = candidates
            .iter()
            .flatten()
            .map(|sql| crate::import::tool_checksum(tool, sql))
            .collect();
        if !ours.contains(theirs) {
            return Err(invalid(
                format!(
                    "{tool} applied {file} with checksum {theirs}, but the deploy section of {} has checksum {}",
                    change.name, ours[0]
                ),
                "the migration changed after the tool ran it; put back the SQL the database ran, or baseline with --up-to after checking the schema by hand",
            ));
        }
    }
    // What the tool applied must be where the project starts: no gap.
    let order: Vec<&str> = plan.changes().iter().map(|c| c.name.as_str()).collect();
    for (position, change) in applied.iter().enumerate() {
        if order.get(position) != Some(&change.name.as_str()) {
            let missing = order.get(position).copied().unwrap_or("?");
            return Err(invalid(
                format!(
                    "{tool} applied {} but not {missing}, which comes before it",
                    change.name
                ),
                "the history and the files disagree; baseline up to the last change applied in order with --up-to",
            ));
        }
    }
    Ok(applied)
}

/// What the database already has: `(where the list came from, the changes, the next
/// deploy order)`. Reads only.
fn choose<'p>(
    target: &mut Target,
    plan: &'p Plan,
    from_tool: Option<&str>,
    up_to: Option<&str>,
) -> Result<(String, Vec<&'p Change>, i64), OpError> {
    let scoped = crate::scope::scoped(target, plan)?;
    if scoped.mine.iter().any(|d| d.state == ChangeState::Deployed) {
        return Err(invalid(
            format!(
                "{} already has changes of this project in its ripcord ledger",
                target.name
            ),
            "baseline adopts a database ripcord has not deployed to; `ripcord status` shows where it stands",
        ));
    }
    let next_seq = scoped.all.iter().map(|d| d.deploy_seq).max().unwrap_or(0) + 1;
    let (from, chosen) = match (from_tool, up_to) {
        (Some(tool), _) => (tool.to_string(), applied_by_tool(target, plan, tool)?),
        (None, Some(name)) => {
            let last = crate::error::resolve_change(plan, name)?;
            let upto: Vec<&Change> = plan
                .changes()
                .iter()
                .take_while(|c| c.name != last.name)
                .chain(std::iter::once(last))
                .collect();
            ("--up-to".to_string(), upto)
        }
        (None, None) => {
            return Err(invalid(
                "say which changes the database already has".into(),
                "--from-tool TOOL (read its history table) or --up-to CHANGE",
            ));
        }
    };
    Ok((from, chosen, next_seq))
}

/// Record the changes another tool applied (`from_tool`) or those up to `up_to` as
/// deployed, running nothing. With `dry_run` only reads (no ledger is created).
pub fn baseline(
    target: &mut Target,
    plan: &Plan,
    from_tool: Option<&str>,
    up_to: Option<&str>,
    dry_run: bool,
) -> Result<BaselineReport, OpError> {
    // Read first, without the lock (which creates the ledger): a refusal writes nothing.
    let (from, chosen, _) = choose(target, plan, from_tool, up_to)?;
    if dry_run {
        return Ok(BaselineReport {
            target: target.name.clone(),
            from,
            recorded: chosen.iter().map(|c| c.name.clone()).collect(),
            dry_run,
        });
    }
    crate::run::with_lock(target, "baseline", |target| {
        let (from, chosen, mut seq) = choose(target, plan, from_tool, up_to)?;
        let recorded: Vec<String> = chosen.iter().map(|c| c.name.clone()).collect();
        let limits = target.limits;
        target.engine.begin(&limits)?;
        let written = (|| {
            for change in &chosen {
                let row = crate::deploy::ledger_row(
                    change,
                    seq,
                    target,
                    ChangeState::Deployed,
                    change.deploy.statements.len(),
                    0,
                );
                seq += 1;
                target.engine.put_change(&row)?;
                crate::run::append_event(
                    target,
                    NewEvent {
                        kind: "baselined",
                        change: Some(change.name.clone()),
                        detail: json!({
                            "checksum": change.checksum,
                            "ledger": row.definition_checksum(),
                            "project": row.project,
                            "from": from,
                            "has_revert": change.section_sql(SectionKind::Revert).is_some(),
                        }),
                    },
                )?;
            }
            Ok::<(), OpError>(())
        })();
        match written {
            Ok(()) => target.engine.commit()?,
            Err(e) => {
                let _ = target.engine.rollback();
                return Err(e);
            }
        }
        Ok(BaselineReport {
            target: target.name.clone(),
            from,
            recorded,
            dry_run,
        })
    })
}
