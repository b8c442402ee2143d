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

# 6. PostgreSQL and Redis on 127.0.0.1 (the PostgreSQL store and cluster mode, and their
#    tests). Used as they are when they answer; on a machine where they do not, installed
#    from Debian's packages and started. A PostgreSQL installed here is set to trust local
#    TCP connections (127.0.0.1 and ::1 only), as the tests connect as `postgres` with no
#    password; a server that was already there is left as it is.
if ! pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  installed_pg=no
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "PostgreSQL does not answer on 127.0.0.1:5432; installing it"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql
    installed_pg=yes
  fi
  pg_version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  if [ "$installed_pg" = yes ]; then
    hba="/etc/postgresql/$pg_version/main/pg_hba.conf"
    log "letting local TCP connections to the new PostgreSQL in without a password"
    printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' |
      as_root tee "$hba.flack" >/dev/null
    as_root sh -c "cat '$hba' >> '$hba.flack' && mv '$hba.flack' '$hba'"
  fi
  log "starting PostgreSQL $pg_version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start ||
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main reload
  for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.2
  done
  pg_isready -q -h 127.0.0.1 -p 5432 || { log "PostgreSQL did not start"; exit 1; }
fi
if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" != "PONG" ]; then
  if ! command -v redis-server >/dev/null 2>&1; then
    log "Redis does not answer on 127.0.0.1:6379; installing it"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server
  fi
  log "starting Redis on 127.0.0.1:6379 (keeping nothing on disk)"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do
    [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ] && break
    sleep 0.2
  done
  [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ] ||
    { log "Redis did not start"; exit 1; }
fi

log "all tools present"
