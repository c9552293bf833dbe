#!/usr/bin/env bash
# The recovery-time table: how fast ripcord gets a ~SIZE_GB GB reference database back,
# and how many rows each way back loses (must be 0), in one run on one server.
#
#   bash bench/rto.sh [SIZE_GB] [RUNS]      (defaults: 1 and 3; medians of RUNS runs)
#
# Reference database: customers / orders / order_items / payments with primary keys,
# foreign keys and secondary indexes. Measured:
#   (a) revert of the last schema change: a column added (pure DDL), and a column
#       dropped whose values the vault kept (time includes putting them back);
#   (b) batch revert of one bad 1M-row load into order_items while a later batch stays;
#   (c) flashback of payments to a moment before a burst of changes (inserts, updates,
#       deletes standing for "the last 10 minutes"), online: another session keeps
#       inserting into orders meanwhile, and its rows must all stay;
#   (d) full restore of the database from a ripcord snapshot into an empty database,
#       against pg_restore and pg_restore -j 2 of a pg_dump -Fc of the same database;
#   (e) rows lost: each case compares fingerprints (`ripcord fingerprint`, per-table
#       row count and content hash) with the state it must come back to.
set -euo pipefail
SIZE_GB=${1:-1}
RUNS=${2:-3}
. "$(dirname "$0")/lib.sh"
start_pg -c shared_buffers=1GB -c max_wal_size=8GB -c checkpoint_timeout=30min
psql() { command psql -qAtX -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
url() { echo "postgres://postgres@127.0.0.1:$PORT/$1"; }

S=$SIZE_GB
echo "bench: generating the reference database (~${S} GB)" >&2
psql -d postgres -c "create database ref"
psql -d ref <<SQL
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL,
                        phone text, country char(2) NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO customers SELECT g, 'c' || g || '@example.com', 'Customer ' || g, '+1-555-' || lpad((g % 10000)::text, 4, '0'),
       (ARRAY['US','DE','FR','JP','BR'])[1 + g % 5], timestamptz '2024-01-01' + g * interval '1 minute'
FROM generate_series(1, $((S * 400000))) g;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id),
                     status text NOT NULL, total numeric(12,2) NOT NULL, placed_at timestamptz NOT NULL);
INSERT INTO orders SELECT g, 1 + g % $((S * 400000)), (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
       (g % 50000) / 100.0, timestamptz '2025-01-01' + g * interval '10 seconds'
FROM generate_series(1, $((S * 2000000))) g;
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_placed_idx ON orders (placed_at);
CREATE TABLE order_items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders (id),
                          sku text NOT NULL, qty int NOT NULL, price numeric(10,2) NOT NULL, note text);
INSERT INTO order_items SELECT g, 1 + g % $((S * 2000000)), 'SKU-' || (g % 5000), 1 + g % 5, (g % 9000) / 100.0, NULL
FROM generate_series(1, $((S * 5000000))) g;
CREATE INDEX order_items_order_idx ON order_items (order_id);
CREATE TABLE payments (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders (id),
                       amount numeric(12,2) NOT NULL, method text NOT NULL, paid_at timestamptz NOT NULL);
INSERT INTO payments SELECT g, 1 + g % $((S * 2000000)), (g % 50000) / 100.0, (ARRAY['card','bank','wallet'])[1 + g % 3],
       timestamptz '2025-01-01' + g * interval '12 seconds'
FROM generate_series(1, $((S * 1800000))) g;
CREATE INDEX payments_order_idx ON payments (order_id);
VACUUM ANALYZE;
SQL
DB_SIZE=$(psql -d ref -c "select pg_size_pretty(pg_database_size('ref'))")
echo "bench: reference database $DB_SIZE" >&2

build_ripcord
PROJECT="$WORK/project"
mkdir -p "$PROJECT/changes"
cat > "$PROJECT/ripcord.toml" <<TOML
[project]
name = "rto"
default_target = "ref"

[targets.ref]
url = "$(url ref)"

