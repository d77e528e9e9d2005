#!/usr/bin/env bash
# Runs the whole test suite. Works on a fresh machine: what the tests need beyond
# cargo is installed here first (nothing yet beyond cargo itself).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --locked "$@"
