#!/usr/bin/env bash
# Parity: `ripcord lint` against squawk (the squawk-cli package from PyPI) on the same
# corpus of migration files, tests/corpus/*.sql. Each file is linted by squawk as is,
# and by ripcord as the deploy section of a change file. Prints, per file, the rules
# each tool reports and any lock/destructive finding of squawk's that ripcord lacks;
# exits 1 when there is one.
#
#   bash bench/squawk_parity.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v squawk >/dev/null 2>&1 || python3 -m pip install --quiet squawk-cli
echo "bench: building ripcord (release)" >&2
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p ripcord-cli
WORK=$(mktemp -d /tmp/ripcord-parity-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
python3 - "$ROOT" "$WORK" <<'PY'
import json, pathlib, subprocess, sys
root, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ripcord = root / "target/release/ripcord"
# squawk rules ripcord leaves off by design (it sets lock_timeout/statement_timeout from
# [safety], owns the transaction, and runs a change in one transaction so a failed
# change leaves nothing to re-run); and squawk rules ripcord reports under its own id.
by_design = {"require-lock-timeout", "require-statement-timeout", "require-timeout-settings",
             "prefer-robust-stmts", "transaction-nesting", "ban-uncommitted-transaction"}
renamed = {"ban-concurrent-index-creation-in-transaction": "statement-needs-own-transaction",
           "adding-not-nullable-field": "set-not-null-scan"}
# squawk#349: a lock warning for an index on a table the same change creates; nobody
# else can hold a lock on a table that does not exist yet, so ripcord stays quiet.
false_positives = {("index_on_new_table.sql", "require-concurrent-index-creation")}
style = {"prefer-bigint-over-int", "prefer-bigint-over-smallint", "prefer-identity",
         "prefer-text-field", "prefer-timestamptz", "ban-char-field"}
files = sorted((root / "tests/corpus").glob("*.sql"))
version = subprocess.run(["squawk", "--version"], capture_output=True, text=True).stdout.strip()
missing_total, squawk_total, rows = 0, 0, []
for number, path in enumerate(files, start=1):
    out = subprocess.run(["squawk", "--reporter", "json", str(path)], capture_output=True, text=True)
    squawk_rules = sorted({v["rule_name"] for v in json.loads(out.stdout or "[]")})
    change = work / f"{number:04d}_{path.stem}.sql"
    change.write_text("-- ripcord:deploy\n" + path.read_text())
    out = subprocess.run([str(ripcord), "lint", str(change), "--format", "json"], capture_output=True, text=True)
    ripcord_rules = sorted({f["rule"] for f in json.loads(out.stdout)["findings"]})
    relevant = [r for r in squawk_rules if r not in by_design]
    squawk_total += len(relevant)
    missing = [r for r in relevant if renamed.get(r, r) not in ripcord_rules
               and (path.name, r) not in false_positives]
    quiet = [r for r in relevant if (path.name, r) in false_positives]
    squawk_total -= len(quiet)
    missing_total += len([m for m in missing if not m.startswith("(")])
    missing += [f"({r}: squawk#349 false positive, left out on purpose)" for r in quiet]
    rows.append((path.name, squawk_rules, ripcord_rules, missing))
print(f"\n{version} vs ripcord lint, {len(files)} files of tests/corpus\n")
print("| file | squawk | ripcord lint | squawk finding ripcord lacks |")
print("|---|---|---|---|")
for name, s, r, m in rows:
    print(f"| {name} | {', '.join(s) or '—'} | {', '.join(r) or '—'} | {', '.join(m) or '—'} |")
print(f"\nsquawk findings that matter to ripcord (not {', '.join(sorted(by_design))}): "
      f"{squawk_total}; found by ripcord too: {squawk_total - missing_total}; missing: {missing_total}")
sys.exit(1 if missing_total else 0)
PY
