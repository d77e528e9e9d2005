# Sourced by scripts/bench/*.sh (from the repository root): the smoke mode they share
# and the binary they measure (the servers, moto among them: scripts/lib/servers.sh).
#
# `--smoke` as a script's first argument runs it with tiny sizes for a few seconds
# through the same code paths, on the debug build the test suite makes: built with the
# tests selected, so dependencies resolve with the same features and nothing is compiled
# again after scripts/test.sh (which runs every benchmark this way, scripts/smoke-benches.sh).
# Without it, the release build the figures in docs/performance.md were measured on.
source scripts/lib/servers.sh

# Reads `--smoke` off the arguments: `bench_mode "$@"; set -- "${BENCH_ARGS[@]}"`.
# Sets SMOKE (1 or empty), BENCH_ARGS (the other arguments) and BENCH_STDERR (where a
# measured tool's stderr goes: nowhere in a full run, whose table it would break up).
bench_mode() {
  SMOKE=
  BENCH_ARGS=("$@")
  BENCH_STDERR=/dev/null
  if [[ "${1:-}" == --smoke ]]; then
    SMOKE=1
    BENCH_ARGS=("${@:2}")
    # A smoke run is the same whatever the caller's shell holds; its tools' stderr goes
    # on (scripts/smoke-benches.sh shows it when a bench fails).
    unset STRATEGIES FETCH_MODE ROWS
    BENCH_STDERR=/dev/stderr
  fi
}

# Builds the daemon for the mode; sets BIN. A full run measures the release binary that
# ships (no dev-dependency features: examples would bring tokio's test-util into it).
bench_build() {
  local target
  target=$(target_dir)
  if [[ -n "$SMOKE" ]]; then
    cargo build --quiet --locked --workspace --tests --bins
    BIN="$target/debug/genesys-archiver"
  else
    cargo build --quiet --release --locked --bins
    BIN="$target/release/genesys-archiver"
  fi
}

# Builds examples/NAME (debug: what they do is never what a bench times; after
# scripts/test.sh it is already built); prints its path.
bench_example() {
  cargo build --quiet --locked --workspace --example "$1"
  echo "$(target_dir)/debug/examples/$1"
}
