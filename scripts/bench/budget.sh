#!/usr/bin/env bash
# Budget benchmark: the shared budget ("ours") against self-paced workers with private
# backoff ("naive"), with the configured budget right and 2x too high, with and without
# Retry-After on refusals. One loadtest per cell; prints a table.
#   bash scripts/bench/budget.sh [DURATION]    (default 60s; time is compressed: 10 s windows)
set -euo pipefail
cd "$(dirname "$0")/../.."
duration="${1:-60s}"
cargo build --quiet --release --locked
bin=target/release/genesys-archiver
# Platform: 100 requests per 10 s window per token (600/min), recording endpoint 80 per
# window; load enough to need the whole budget.
common=(--duration "$duration" --window 10s --platform-rpm 100 --platform-endpoint-limit recording=80
        --agents 400 --sessions-per-agent-hour 60 --backlog 200 --poll-interval 3s --workers 8 --json)
printf '%-6s %-7s %-12s %9s %8s %12s %9s %9s\n' strategy budget retry-after calls 429s 429-share util archived
for strategy in ours naive; do
  for budget in 100 200; do
    for share in 1.0 0.0; do
      json=$("$bin" loadtest "${common[@]}" --strategy "$strategy" --budget-rpm "$budget" --retry-after-share "$share" 2>/dev/null)
      python3 - "$strategy" "$budget" "$share" "$json" <<'PY'
import json, sys
s, b, share, r = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
label = "right" if b == "100" else "2x high"
ra = "with" if share == "1.0" else "without"
print(f"{s:<8} {label:<7} {ra:<12} {r['api_calls_total']:>9} {r['rate_limited']:>8} {r['rate_limited_share']*100:>11.2f}% {r['budget_utilization']*100:>8.1f}% {r['recordings_archived']:>9}")
PY
    done
  done
done
