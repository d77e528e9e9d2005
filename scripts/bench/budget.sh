#!/usr/bin/env bash
# Budget benchmark: the shared budget ("ours") against self-paced workers with private
# backoff ("naive"), with the configured budget right and 2x too high, with and without
# Retry-After on refusals. One loadtest per cell; prints a table.
# Also reports rate-limited calls per archived recording (every API call but the token's,
# 429s included): conversations go on for 10-150 s (1-15 min compressed like the window),
# 1.3 screen recordings per conversation, 20% transcoding; discovery every 10 s (the
# daemon's 60 s, compressed); a backlog of 2,000 ended conversations keeps the budget busy.
#   bash scripts/bench/budget.sh [--smoke] [DURATION]    (default 120s; time is compressed: 10 s windows)
# --smoke: every cell for 3 s on a backlog of 100, on the debug build (scripts/lib/bench.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/bench.sh
bench_mode "$@"; set -- "${BENCH_ARGS[@]}"
duration="${1:-120s}" backlog=2000
[[ -z "$SMOKE" ]] || duration=3s backlog=100
bench_build
bin=$BIN
# Platform: 100 requests per 10 s window per token (600/min), recording endpoint 80 per
# window; load enough to need the whole budget.
common=(--duration "$duration" --window 10s --platform-rpm 100 --platform-endpoint-limit recording=80
        --agents 400 --sessions-per-agent-hour 60 --backlog "$backlog" --poll-interval 10s --workers 8 --json
        --fetch-mode "${FETCH_MODE:-conversation}")
printf '%-6s %-7s %-12s %9s %8s %12s %9s %9s %10s\n' strategy budget retry-after calls 429s 429-share util archived calls/rec
for strategy in ${STRATEGIES:-ours naive}; do
  for budget in 100 200; do
    for share in 1.0 0.0; do
      json=$("$bin" loadtest "${common[@]}" --strategy "$strategy" --budget-rpm "$budget" --retry-after-share "$share" 2>"$BENCH_STDERR")
      python3 - "$strategy" "$budget" "$share" "$json" <<'PY'
import json, sys
s, b, share, r = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
label = "right" if b == "100" else "2x high"
ra = "with" if share == "1.0" else "without"
print(f"{s:<8} {label:<7} {ra:<12} {r['api_calls_total']:>9} {r['rate_limited']:>8} {r['rate_limited_share']*100:>11.2f}% {r['budget_utilization']*100:>8.1f}% {r['recordings_archived']:>9} {r['calls_per_recording']:>10.2f}")
PY
    done
  done
done
