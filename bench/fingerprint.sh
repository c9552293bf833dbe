#!/usr/bin/env bash
# Benchmark: drill's data fingerprint (per table: count + sum of 64-bit row hashes,
# computed inside PostgreSQL) against `pg_dump --data-only` of the same database to
# /dev/null, on a generated database of about SIZE_GB gigabytes.
#
#   bash bench/fingerprint.sh [SIZE_GB]      (default 1)
#
# Each tool runs three times on a warm cache; the best time counts.
set -euo pipefail
SIZE_GB=${1:-1}
. "$(dirname "$0")/lib.sh"
start_pg -c shared_buffers=1GB -c max_wal_size=4GB -c fsync=off
psql() { command psql -qAt -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "create database fp"

ROWS=$(( SIZE_GB * 6500000 ))
echo "bench: generating ~${SIZE_GB} GB ($ROWS order rows + side tables)" >&2
psql -d fp <<SQL
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, total numeric(12,2) NOT NULL,
                     status text NOT NULL, note text, created_at timestamptz NOT NULL);
INSERT INTO orders SELECT g, g % 100000, (g % 100000) / 100.0, (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
       'order note ' || md5(g::text) || ' ' || repeat('x', g % 40), now() - (g || ' seconds')::interval
FROM generate_series(1, $ROWS) g;
CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, profile jsonb NOT NULL);
INSERT INTO customers SELECT g, 'c' || g || '@example.com', jsonb_build_object('tier', g % 5, 'tags', jsonb_build_array('a', g % 7))
FROM generate_series(1, 200000) g;
-- json has no hash function at all: this table exercises the text-hash fallback.
CREATE TABLE events (id bigint PRIMARY KEY, payload json NOT NULL);
INSERT INTO events SELECT g, json_build_object('kind', 'click', 'n', g) FROM generate_series(1, 200000) g;
VACUUM ANALYZE;
SQL
SIZE=$(psql -d fp -c "select pg_size_pretty(pg_database_size('fp'))")

build_ripcord
URL="postgres://postgres@127.0.0.1:$PORT/fp"
best() {
  local best="" s e t
  for _ in 1 2 3; do
    s=$(now); "$@" >/dev/null 2>&1 || { echo "bench: failed: $*" >&2; exit 1; }; e=$(now)
    t=$(echo "$e - $s" | bc)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
  done
  echo "$best"
}
rc=$(best "$RIPCORD" --url "$URL" fingerprint --data-only)
dump=$(best "$BIN/pg_dump" --data-only -h 127.0.0.1 -p "$PORT" -U postgres -f /dev/null fp)
printf '\nDatabase %s (%s), PostgreSQL %s, best of 3, seconds\n\n' "fp" "$SIZE" "$(pg_version)"
printf '| tool | seconds | pg_dump / ripcord |\n|---|---:|---:|\n'
printf '| pg_dump --data-only > /dev/null | %.2f | |\n' "$dump"
printf '| ripcord fingerprint --data-only | %.2f | %sx |\n' "$rc" "$(echo "scale=1; $dump / $rc" | bc)"
