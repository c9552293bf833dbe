#!/usr/bin/env bash
# Benchmark: `ripcord snapshot create` against `pg_dump -Fc` and against raw binary COPY
# to /dev/null (the physical limit), and `ripcord snapshot restore --into` against
# `pg_restore` of that dump into an empty database; on a ROWS-row table and on a
# generated database of about SIZE_GB gigabytes. Same server, same run, best of 3.
#
#   bash bench/snapshot.sh [ROWS] [SIZE_GB]        (defaults: 1000000 1)
set -euo pipefail
ROWS=${1:-1000000}
SIZE_GB=${2:-1}
. "$(dirname "$0")/lib.sh"
start_pg -c shared_buffers=1GB -c max_wal_size=8GB -c checkpoint_timeout=30min
psql() { command psql -qAt -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
url() { echo "postgres://postgres@127.0.0.1:$PORT/$1"; }

echo "bench: generating a $ROWS-row table (db one) and ~${SIZE_GB} GB (db big)" >&2
psql -d postgres -c "create database one" -c "create database big"
table_sql() { # name rows
  cat <<SQL
CREATE TABLE $1 (id bigint PRIMARY KEY, customer_id int NOT NULL, total numeric(12,2) NOT NULL,
                 status text NOT NULL, note text, created_at timestamptz NOT NULL, attrs jsonb);
INSERT INTO $1 SELECT g, g % 100000, (g % 100000) / 100.0, (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
       'order note ' || md5(g::text), timestamptz '2026-01-01' + g * interval '1 second',
       CASE WHEN g % 3 = 0 THEN jsonb_build_object('tier', g % 5) END
FROM generate_series(1, $2) g;
SQL
}
table_sql t "$ROWS" | psql -d one
PER_TABLE=$(( SIZE_GB * 1750000 ))
for n in 1 2 3 4; do table_sql "orders_$n" "$PER_TABLE" | psql -d big; done
psql -d one -c "VACUUM ANALYZE"; psql -d big -c "VACUUM ANALYZE"
SIZE_ONE=$(psql -d one -c "select pg_size_pretty(pg_total_relation_size('t'))")
SIZE_BIG=$(psql -d big -c "select pg_size_pretty(pg_database_size('big'))")

build_ripcord
STORE="file://$WORK/store"
# Restores go into a new empty database, created before the clock starts.
fresh_db() { DB="r$(date +%s%N)"; psql -d postgres -c "create database $DB"; }

best() { # label, then the command; prints the best of 3 in seconds
  local best="" s e t
  for _ in 1 2 3; do
    [ -n "${BEFORE:-}" ] && eval "$BEFORE"
    s=$(now); "$@" >/dev/null 2>"$WORK/err" || { echo "bench: failed: $*" >&2; cat "$WORK/err" >&2; exit 1; }; e=$(now)
    t=$(echo "$e - $s" | bc)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
  done
  echo "$best"
}
raw_copy() { # db tables...
  local db=$1; shift
  for t in "$@"; do psql -d "$db" -c "COPY $t TO STDOUT (FORMAT binary)" >/dev/null; done
}
restore_dump() { "$BIN/pg_restore" -h 127.0.0.1 -p "$PORT" -U postgres -d "$DB" "$WORK/dump"; }
restore_snapshot() { "$RIPCORD" snapshot restore "$1" --into "$(url "$DB")" --store "$STORE" -q; }
last_snapshot() { "$RIPCORD" snapshot list --store "$STORE" --json | python3 -c "import json,sys; print(json.load(sys.stdin)[-1]['id'])"; }

run_case() { # title db pg_dump-selection ripcord-selection raw-tables...
  local title=$1 db=$2 dump_sel=$3 rc_sel=$4; shift 4
  local raw dump rc rdump rrc id dump_size snap_size
  raw=$(best raw_copy "$db" "$@")
  # shellcheck disable=SC2086
  dump=$(best "$BIN/pg_dump" -Fc $dump_sel -h 127.0.0.1 -p "$PORT" -U postgres -f "$WORK/dump" "$db")
  # shellcheck disable=SC2086
  rc=$(best "$RIPCORD" --url "$(url "$db")" snapshot create $rc_sel --store "$STORE" -q)
  id=$(last_snapshot)
  dump_size=$(du -sh "$WORK/dump" | cut -f1)
  snap_size=$(du -sh "$WORK/store/$id" | cut -f1)
  rdump=$(BEFORE=fresh_db best restore_dump)
  rrc=$(BEFORE=fresh_db best restore_snapshot "$id")
  printf '\n%s, PostgreSQL %s, best of 3, seconds\n\n' "$title" "$(pg_version)"
  printf '| operation | seconds | ratio |\n|---|---:|---:|\n'
  printf '| raw binary COPY to /dev/null (limit) | %.2f | |\n' "$raw"
  printf '| pg_dump -Fc (%s) | %.2f | |\n' "$dump_size" "$dump"
  printf '| ripcord snapshot create (%s) | %.2f | %sx faster than pg_dump; %sx of raw COPY |\n' \
    "$snap_size" "$rc" "$(echo "scale=2; $dump / $rc" | bc)" "$(echo "scale=2; $rc / $raw" | bc)"
  printf '| pg_restore into an empty database | %.2f | |\n' "$rdump"
  printf '| ripcord snapshot restore --into an empty database | %.2f | %sx faster than pg_restore |\n' \
    "$rrc" "$(echo "scale=2; $rdump / $rrc" | bc)"
}

run_case "Table t, $ROWS rows ($SIZE_ONE)" one "-t t" "--tables t" t
run_case "Database big, 4 tables ($SIZE_BIG)" big "" "--all" orders_1 orders_2 orders_3 orders_4
