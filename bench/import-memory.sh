#!/usr/bin/env bash
# Memory of a large JSON import (issue 18): an export of LINKS links (our JSON, with
# titles, notes and tags) imported with `linksnap import FILE --no-capture` into a new
# library by each binary given; prints each one's peak RSS and wall time. Then the same
# file broken at its very end: nothing is imported, so the peak is the reading alone
# (no commit, no indexing).
#
#   bash bench/import-memory.sh LINKS BINARY [BINARY…]
#
# Give an older build (e.g. built from an earlier commit in a worktree) to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
links="$1"
shift
command -v /usr/bin/time >/dev/null || apt-get install -y -q time >/dev/null
dir="$(mktemp -d /tmp/linksnap-import-bench.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
python3 - "$links" "$dir/links.json" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("[")
    for i in range(n):
        if i:
            f.write(",\n")
        json.dump({
            "url": f"https://site{i % 997}.example/article/{i}?ref=bench",
            "title": f"Article {i} on site {i % 997}: a title of ordinary length",
            "note": "A note of a sentence or two, as people write them. " * 2,
            "tags": [f"topic/{i % 50}", f"year/{2000 + i % 25}"],
            "created_at": 1_600_000_000_000 + i * 1000,
            "unread": i % 3 == 0,
        }, f)
    f.write("]")
PY
head -c -1 "$dir/links.json" >"$dir/broken.json"
printf ',\n {"url": ]' >>"$dir/broken.json"
echo "file: $(stat -c %s "$dir/links.json") bytes, $links links"
for file in links.json broken.json; do
  for bin in "$@"; do
    rm -rf "$dir/data"
    /usr/bin/time -f "%e %M" -o "$dir/time" "$bin" --data "$dir/data" import "$dir/$file" --no-capture 2>"$dir/err" >/dev/null || true
    read -r wall kb < <(tail -1 "$dir/time")
    echo "$file, $bin: $(grep -v '^Command exited' "$dir/err" | tail -1 | tr -d '\r' | sed 's/.*\r//' | cut -c1-90); wall $wall s; peak RSS $((kb / 1024)) MiB"
  done
done
