//! The vault on PostgreSQL: what DROP COLUMN, DROP TABLE, lossy ALTER TYPE, DELETE,
//! UPDATE and TRUNCATE destroy is kept in the deploy transaction, and the revert —
//! written by ripcord for deploy-only changes, or the author's (incomplete) revert
//! followed by the kept data — brings the tables back row for row.

#[macro_use]
mod common;

use common::*;

/// Schema and data of the test tables, column order aside: columns with type, default
/// and nullability, constraints, indexes, and an order-independent checksum of every
/// table's rows.
fn checksum(db: &Db) -> String {
    let schema = db.scalar(
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
           SELECT format('column %s.%s %s default %s null %s', table_name, column_name, data_type,
                         coalesce(column_default, '-'), is_nullable) x
             FROM information_schema.columns WHERE table_schema = 'public'
           UNION ALL
           SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint
            WHERE connamespace = 'public'::regnamespace
           UNION ALL
           SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = 'public'
           UNION ALL
           SELECT format('trigger %s', pg_get_triggerdef(oid)) FROM pg_trigger WHERE NOT tgisinternal
           UNION ALL
           SELECT format('grants %s %s', relname, relacl) FROM pg_class
            WHERE relnamespace = 'public'::regnamespace AND relacl IS NOT NULL) s",
    );
    let mut data = String::new();
    for table in ["parent", "child", "t"] {
        if db.has_table(table) {
            data.push_str(&db.scalar(&format!(
                "SELECT '{table}: ' || count(*) || ' ' || coalesce(md5(string_agg(to_jsonb(x)::text, ',' \
                 ORDER BY to_jsonb(x)::text)), '-') FROM {table} x"
            )));
            data.push('\n');
        }
    }
    format!("{schema}\n{data}")
}

const BASE: &str = "-- ripcord:deploy
CREATE TABLE parent (id integer PRIMARY KEY, name text NOT NULL);
CREATE INDEX parent_name_idx ON parent (name);
CREATE TABLE child (id integer PRIMARY KEY, parent_id integer REFERENCES parent (id), qty integer NOT NULL DEFAULT 1);
CREATE TABLE t (id integer PRIMARY KEY, code text NOT NULL, note text, amount numeric(10,2),
                tags text[], doc jsonb, seen timestamptz, twice integer GENERATED ALWAYS AS (id * 2) STORED);
CREATE INDEX t_note_idx ON t (note);
CREATE FUNCTION parent_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.name := trim(NEW.name); RETURN NEW; END $$;
CREATE TRIGGER parent_touch BEFORE INSERT OR UPDATE ON parent FOR EACH ROW EXECUTE FUNCTION parent_touch();
GRANT SELECT ON parent TO PUBLIC;
INSERT INTO parent SELECT i, 'p' || i FROM generate_series(1, 20) i;
INSERT INTO child SELECT i, 1 + i % 20, i FROM generate_series(1, 60) i;
INSERT INTO t (id, code, note, amount, tags, doc, seen)
  SELECT i, lpad(i::text, 3, '0'), CASE WHEN i % 7 = 0 THEN NULL ELSE 'n' || i END, i * 1.25,
         ARRAY['a' || i, NULL], jsonb_build_object('i', i), '2026-11-24 10:00+00'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, 200) i;
-- ripcord:revert
DROP TABLE t;
DROP TABLE child;
DROP TABLE parent;
DROP FUNCTION parent_touch();
";

