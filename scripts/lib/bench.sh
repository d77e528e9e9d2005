# Sourced by scripts/bench/*.sh (from the repository root): the smoke mode they share,
# the binary they measure and the S3 test server.
#
# `--smoke` as a script's first argument runs it with tiny sizes for a few seconds
# through the same code paths, on the debug build the test suite makes: built with the
# tests selected, so dependencies resolve with the same features and nothing is compiled
# again after scripts/test.sh (which runs every benchmark this way, scripts/smoke-benches.sh).
# Without it, the release build the figures in docs/performance.md were measured on.
source scripts/lib/servers.sh

# Absolute target directory (CARGO_TARGET_DIR may be relative, or absent).
# Reads `--smoke` off the arguments: `bench_mode "$@"; set -- "${BENCH_ARGS[@]}"`.
# Sets SMOKE (1 or empty) and BENCH_ARGS (the other arguments).
bench_mode() {
  SMOKE=
  BENCH_ARGS=("$@")
  if [[ "${1:-}" == --smoke ]]; then
    SMOKE=1
    BENCH_ARGS=("${@:2}")
  fi
}

# Builds the daemon (and its examples) for the mode; sets BIN and EXAMPLES (their directory).
bench_build() {
  local target
  target=$(target_dir)
  if [[ -n "$SMOKE" ]]; then
    cargo build --quiet --locked --workspace --tests --bins --examples
    BIN="$target/debug/genesys-archiver"
    EXAMPLES="$target/debug/examples"
  else
    cargo build --quiet --release --locked --bins --examples
    BIN="$target/release/genesys-archiver"
    EXAMPLES="$target/release/examples"
  fi
}
