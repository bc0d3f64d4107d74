-- Prosody 0.12 (Debian 12) for `bench/compare`: the same domain, modules and credential
-- storage as Parley and ejabberd, on loopback, plaintext allowed.
--
-- Started by hand, never as the Debian service (bench/compare.ts does this):
--   BENCH_RUN_DIR=RUN prosody -F --config RUN/prosody.cfg.lua
-- (-F: in the foreground; the `daemonize` option is deprecated in 0.12)
-- as the `prosody` user when started by root (as Debian's service runs it; Prosody
-- refuses to run as root). Every path is under BENCH_RUN_DIR, read below through
-- Prosody's ENV_ prefix for environment variables in config files.
--
-- Tuned as operators would: Debian's example config loads mod_limits with
-- `c2s = { rate = "10kb/s" }`; no rate limit here (mod_limits is not loaded). The Lua
-- 5.4 collector runs in generational mode, which Prosody's docs recommend for servers
-- with many sessions. Nothing heavy is loaded: no MAM, PEP, carbons, smacks, MUC, vCard,
-- blocklist, bookmarks, CSI or invites.

local run_dir = ENV_BENCH_RUN_DIR or "/tmp/parley-bench-prosody"

pidfile = run_dir .. "/prosody.pid"
data_path = run_dir .. "/data"
log = {
	{ levels = { min = "warn" }, to = "file", filename = run_dir .. "/prosody.log" };
}

gc = { mode = "generational" }

-- The Debian build's default network backend (epoll), stated; the listen backlog
-- raised from 128 to 4096, as Parley's and ejabberd's listeners (a reconnect storm
-- must not lose SYNs to a short accept queue).
network_backend = "epoll"
network_settings = { tcp_backlog = 4096 }

-- No TLS certificate (none is needed on loopback); Prosody logs an error when the
-- certificate directory is missing, so bench/compare creates it empty.
certificates = run_dir .. "/certs"

modules_enabled = {
	"roster";   -- RFC 6121 roster
	"saslauth"; -- SASL (PLAIN allowed without TLS below)
	"disco";
	"ping";     -- answers pings
	"version";
	"time";
	"register"; -- in-band registration (XEP-0077), loopback only, to create the users
	"bosh";     -- XEP-0124/0206 at /http-bind (loads mod_http)
	"websocket"; -- RFC 7395 at /xmpp-websocket
	"posix";    -- pid file
	-- "offline" is always loaded (autoloaded by Prosody); "presence", "message", "iq" too.
}
modules_disabled = {
	"s2s";      -- client traffic only, as on Parley
	"s2s_auth_certs";
}

-- Listeners on loopback, ports of their own.
interfaces = { "127.0.0.1" }
c2s_ports = { 25322 }
c2s_direct_tls_ports = { }
s2s_ports = { }
http_ports = { 25380 }
http_interfaces = { "127.0.0.1" }
https_ports = { }
https_interfaces = { }

-- Plaintext on loopback, PLAIN allowed (as Parley's requireTls: false and ejabberd
-- without starttls_required).
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
-- BOSH and WebSocket behind "TLS terminated in front", as Parley's listen.http.secure.
consider_bosh_secure = true
consider_websocket_secure = true
-- Any origin, as Parley's listen.http.corsOrigins ["*"] (the generator sends none).
cross_domain_bosh = true
cross_domain_websocket = true

-- Same stanza size limit as Parley (64 KiB) and ejabberd (max_stanza_size).
c2s_stanza_size_limit = 64 * 1024

-- Credentials: SCRAM-SHA-1 keys with 4096 iterations (as ejabberd and Parley), never
-- the password; the users log in with PLAIN, so each login derives the key (PBKDF2).
-- Prosody's own default is 10000 iterations: set to 4096 so that every server does the
-- same work per login.
authentication = "internal_hashed"
default_iteration_count = 4096
-- Prosody's default storage ("internal": files under data_path), as ejabberd keeps its
-- default (Mnesia) and Parley its own (SQLite).
storage = "internal"

-- In-band registration from loopback only, not throttled (no
-- min_seconds_between_registrations / registration_throttle_max: throttling is off).
allow_registration = true
allowlist_registration_only = true
registration_allowlist = { "127.0.0.0/8", "::1" }

VirtualHost "bench.test"
