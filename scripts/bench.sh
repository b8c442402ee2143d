#!/usr/bin/env bash
# Sets everything up, builds release binaries, and runs the standard benchmark suite (see
# BENCHMARKS.md). Results go to bench-results/ (JSON lines) and the table to the terminal.
# Pass --quick for a shorter run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
source scripts/env.sh
build_release
cargo build --locked --release --features bench --bin flack-bench
mkdir -p bench-results
FLACK_BIN="$CARGO_TARGET_DIR/release/flack" \
  "$CARGO_TARGET_DIR/release/flack-bench" suite --out bench-results "$@" | tee bench-results/table.txt

# Navigation to "connected" in Chromium, against a release server of its own.
DATA="$(mktemp -d)"
"$CARGO_TARGET_DIR/release/flack" --server-addr 127.0.0.1:3210 --data-dir "$DATA" \
  --limits-message-burst 1000 --limits-pages-per-minute 100000 > /dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:3210/ && break; sleep 0.1; done
(cd end2end && node bench/time-to-connected.js http://127.0.0.1:3210 20) | tee bench-results/time-to-connected.jsonl
(cd end2end && node bench/time-to-connected.js http://127.0.0.1:3210 10 slow) | tee -a bench-results/time-to-connected.jsonl
