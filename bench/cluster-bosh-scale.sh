#!/usr/bin/env bash
# How many idle BOSH users a cluster of Parley nodes on this machine holds: the cluster
# version of bosh-capacity.sh. Starts NODES nodes with `parley start --nodes` (cluster on
# the local Redis, a fresh key prefix parley-bench-<random>, one SQLite file; node i on
# 127.0.0.1 ports 25822+i-1 (c2s) and 25880+i-1 (HTTP); archive off, log level warn),
# creates N users with `parley user bulk`, waits until every node's /health/ready lists
# NODES members, then runs one `parley loadtest` per node in parallel, each logging its
# own range of users (--first/--users) in over BOSH on that node's HTTP port, with
# several workers (each process may hold at most `ulimit -n` files) and source
# addresses 127.0.0.2.. (past the ephemeral-port limit of one address). The users stay
# online and idle (no messages) for IDLE, each holding one BOSH request (wait 60 s:
# renewed when it expires). A sampler records every 2 s each node's sessions
# (/health/ready), RSS and CPU, the generator's RSS and CPU and Redis's; the report gives
# sessions per node and in all, RSS per node and per session, CPU while logging in and
# idle, logins/s and errors. The generators' idle windows start when their own logins
# end, so IDLE is longer than the minute measured: the report gives the overlap.
# Then the generators leave (their idle sessions cannot say goodbye: the one connection
# of each is busy holding a request), the nodes end the sessions by BOSH inactivity
# (60 s), and the nodes are stopped: both durations are reported.
#
# Usage: npm run build && bash bench/cluster-bosh-scale.sh [N] [NODES]   (100000, 6)
# Environment: IDLE (120s), LOGIN_RATE (logins/s asked for, all generators; 3000),
#   LOGIN_CONCURRENCY (logins in progress at once, all generators; 600),
#   PER_WORKER (users per generator worker; 6000), BOSH_WAIT (60), KEEP=DIR (copy the
#   report, samples, loadtest results and logs there), REDIS_URL (redis://127.0.0.1:6379),
#   USERS_CACHE=DIR (keep the SQLite file with the N users as DIR/users-N.db and start
#   from a copy next time: `user bulk` takes ~2.5 ms per user, 4 min for 100,000).
# Every process it started is stopped at the end, also on failure or Ctrl-C; the temp
# directory and the prefix's Redis keys are deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"
NODES="${2:-6}"
IDLE="${IDLE:-120s}"
LOGIN_RATE="${LOGIN_RATE:-3000}"
LOGIN_CONCURRENCY="${LOGIN_CONCURRENCY:-600}"
PER_WORKER="${PER_WORKER:-6000}"
BOSH_WAIT="${BOSH_WAIT:-60}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
C2S_BASE=25722
HTTP_BASE=25780
MON=dist/bench/cluster-scale-monitor.js
[ -f "$MON" ] || { echo "run npm run build first" >&2; exit 1; }

# Every process may hold as many files as the hard limit allows.
ulimit -n "$(ulimit -Hn)"
FILES="$(ulimit -n)"
PER_NODE=$(( (N + NODES - 1) / NODES ))
if [ "$PER_NODE" -gt $(( FILES - 500 )) ]; then
  echo "warning: $PER_NODE sessions per node need as many sockets; the limit is $FILES files per process (use more nodes)" >&2
fi
WORKERS=$(( (PER_NODE + PER_WORKER - 1) / PER_WORKER )); [ "$WORKERS" -ge 2 ] || WORKERS=2
# Source addresses: at most ~28,000 ports each (ip_local_port_range), shared by all
# generators; an idle session holds one connection, a busy one two.
SOURCES=$(( N / 10000 + 4 )); [ "$SOURCES" -le 250 ] || SOURCES=250

