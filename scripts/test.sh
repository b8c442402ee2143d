#!/usr/bin/env bash
# Sets everything up, then runs every test: formatting, lints for both builds, Rust unit and
# integration tests, and the Playwright suite in Chromium against a real server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
source scripts/env.sh

step() { printf '\n==> %s\n' "$*" >&2; }

step "formatting"
cargo fmt --check

step "lints (server, and the load generator: feature bench adds it to ssr)"
cargo clippy --locked --features bench --all-targets -- -D warnings

step "lints (browser)"
cargo clippy --locked --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings

step "unit and integration tests (the load generator's too)"
cargo test --locked --features bench

step "build the site (debug)"
cargo leptos build

step "load generator smoke run (checks the harness works; timing is for the benchmark)"
cargo build --locked --features bench --bin flack-bench
FLACK_BIN="$CARGO_TARGET_DIR/debug/flack" "$CARGO_TARGET_DIR/debug/flack-bench" smoke > /dev/null

step "Playwright end-to-end tests"
export FLACK_BIN="$CARGO_TARGET_DIR/debug/flack"
export FLACK_SITE_ROOT="$ROOT/target/site"
(cd end2end && npx playwright test)

step "release build, and the core specs against it (the build the run command serves)"
build_release
FLACK_BIN="$CARGO_TARGET_DIR/release/flack" \
  bash -c 'cd end2end && npx playwright test messages.spec.ts display-name.spec.ts'

step "all tests passed"
