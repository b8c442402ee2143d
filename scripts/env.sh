# Shared environment for Flack's scripts; sourced, not run.
# Compiled artifacts live outside the checkout so fresh clones (CI) reuse them.
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flack/target}"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