for i in $(seq 1 "$NODES"); do
  for p in $((C2S_BASE + 100 + i - 1)) $((HTTP_BASE + 100 + i - 1)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "port $p is in use" >&2; exit 1; fi
  done
done

DIR="$(mktemp -d /tmp/parley-cluster-scale-XXXXXX)"
PREFIX="parley-bench-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
SUP=""
SAMPLER=""
LT_PIDS=()
NODE_PIDS=""

# A process and all its descendants, by pid (children first found via pgrep -P).
tree() {
  local p
  for p in $(pgrep -P "$1"); do tree "$p"; done
  echo "$1"
}

cleanup() {
  set +e
  trap - EXIT INT TERM
  # Generators still running (interrupted): each timeout, its loadtest and the workers.
  LT_TREE=""
  for p in "${LT_PIDS[@]}"; do LT_TREE="$LT_TREE $(tree "$p" | tr '\n' ' ')"; done
  for p in $LT_TREE; do kill -TERM "$p" 2>/dev/null; done
  [ -n "$SAMPLER" ] && kill -TERM "$SAMPLER" 2>/dev/null
  if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
    NODE_PIDS="$(pgrep -P "$SUP" | tr '\n' ' ')"
    kill -TERM "$SUP"
    # Each node drains (2 s) and ends its sessions; then the supervisor exits.
    for _ in $(seq 1 120); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$SUP" 2>/dev/null
  fi
  # Nodes left behind (own process groups): only the ones started on this config.
  for p in $NODE_PIDS; do
    if tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | grep -q -- "$DIR/parley.yaml"; then kill -KILL "$p" 2>/dev/null; fi
  done
  sleep 0.5
  for p in $LT_TREE; do kill -KILL "$p" 2>/dev/null; done
  if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP"
    cp "$DIR"/report.md "$DIR"/samples.jsonl "$DIR"/lt-*.json "$DIR"/lt-*.out "$DIR"/nodes.log "$DIR"/parley.yaml "$KEEP"/ 2>/dev/null
  fi
  KEYS="$(redis-cli -u "$REDIS_URL" --raw KEYS "$PREFIX:*" 2>/dev/null)"
  if [ -n "$KEYS" ]; then
    echo "$KEYS" | xargs redis-cli -u "$REDIS_URL" DEL > /dev/null
  fi
  LEFT="$(redis-cli -u "$REDIS_URL" --raw KEYS "$PREFIX:*" 2>/dev/null | grep -c . || true)"
  echo "cleanup: nodes stopped, Redis keys $PREFIX:* deleted ($LEFT left), $DIR removed" >&2
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$DIR/parley.yaml" <<YAML
domain: bench.test
dataDir: $DIR/data
listen:
  c2s:    { host: 127.0.0.1, port: $C2S_BASE, requireTls: false }
  c2sTls: { enabled: false }
  http:   { host: 127.0.0.1, port: $HTTP_BASE, secure: true }
mam: { enabled: false }
log: { level: warn }
cluster:
  driver: redis
  url: $REDIS_URL
  prefix: $PREFIX
  nodeId: scale
  listen: { host: 127.0.0.1, port: 0 }
YAML

echo "== $N users on $NODES nodes; $WORKERS generator workers per node, $SOURCES source addresses; ulimit -n $FILES; prefix $PREFIX; $DIR" >&2
T0=$(date +%s)
if [ -n "${USERS_CACHE:-}" ] && [ -f "$USERS_CACHE/users-$N.db" ]; then
  mkdir -p "$DIR/data" && cp "$USERS_CACHE/users-$N.db" "$DIR/data/parley.db"
  [ ! -f "$USERS_CACHE/users-$N.db-wal" ] || cp "$USERS_CACHE/users-$N.db-wal" "$DIR/data/parley.db-wal"
  echo "users copied from $USERS_CACHE/users-$N.db" >&2
else
  node bin/parley.js user bulk --config "$DIR/parley.yaml" --prefix user --count "$N" --password pw 2>/dev/null
  echo "users created in $(( $(date +%s) - T0 )) s" >&2
  if [ -n "${USERS_CACHE:-}" ]; then
    mkdir -p "$USERS_CACHE" && cp "$DIR/data/parley.db" "$USERS_CACHE/users-$N.db"
    [ ! -f "$DIR/data/parley.db-wal" ] || cp "$DIR/data/parley.db-wal" "$USERS_CACHE/users-$N.db-wal"
  fi
fi

node bin/parley.js start --nodes "$NODES" --config "$DIR/parley.yaml" > "$DIR/nodes.log" 2>&1 &
SUP=$!
PORTS="$(seq -s, $((HTTP_BASE + 100)) $((HTTP_BASE + 100 + NODES - 1)))"
node "$MON" ready --ports "$PORTS" --members "$NODES" --timeout 60
sleep 1
NODE_PIDS="$(pgrep -P "$SUP" | tr '\n' ' ')"

: > "$DIR/gen.pids"
REDIS_PID="$(redis-cli -u "$REDIS_URL" info server 2>/dev/null | sed -n 's/^process_id:\([0-9]*\).*/\1/p')"
[ -d "/proc/${REDIS_PID:-none}" ] || REDIS_PID=""
node "$MON" sample --supervisor "$SUP" --ports "$PORTS" --gen-pids "$DIR/gen.pids" --out "$DIR/samples.jsonl" --interval 2 ${REDIS_PID:+--redis-pid "$REDIS_PID"} &
SAMPLER=$!
sleep 3 # a few samples before the logins

# Generous time limit per generator: logins at 50/s in all, plus the idle window.
case "$IDLE" in *m) IDLE_S=$(( ${IDLE%m} * 60 )) ;; *s) IDLE_S=${IDLE%s} ;; *) IDLE_S=$(( IDLE / 1000 )) ;; esac
LIMIT=$(( N / 50 + IDLE_S + 300 ))
T1=$(date +%s)
for i in $(seq 1 "$NODES"); do
  FIRST=$(( 1 + (i - 1) * PER_NODE ))
  COUNT=$(( N - (i - 1) * PER_NODE )); [ "$COUNT" -le "$PER_NODE" ] || COUNT=$PER_NODE
  [ "$COUNT" -gt 0 ] || continue
  NODE_PID=""
  for p in $NODE_PIDS; do
    if tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | grep -q -- "--node-index $i "; then NODE_PID=$p; fi
  done
  [ -n "$NODE_PID" ] || { echo "node $i is not running" >&2; exit 1; }
  timeout --signal=TERM --kill-after=30 "$LIMIT" \
    node bin/parley.js loadtest run --name "node-$i" --host 127.0.0.1 --domain bench.test \
      --tcpPort $((C2S_BASE + 100 + i - 1)) --httpPort $((HTTP_BASE + 100 + i - 1)) \
      --users "$COUNT" --first "$FIRST" --prefix user --password pw --transports bosh:1 \
      --loginRate $(( LOGIN_RATE / NODES )) --loginConcurrency $(( LOGIN_CONCURRENCY / NODES )) \
      --messagesPerMinute 0 --warmup 1s --duration "$IDLE" --drain 1s --boshWait "$BOSH_WAIT" \
      --workers "$WORKERS" --sourceAddresses "$SOURCES" --serverPids "$NODE_PID" \
      --no-progress --json "$DIR/lt-$i.json" > "$DIR/lt-$i.out" 2>&1 &
  LT_PIDS+=($!)
  echo $! >> "$DIR/gen.pids"
