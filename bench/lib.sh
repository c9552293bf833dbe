# Shared by the benchmark scripts: a throwaway PostgreSQL server and the release build.
# Source it, then call `start_pg [extra postgres options]` and `build_ripcord`.
# Sets BIN (server binaries), WORK (temp dir), PORT, RIPCORD; stops the server on exit.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$( (pg_config --bindir 2>/dev/null) || true)
[ -x "${BIN:-}/initdb" ] || BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_pg() {
  WORK=$(mktemp -d /tmp/ripcord-bench-XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$WORK"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  trap 'as_pg "$BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
  (cd "$WORK" && as_pg "$BIN/initdb" -D "$WORK/data" -U postgres --auth=trust -N >/dev/null)
  (cd "$WORK" && as_pg "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/log" -w start \
    -o "-p $PORT -k $WORK -c listen_addresses=127.0.0.1 $*" >/dev/null)
}

build_ripcord() {
  echo "bench: building ripcord (release)" >&2
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p ripcord-cli
  RIPCORD="$ROOT/target/release/ripcord"
}

pg_version() { "$BIN/postgres" --version | awk '{print $3}'; }
now() { date +%s.%N; }
