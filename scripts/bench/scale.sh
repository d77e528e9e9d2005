#!/usr/bin/env bash
# Scale benchmark: discovery into a ledger growing to N recordings (default 100,000),
# then the whole day read again (all known), every recording offered again, and claims
# at the full backlog (claims per second with one claimer and with three at once).
# Prints cost per recording and resident memory per tenth. Runs on the SQLite ledger,
# then on a throw-away PostgreSQL (installed when missing; three replicas claim there).
#   bash scripts/bench/scale.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/servers.sh
n="${1:-100000}"
cargo bench --quiet --locked --bench scale -- "$n"
echo
ensure_servers
trap stop_servers EXIT
start_postgres
cargo bench --quiet --locked --bench scale -- "$n" --ledger-url "$PG_URL"
