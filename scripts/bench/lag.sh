#!/usr/bin/env bash
# Archive-lag benchmark: steady new sessions at a rate that uses about 90% of the
# platform's budget, no backlog. Reports recording-end-to-archived lag p50/p95/p99/max
# against the target p99 <= poll interval + upload time + transcoding time + transfer
# time (p99 of the archiving attempt), for ours and for the naive strategy. Active
# conversations are re-read every poll (--recheck-max 5s), so an end is seen within one
# poll interval; settle_after_end is the simulated upload time (0.8 s).
#   bash scripts/bench/lag.sh [--smoke] [DURATION] [AGENTS]   (default 120s, 595 agents x 60
#   sessions/h: about 81% of the budget since the listing waits for transcoding; 660 agents: ~86-90%)
# --smoke: 10 s per strategy, sessions of 1-2 s, on the debug build (scripts/lib/bench.sh).
# Time is compressed as in budget.sh: 10 s windows of 100 requests per token, recording
# endpoint 80; the simulator holds 20% of recordings in transcoding for 3 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/bench.sh
bench_mode "$@"; set -- "${BENCH_ARGS[@]}"
duration="${1:-120s}"
agents="${2:-595}"
sessions=()
[[ -z "$SMOKE" ]] || { duration=10s agents=60 sessions=(--session-length 1s-2s); }
bench_build
bin=$BIN
common=(--duration "$duration" --window 10s --platform-rpm 100 --platform-endpoint-limit recording=80
        --agents "$agents" --sessions-per-agent-hour 60 --backlog 0 --poll-interval 5s --recheck-max 5s --workers 8 --json
        "${sessions[@]}")
printf '%-6s %6s %9s %6s %9s %7s %7s %7s %7s %9s %7s %9s\n' strategy util archived 429s lag-p50 p95 p99 max target p99/target met calls/rec
for strategy in ${STRATEGIES:-ours naive}; do
  json=$("$bin" loadtest "${common[@]}" --strategy "$strategy" 2>"$BENCH_STDERR")
  python3 - "$strategy" "$json" <<'PY'
import json, sys
s, r = sys.argv[1], json.loads(sys.argv[2])
ratio = r["lag_p99_s"] / max(r["lag_target_s"], 1e-9)
print(f"{s:<8} {r['budget_utilization']*100:>5.1f}% {r['recordings_archived']:>9} {r['rate_limited']:>6} "
      f"{r['lag_p50_s']:>8.1f}s {r['lag_p95_s']:>6.1f}s {r['lag_p99_s']:>6.1f}s {r['lag_max_s']:>6.1f}s "
      f"{r['lag_target_s']:>8.1f}s {ratio:>7.2f} {'yes' if ratio <= 1 else 'no':>5} {r['calls_per_recording']:>9.2f}")
PY
done
echo "target: lag p99 <= poll interval (5 s) + upload (0.8 s) + transcoding (3 s) + transfer p99; util = successful calls / allowed"
