//! `ripcord demo`: a guided tour on a throwaway SQLite database, no server needed.
//! Each step calls the same library functions and renderers as the real commands.

use std::path::Path;

use ripcord::deploy::{DeployOptions, deploy};
use ripcord::revert::{RevertOptions, Selection, revert};
use ripcord::target::connect;
use ripcord_core::Plan;
use ripcord_core::config::Config;

use crate::cli::DemoArgs;
use crate::commands::ProgressLines;
use crate::error::{CommandError, Exit};
use crate::printer::{Printer, paint, style};
use crate::render;

const CONFIG: &str = "[project]\nname = \"shop\"\ndefault_target = \"dev\"\n\n[targets.dev]\nurl = \"sqlite://shop.db\"\n\n\
[[checks]]\nname = \"no free orders\"\nsql = \"select id, total_cents from orders where total_cents <= 0\"\nexpect = { zero_rows = true }\ntables = [\"orders\"]\n\n\
[[checks]]\nname = \"orders row count\"\nsql = \"select count(*) from orders\"\nexpect = { within_pct_of_baseline = 50.0 }\n";

/// A promotion that gives orders away: deploy's gate catches it and reverts it.
const GATED_CHANGE: (&str, &str) = (
    "0005_promo",
    "-- requires: 0004_order_status\n\
-- ripcord:deploy\n\
UPDATE orders SET total_cents = 0 WHERE customer_id = 2;\n",
);

const CHANGES: &[(&str, &str)] = &[
    (
        "0001_customers",
        "-- Customers of the shop.\n\
-- ripcord:deploy\n\
CREATE TABLE customers (\n    id    INTEGER PRIMARY KEY,\n    email TEXT NOT NULL UNIQUE,\n    name  TEXT NOT NULL\n);\n\
-- ripcord:revert\n\
DROP TABLE customers;\n\
-- ripcord:verify\n\
SELECT id, email, name FROM customers WHERE 0;\n",
    ),
    (
        "0002_orders",
        "-- requires: 0001_customers\n\
-- ripcord:deploy\n\
CREATE TABLE orders (\n    id          INTEGER PRIMARY KEY,\n    customer_id INTEGER NOT NULL REFERENCES customers (id),\n    total_cents INTEGER NOT NULL CHECK (total_cents >= 0)\n);\n\
CREATE INDEX orders_customer_idx ON orders (customer_id);\n\
-- ripcord:revert\n\
DROP INDEX orders_customer_idx;\n\
DROP TABLE orders;\n\
-- ripcord:verify\n\
SELECT id, customer_id, total_cents FROM orders WHERE 0;\n",
    ),
    (
        "0003_first_customers",
        "-- requires: 0001_customers\n\
-- ripcord:deploy\n\
INSERT INTO customers (id, email, name) VALUES\n    (1, 'ada@example.com', 'Ada'),\n    (2, 'grace@example.com', 'Grace');\n\
INSERT INTO orders (customer_id, total_cents) VALUES (1, 1250), (2, 990), (1, 4200);\n\
-- ripcord:revert\n\
DELETE FROM orders WHERE customer_id IN (1, 2);\n\
DELETE FROM customers WHERE id IN (1, 2);\n",
    ),
    (
        "0004_order_status",
        "-- requires: 0002_orders\n\
-- ripcord:deploy\n\
ALTER TABLE orders ADD COLUMN status TEXT NOT NULL DEFAULT 'new';\n\
-- ripcord:revert\n\
ALTER TABLE orders DROP COLUMN status;\n\
-- ripcord:verify\n\
SELECT status FROM orders WHERE 0;\n",
    ),
];

const BROKEN_CHANGE: (&str, &str) = (
    "0005_coupons",
    "-- requires: 0002_orders\n\
-- ripcord:deploy\n\
ALTER TABLE orders ADD COLUMN coupon TEXT;\n\
UPDATE orders SET coupon = 'WELCOME' WHERE custmer_id = 1;\n\
-- ripcord:revert\n\
ALTER TABLE orders DROP COLUMN coupon;\n",
);

