#!/usr/bin/env bash
# Benchmark: linksnap snap vs monolith on the same pages, served over loopback.
#
# Everything runs inside a fresh network namespace that has only a loopback interface,
# so neither tool can reach any other address (the corpus pages name real hosts).
# Pages are served by nginx. Needs root (for unshare); installs nginx-light, GNU time and
# hyperfine and monolith (`cargo install monolith`) when missing.
#
#   bash bench/run.sh [REPS]     # default 5 runs per page per tool; results on stdout
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${1:-5}"
command -v monolith >/dev/null || cargo install monolith --locked
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v nginx >/dev/null || need+=(nginx-light)
command -v hyperfine >/dev/null || need+=(hyperfine)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}"; fi
cargo build --release -q -p linksnap
corpus="${LINKSNAP_CORPUS:-$(cd .. && pwd)/shared/corpus}"
exec unshare --net -- bash -c '
  ip link set lo up
  exec python3 bench/bench.py --linksnap target/release/linksnap --monolith "$(command -v monolith)" \
    --corpus "$1" --site crates/linksnap/tests/fixtures/site --reps "$2"
' bench "$corpus" "$reps"
