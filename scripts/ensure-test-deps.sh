#!/usr/bin/env bash
# What `npm test` needs besides npm packages: Chromium for the browser tests.
# As root (CI, a fresh Debian machine) it is installed from apt; otherwise we say how.
set -euo pipefail
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "test deps: installing Chromium from apt (once)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "test deps: Chromium is missing at $CHROMIUM; install it with: sudo apt-get install chromium" >&2
exit 1
