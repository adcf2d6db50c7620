#!/usr/bin/env bash
# Library benchmarks (results in BENCHMARKS.md):
#   1. import of 100,000 Netscape bookmarks: wall time and peak RSS;
#   2. search over 100,000 documents (the readability corpus's text plus synthetic words):
#      p50/p90/p99 latency of Library::search;
#   3. bytes on disk for 100 pages of one site against the sum of monolith's outputs.
# Needs root (part 3 runs in a loopback-only network namespace), GNU time, nginx, monolith.
#
#   bash bench/library.sh
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${LINKSNAP_CORPUS:-$(cd .. && pwd)/shared/corpus}"
command -v monolith >/dev/null || cargo install monolith --locked
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v nginx >/dev/null || need+=(nginx-light)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}"; fi
cargo build --release -q -p linksnap
cargo build --release -q -p linksnap-store --example bench_search
tmp=$(mktemp -d)

echo "== import of 100,000 Netscape bookmarks"
python3 - "$tmp/bookmarks.html" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write('<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">\n<TITLE>Bookmarks</TITLE>\n<H1>Bookmarks</H1>\n<DL><p>\n')
    for i in range(100_000):
        f.write(f'    <DT><A HREF="https://site{i % 997}.example/articles/{i}?utm_source=feed" ADD_DATE="{1_600_000_000 + i}" TAGS="topic/t{i % 50},year/{2000 + i % 25}">Article number {i} &amp; more</A>\n')
        if i % 3 == 0:
            f.write(f'    <DD>A description of article {i}, kept as its note.\n')
    f.write('</DL><p>\n')
PY
ls -l "$tmp/bookmarks.html" | awk '{print "file: " $5 " bytes"}'
/usr/bin/time -f "import: %e s wall, peak RSS %M KB" target/release/linksnap --data "$tmp/import" import "$tmp/bookmarks.html" --no-capture
/usr/bin/time -f "again (idempotent): %e s wall, peak RSS %M KB" target/release/linksnap --data "$tmp/import" import "$tmp/bookmarks.html" --no-capture

echo "== search over 100,000 documents"
target/release/examples/bench_search "$tmp/search" "$corpus" 100000

echo "== storage: 100 pages of one site"
unshare --net -- bash -c 'ip link set lo up; python3 bench/storage.py "$1" "$2" "$3"' bench target/release/linksnap "$(command -v monolith)" "$corpus"