[snapshots]
store = "file://$WORK/store"
TOML
cat > "$PROJECT/changes/0001_loyalty.sql" <<'SQL'
-- ripcord:deploy
ALTER TABLE customers ADD COLUMN loyalty_tier int;
-- ripcord:revert
ALTER TABLE customers DROP COLUMN loyalty_tier;
SQL
cat > "$PROJECT/changes/0002_drop_phone.sql" <<'SQL'
-- ripcord:deploy
ALTER TABLE customers DROP COLUMN phone;
SQL
rc() { (cd "$PROJECT" && "$RIPCORD" -q "$@"); }
# Fingerprint lines without the timing line: schema digest and one line per table.
fp() { (cd "$PROJECT" && "$RIPCORD" fingerprint --url "$(url "$1")" ${2:+--data-only}) | grep -v ' in [0-9.]* *m\?s$'; }
fp_table() { fp "$1" data | grep " public.$2 " || true; }
timed() { local s e; s=$(now); "$@" >/dev/null; e=$(now); echo "$e - $s" | bc; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
lost=()  # "case: description" for every mismatch
check() { # case expected actual
  if [ "$2" != "$3" ]; then lost+=("$1"); echo "bench: $1: fingerprints differ" >&2; diff <(echo "$2") <(echo "$3") >&2 || true; fi
}

# (a) revert of the last schema change
echo "bench: (a) schema reverts" >&2
# The dropped column comes back last (the default; `column-order: rebuild` would put it
# back in place at the cost of a table rewrite), so its values are compared by name.
phones() { psql -d ref -c "select count(*) || ' ' || md5(string_agg(id || ':' || coalesce(phone, '-'), ',' order by id)) from customers"; }
before_a=$(phones)
a_ddl=(); a_vault=()
for _ in $(seq 1 "$RUNS"); do
  rc deploy
  a_vault+=("$(timed rc revert --last 1 -y)")   # 0002: DROP COLUMN phone, values from the vault
  a_ddl+=("$(timed rc revert --last 1 -y)")     # 0001: ADD COLUMN, pure DDL
  check "(a) schema reverts" "$before_a" "$(phones)"
  check "(a) both changes reverted" 0 "$(psql -d ref -c "select count(*) from information_schema.columns where table_name = 'customers' and column_name = 'loyalty_tier'")"
done
PHONES=$(psql -d ref -c "select count(phone) from customers")

# (b) one bad 1M-row batch, a later good batch stays
echo "bench: (b) batch revert" >&2
rc capture enable order_items
BAD_ROWS=$((S * 1000000))
b_time=()
next_id=$((S * 5000000 + 1))
for r in $(seq 1 "$RUNS"); do
  clean=$(fp_table ref order_items)
  PGOPTIONS="-c ripcord.batch=bad_$r" psql -d ref -c \
    "INSERT INTO order_items SELECT g, 1 + g % $((S * 2000000)), 'SKU-BAD', 1, 0.01, 'bad $r' FROM generate_series($next_id, $((next_id + BAD_ROWS - 1))) g"
  next_id=$((next_id + BAD_ROWS))
  PGOPTIONS="-c ripcord.batch=good_$r" psql -d ref -c \
    "INSERT INTO order_items SELECT g, 1 + g % 1000, 'SKU-GOOD', 2, 1.00, 'good $r' FROM generate_series($next_id, $((next_id + 99999))) g;
     UPDATE order_items SET qty = qty + 1 WHERE id BETWEEN 1 AND 50000"
  next_id=$((next_id + 100000))
  b_time+=("$(timed rc batch revert "bad_$r")")
  # The good batch stays whole; undoing it too must give the table from before both.
  good=$(psql -d ref -c "select count(*) from order_items where note = 'good $r'")
  [ "$good" = 100000 ] || lost+=("(b) good batch $r has $good of 100000 rows")
  bad=$(psql -d ref -c "select count(*) from order_items where note = 'bad $r'")
  [ "$bad" = 0 ] || lost+=("(b) bad batch $r left $bad rows")
  rc batch revert "good_$r"
  check "(b) batch revert $r" "$clean" "$(fp_table ref order_items)"
done

# (c) flashback of payments, online
echo "bench: (c) flashback" >&2
rc capture enable payments
c_time=()
pay_id=$((S * 1800000 + 1))
writer_id=$((S * 2000000 + 1))
for r in $(seq 1 "$RUNS"); do
  moment=$(psql -d ref -c "select clock_timestamp()")
  clean=$(fp_table ref payments)
  # "The last 10 minutes": inserts, updates and deletes on payments after the moment.
  psql -d ref -c "INSERT INTO payments SELECT g, 1 + g % 1000, 9.99, 'card', now() FROM generate_series($pay_id, $((pay_id + 49999))) g" \
              -c "UPDATE payments SET amount = amount + 1 WHERE id % 10 = $r" \
              -c "DELETE FROM payments WHERE id BETWEEN $((r * 20000)) AND $((r * 20000 + 9999))"
  pay_id=$((pay_id + 50000))
  # Another session writes to orders all along.
  first_writer=$writer_id
  ( i=$writer_id; while [ ! -f "$WORK/stop_writer" ]; do
      psql -d ref -c "INSERT INTO orders VALUES ($i, 1, 'new', 1.00, now())"; i=$((i + 1)); done
    echo $i > "$WORK/writer_next" ) &
  writer=$!
  sleep 1
  c_time+=("$(timed rc flashback payments --to "$moment")")
  touch "$WORK/stop_writer"; wait "$writer"; rm -f "$WORK/stop_writer"
  writer_id=$(cat "$WORK/writer_next")
  written=$((writer_id - first_writer))
  kept=$(psql -d ref -c "select count(*) from orders where id >= $first_writer and id < $writer_id")
  [ "$kept" = "$written" ] || lost+=("(c) the writer's rows: $kept of $written kept")
  check "(c) flashback $r" "$clean" "$(fp_table ref payments)"
done
rc capture disable order_items payments

# (d) full restore into an empty database
echo "bench: (d) restore" >&2
source_fp=$(fp ref data)
rc snapshot create --all
ID=$( (cd "$PROJECT" && "$RIPCORD" snapshot list --json) | python3 -c "import json,sys; print(json.load(sys.stdin)[-1]['id'])")
# The same tables for both: not ripcord's ledger and capture logs.
"$BIN/pg_dump" -Fc -N ripcord -N 'ripcord_*' -h 127.0.0.1 -p "$PORT" -U postgres -f "$WORK/dump" ref
d_rc=(); d_pg=(); d_pg2=()
for r in $(seq 1 "$RUNS"); do
  for tool in rc pg pg2; do
    db="r_${tool}_$r"; psql -d postgres -c "create database $db"
    case $tool in
      rc)  d_rc+=("$(timed rc snapshot restore "$ID" --into "$(url "$db")")") ;;
      pg)  d_pg+=("$(timed "$BIN/pg_restore" -h 127.0.0.1 -p "$PORT" -U postgres -d "$db" "$WORK/dump")") ;;
      pg2) d_pg2+=("$(timed "$BIN/pg_restore" -j 2 -h 127.0.0.1 -p "$PORT" -U postgres -d "$db" "$WORK/dump")") ;;
    esac
    check "(d) restore by $tool $r" "$source_fp" "$(fp "$db" data)"
    psql -d postgres -c "drop database $db"
  done
