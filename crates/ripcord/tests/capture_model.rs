//! Property test: random interleaved batches on a small table, checked against a model.
//! After the batches, reverting one batch (force) must give exactly the model's answer,
//! and flashing the table back to the moment after any batch must give the table as it
//! was then.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use ripcord::capture::{enable, undo};
use ripcord_core::capture::CaptureMode;
use ripcord_core::capture::{ConflictMode, UndoScope};
use ripcord_testkit::{pg, pg_logical};

type State = BTreeMap<i32, i32>;

#[derive(Debug, Clone)]
enum Op {
    Upsert(i32, i32),
    Delete(i32),
    Bump(i32),
    /// Change a row's key (when `from` exists and `to` does not).
    Move(i32, i32),
    /// One INSERT of the keys k, k+1, k+2 that do not exist yet.
    Fill(i32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6, 0..100).prop_map(|(k, v)| Op::Upsert(k, v)),
        (0..6).prop_map(Op::Delete),
        (0..6).prop_map(Op::Bump),
        (0..6, 0..9).prop_map(|(from, to)| Op::Move(from, to)),
        (0..7).prop_map(Op::Fill),
    ]
}

fn read(client: &mut postgres::Client) -> State {
    client
        .query("SELECT id, v FROM t", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Apply `op` to the database (as statements) and to the model.
fn apply(client: &mut postgres::Client, state: &mut State, op: &Op) {
    match op {
        Op::Upsert(k, v) if state.contains_key(k) => {
            client.execute("UPDATE t SET v = $2 WHERE id = $1", &[k, v])
        }
        Op::Upsert(k, v) => client.execute("INSERT INTO t VALUES ($1, $2)", &[k, v]),
        Op::Delete(k) => client.execute("DELETE FROM t WHERE id = $1", &[k]),
        // A multi-row statement: every row at or above k.
        Op::Bump(k) => client.execute("UPDATE t SET v = v + 1 WHERE id >= $1", &[k]),
        Op::Move(from, to) if state.contains_key(from) && !state.contains_key(to) => {
            client.execute("UPDATE t SET id = $2 WHERE id = $1", &[from, to])
        }
        Op::Move(..) => Ok(0),
        Op::Fill(k) => client.execute(
            "INSERT INTO t SELECT g, 7 FROM generate_series($1, $1 + 2) g WHERE NOT EXISTS (SELECT 1 FROM t WHERE id = g)",
            &[k],
        ),
    }
    .unwrap();
    model_apply(state, op);
}

fn touched(ops: &[Op], before: &State) -> Vec<i32> {
    let mut keys: Vec<i32> = Vec::new();
    let mut state = before.clone();
    for op in ops {
        match op {
            Op::Upsert(k, _) => keys.push(*k),
            Op::Delete(k) => {
                if state.contains_key(k) {
                    keys.push(*k);
                }
            }
            Op::Bump(k) => keys.extend(state.range(*k..).map(|(key, _)| *key)),
            Op::Move(from, to) => {
                if state.contains_key(from) && !state.contains_key(to) {
                    keys.extend([*from, *to]);
                }
            }
            Op::Fill(k) => keys.extend((*k..*k + 3).filter(|key| !state.contains_key(key))),
        }
        model_apply(&mut state, op);
    }
    keys.sort();
    keys.dedup();
    keys
}

fn model_apply(state: &mut State, op: &Op) {
    match op {
        Op::Upsert(k, v) => {
            state.insert(*k, *v);
        }
        Op::Delete(k) => {
            state.remove(k);
        }
        Op::Bump(k) => {
            for (_, v) in state.range_mut(*k..) {
                *v += 1;
            }
        }
        Op::Move(from, to) => {
            if !state.contains_key(to)
                && let Some(v) = state.remove(from)
            {
                state.insert(*to, v);
            }
        }
        Op::Fill(k) => {
            for key in *k..*k + 3 {
                state.entry(key).or_insert(7);
            }
        }
    }
}

/// One case of the model on `db`, capturing in `mode`.
fn check_model(
    db: &ripcord_testkit::TestDatabase,
    mode: CaptureMode,
    batches: &[Vec<Op>],
    revert_pick: usize,
    flash_pick: usize,
) -> Result<(), TestCaseError> {
    let mut client = db.connect();
    client.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL); INSERT INTO t VALUES (0, 0), (3, 30)").unwrap();
    let mut target = ripcord::target::connect("t", &db.url, Path::new(".")).unwrap();
    enable(&mut target, &["t".to_string()], mode).unwrap();

    let mut state: State = read(&mut client);
    let mut before_batch = Vec::new();
    let mut moments = Vec::new();
    let mut after_batch = Vec::new();
    for (i, ops) in batches.iter().enumerate() {
        before_batch.push(state.clone());
        client
            .batch_execute(&format!("SET ripcord.batch = 'b{i}'"))
            .unwrap();
        for op in ops {
            apply(&mut client, &mut state, op);
        }
        client.batch_execute("RESET ripcord.batch").unwrap();
        prop_assert_eq!(read(&mut client), state.clone());
        after_batch.push(state.clone());
        let moment: String = client
            .query_one("SELECT clock_timestamp()::text", &[])
            .unwrap()
            .get(0);
        moments.push(moment);
    }

    // Revert one batch with force: its keys go back to their state before it.
    let j = revert_pick % batches.len();
    let mut expected = state.clone();
    for key in touched(&batches[j], &before_batch[j]) {
        match before_batch[j].get(&key) {
            Some(v) => {
                expected.insert(key, *v);
            }
            None => {
                expected.remove(&key);
            }
        }
    }
    let scope = UndoScope::Batch(format!("b{j}"));
    let changed_rows = touched(&batches[j], &before_batch[j]).iter().any(|k| {
        // A batch whose statements all matched no row left nothing in the log.
        before_batch[j].get(k) != after_batch[j].get(k)
            || batches[j]
                .iter()
                .any(|op| matches!(op, Op::Upsert(key, _) if key == k))
    });
    match undo(&mut target, &scope, ConflictMode::Force, false) {
        Ok(report) => {
            prop_assert!(report.committed);
            prop_assert_eq!(read(&mut client), expected);
        }
        Err(e) => {
            prop_assert!(!changed_rows, "revert of b{} failed: {}", j, e);
            prop_assert_eq!(read(&mut client), state.clone());
        }
    }

    // Flashback to the moment after batch i undoes everything later, the revert too.
    let i = flash_pick % batches.len();
    let scope = UndoScope::After {
        table: "t".into(),
        after: moments[i].clone(),
    };
    undo(&mut target, &scope, ConflictMode::Force, false).unwrap();
    prop_assert_eq!(read(&mut client), after_batch[i].clone());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn revert_and_flashback_match_the_model(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..6), 2..5),
        revert_pick in 0usize..4,
        flash_pick in 0usize..4,
    ) {
        check_model(&pg().create_database(), CaptureMode::Trigger, &batches, revert_pick, flash_pick)?;
    }

    /// The same model in logical mode: the log is filled by decoding, the answers are
    /// the same.
    #[test]
    fn revert_and_flashback_match_the_model_in_logical_mode(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..6), 2..5),
        revert_pick in 0usize..4,
        flash_pick in 0usize..4,
    ) {
        check_model(&pg_logical().create_database(), CaptureMode::Logical, &batches, revert_pick, flash_pick)?;
    }
}
