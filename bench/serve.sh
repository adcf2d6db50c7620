#!/usr/bin/env bash
# Server benchmarks (results in BENCHMARKS.md): with 10,000 links,
#   1. requests per second and latency of GET /api/v1/links, a search, and the list page,
#      measured with wrk over loopback (wrk and the server share this machine's cores);
#   2. the same while a link is added every 100 ms (each write ends the cached answers),
#      and with the read cache off (every request computed);
#   3. the server's RSS idle, and holding 10,000 idle keep-alive connections.
# Needs wrk (installed when missing) and python3.
#
#   bash bench/serve.sh [LINKSNAP_BINARY]   (default: a release build of this tree)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
bin="${1:-}"
if [ -z "$bin" ]; then
  cargo build --release -q -p linksnap
  bin=target/release/linksnap
fi
tmp=$(mktemp -d)
data="$tmp/data"
ulimit -n "$(ulimit -Hn)"  # 10,000 connections need as many descriptors on each side

python3 - "$tmp/bookmarks.html" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write('<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<DL><p>\n')
    for i in range(10_000):
        f.write(f'<DT><A HREF="https://site{i % 97}.example/post/{i}" ADD_DATE="{1_600_000_000 + i}" TAGS="topic/t{i % 20},lang/{["rust","go","zig"][i % 3]}">Post {i} about archiving and reading</A>\n')
    f.write('</DL><p>\n')
PY
"$bin" --data "$data" import "$tmp/bookmarks.html" --no-capture 2>/dev/null
token=$("$bin" --data "$data" token create bench 2>/dev/null)
echo "benchmark password" | "$bin" --data "$data" user add bench --password-stdin 2>/dev/null

start() {
  "$bin" --data "$data" serve --listen 127.0.0.1:0 --workers 0 --idle-timeout 600s \
    --max-connections 20000 --max-conns-per-ip 0 --rate-limit off "$@" 2>"$tmp/serve.log" &
  pid=$!
  for _ in $(seq 50); do grep -q "listening on http" "$tmp/serve.log" && break; sleep 0.1; done
  addr=$(grep -o "127.0.0.1:[0-9]*" "$tmp/serve.log" | head -1)
  # A browser session for the list page.
  login=$(curl -s -c "$tmp/jar" "http://$addr/login")
  csrf=$(grep -o 'name="csrf" value="[^"]*"' <<<"$login" | sed 's/.*value="//;s/"//')
  curl -s -o /dev/null -b "$tmp/jar" -c "$tmp/jar" --data "csrf=$csrf&name=bench&password=benchmark+password&next=/" "http://$addr/login"
  session=$(awk '$6 == "linksnap_session" {print $7}' "$tmp/jar")
}
start
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
echo "idle RSS after start: $(rss) KB"

run() {
  echo "== $1"
  shift
  wrk -t2 -c32 -d10s --latency "$@" | grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket errors"
}
run "GET /api/v1/links (50 of 10,000)" -H "Authorization: Bearer $token" "http://$addr/api/v1/links"
run "GET /api/v1/links?tag=lang/rust&offset=1000" -H "Authorization: Bearer $token" "http://$addr/api/v1/links?tag=lang/rust&offset=1000"
run "GET /api/v1/search?q=archiving" -H "Authorization: Bearer $token" "http://$addr/api/v1/search?q=archiving"
run "GET / (the list page, signed in)" -H "Cookie: linksnap_session=$session" "http://$addr/"
run "GET /healthz" "http://$addr/healthz"
echo "RSS after the load: $(rss) KB"

# Writes while reading: a link added every 100 ms ends every cached answer each time.
writer() {
  for i in $(seq 100000); do
    curl -s -o /dev/null -H "Authorization: Bearer $token" -H "content-type: application/json" \
      --data "{\"url\": \"https://bench.example/written/$1/$i\"}" "http://$addr/api/v1/links"
    sleep 0.1
  done
}
writer links & wpid=$!
run "GET /api/v1/links, a link added every 100 ms" -H "Authorization: Bearer $token" "http://$addr/api/v1/links"
kill $wpid; writer page & wpid=$!
run "GET /, a link added every 100 ms" -H "Cookie: linksnap_session=$session" "http://$addr/"
kill $wpid

echo "== 10,000 idle keep-alive connections"
python3 - "$addr" "$pid" <<'PY'
import socket, sys, time
host, port = sys.argv[1].split(":")
pid = sys.argv[2]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
before = rss()
conns = []
for i in range(10_000):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    conns.append(s)
ok = 0
for s in conns:
    if s.recv(4096).startswith(b"HTTP/1.1 200"):
        ok += 1
time.sleep(1)
print(f"connections open and answered: {ok}; server RSS {before} KB before, {rss()} KB holding them")
PY

# Every request computed: the read cache off.
kill $pid; wait $pid 2>/dev/null || true
start --read-cache 0
run "GET /api/v1/links, read cache off" -H "Authorization: Bearer $token" "http://$addr/api/v1/links"
run "GET /api/v1/search?q=archiving, read cache off" -H "Authorization: Bearer $token" "http://$addr/api/v1/search?q=archiving"
run "GET /, read cache off" -H "Cookie: linksnap_session=$session" "http://$addr/"
