//! `ripcord serve`: which targets to show, then `ripcord-serve` until interrupted.

use std::io::Write as _;

use ripcord_core::url::redact;
use ripcord_serve::{ServeError, ServeOptions, ServedTarget};

use crate::cli::{GlobalArgs, ServeArgs};
use crate::error::{CommandError, Exit};
use crate::printer::Printer;
use crate::settings::{Project, named_target_url};

/// The environment variable holding the bearer token every request must carry.
pub const TOKEN_VAR: &str = "RIPCORD_SERVE_TOKEN";

/// `ripcord serve`: serve until interrupted (Ctrl-C).
pub fn serve(
    args: &ServeArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Exit, CommandError> {
    let project = Project::discover(global)?;
    let targets = served_targets(&project, args, global, printer)?;
    let plan = project.plan_if_any()?;
    let base_dir = project
        .config
        .as_ref()
        .map_or_else(|| std::path::PathBuf::from("."), |c| c.root.clone());
    if !args.listen.ip().is_loopback() {
        printer.warn(format!(
            "listening on {}: anyone who can reach this address can read the ledgers{}",
            args.listen,
            if std::env::var_os(TOKEN_VAR).is_some() {
                ""
            } else {
                "; set RIPCORD_SERVE_TOKEN to require a bearer token"
            }
        ));
    }
    let count = targets.len();
    let options = ServeOptions {
        listen: args.listen,
        targets,
        plan,
        project: project
            .config
            .as_ref()
            .map(|c| c.config.project.name.clone().unwrap_or_default()),
        base_dir,
        token: std::env::var(TOKEN_VAR).ok().filter(|t| !t.is_empty()),
        snapshot_store: Some((
            project
                .config
                .as_ref()
                .and_then(|c| c.config.snapshots.store.clone())
                .unwrap_or_else(|| "file://.ripcord/snapshots".into()),
            project
                .config
                .as_ref()
                .map_or_else(|| std::path::PathBuf::from("."), |c| c.root.clone()),
        )),
        trusted_keys: project
            .config
            .as_ref()
            .map(|c| c.config.audit.trusted_keys())
            .unwrap_or_default(),
        capture_sync_every: (args.capture_sync_every > 0)
            .then(|| std::time::Duration::from_secs(args.capture_sync_every)),
        max_retained_wal_bytes: crate::commands::max_retained_wal(&project)?,
    };
    let announce = |addr: std::net::SocketAddr| {
        // Scripts and tests read the address from this one line (port 0 picks one).
        let mut out = std::io::stdout();
        if printer.json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::json!({ "listening": format!("http://{addr}/"), "targets": count })
            );
        } else {
            let _ = writeln!(
                out,
                "ripcord serve: listening on http://{addr}/ ({count} targets; /api/targets, /metrics)"
            );
        }
        let _ = out.flush();
    };
    ripcord_serve::serve(options, announce).map_err(|e| match e {
        ServeError::Bind { addr, .. } => {
            CommandError::new(Exit::Usage, e.to_string()).hint(format!(
                "another process may use {addr}; pick another address with --listen 127.0.0.1:PORT"
            ))
        }
        ServeError::Io(_) => CommandError::new(Exit::Failed, e.to_string()),
    })?;
    Ok(Exit::Success)
}

/// `--fleet`'s members, else `--url`/`--target`, else every `[targets.*]`, else
/// RIPCORD_URL or DATABASE_URL. Nothing is connected here: a target that is down at
/// start is shown as unreachable and tried again at each request.
fn served_targets(
    project: &Project,
    args: &ServeArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> Result<Vec<ServedTarget>, CommandError> {
    if let Some(fleet) = &args.fleet {
        let (fleet, _) = crate::rollout::resolve(project, Some(fleet))?;
        return Ok(fleet
            .members()
            .map(|(_, m)| ServedTarget {
                name: m.name.clone(),
                url: m.url.clone(),
            })
            .collect());
    }
    if let Some(url) = &global.url {
        return Ok(vec![ServedTarget {
            name: redact(url),
            url: url.clone(),
        }]);
    }
    if let Some(name) = &global.target {
        let config = project.require_config()?;
        return Ok(vec![ServedTarget {
            name: name.clone(),
            url: named_target_url(config, name)?,
        }]);
    }
    if let Some(config) = &project.config
        && !config.config.targets.is_empty()
    {
        let mut targets = Vec::new();
        for name in config.config.targets.keys() {
            match named_target_url(config, name) {
                Ok(url) => targets.push(ServedTarget {
                    name: name.clone(),
                    url,
                }),
                Err(e) => printer.warn(format!("not serving target `{name}`: {}", e.message)),
            }
        }
        return Ok(targets);
    }
    for variable in ["RIPCORD_URL", "DATABASE_URL"] {
        if let Some(url) = std::env::var(variable)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            return Ok(vec![ServedTarget {
                name: redact(&url),
                url,
            }]);
        }
    }
    Err(CommandError::new(Exit::Usage, "no target to serve")
        .hint("add [targets.NAME] sections to ripcord.toml, or pass --url, --target or --fleet"))
}
