#!/usr/bin/env bash
# Search latency over a large history (issue 17, item 6): a server on SQLite whose archive
# holds N stored messages (default 1,000,000), written straight into the archive (the
# full-text index follows by its triggers, as it does for the server's own writes) and the
# rings: 80% in #general, 10% in #random, 10% in a private conversation between users 1 and
# 2. Then, as a third user, REQUESTS searches of each kind through /api/search, one at a time,
# timed by curl: a word in every message, a word in one message of 1,000, a word in one
# message, two words, no match, and a word only in the private conversation (every match is
# someone else's, so all are read and none shown: the worst case for privacy filtering).
# Prints the fill time, the file size, and p50/p99 per kind.
# Usage: bash scripts/bench-search.sh [N]   (REQUESTS=200 by default; needs sqlite3, curl, jq)
set -euo pipefail
source "$(dirname "$0")/env.sh"
BIN="${FLACK_BIN:-$CARGO_TARGET_DIR/release/flack}"
PORT="${PORT:-3391}"
REQUESTS="${REQUESTS:-200}"
N="${1:-1000000}"
[ -x "$BIN" ] || { echo "build the server first: cargo build --release --features ssr --bin flack" >&2; exit 1; }

start() { # data dir -> pid; waits until the server answers
  "$BIN" --server-addr "127.0.0.1:$PORT" --data-dir "$1" --server-site-root "$FLACK_ROOT/target/site" \
    --limits-registrations-per-hour 1000000 >"$1/log" 2>&1 &
  echo $! >"$1/pid"
  until curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; do
    kill -0 "$(cat "$1/pid")" 2>/dev/null || { cat "$1/log" >&2; exit 1; }
    sleep 0.01
  done
}
stop() { kill -TERM "$(cat "$1/pid")"; while kill -0 "$(cat "$1/pid")" 2>/dev/null; do sleep 0.05; done; }
# p50 and p99 (nearest rank) of seconds on stdin, in milliseconds.
percentiles() { sort -g | awk '{a[NR]=$1} END {
  p50=a[int(NR*0.50+0.999)]; p99=a[int(NR*0.99+0.999)];
  printf "p50 %.2f ms, p99 %.2f ms", p50*1000, p99*1000 }'; }

dir="$(mktemp -d)"
trap 'kill -TERM "$(cat "$dir/pid" 2>/dev/null)" 2>/dev/null; rm -rf "$dir"' EXIT
start "$dir"; stop "$dir"   # the schema, the index and its triggers, #general, a clean stop
t0=$(date +%s.%N)
sqlite3 "$dir/flack.db" <<SQL
PRAGMA journal_mode = WAL;
INSERT INTO users (id, name, token_hash) VALUES (1, 'seeder', randomblob(32)), (2, 'other', randomblob(32));
INSERT INTO rooms (key, room, channel, next_seq) VALUES
  ('c:random', '{"channel":"random"}', '{"name":"random","created_at":"2026-11-30T05:00:00.000Z"}', 1),
  ('d:1:2', '{"direct":[1,2]}', NULL, 1);
BEGIN;
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $N),
placed(i, key) AS (
  SELECT i, CASE i % 10 WHEN 8 THEN 'c:random' WHEN 9 THEN 'd:1:2' ELSE 'c:general' END FROM k),
numbered(i, key, seq) AS (
  SELECT i, key, ROW_NUMBER() OVER (PARTITION BY key ORDER BY i) FROM placed)
INSERT INTO archive (room_key, seq, id, body)
SELECT key, seq, i, json_object('id', i,
  'room', CASE key WHEN 'd:1:2' THEN json('{"direct":[1,2]}') ELSE json_object('channel', substr(key, 3)) END,
  'seq', seq, 'author', json_object('id', 1, 'name', 'seeder'),
  'body', 'message number ' || printf('%07d', i) || ' of the long history about w' || (i % 1000)
    || CASE key WHEN 'd:1:2' THEN ' and a whispered secret' ELSE '' END,
  'sent_at', '2026-11-30T05:00:00.000Z')
FROM numbered ORDER BY i;
COMMIT;
INSERT INTO recent_messages (room_key, slot, id, seq, body)
SELECT a.room_key, a.seq % 100, a.id, a.seq, a.body FROM archive a
  JOIN (SELECT room_key, MAX(seq) AS top FROM archive GROUP BY room_key) t
    ON a.room_key = t.room_key AND a.seq > t.top - 100 WHERE true
  ON CONFLICT (room_key, slot) DO UPDATE SET id = excluded.id, seq = excluded.seq, body = excluded.body;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
t1=$(date +%s.%N)
count=$(sqlite3 "$dir/flack.db" "SELECT COUNT(*) FROM archive")
indexed=$(sqlite3 "$dir/flack.db" "SELECT COUNT(*) FROM archive_words")
printf 'filled %s messages (%s indexed) in %.1f s; file %s bytes\n' "$count" "$indexed" \
  "$(echo "$t1 - $t0" | bc -l)" "$(stat -c %s "$dir/flack.db")"

start "$dir"
# Searchers: each new user may search 10 times at once, then 2 a second.
tokens=()
for i in $(seq $(( (REQUESTS * 6) / 10 + 10 ))); do
  tokens+=("$(curl -s -X POST -H "Accept: application/json" -H "Content-Type: application/x-www-form-urlencoded" \
    --data "name=searcher$i$RANDOM" "http://127.0.0.1:$PORT/api/register" | jq -r .token)")
done
round=0
measure() { # label, query; each search by the next searcher with allowance left
  local times status
  times=$(for i in $(seq 0 $(( REQUESTS - 1 ))); do
    token="${tokens[$(( (round * REQUESTS + i) / 10 ))]}"
    curl -s -o "$dir/answer" -w "%{http_code} %{time_total}\n" -X POST -H "Accept: application/json" \
      -H "Content-Type: application/x-www-form-urlencoded" --data-urlencode "token=$token" \
      --data-urlencode "query=$2" "http://127.0.0.1:$PORT/api/search"
  done)
  round=$(( round + 1 ))
  status=$(echo "$times" | awk '$1 != 200' | head -1)
  [ -z "$status" ] || { echo "a search failed: $status $(cat "$dir/answer")" >&2; exit 1; }
  printf '%-44s %3s results: %s\n' "$1 ($2)" "$(jq '.hits | length' "$dir/answer")" \
    "$(echo "$times" | awk '{print $2}' | percentiles)"
}
measure "word in every message" "history"
measure "word in 1 of 1,000" "w123"
measure "word in one message" "$(printf '%07d' $(( N / 2 )))"
measure "two words" "history w7"
measure "no match" "zebra"
measure "only in another pair's conversation" "whispered"
stop "$dir"
