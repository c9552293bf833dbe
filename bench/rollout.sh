#!/usr/bin/env bash
# Benchmark: a rollout of 5 changes to T tenant databases on one PostgreSQL server,
# against `ripcord deploy` run per tenant one after the other and `sqitch deploy` per
# tenant; then the time from a probe breach to the last tenant reverted, and the peak
# memory of a rollout as the number of tenants grows.
#
#   bash bench/rollout.sh [T]          (default T=200)
#   bash bench/rollout.sh [T] memory   (only the peak-memory part)
#
# Needs: the PostgreSQL server binaries; sqitch + DBD::Pg (installed with apt-get when
# missing and running as root).
set -euo pipefail
T=${1:-200}
ONLY=${2:-all}

if [ "$ONLY" = all ] && { ! command -v sqitch >/dev/null 2>&1 || ! perl -MDBD::Pg -e1 2>/dev/null; }; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqitch libdbd-pg-perl >/dev/null
  else
    echo "bench: install sqitch and libdbd-pg-perl first" >&2; exit 2
  fi
fi

. "$(dirname "$0")/lib.sh"
start_pg -c max_connections=$((T * 3 + 50)) -c fsync=off
psql() { command psql -qAt -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
build_ripcord
BASE="postgres://postgres@127.0.0.1:$PORT"

make_tenants() { # prefix count
  for i in $(seq 1 "$2"); do echo "create database $1_$i;"; done | psql -d postgres
}

# Five changes, the same for both tools.
mkdir -p "$WORK/rc/changes" "$WORK/sq/deploy" "$WORK/sq/revert" "$WORK/sq/verify"
cat > "$WORK/sq/sqitch.conf" <<CONF
[core]
	engine = pg
	plan_file = sqitch.plan
	top_dir = .
CONF
{ echo "%syntax-version=1.0.0"; echo "%project=bench"; echo; } > "$WORK/sq/sqitch.plan"
for i in 1 2 3 4 5; do
  deploy="CREATE TABLE t$i (id bigint PRIMARY KEY, name text NOT NULL); INSERT INTO t$i SELECT g, 'n' || g FROM generate_series(1, 100) g;"
  revert="DROP TABLE t$i;"
  verify="SELECT id, name FROM t$i WHERE false;"
  printf -- '-- ripcord:deploy\n%s\n-- ripcord:revert\n%s\n-- ripcord:verify\n%s\n' "$deploy" "$revert" "$verify" \
    > "$WORK/rc/changes/000${i}_t$i.sql"
  printf 'BEGIN;\n%s\nCOMMIT;\n' "$deploy" > "$WORK/sq/deploy/t$i.sql"
  printf 'BEGIN;\n%s\nCOMMIT;\n' "$revert" > "$WORK/sq/revert/t$i.sql"
  printf '%s\n' "$verify" > "$WORK/sq/verify/t$i.sql"
  echo "t$i 2026-11-24T00:00:00Z bench <bench@example.com> # table $i" >> "$WORK/sq/sqitch.plan"
done

fleet_config() { # prefix count probe-line
  : > "$WORK/rc/tenants_$1.txt"
  for i in $(seq 1 "$2"); do echo "$1_$i $BASE/$1_$i" >> "$WORK/rc/tenants_$1.txt"; done
  cat > "$WORK/rc/ripcord.toml" <<TOML
[project]
name = "bench"

[fleets.tenants]
targets_from = "file:tenants_$1.txt"
max_parallel = 8

[health]
probes = [$3]
TOML
}

rss() { # prefix count
  make_tenants "$1" "$2"
  fleet_config "$1" "$2" '{ name = "t5 rows", sql = "select count(*) from t5", min = 100 }'
  /usr/bin/time -f '%M' "$RIPCORD" -q rollout 2>&1 >/dev/null | tail -1
}
small=$((T / 4))

timed() { local s e; s=$(now); "$@" >/dev/null 2>&1 || { echo "bench: failed: $*" >&2; exit 1; }; e=$(now); echo "$e - $s" | bc; }
cd "$WORK/rc"

if [ "$ONLY" = memory ]; then
  printf 'Peak RSS of a rollout: %s KB for %s tenants, %s KB for %s tenants\n' \
    "$(rss m1 "$small")" "$small" "$(rss m2 "$T")" "$T"
  exit 0
fi

# 1. ripcord rollout (canary, then the rest, 8 at a time; one SQL probe per wave).
make_tenants ro "$T"
fleet_config ro "$T" '{ name = "t5 rows", sql = "select count(*) from t5", min = 100 }'
rollout=$(timed "$RIPCORD" rollout)
[ "$(psql -d "ro_$T" -c 'select count(*) from ripcord.changes')" = 5 ]

# 2. ripcord deploy per tenant, one after the other.
make_tenants seq "$T"
printf '[project]\nname = "bench"\n' > "$WORK/rc/ripcord.toml"
s=$(now)
for i in $(seq 1 "$T"); do "$RIPCORD" --url "$BASE/seq_$i" deploy >/dev/null; done
sequential=$(echo "$(now) - $s" | bc)

# 3. sqitch per tenant.
make_tenants sq "$T"
cd "$WORK/sq"
s=$(now)
for i in $(seq 1 "$T"); do sqitch deploy --verify "db:pg://postgres@127.0.0.1:$PORT/sq_$i" >/dev/null 2>&1; done
sqitch_time=$(echo "$(now) - $s" | bc)
cd "$WORK/rc"

# 4. Breach after the last wave: every tenant changed, then all reverted. The probe
#    passes while only the canary is changed and fails once more tenants are.
make_tenants br "$T"
fleet_config br "$T" '{ name = "canary only", command = "test $(echo $RIPCORD_TARGETS | tr , \"\\n\" | wc -l) -lt 2" }'
"$RIPCORD" --json rollout > "$WORK/breach.json" 2>/dev/null || true
detect_to_recover=$(python3 -c "
import json, datetime
r = json.load(open('$WORK/breach.json'))['report']
assert r['state'] == 'rolled_back', r['state']
assert all(t['state'] == 'rolled_back' for t in r['targets']), 'not all rolled back'
p = lambda s: datetime.datetime.fromisoformat(s.replace('Z', '+00:00'))
print((p(r['recovered_at']) - p(r['detected_at'])).total_seconds())")
[ "$(psql -d "br_$T" -c 'select count(*) from ripcord.changes')" = 0 ]

# 5. Peak memory of a rollout by number of tenants.
rss_small=$(rss m1 "$small")
rss_large=$(rss m2 "$T")

ratio() { echo "scale=1; $1 / $2" | bc; }
printf '\n%s tenant databases on one PostgreSQL %s, 5 changes each, one run each\n\n' "$T" "$(pg_version)"
printf '| run | seconds | vs ripcord rollout |\n|---|---:|---:|\n'
printf '| ripcord rollout (canary, then 8 at a time) | %.2f | 1.0x |\n' "$rollout"
printf '| ripcord deploy per tenant, sequential | %.2f | %sx |\n' "$sequential" "$(ratio "$sequential" "$rollout")"
printf '| sqitch deploy --verify per tenant, sequential | %.2f | %sx |\n' "$sqitch_time" "$(ratio "$sqitch_time" "$rollout")"
printf '\nBreach after the last wave: %.2f s from detection to the last of %s tenants reverted (goal: under 5 s)\n' "$detect_to_recover" "$T"
printf 'Peak RSS of a rollout: %s KB for %s tenants, %s KB for %s tenants\n' "$rss_small" "$small" "$rss_large" "$T"
