#!/usr/bin/env bash
# Memory of concurrent exports (issue 18): a library of 200,000 links (imported without
# captures), a release server, then 10 exports at once by 10 users' worth of clients
# (one library, so transfers_per_user is raised to 10 for the run). Prints the server's
# resident memory idle and at its peak while the exports run, and each export's size.
#
#   bash bench/export-memory.sh [LINKSNAP_BINARY] [LINKS] [CONCURRENT]
#
# Give an older build (e.g. built from an earlier commit in a worktree) to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/linksnap}"
links="${2:-200000}"
concurrent="${3:-10}"
[ "$bin" = target/release/linksnap ] && cargo build --release -q -p linksnap
dir="$(mktemp -d /tmp/linksnap-export-bench.XXXXXX)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
awk -v n="$links" 'BEGIN { for (i = 0; i < n; i++) printf "https://site%d.example/article/%d?ref=bench\n", i % 997, i }' >"$dir/urls.txt"
"$bin" --data "$dir/data" import "$dir/urls.txt" --no-capture >/dev/null
tok="$("$bin" --data "$dir/data" token create bench)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
extra=()
# Builds before the per-library bound had no such flag (and no bound).
"$bin" serve --help | grep -q -- --transfers-per-user && extra=(--transfers-per-user "$concurrent")
"$bin" --data "$dir/data" serve --listen "127.0.0.1:$port" --workers 0 "${extra[@]}" 2>"$dir/serve.log" &
pid=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
# One export first: the library's pages are warm, as they are on a running server.
curl -s -H "authorization: Bearer $tok" "http://127.0.0.1:$port/api/v1/export" -o /dev/null
sleep 1
idle=$(rss)
peak=$idle
for i in $(seq "$concurrent"); do
  curl -s -H "authorization: Bearer $tok" "http://127.0.0.1:$port/api/v1/export" -o "$dir/export-$i.json" &
done
start=$(date +%s.%N)
while [ "$(jobs -r | wc -l)" -gt 1 ]; do
  r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
  sleep 0.05
done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
end=$(date +%s.%N)
size=$(stat -c %s "$dir/export-1.json")
count=$(python3 -c "import json,sys; print(len(json.load(open('$dir/export-1.json'))))")
echo "links: $links; concurrent exports: $concurrent; each export: $size bytes, $count links"
echo "server RSS idle: $((idle / 1024)) MiB; peak during the exports: $((peak / 1024)) MiB; above idle: $(((peak - idle) / 1024)) MiB"
echo "wall time for all $concurrent: $(python3 -c "print(round($end - $start, 1))") s"
