#!/usr/bin/env bash
# Fuzzing: cargo fuzz (libFuzzer) on what the network hands the daemon: Retry-After and
# 429 bodies, inin-ratelimit-* headers, and the API's JSON (recordingmetadata, recording,
# analytics). Each target runs for SECONDS (default 60) from an empty corpus; a crash
# stops the script with the input in fuzz/artifacts/. Installs cargo-fuzz if missing.
# The machine has one stable toolchain; RUSTC_BOOTSTRAP lets it take libFuzzer's flags.
#   bash scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
tools="${CARGO_TARGET_DIR:-$PWD/target}/tools"
export PATH="$tools/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz --root "$tools"
export RUSTC_BOOTSTRAP=1
for target in retry_after rate_headers api_json; do
  mkdir -p "fuzz/corpus/$target"
  echo "== $target (${seconds}s)"
  cargo fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- -max_total_time="$seconds" -max_len=65536 2>&1 \
    | grep -E "^#[0-9]+ +DONE|Done [0-9]+ runs|ERROR|panicked|SUMMARY" || true
  [[ -z "$(ls -A "fuzz/artifacts/$target" 2>/dev/null)" ]] || { echo "$target: crash inputs in fuzz/artifacts/$target"; exit 1; }
done
echo "fuzzing: no crash in ${seconds}s per target"