/// The destructive changes, each with the incomplete revert an author might write.
const DESTRUCTIVE: &[(&str, &str, &str)] = &[
    (
        "0002_delete",
        "DELETE FROM child WHERE id > 40;",
        "INSERT INTO child VALUES (41, 2, 41);",
    ),
    (
        "0003_update",
        "UPDATE t SET note = 'changed', amount = 0 WHERE id % 3 = 0;",
        "SELECT 1;",
    ),
    (
        "0004_drop_column",
        "ALTER TABLE t DROP COLUMN note;",
        "ALTER TABLE t ADD COLUMN note text;\nCREATE INDEX t_note_idx ON t (note);",
    ),
    (
        "0005_lossy_type",
        "ALTER TABLE t ALTER COLUMN code TYPE integer USING code::integer;",
        "ALTER TABLE t ALTER COLUMN code TYPE text USING code::text;",
    ),
    ("0006_truncate", "TRUNCATE child;", "SELECT 1;"),
    (
        "0007_drop_table",
        "DROP TABLE parent CASCADE;",
        "CREATE TABLE parent (id integer PRIMARY KEY, name text NOT NULL);\n\
         CREATE INDEX parent_name_idx ON parent (name);\n\
         CREATE TRIGGER parent_touch BEFORE INSERT OR UPDATE ON parent FOR EACH ROW EXECUTE FUNCTION parent_touch();\n\
         GRANT SELECT ON parent TO PUBLIC;\n\
         ALTER TABLE child ADD CONSTRAINT child_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES parent (id);",
    ),
];

fn project_with(with_author_revert: bool) -> (Project, Db) {
    let (project, db) = Db::postgres_project();
    project.change("0001_base", BASE);
    for (name, deploy, revert) in DESTRUCTIVE {
        let text = if with_author_revert {
            format!("-- ripcord:deploy\n{deploy}\n-- ripcord:revert\n{revert}\n")
        } else {
            format!("-- ripcord:deploy\n{deploy}\n")
        };
        project.change(name, &text);
    }
    (project, db)
}

/// Deploy the changes one by one, then revert them one by one, asserting that each
/// revert brings back exactly the state before its change.
fn deploy_and_revert_each_exactly(project: &Project, db: &Db) {
    ok(project, &["deploy", "--to", "0001_base"]);
    let mut before = Vec::new();
    for (name, _, _) in DESTRUCTIVE {
        before.push(checksum(db));
        ok(project, &["deploy", "--to", name]);
        assert_ne!(
            checksum(db),
            *before.last().unwrap(),
            "{name} changed something"
        );
    }
    assert_eq!(db.scalar("SELECT count(*) FROM child"), "0");
    assert!(!db.has_table("parent"));
    for (index, (name, _, _)) in DESTRUCTIVE.iter().enumerate().rev() {
        ok(project, &["revert", "--last", "1", "-y"]);
        assert_eq!(
            checksum(db),
            before[index],
            "reverting {name} brings back the state before it, row for row"
        );
    }
    assert_eq!(db.scalar("SELECT code FROM t WHERE id = 7"), "007");
    assert_eq!(db.scalar("SELECT note FROM t WHERE id = 3"), "n3");
}

