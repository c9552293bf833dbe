//! `ripcord import`: other tools' migration directories turned into ripcord change
//! files, keeping their order, names and SQL as written (each file's header names the
//! source files). Layouts: sqitch, Flyway, golang-migrate, sqlx, goose, dbmate and
//! refinery. The only edit made to SQL is the removal of a script's own top-level
//! `BEGIN;` / `COMMIT;` lines (sqitch writes them), since ripcord runs each change in a
//! transaction of its own; the header says when it happened.

use std::path::{Path, PathBuf};

use ripcord_core::EngineKind;
use serde::Serialize;

use crate::error::OpError;

/// The layouts `import` reads.
pub const TOOLS: &[&str] = &[
    "sqitch",
    "flyway",
    "golang-migrate",
    "sqlx",
    "goose",
    "dbmate",
    "refinery",
    "pop",
];

/// One change read from the other tool's files.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    /// The change's name (the tool's, made safe for a file name).
    pub name: String,
    /// The source files, relative to the directory.
    pub sources: Vec<String>,
    /// Deploy SQL as written.
    pub deploy: String,
    /// Revert SQL as written, when the tool has one.
    pub revert: Option<String>,
    /// Verify SQL (sqitch).
    pub verify: Option<String>,
    /// Changes it requires, by imported name (sqitch).
    pub requires: Vec<String>,
    /// Runs outside a transaction.
    pub no_transaction: bool,
    /// What the importer noticed (removed BEGIN/COMMIT, conflicts, placeholders…).
    pub notes: Vec<String>,
}

/// What an import wrote (or would write).
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The tool.
    pub from: String,
    /// Files written, in order.
    pub written: Vec<String>,
    /// The changes, in order.
    pub changes: Vec<ImportedSummary>,
    /// Nothing was written.
    pub dry_run: bool,
}

/// One imported change in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedSummary {
    /// The change file's name.
    pub file: String,
    /// Where it came from.
    pub sources: Vec<String>,
    /// `author` (the tool had a down/revert), `ripcord` (ripcord writes it from the
    /// deploy section at deploy time), or `needed` (write one, or declare
    /// `irreversible:`).
    pub revert: &'static str,
    /// Why ripcord cannot write it, for `needed`.
    pub why: Option<String>,
    /// The importer's notes.
    pub notes: Vec<String>,
}

fn invalid(reason: String, hint: &str) -> OpError {
    OpError::Engine(ripcord_core::EngineError::Invalid {
        reason,
        hint: Some(hint.into()),
    })
}

fn read(dir: &Path, name: &str) -> Result<String, OpError> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).map_err(|e| {
        invalid(
            format!("cannot read {}: {e}", path.display()),
            "check the path",
        )
    })?;
    String::from_utf8(bytes).map_err(|_| {
        invalid(
            format!("{} is not UTF-8", path.display()),
            "convert it to UTF-8 (iconv -f latin1 -t utf-8) and import again",
        )
    })
}

fn files(dir: &Path) -> Result<Vec<String>, OpError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        invalid(
            format!("cannot read the directory {}: {e}", dir.display()),
            "give the directory that holds the other tool's migrations",
        )
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    names.sort();
    Ok(names)
}

/// A name safe for `<ID>_<slug>.sql` (and for any file or directory name): ASCII
/// letters, digits, `-` and `_`.
pub fn slug(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() { "change".into() } else { out }
}

/// Remove a script's own top-level `BEGIN;` and `COMMIT;` lines.
fn without_own_transaction(sql: &str, notes: &mut Vec<String>, what: &str) -> String {
    let is = |line: &str, words: &[&str]| {
        let l = line
            .trim()
            .trim_end_matches(';')
            .trim()
            .to_ascii_uppercase();
        words.contains(&l.as_str())
    };
    let lines: Vec<&str> = sql.split_inclusive('\n').collect();
    let begins = lines
        .iter()
        .filter(|l| is(l, &["BEGIN", "BEGIN TRANSACTION", "START TRANSACTION"]))
        .count();
    let commits = lines.iter().filter(|l| is(l, &["COMMIT", "END"])).count();
    if begins == 1 && commits == 1 {
        notes.push(format!(
            "its own BEGIN/COMMIT lines were removed from the {what} (ripcord runs each change in a transaction)"
        ));
        return lines
            .into_iter()
            .filter(|l| {
                !is(
                    l,
                    &[
                        "BEGIN",
                        "BEGIN TRANSACTION",
                        "START TRANSACTION",
                        "COMMIT",
                        "END",
                    ],
                )
            })
            .collect();
    }
    sql.to_string()
}

