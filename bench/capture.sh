#!/usr/bin/env bash
# Benchmark: write overhead of ripcord's row-change capture, against no capture,
# against a row-level jsonb audit trigger (the supa_audit / pgMemento kind, written
# here as the peer) and against the table_log extension (Debian package
# postgresql-15-tablelog, installed with apt-get when running as root and missing;
# its column is left out, saying so, when it cannot be installed), and the time of
# `batch revert` against the original load; and the same statements on a table captured
# in logical mode (`capture enable --mode logical`), with the time of the `capture sync`
# that drains each into the log shown apart. The logical table lives in a database of
# its own (a slot decodes the WAL of its database only: in the same database every
# undo would first decode the other columns' statements, which `serve` keeps drained in
# real use); the server runs with wal_level = logical for every column.
#
#   bash bench/capture.sh [ROWS] [REPS]     (defaults 1000000 and 3)
#
# Same table shape, same server, after a warm-up; the best of REPS runs of each
# statement counts, and ratios are against the plain statement.
set -euo pipefail
ROWS=${1:-1000000}
REPS=${2:-3}
. "$(dirname "$0")/lib.sh"
start_pg -c shared_buffers=1GB -c max_wal_size=8GB -c wal_level=logical -c max_replication_slots=10
psql() { command psql -qAtX -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d cap "$@"; }
command psql -qAt -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "create database cap" -c "create database caplog"
lpsql() { command psql -qAtX -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d caplog "$@"; }

