#!/usr/bin/env bash
# Runs every test of linksnap. Installs what the tests need first, idempotently:
#   - chromium (Debian's package): renders snapshots with the network cut off;
#   - fonts-dejavu-core: a font the fixture site serves as a web font;
#   - fonts-wqy-zenhei: Chinese glyphs for the web UI's screenshots in 简体中文;
#   - iproute2: `ss`, which a test reads the keepalive timers of connections from;
#   - dovecot-core, dovecot-pop3d: the real POP3 server the mail-ingest tests start (as
#     their own process on loopback ports; the system service is not used);
#   - openssl: the self-signed certificate those tests give Dovecot.
# Then runs the whole workspace's suite. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || need+=(fonts-wqy-zenhei)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
[ -x /usr/sbin/dovecot ] || need+=(dovecot-core)
[ -x /usr/lib/dovecot/pop3 ] || need+=(dovecot-pop3d)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The corpus of real pages lives beside the repository (../shared/corpus).
export LINKSNAP_CORPUS="${LINKSNAP_CORPUS:-$(cd .. && pwd)/shared/corpus}"

cargo test --workspace --locked