/// A clean-up without a revert section: ripcord writes its revert and keeps what it
/// deletes and overwrites in the vault.
const VAULTED_CHANGE: (&str, &str) = (
    "0005_cleanup",
    "-- requires: 0004_order_status\n\
-- ripcord:deploy\n\
DELETE FROM orders WHERE total_cents < 1000;\n\
UPDATE orders SET status = 'archived' WHERE customer_id = 1;\n",
);

const DRILLED_CHANGE: (&str, &str) = (
    "0005_big_orders",
    "-- requires: 0002_orders\n\
-- ripcord:deploy\n\
CREATE INDEX orders_total_idx ON orders (total_cents);\n\
CREATE VIEW big_orders AS SELECT id, customer_id, total_cents FROM orders WHERE total_cents > 2000;\n\
-- ripcord:revert\n\
DROP VIEW big_orders;\n",
);

fn io(error: std::io::Error) -> CommandError {
    CommandError::new(Exit::Usage, format!("demo: {error}"))
}

fn step(printer: &Printer, number: &mut usize, title: &str, explain: &str) {
    *number += 1;
    let number = *number;
    printer.line("");
    printer.line(paint(style::HEAD, format!("Step {number}. {title}")));
    printer.line(paint(style::DIM, explain));
}

/// Run `ripcord drill` on the demo project and print what it prints.
fn drill_and_show(
    target: &mut ripcord::Target,
    root: &Path,
    printer: &Printer,
) -> Result<(), CommandError> {
    let plan = load_plan(root)?;
    let report = ripcord::drill::drill(target, &plan, &Default::default(), &mut |outcome| {
        printer.block(render::drill_outcome(outcome));
    })?;
    printer.block(render::drill_summary(&report));
    Ok(())
}

/// Write `sql` the way a loader tagged `batch` would.
fn load_as(target: &mut ripcord::Target, batch: &str, sql: &str) -> Result<(), CommandError> {
    set_tag(target, Some(batch))?;
    for statement in ripcord_core::splitter::split(sql).unwrap_or_default() {
        target.engine.execute(&sql[statement])?;
    }
    set_tag(target, None)
}

fn set_tag(target: &mut ripcord::Target, tag: Option<&str>) -> Result<(), CommandError> {
    if let Some(mut capture) = target.engine.capture() {
        capture.set_batch_context(tag)?;
    }
    Ok(())
}

/// "5 orders (content hash …)" from the fingerprint of `orders`.
fn orders_summary(target: &mut ripcord::Target) -> Result<String, CommandError> {
    let tables = target.engine.table_data()?;
    let rows = tables
        .iter()
        .find(|(t, _)| t == "orders")
        .map_or(0, |(_, d)| d.rows);
    Ok(format!(
        "{rows} orders (content hash {})",
        tables
            .iter()
            .find(|(t, _)| t == "orders")
            .map_or("-".into(), |(_, d)| d.hash.clone())
    ))
}

fn load_plan(dir: &Path) -> Result<Plan, CommandError> {
    Ok(Plan::load(&dir.join("changes"))?)
}

