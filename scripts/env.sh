# Shared environment for Flack's scripts; sourced, not run.
# Compiled artifacts live outside the checkout so fresh clones (CI) reuse them.
# end2end/node_modules/.bin first: its wasm-opt (binaryen 132, from npm) understands what
# wasm-bindgen 0.2.130 emits; Debian's binaryen 108 breaks the release wasm's function table.
FLACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$FLACK_ROOT/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flack/target}"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
# The release wasm uses reference types and bulk memory; tell wasm-opt so.
export LEPTOS_WASM_OPT_FEATURES="${LEPTOS_WASM_OPT_FEATURES:--Oz,--enable-bulk-memory,--enable-nontrapping-float-to-int,--enable-reference-types,--enable-sign-ext,--enable-mutable-globals}"