/// Read `dir` as laid out by `tool` (`dialect`: pop's file suffix to take).
pub fn read_layout(tool: &str, dir: &Path, dialect: &str) -> Result<Vec<Imported>, OpError> {
    let changes = match tool {
        "pop" => pop(dir, dialect)?,
        "sqitch" => sqitch(dir)?,
        "flyway" => flyway(dir, false)?,
        "refinery" => flyway(dir, true)?,
        "golang-migrate" | "sqlx" => up_down(dir, tool)?,
        "goose" => goose(dir)?,
        "dbmate" => dbmate(dir)?,
        other => {
            return Err(invalid(
                format!("ripcord cannot import from `{other}`"),
                &format!("--from one of: {}", TOOLS.join(", ")),
            ));
        }
    };
    if changes.is_empty() {
        return Err(invalid(
            format!("{} holds no {tool} migration", dir.display()),
            &format!(
                "ripcord looked for {}",
                match tool {
                    "sqitch" => "sqitch.plan with deploy/, revert/ and verify/",
                    "flyway" => "V<version>__<description>.sql (and U…, R…)",
                    "refinery" => "V<n>__<name>.sql and U<n>__<name>.sql",
                    "golang-migrate" => "<version>_<title>.up.sql and .down.sql",
                    "sqlx" => "<version>_<title>.sql or .up.sql/.down.sql",
                    "goose" => "<version>_<name>.sql with -- +goose Up",
                    "pop" => "<version>_<name>[.<dialect>].up.sql and .down.sql",
                    _ => "<version>_<name>.sql with -- migrate:up",
                }
            ),
        ));
    }
    Ok(changes)
}

fn sqitch(dir: &Path) -> Result<Vec<Imported>, OpError> {
    let plan = read(dir, "sqitch.plan")?;
    let mut changes: Vec<Imported> = Vec::new();
    for (number, line) in plan.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('%') || line.starts_with('#') {
            continue;
        }
        if line.starts_with('@') {
            continue; // a tag
        }
        let name = line.split_whitespace().next().unwrap_or_default();
        let deps = line
            .split_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(inside, _)| inside)
            .unwrap_or("");
        let mut requires = Vec::new();
        let mut notes = Vec::new();
        for dep in deps.split_whitespace() {
            match dep.strip_prefix('!') {
                Some(conflict) => notes.push(format!(
                    "sqitch conflicts with `{conflict}` (not enforced by ripcord)"
                )),
                None => requires.push(slug(dep)),
            }
        }
        // A reworked change (`name@tag` files) deploys the latest scripts.
        if changes.iter().any(|c| c.name == slug(name)) {
            return Err(invalid(
                format!("sqitch.plan line {}: `{name}` is reworked", number + 1),
                "import the project before the rework, or give the reworked change a name of its own",
            ));
        }
        let script = |kind: &str| -> Result<Option<String>, OpError> {
            let file = format!("{kind}/{name}.sql");
            if dir.join(&file).is_file() {
                Ok(Some(read(dir, &file)?))
            } else {
                Ok(None)
            }
        };
        let Some(deploy) = script("deploy")? else {
            return Err(invalid(
                format!("sqitch.plan names `{name}` but deploy/{name}.sql is missing"),
                "sqitch add writes deploy/, revert/ and verify/ scripts for each change",
            ));
        };
        let deploy = without_own_transaction(&deploy, &mut notes, "deploy script");
        let revert =
            script("revert")?.map(|r| without_own_transaction(&r, &mut notes, "revert script"));
        let verify =
            script("verify")?.map(|v| without_own_transaction(&v, &mut notes, "verify script"));
        let mut sources = vec![format!("deploy/{name}.sql")];
        if revert.is_some() {
            sources.push(format!("revert/{name}.sql"));
        }
        if verify.is_some() {
            sources.push(format!("verify/{name}.sql"));
        }
        changes.push(Imported {
            name: slug(name),
            sources,
            deploy,
            revert,
            verify,
            requires,
            no_transaction: false,
            notes,
        });
    }
    Ok(changes)
}

