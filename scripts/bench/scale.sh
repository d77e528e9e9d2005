#!/usr/bin/env bash
# Scale benchmark: discovery into a ledger growing to N recordings (default 100,000),
# then the whole day read again (all known), every recording offered again, and claims
# at the full backlog. Prints cost per recording and resident memory per tenth.
#   bash scripts/bench/scale.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo bench --quiet --locked --bench scale -- "${1:-100000}"