#[test]
fn deploy_only_changes_get_a_revert_that_restores_every_row() {
    let (project, db) = project_with(false);
    let plan = ok(&project, &["plan", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    for change in plan["changes"].as_array().unwrap().iter().skip(1) {
        assert_eq!(change["revert_by"], "ripcord", "{change}");
        assert_eq!(change["needs_consent"], false);
    }
    deploy_and_revert_each_exactly(&project, &db);
    // The kept data is no longer needed by any deployed change.
    let list: serde_json::Value =
        serde_json::from_str(&ok(&project, &["vault", "list", "--json"])).unwrap();
    let entries = list["entries"].as_array().unwrap();
    assert_eq!(entries.len(), DESTRUCTIVE.len());
    assert!(entries.iter().all(|e| e["live"] == false));
    ok(&project, &["vault", "prune"]);
    assert_eq!(db.scalar("SELECT count(*) FROM ripcord.vault"), "0");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'ripcord' AND tablename LIKE 'vault\\_%'"),
        "0"
    );
}

#[test]
fn an_incomplete_author_revert_is_completed_with_the_kept_data() {
    let (project, db) = project_with(true);
    deploy_and_revert_each_exactly(&project, &db);
    let events = db.scalar(
        "SELECT count(*) FROM ripcord.events WHERE kind = 'deploy_completed' \
         AND detail::jsonb->>'revert' = 'author''s revert, then kept data put back'",
    );
    assert_eq!(events, DESTRUCTIVE.len().to_string());
}

#[test]
fn drill_passes_on_a_project_of_deploy_only_changes() {
    let (project, _db) = project_with(false);
    // Rename, defaults, NOT NULL and constraints come back too.
    project.change(
        "0008_reshape",
        "-- ripcord:deploy\n\
         ALTER TABLE t RENAME COLUMN amount TO price;\n\
         ALTER TABLE t ALTER COLUMN seen SET DEFAULT now(), ALTER COLUMN tags SET NOT NULL;\n\
         ALTER TABLE t ADD CONSTRAINT t_price_positive CHECK (price >= 0);\n\
         ALTER TABLE t ADD COLUMN extra bigint;\n\
         CREATE TABLE audit_note (id bigint PRIMARY KEY, body text);\n\
         CREATE INDEX audit_note_body_idx ON audit_note (body);\n\
         INSERT INTO t (id, code, tags, seen) VALUES (1000, 1000, '{}', '2026-01-01 00:00+00');\n\
         ALTER TABLE t RENAME TO things;\n",
    );
    // PostgreSQL adds a column at the end: the column ripcord puts back is there with
    // its values, but drill tells that its place changed.
    let out = run(&project, &["drill"]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains("column order of public.t differs after revert: id, code, amount, tags, doc, seen, twice, note (before the change: id, code, note, amount, tags, doc, seen, twice)"),
        "{}",
        stdout(&out)
    );
    let config = std::fs::read_to_string(project.path().join("ripcord.toml")).unwrap();
    project.write_config(&format!("{config}\n[drill]\ncolumn_order = \"ignore\"\n"));
    let out = ok(&project, &["drill"]);
    assert!(out.contains("Drill passed"), "{out}");
    assert!(out.contains("pass 0007_drop_table"), "{out}");
    assert!(out.contains("pass 0008_reshape"), "{out}");
}

#[test]
fn a_statement_ripcord_cannot_undo_still_needs_consent() {
    let (project, db) = Db::postgres_project();
    project.change("0001_base", BASE);
    ok(&project, &["deploy"]);
    project.change(
        "0002_opaque",
        "-- ripcord:deploy\nDELETE FROM child WHERE id > 50;\nDO $$ BEGIN PERFORM 1; END $$;\n",
    );
    let before = checksum(&db);
    let out = run(&project, &["deploy", "--json"]);
    expect_exit(&out, 4);
    let err = stderr(&out);
    assert!(err.contains("0002_opaque"), "{err}");
    assert!(err.contains("statement 2"), "names the statement: {err}");
    assert_eq!(checksum(&db), before, "nothing ran");
    assert_eq!(db.scalar("SELECT count(*) FROM ripcord.vault"), "0");
}

#[test]
fn a_table_without_a_key_is_refused_by_name_and_nothing_changes() {
    let (project, db) = Db::postgres_project();
    project.change(
        "0001_heap",
        "-- ripcord:deploy\nCREATE TABLE heap (a integer, b text);\n\
         INSERT INTO heap SELECT i, 'x' FROM generate_series(1, 10) i;\n\
         -- ripcord:revert\nDROP TABLE heap;\n",
    );
    ok(&project, &["deploy"]);
    project.change(
        "0002_fix",
        "-- ripcord:deploy\nUPDATE heap SET b = 'y' WHERE a < 5;\n",
    );
    let out = run(&project, &["deploy"]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("public.heap"), "names the table: {err}");
    assert!(err.contains("primary key"), "{err}");
    assert_eq!(db.scalar("SELECT count(*) FROM heap WHERE b = 'y'"), "0");
    assert_eq!(
        db.scalar("SELECT count(*) FROM ripcord.changes WHERE name = '0002_fix'"),
        "0"
    );

    // With a revert of its own the change deploys; the audit event says what was not kept.
    project.change(
        "0002_fix",
        "-- ripcord:deploy\nUPDATE heap SET b = 'y' WHERE a < 5;\n\
         -- ripcord:revert\nUPDATE heap SET b = 'x';\n",
    );
    ok(&project, &["deploy"]);
    let not_kept = db.scalar(
        "SELECT detail::jsonb->'not_kept'->>0 FROM ripcord.events \
         WHERE kind = 'deploy_completed' AND change = '0002_fix'",
    );
    assert!(not_kept.contains("public.heap"), "{not_kept}");
    ok(&project, &["revert", "--last", "1", "-y"]);
    assert_eq!(db.scalar("SELECT count(*) FROM heap WHERE b = 'x'"), "10");
}

#[test]
fn a_killed_deploy_leaves_no_kept_data_and_a_rerun_converges() {
    let (project, db) = project_with(false);
    ok(&project, &["deploy", "--to", "0002_delete"]);
    let before = checksum(&db);
    let killed = ripcord_in(project.path())
        .args(["deploy", "--to", "0003_update"])
        .env("RIPCORD_FAILPOINT", "vault_kept=abort")
        .output()
        .unwrap();
    assert_ne!(killed.status.code(), Some(0), "it was killed");
    assert_eq!(checksum(&db), before, "the killed change rolled back whole");
    assert_eq!(
        db.scalar("SELECT count(*) FROM ripcord.vault"),
        "1",
        "only the entry of the change deployed before"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'ripcord\\_vault\\_%'"),
        "0"
    );
    ok(&project, &["deploy", "--to", "0003_update"]);
    ok(&project, &["revert", "--last", "1", "-y"]);
    assert_eq!(checksum(&db), before);
}

#[test]
fn pruning_a_deployed_changes_data_makes_it_irreversible_on_request_only() {
    let (project, db) = project_with(false);
    ok(&project, &["deploy", "--to", "0002_delete"]);
    let out = ok(&project, &["vault", "prune"]);
    assert!(out.contains("Nothing to prune"), "{out}");
    assert_eq!(db.scalar("SELECT count(*) FROM ripcord.vault"), "1");
    ok(&project, &["vault", "prune", "--change", "0002_delete"]);
    assert_eq!(db.scalar("SELECT count(*) FROM ripcord.vault"), "0");
    let out = run(&project, &["revert", "--last", "1", "-y"]);
    expect_exit(&out, 4);
    assert!(stderr(&out).contains("pruned"), "{}", stderr(&out));
}

mod sqlite {
    //! The same promise on SQLite, for the statements SQLite can undo: DELETE, UPDATE,
    //! INSERT, DROP TABLE, CREATE, ADD COLUMN, RENAME.

    use super::*;

    fn checksum(db: &Db) -> String {
        let schema = db.scalar(
            "SELECT group_concat(type || ' ' || name, ', ') FROM \
             (SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'ripcord%' \
              AND name NOT LIKE 'sqlite%' ORDER BY type, name)",
        );
        let mut out = format!("{schema}\n");
        if db.has_table("parent") {
            out.push_str(&db.scalar(
                "SELECT count(*) || ' ' || coalesce(group_concat(x, '|'), '') FROM \
                 (SELECT json_array(id, name) x FROM parent ORDER BY id)",
            ));
        }
        out.push_str(&db.scalar(
            "SELECT count(*) || ' ' || coalesce(group_concat(x, '|'), '') FROM \
             (SELECT json_array(id, code, note, twice) x FROM t ORDER BY id)",
        ));
        out
    }

    const BASE: &str = "-- ripcord:deploy
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE INDEX parent_name ON parent (name);
CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT NOT NULL, note TEXT,
                twice INTEGER GENERATED ALWAYS AS (id * 2) STORED);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
INSERT INTO t (id, code, note) SELECT i, printf('%03d', i), CASE WHEN i % 7 = 0 THEN NULL ELSE 'n' || i END FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
INSERT INTO parent SELECT i, 'p' || i FROM n;
-- ripcord:revert
DROP TABLE t;
DROP TABLE parent;
";

    const CHANGES: &[(&str, &str, &str)] = &[
        (
            "0002_delete",
            "DELETE FROM t WHERE id > 40;",
            "INSERT INTO t (id, code, note) VALUES (41, '041', 'n41');",
        ),
        (
            "0003_update",
            "UPDATE t SET note = 'changed', code = 'x' WHERE id % 3 = 0;",
            "SELECT 1;",
        ),
        (
            "0004_insert",
            "INSERT INTO t (id, code) VALUES (100, '100'), (101, '101');",
            "SELECT 1;",
        ),
        (
            "0005_drop_table",
            "DROP TABLE parent;",
            "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\nCREATE INDEX parent_name ON parent (name);",
        ),
    ];

    fn exact_reverts(with_author_revert: bool) {
        let (project, db) = Db::sqlite_project();
        project.change("0001_base", BASE);
        for (name, deploy, revert) in CHANGES {
            let text = if with_author_revert {
                format!("-- ripcord:deploy\n{deploy}\n-- ripcord:revert\n{revert}\n")
            } else {
                format!("-- ripcord:deploy\n{deploy}\n")
            };
            project.change(name, &text);
        }
        ok(&project, &["deploy", "--to", "0001_base"]);
        let mut before = Vec::new();
        for (name, _, _) in CHANGES {
            before.push(checksum(&db));
            ok(&project, &["deploy", "--to", name]);
            assert_ne!(
                checksum(&db),
                *before.last().unwrap(),
                "{name} changed something"
            );
        }
        for (index, (name, _, _)) in CHANGES.iter().enumerate().rev() {
            ok(&project, &["revert", "--last", "1", "-y"]);
            assert_eq!(checksum(&db), before[index], "reverting {name} is exact");
        }
        if !with_author_revert {
            let out = ok(&project, &["drill"]);
            assert!(out.contains("Drill passed"), "{out}");
        }
    }

    #[test]
    fn deploy_only_changes_revert_exactly() {
        exact_reverts(false);
    }

    #[test]
    fn an_incomplete_author_revert_is_completed() {
        exact_reverts(true);
    }

    #[test]
    fn a_table_made_filled_and_dropped_in_one_change_reverts_to_nothing() {
        for (project, db) in [Db::sqlite_project(), Db::postgres_project()] {
            project.change(
                "0001_tmp",
                "-- ripcord:deploy\nCREATE TABLE tmp (id integer PRIMARY KEY, v text);\n\
                 INSERT INTO tmp VALUES (1, 'a'), (2, 'b');\nUPDATE tmp SET v = 'c';\n\
                 ALTER TABLE tmp RENAME TO tmp2;\nDROP TABLE tmp2;\n",
            );
            ok(&project, &["deploy"]);
            assert!(!db.has_table("tmp") && !db.has_table("tmp2"));
            ok(&project, &["revert", "-y"]);
            assert!(!db.has_table("tmp") && !db.has_table("tmp2"));
            let out = ok(&project, &["drill"]);
            assert!(out.contains("Drill passed"), "{out}");
        }
    }

    #[test]
    fn dropping_a_column_still_needs_a_revert_on_sqlite() {
        let (project, db) = Db::sqlite_project();
        project.change("0001_base", BASE);
        ok(&project, &["deploy"]);
        project.change(
            "0002_drop",
            "-- ripcord:deploy\nALTER TABLE t DROP COLUMN note;\n",
        );
        let out = run(&project, &["deploy"]);
        expect_exit(&out, 4);
        assert!(stderr(&out).contains("SQLite"), "{}", stderr(&out));
        assert!(db.has_column("t", "note"));
    }
}