/// The checksum `tool` records for a migration file with this content: Flyway's CRC32
/// over the file's lines without their line breaks (a BOM dropped), as a signed 32-bit
/// number; sqlx's SHA-384 of the bytes, in hex.
pub fn tool_checksum(tool: &str, content: &str) -> String {
    if tool == "sqlx" {
        use sha2::Digest;
        return sha2::Sha384::digest(content.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    }
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut crc = crc32fast::Hasher::new();
    // Java's readLine ends a line at \n, \r or \r\n.
    for line in content.split('\n') {
        for part in line.split('\r') {
            crc.update(part.as_bytes());
        }
    }
    (crc.finalize() as i32).to_string()
}

/// `1.10.2` → `[1, 10, 2]`, for numeric order (`_` separates like `.`).
fn version_key(version: &str) -> Option<Vec<u64>> {
    version
        .split(['.', '_'])
        .map(|part| part.parse().ok())
        .collect()
}

fn flyway(dir: &Path, refinery: bool) -> Result<Vec<Imported>, OpError> {
    let tool = if refinery { "refinery" } else { "flyway" };
    let mut versioned: Vec<(Vec<u64>, String, String)> = Vec::new(); // key, description, file
    let mut undo: Vec<(Vec<u64>, String)> = Vec::new();
    for file in files(dir)? {
        let Some(stem) = file.strip_suffix(".sql") else {
            continue;
        };
        let Some((head, description)) = stem.split_once("__") else {
            continue;
        };
        let (kind, version) = head.split_at(head.len().min(1));
        let key = || {
            version_key(version).ok_or_else(|| {
                invalid(
                    format!("{file}: `{version}` is not a version"),
                    &format!("{tool} names files {kind}<version>__<description>.sql"),
                )
            })
        };
        match kind {
            // refinery's U files are unversioned migrations, not undo scripts.
            "V" | "U" if refinery => {
                versioned.push((key()?, description.to_string(), file.clone()))
            }
            "V" => versioned.push((key()?, description.to_string(), file.clone())),
            "U" => undo.push((key()?, file.clone())),
            "R" => {
                return Err(invalid(
                    format!("{file} is a repeatable migration, which ripcord does not import"),
                    "ripcord changes run once; turn it into a versioned migration (its current content) and re-import",
                ));
            }
            _ => {}
        }
    }
    versioned.sort_by(|a, b| a.0.cmp(&b.0));
    for pair in versioned.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(invalid(
                format!("{} and {} have the same version", pair[0].2, pair[1].2),
                &format!("{tool} needs each version once"),
            ));
        }
    }
    if let Some((_, file)) = undo
        .iter()
        .find(|(key, _)| !versioned.iter().any(|v| &v.0 == key))
    {
        return Err(invalid(
            format!("{file} undoes a version no V file has"),
            "remove it, or add the migration it undoes",
        ));
    }
    let mut changes = Vec::new();
    for (key, description, file) in versioned {
        let deploy = read(dir, &file)?;
        let mut notes = Vec::new();
        if deploy.contains("${") {
            notes.push(format!(
                "holds {tool} placeholders (`${{…}}`): ripcord runs the SQL as written; replace them"
            ));
        }
        let mut sources = vec![file.clone()];
        let revert = match undo.iter().find(|(k, _)| k == &key) {
            Some((_, undo_file)) => {
                sources.push(undo_file.clone());
                Some(read(dir, undo_file)?)
            }
            None => None,
        };
        changes.push(Imported {
            name: slug(&description),
            sources,
            deploy,
            revert,
            verify: None,
            requires: Vec::new(),
            no_transaction: false,
            notes,
        });
    }
    Ok(changes)
}

