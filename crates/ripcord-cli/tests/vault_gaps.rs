//! The vault's remaining gaps (issue 20): what a change destroys is kept and reverted
//! exactly, or the change is refused (exit 4) with the reason before anything stays
//! changed.

#[macro_use]
mod common;

use common::*;

fn base(project: &Project) {
    project.change(
        "0001_t",
        "-- ripcord:deploy\nCREATE TABLE t (id integer PRIMARY KEY, v text);\n\
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');\n\
         -- ripcord:revert\nDROP TABLE t;\n",
    );
    ok(project, &["deploy"]);
}

fn rows(db: &Db) -> String {
    db.scalar("SELECT group_concat(id || '=' || v, ',') FROM (SELECT * FROM t ORDER BY id) x")
}

fn rows_pg(db: &Db) -> String {
    db.scalar("SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM t")
}

fn an_update_that_changes_keys_is_put_back_under_the_old_keys((project, db): (Project, Db)) {
    base(&project);
    let show = |db: &Db| {
        if db.is_postgres() {
            rows_pg(db)
        } else {
            rows(db)
        }
    };
    let before = show(&db);
    project.change(
        "0002_rekey",
        "-- ripcord:deploy\nUPDATE t SET id = id + 100, v = v || '!' WHERE id <= 2;\n\
         UPDATE t SET v = 'z' WHERE id = 3;\n",
    );
    let drill = ok(&project, &["drill"]);
    assert!(drill.contains("pass 0002_rekey"), "{drill}");
    ok(&project, &["deploy"]);
    assert_eq!(show(&db), "3=z,101=a!,102=b!");
    ok(&project, &["revert", "--last", "1", "-y"]);
    assert_eq!(show(&db), before, "rows are back under their old keys");
}

fn a_key_change_others_reference_is_refused((project, db): (Project, Db)) {
    base(&project);
    project.change(
        "0002_child",
        "-- ripcord:deploy\nCREATE TABLE c (id integer PRIMARY KEY, t_id integer REFERENCES t (id) ON UPDATE CASCADE);\n\
         INSERT INTO c VALUES (1, 1);\n-- ripcord:revert\nDROP TABLE c;\n",
    );
    ok(&project, &["deploy"]);
    project.change(
        "0003_rekey",
        "-- ripcord:deploy\nUPDATE t SET id = id + 100 WHERE id = 1;\n",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    let err = stderr(&out);
    assert!(err.contains("changed the key of 1 row(s)"), "{err}");
    assert!(err.contains("foreign key"), "{err}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM t WHERE id = 1"),
        "1",
        "rolled back"
    );
    assert_eq!(
        db.scalar(if db.is_postgres() {
            "SELECT count(*) FROM ripcord.changes WHERE name = '0003_rekey'"
        } else {
            "SELECT count(*) FROM ripcord_changes WHERE name = '0003_rekey'"
        }),
        "0"
    );
}

