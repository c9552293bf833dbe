//! (clap turns these doc comments into `--help`; fields and variants without one are self-explanatory.)
#![allow(missing_docs)]
//! The command line, as clap definitions only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// ripcord — every database change with a rehearsed, verified way back.
#[derive(Debug, Parser)]
#[command(name = "ripcord", version, about = "ripcord — every database change with a rehearsed, verified way back", long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 success · 1 the operation ran and failed · 2 usage, configuration or input error \
(nothing changed) · 3 another ripcord holds the target's lock · 4 a safety gate refused · 5 connection or engine error";

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Path of ripcord.toml (default: found in the current directory or its parents).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Target from ripcord.toml to work on.
    #[arg(long, global = true, value_name = "NAME")]
    pub target: Option<String>,
    /// Database URL of an ad-hoc target (postgres://… or sqlite://…); also RIPCORD_URL, then DATABASE_URL.
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Print one JSON document on stdout instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print each statement as it runs.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// `json`: one JSON line on stderr per step (each change deployed or reverted, each
    /// rollout step, each command's end), fields in docs/observe.md; `human`: none.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "RIPCORD_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// The format of structured step events on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// No event lines (the command's own human output).
    Human,
    /// JSON lines.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create ripcord.toml and changes/ in a directory.
    #[command(
        after_help = "Example:\n  ripcord init --engine postgres\n  ripcord init --url sqlite://dev.db my-project"
    )]
    Init(InitArgs),
    /// Create a new change file from a template.
    #[command(
        after_help = "Example:\n  ripcord new add_coupon --requires 0003_orders\n\nHeader lines a change file may carry (before `-- ripcord:deploy`):\n  -- requires: 0003_orders, 0004_users\n  -- transaction: none            statement by statement (CREATE INDEX CONCURRENTLY)\n  -- irreversible: <reason>       no revert, accepted by the author\n  -- flags: new_checkout          switched off before the revert runs\n  -- column-order: rebuild        a dropped column comes back in its place (PostgreSQL)"
    )]
    New(NewArgs),
    /// Read every deploy statement of change files and report its risks: lock, rewrite,
    /// destroyed data, reversibility class (exit 1 when a finding is an error).
    #[command(
        after_help = "Example:\n  ripcord lint\n  ripcord lint changes/0007_drop_legacy.sql --format sarif > lint.sarif\n  ripcord lint db/migration/V*.sql      # other tools' files: one deploy section each\n  ripcord lint --from goose db/migrations   # the up parts of another tool's layout\n\nAccept a finding on the next statement with a reason:\n  -- ripcord:allow ban-drop-column because nothing reads it since 0005"
    )]
    Lint(LintArgs),
    /// Pending changes of the target, each deploy statement with its reversibility
    /// class, lock, rewrite and the safety net deploy will use (nothing is changed).
    #[command(
        after_help = "Example:\n  ripcord plan\n  ripcord plan --to 0007_drop_legacy --snapshot --json"
    )]
    Plan(PlanArgs),
    /// A runbook for the pending deploy: each change's risk, locks and safety nets, the
    /// exact revert commands and revert SQL, what each revert brings back, the checks,
    /// probes and notifications around it, and a rough time from table sizes.
    #[command(
        after_help = "Example:\n  ripcord runbook > RUNBOOK.md\n  ripcord runbook --to 0007_drop_legacy --target prod\n  ripcord runbook --format json"
    )]
    Runbook(RunbookArgs),
    /// Show deployed, pending, modified and part-way changes of the target.
    #[command(after_help = "Example:\n  ripcord status --target prod\n  ripcord status --json")]
    Status,
    /// Apply pending changes: deploy + verify + ledger + audit, one transaction per change.
    #[command(
        after_help = "Example:\n  ripcord deploy --dry-run\n  ripcord deploy --to 0004_orders_status\n  ripcord deploy --snapshot\n  ripcord deploy --accept-irreversible 0007_drop_legacy\n  ripcord deploy --no-gate\n\nWith [[checks]] in ripcord.toml, deploy saves a baseline before the first change, runs\nthe checks after the last, and reverts this run's changes when an error-severity check\nfails (exit 1)."
    )]
    Deploy(DeployArgs),
    /// Revert deployed changes in reverse deploy order (default: the last one).
    #[command(
        visible_alias = "rollback",
        after_help = "Example:\n  ripcord revert --last 2 --dry-run\n  ripcord revert --to 0002_orders --yes"
    )]
    Revert(RevertArgs),
    /// Rehearse pending changes on a scratch database: deploy, revert, deploy again, and
    /// prove the revert restores schema (column order included) and data exactly (exit 1
    /// when one does not).
    #[command(
        after_help = "Example:\n  ripcord drill\n  ripcord drill --changes 0004..0006 --keep-going\n  ripcord drill --scratch postgres://ci@localhost/scratch --json\n\nAccept columns that a revert puts back elsewhere, in ripcord.toml:\n  [drill]\n  column_order = \"ignore\""
    )]
    Drill(DrillArgs),
    /// Print the target's fingerprint as drill computes it: a schema digest and, per
    /// table, row count and an order-independent content hash (computed in the database).
    #[command(
        after_help = "Example:\n  ripcord fingerprint --data-only\n  ripcord fingerprint --url postgres://ro@replica/shop --json"
    )]
    Fingerprint(FingerprintArgs),
    /// Run the `[[checks]]` of ripcord.toml: each query with its expectations, some
    /// against a saved baseline (exit 1 when an error-severity check fails).
    #[command(
        after_help = "Example:\n  ripcord check\n  ripcord check --save-baseline before-cleanup\n  ripcord check --against before-cleanup --json\n  ripcord check --list-baselines\n\nIn ripcord.toml:\n  [[checks]]\n  name = \"no negative totals\"\n  sql = \"select id from orders where total < 0\"\n  expect = { zero_rows = true }\n  tables = [\"orders\"]"
    )]
    Check(CheckArgs),
    /// Compare the rows of two databases table by table, by key: which rows were added,
    /// removed or changed, and in which columns (exit 1 when they differ).
    #[command(
        after_help = "Example:\n  ripcord diff prod staging\n  ripcord diff postgres://a@db/shop postgres://a@db/shop_restored --table orders\n  ripcord diff sqlite://before.db sqlite://after.db --key id --json\n  ripcord diff prod staging --table orders --sql > make-staging-equal.sql\n  ripcord diff 20261204T101500Z-3f2a1c prod      # a snapshot against the live database\n\nA and B are target names of ripcord.toml, database URLs of the same engine, or (one of\nthem) a snapshot id of the store."
    )]
    Diff(DiffArgs),
    /// Run the verify SQL of every deployed change (nothing is changed).
    #[command(after_help = "Example:\n  ripcord verify --target staging")]
    Verify,
    /// Show the deploy / revert history of the target.
    #[command(after_help = "Example:\n  ripcord log --json")]
    Log,
    /// Accept the edited file of a deployed change, recording why in the audit chain.
    #[command(
        after_help = "Example:\n  ripcord rehash 0003_orders --reason \"fixed a typo in the verify query\""
    )]
    Rehash(RehashArgs),
    /// Row-change capture on tables, so that one batch or a time range can be undone.
    #[command(subcommand)]
    Capture(CaptureCommand),
    /// Tagged loads: list them, run a loader under a tag, undo one.
    #[command(subcommand)]
    Batch(BatchCommand),
    /// Bring a captured table back to how it was at a moment (undoes every captured
    /// change after it, newest first, in one transaction).
    #[command(
        after_help = "Example:\n  ripcord flashback public.orders --to '2026-11-24 10:00:00+00' --dry-run"
    )]
    Flashback(FlashbackArgs),
    /// Consistent, verified table snapshots in a store (local or object storage), and
    /// restores of them.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Data that deployed changes destroyed, kept so that their revert can bring it
    /// back (PostgreSQL).
    #[command(subcommand)]
    Vault(VaultCommand),
    /// The tamper-evident audit chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Deploy pending changes across a fleet wave by wave, watch health probes after each
    /// wave, and revert every changed target (newest first) when a deploy fails or a
    /// probe breaches; `--atomic` commits on all targets or none (two-phase commit).
    #[command(
        after_help = "Example:\n  ripcord rollout --fleet prod --dry-run\n  ripcord rollout --fleet prod\n  ripcord rollout --fleet prod --atomic\n  ripcord rollout status --fleet prod\n  ripcord rollout --fleet prod --abort\n\nIn ripcord.toml:\n  [fleets.prod]\n  targets = [\"s1\", \"s2\", \"s3\"]\n  waves = [[\"s1\"], [\"s2\", \"s3\"]]\n\n  [health]\n  watch = \"30s\"\n  probes = [{ name = \"no negative totals\", sql = \"select count(*) from orders where total < 0\", max = 0 }]\n\nExit 1 when the rollout failed (and was rolled back) or paused; 3 when another rollout of the fleet runs; 4 when --atomic is refused; 5 when a target cannot be reached (nothing changed)."
    )]
    Rollout(RolloutArgs),
    /// Finish in-doubt two-phase-commit transactions of a fleet from the coordinator's
    /// decision record: commit where it decided to commit, roll back otherwise.
    #[command(after_help = "Example:\n  ripcord recover --fleet prod")]
    Recover(RecoverArgs),
    /// Feature flags kept in each target's ledger; a change's `-- flags:` header switches
    /// them off before its revert runs. Applications read them with one SELECT.
    #[command(
        subcommand,
        after_help = "Example:\n  ripcord flag set checkout_v2 on\n  ripcord flag set checkout_v2 off --fleet prod\n  ripcord flag get checkout_v2\n  ripcord flag list --json\n\nApplications: SELECT enabled FROM ripcord.flags WHERE name = 'checkout_v2' (SQLite: ripcord_flags)"
    )]
    Flag(FlagCommand),
    /// Serve a read-only JSON API (/api/), Prometheus metrics (/metrics) and a dashboard
    /// (/) over the ledgers of the project's targets, read at each request.
    #[command(
        after_help = "Example:\n  ripcord serve                          # every [targets.*], on 127.0.0.1:7878\n  ripcord serve --fleet prod --listen 0.0.0.0:7878\n  ripcord serve --target prod\n  RIPCORD_SERVE_TOKEN=s3cret ripcord serve   # every request needs `Authorization: Bearer s3cret`\n  ripcord serve --capture-sync-every 5        # drain logical capture slots every 5 s\n\nThen open http://127.0.0.1:7878/ or scrape http://127.0.0.1:7878/metrics."
    )]
    Serve(ServeArgs),
    /// Turn another tool's migrations into ripcord change files, keeping order, names
    /// and SQL; lists which changes have a revert, which ripcord can write one for, and
    /// which need one written.
    #[command(
        after_help = "Example:\n  ripcord import --from sqitch ../legacy-sqitch --dry-run\n  ripcord import --from flyway db/migration\n  ripcord import --from goose migrations --into changes/\n\nLayouts: sqitch (sqitch.plan, deploy/ revert/ verify/), flyway (V/U files; R refused),\ngolang-migrate and sqlx (<version>_<title>.up.sql/.down.sql; sqlx also single .sql files),\ngoose (-- +goose Up/Down, NO TRANSACTION), dbmate (-- migrate:up/down, transaction:false),\nrefinery (V and U files; U is unversioned, not undo), pop (<version>_<name>.<dialect>.up.sql/.down.sql,\nfiles of one timestamp grouped; --dialect picks the files; .fizz refused)."
    )]
    Import(ImportArgs),
    /// Adopt a database another tool already migrated: record the changes it applied
    /// (from its history table) or those up to a named one as deployed, running nothing.
    #[command(
        after_help = "Example:\n  ripcord import --from flyway db/migration && ripcord baseline --from-tool flyway --dry-run\n  ripcord baseline --from-tool golang-migrate\n  ripcord baseline --up-to 0042_add_index\n\nReads sqitch.changes, flyway_schema_history, schema_migrations (golang-migrate, dbmate),\ngoose_db_version or _sqlx_migrations; refuses a dirty golang-migrate state and failed rows."
    )]
    Baseline(BaselineArgs),
    /// Clear the target's lock when its holder is gone: a process of this host that no
    /// longer runs is cleared at once; a holder elsewhere only with --force.
    #[command(
        after_help = "Example:\n  ripcord unlock --target prod\n  ripcord unlock --force     # the holder ran on another host (or container) and is gone\n\nOn PostgreSQL --force ends the server session holding the lock, rolling back what it had\nnot committed. Exit 3 when the holder may still run and --force is not given."
    )]
    Unlock(UnlockArgs),
    /// Shell completions for bash, zsh, fish, elvish or PowerShell, on stdout.
    #[command(
        after_help = "Example:\n  ripcord completions bash > /etc/bash_completion.d/ripcord\n  ripcord completions zsh > \"${fpath[1]}/_ripcord\"\n  ripcord completions fish > ~/.config/fish/completions/ripcord.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The manual page (roff), on stdout.
    #[command(
        after_help = "Example:\n  ripcord man > /usr/local/share/man/man1/ripcord.1 && man ripcord"
    )]
    Man,
    /// A guided tour on a throwaway SQLite database; no server needed.
    #[command(after_help = "Example:\n  ripcord demo --keep")]
    Demo(DemoArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EngineChoice {
    Postgres,
    Sqlite,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to initialize (default: the current one).
    pub dir: Option<PathBuf>,
    /// Engine of the dev target.
    #[arg(long, value_enum)]
    pub engine: Option<EngineChoice>,
    /// Project name (default: the directory's name).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Short name for the change, e.g. add_coupon.
    pub slug: String,
    /// A change this one needs (repeatable).
    #[arg(long, value_name = "NAME")]
    pub requires: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// Diagnostics with the source highlighted.
    Human,
    /// One JSON document: findings with rule, severity, line and column.
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Change files, or other tools' SQL migrations (default: every change of the project);
    /// with --from, the other tool's migrations directory.
    pub files: Vec<PathBuf>,
    /// Read the directory as this tool lays it out (as `ripcord import` does) and lint
    /// the deploy (up) part of each migration, with its own file and line numbers.
    #[arg(long, value_name = "TOOL", value_parser = clap::builder::PossibleValuesParser::new(["sqitch", "flyway", "golang-migrate", "sqlx", "goose", "dbmate", "refinery", "pop"]))]
    pub from: Option<String>,
    /// With --from pop: the dialect suffix of the files to take (default: postgres).
    #[arg(long, value_name = "DIALECT", requires = "from")]
    pub dialect: Option<String>,
    /// Output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value = "human")]
    pub format: LintFormat,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Up to and including this change (name or ID).
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// Plan as for `deploy --snapshot`.
    #[arg(long)]
    pub snapshot: bool,
}

#[derive(Debug, Args)]
pub struct RunbookArgs {
    /// Up to and including this change (name or ID).
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// As for `deploy --snapshot`.
    #[arg(long)]
    pub snapshot: bool,
    /// Markdown, or JSON (as `--json`).
    #[arg(long, value_enum, default_value_t = RunbookFormat::Md)]
    pub format: RunbookFormat,
}

/// The runbook's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunbookFormat {
    /// Markdown.
    Md,
    /// JSON.
    Json,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Deploy up to and including this change (name or ID).
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// Print the SQL that would run; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Snapshot the existing tables the pending changes touch before running them.
    #[arg(long)]
    pub snapshot: bool,
    /// Deploy this change although it has no revert section (repeatable); the consent
    /// is recorded in the audit chain and the change cannot be reverted.
    #[arg(long, value_name = "CHANGE")]
    pub accept_irreversible: Vec<String>,
    /// Deploy without the gate of `[[checks]]` (no baseline, no checks afterwards, no
    /// automatic revert); recorded in the audit chain.
    #[arg(long)]
    pub no_gate: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Side A: a target name, a database URL, or a snapshot id.
    pub a: String,
    /// Side B: a target name, a database URL, or a snapshot id (added = in B only,
    /// removed = in A only).
    pub b: String,
    /// Only this table (repeatable; default: every table of either side).
    #[arg(long, value_name = "TABLE")]
    pub table: Vec<String>,
    /// The columns that identify a row, comma-separated (default: the primary key, else
    /// a unique index over NOT NULL columns).
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    pub key: Vec<String>,
    /// Rows listed per table (every difference is counted).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print the statements that make B equal A instead of the report.
    #[arg(long)]
    pub sql: bool,
    /// Where snapshot ids given as A or B are found.
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Save what the checks measure as a baseline of this name (a new version each time).
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,
    /// Compare with this baseline (`NAME` for its latest version, or `NAME@VERSION`;
    /// default: the latest baseline saved).
    #[arg(long, value_name = "NAME")]
    pub against: Option<String>,
    /// List the saved baselines instead of running the checks.
    #[arg(long, conflicts_with_all = ["save_baseline", "against"])]
    pub list_baselines: bool,
}

