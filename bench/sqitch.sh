#!/usr/bin/env bash
# Benchmark: ripcord vs sqitch on the same local PostgreSQL, same N changes
# (`create table tN …` with revert and verify), measuring deploy+verify, status and
# revert of everything. Prints a table and the ratios (sqitch time / ripcord time).
#
#   bash bench/sqitch.sh [N]        (default N=200)
#
# Needs: the PostgreSQL server binaries; sqitch + DBD::Pg (installed with apt-get when
# missing and running as root: Debian packages `sqitch` and `libdbd-pg-perl`).
set -euo pipefail
N=${1:-200}

if ! command -v sqitch >/dev/null 2>&1 || ! perl -MDBD::Pg -e1 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqitch libdbd-pg-perl >/dev/null
  else
    echo "bench: install sqitch and libdbd-pg-perl first" >&2; exit 2
  fi
fi

. "$(dirname "$0")/lib.sh"
start_pg
psql() { command psql -qAt -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "create database ripcord_bench" -c "create database sqitch_bench"

build_ripcord

# The same N changes for both tools.
mkdir -p "$WORK/rc/changes" "$WORK/sq/deploy" "$WORK/sq/revert" "$WORK/sq/verify"
printf '[project]\nname = "bench"\n' > "$WORK/rc/ripcord.toml"
cat > "$WORK/sq/sqitch.conf" <<CONF
[core]
	engine = pg
	plan_file = sqitch.plan
	top_dir = .
CONF
{ echo "%syntax-version=1.0.0"; echo "%project=bench"; echo; } > "$WORK/sq/sqitch.plan"
for i in $(seq 1 "$N"); do
  id=$(printf '%04d' "$i")
  deploy="CREATE TABLE t$i (id bigint PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());"
  revert="DROP TABLE t$i;"
  verify="SELECT id, name, created_at FROM t$i WHERE false;"
  printf -- '-- ripcord:deploy\n%s\n-- ripcord:revert\n%s\n-- ripcord:verify\n%s\n' "$deploy" "$revert" "$verify" \
    > "$WORK/rc/changes/${id}_t$i.sql"
  printf 'BEGIN;\n%s\nCOMMIT;\n' "$deploy" > "$WORK/sq/deploy/t$i.sql"
  printf 'BEGIN;\n%s\nCOMMIT;\n' "$revert" > "$WORK/sq/revert/t$i.sql"
  printf '%s\n' "$verify" > "$WORK/sq/verify/t$i.sql"
  echo "t$i 2026-11-24T00:00:00Z bench <bench@example.com> # table $i" >> "$WORK/sq/sqitch.plan"
done

RC_URL="postgres://postgres@127.0.0.1:$PORT/ripcord_bench"
SQ_URI="db:pg://postgres@127.0.0.1:$PORT/sqitch_bench"
timed() { local s e; s=$(now); "$@" >/dev/null 2>&1 || { echo "bench: failed: $*" >&2; exit 1; }; e=$(now); echo "$e - $s" | bc; }

cd "$WORK/rc"
rc_deploy=$(timed "$RIPCORD" --url "$RC_URL" deploy)
rc_status=$(timed "$RIPCORD" --url "$RC_URL" status)
rc_revert=$(timed "$RIPCORD" --url "$RC_URL" revert --all --yes)
[ "$(psql -d ripcord_bench -c "select count(*) from pg_tables where schemaname='public'")" = 0 ]

cd "$WORK/sq"
sq_deploy=$(timed sqitch deploy --verify "$SQ_URI")
sq_status=$(timed sqitch status "$SQ_URI")
sq_revert=$(timed sqitch revert -y "$SQ_URI")
[ "$(psql -d sqitch_bench -c "select count(*) from pg_tables where schemaname='public'")" = 0 ]

ratio() { echo "scale=1; $1 / $2" | bc; }
printf '\n%s changes on PostgreSQL %s, one run each, seconds\n\n' "$N" "$(pg_version)"
printf '| operation | sqitch | ripcord | sqitch / ripcord |\n|---|---:|---:|---:|\n'
printf '| deploy + verify | %.2f | %.3f | %sx |\n' "$sq_deploy" "$rc_deploy" "$(ratio "$sq_deploy" "$rc_deploy")"
printf '| status | %.2f | %.3f | %sx |\n' "$sq_status" "$rc_status" "$(ratio "$sq_status" "$rc_status")"
printf '| revert all | %.2f | %.3f | %sx |\n' "$sq_revert" "$rc_revert" "$(ratio "$sq_revert" "$rc_revert")"
