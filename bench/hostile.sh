#!/usr/bin/env bash
# The browser engine on hostile pages (results in BENCHMARKS.md): exit code, wall time and
# the peak memory of linksnap with its Chromium for each. Inside a loopback-only network
# namespace. Needs root and Debian's chromium (installed when missing).
#
#   bash bench/hostile.sh [LINKSNAP_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
bin="${1:-}"
if [ -z "$bin" ]; then
  cargo build --release -q -p linksnap
  bin=target/release/linksnap
fi
exec unshare --net -- bash -c '
  ip link set lo up
  exec python3 bench/hostile.py --linksnap "$1" --chromium "$(command -v chromium)"
' bench "$bin"
