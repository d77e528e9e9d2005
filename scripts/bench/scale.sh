#!/usr/bin/env bash
# Scale benchmark: discovery into a ledger growing to N recordings (default 100,000),
# then the whole day read again (all known), every recording offered again, and claims
# at the full backlog (claims per second with one claimer and with three at once).
# Prints cost per recording and resident memory per tenth. Runs on the SQLite ledger,
# then on a throw-away PostgreSQL (installed when missing; three replicas claim there).
#   bash scripts/bench/scale.sh [--smoke] [N]
# --smoke: the bench's own smoke mode (300 conversations), built as a test (the debug
# profile, the test suite's dependencies; scripts/lib/bench.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/bench.sh
bench_mode "$@"; set -- "${BENCH_ARGS[@]}"
if [[ -n "$SMOKE" ]]; then
  scale() { cargo test --quiet --locked --workspace --bench scale -- --smoke ${1:+"$1"} "${@:2}"; }
else
  scale() { cargo bench --quiet --locked --bench scale -- "${1:-100000}" "${@:2}"; }
fi
n="${1:-}"
scale "$n"
echo
ensure_servers
trap stop_servers EXIT
start_postgres
scale "$n" --ledger-url "$PG_URL"