# The table_log peer: its extension files must be in the server's share directory.
TABLE_LOG=0
ext_dir="$("$BIN/pg_config" --sharedir 2>/dev/null || echo /usr/share/postgresql/15)/extension"
if [ ! -f "$ext_dir/table_log.control" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "bench: installing postgresql-15-tablelog" >&2
  apt-get install -y -qq postgresql-15-tablelog >/dev/null 2>&1 || true
fi
if [ -f "$ext_dir/table_log.control" ]; then
  TABLE_LOG=1
  psql -c "CREATE EXTENSION table_log"
else
  echo "bench: table_log is not installable here; its column is left out" >&2
fi

build_ripcord
URL="postgres://postgres@127.0.0.1:$PORT/cap"
LURL="postgres://postgres@127.0.0.1:$PORT/caplog"

SHAPE="(id bigint PRIMARY KEY, customer_id int NOT NULL, total numeric(12,2) NOT NULL, status text NOT NULL, note text, created_at timestamptz NOT NULL)"
LOAD="SELECT g, g % 100000, (g % 100000) / 100.0, 'new', 'order note ' || md5(g::text), now() FROM generate_series(1, $ROWS) g"
psql <<SQL
CREATE TABLE audit_log (id bigserial PRIMARY KEY, table_name text NOT NULL, op text NOT NULL,
                        old_record jsonb, new_record jsonb, at timestamptz NOT NULL DEFAULT now());
CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    INSERT INTO audit_log (table_name, op, old_record, new_record)
    VALUES (TG_TABLE_NAME, TG_OP,
            CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
            CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
    RETURN NULL;
END \$\$;
-- The floor of the mechanism: statement triggers with transition tables that log nothing.
CREATE FUNCTION transition_only() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    IF TG_OP = 'INSERT' THEN PERFORM 1 FROM ripcord_new LIMIT 1; ELSE PERFORM 1 FROM ripcord_old LIMIT 1; END IF;
    RETURN NULL;
END \$\$;
-- warm-up: the same work on a throwaway table
CREATE TABLE warm $SHAPE;
INSERT INTO warm $LOAD;
UPDATE warm SET status = 'paid';
DROP TABLE warm;
CHECKPOINT;
SQL

timed() { local s e; s=$(now); "$@" >/dev/null; e=$(now); echo "$e - $s" | bc; }
sql_timed() { timed psql -c "$1"; }
min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc)" = 1 ]; then echo "$2"; else echo "$1"; fi; }

# Each repetition uses fresh tables; the three variants alternate so that they share
# the machine's noise, and the best time of each counts.
ins_log=""; upd_log=""; sync_ins=""; sync_upd=""
ins_plain=""; ins_cap=""; ins_audit=""; ins_tl=""; ins_floor=""; upd_plain=""; upd_cap=""; upd_audit=""; upd_tl=""; upd_floor=""
for r in $(seq 1 "$REPS"); do
  psql -c "CREATE TABLE plain_$r $SHAPE" -c "CREATE TABLE captured_$r $SHAPE" -c "CREATE TABLE audited_$r $SHAPE" \
       -c "CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON audited_$r FOR EACH ROW EXECUTE FUNCTION audit_row()" \
       -c "CREATE TABLE floor_$r $SHAPE" \
       -c "CREATE TRIGGER ins AFTER INSERT ON floor_$r REFERENCING NEW TABLE AS ripcord_new FOR EACH STATEMENT EXECUTE FUNCTION transition_only()" \
       -c "CREATE TRIGGER upd AFTER UPDATE ON floor_$r REFERENCING OLD TABLE AS ripcord_old FOR EACH STATEMENT EXECUTE FUNCTION transition_only()"
  "$RIPCORD" --url "$URL" -q capture enable "captured_$r"
  lpsql -c "CREATE TABLE logical_$r $SHAPE"
  "$RIPCORD" --url "$LURL" -q capture enable --mode logical "logical_$r"
  if [ "$TABLE_LOG" = 1 ]; then
    psql -c "CREATE TABLE logged_$r $SHAPE" -c "SELECT table_log_init(4, 'public', 'logged_$r', 'public', 'logged_${r}_log')"
  fi
  psql -c CHECKPOINT
  ins_plain=$(min "$ins_plain" "$(sql_timed "INSERT INTO plain_$r $LOAD")"); psql -c CHECKPOINT
  last_ins=$(timed psql -c "SET ripcord.batch = 'load_$r'" -c "INSERT INTO captured_$r $LOAD")
  ins_cap=$(min "$ins_cap" "$last_ins"); psql -c CHECKPOINT
  ins_floor=$(min "$ins_floor" "$(sql_timed "INSERT INTO floor_$r $LOAD")"); psql -c CHECKPOINT
  # Logical mode: the statement, then the sync that drains it (before anything else
  # writes, so that the sync decodes this statement's WAL only).
  ins_log=$(min "$ins_log" "$(timed lpsql -c "SET ripcord.batch = 'lload_$r'" -c "INSERT INTO logical_$r $LOAD")")
  sync_ins=$(min "$sync_ins" "$(timed "$RIPCORD" --url "$LURL" -q capture sync)"); psql -c CHECKPOINT
  ins_audit=$(min "$ins_audit" "$(sql_timed "INSERT INTO audited_$r $LOAD")"); psql -c CHECKPOINT
  if [ "$TABLE_LOG" = 1 ]; then
    ins_tl=$(min "$ins_tl" "$(sql_timed "INSERT INTO logged_$r $LOAD")"); psql -c CHECKPOINT
  fi
  upd_plain=$(min "$upd_plain" "$(sql_timed "UPDATE plain_$r SET status = 'paid', total = total + 1")"); psql -c CHECKPOINT
  last_upd=$(timed psql -c "SET ripcord.batch = 'fix_$r'" -c "UPDATE captured_$r SET status = 'paid', total = total + 1")
  upd_cap=$(min "$upd_cap" "$last_upd"); psql -c CHECKPOINT
  upd_floor=$(min "$upd_floor" "$(sql_timed "UPDATE floor_$r SET status = 'paid', total = total + 1")"); psql -c CHECKPOINT
  last_lupd=$(timed lpsql -c "SET ripcord.batch = 'lfix_$r'" -c "UPDATE logical_$r SET status = 'paid', total = total + 1")
  upd_log=$(min "$upd_log" "$last_lupd")
  sync_upd=$(min "$sync_upd" "$(timed "$RIPCORD" --url "$LURL" -q capture sync)"); psql -c CHECKPOINT
  upd_audit=$(min "$upd_audit" "$(sql_timed "UPDATE audited_$r SET status = 'paid', total = total + 1")"); psql -c CHECKPOINT
  if [ "$TABLE_LOG" = 1 ]; then
    upd_tl=$(min "$upd_tl" "$(sql_timed "UPDATE logged_$r SET status = 'paid', total = total + 1")"); psql -c CHECKPOINT
  fi
done
# Reverts on the last repetition's batches. The UPDATE batch: nothing changed its rows since.
rev_upd=$(timed "$RIPCORD" --url "$URL" -q batch revert "fix_$REPS"); psql -c CHECKPOINT
# The slot has since retained the WAL of every column above (the server's WAL is one
# stream): drain it first, as `serve` would have, and time that apart.
pre_sync=$(timed "$RIPCORD" --url "$LURL" -q capture sync)
rev_lupd=$(timed "$RIPCORD" --url "$LURL" -q batch revert "lfix_$REPS"); psql -c CHECKPOINT
[ "$(lpsql -c "select count(*) from logical_$REPS where status = 'paid'")" = 0 ] || { echo "bench: logical batch revert left rows behind" >&2; exit 1; }
# A load that nothing touched since: one more captured load into a fresh table.
psql -c "CREATE TABLE reloaded $SHAPE"
"$RIPCORD" --url "$URL" -q capture enable reloaded
psql -c CHECKPOINT
last_reload=$(timed psql -c "SET ripcord.batch = 'reload'" -c "INSERT INTO reloaded $LOAD"); psql -c CHECKPOINT
rev_reload=$(timed "$RIPCORD" --url "$URL" -q batch revert reload); psql -c CHECKPOINT
[ "$(psql -c "select count(*) from reloaded")" = 0 ] || { echo "bench: batch revert left rows behind" >&2; exit 1; }
# The first load, whose rows the fix and its revert touched since: force, as an operator would.
rev_load=$(timed "$RIPCORD" --url "$URL" -q batch revert "load_$REPS" --on-conflict force)
[ "$(psql -c "select count(*) from captured_$REPS")" = 0 ] || { echo "bench: batch revert left rows behind" >&2; exit 1; }

ratio() { echo "scale=2; $1 / $2" | bc | sed "s/^\./0./"; }
printf '\n%s rows, PostgreSQL %s, best of %s, seconds (ratio to the plain statement)\n\n' "$ROWS" "$(pg_version)" "$REPS"
if [ "$TABLE_LOG" = 1 ]; then
  printf '| statement | plain | transition tables alone (floor) | ripcord capture | row-level jsonb audit trigger | table_log |\n|---|---:|---:|---:|---:|---:|\n'
  printf '| INSERT %s rows | %.2f | %.2f (%sx) | %.2f (%sx) | %.2f (%sx) | %.2f (%sx) |\n' "$ROWS" "$ins_plain" "$ins_floor" "$(ratio "$ins_floor" "$ins_plain")" "$ins_cap" "$(ratio "$ins_cap" "$ins_plain")" "$ins_audit" "$(ratio "$ins_audit" "$ins_plain")" "$ins_tl" "$(ratio "$ins_tl" "$ins_plain")"
  printf '| UPDATE %s rows | %.2f | %.2f (%sx) | %.2f (%sx) | %.2f (%sx) | %.2f (%sx) |\n' "$ROWS" "$upd_plain" "$upd_floor" "$(ratio "$upd_floor" "$upd_plain")" "$upd_cap" "$(ratio "$upd_cap" "$upd_plain")" "$upd_audit" "$(ratio "$upd_audit" "$upd_plain")" "$upd_tl" "$(ratio "$upd_tl" "$upd_plain")"
else
  printf '| statement | plain | transition tables alone (floor) | ripcord capture | row-level jsonb audit trigger |\n|---|---:|---:|---:|---:|\n'
  printf '| INSERT %s rows | %.2f | %.2f (%sx) | %.2f (%sx) | %.2f (%sx) |\n' "$ROWS" "$ins_plain" "$ins_floor" "$(ratio "$ins_floor" "$ins_plain")" "$ins_cap" "$(ratio "$ins_cap" "$ins_plain")" "$ins_audit" "$(ratio "$ins_audit" "$ins_plain")"
  printf '| UPDATE %s rows | %.2f | %.2f (%sx) | %.2f (%sx) | %.2f (%sx) |\n' "$ROWS" "$upd_plain" "$upd_floor" "$(ratio "$upd_floor" "$upd_plain")" "$upd_cap" "$(ratio "$upd_cap" "$upd_plain")" "$upd_audit" "$(ratio "$upd_audit" "$upd_plain")"
fi
printf '\nLogical mode (capture enable --mode logical): the statement, and the capture sync that drains it into the log afterwards\n\n'
printf '| statement | plain | logical capture, statement | capture sync afterwards |\n|---|---:|---:|---:|\n'
printf '| INSERT %s rows | %.2f | %.2f (%sx) | %.2f |\n' "$ROWS" "$ins_plain" "$ins_log" "$(ratio "$ins_log" "$ins_plain")" "$sync_ins"
printf '| UPDATE %s rows | %.2f | %.2f (%sx) | %.2f |\n' "$ROWS" "$upd_plain" "$upd_log" "$(ratio "$upd_log" "$upd_plain")" "$sync_upd"
printf '\n| batch revert (last repetition) | seconds | the original statement (captured) | revert / original |\n|---|---:|---:|---:|\n'
printf '| revert of the %s-row UPDATE batch | %.2f | %.2f | %sx |\n' "$ROWS" "$rev_upd" "$last_upd" "$(ratio "$rev_upd" "$last_upd")"
printf '| revert of the %s-row UPDATE batch, logical mode (after a capture sync of %.2f s) | %.2f | %.2f | %sx |\n' "$ROWS" "$pre_sync" "$rev_lupd" "$last_lupd" "$(ratio "$rev_lupd" "$last_lupd")"
printf '| revert of a %s-row INSERT batch nothing touched since | %.2f | %.2f | %sx |\n' "$ROWS" "$rev_reload" "$last_reload" "$(ratio "$rev_reload" "$last_reload")"
printf '| revert of the %s-row INSERT batch, updated twice since (--on-conflict force) | %.2f | %.2f | %sx |\n' "$ROWS" "$rev_load" "$last_ins" "$(ratio "$rev_load" "$last_ins")"