/// Run the tour.
pub fn run(args: &DemoArgs, printer: Printer) -> Result<Exit, CommandError> {
    let dir = tempfile::Builder::new()
        .prefix("ripcord-demo-")
        .tempdir()
        .map_err(io)?;
    let root = dir.path();
    std::fs::write(root.join("ripcord.toml"), CONFIG).map_err(io)?;
    Config::load(&root.join("ripcord.toml"))?;
    std::fs::create_dir(root.join("changes")).map_err(io)?;
    for (name, text) in CHANGES {
        std::fs::write(root.join("changes").join(format!("{name}.sql")), text).map_err(io)?;
    }
    let mut target = connect("dev", "sqlite://shop.db", root)?;
    target.project = Some("shop".into());
    // Every event of the tour is signed, as with `[audit] signing_key_env` set.
    let keys = ripcord::checkpoint::keygen()?;
    target.signer = Some(ripcord::audit::signing_key(&keys.private_key)?);
    let trusted = vec![keys.public_key.clone()];
    let mut progress = ProgressLines {
        printer,
        target: "dev".into(),
    };
    let mut n = 0;

    printer.line(paint(
        style::HEAD,
        "ripcord demo: a shop database, changed and changed back",
    ));
    printer.line(format!(
        "Project in {} (SQLite file shop.db, no server needed).",
        root.display()
    ));

    step(
        &printer,
        &mut n,
        "Status of a fresh database",
        "Four change files, each with deploy, revert and (mostly) verify sections; nothing is deployed yet.",
    );
    let plan = load_plan(root)?;
    printer.block(render::status(&ripcord::status::status(
        &mut target,
        &plan,
    )?));

    step(
        &printer,
        &mut n,
        "Deploy",
        "Each change runs with its verify, ledger row and audit event in one transaction.",
    );
    let report = deploy(&mut target, &plan, &DeployOptions::default(), &mut progress)?;
    printer.block(render::deploy_summary(&report));

    step(
        &printer,
        &mut n,
        "A broken change is rolled back whole",
        "0005_coupons adds a column, then updates with a misspelled column name. The failure names file, line and column; the column it added is gone too.",
    );
    std::fs::write(
        root.join("changes")
            .join(format!("{}.sql", BROKEN_CHANGE.0)),
        BROKEN_CHANGE.1,
    )
    .map_err(io)?;
    let plan = load_plan(root)?;
    match deploy(&mut target, &plan, &DeployOptions::default(), &mut progress) {
        Ok(_) => {
            return Err(CommandError::new(
                Exit::Failed,
                "demo: the broken change deployed; that is a bug in ripcord",
            ));
        }
        Err(error) => {
            let error: CommandError = error.into();
            printer.block(error.render(false));
        }
    }
    printer.block(render::status(&ripcord::status::status(
        &mut target,
        &plan,
    )?));
    std::fs::remove_file(
        root.join("changes")
            .join(format!("{}.sql", BROKEN_CHANGE.0)),
    )
    .map_err(io)?;

    step(
        &printer,
        &mut n,
        "Drill catches a broken revert before it ships",
        "0005_big_orders adds an index and a view, but its revert forgets the index. `ripcord drill` deploys, reverts and redeploys it on a scratch copy and compares fingerprints.",
    );
    let drill_file = root
        .join("changes")
        .join(format!("{}.sql", DRILLED_CHANGE.0));
    std::fs::write(&drill_file, DRILLED_CHANGE.1).map_err(io)?;
    drill_and_show(&mut target, root, &printer)?;
    printer.line("Fixed: the revert now drops the index too.");
    let fixed = DRILLED_CHANGE.1.replace(
        "DROP VIEW big_orders;",
        "DROP VIEW big_orders;\nDROP INDEX orders_total_idx;",
    );
    std::fs::write(&drill_file, fixed).map_err(io)?;
    drill_and_show(&mut target, root, &printer)?;
    std::fs::remove_file(&drill_file).map_err(io)?;
    let plan = load_plan(root)?;

    step(
        &printer,
        &mut n,
        "Revert the last change",
        "Revert walks the ledger in reverse deploy order and runs the revert SQL recorded at deploy time.",
    );
    let options = RevertOptions {
        selection: Selection::Last(1),
        dry_run: false,
        checks: Vec::new(),
    };
    let report = revert(&mut target, &plan, &options, &mut progress)?;
    printer.block(render::revert_summary(&report));
    printer.block(render::status(&ripcord::status::status(
        &mut target,
        &plan,
    )?));

    step(
        &printer,
        &mut n,
        "Deploy it again",
        "The change comes back; the ledger keeps both events.",
    );
    let report = deploy(&mut target, &plan, &DeployOptions::default(), &mut progress)?;
    printer.block(render::deploy_summary(&report));

    step(
        &printer,
        &mut n,
        "An edited deployed change is refused until rehashed",
        "Someone edits 0004 after it was deployed. Deploy refuses (exit 4) until `ripcord rehash` records the new definition with a reason.",
    );
    let edited = CHANGES[3].1.replace(
        "SELECT status FROM orders WHERE 0;",
        "SELECT id, status FROM orders WHERE 0;",
    );
    std::fs::write(root.join("changes").join("0004_order_status.sql"), edited).map_err(io)?;
    let plan = load_plan(root)?;
    if let Err(error) = deploy(&mut target, &plan, &DeployOptions::default(), &mut progress) {
        let error: CommandError = error.into();
        printer.block(error.render(false));
    }
    let rehashed = ripcord::rehash::rehash(
        &mut target,
        &plan,
        "0004_order_status",
        "verify also reads id",
    )?;
    printer.line(format!(
        "Rehashed {}: reason recorded in the audit chain.",
        rehashed.change
    ));

    step(
        &printer,
        &mut n,
        "A change without a revert section: the vault keeps what it destroys",
        "0005_cleanup deletes and overwrites orders and has no revert section. ripcord recognizes its statements, keeps the rows they destroy in the vault inside the deploy transaction, and writes the revert itself.",
    );
    let vaulted = root
        .join("changes")
        .join(format!("{}.sql", VAULTED_CHANGE.0));
    std::fs::write(&vaulted, VAULTED_CHANGE.1).map_err(io)?;
    let plan = load_plan(root)?;
    let before = orders_summary(&mut target)?;
    printer.line(format!("  before:            {before}"));
    let report = deploy(&mut target, &plan, &DeployOptions::default(), &mut progress)?;
    printer.block(render::deploy_summary(&report));
    printer.line(format!(
        "  after 0005_cleanup: {}",
        orders_summary(&mut target)?
    ));
    printer.block(render::vault(&ripcord::vault::list(&mut target)?, false));
    let report = revert(
        &mut target,
        &plan,
        &RevertOptions {
            selection: Selection::Last(1),
            dry_run: false,
            checks: Vec::new(),
        },
        &mut progress,
    )?;
    printer.block(render::revert_summary(&report));
    let after = orders_summary(&mut target)?;
    printer.line(format!("  after the revert:  {after}"));
    if after != before {
        return Err(CommandError::new(
            Exit::Failed,
            "demo: the written revert did not bring the orders back; that is a bug in ripcord",
        ));
    }
    std::fs::remove_file(&vaulted).map_err(io)?;

    step(
        &printer,
        &mut n,
        "Checks guard a deploy",
        "ripcord.toml holds two [[checks]]: no order may be free, and the number of orders may move by at most 50% from a baseline. `ripcord check --save-baseline` records what they measure; `deploy` saves a baseline before its first change, runs the checks after its last, and reverts its own changes when one fails (exit 1).",
    );
    let checks = Config::load(&root.join("ripcord.toml"))?.config.checks;
    let saved = ripcord::check::run(
        &mut target,
        &checks,
        &ripcord::check::CheckOptions {
            save_baseline: Some("before-promo".into()),
            ..Default::default()
        },
    )?;
    printer.block(crate::checks::report(
        &saved,
        "  ripcord check --save-baseline before-promo",
    ));
    let gated = root.join("changes").join(format!("{}.sql", GATED_CHANGE.0));
    std::fs::write(&gated, GATED_CHANGE.1).map_err(io)?;
    let plan = load_plan(root)?;
    let before = orders_summary(&mut target)?;
    let options = DeployOptions {
        checks: checks.clone(),
        ..DeployOptions::default()
    };
    match deploy(&mut target, &plan, &options, &mut progress) {
        Err(ripcord::OpError::GateFailed {
            check,
            reason,
            reverted,
            report,
        }) => {
            printer.block(crate::checks::report(&report, "  checks after 0005_promo"));
            printer.line(format!(
                "  ripcord deploy  ->  exit 1: check `{check}` failed ({reason}); reverted {}",
                reverted.join(", ")
            ));
        }
        Err(other) => return Err(other.into()),
        Ok(_) => {
            return Err(CommandError::new(
                Exit::Failed,
                "demo: the gate let a change through that its check forbids; this is a bug in ripcord",
            ));
        }
    }
    let after = orders_summary(&mut target)?;
    printer.line(format!("  orders before and after: {before} / {after}"));
    if after != before {
        return Err(CommandError::new(
            Exit::Failed,
            "demo: the gate did not put the orders back; that is a bug in ripcord",
        ));
    }
    std::fs::remove_file(&gated).map_err(io)?;

    step(
        &printer,
        &mut n,
        "Undo one bad load, and only that one",
        "Capture records what an undo needs. A good load and a bad one write to orders; `ripcord batch revert` undoes the bad one set-wise and keeps the good one.",
    );
    ripcord::capture::enable(
        &mut target,
        &["orders".to_string()],
        ripcord_core::capture::CaptureMode::Trigger,
    )?;
    load_as(
        &mut target,
        "load-good",
        "INSERT INTO orders (customer_id, total_cents) VALUES (2, 700), (2, 1800)",
    )?;
    printer.line(format!(
        "  after load-good: {}",
        orders_summary(&mut target)?
    ));
    load_as(
        &mut target,
        "load-bad",
        "UPDATE orders SET total_cents = total_cents * 100 WHERE customer_id = 1; DELETE FROM orders WHERE total_cents < 1000",
    )?;
    printer.line(format!(
        "  after load-bad:  {}",
        orders_summary(&mut target)?
    ));
    printer.block(render::batches(&ripcord::capture::batches(&mut target)?));
    let scope = ripcord_core::capture::UndoScope::Batch("load-bad".into());
    let undone = ripcord::capture::undo(
        &mut target,
        &scope,
        ripcord_core::capture::ConflictMode::Abort,
        false,
    )?;
    printer.block(render::undo(&undone, false));
    printer.line(format!(
        "  after the revert: {}",
        orders_summary(&mut target)?
    ));

    step(
        &printer,
        &mut n,
        "Snapshot, disaster, restore, and a diff that proves it",
        "A snapshot is a verified copy of tables in a store (here .ripcord/snapshots; s3:// works too). Someone then empties orders by hand; `ripcord diff` names the rows that went, `ripcord snapshot restore` brings the table back (keeping what it replaced in a vault), and a second diff shows nothing differs from a copy taken before.",
    );
    // A copy of the database before the disaster, for `ripcord diff`.
    let mut copy = connect("copy", "sqlite://shop-copy.db", root)?;
    copy.engine
        .copy_from(&format!("sqlite://{}", root.join("shop.db").display()))
        .map_err(ripcord::OpError::from)?;
    let diff_options = ripcord::diff::DiffOptions {
        tables: vec!["orders".into()],
        ..Default::default()
    };
    let store = ripcord::snapshot::Store::open("file://.ripcord/snapshots", root)?;
    let snapshot = ripcord::snapshot::create(
        &mut target,
        &store,
        &ripcord::snapshot::CreateOptions {
            tables: vec!["orders".into()],
            label: "demo".into(),
            parallel: 1,
            progress: ripcord::snapshot::no_progress(),
            change: None,
        },
    )?;
    printer.line(format!(
        "  ripcord snapshot create --tables orders  ->  {} ({} rows)",
        snapshot.id, snapshot.rows
    ));
    let checked = ripcord::snapshot::verify(&store, &snapshot.id)?;
    printer.line(format!(
        "  ripcord snapshot verify {}  ->  {} chunk(s) re-hashed, intact",
        snapshot.id, checked.chunks
    ));
    target
        .engine
        .execute("DELETE FROM orders")
        .map_err(ripcord::OpError::from)?;
    printer.line(format!(
        "  after DELETE FROM orders: {}",
        orders_summary(&mut target)?
    ));
    let lost = ripcord::diff::diff(&mut copy, &mut target, &diff_options)?;
    printer.line("  ripcord diff sqlite://shop-copy.db sqlite://shop.db --table orders:");
    printer.block(render::diff(&lost));
    let restored = ripcord::snapshot::restore(
        &mut target,
        &store,
        &snapshot.id,
        &ripcord::snapshot::RestoreOptions {
            tables: Vec::new(),
            as_new_tables: false,
            into_other_database: false,
            parallel: 1,
            progress: ripcord::snapshot::no_progress(),
        },
    )?;
    printer.line(format!(
        "  after ripcord snapshot restore {}: {} (replaced rows kept in {})",
        snapshot.id,
        orders_summary(&mut target)?,
        restored.vault.unwrap_or_default()
    ));
    let back = ripcord::diff::diff(&mut copy, &mut target, &diff_options)?;
    printer.line("  ripcord diff sqlite://shop-copy.db sqlite://shop.db --table orders:");
    printer.block(render::diff(&back));
    if back.total_differences != 0 || lost.total_differences == 0 {
        return Err(CommandError::new(
            Exit::Failed,
            "demo: the diff around the restore did not come out as it must; this is a bug in ripcord",
        ));
    }

    step(
        &printer,
        &mut n,
        "A guarded rollout across a fleet of three shops",
        "A second project deploys to three SQLite shops in waves: the canary `eu` first, then `us` and `asia`. After each wave a SQL probe looks for negative totals. The promo change breaks the canary, so ripcord reverts it there (switching its `promo` flag off first) and never touches the other two.",
    );
    fleet_tour(root, &printer)?;

    step(
        &printer,
        &mut n,
        "Watching it: ripcord serve",
        "`ripcord serve` shows every target's ledger over HTTP: a JSON API, Prometheus metrics and a dashboard at http://127.0.0.1:7878/. The demo starts it on a free port for the three shops and reads /metrics once: the rollouts' deploys and reverts, counted from each shop's audit chain, and how long the breached rollout took to come back.",
    );
    serve_tour(root, &printer)?;

    step(
        &printer,
        &mut n,
        "History and the tamper-evident audit chain",
        "Every event is hash-chained to the one before and signed with ed25519 (`[audit] signing_key_env`); `ripcord audit verify` recomputes the chain and checks each signature against `[audit] public_key`.",
    );
    let history = ripcord::audit::history(&mut target)?;
    printer.block(render::history(&target.name, &history));
    let chain = ripcord::audit::verify(&mut target, &trusted)?;
    printer.block(render::audit_verify(&chain));

    step(
        &printer,
        &mut n,
        "A ledger edited behind ripcord's back",
        "Someone with write access swaps the revert SQL recorded for 0004_order_status. The audit chain recorded a checksum of every ledger row, so `audit verify` names the row and `revert` refuses to run it (exit 4).",
    );
    let recorded = target
        .engine
        .changes()?
        .into_iter()
        .find(|c| c.name == "0004_order_status")
        .and_then(|c| c.revert_sql)
        .unwrap_or_default();
    let set_revert = |sql: &str| {
        format!(
            "UPDATE ripcord_changes SET revert_sql = '{}' WHERE name = '0004_order_status'",
            sql.replace('\'', "''")
        )
    };
    target
        .engine
        .execute(&set_revert("DROP TABLE customers;"))?;
    printer.line("  UPDATE ripcord_changes SET revert_sql = 'DROP TABLE customers;' …");
    printer.block(render::audit_verify(&ripcord::audit::verify(
        &mut target,
        &trusted,
    )?));
    let options = RevertOptions {
        selection: Selection::Last(1),
        dry_run: false,
        checks: Vec::new(),
    };
    match revert(&mut target, &plan, &options, &mut progress) {
        Err(error) => {
            let error = CommandError::from(error);
            printer.line(format!(
                "  ripcord revert  ->  refused (exit {}): {}",
                error.exit.code(),
                error.message
            ));
        }
        Ok(_) => {
            return Err(CommandError::new(
                Exit::Failed,
                "the demo's tampered revert was run; this is a bug in ripcord",
            ));
        }
    }
    target.engine.execute(&set_revert(&recorded))?;
    printer.line("  with the row put back as recorded:");
    let chain = ripcord::audit::verify(&mut target, &trusted)?;
    printer.block(render::audit_verify(&chain));

    printer.line("");
    printer.line(paint(style::HEAD, "What happened"));
    printer.line("  - 4 changes deployed, each verified inside its own transaction;");
    printer.line("  - a broken change failed at its exact line and left nothing behind;");
    printer.line(
        "  - drill caught a revert that forgot an index, on a scratch copy, before any deploy;",
    );
    printer.line(
        "  - the last change was reverted and deployed again from the ledger's recorded SQL;",
    );
    printer.line("  - an edited deployed change was refused until rehashed with a reason;");
    printer.line(
        "  - a clean-up without a revert section was undone by the revert ripcord wrote, from the vault;",
    );
    printer.line("  - a change that broke a check was reverted by deploy's own gate;");
    printer.line("  - one bad data load was undone exactly, leaving a good load in place;");
    printer.line("  - an emptied table came back from a verified snapshot, and a diff proved it row for row;");
    printer.line("  - a rollout across three shops stopped at its canary and rolled it back, flag off first;");
    printer.line("  - every step is in an audit chain whose integrity was just verified;");
    printer.line("  - a ledger row edited by hand was caught, and its SQL was not run.");
    if args.keep {
        let kept = dir.keep();
        printer.line(format!(
            "Project kept in {}: try `cd {} && ripcord status`.",
            kept.display(),
            kept.display()
        ));
    }
    printer.json(&serde_json::json!({ "demo": "completed", "audit_events": chain.events, "chain_intact": chain.intact() }));
    Ok(if chain.intact() {
        Exit::Success
    } else {
        Exit::Failed
    })
}