fn prune_older_than_is_a_retention_limit((project, db): (Project, Db)) {
    base(&project);
    project.change(
        "0002_purge",
        "-- ripcord:deploy\nDELETE FROM t WHERE id = 1;\n",
    );
    ok(&project, &["deploy"]);
    let vault = if db.is_postgres() {
        "ripcord.vault"
    } else {
        "ripcord_vault"
    };
    // Kept for a day: a limit of a week keeps it, and the change stays revertible.
    let out = ok(&project, &["vault", "prune", "--older-than", "7d"]);
    assert!(!out.contains("0002_purge"), "{out}");
    assert_eq!(db.scalar(&format!("SELECT count(*) FROM {vault}")), "1");
    db.exec(&if db.is_postgres() {
        format!("UPDATE {vault} SET created_at = now() - interval '2 days'")
    } else {
        format!("UPDATE {vault} SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-2 days')")
    });
    let out = ok(&project, &["vault", "prune", "--older-than", "1d"]);
    assert!(out.contains("0002_purge"), "names what it pruned: {out}");
    assert_eq!(db.scalar(&format!("SELECT count(*) FROM {vault}")), "0");
    // The change can no longer be reverted, and says why.
    let out = run(&project, &["revert", "--last", "1", "-y"]);
    expect_exit(&out, 4);
    assert!(
        stderr(&out).contains("pruned from the vault"),
        "{}",
        stderr(&out)
    );
    assert_eq!(db.scalar("SELECT count(*) FROM t"), "2", "nothing ran");

    let out = run(&project, &["vault", "prune", "--older-than", "soon"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("invalid --older-than"),
        "{}",
        stderr(&out)
    );
}

fn a_transaction_none_change_that_destroys_data_needs_a_revert((project, db): (Project, Db)) {
    base(&project);
    project.change(
        "0002_nontx",
        "-- transaction: none\n-- ripcord:deploy\nDELETE FROM t WHERE id = 1;\n",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    assert!(
        stderr(&out).contains("one-transaction changes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(db.scalar("SELECT count(*) FROM t"), "3", "nothing ran");

    // A revert of its own does not bring back what the vault could not keep.
    project.change(
        "0002_nontx",
        "-- transaction: none\n-- ripcord:deploy\nDELETE FROM t WHERE id = 1;\n\
         -- ripcord:revert\nSELECT 1;\n",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    let err = stderr(&out).replace(['│', '\n'], " ");
    assert!(err.contains("destroys"), "{err}");
    assert!(err.contains("statement 1"), "{err}");
    assert_eq!(db.scalar("SELECT count(*) FROM t"), "3", "nothing ran");
    ok(&project, &["deploy", "--accept-irreversible", "0002_nontx"]);
    assert_eq!(db.scalar("SELECT count(*) FROM t"), "2");
    let events = if db.is_postgres() {
        "ripcord.events"
    } else {
        "ripcord_events"
    };
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM {events} WHERE kind = 'data_loss_accepted' AND change = '0002_nontx'"
        )),
        "1"
    );
}

on_both_engines!(
    an_update_that_changes_keys_is_put_back_under_the_old_keys,
    a_key_change_others_reference_is_refused,
    prune_older_than_is_a_retention_limit,
    a_transaction_none_change_that_destroys_data_needs_a_revert,
);

#[test]
fn a_cascade_that_takes_views_along_is_refused_naming_them() {
    let (project, db) = Db::postgres_project();
    base(&project);
    project.change(
        "0002_view",
        "-- ripcord:deploy\nCREATE VIEW tv AS SELECT v FROM t;\n-- ripcord:revert\nDROP VIEW tv;\n",
    );
    ok(&project, &["deploy"]);
    project.change("0003_drop", "-- ripcord:deploy\nDROP TABLE t CASCADE;\n");
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    assert!(stderr(&out).contains("public.tv"), "{}", stderr(&out));
    assert!(db.has_table("t"));
    assert_eq!(
        db.scalar("SELECT count(*) FROM tv"),
        "3",
        "the view is still there"
    );
}

#[test]
fn dropped_serial_and_identity_columns_come_back_with_their_sequences() {
    let (project, db) = Db::postgres_project();
    project.change(
        "0001_s",
        "-- ripcord:deploy\nCREATE TABLE s (id bigint PRIMARY KEY, v text, \
         g integer GENERATED ALWAYS AS IDENTITY (START WITH 10 INCREMENT BY 5), n serial);\n\
         INSERT INTO s (id, v) SELECT i, 'v' || i FROM generate_series(1, 4) i;\n\
         -- ripcord:revert\nDROP TABLE s;\n",
    );
    ok(&project, &["deploy"]);
    // Values handed out and thrown away still count: the sequence is past the rows.
    // (The columns are the last ones: a re-created column comes back last, and the
    // drill compares column order.)
    db.exec("SELECT nextval('s_n_seq'); SELECT nextval('s_n_seq');");
    let columns = "SELECT string_agg(id || ':' || n || ':' || g, ',' ORDER BY id) FROM s";
    let before = db.scalar(columns);
    project.change(
        "0002_drop",
        "-- ripcord:deploy\nALTER TABLE s DROP COLUMN n, DROP COLUMN g;\n",
    );
    let drill = ok(&project, &["drill"]);
    assert!(drill.contains("pass 0002_drop"), "{drill}");
    ok(&project, &["deploy"]);
    assert!(!db.has_column("s", "n"));
    ok(&project, &["revert", "--last", "1", "-y"]);
    assert_eq!(db.scalar(columns), before);
    assert_eq!(
        db.scalar("SELECT nextval('s_n_seq')"),
        "7",
        "serial continues"
    );
    db.exec("INSERT INTO s (id, v) VALUES (5, 'new')");
    assert_eq!(
        db.scalar("SELECT g FROM s WHERE id = 5"),
        "30",
        "identity continues after 25"
    );
    assert_eq!(
        db.scalar(
            "SELECT attidentity FROM pg_attribute WHERE attrelid = 's'::regclass AND attname = 'g'"
        ),
        "a",
        "still GENERATED ALWAYS"
    );
}

#[test]
fn dropping_a_key_column_needs_consent_and_is_then_recorded_irreversible() {
    let (project, db) = Db::postgres_project();
    base(&project);
    project.change(
        "0002_dropkey",
        "-- ripcord:deploy\nALTER TABLE t DROP COLUMN id;\n",
    );
    // Drill rehearses it to the refusal and reports it as that change's FAIL line.
    let drill = run(&project, &["drill"]);
    expect_exit(&drill, 1);
    let out = stdout(&drill);
    assert!(out.contains("FAIL 0002_dropkey"), "{out}");
    assert!(out.contains("part of the key of public.t"), "{out}");
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    let err = stderr(&out);
    assert!(err.contains("part of the key of public.t"), "{err}");
    assert!(err.contains("consent for this deploy"), "{err}");
    assert!(db.has_column("t", "id"), "nothing changed");

    ok(
        &project,
        &["deploy", "--accept-irreversible", "0002_dropkey"],
    );
    assert!(!db.has_column("t", "id"));
    let reason = db.scalar("SELECT irreversible FROM ripcord.changes WHERE name = '0002_dropkey'");
    assert!(reason.contains("part of the key"), "{reason}");
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM ripcord.events WHERE kind = 'irreversible_accepted' AND change = '0002_dropkey'"
        ),
        "1"
    );
    let out = run(&project, &["revert", "--last", "1", "-y"]);
    expect_exit(&out, 4);
}

