#!/usr/bin/env bash
# Sets everything up, builds release binaries, and runs the standard benchmark suite (see
# BENCHMARKS.md). Results go to bench-results/ (JSON lines) and the table to the terminal.
# Pass --quick for a shorter run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
source scripts/env.sh
cargo leptos build --release
cargo build --locked --release --features ssr --bin flack-bench
mkdir -p bench-results
FLACK_BIN="$CARGO_TARGET_DIR/release/flack" \
  "$CARGO_TARGET_DIR/release/flack-bench" suite --out bench-results "$@" | tee bench-results/table.txt
