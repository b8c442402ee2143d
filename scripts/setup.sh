#!/usr/bin/env bash
# Idempotent set-up: installs every tool Flack's build and tests need, each only when
# missing or at the wrong version. Safe to run again and again.
set -euo pipefail

CARGO_LEPTOS_VERSION="0.3.10"
WASM_BINDGEN_VERSION="0.2.130"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. The WebAssembly target for the stable toolchain.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# 2. Debian packages: chromium for Playwright, binaryen for wasm-opt (release builds).
missing_debs=()
command -v chromium >/dev/null 2>&1 || missing_debs+=(chromium)
command -v wasm-opt >/dev/null 2>&1 || missing_debs+=(binaryen)
if [ "${#missing_debs[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing_debs[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing_debs[@]}"
fi

# 3. wasm-bindgen-cli, exactly the version the wasm-bindgen crate is pinned to.
#    Installed without --locked: a dependency pinned in its lock file is not in the registry.
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# 4. cargo-leptos (0.3.11 and later need a newer rustc than this machine has).
if [ "$(cargo leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
  log "installing cargo-leptos $CARGO_LEPTOS_VERSION"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --force
fi

# 5. Playwright's npm packages (they download no browser; Debian's chromium is used).
if [ -f "$ROOT/end2end/package-lock.json" ]; then
  if ! (cd "$ROOT/end2end" && npm ls --depth=0 >/dev/null 2>&1); then
    log "installing end2end npm packages"
    (cd "$ROOT/end2end" && npm ci --no-audit --no-fund)
  fi
fi

log "all tools present"
