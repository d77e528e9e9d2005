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
# CARGO_TARGET_DIR may be absolute: the tests need an absolute path either way.
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
if [[ ! -x "$venv/bin/moto_server" ]] || ! "$venv/bin/python" -c "import moto,sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "installing moto[server]==$MOTO_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
export MOTO_SERVER="$venv/bin/moto_server"
# Every server-backed test runs here: one that finds its server missing fails, never skips.
export GENESYS_TEST_REQUIRE_SERVERS=1

# PostgreSQL (initdb and pg_ctl of the newest installed major) and redis-server.
source scripts/lib/servers.sh
ensure_servers

exec cargo test --locked --workspace "$@"
