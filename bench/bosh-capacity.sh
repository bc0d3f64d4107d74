#!/usr/bin/env bash
# How many idle BOSH users one Parley process holds (issue 4's target: 19,000, with a
# 20,000 open-files limit per process). Starts Parley on loopback ports 25622/25680 with
# the archive off, creates N users, logs them all in over BOSH with the load generator
# (2 workers, several source addresses) and reports logins/s, errors and RSS per session.
# Usage: npm run build && bash bench/bosh-capacity.sh [N]     (default 19000)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-19000}"
DIR="$(mktemp -d /tmp/parley-capacity-XXXXXX)"
trap 'kill "$SP" 2>/dev/null || true; rm -rf "$DIR"' EXIT
cat > "$DIR/parley.yaml" <<YAML
domain: bench.test
dataDir: $DIR/data
listen:
  c2s:    { host: 127.0.0.1, port: 25622, requireTls: false }
  c2sTls: { enabled: false }
  http:   { host: 127.0.0.1, port: 25680, secure: true }
mam: { enabled: false }
log: { level: warn }
YAML
node bin/parley.js user bulk --config "$DIR/parley.yaml" --prefix user --count "$N" --password pw >/dev/null
node bin/parley.js start --config "$DIR/parley.yaml" > "$DIR/server.log" 2>&1 &
SP=$!
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/25680) 2>/dev/null && break; sleep 0.2; done
node bin/parley.js loadtest run --host 127.0.0.1 --domain bench.test --tcpPort 25622 --httpPort 25680 \
  --users "$N" --prefix user --password pw --transports bosh:1 --loginRate 2000 --loginConcurrency 200 \
  --messagesPerMinute 0 --warmup 1s --duration 20s --drain 1s --workers 2 --serverPids "$SP" --no-progress