/// golang-migrate (`<v>_<title>.up.sql` / `.down.sql`) and sqlx (the same, or a single
/// `<v>_<title>.sql` without down).
fn up_down(dir: &Path, tool: &str) -> Result<Vec<Imported>, OpError> {
    let names = files(dir)?;
    let mut ups: Vec<(u64, String, String)> = Vec::new(); // version, title, file
    for file in &names {
        let (stem, is_up) = if let Some(s) = file.strip_suffix(".up.sql") {
            (s, true)
        } else if file.ends_with(".down.sql") {
            continue;
        } else if tool == "sqlx"
            && let Some(s) = file.strip_suffix(".sql")
        {
            (s, false)
        } else {
            continue;
        };
        let Some((version, title)) = stem.split_once('_') else {
            continue;
        };
        let Ok(number) = version.parse::<u64>() else {
            continue;
        };
        let _ = is_up;
        ups.push((number, title.to_string(), file.clone()));
    }
    ups.sort();
    for pair in ups.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(invalid(
                format!("{} and {} have the same version", pair[0].2, pair[1].2),
                &format!("{tool} needs each version once"),
            ));
        }
    }
    for file in names.iter().filter(|f| f.ends_with(".down.sql")) {
        let stem = file.trim_end_matches(".down.sql");
        if !names.contains(&format!("{stem}.up.sql")) {
            return Err(invalid(
                format!("{file} has no {stem}.up.sql"),
                "a down migration undoes an up migration of the same version and title",
            ));
        }
    }
    let mut changes = Vec::new();
    for (_, title, file) in ups {
        let down = file.replace(".up.sql", ".down.sql");
        let has_down = file.ends_with(".up.sql") && names.contains(&down);
        let mut sources = vec![file.clone()];
        let revert = if has_down {
            sources.push(down.clone());
            Some(read(dir, &down)?)
        } else {
            None
        };
        changes.push(Imported {
            name: slug(&title),
            sources,
            deploy: read(dir, &file)?,
            revert,
            verify: None,
            requires: Vec::new(),
            no_transaction: false,
            notes: Vec::new(),
        });
    }
    Ok(changes)
}

/// Split a file into up and down parts at marker comments; `(up, down)`.
fn split_markers(text: &str, up: &str, down: &str) -> Option<(String, Option<String>)> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let at = |marker: &str| {
        lines
            .iter()
            .position(|l| l.trim().to_ascii_lowercase().starts_with(marker))
    };
    let up_at = at(up)?;
    let down_at = at(down);
    let up_end = down_at.filter(|d| *d > up_at).unwrap_or(lines.len());
    let up_sql: String = lines[up_at + 1..up_end].concat();
    let down_sql = down_at.map(|d| {
        let end = if d < up_at { up_at } else { lines.len() };
        lines[d + 1..end].concat()
    });
    Some((up_sql, down_sql))
}

fn numbered(dir: &Path) -> Result<Vec<(u64, String, String)>, OpError> {
    let mut found = Vec::new();
    for file in files(dir)? {
        let Some(stem) = file.strip_suffix(".sql") else {
            continue;
        };
        let Some((version, name)) = stem.split_once('_') else {
            continue;
        };
        if let Ok(number) = version.parse::<u64>() {
            found.push((number, name.to_string(), file));
        }
    }
    found.sort();
    Ok(found)
}

fn goose(dir: &Path) -> Result<Vec<Imported>, OpError> {
    let mut changes = Vec::new();
    for file in files(dir)? {
        if file.ends_with(".go") {
            return Err(invalid(
                format!("{file} is a Go migration, which ripcord cannot import"),
                "rewrite it as a SQL migration (-- +goose Up / Down), or run it before adopting ripcord",
            ));
        }
    }
    for (_, name, file) in numbered(dir)? {
        let text = read(dir, &file)?;
        let Some((up, down)) = split_markers(&text, "-- +goose up", "-- +goose down") else {
            return Err(invalid(
                format!("{file} has no `-- +goose Up` line"),
                "goose SQL migrations start their up part with -- +goose Up",
            ));
        };
        let no_transaction = text
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case("-- +goose NO TRANSACTION"));
        let down = down.filter(|d| !d.trim().is_empty());
        changes.push(Imported {
            name: slug(&name),
            sources: vec![file.clone()],
            deploy: up,
            revert: down,
            verify: None,
            requires: Vec::new(),
            no_transaction,
            notes: Vec::new(),
        });
    }
    Ok(changes)
}