#[test]
fn truncate_cascade_and_restart_identity_need_a_revert_or_consent() {
    let (project, db) = Db::postgres_project();
    base(&project);
    for (name, sql) in [
        ("0002_cascade", "TRUNCATE t CASCADE"),
        ("0002_restart", "TRUNCATE t RESTART IDENTITY"),
    ] {
        project.change(name, &format!("-- ripcord:deploy\n{sql};\n"));
        let out = run(&project, &["deploy"]);
        expect_exit(&out, 4);
        let err = stderr(&out);
        assert!(err.contains("not one ripcord knows how to undo"), "{err}");
        assert_eq!(db.scalar("SELECT count(*) FROM t"), "3", "nothing changed");
        std::fs::remove_file(project.path().join(format!("changes/{name}.sql"))).unwrap();
    }
}

#[test]
fn a_rerun_drops_the_invalid_index_an_interrupted_concurrent_build_left() {
    let (project, db) = Db::postgres_project();
    base(&project);
    db.exec("INSERT INTO t VALUES (4, 'a')");
    project.change(
        "0002_index",
        "-- transaction: none\n-- ripcord:deploy\n\
         CREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n\
         CREATE UNIQUE INDEX CONCURRENTLY t_v_key ON t (v);\n\
         -- ripcord:revert\nDROP INDEX CONCURRENTLY t_v_key;\nDROP INDEX CONCURRENTLY t_id_idx;\n",
    );
    // The unique build fails on the duplicate and leaves an INVALID index behind.
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 1);
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_index WHERE indexrelid = 't_v_key'::regclass AND NOT indisvalid"),
        "1"
    );
    db.exec("DELETE FROM t WHERE id = 4");
    // The rerun resumes at statement 2, drops the INVALID index and builds it again.
    ok(&project, &["deploy"]);
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_index WHERE indexrelid = 't_v_key'::regclass AND indisvalid"
        ),
        "1"
    );
    assert_eq!(
        db.scalar("SELECT detail::jsonb->>'index' FROM ripcord.events WHERE kind = 'invalid_index_dropped'"),
        "public.t_v_key"
    );
    assert_eq!(
        db.scalar("SELECT state FROM ripcord.changes WHERE name = '0002_index'"),
        "deployed"
    );
}

