#!/usr/bin/env bash
# The browser engine against the static engine on the capture benchmark's pages (results
# in BENCHMARKS.md): wall time per page and the peak memory of linksnap with Chromium.
# Inside a loopback-only network namespace, pages served by nginx. Needs root, nginx and
# Debian's chromium (installed when missing).
#
#   [LIMIT=N] [SINGLEFILE=PATH] [ONLY=speed|fidelity] bash bench/browser.sh [LINKSNAP_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v chromium >/dev/null || need+=(chromium)
command -v compare >/dev/null || need+=(imagemagick)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}"; fi
bin="${1:-}"
if [ -z "$bin" ]; then
  cargo build --release -q -p linksnap
  bin=target/release/linksnap
fi
corpus="${LINKSNAP_CORPUS:-$(cd .. && pwd)/shared/corpus}"
# SingleFile's CLI, measured beside on the same pages with the same Chromium: $SINGLEFILE,
# else installed with npm into a cache directory outside the repository (never committed).
sf="${SINGLEFILE:-}"
if [ -z "$sf" ] && command -v npm >/dev/null; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/linksnap-bench/singlefile"
  if [ ! -x "$cache/node_modules/.bin/single-file" ]; then
    mkdir -p "$cache" && (cd "$cache" && npm install -q single-file-cli >/dev/null)
  fi
  sf="$cache/node_modules/.bin/single-file"
fi
exec unshare --net -- bash -c '
  ip link set lo up
  exec python3 bench/browser.py --linksnap "$1" --chromium "$(command -v chromium)" \
    --corpus "$2" --site crates/linksnap/tests/fixtures/site ${3:+--singlefile "$3"} ${4:+--limit "$4"} \
    --font /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ${5:+--only "$5"}
' bench "$bin" "$corpus" "$sf" "${LIMIT:-}" "${ONLY:-}"
