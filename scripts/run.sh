#!/usr/bin/env bash
# Sets everything up, builds a release of Flack and serves it on http://127.0.0.1:3000
# (change with --server-addr, FLACK_SERVER_ADDR or Leptos.toml). Extra arguments are passed
# to the server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
source scripts/env.sh
build_release
exec "$CARGO_TARGET_DIR/release/flack" "$@"
