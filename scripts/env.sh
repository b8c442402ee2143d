# Shared environment for Flack's scripts; sourced, not run.
# Compiled artifacts live outside the checkout so fresh clones (CI) reuse them.
# end2end/node_modules/.bin first: its wasm-opt (binaryen 132, from npm) understands what
# wasm-bindgen 0.2.130 emits; Debian's binaryen 108 breaks the release wasm's function table.
FLACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$FLACK_ROOT/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flack/target}"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
# The release wasm uses reference types and bulk memory; tell wasm-opt so. `--converge`
# repeats the size passes until they stop helping: 1,557 bytes less gzip on the wasm of
# commit 88a3061 (251,397 -> 249,840), for about 20 s more of release build.
export LEPTOS_WASM_OPT_FEATURES="${LEPTOS_WASM_OPT_FEATURES:--Oz,--converge,--enable-bulk-memory,--enable-nontrapping-float-to-int,--enable-reference-types,--enable-sign-ext,--enable-mutable-globals}"

# The release build the run, test and benchmark scripts serve: the site and the server, with
# best-level compressed copies beside each built asset for the server to send. cargo-leptos
# writes brotli (quality 11) and gzip copies (--precompress); its gzip encoder leaves the
# WebAssembly about 17% larger than `gzip -9` does (291,876 against 249,976 bytes), so the
# gzip copies are made again with `gzip -9`.
build_release() {
  cargo leptos build --release --precompress
  local asset
  for asset in "$FLACK_ROOT"/target/site/pkg/*.wasm "$FLACK_ROOT"/target/site/pkg/*.js \
    "$FLACK_ROOT"/target/site/pkg/*.css; do
    [ -f "$asset" ] && gzip -9 -n -c "$asset" > "$asset.gz"
  done
}