#[test]
fn dropped_indexes_functions_and_changed_comments_come_back_on_revert() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    base(&project);
    let caller = format!("{}_caller", pg.name);
    db.exec(&format!("CREATE ROLE {caller}"));
    project.change(
        "0002_objects",
        &format!("-- ripcord:deploy
         CREATE INDEX t_v ON t (lower(v)) WHERE v <> '';
         COMMENT ON INDEX t_v IS 'for the search page';
         CREATE FUNCTION total(a integer, b integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
         REVOKE ALL ON FUNCTION total(integer, integer) FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION total(integer, integer) TO {caller};
         COMMENT ON FUNCTION total(integer, integer) IS 'adds';
         COMMENT ON TABLE t IS 'the table';
         -- ripcord:revert
         DROP FUNCTION total(integer, integer); DROP INDEX t_v; COMMENT ON TABLE t IS NULL;\n"),
    );
    ok(&project, &["deploy"]);
    let state = |db: &Db| {
        db.scalar(&format!(
            "SELECT concat_ws(' | ',
                pg_get_indexdef('t_v'::regclass), obj_description('t_v'::regclass, 'pg_class'),
                pg_get_functiondef('total(integer, integer)'::regprocedure),
                obj_description('total(integer, integer)'::regprocedure, 'pg_proc'),
                has_function_privilege('{caller}', 'total(integer, integer)', 'EXECUTE'),
                (SELECT count(*) FROM aclexplode((SELECT proacl FROM pg_proc WHERE oid = 'total(integer, integer)'::regprocedure)) WHERE grantee = 0),
                obj_description('t'::regclass, 'pg_class'), col_description('t'::regclass, 2))"
        ))
    };
    let before = state(&db);
    assert!(
        before.contains("for the search page") && before.contains("| t | 0 |"),
        "{before}"
    );
    project.change(
        "0003_cleanup",
        "-- ripcord:deploy\nDROP INDEX t_v;\nDROP FUNCTION total(integer, integer);\n\
         COMMENT ON TABLE t IS 'renamed purpose';\nCOMMENT ON COLUMN t.v IS 'the value';\n",
    );
    let drill = ok(&project, &["drill"]);
    assert!(drill.contains("pass 0003_cleanup"), "{drill}");
    ok(&project, &["deploy"]);
    assert_eq!(db.scalar("SELECT to_regclass('t_v') IS NULL"), "true");
    assert_eq!(
        db.scalar("SELECT to_regprocedure('total(integer, integer)') IS NULL"),
        "true"
    );
    ok(&project, &["revert", "--last", "1", "-y"]);
    assert_eq!(
        state(&db),
        before,
        "index with its comment, function with its privileges and comment, and the old comments are back"
    );
    assert_eq!(db.scalar("SELECT total(2, 3)"), "5");
}

#[test]
fn sqlite_still_refuses_what_its_vault_cannot_keep() {
    let (project, db) = Db::sqlite_project();
    base(&project);
    db.exec("CREATE INDEX t_v ON t (v)");
    project.change("0002_drop_index", "-- ripcord:deploy\nDROP INDEX t_v;\n");
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    assert_eq!(
        db.scalar("SELECT count(*) FROM sqlite_master WHERE name = 't_v'"),
        "1",
        "nothing changed"
    );
}

