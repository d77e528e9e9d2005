# Sourced by scripts/test.sh and the benchmarks: finds (or installs, from Debian's
# packages) PostgreSQL and redis-server, moto (pinned, from PyPI), and starts throw-away instances of them on
# free loopback ports for a benchmark, removed by `stop_servers`.
# PostgreSQL refuses to run as root: as root its cluster is made and run by the
# `postgres` system user, in a directory that user owns.

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# Installs what is missing; exports GENESYS_TEST_PG_BIN, GENESYS_TEST_REDIS_SERVER,
# GENESYS_TEST_FAKETIME_LIB (libfaketime, preloaded into a replica whose clock runs ahead)
# and GENESYS_TEST_PROMETHEUS (promtool beside it); installs rclone and GNU time for the
# data-plane bench.
ensure_servers() {
  local missing=()
  [[ -x "$(pg_bin)/initdb" ]] || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v faketime >/dev/null || missing+=(faketime)
  # Prometheus and promtool: the monitoring kit's rules are tested with them.
  command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
  # rclone: what the data-plane bench (smoked by the suite) sets the archiver against;
  # GNU time (`/usr/bin/time -v`): its peak RSS and CPU of each tool.
  command -v rclone >/dev/null || missing+=(rclone)
  [[ -x /usr/bin/time ]] || missing+=(time)
  if (( ${#missing[@]} )); then
    echo "installing ${missing[*]} (Debian packages)"
    local as_root=(); [[ $(id -u) -eq 0 ]] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  GENESYS_TEST_PG_BIN="$(pg_bin)"
  GENESYS_TEST_REDIS_SERVER="$(command -v redis-server)"
  GENESYS_TEST_FAKETIME_LIB="$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 | head -n 1)"
  GENESYS_TEST_PROMETHEUS="$(command -v prometheus)"
  export GENESYS_TEST_PG_BIN GENESYS_TEST_REDIS_SERVER GENESYS_TEST_FAKETIME_LIB GENESYS_TEST_PROMETHEUS
}

# Absolute target directory (CARGO_TARGET_DIR may be relative, or absent).
target_dir() {
  local t="${CARGO_TARGET_DIR:-target}"
  case "$t" in /*) ;; *) t="$PWD/$t" ;; esac
  echo "$t"
}

# moto, pinned (5.1.18: moto 5.2.x answers CompleteMultipartUpload with the wrong XML
# root element), in a virtualenv under the target directory; sets VENV and MOTO_SERVER.
ensure_moto() {
  local version=5.1.18
  VENV="$(target_dir)/test-venv"
  if [[ ! -x "$VENV/bin/moto_server" ]] ||
    ! "$VENV/bin/python" -c "import moto,sys; sys.exit(moto.__version__ != '$version')" 2>/dev/null; then
    echo "installing moto[server]==$version into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$version"
  fi
  export MOTO_SERVER="$VENV/bin/moto_server"
}

# Waits (up to 20 s) until something listens on loopback PORT.
wait_port() {
  for _ in $(seq 100); do
    python3 -c "import socket;socket.create_connection(('127.0.0.1',$1))" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# A PostgreSQL cluster of its own (user `archiver`, trust on loopback); sets PG_DIR,
# PG_PORT and PG_URL (database `postgres`).
start_postgres() {
  PG_DIR="$(mktemp -d /tmp/ga-bench-pg.XXXXXX)"
  [[ $(id -u) -ne 0 ]] || chown postgres: "$PG_DIR"
  PG_PORT="$(free_port)"
  as_pg "$GENESYS_TEST_PG_BIN/initdb" -D "$PG_DIR/data" -U archiver --auth=trust --no-sync -E UTF8 >/dev/null
  as_pg "$GENESYS_TEST_PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w start \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" >/dev/null
  PG_URL="postgres://archiver@127.0.0.1:$PG_PORT/postgres"
}

# A fresh database in the cluster; prints its URL.
new_database() {
  "$GENESYS_TEST_PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U archiver -d postgres -c "CREATE DATABASE $1" >/dev/null
  echo "postgres://archiver@127.0.0.1:$PG_PORT/$1"
}

# A Redis server of its own, nothing persisted; sets REDIS_PID and REDIS_URL.
start_redis() {
  local port; port="$(free_port)"
  "$GENESYS_TEST_REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
  REDIS_PID=$!
  REDIS_URL="redis://127.0.0.1:$port/"
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
}

stop_redis() { [[ -z "${REDIS_PID:-}" ]] || { kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=; }; }

stop_servers() {
  stop_redis
  if [[ -n "${PG_DIR:-}" ]]; then
    as_pg "$GENESYS_TEST_PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"; PG_DIR=
  fi
}
