#!/usr/bin/env bash
# Runs the whole test suite; the README's test command and what CI runs.
# Works on a fresh machine: the S3 test server (moto, pinned) is installed into a
# virtualenv under target/ first, PostgreSQL 15 and Redis from Debian's packages when
# they are missing; the tests start throw-away instances of each on free loopback ports
# as they need them (tests/common/servers.rs), never the machine's own services.
set -euo pipefail
cd "$(dirname "$0")/.."

# 5.1.18: moto 5.2.x answers CompleteMultipartUpload with the wrong XML root element.
MOTO_VERSION=5.1.18
venv="${CARGO_TARGET_DIR:-target}/test-venv"
if [[ ! -x "$venv/bin/moto_server" ]] || ! "$venv/bin/python" -c "import moto,sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "installing moto[server]==$MOTO_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
export MOTO_SERVER="$PWD/$venv/bin/moto_server"

# PostgreSQL (initdb and pg_ctl of the newest installed major) and redis-server.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
missing=()
[[ -x "$(pg_bin)/initdb" ]] || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
if (( ${#missing[@]} )); then
  echo "installing ${missing[*]} (Debian packages)"
  as_root=(); [[ $(id -u) -eq 0 ]] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
GENESYS_TEST_PG_BIN="$(pg_bin)"
GENESYS_TEST_REDIS_SERVER="$(command -v redis-server)"
export GENESYS_TEST_PG_BIN GENESYS_TEST_REDIS_SERVER

exec cargo test --locked "$@"
