#!/usr/bin/env bash
# Benchmark: `ripcord diff` against reladiff (PyPI, hashdiff across two databases),
# a full EXCEPT both ways (both copies loaded into one database), and `count(*)` of
# both sides, in the same run on one PostgreSQL server.
#
#   bash bench/diff.sh [ROWS] [SMALL_ROWS]      (defaults 10000000 and 1000000)
#
# Table `t` (bigint key) of ROWS rows in databases `a` and `b` with 100 scattered
# differences (60 changed, 20 deleted, 20 added); the same with 0 differences; then
# SMALL_ROWS rows keyed by a UUID and by a composite (int, text) key. Each tool runs
# twice on a warm cache; the better time counts. Peak RSS of ripcord by /usr/bin/time.
#
# Needs: PostgreSQL server binaries, python3 with pip (installs `reladiff[postgresql]`
# when missing), /usr/bin/time (Debian package `time`, installed when missing as root).
set -euo pipefail
ROWS=${1:-10000000}
SMALL=${2:-1000000}

if ! command -v reladiff >/dev/null 2>&1; then
  python3 -m pip install -q 'reladiff[postgresql]' >/dev/null 2>&1 || { echo "bench: pip install reladiff failed" >&2; exit 2; }
fi
if [ ! -x /usr/bin/time ] && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq time >/dev/null
fi

. "$(dirname "$0")/lib.sh"
start_pg -c shared_buffers=1GB -c max_wal_size=8GB -c fsync=off -c max_parallel_workers_per_gather=2
psql() { command psql -qAt -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
URL="postgres://postgres@127.0.0.1:$PORT"
build_ripcord

best() { # best of two runs, in seconds; the command's output goes to $WORK/out
  local best="" s e t
  for _ in 1 2; do
    s=$(now); "$@" >"$WORK/out" 2>"$WORK/err" || [ $? = 1 ] || { echo "bench: failed: $*" >&2; cat "$WORK/err" >&2; return 1; }; e=$(now)
    t=$(echo "$e - $s" | bc)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
  done
  printf '%.3f' "$best"
}
count_both() { psql -d "$1" -c "select count(*) from $3" && psql -d "$2" -c "select count(*) from $3"; }
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
peak_rss_mb() { { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null || true; } | tail -1 | awk '{printf "%.0f", $1/1024}'; }

# $1 table, $2 key columns for reladiff (space separated), $3 label
measure() {
  local table=$1 keys=$2 label=$3 kargs="" k
  for k in $keys; do kargs="$kargs -k $k"; done
  local count ripcord except reladiff rss found
  count=$(best count_both a b "$table")
  ripcord=$(best "$RIPCORD" diff "$URL/a" "$URL/b" --table "$table" --json)
  found=$(python3 -c "import json,sys; print(json.load(open('$WORK/out'))['total_differences'])")
  rss=$(peak_rss_mb "$RIPCORD" diff "$URL/a" "$URL/b" --table "$table" --json)
  except=$(best psql -d ab -c "select count(*) from ((select * from a_$table except all select * from b_$table) union all (select * from b_$table except all select * from a_$table)) x")
  if reladiff=$(best reladiff "postgresql://postgres@127.0.0.1:$PORT/a" "$table" "postgresql://postgres@127.0.0.1:$PORT/b" "$table" $kargs -c '%' -s); then
    reladiff_ratio=$(ratio "$reladiff" "$ripcord")x
  else
    reladiff="failed ($(tail -1 "$WORK/err" | cut -c1-80))"; reladiff_ratio="-"
  fi
  echo "| $label | $found | $ripcord | $count | $(ratio "$ripcord" "$count")x | $except | $(ratio "$except" "$ripcord")x | $reladiff | $reladiff_ratio | $rss MB |"
}

echo "bench: generating $ROWS rows (and $SMALL for the UUID and composite keys)" >&2
psql -d postgres -c "create database a"
psql -d a <<SQL
CREATE TABLE t (id bigint PRIMARY KEY, customer_id int NOT NULL, total numeric(12,2) NOT NULL,
                status text NOT NULL, note text, created_at timestamptz NOT NULL);
INSERT INTO t SELECT g, g % 100000, (g % 100000) / 100.0, (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
       CASE WHEN g % 7 = 0 THEN NULL ELSE 'note ' || (g % 1000) END, timestamptz '2026-01-01' + g * interval '1 second'
FROM generate_series(1, $ROWS) g;
CREATE TABLE u (id uuid PRIMARY KEY, v text, n int);
INSERT INTO u SELECT md5(g::text)::uuid, 'v' || g, g FROM generate_series(1, $SMALL) g;
CREATE TABLE c (a int, b text, v text, PRIMARY KEY (a, b));
INSERT INTO c SELECT g % 1000, (g / 1000)::text, 'v' || g FROM generate_series(1, $SMALL) g;
VACUUM ANALYZE;
SQL
psql -d postgres -c "create database b template a" -c "create database same template a"
# 100 scattered differences in b.
psql -d b <<SQL
UPDATE t SET status = 'refunded' WHERE id IN (SELECT (g * ($ROWS / 61))::bigint FROM generate_series(1, 60) g);
DELETE FROM t WHERE id IN (SELECT (g * ($ROWS / 23) + 7)::bigint FROM generate_series(1, 20) g);
INSERT INTO t SELECT $ROWS + g, 1, 1.00, 'new', NULL, now() FROM generate_series(1, 20) g;
UPDATE u SET v = 'changed' WHERE n IN (SELECT g * ($SMALL / 101) FROM generate_series(1, 100) g);
UPDATE c SET v = 'changed' WHERE (a, b) IN (SELECT a, b FROM c ORDER BY md5(a::text || b) LIMIT 100);
VACUUM ANALYZE;
SQL
# One database holding both copies, for EXCEPT.
psql -d postgres -c "create database ab"
for side in a b; do
  for table in t u c; do
    "$BIN/pg_dump" -h 127.0.0.1 -p "$PORT" -U postgres -d "$side" -t "$table" -O -x \
      | sed -e "s/public\\.$table\\b/public.${side}_$table/g" -e "s/\\b${table}_pkey\\b/${side}_${table}_pkey/g" \
      | psql -d ab >/dev/null
  done
done
psql -d ab -c "vacuum analyze"

echo
echo "ripcord diff vs count(*), EXCEPT and reladiff $(reladiff --version 2>&1 | head -1) on PostgreSQL $(pg_version); best of 2, seconds"
echo
echo "| table | differences found | ripcord diff | count(*) both sides | ripcord / count | EXCEPT both ways | EXCEPT / ripcord | reladiff | reladiff / ripcord | ripcord peak RSS |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
measure t "id" "$ROWS rows, bigint key, 100 differences"
measure u "id" "$SMALL rows, UUID key, 100 differences"
measure c "a b" "$SMALL rows, composite key, 100 differences"
# No differences: a against an identical copy.
count=$(best count_both a same t)
ripcord=$(best "$RIPCORD" diff "$URL/a" "$URL/same" --table t --json)
echo "| $ROWS rows, bigint key, 0 differences | 0 | $ripcord | $count | $(ratio "$ripcord" "$count")x | - | - | - | - | $(peak_rss_mb "$RIPCORD" diff "$URL/a" "$URL/same" --table t --json) MB |"