/// pop / fizz (as Ory Kratos lays them out): `<version>_<name>[.<dialect>].up.sql` and
/// `.down.sql`; files whose versions share their first 14 digits (one timestamp) are
/// one change, ups in file order and downs in reverse; files of other dialects are
/// left out; `.fizz` files are refused.
fn pop(dir: &Path, dialect: &str) -> Result<Vec<Imported>, OpError> {
    struct Part {
        version: String,
        name: String,
        up: bool,
        file: String,
    }
    let mut parts = Vec::new();
    for file in files(dir)? {
        if file.ends_with(".fizz") {
            return Err(invalid(
                format!("{file} is a fizz migration, which ripcord cannot import"),
                "generate its SQL (`soda generate sql`, or the SQL files pop writes for your dialect) and import those",
            ));
        }
        let (stem, up) = if let Some(s) = file.strip_suffix(".up.sql") {
            (s, true)
        } else if let Some(s) = file.strip_suffix(".down.sql") {
            (s, false)
        } else {
            continue;
        };
        let Some((version, rest)) = stem.split_once('_') else {
            continue;
        };
        if version.len() < 14 || !version.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let (name, file_dialect) = match rest.rsplit_once('.') {
            Some((name, d)) => (name, Some(d)),
            None => (rest, None),
        };
        if file_dialect.is_some_and(|d| d != dialect) {
            continue;
        }
        parts.push(Part {
            version: version.to_string(),
            name: name.to_string(),
            up,
            file,
        });
    }
    parts.sort_by(|a, b| (&a.version, &a.file).cmp(&(&b.version, &b.file)));
    let mut changes: Vec<Imported> = Vec::new();
    let mut group_of: Vec<String> = Vec::new();
    let mut downs: Vec<Vec<String>> = Vec::new();
    for part in &parts {
        let group = part.version[..14].to_string();
        let index = match group_of.iter().position(|g| g == &group) {
            Some(index) => index,
            None => {
                group_of.push(group);
                downs.push(Vec::new());
                changes.push(Imported {
                    name: slug(&part.name),
                    sources: Vec::new(),
                    deploy: String::new(),
                    revert: None,
                    verify: None,
                    requires: Vec::new(),
                    no_transaction: false,
                    notes: Vec::new(),
                });
                changes.len() - 1
            }
        };
        let sql = read(dir, &part.file)?;
        changes[index].sources.push(part.file.clone());
        if part.up {
            let deploy = &mut changes[index].deploy;
            if !deploy.is_empty() && !deploy.ends_with('\n') {
                deploy.push('\n');
            }
            deploy.push_str(&sql);
        } else {
            downs[index].push(sql);
        }
    }
    for (change, downs) in changes.iter_mut().zip(downs) {
        if change.deploy.trim().is_empty() {
            return Err(invalid(
                format!(
                    "{} has down files but no up file",
                    change.sources.join(", ")
                ),
                "a down migration undoes an up migration of the same version",
            ));
        }
        // Downs undo the parts newest first; empty down files say nothing to undo.
        let revert: String = downs
            .iter()
            .rev()
            .map(|d| {
                if d.ends_with('\n') || d.is_empty() {
                    d.clone()
                } else {
                    format!("{d}\n")
                }
            })
            .collect();
        if !revert.trim().is_empty() {
            change.revert = Some(revert);
        }
        if change.sources.len() > 2 {
            change.notes.push(format!(
                "{} files of one timestamp made one change",
                change.sources.len()
            ));
        }
    }
    Ok(changes)
}

fn dbmate(dir: &Path) -> Result<Vec<Imported>, OpError> {
    let mut changes = Vec::new();
    for (_, name, file) in numbered(dir)? {
        let text = read(dir, &file)?;
        let Some((up, down)) = split_markers(&text, "-- migrate:up", "-- migrate:down") else {
            return Err(invalid(
                format!("{file} has no `-- migrate:up` line"),
                "dbmate migrations start with -- migrate:up",
            ));
        };
        let no_transaction = text.lines().any(|l| {
            let l = l.trim().to_ascii_lowercase();
            l.starts_with("-- migrate:") && l.contains("transaction:false")
        });
        let down = down.filter(|d| !d.trim().is_empty());
        changes.push(Imported {
            name: slug(&name),
            sources: vec![file.clone()],
            deploy: up,
            revert: down,
            verify: None,
            requires: Vec::new(),
            no_transaction,
            notes: Vec::new(),
        });
    }
    Ok(changes)
}