done
FAILED=0
for p in "${LT_PIDS[@]}"; do wait "$p" || FAILED=$((FAILED + 1)); done
LT_PIDS=()
echo "generators done in $(( $(date +%s) - T1 )) s ($FAILED failed)" >&2
sleep 2
kill -TERM "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null || true
SAMPLER=""

# The sessions left behind end by BOSH inactivity; then the nodes stop.
sessions_left() {
  local p n t=0
  for p in ${PORTS//,/ }; do
    n="$(curl -s -m 5 "http://127.0.0.1:$p/health/ready" | sed -n 's/.*"sessions":\([0-9]*\).*/\1/p')"
    t=$(( t + ${n:-0} ))
  done
  echo "$t"
}
T2=$(date +%s)
while [ "$(sessions_left)" -gt 0 ] && [ $(( $(date +%s) - T2 )) -lt 240 ]; do sleep 2; done
EXPIRED="$(( $(date +%s) - T2 )) s after the generators left ($(sessions_left) sessions left then)"
T3=$(date +%s)
NODE_PIDS="$(pgrep -P "$SUP" | tr '\n' ' ')"
kill -TERM "$SUP"
for _ in $(seq 1 600); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.5; done
STOPPED="$(( $(date +%s) - T3 )) s"
kill -0 "$SUP" 2>/dev/null && STOPPED="more than $STOPPED (killed)"

{
  echo "### $N users, $NODES nodes ($(date -u +%FT%TZ))"
  echo
  node "$MON" report --dir "$DIR" --nodes "$NODES" --users "$N" || true
  echo "- sessions ended by BOSH inactivity $EXPIRED; the nodes stopped $STOPPED after SIGTERM"
  echo
  echo "- node log (level warn): $(grep -c . "$DIR/nodes.log" || true) lines"
  grep -v '^$' "$DIR/nodes.log" | cut -c1-300 | sort | uniq -c | sort -rn | head -10 | sed 's/^/    /'
  for i in $(seq 1 "$NODES"); do
    # The summary's "errors:" line (only when there were any), or whatever else went wrong.
    if [ -f "$DIR/lt-$i.out" ] && grep -qE '^errors:|Error|exited' "$DIR/lt-$i.out"; then
      echo "- generator $i: $(grep -E '^errors:|Error|exited' "$DIR/lt-$i.out" | head -3 | cut -c1-300)"
    fi
  done
} | tee "$DIR/report.md"