#[test]
fn grants_and_revokes_on_tables_are_reverted_and_drill_sees_privileges() {
    let (project, db) = Db::postgres_project();
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    base(&project);
    let (app, reader) = (format!("{}_app", pg.name), format!("{}_reader", pg.name));
    db.exec(&format!(
        "CREATE ROLE {app}; CREATE ROLE {reader}; GRANT SELECT, INSERT ON t TO {app};"
    ));
    let privileges = |db: &Db| {
        db.scalar(&format!(
            "SELECT coalesce(string_agg(grantee || ':' || privilege_type || ':' || is_grantable, ',' \
                ORDER BY grantee, privilege_type), '') FROM information_schema.table_privileges \
             WHERE table_name = 't' AND grantee IN ('{app}', '{reader}')"
        )) + "/"
            + &db.scalar(&format!(
                "SELECT coalesce(string_agg(grantee || ':' || column_name || ':' || privilege_type, ',' \
                    ORDER BY grantee, column_name, privilege_type), '') FROM information_schema.column_privileges \
                 WHERE table_name = 't' AND grantee = '{reader}'"
            ))
    };
    let before = privileges(&db);
    project.change(
        "0002_access",
        &format!(
            "-- ripcord:deploy\nREVOKE INSERT ON t FROM {app};\nGRANT UPDATE ON t TO {app} WITH GRANT OPTION;\n\
             GRANT SELECT (v) ON t TO {reader};\n"
        ),
    );
    let drill = ok(&project, &["drill", "--from-target"]);
    assert!(drill.contains("pass 0002_access"), "{drill}");
    ok(&project, &["deploy"]);
    assert_ne!(privileges(&db), before);
    ok(&project, &["revert", "--last", "1", "-y"]);
    assert_eq!(privileges(&db), before);

    // A revert that forgets a grant: drill names the privilege left behind.
    project.change(
        "0002_access",
        &format!(
            "-- ripcord:deploy\nGRANT SELECT ON t TO {reader};\n-- ripcord:revert\nSELECT 1;\n"
        ),
    );
    let out = run(&project, &["drill", "--from-target"]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains(&format!("privileges {reader}=SELECT")),
        "{}",
        stdout(&out)
    );
}

const PARENT_AND_CHILD: &str = "-- ripcord:deploy
CREATE TABLE parent (id serial PRIMARY KEY, a text, b int DEFAULT 7 NOT NULL, c text CHECK (c <> 'x'),
  d int GENERATED ALWAYS AS (id * 2) STORED, e int GENERATED BY DEFAULT AS IDENTITY);
CREATE INDEX parent_b_idx ON parent (b);
CREATE INDEX parent_c_idx ON parent (c);
COMMENT ON COLUMN parent.a IS 'the a';
GRANT SELECT ON parent TO PUBLIC;
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));
INSERT INTO parent (a, b, c) SELECT 'a' || i, i, 'c' || i FROM generate_series(1, 100) i;
INSERT INTO child SELECT i, 1 + i % 100 FROM generate_series(1, 50) i;
-- ripcord:revert
DROP TABLE child;
DROP TABLE parent;
";

fn parent_columns(db: &Db) -> String {
    db.scalar(
        "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute \
         WHERE attrelid = 'parent'::regclass AND attnum > 0 AND NOT attisdropped",
    )
}

