#!/usr/bin/env bash
# Budget across replicas: 1, 2 and 3 replicas of the archiver sharing one PostgreSQL
# ledger and one budget in Redis, against one 300/min org, beside 3 replicas each on its
# local budget (the naive case: each paces alone, as if it were the only one). One
# loadtest per row, each on a fresh database and a fresh Redis; prints one table.
# The org: 300 requests a minute on the token, 240 on the recording endpoint, in real
# time (compressing the window to seconds would measure timer granularity, not the
# budget); load enough to need the whole budget (a backlog of 2,000 ended
# conversations). Each replica logs in with its own token, so each row runs under the
# platform's documented count (per token) and, for 3 replicas, under the stricter
# reading (per OAuth client: every token of the org together). Utilization is over the
# org's one budget (docs/replicas.md, Tokens). Throw-away PostgreSQL and Redis on free loopback
# ports (installed when missing). About 26 minutes.
#   bash scripts/bench/replicas.sh [--smoke] [DURATION]    (default 180s; ROWS="token 3 shared,..." picks rows)
# --smoke: 2 replicas shared and 2 local, per client, 6 s each, a backlog of 100, on the
# debug build (scripts/lib/bench.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/bench.sh
bench_mode "$@"; set -- "${BENCH_ARGS[@]}"
duration="${1:-180s}" backlog=2000
[[ -z "$SMOKE" ]] || { duration=6s backlog=100 ROWS="${ROWS:-client 2 shared,client 2 local}"; }
ensure_servers
bench_build
bin=$BIN
unset AWS_CA_BUNDLE
trap stop_servers EXIT
start_postgres
common=(--duration "$duration" --window 60s --platform-rpm 300 --platform-endpoint-limit recording=240
        --agents 200 --sessions-per-agent-hour 60 --backlog "$backlog" --poll-interval 10s --workers 8
        --media-size 20000-60000 --json)
printf '%-24s %-8s %-22s %7s %6s %10s %8s %9s %10s\n' platform replicas budget calls 429s 429-share util archived calls/rec
cell=0
# Rows: how the platform counts, replicas, their budget. `client-silent`: per client,
# and no inin-ratelimit-* headers (local budgets then cannot learn what the others spent).
rows=("token 1 shared" "token 2 shared" "token 3 shared" "token 3 local"
      "client 3 shared" "client 3 local" "client-silent 3 shared" "client-silent 3 local")
[[ -z "${ROWS:-}" ]] || IFS=, read -r -a rows <<<"$ROWS"
for row in "${rows[@]}"; do
  read -r counts replicas budget <<<"$row"
  cell=$((cell + 1))
  ledger="$(new_database "bench_$cell")"
  start_redis
  args=(--replicas "$replicas" --ledger-url "$ledger")
  [[ $budget == shared ]] && args+=(--shared "$REDIS_URL")
  [[ $counts == client* ]] && args+=(--platform-limit-per-client)
  [[ $counts == *-silent ]] && args+=(--no-ratelimit-headers)
  json=$("$bin" loadtest "${common[@]}" "${args[@]}" 2>"$BENCH_STDERR")
  stop_redis
  python3 - "$counts" "$replicas" "$budget" "$json" <<'PY'
import json, sys
counts, n, budget, r = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
platform = "per " + counts.replace("-silent", ", no headers")
label = "one, shared in Redis" if budget == "shared" else "each local (naive)"
print(f"{platform:<24} {n:<8} {label:<22} {r['api_calls_total']:>7} {r['rate_limited']:>6} {r['rate_limited_share']*100:>9.2f}% {r['budget_utilization']*100:>7.1f}% {r['recordings_archived']:>9} {r['calls_per_recording']:>10.2f}")
PY
done
