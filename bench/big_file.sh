#!/usr/bin/env bash
# Benchmark: `ripcord plan` and `ripcord deploy` of one change file of 1, 10 and 50 MB
# (single-row INSERTs) on SQLite, to show the time grows linearly with the file.
#
#   bash bench/big_file.sh [SIZES_MB...]     (default: 1 10 50)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(1 10 50)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p ripcord-cli
RIPCORD="$ROOT/target/release/ripcord"
WORK=$(mktemp -d /tmp/ripcord-bigfile-XXXXXX); trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }
printf '| file | statements | plan (s) | deploy (s) | deploy s per MB |\n|---:|---:|---:|---:|---:|\n'
for mb in "${SIZES[@]}"; do
  dir="$WORK/p$mb"; mkdir -p "$dir/changes"
  printf '[project]\nname = "big"\n[targets.dev]\nurl = "sqlite://big.db"\n' > "$dir/ripcord.toml"
  python3 - "$dir/changes/0001_big.sql" "$mb" <<'PY'
import sys
path, mb = sys.argv[1], int(sys.argv[2])
line = "INSERT INTO t VALUES ({0}, 'some text value number {0} padding padding padding');\n"
with open(path, "w") as f:
    f.write("-- ripcord:deploy\nCREATE TABLE t (id bigint PRIMARY KEY, v text);\n")
    i, size = 0, 0
    while size < mb * 1_000_000:
        s = line.format(i); f.write(s); size += len(s); i += 1
    f.write("-- ripcord:revert\nDROP TABLE t;\n")
print(i, file=open(path + ".count", "w"))
PY
  count=$(cat "$dir/changes/0001_big.sql.count"); rm "$dir/changes/0001_big.sql.count"
  cd "$dir"
  s=$(now); "$RIPCORD" plan > /dev/null; p=$(echo "$(now) - $s" | bc)
  s=$(now); "$RIPCORD" deploy -q; d=$(echo "$(now) - $s" | bc)
  printf '| %s MB | %s | %.2f | %.2f | %.3f |\n' "$mb" "$count" "$p" "$d" "$(echo "scale=4; $d / $mb" | bc)"
  cd "$ROOT"
done