#[test]
fn column_order_rebuild_brings_a_dropped_column_back_in_its_place() {
    let (project, db) = Db::postgres_project();
    project.change("0001_base", PARENT_AND_CHILD);
    project.change(
        "0002_drop_b",
        "-- column-order: rebuild\n-- ripcord:deploy\nALTER TABLE parent DROP COLUMN b;\n",
    );
    // Drill compares column order, constraints, indexes, comments, grants and data.
    let drill = ok(&project, &["drill"]);
    assert!(drill.contains("pass 0002_drop_b"), "{drill}");
    ok(&project, &["deploy"]);
    db.exec("INSERT INTO parent (a, c) VALUES ('later', 'later')");
    ok(&project, &["revert", "--last", "1", "-y"]);
    assert_eq!(
        parent_columns(&db),
        "id,a,b,c,d,e",
        "b is back in its place"
    );
    assert_eq!(
        db.scalar("SELECT sum(b) FROM parent WHERE id <= 100"),
        "5050"
    );
    assert_eq!(
        db.scalar("SELECT b FROM parent WHERE a = 'later'"),
        "7",
        "a row added after the drop gets the default"
    );
    // Both sequences continue where they were; the child's foreign key holds.
    db.exec("INSERT INTO parent (a) VALUES ('next')");
    assert_eq!(
        db.scalar("SELECT id || ',' || e || ',' || d FROM parent WHERE a = 'next'"),
        "102,102,204"
    );
    assert_eq!(
        db.scalar("SELECT pg_get_serial_sequence('parent', 'id')"),
        "public.parent_id_seq"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'child'::regclass \
             AND confrelid = 'parent'::regclass AND convalidated"
        ),
        "1"
    );
    assert_eq!(
        db.scalar("SELECT col_description('parent'::regclass, 2)"),
        "the a"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ripcord\\_rebuild%'"),
        "0"
    );
    ok(&project, &["audit", "verify"]);
    // Without the directive the column comes back last, and drill says so.
    project.change(
        "0002_drop_b",
        "-- ripcord:deploy\nALTER TABLE parent DROP COLUMN b;\n",
    );
    let out = run(&project, &["drill"]);
    expect_exit(&out, 1);
    assert!(
        stdout(&out).contains("column order of public.parent differs after revert"),
        "{}",
        stdout(&out)
    );
    // A row added after the drop gets the column's default on revert there too (it
    // used to fail the revert: NULL in a NOT NULL column).
    ok(&project, &["deploy"]);
    db.exec("INSERT INTO parent (a, c) VALUES ('after', 'after')");
    ok(&project, &["revert", "--last", "1", "-y"]);
    assert_eq!(parent_columns(&db), "id,a,c,d,e,b", "b comes back last");
    assert_eq!(db.scalar("SELECT b FROM parent WHERE a = 'after'"), "7");
    assert_eq!(
        db.scalar("SELECT sum(b) FROM parent WHERE id <= 100"),
        "5050"
    );
}