const FLEET_CONFIG: &str = "[project]\nname = \"shops\"\n\n\
[targets.eu]\nurl = \"sqlite://eu.db\"\n[targets.us]\nurl = \"sqlite://us.db\"\n[targets.asia]\nurl = \"sqlite://asia.db\"\n\n\
[fleets.shops]\ntargets = [\"eu\", \"us\", \"asia\"]\nwaves = [[\"eu\"], [\"us\", \"asia\"]]\n\n\
[health]\nprobes = [{ name = \"no negative totals\", sql = \"select count(*) from orders where total < 0\", max = 0 }]\n";

const FLEET_CHANGES: [(&str, &str); 2] = [
    (
        "0001_orders",
        "-- ripcord:deploy\nCREATE TABLE orders (id integer PRIMARY KEY, total integer NOT NULL);\n\
         INSERT INTO orders (total) VALUES (1200), (800), (450);\n-- ripcord:revert\nDROP TABLE orders;\n",
    ),
    (
        "0002_promo",
        "-- flags: promo\n-- ripcord:deploy\nUPDATE orders SET total = total - 500;\n\
         -- ripcord:revert\nUPDATE orders SET total = total + 500;\n",
    ),
];

/// The serve step: `ripcord serve` over the three shops, one scrape of /metrics.
fn serve_tour(root: &Path, printer: &Printer) -> Result<(), CommandError> {
    let dir = root.join("fleet");
    let targets = ["eu", "us", "asia"]
        .iter()
        .map(|name| ripcord_serve::ServedTarget {
            name: name.to_string(),
            url: format!("sqlite://{name}.db"),
        })
        .collect();
    let server = ripcord_serve::serve_in_background(ripcord_serve::ServeOptions {
        listen: ([127, 0, 0, 1], 0).into(),
        targets,
        plan: load_plan(&dir)?,
        project: Some("shops".into()),
        base_dir: dir,
        token: None,
        snapshot_store: None,
        trusted_keys: Vec::new(),
        capture_sync_every: None,
        max_retained_wal_bytes: ripcord_core::config::CaptureConfig::default()
            .max_retained_wal_bytes()
            .unwrap_or(i64::MAX),
    })
    .map_err(|e| CommandError::new(Exit::Failed, format!("demo: {e}")))?;
    printer.line(format!(
        "  $ ripcord serve --fleet shops   (here on http://{}/)",
        server.addr
    ));
    printer.line(format!("  $ curl -s http://{}/metrics", server.addr));
    let metrics = http_get(server.addr, "/metrics")
        .map_err(|e| CommandError::new(Exit::Failed, format!("demo: reading /metrics: {e}")))?;
    let shown = [
        "ripcord_deploys_total",
        "ripcord_reverts_total",
        "ripcord_pending_changes",
        "ripcord_rollouts_total",
        "ripcord_rollback_detection_to_recovery_seconds",
    ];
    let mut lines: Vec<&str> = metrics
        .lines()
        .filter(|l| shown.iter().any(|m| l.starts_with(m)) && !l.contains("outcome=\"failure\""))
        .collect();
    if !lines
        .iter()
        .any(|l| l.starts_with("ripcord_rollback_detection_to_recovery_seconds"))
    {
        return Err(CommandError::new(
            Exit::Failed,
            "demo: /metrics did not report the rolled-back rollout; this is a bug in ripcord",
        ));
    }
    lines.sort();
    for line in lines {
        printer.line(format!("  {line}"));
    }
    printer.line("  (open the address in a browser for the dashboard: a timeline per shop, the rollout's Gantt, time to detect vs time to roll back)");
    Ok(())
}

