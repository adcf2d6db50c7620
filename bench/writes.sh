#!/usr/bin/env bash
# Writes under load (issue 17): the load tests of tests/cli/faults.rs run against a release
# build of linksnap, and print throughput and latency:
#   - 40 adds, 8 at a time, while 2 workers capture (the issue's reproduction);
#   - 16 clients x 200 mixed operations (add, tag, edit, delete, rename, share, bulk tag
#     through the CLI, a 500-link import, search) while 2 workers capture.
# The load generator is the debug test binary; the server is the build named here.
#
#   bash bench/writes.sh [LINKSNAP_BINARY ...]     (default: target/release/linksnap)
#
# Give an older build to compare (e.g. one built from an earlier commit in a worktree);
# a build that answers 5xx still prints its figures before its test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export LINKSNAP_CORPUS="${LINKSNAP_CORPUS:-$(cd .. && pwd)/shared/corpus}"
cargo build --release -q -p linksnap
cargo test -q -p linksnap --test cli --no-run 2>/dev/null
bins=("$@")
[ ${#bins[@]} -eq 0 ] && bins=(target/release/linksnap)
for bin in "${bins[@]}"; do
  echo "== $bin"
  for t in faults::forty faults::sixteen; do
    LINKSNAP_TEST_BIN="$(realpath "$bin")" cargo test -q -p linksnap --test cli -- "$t" --nocapture 2>&1 \
      | grep -E "^(40 adds|concurrent writers)" || echo "$t: no figures (see the test's output)"
  done
done
