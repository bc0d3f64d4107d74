#!/usr/bin/env bash
# What `npm test` needs besides npm packages: Chromium for the browser tests, and the
# MariaDB server binaries (mariadbd, mariadb-install-db) for tests that run a private
# database server (test/helpers/mariadb-server.ts), Redis for the cluster tests, and haproxy
# for tests that put a private haproxy in front of nodes (test/helpers/haproxy.ts; never
# started as a service here), and Debian's `snmp` tools (snmpget, snmpwalk) for the SNMP agent test.
# As root (CI, a fresh Debian machine) they are installed from apt; otherwise we say how.
set -euo pipefail
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"

have() { PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v "$1" >/dev/null 2>&1; }

# The storage tests use the MariaDB on 127.0.0.1:3306 (root, no password; PARLEY_TEST_MYSQL_*
# point them elsewhere). Start the installed server if it is not running (as .ci/run does).
start_mariadb() {
  [ -n "${PARLEY_TEST_MYSQL_HOST:-}" ] && return 0
  (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null && return 0
  [ "$(id -u)" = "0" ] && have mariadbd || return 0
  echo "test deps: starting MariaDB on 127.0.0.1:3306..." >&2
  start-stop-daemon --start --oknodo --background --exec "$(PATH="$PATH:/usr/sbin" command -v mariadbd)" -- --user=mysql >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null && return 0; sleep 1; done
  echo "test deps: MariaDB did not come up on 127.0.0.1:3306" >&2
}
# The cluster tests use Redis on 127.0.0.1:6379 (PARLEY_TEST_REDIS names another).
start_redis() {
  [ -n "${PARLEY_TEST_REDIS:-}" ] && return 0
  (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && return 0
  have redis-server || return 0
  echo "test deps: starting Redis on 127.0.0.1:6379..." >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null 2>&1 || true
  for _ in $(seq 1 20); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && return 0; sleep 0.5; done
  echo "test deps: Redis did not come up on 127.0.0.1:6379" >&2
}
trap 'start_mariadb; start_redis' EXIT

missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
if ! have mariadbd || ! have mariadb-install-db; then missing+=(mariadb-server); fi
have redis-server || missing+=(redis-server)
have haproxy || missing+=(haproxy)
have snmpget || missing+=(snmp)
if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "test deps: installing ${missing[*]} from apt (once)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  for pkg in "${missing[@]}"; do
    case "$pkg" in
      chromium) apt-get install -y -qq chromium >/dev/null ;;
      # Only the server binaries: the tests run their own mariadbd, nothing else is configured.
      mariadb-server) apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null ;;
      redis-server) apt-get install -y -qq --no-install-recommends redis-server >/dev/null ;;
      # The tests run their own haproxy; stop the service the package may have started.
      haproxy)
        apt-get install -y -qq --no-install-recommends haproxy >/dev/null
        { service haproxy stop || true; } >/dev/null 2>&1 ;;
      # Only the client tools (snmpget, snmpwalk); the test runs Parley's own agent.
      snmp) apt-get install -y -qq --no-install-recommends snmp >/dev/null ;;
    esac
  done
  exit 0
fi
status=0
for pkg in "${missing[@]}"; do
  case "$pkg" in
    chromium)
      echo "test deps: Chromium is missing at $CHROMIUM; install it with: sudo apt-get install chromium" >&2
      status=1 ;;
    redis-server)
      echo "test deps: redis-server is missing; install it with: sudo apt-get install redis-server" >&2
      status=1 ;;
    haproxy) # not fatal: the tests that need it skip themselves
      echo "test deps: haproxy is missing, haproxy tests will be skipped; install it with: sudo apt-get install haproxy" >&2 ;;
    snmp) # not fatal: the SNMP test skips itself
      echo "test deps: snmpget/snmpwalk are missing, the SNMP agent test will be skipped; install them with: sudo apt-get install snmp" >&2 ;;
    mariadb-server) # not fatal: the tests that need it skip themselves
      echo "test deps: mariadbd / mariadb-install-db are missing, private-MariaDB tests will be skipped; install them with: sudo apt-get install mariadb-server" >&2 ;;
  esac
done
exit "$status"