/// GET `path` from a local server (HTTP/1.0, so it closes the connection after).
fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default())
}

/// Rollout progress as demo lines.
struct FleetLines<'a> {
    printer: &'a Printer,
}

impl ripcord_rollout::Reporter for FleetLines<'_> {
    fn event(&self, event: &ripcord_rollout::Event) {
        if event.kind == "probe_sample" && event.detail["verdict"] == "pass" {
            return;
        }
        self.printer.line(format!("  · {}", event.message));
    }
}

/// The fleet step: roll 0001 out everywhere, then watch 0002 break the canary and come
/// back.
fn fleet_tour(root: &Path, printer: &Printer) -> Result<(), CommandError> {
    let dir = root.join("fleet");
    std::fs::create_dir_all(dir.join("changes")).map_err(io)?;
    std::fs::write(dir.join("ripcord.toml"), FLEET_CONFIG).map_err(io)?;
    let loaded = Config::load(&dir.join("ripcord.toml"))?;
    let url_of = |name: &str| {
        loaded.config.targets[name].url.clone().ok_or_else(|| {
            ripcord_rollout::RolloutError::Usage {
                message: format!("target {name} has no url"),
                hint: String::new(),
            }
        })
    };
    let fleet = ripcord_rollout::fleet::resolve(&loaded, "shops", &url_of)
        .map_err(|e| CommandError::new(Exit::Failed, e.to_string()))?;
    let options = ripcord_rollout::RolloutOptions {
        project: Some("shops".into()),
        ..Default::default()
    };
    let lines = FleetLines { printer };
    let failed =
        |e: ripcord_rollout::RolloutError| CommandError::new(Exit::Failed, format!("demo: {e}"));
    let (name, text) = FLEET_CHANGES[0];
    std::fs::write(dir.join("changes").join(format!("{name}.sql")), text).map_err(io)?;
    printer.line("  $ ripcord rollout   (0001_orders)");
    let plan = load_plan(&dir)?;
    let report = ripcord_rollout::rollout(&fleet, &plan, &options, &lines).map_err(failed)?;
    printer.block(crate::rollout::render(&report));

    printer.line("  $ ripcord flag set promo on --fleet shops");
    for (_, member) in fleet.members() {
        let mut target = connect(&member.name, &member.url, &dir)?;
        target.project = Some("shops".into());
        ripcord::flags::set(&mut target, "promo", true, "demo")?;
    }
    let (name, text) = FLEET_CHANGES[1];
    std::fs::write(dir.join("changes").join(format!("{name}.sql")), text).map_err(io)?;
    printer.line("  $ ripcord rollout   (0002_promo, which makes a total negative)");
    let plan = load_plan(&dir)?;
    match ripcord_rollout::rollout(&fleet, &plan, &options, &lines) {
        Err(error) if error.report().is_some_and(|r| r.state == "rolled_back") => {
            if let Some(report) = error.report() {
                printer.block(crate::rollout::render(report));
            }
            printer.line(format!("  exit 1: {error}"));
        }
        Err(error) => return Err(failed(error)),
        Ok(_) => {
            return Err(CommandError::new(
                Exit::Failed,
                "demo: the promo rollout was not stopped by its probe; this is a bug in ripcord",
            ));
        }
    }
    for (_, member) in fleet.members() {
        let mut target = connect(&member.name, &member.url, &dir)?;
        let flag = ripcord::flags::get(&mut target, "promo")?.is_some_and(|f| f.enabled);
        printer.line(format!(
            "  $ ripcord --target {} flag get promo  ->  {}",
            member.name,
            if flag { "on" } else { "off" }
        ));
    }
    Ok(())
}
