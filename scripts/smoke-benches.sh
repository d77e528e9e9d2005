#!/usr/bin/env bash
# Every benchmark in smoke mode (tiny sizes, a few seconds, the same code paths): each
# script of scripts/bench/ with --smoke, and each `cargo bench` target that no script
# runs, built as a test with --smoke. Each must exit 0 and print its figures, checked by
# scripts/lib/bench_figures.py (there, finite, above zero where zero means nothing was
# measured; never against a target). scripts/test.sh runs this after the tests.
#   bash scripts/smoke-benches.sh [NAME...]   (NAME: a script's name, or a bench target's)
set -uo pipefail
cd "$(dirname "$0")/.."

benches=("$@")
if (($# == 0)); then
  for script in scripts/bench/*.sh; do benches+=("$(basename "$script" .sh)"); done
  # The cargo bench targets; one a script runs (`--bench NAME`) is smoked through it.
  targets=$(cargo metadata --locked --format-version 1 --no-deps | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "bench" in t["kind"]: print(t["name"])') || { echo "cargo metadata failed: no bench target found" >&2; exit 1; }
  for target in $targets; do
    grep -q -- "--bench $target\b" scripts/bench/*.sh || benches+=("bench:$target")
  done
fi

log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
failed=()
for bench in "${benches[@]}"; do
  start=$(date +%s)
  echo "== bench smoke: $bench"
  # A bench that hangs fails too (after 15 minutes; a smoke run takes seconds).
  case "$bench" in
    bench:*) timeout 900 cargo test --quiet --locked --workspace --bench "${bench#bench:}" -- --smoke > "$log/out" 2> "$log/err" ;;
    *) timeout 900 bash "scripts/bench/$bench.sh" --smoke > "$log/out" 2> "$log/err" ;;
  esac
  status=$?
  cat "$log/out"
  if ((status != 0)); then
    echo "FAILED: $bench exited $status; its last lines on stderr:"
    tail -n 20 "$log/err"
    failed+=("$bench")
  elif ! python3 scripts/lib/bench_figures.py "$bench" < "$log/out"; then
    echo "FAILED: $bench printed no sane figures (above)"
    failed+=("$bench")
  else
    echo "ok: $bench ($(( $(date +%s) - start )) s)"
  fi
done
if ((${#failed[@]})); then
  echo "bench smoke: ${#failed[@]} of ${#benches[@]} failed: ${failed[*]}"
  exit 1
fi
echo "bench smoke: all ${#benches[@]} ran and printed sane figures: ${benches[*]}"