#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct RevertSelectionArgs {
    /// Keep this change deployed; revert everything deployed after it.
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// Revert the last N deployed changes.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Revert every deployed change.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct RevertArgs {
    #[command(flatten)]
    pub selection: RevertSelectionArgs,
    /// Print the SQL that would run; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// An empty database to rehearse in (default: a new `ripcord_drill_*` database on the
    /// target's server, or a temporary SQLite file, dropped afterwards).
    #[arg(long, value_name = "URL")]
    pub scratch: Option<String>,
    /// Start from a copy of the target's data (default: replay its deployed changes, then
    /// the `[drill] seed` script).
    #[arg(long)]
    pub from_target: bool,
    /// Only these pending changes: `A..B`, `A..`, `..B` or one name.
    #[arg(long, value_name = "A..B")]
    pub changes: Option<String>,
    /// Rehearse every change even after one fails, each from a state where the earlier
    /// changes are deployed; failures caused by an earlier undeployable change are told
    /// apart as knock-ons.
    #[arg(long)]
    pub keep_going: bool,
}

#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// Only the per-table data hashes.
    #[arg(long)]
    pub data_only: bool,
}

#[derive(Debug, Args)]
pub struct RehashArgs {
    /// The deployed change (name or ID).
    pub change: String,
    /// Why the deployed definition changes (recorded in the audit chain).
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Every event of the chain.
    #[command(after_help = "Example:\n  ripcord audit log --json")]
    Log,
    /// The events as JSON Lines (one event per line, with seq, hash, prev_hash and
    /// signature), for a SIEM or a log shipper; `--after` ships only what is new.
    #[command(
        after_help = "Example:\n  ripcord audit export --format jsonl > audit.jsonl\n  ripcord audit export --after 1200 | vector --config ship.toml"
    )]
    Export {
        /// Output format (JSON Lines is the one there is).
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Only events after this sequence number.
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        after: i64,
    },
    /// Recompute the chain and name the first broken link, then check every ledger row
    /// against the checksum the chain recorded for it (exit 1 when either is broken).
    #[command(
        after_help = "Example:\n  ripcord audit verify --target prod\n  ripcord audit verify --json\n  ripcord audit verify --checkpoint prod.checkpoint   # also: was a tail deleted, or history rewritten?"
    )]
    Verify {
        /// A checkpoint written by `audit checkpoint`: the chain must still hold its
        /// event with the same hash (and its signature must check against `[audit]
        /// public_key`).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<std::path::PathBuf>,
    },
    /// Print a new ed25519 key pair for signing events and checkpoints.
    #[command(
        after_help = "Example:\n  ripcord audit keygen --json\n\nPut private_key in the environment variable `[audit] signing_key_env` names (every event\nappended is then signed), and public_key in `[audit] public_key` where events and\ncheckpoints are verified."
    )]
    Keygen,
    /// Record in the chain that signing moves to a new key: an event naming the new
    /// public key, signed with the current one. Then swap the private key in the
    /// environment and move the old public key to `[audit] previous_public_keys`.
    #[command(
        after_help = "Example:\n  ripcord audit keygen --json > new-key.json\n  ripcord audit rotate-key --new-public-key \"$(jq -r .public_key new-key.json)\""
    )]
    RotateKey {
        /// The new key's public half (base64, from `audit keygen`).
        #[arg(long, value_name = "BASE64")]
        new_public_key: String,
    },
    /// Write the chain's head (sequence, hash, time) as a checkpoint to keep outside the
    /// database, signed when `[audit] signing_key_env` names a set variable.
    #[command(
        after_help = "Example:\n  ripcord audit checkpoint --out prod-$(date +%F).checkpoint\n  ripcord audit checkpoint | mail -s checkpoint audit@example.com\n  ripcord audit checkpoint --store s3://audit-anchors/ripcord --post https://anchor.example.com/ripcord"
    )]
    Checkpoint {
        /// Write it to this file (default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// Also keep it in a store (`file://DIR`, `s3://…`, `gs://…`, `az://…`) as
        /// `checkpoints/<target>/<seq>.checkpoint`.
        #[arg(long, value_name = "URI")]
        store: Option<String>,
        /// Also POST it (text/plain) to this webhook, an external anchor.
        #[arg(long, value_name = "URL")]
        post: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum CaptureCommand {
    /// Start capturing tables (default: `[capture] tables` of ripcord.toml).
    #[command(
        after_help = "Examples:\n  ripcord capture enable public.orders public.payments\n  ripcord capture enable --mode logical public.orders   # needs wal_level = logical"
    )]
    Enable {
        tables: Vec<String>,
        /// `trigger`: statement triggers write the log as statements run (default, or
        /// `[capture] mode`); `logical`: old rows travel in the WAL through a replication
        /// slot, and `capture sync` writes them into the log (PostgreSQL).
        #[arg(long, value_enum)]
        mode: Option<CaptureModeArg>,
    },
    /// Move changes decoded from the logical replication slot into the capture log
    /// (logical mode; `serve` runs it periodically, and batch revert, flashback and
    /// `batch list` run it first).
    #[command(after_help = "Example:\n  ripcord capture sync --json")]
    Sync,
    /// Stop capturing tables (their logs are kept).
    #[command(after_help = "Example:\n  ripcord capture disable public.orders")]
    Disable {
        #[arg(required = true)]
        tables: Vec<String>,
    },
    /// Captured tables, their log size and oldest entry.
    #[command(after_help = "Example:\n  ripcord capture status --json")]
    Status,
    /// Remove log entries older than a time (flashback cannot reach before it afterwards).
    #[command(after_help = "Example:\n  ripcord capture prune --before '2026-11-01'")]
    Prune {
        /// A timestamp, e.g. 2026-11-01 or '2026-11-24 10:00:00+00'.
        #[arg(long, value_name = "TIME")]
        before: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureModeArg {
    /// Statement-level triggers with transition tables.
    Trigger,
    /// Logical decoding through a replication slot (PostgreSQL, wal_level = logical).
    Logical,
}

impl From<CaptureModeArg> for ripcord_core::capture::CaptureMode {
    fn from(mode: CaptureModeArg) -> Self {
        match mode {
            CaptureModeArg::Trigger => ripcord_core::capture::CaptureMode::Trigger,
            CaptureModeArg::Logical => ripcord_core::capture::CaptureMode::Logical,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnConflict {
    /// Change nothing and list the conflicting rows (exit 1).
    Abort,
    /// Undo the other rows, leave the conflicting ones.
    Skip,
    /// Restore the old image anyway.
    Force,
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Every vault entry: change, statement, table, rows, size, and whether a deployed
    /// change's revert still needs it.
    #[command(after_help = "Example:\n  ripcord vault list --json")]
    List,
    /// Remove kept data that no deployed change's revert needs (reverted changes,
    /// failed deploys); `--change` also drops a deployed change's data, after which it
    /// can no longer be reverted.
    #[command(
        after_help = "Example:\n  ripcord vault prune\n  ripcord vault prune --change 0007_drop_legacy\n  ripcord vault prune --older-than 90d   # retention: older kept data goes, deployed or not"
    )]
    Prune {
        /// Also prune this deployed change's kept data (it becomes irreversible).
        #[arg(long = "change", value_name = "CHANGE")]
        changes: Vec<String>,
        /// Also prune data kept longer than this, e.g. 90d or 12h, even where a deployed
        /// change's revert needs it (those changes become irreversible, recorded).
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Batches in the capture log, newest first.
    #[command(after_help = "Example:\n  ripcord batch list")]
    List,
    /// Run a loader with its writes tagged NAME (sets PGOPTIONS=-c ripcord.batch=NAME).
    #[command(
        after_help = "Example:\n  ripcord batch run --name load-2026-11-24 -- psql -f load.sql"
    )]
    Run {
        /// The batch tag.
        #[arg(long)]
        name: String,
        /// The loader and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Undo exactly one batch, set-wise, in one transaction.
    #[command(
        after_help = "Example:\n  ripcord batch revert load-2026-11-24 --dry-run\n  ripcord batch revert load-2026-11-24 --on-conflict skip"
    )]
    Revert {
        /// The batch tag.
        batch: String,
        /// Rows changed later by another batch.
        #[arg(long, value_enum, default_value = "abort")]
        on_conflict: OnConflict,
        /// Report counts and conflicts; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct FlashbackArgs {
    /// The captured table.
    pub table: String,
    /// The moment to go back to (as PostgreSQL reads a timestamptz).
    #[arg(long, value_name = "TIMESTAMP")]
    pub to: String,
    /// Report counts; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Where snapshots live.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Snapshot store: file://DIR, s3://bucket/prefix, gs://…, az://… (default:
    /// `[snapshots] store` of ripcord.toml, else file://.ripcord/snapshots).
    #[arg(long, value_name = "URI")]
    pub store: Option<String>,
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// A copy keeps a server process and a compressing thread busy: half the cores.
fn default_create_parallel() -> usize {
    (cores() / 2).clamp(1, 8)
}

/// A load is mostly server work: one connection per core.
fn default_restore_parallel() -> usize {
    cores().clamp(1, 8)
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Copy tables, consistent to one moment, into the store: binary COPY from one
    /// exported snapshot in parallel, zstd chunks, blake3 hashes, a manifest last.
    #[command(
        after_help = "Example:\n  ripcord snapshot create --tables public.orders public.payments\n  ripcord snapshot create --all --store s3://backups/shop --parallel 4"
    )]
    Create {
        /// Tables to copy.
        #[arg(long, num_args = 1.., value_name = "TABLE", conflicts_with = "all", required_unless_present = "all")]
        tables: Vec<String>,
        /// Every user table.
        #[arg(long)]
        all: bool,
        /// Connections copying at once (default: half the cores).
        #[arg(long, default_value_t = default_create_parallel())]
        parallel: usize,
        /// Why (shown by `list`).
        #[arg(long, default_value = "manual")]
        label: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Complete snapshots in the store, oldest first.
    #[command(after_help = "Example:\n  ripcord snapshot list --json")]
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Re-read, decompress and re-hash every chunk (exit 1 naming the first bad one).
    #[command(after_help = "Example:\n  ripcord snapshot verify 20261124T100000Z-3fa2c1")]
    Verify {
        /// Snapshot id (from `list`).
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Verify, load into new tables in parallel, build constraints and indexes, then swap
    /// them in in one short transaction; the replaced tables stay in a vault schema.
    #[command(
        after_help = "Example:\n  ripcord snapshot restore 20261124T100000Z-3fa2c1 --tables public.orders\n  ripcord snapshot restore 20261124T100000Z-3fa2c1 --into postgres://me@host/forensics"
    )]
    Restore {
        /// Snapshot id (from `list`).
        id: String,
        /// Only these tables (default: all of the snapshot's).
        #[arg(long, num_args = 1.., value_name = "TABLE")]
        tables: Vec<String>,
        /// Restore under their own names into this other database instead.
        #[arg(long, value_name = "URL")]
        into: Option<String>,
        /// Leave the restored tables in a schema `ripcord_restore_<id>` of the target,
        /// next to the live ones.
        #[arg(long, conflicts_with = "into")]
        as_new_tables: bool,
        /// Connections loading at once (default: one per core).
        #[arg(long, default_value_t = default_restore_parallel())]
        parallel: usize,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete old snapshots (and vault schemas of old restores, with --older-than).
    #[command(
        after_help = "Example:\n  ripcord snapshot prune --keep 10\n  ripcord snapshot prune --older-than 30d"
    )]
    Prune {
        /// Keep the newest N snapshots.
        #[arg(long, value_name = "N", required_unless_present = "older_than")]
        keep: Option<usize>,
        /// Delete snapshots older than this, e.g. 7d or 12h.
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo project and print where it is.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub action: Option<RolloutAction>,
    /// The fleet (default: the only one in ripcord.toml).
    #[arg(long, value_name = "NAME", global = true)]
    pub fleet: Option<String>,
    /// Stop after this change (name or ID).
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// Show which changes each target would get, and which targets are held back.
    #[arg(long)]
    pub dry_run: bool,
    /// All targets or none: prepare on every target, record the decision, then commit.
    #[arg(long)]
    pub atomic: bool,
    /// Fail (and roll back) when probes are inconclusive instead of pausing.
    #[arg(long)]
    pub no_pause: bool,
    /// Roll back the fleet's unfinished (paused or interrupted) rollout.
    #[arg(long, conflicts_with_all = ["dry_run", "atomic", "to"])]
    pub abort: bool,
    /// Deploy this change although it has no revert section (repeatable).
    #[arg(long, value_name = "NAME")]
    pub accept_irreversible: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RolloutAction {
    /// The fleet's last rollout: each target's state, and in-doubt transactions with
    /// their age.
    #[command(after_help = "Example:\n  ripcord rollout status --fleet prod --json")]
    Status {
        /// A rollout id (default: the fleet's latest).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; anything but localhost is reachable by others (a warning
    /// is printed; set RIPCORD_SERVE_TOKEN).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub listen: std::net::SocketAddr,
    /// Serve the members of this fleet (default: every target of ripcord.toml, or the
    /// one given with --target or --url).
    #[arg(long, value_name = "NAME")]
    pub fleet: Option<String>,
    /// Drain the logical capture slots of the PostgreSQL targets into their capture
    /// logs every SECS seconds (0: never); the only writes serve makes.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub capture_sync_every: u64,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tool whose layout DIR has.
    #[arg(long, value_name = "TOOL", value_parser = clap::builder::PossibleValuesParser::new(["sqitch", "flyway", "golang-migrate", "sqlx", "goose", "dbmate", "refinery", "pop"]))]
    pub from: String,
    /// pop: the dialect suffix of the files to take (default: postgres, or sqlite3 for
    /// a SQLite target).
    #[arg(long, value_name = "DIALECT")]
    pub dialect: Option<String>,
    /// The other tool's migrations directory.
    pub dir: std::path::PathBuf,
    /// Where to write the change files (default: the project's changes/).
    #[arg(long, value_name = "DIR")]
    pub into: Option<std::path::PathBuf>,
    /// Show what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Read what the database has from this tool's history table.
    #[arg(long, value_name = "TOOL", conflicts_with = "up_to", value_parser = clap::builder::PossibleValuesParser::new(["sqitch", "flyway", "golang-migrate", "goose", "dbmate", "sqlx"]))]
    pub from_tool: Option<String>,
    /// The database has every change up to and including this one.
    #[arg(long, value_name = "CHANGE")]
    pub up_to: Option<String>,
    /// Show what would be recorded; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Break the lock even though its holder may still run (another host or container).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The fleet (default: the only one in ripcord.toml).
    #[arg(long, value_name = "NAME")]
    pub fleet: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
pub enum FlagCommand {
    /// Switch a flag on or off (recorded in the audit chain).
    Set {
        name: String,
        #[arg(value_enum)]
        value: OnOff,
        /// On every target of this fleet instead of one target.
        #[arg(long, value_name = "NAME")]
        fleet: Option<String>,
    },
    /// Print `on` or `off` (a flag never set is off).
    Get {
        name: String,
        /// Of every target of this fleet.
        #[arg(long, value_name = "NAME")]
        fleet: Option<String>,
    },
    /// Every flag with who set it and when.
    List {
        /// Of every target of this fleet.
        #[arg(long, value_name = "NAME")]
        fleet: Option<String>,
    },
}
