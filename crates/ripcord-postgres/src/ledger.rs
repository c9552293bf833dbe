//! The ledger schema `ripcord` and its upgrades, one step per version.
//!
//! Step N brings a ledger from version N-1 to N; a ledger is upgraded by running the
//! steps after its version in one transaction. Never edit a released step: add one.

/// DDL to bring a ledger at version `from` (0 = none) up to the current version.
pub fn upgrade_sql(from: u32) -> String {
    let mut sql = String::new();
    for (version, step) in STEPS.iter().enumerate() {
        let version = version as u32 + 1;
        if version > from {
            for part in *step {
                sql.push_str(part);
            }
            sql.push_str(&format!(
                "\nINSERT INTO ripcord.meta (key, value) VALUES ('ledger_version', '{version}')
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value;\n"
            ));
        }
    }
    sql
}

const STEPS: &[&[&str]] = &[
    &[STEP_1],
    &[crate::capture::LEDGER_STEP],
    &[crate::vault::LEDGER_STEP],
    &[STEP_4, crate::vault::PUT_BACK_V2],
    &[crate::checks::LEDGER_STEP],
    &[crate::fleet::LEDGER_STEP],
    &[crate::vault::KEY_MOVES],
];

/// Version 4: changes carry the project that deployed them, and the vault's put-back
/// refuses to pretend when a revert did not re-create a column whose values it holds.
const STEP_4: &str = concat!(
    "ALTER TABLE ripcord.changes ADD COLUMN project text;\n",
    "COMMENT ON COLUMN ripcord.changes.project IS 'the [project] name that deployed the change; NULL: deployed before ripcord recorded projects';\n",
);

const STEP_1: &str = r#"
CREATE SCHEMA IF NOT EXISTS ripcord;
COMMENT ON SCHEMA ripcord IS 'ripcord ledger: deployed changes, audit chain, lock. Managed by ripcord; do not edit.';
CREATE TABLE ripcord.meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE ripcord.changes (
    name             text PRIMARY KEY,
    deploy_seq       bigint NOT NULL UNIQUE,
    checksum         text NOT NULL,
    deploy_sql       text NOT NULL,
    revert_sql       text,
    verify_sql       text,
    transaction_mode text NOT NULL,
    irreversible     text,
    requires         text[] NOT NULL DEFAULT '{}',
    state            text NOT NULL CHECK (state IN ('deployed', 'deploying', 'reverting')),
    statements_done  integer NOT NULL DEFAULT 0,
    statements_total integer NOT NULL DEFAULT 0,
    deployed_at      timestamptz NOT NULL,
    deployed_by      text NOT NULL,
    deployed_host    text NOT NULL,
    duration_ms      bigint NOT NULL,
    file             text NOT NULL
);
CREATE TABLE ripcord.events (
    seq       bigint PRIMARY KEY,
    at        timestamptz NOT NULL,
    actor     text NOT NULL,
    host      text NOT NULL,
    kind      text NOT NULL,
    target    text NOT NULL,
    change    text,
    detail    text NOT NULL,
    prev_hash text NOT NULL,
    hash      text NOT NULL,
    signature text
);
CREATE FUNCTION ripcord.refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'ripcord.events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'the audit chain is evidence; it is never edited';
END
$fn$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON ripcord.events
    FOR EACH ROW EXECUTE FUNCTION ripcord.refuse_event_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ripcord.events
    FOR EACH STATEMENT EXECUTE FUNCTION ripcord.refuse_event_change();
CREATE TABLE ripcord.lock (
    id      integer PRIMARY KEY CHECK (id = 1),
    host    text NOT NULL,
    pid     integer NOT NULL,
    since   timestamptz NOT NULL,
    command text NOT NULL
);
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_records_its_version() {
        let sql = upgrade_sql(0);
        assert!(sql.contains("VALUES ('ledger_version', '1')"));
        assert_eq!(STEPS.len() as u32, ripcord_core::engine::LEDGER_VERSION);
        assert!(upgrade_sql(STEPS.len() as u32).is_empty());
    }
}