#[test]
fn column_order_rebuild_is_refused_with_the_reason_when_it_would_lose_something() {
    let (project, db) = Db::postgres_project();
    project.change("0001_base", PARENT_AND_CHILD);
    ok(&project, &["deploy"]);
    db.exec("CREATE VIEW parent_names AS SELECT id, a FROM parent");
    project.change(
        "0002_drop_b",
        "-- column-order: rebuild\n-- ripcord:deploy\nALTER TABLE parent DROP COLUMN b;\n",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    let err = stderr(&out);
    assert!(
        err.contains("cannot rebuild public.parent") && err.contains("public.parent_names"),
        "{err}"
    );
    assert_eq!(parent_columns(&db), "id,a,b,c,d,e", "nothing was applied");
    db.exec("DROP VIEW parent_names");
    ok(&project, &["capture", "enable", "parent"]);
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    assert!(stderr(&out).contains("is captured"), "{}", stderr(&out));
    assert_eq!(parent_columns(&db), "id,a,b,c,d,e", "nothing was applied");
    // An unknown value is a change-file error with its line.
    project.change(
        "0002_drop_b",
        "-- column-order: sideways\n-- ripcord:deploy\nALTER TABLE parent DROP COLUMN b;\n",
    );
    let out = run(&project, &["plan"]);
    expect_exit(&out, 2);
    assert!(
        stderr(&out).contains("unknown column order `sideways`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn statements_the_vault_cannot_undo_are_refused_naming_why_and_drill_fails_them() {
    let (project, db) = Db::postgres_project();
    project.change(
        "0001_objects",
        "-- ripcord:deploy\nCREATE TYPE mood AS ENUM ('ok', 'sad');\nCREATE SCHEMA app;\n\
         CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n\
         -- ripcord:revert\nDROP FUNCTION f();\nDROP SCHEMA app;\nDROP TYPE mood;\n",
    );
    ok(&project, &["deploy"]);
    let cases = [
        ("DROP TYPE mood;", "it drops a type"),
        ("DROP SCHEMA app;", "it drops a schema"),
        (
            "GRANT USAGE ON SCHEMA app TO PUBLIC;",
            "it changes privileges on",
        ),
        (
            "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 2';",
            "it replaces a definition",
        ),
        (
            "DO $$ BEGIN EXECUTE 'DROP TYPE mood'; END $$;",
            "procedural block",
        ),
    ];
    for (sql, why) in cases {
        project.change("0002_x", &format!("-- ripcord:deploy\n{sql}\n"));
        let out = run(&project, &["deploy"]);
        expect_exit(&out, 4);
        assert!(stderr(&out).contains(why), "{sql}: {}", stderr(&out));
        let drill = run(&project, &["drill"]);
        expect_exit(&drill, 1);
        assert!(
            stdout(&drill).contains("FAIL 0002_x"),
            "{sql}: {}",
            stdout(&drill)
        );
    }
    assert_eq!(
        db.scalar(
            "SELECT (to_regtype('mood') IS NOT NULL) || ',' || \
             (SELECT count(*) FROM pg_namespace WHERE nspname = 'app') || ',' || \
             (SELECT prosrc FROM pg_proc WHERE proname = 'f')"
        ),
        "true,1,SELECT 1",
        "nothing was applied"
    );
}

#[test]
fn a_dropped_partition_comes_back_attached_and_a_partitioned_drop_is_refused() {
    let (project, db) = Db::postgres_project();
    project.change(
        "0001_orders",
        "-- ripcord:deploy\n\
         CREATE TABLE orders (id bigint, placed date NOT NULL, note text, PRIMARY KEY (id, placed))\n\
           PARTITION BY RANGE (placed);\n\
         CREATE TABLE orders_2025 PARTITION OF orders FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');\n\
         CREATE TABLE orders_2026 PARTITION OF orders FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')\n\
           PARTITION BY RANGE (placed);\n\
         CREATE TABLE orders_2026_h1 PARTITION OF orders_2026 DEFAULT;\n\
         CREATE INDEX orders_note_idx ON orders (note);\n\
         INSERT INTO orders SELECT i, date '2025-06-01' + (i % 400), 'n' || i FROM generate_series(1, 800) i;\n\
         -- ripcord:revert\nDROP TABLE orders;\n",
    );
    ok(&project, &["deploy"]);
    let fingerprint = || {
        ok(&project, &["fingerprint", "--json"])
            .lines()
            .filter(|l| !l.contains("duration_ms"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = fingerprint();
    project.change(
        "0002_drop_2025",
        "-- ripcord:deploy\nDROP TABLE orders_2025;\n",
    );
    let drill = ok(&project, &["drill"]);
    assert!(drill.contains("pass 0002_drop_2025"), "{drill}");
    ok(&project, &["deploy"]);
    assert!(!db.has_table("orders_2025"));
    ok(&project, &["revert", "--last", "1", "-y"]);
    assert_eq!(
        fingerprint(),
        before,
        "the partition is back, attached, rows and index"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM orders WHERE placed < '2026-01-01'"),
        db.scalar("SELECT count(*) FROM orders_2025")
    );
    project.change(
        "0002_drop_2025",
        "-- ripcord:deploy\nDROP TABLE orders_2026;\n",
    );
    let out = run(&project, &["deploy"]);
    expect_exit(&out, 4);
    assert!(stderr(&out).contains("is partitioned"), "{}", stderr(&out));
    assert!(db.has_table("orders_2026_h1"), "nothing was dropped");
}
