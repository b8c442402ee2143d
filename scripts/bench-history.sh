#!/usr/bin/env bash
# Page-load cost of a channel with a long history (issue 17, item 1): a release server on
# SQLite whose #general holds N stored messages (written straight into the archive and the
# ring, as the server would have), for each N given (default: 100 and 100000). For each N it
# measures, over RUNS fresh starts: how long the start takes, 200 loads of /c/general that
# are rendered each time (a query string keeps a load out of the page cache) and 200 served
# from the page cache (median time, and bytes), the server's resident memory, and 20
# "before" calls at the bottom of the history (median).
# Usage: bash scripts/bench-history.sh [N ...]   (RUNS=5 by default; needs sqlite3 and curl)
set -euo pipefail
source "$(dirname "$0")/env.sh"
BIN="${FLACK_BIN:-$CARGO_TARGET_DIR/release/flack}"
PORT="${PORT:-3390}"
RUNS="${RUNS:-5}"
[ -x "$BIN" ] || { echo "build the release server first: cargo build --release --features ssr --bin flack" >&2; exit 1; }
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 100000)

start() { # data dir -> pid; waits until the page answers
  "$BIN" --server-addr "127.0.0.1:$PORT" --data-dir "$1" --server-site-root "$FLACK_ROOT/target/site" \
    --limits-pages-per-minute 1000000 >"$1/log" 2>&1 &
  echo $! >"$1/pid"
  until curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; do
    kill -0 "$(cat "$1/pid")" 2>/dev/null || { cat "$1/log" >&2; exit 1; }
    sleep 0.01
  done
}
stop() { kill -TERM "$(cat "$1/pid")"; while kill -0 "$(cat "$1/pid")" 2>/dev/null; do sleep 0.05; done; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for n in "${sizes[@]}"; do
  dir="$(mktemp -d)"
  start "$dir"; stop "$dir"   # the schema, #general, and a clean stop
  sqlite3 "$dir/flack.db" <<SQL
INSERT INTO users (id, name, token_hash) VALUES (1, 'seeder', randomblob(32));
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $n)
INSERT INTO archive (room_key, seq, id, body)
SELECT 'c:general', i, i, json_object('id', i, 'room', json_object('channel', 'general'),
  'seq', i, 'author', json_object('id', 1, 'name', 'seeder'),
  'body', 'message number ' || printf('%06d', i) || ' of the long history', 'sent_at', '2026-11-30T05:00:00.000Z')
FROM k;
INSERT INTO recent_messages (room_key, slot, id, seq, body)
SELECT room_key, seq % 100, id, seq, body FROM archive WHERE room_key = 'c:general' AND seq > $n - 100;
SQL
  file_bytes=$(stat -c %s "$dir/flack.db")
  starts=(); firsts=(); cached=(); rss=(); before=(); bytes=0
  for run in $(seq "$RUNS"); do
    t0=$(date +%s.%N); start "$dir"; t1=$(date +%s.%N)
    starts+=("$(echo "($t1 - $t0) * 1000" | bc -l)")
    bytes=$(curl -s -o /dev/null -w "%{size_download}" "http://127.0.0.1:$PORT/c/general")
    rendered=$(for i in $(seq 200); do curl -s -o /dev/null -w "%{time_total}\n" "http://127.0.0.1:$PORT/c/general?render=$i"; done | median)
    firsts+=("$(echo "$rendered * 1000" | bc -l)")
    many=$(for i in $(seq 200); do curl -s -o /dev/null -w "%{time_total}\n" "http://127.0.0.1:$PORT/c/general"; done | median)
    cached+=("$(echo "$many * 1000" | bc -l)")
    rss+=("$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$dir/pid")/status")")
    b=$(for i in $(seq 20); do curl -s -o /dev/null -w "%{time_total}\n" -X POST -H "Accept: application/json" \
      -H "Content-Type: application/x-www-form-urlencoded" --data "channel=general&before=51" \
      "http://127.0.0.1:$PORT/api/history_before"; done | median)
    before+=("$(echo "$b * 1000" | bc -l)")
    stop "$dir"
  done
  printf 'stored %s messages (file %s bytes): start %.0f ms; rendered load %.2f ms, %s bytes; cached load %.2f ms; RSS %s KiB; before=51 %.2f ms (medians of %s runs)\n' \
    "$n" "$file_bytes" "$(printf '%s\n' "${starts[@]}" | median)" "$(printf '%s\n' "${firsts[@]}" | median)" \
    "$bytes" "$(printf '%s\n' "${cached[@]}" | median)" "$(printf '%s\n' "${rss[@]}" | median)" \
    "$(printf '%s\n' "${before[@]}" | median)" "$RUNS"
  rm -rf "$dir"
done