done

ma=$(median "${a_ddl[@]}"); mv=$(median "${a_vault[@]}"); mb=$(median "${b_time[@]}")
mc=$(median "${c_time[@]}"); mr=$(median "${d_rc[@]}"); mp=$(median "${d_pg[@]}"); mp2=$(median "${d_pg2[@]}")
met() { [ "$(echo "$1 $2" | bc)" = 1 ] && echo "met" || echo "not met"; }
printf '\nRecovery times, reference database %s (customers %s, orders %s, order_items %s, payments %s rows), PostgreSQL %s, median of %s runs, seconds\n\n' \
  "$DB_SIZE" "$((S * 400000))" "$((S * 2000000))" "$((S * 5000000))" "$((S * 1800000))" "$(pg_version)" "$RUNS"
printf '| way back | seconds | goal | |\n|---|---:|---|---|\n'
printf '| (a) revert of the last schema change (ADD COLUMN) | %.2f | < 1 s | %s |\n' "$ma" "$(met "$ma" '< 1')"
printf '| (a) revert of a DROP COLUMN kept in the vault (%s values put back) | %.2f | < 1 s excluding the vault data | |\n' "$PHONES" "$mv"
printf '| (b) batch revert of one bad %s-row load, a later batch kept | %.2f | < 10 s | %s |\n' "$BAD_ROWS" "$mb" "$(met "$mb" '< 10')"
printf '| (c) flashback of payments (50k inserts, ~%s updates, 10k deletes), another session writing | %.2f | < 30 s | %s |\n' \
  "$((S * 180000))" "$mc" "$(met "$mc" '< 30')"
printf '| (d) pg_restore of pg_dump -Fc into an empty database | %.2f | | |\n' "$mp"
printf '| (d) pg_restore -j 2 | %.2f | | |\n' "$mp2"
printf '| (d) ripcord snapshot restore --into an empty database | %.2f | >= 2x pg_restore | %sx pg_restore, %sx pg_restore -j 2: %s |\n' \
  "$mr" "$(echo "scale=2; $mp / $mr" | bc)" "$(echo "scale=2; $mp2 / $mr" | bc)" "$(met "$(echo "scale=3; $mp / $mr" | bc)" '>= 2')"
printf '\n(e) rows lost: '
if [ ${#lost[@]} = 0 ]; then echo "0 in every case (fingerprints equal to the state each way back must reach)"; else printf '%s; ' "${lost[@]}"; echo; exit 1; fi
