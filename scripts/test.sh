#!/usr/bin/env bash
# Runs the whole test suite; the README's test command and what CI runs.
# Works on a fresh machine: the S3 test server (moto, pinned) is installed into a
# virtualenv under target/ first; PostgreSQL 15, Redis, faketime, Prometheus (promtool),
# and for the benchmarks' smoke runs rclone and GNU time, from Debian's packages when
# they are missing (scripts/lib/servers.sh). The tests start throw-away instances of
# each on free loopback ports as they need them (tests/common/servers.rs), never the
# machine's own services.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every server-backed test runs here: one that finds its server missing fails, never skips.
export GENESYS_TEST_REQUIRE_SERVERS=1

# moto; PostgreSQL (initdb and pg_ctl of the newest installed major) and redis-server.
source scripts/lib/servers.sh
ensure_moto
ensure_servers

cargo test --locked --workspace "$@"
# The whole suite (no arguments) also runs every benchmark in smoke mode: a bench the
# code or the simulator has moved away from fails here, not in a user's hands.
[[ $# -gt 0 ]] || bash scripts/smoke-benches.sh