/// The ripcord change file for `change`.
pub fn render(tool: &str, change: &Imported) -> String {
    let mut text = format!("-- imported from {tool}: {}\n", change.sources.join(", "));
    for note in &change.notes {
        text.push_str(&format!("-- note: {note}\n"));
    }
    if !change.requires.is_empty() {
        text.push_str(&format!("-- requires: {}\n", change.requires.join(", ")));
    }
    if change.no_transaction {
        text.push_str("-- transaction: none\n");
    }
    let section = |text: &mut String, marker: &str, sql: &str| {
        text.push_str(marker);
        text.push('\n');
        text.push_str(sql);
        if !sql.ends_with('\n') {
            text.push('\n');
        }
    };
    section(&mut text, "-- ripcord:deploy", &change.deploy);
    if let Some(revert) = &change.revert {
        section(&mut text, "-- ripcord:revert", revert);
    }
    if let Some(verify) = &change.verify {
        section(&mut text, "-- ripcord:verify", verify);
    }
    text
}

/// Import `dir` (laid out by `tool`) into `into`: one change file per migration, IDs
/// continuing after the changes already there. With `dry_run` nothing is written.
pub fn import(
    tool: &str,
    dir: &Path,
    into: &Path,
    engine: Option<EngineKind>,
    dialect: Option<&str>,
    dry_run: bool,
) -> Result<ImportReport, OpError> {
    let dialect = dialect.unwrap_or(match engine {
        Some(EngineKind::Sqlite) => "sqlite3",
        _ => "postgres",
    });
    let changes = read_layout(tool, dir, dialect)?;
    let existing = if into.is_dir() {
        files(into)?
    } else {
        Vec::new()
    };
    let first = existing
        .iter()
        .filter_map(|f| ripcord_core::change::parse_file_name(f))
        .filter_map(|(id, _)| id.as_str().parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let width = 4.max((first + changes.len() as u64).to_string().len());
    // Requirements name the imported files, which carry the ID prefix.
    let file_names: Vec<String> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{:0width$}_{}", first + i as u64, c.name))
        .collect();
    let mut written = Vec::new();
    let mut summaries = Vec::new();
    let mut planned: Vec<(PathBuf, String)> = Vec::new();
    for (change, file_stem) in changes.iter().zip(&file_names) {
        let mut change = change.clone();
        change.requires = change
            .requires
            .iter()
            .map(|r| {
                changes
                    .iter()
                    .position(|c| &c.name == r)
                    .map_or_else(|| r.clone(), |i| file_names[i].clone())
            })
            .collect();
        let text = render(tool, &change);
        let file = format!("{file_stem}.sql");
        let path = into.join(&file);
        if path.exists() {
            return Err(invalid(
                format!("{} exists already", path.display()),
                "import into an empty directory, or move the existing file",
            ));
        }
        let parsed = ripcord_core::change::parse_change(&path, &text).map_err(|e| {
            invalid(
                format!("{} would not be a valid change: {}", file, e.describe()),
                "fix the source migration and import again",
            )
        })?;
        let (revert, why) = if change.revert.is_some() {
            ("author", None)
        } else {
            match crate::vault::why_not_generated(&parsed, engine) {
                None => ("ripcord", None),
                Some(why) => ("needed", Some(why)),
            }
        };
        summaries.push(ImportedSummary {
            file: file.clone(),
            sources: change.sources.clone(),
            revert,
            why,
            notes: change.notes.clone(),
        });
        planned.push((path, text));
        written.push(file);
    }
    if !dry_run {
        std::fs::create_dir_all(into).map_err(|e| {
            invalid(
                format!("cannot create {}: {e}", into.display()),
                "check the path",
            )
        })?;
        for (path, text) in &planned {
            std::fs::write(path, text).map_err(|e| {
                invalid(
                    format!("cannot write {}: {e}", path.display()),
                    "check the path",
                )
            })?;
        }
    }
    Ok(ImportReport {
        from: tool.to_string(),
        written,
        changes: summaries,
        dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::tool_checksum;

    #[test]
    fn flyway_checksums_ignore_line_breaks_of_every_kind_and_a_bom() {
        // zlib.crc32(b"SELECT 1;SELECT 2;SELECT 3;"), as a signed 32-bit number.
        let expected = "1589608666";
        for text in [
            "SELECT 1;\nSELECT 2;\nSELECT 3;\n",
            "SELECT 1;\r\nSELECT 2;\r\nSELECT 3;",
            "\u{feff}SELECT 1;\rSELECT 2;\nSELECT 3;\r\n",
        ] {
            assert_eq!(tool_checksum("flyway", text), expected, "{text:?}");
        }
        assert_ne!(tool_checksum("flyway", "SELECT 1; SELECT 2;"), expected);
    }
}
