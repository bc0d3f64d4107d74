/**
 * The configuration schema: every key Parley reads, with its validator, default and doc
 * line. `docs/config.md` is generated from it (`parley config docs`).
 */
import { bool, duration, int, list, obj, oneOf, optionalObj, optionalStr, record, size, str, type Field, type InferShape, type ObjectField, type Shape } from './schema-dsl.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const SYSLOG_FACILITIES = ['kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'] as const;

const host = (def: string) => str({ doc: 'address to listen on', default: def, minLength: 1 });
const port = (def: number) => int({ doc: 'port (0 picks a free one)', default: def, min: 0, max: 65535 });
const trustedProxies = (what: string) =>
  list(str({ doc: 'an address or CIDR block such as 10.0.0.5 or 10.0.0.0/24', default: '127.0.0.1' }), {
    doc: `proxies (haproxy) in front of this listener: a connection from one of them must start with a PROXY protocol v2 header (haproxy \`send-proxy-v2\`) or it is closed, and the client's address is taken from it${what}; other connections are never read as PROXY. Empty: every address is the socket's`,
    default: [],
  });

const DOMAIN_PATTERN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export const coreConfigSchema = obj({
  domain: str({
    doc: 'XMPP domain served (the part after @ in JIDs)',
    default: 'localhost',
    pattern: DOMAIN_PATTERN,
    patternDoc: 'a lower-case DNS name such as example.com',
  }),
  dataDir: str({ doc: 'directory for the SQLite file, the generated TLS certificate and other state', default: './data' }),
  storage: obj(
    {
      driver: oneOf(['sqlite', 'mysql'] as const, { doc: 'storage backend: sqlite (embedded, one file) or mysql (MySQL/MariaDB shards partitioned by user)', default: 'sqlite' }),
      sqlite: obj(
        {
          file: str({ doc: 'database file, relative to dataDir (":memory:" for a throw-away database)', default: 'parley.db' }),
          busyTimeout: duration({ doc: 'how long a write waits for a lock held by another process', default: '5s' }),
        },
        'SQLite settings',
      ),
      mysql: obj(
        {
          shardMap: str({ doc: 'the shard map file (YAML: directory, defaults, shards), relative to the config file; reloaded by `parley shards reload` and SIGHUP', default: 'shards.yaml', minLength: 1 }),
          poolSize: int({ doc: 'connections per shard', default: 8, min: 1, max: 500 }),
          connectTimeout: duration({ doc: 'time to open a connection to a shard', default: '3s', min: '100ms' }),
          queryTimeout: duration({ doc: 'time one query may take before its connection is dropped', default: '10s', min: '100ms' }),
          retries: int({ doc: 'retries of a failed operation (only where a retry cannot write twice)', default: 2, min: 0, max: 10 }),
          retryBackoff: duration({ doc: 'first retry delay (doubled each time, with jitter)', default: '50ms' }),
          breakerThreshold: int({ doc: 'consecutive server failures that open a shard\'s circuit breaker', default: 5, min: 1 }),
          breakerCooldown: duration({ doc: 'how long an open breaker refuses work before one trial operation', default: '5s', min: '100ms' }),
          healthInterval: duration({ doc: 'period of the health check (SELECT 1) of every shard; 0 turns it off', default: '2s' }),
          moveTimeout: duration({ doc: 'how long a user move waits for the user\'s operations in flight', default: '10s', min: '100ms' }),
        },
        'MySQL/MariaDB settings (storage.driver: mysql)',
      ),
    },
    'where users, rosters and offline messages are kept',
  ),
  listen: obj(
    {
      c2s: obj(
        {
          enabled: bool({ doc: 'accept client connections with STARTTLS', default: true }),
          host: host('127.0.0.1'),
          port: port(5222),
          requireTls: bool({
            doc: 'require STARTTLS before authentication; false allows plaintext streams and PLAIN without TLS (loopback benchmarks)',
            default: true,
          }),
          trustedProxies: trustedProxies(''),
        },
        'client-to-server listener (RFC 6120, STARTTLS)',
      ),
      c2sTls: obj(
        {
          enabled: bool({ doc: 'accept client connections with direct TLS', default: true }),
          host: host('127.0.0.1'),
          port: port(5223),
          trustedProxies: trustedProxies(' (the header comes before the TLS handshake)'),
        },
        'client-to-server listener with direct TLS (XEP-0368)',
      ),
      http: obj(
        {
          enabled: bool({ doc: 'serve HTTP (BOSH, WebSocket, API, metrics, web)', default: true }),
          host: host('127.0.0.1'),
          port: port(5280),
          secure: bool({ doc: 'TLS is terminated in front (haproxy): treat HTTP sessions as secure, allowing PLAIN', default: false }),
          corsOrigins: list(
            str({
              doc: 'an origin such as https://portal.example.com, or *',
              default: '*',
              pattern: /^(\*|https?:\/\/[^/\s]+\/?)$/i,
              patternDoc: 'an origin (scheme://host[:port], no path) or *',
            }),
            {
              doc: "origins other than Parley's own whose pages may use BOSH and WebSocket from a browser (CORS); pages of the server's own origin always may; [\"*\"] allows any page (not advised)",
              default: [],
            },
          ),
          maxBodySize: size({ doc: 'largest HTTP request body accepted (BOSH)', default: '1MiB', min: 4096 }),
          keepAliveTimeout: duration({ doc: 'how long an idle HTTP keep-alive connection stays open', default: '75s' }),
          requestTimeout: duration({ doc: 'time a client has to send a whole request (slow clients are cut)', default: '30s', min: '1s' }),
          trustedProxies: trustedProxies('; where that address is itself a trusted proxy (a LOCAL header, or proxies in a chain), the right-most X-Forwarded-For address that is not a trusted proxy'),
        },
        'HTTP listener',
      ),
    },
    'network listeners',
  ),
  bosh: obj(
    {
      enabled: bool({ doc: 'serve BOSH (XEP-0124, XEP-0206) at /http-bind and /bosh', default: true }),
      maxWait: duration({ doc: 'longest time a request is held (the client may ask for less)', default: '60s', min: '1s', max: '300s' }),
      maxHold: int({ doc: 'most requests held at once per session (the client may ask for fewer)', default: 2, min: 1, max: 5 }),
      inactivity: duration({ doc: 'a session with no request for this long ends (its messages go to offline storage)', default: '60s', min: '5s' }),
      maxPause: duration({ doc: 'longest pause a client may ask for (XEP-0124 §10), e.g. while a page changes', default: '120s' }),
      polling: duration({ doc: 'shortest allowed interval between empty requests of polling clients', default: '2s' }),
      presenceDelay: duration({ doc: 'presence for a client waits this long to go out with others in one response; messages never wait', default: '250ms' }),
      hibernateAfter: duration({ doc: 'an idle session drops its caches after this long', default: '30s' }),
      minWait: duration({ doc: 'the adaptive wait never goes below this', default: '5s' }),
      maxQueue: int({ doc: 'stanzas queued for a client with no request open before the session is ended (they go offline)', default: 2000, min: 10 }),
    },
    'BOSH connection manager',
  ),
  websocket: obj(
    {
      enabled: bool({ doc: 'serve XMPP over WebSocket (RFC 7395) at /xmpp-websocket', default: true }),
      pingInterval: duration({ doc: 'ping idle connections this often; one that does not answer by the next ping is closed', default: '30s', min: '1s' }),
    },
    'WebSocket transport',
  ),
  streamManagement: obj(
    {
      enabled: bool({ doc: 'offer stream management (XEP-0198: acks and resumption) on TCP and WebSocket', default: true }),
      resumeTimeout: duration({
        doc: 'how long a session whose connection dropped waits to be resumed (the client may ask for less); then its unacknowledged messages go to offline storage',
        default: '300s',
        max: '24h',
      }),
      maxQueue: int({ doc: 'most stanzas sent and not acknowledged by the client; beyond it the session ends and its messages go to offline storage', default: 1000, min: 10 }),
      ackAfter: int({ doc: 'the server asks for an acknowledgement once this many stanzas are unacknowledged (a message asks at once)', default: 5, min: 1 }),
      ackTimeout: duration({ doc: 'a connection that does not answer an ack request within this time counts as dead (the session waits for resumption)', default: '60s', min: '100ms' }),
    },
    'stream management (XEP-0198)',
  ),
  csi: obj(
    {
      enabled: bool({ doc: 'offer client state indication (XEP-0352): presence for inactive clients is held back and sent in one go', default: true }),
      maxHeld: int({ doc: 'presence updates (one per sender) held for an inactive client before they are all sent', default: 200, min: 1 }),
    },
    'client state indication (XEP-0352)',
  ),
  tls: obj(
    {
      cert: optionalStr({ doc: 'PEM certificate chain; when unset a self-signed one for the domain is made in dataDir' }),
      key: optionalStr({ doc: 'PEM private key for tls.cert' }),
    },
    'TLS certificate',
  ),
  limits: obj(
    {
      maxStanzaSize: size({ doc: 'largest stanza accepted, in bytes', default: '64KiB', min: 1024, max: 16 * 1024 * 1024 }),
      maxStanzaDepth: int({ doc: 'deepest element nesting inside a stanza', default: 48, min: 4, max: 1024 }),
      maxAttributes: int({ doc: 'most attributes on one element', default: 64, min: 4, max: 4096 }),
      authTimeout: duration({ doc: 'time a new connection has to authenticate and bind', default: '60s', min: '1s' }),
      closeTimeout: duration({ doc: 'time the peer has to close its stream after ours is closed', default: '5s' }),
      maxSaslFailures: int({ doc: 'failed authentication attempts on one connection before it is closed', default: 3, min: 1 }),
      saslAttemptsPerConnection: int({ doc: 'SASL exchanges one connection may bring to the credential check (PBKDF2, a database or portal read), whatever their outcome (success, failure, abort); one more closes the stream with policy-violation before anything is checked', default: 5, min: 1 }),
      saslAttemptsPerIp: int({ doc: 'SASL exchanges from one IP address (IPv6: one ipv6Prefix network) that may reach the credential check in loginWindow, whatever their outcome; beyond it temporary-auth-failure without a check (portal tokens excepted); 0 turns it off', default: 600, min: 0 }),
      ipv6Prefix: int({ doc: 'IPv6 addresses are grouped by this prefix length for the per-address login limits (one host usually has a whole /64); IPv4 and IPv4-mapped addresses count one by one', default: 64, min: 16, max: 128 }),
      maxSendBuffer: size({ doc: 'bytes waiting for a client that does not read before it is disconnected', default: '4MiB', min: 65536 }),
      plainLoginCache: int({ doc: 'recent PLAIN logins remembered (as HMACs) so logging in again skips PBKDF2; 0 turns it off', default: 100_000, min: 0 }),
      plainLoginCacheTtl: duration({ doc: 'how long a remembered PLAIN login stays valid', default: '10m' }),
      maxResourcesPerUser: int({ doc: 'simultaneous sessions of one account; one more gets resource-constraint at resource binding', default: 10, min: 1 }),
      messagesPerSecond: int({ doc: 'messages one account may send per second, all its resources on this node together (token bucket); beyond it the message is bounced with policy-violation (wait); 0 turns it off', default: 50, min: 0 }),
      messageBurst: int({ doc: 'messages one account may send at once before messagesPerSecond applies (the bucket size)', default: 500, min: 1 }),
      presencePerMinute: int({ doc: 'broadcast presence updates one account may send per minute (token bucket, burst of the same size); beyond it a presence error policy-violation (wait); unavailable presence is never refused; 0 turns it off', default: 120, min: 0 }),
      directedPresences: int({ doc: 'distinct JIDs one session may have sent directed available presence to; beyond it a presence error resource-constraint (wait)', default: 1000, min: 1 }),
      maxRosterSize: int({ doc: 'most items (contacts and pending requests) in one roster; beyond it not-allowed (roster set, subscriptions), and portal friend lists are cut with a warning', default: 2000, min: 1 }),
      exemptAddresses: list(str({ doc: 'an IP address', default: '127.0.0.1' }), {
        doc: 'client addresses the per-IP limits (unauthenticated connections, login failures, BOSH sessions) do not apply to: loopback by default, for load tests and benchmarks. Behind a proxy, list the proxy in listen.*.trustedProxies, not here: the limits then see each client\'s own address (from PROXY v2), and listing the proxy here would exempt nothing but its own health checks',
        default: ['127.0.0.1', '::1'],
      }),
      unauthenticatedPerIp: int({ doc: 'connections (TCP, WebSocket, BOSH sessions) from one IP address not yet authenticated; one more is refused at once with policy-violation; 0 turns it off', default: 50, min: 0 }),
      boshSessionsPerIp: int({ doc: 'BOSH sessions from one IP address (authenticated or not); one more is refused with terminate policy-violation; 0 turns it off', default: 1000, min: 0 }),
      loginWindow: duration({ doc: 'the sliding window in which failed logins are counted', default: '10m', min: '1s' }),
      loginFailuresPerAccount: int({ doc: 'failed logins of one account from one address (IPv6: one ipv6Prefix network) in loginWindow after which logins of that account from that address are refused (temporary-auth-failure) without checking the password, until the window moves on; from other addresses the account is only slowed down (loginSlowDownAfter), and portal tokens and prebind are never refused; 0 turns it off', default: 10, min: 0 }),
      loginFailuresPerIp: int({ doc: 'failed logins from one IP address in loginWindow after which its logins are refused (temporary-auth-failure); past half of it answers are slowed down; 0 turns it off', default: 100, min: 0 }),
      loginSlowDownAfter: int({ doc: 'failed logins of one account (from any address) in loginWindow after which every answer to a password login of that account is delayed (loginDelay, doubling with every further failure, up to loginDelayMax); never a refusal', default: 3, min: 1 }),
      loginDelay: duration({ doc: 'the first delay of a slowed-down login answer; 0 turns slowing down off', default: '500ms' }),
      loginDelayMax: duration({ doc: 'the longest delay of a login answer', default: '8s' }),
    },
    'limits that protect the server',
  ),
  cluster: obj(
    {
      driver: oneOf(['none', 'redis'] as const, { doc: 'none: one process with the in-process session directory; redis: nodes sharing Redis form a cluster', default: 'none' }),
      url: str({ doc: 'Redis URL (redis://[:password@]host:port[/db])', default: 'redis://127.0.0.1:6379', minLength: 1 }),
      prefix: str({ doc: 'prefix of the cluster\'s Redis keys (several clusters can share one Redis)', default: 'parley', pattern: /^[A-Za-z0-9_.:-]+$/, patternDoc: 'letters, digits and _ . : -' }),
      nodeId: optionalStr({ doc: 'this node\'s name in the cluster (letters, digits, - and _); generated when unset' }),
      listen: obj(
        {
          host: host('127.0.0.1'),
          port: port(0),
        },
        'where this node takes the links of the other nodes (stanzas between nodes)',
      ),
      advertise: optionalStr({ doc: 'the host, or host:port, other nodes reach this one at (default: listen.host and the port listened on; set it when listening on 0.0.0.0 or behind a port forward)' }),
      secret: optionalStr({ doc: 'shared secret of the cluster, the same on every node, at least 32 characters; required when driver is redis: it keys the links between nodes (mutual authentication with fresh nonces, then AES-256-GCM; see docs/cluster.md). `parley start --nodes N` makes one for its nodes when unset' }),
      heartbeat: duration({ doc: 'how often a node renews its lease', default: '1s', min: '50ms' }),
      lease: duration({ doc: 'a node silent this long is declared dead (at least two heartbeats)', default: '5s', min: '200ms' }),
      queueLimit: int({ doc: 'stanzas queued for one other node before senders get resource-constraint (wait)', default: 50000, min: 100 }),
      drainTimeout: duration({ doc: 'on shutdown, how long clients are given to leave after being told to reconnect elsewhere', default: '2s' }),
      reconnectHost: optionalStr({ doc: 'host[:port] clients are sent to on shutdown (see-other-host), e.g. the haproxy address; without it they get system-shutdown' }),
    },
    'cluster of nodes on Redis (issue 7); off unless driver is redis',
  ),
  portal: obj(
    {
      secret: optionalStr({ doc: 'shared secret of the portal: signs login tokens and events API requests (HMAC-SHA256); the events API and tokens are off when unset (the demo portal makes one in dataDir)' }),
      api: obj(
        {
          enabled: bool({ doc: 'serve the events API (/api/v1/ on the HTTP listener) when portal.secret is set', default: true }),
          allowFrom: list(str({ doc: 'an address or CIDR block such as 10.0.0.0/8', default: '127.0.0.0/8' }), {
            doc: 'addresses the events API answers (others get 403); loopback by default',
            default: ['127.0.0.0/8', '::1/128'],
          }),
          maxSkew: duration({ doc: 'how far the timestamp of a signed API request may be from this server\'s clock (older ones are replays)', default: '300s', min: '1s' }),
          eventRetention: duration({ doc: 'how long applied event ids are remembered, so a repeated event is applied once', default: '7d', min: '1m' }),
        },
        'the events API the portal calls (friendships, users, profiles, notifications, prebind)',
      ),
      tokenMaxTtl: duration({ doc: 'longest lifetime a login token may have (tokens expiring later are refused)', default: '24h', min: '10s' }),
      auth: obj(
        {
          source: oneOf(['internal', 'http', 'sql'] as const, {
            doc: 'where passwords are checked: internal (Parley\'s own SCRAM store), http (ask the portal, portal.auth.url), sql (a query on the portal\'s user table); portal tokens are accepted in every mode when portal.secret is set',
            default: 'internal',
          }),
          url: optionalStr({ doc: 'http source: URL Parley POSTs {"user", "password"} to (JSON); 200 with {"ok": true} accepts' }),
          query: optionalStr({ doc: 'sql source: a query on portal.db with the placeholders :user and :password; a row accepts (when it has a column password_hash, that bcrypt/sha256 hash is checked instead)' }),
          cacheTtl: duration({ doc: 'how long a password the portal accepted is remembered (as an HMAC), so logging in again does not ask again; 0 turns it off', default: '60s' }),
          timeout: duration({ doc: 'how long a question to the portal (HTTP or SQL) may take before the login fails with temporary-auth-failure', default: '5s', min: '100ms' }),
          existsUrl: optionalStr({ doc: 'http source, optional: URL Parley GETs ({user} replaced) to learn whether a user who never logged in exists (200 yes, 404 no), so messages to them are stored offline instead of bounced' }),
          existsQuery: optionalStr({ doc: 'sql source, optional: a query on portal.db with the placeholder :user; a row says the user exists (messages to a portal user who never logged in are then stored offline instead of bounced)' }),
        },
        'portal logins',
      ),
      roster: obj(
        {
          source: oneOf(['internal', 'http', 'sql'] as const, {
            doc: 'where rosters come from: internal (standard XMPP rosters), http or sql (the portal\'s friend list; the roster is read-only to clients and subscriptions follow friendships)',
            default: 'internal',
          }),
          url: optionalStr({ doc: 'http source: URL of a user\'s friends; {user} is replaced by the username; answers [{"user", "name"?, "groups"?}]' }),
          query: optionalStr({ doc: 'sql source: a query on portal.db with the placeholder :user, returning columns user (the friend), and optionally name and groups (comma separated)' }),
          cacheTtl: duration({ doc: 'a user\'s friend list is read from the portal again when older than this (events keep it fresh meanwhile)', default: '10m' }),
        },
        'where friends come from',
      ),
      db: optionalStr({ doc: 'the portal\'s database for the sql sources: mysql://user:pass@host:port/db or sqlite:/path/file.db' }),
      deletedUsers: oneOf(['remove', 'keep'] as const, { doc: 'what a user-deleted event does with the user\'s data (roster, archive, offline, vCard): remove it, or keep it with the account closed', default: 'remove' }),
      notificationsOffline: bool({ doc: 'notifications for a user who is offline are stored and delivered at the next login', default: true }),
    },
    'the portal: events API, logins, friends and prebind (issue 8)',
  ),
  demo: obj(
    {
      enabled: bool({ doc: 'serve the demo portal at / on the HTTP listener, with seeded users and friendships (on by default only for `parley start` without a config file)', default: false }),
    },
    'the demo portal',
  ),
  metrics: obj(
    {
      enabled: bool({ doc: 'serve Prometheus metrics at /metrics on the HTTP listener (see docs/metrics.md)', default: true }),
      allowFrom: list(str({ doc: 'an address or CIDR block such as 10.0.0.0/8', default: '127.0.0.0/8' }), {
        doc: 'addresses /metrics answers (others get 403); loopback by default',
        default: ['127.0.0.0/8', '::1/128'],
      }),
      token: optionalStr({ doc: 'when set, /metrics also requires `Authorization: Bearer <token>` (401 without it)' }),
    },
    'Prometheus metrics (issue 9)',
  ),
  snmp: optionalObj(
    {
      host: str({ doc: 'UDP address the SNMP agent listens on', default: '127.0.0.1' }),
      port: int({ doc: 'UDP port of the SNMP agent', default: 1161, min: 1, max: 65535 }),
      community: str({ doc: 'SNMPv2c community (read-only)', default: 'public', minLength: 1 }),
      v2c: bool({ doc: 'answer SNMPv1/v2c requests with the community; false leaves only the v3 user', default: true }),
      v3: optionalObj(
        {
          user: str({ doc: 'SNMPv3 user name', default: 'parley', minLength: 1 }),
          authProtocol: oneOf(['sha', 'sha224', 'sha256', 'sha384', 'sha512', 'md5'] as const, { doc: 'authentication protocol', default: 'sha' }),
          authKey: str({ doc: 'authentication passphrase (at least 8 characters)', default: '', minLength: 8 }),
          privProtocol: oneOf(['aes', 'des', 'none'] as const, { doc: 'privacy (encryption) protocol; none gives authNoPriv', default: 'aes' }),
          privKey: optionalStr({ doc: 'privacy passphrase (at least 8 characters); required unless privProtocol is none' }),
        },
        'a read-only SNMPv3 user (USM); absent: no v3',
      ),
    },
    'the SNMP agent with the PARLEY-MIB statistics (issue 9; deploy/PARLEY-MIB.txt); off when this key is absent',
  ),
  admin: obj(
    {
      token: optionalStr({ doc: 'bearer token of the admin HTTP API (/admin/v1/ on the HTTP listener) and of `parley shards`; the API is off when unset' }),
    },
    'administration',
  ),
  log: obj(
    {
      level: oneOf(LOG_LEVELS, {
        doc: 'log level of every part without a level of its own in log.modules (changed live by a reload)',
        default: 'info',
      }),
      modules: record(oneOf(LOG_LEVELS, { doc: 'level', default: 'info' }), {
        doc: 'a level per part, e.g. { router: debug, bosh: warn } (parts: core, router, c2s, tcp, bosh, websocket, http, auth, storage, cluster, portal, admin, and each module by name: roster, presence, offline...); changed live by a reload',
        default: {},
        keyPattern: /^[a-z][a-z0-9-]{0,31}$/,
        keyDoc: 'lower-case letters, digits and -',
      }),
      sensitive: bool({
        doc: 'debugging only: log passwords, tokens, secrets, message bodies and stanza XML (redacted otherwise); needs a restart',
        default: false,
      }),
      destination: oneOf(['stdout', 'syslog', 'both'] as const, { doc: 'where records go: JSON lines on stdout, syslog (log.syslog), or both; needs a restart', default: 'stdout' }),
      syslog: obj(
        {
          transport: oneOf(['udp', 'unix'] as const, {
            doc: 'udp: RFC 5424 datagrams to host:port (a local rsyslog/syslog-ng with UDP input, or a collector); unix: the local socket at path, through util-linux `logger` (Node cannot open unix datagram sockets)',
            default: 'udp',
          }),
          host: str({ doc: 'syslog server (udp)', default: '127.0.0.1', minLength: 1 }),
          port: int({ doc: 'syslog port (udp)', default: 514, min: 1, max: 65535 }),
          path: str({ doc: 'local syslog socket (unix)', default: '/dev/log', minLength: 1 }),
          facility: oneOf(SYSLOG_FACILITIES, { doc: 'syslog facility', default: 'local0' }),
          appName: str({ doc: 'APP-NAME of every record', default: 'parley', pattern: /^[\x21-\x7e]{1,48}$/, patternDoc: '1 to 48 printable ASCII characters, no spaces' }),
          format: oneOf(['sd', 'json'] as const, { doc: 'sd: the record\'s fields as RFC 5424 structured data and msg as the message; json: the whole JSON record as the message', default: 'sd' }),
          maxMessageSize: size({ doc: 'longest syslog message; longer ones are cut', default: '8KiB', min: 480, max: 65000 }),
        },
        'the syslog destination (log.destination syslog or both), RFC 5424',
      ),
    },
    'logging',
  ),
});

/**
 * The config sections of modules: each module's `options.ts` adds its section here by
 * declaration merging (`declare module '../../config/schema.js' { interface ModuleConfig
 * { mam: MamOptions } }`), so that `Config` names every key the server reads.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by declaration merging
export interface ModuleConfig {}

export type Config = InferShape<typeof coreConfigSchema.shape> & ModuleConfig;

/** One module's section of the config file (a module definition's `options`). */
export interface ConfigSection {
  /** Its key at the top of the file. */
  readonly key: string;
  readonly schema: Field<unknown>;
  /** Rules across the section's keys; throws ConfigError naming the key. */
  check?(value: unknown, key: string): void;
  /** Keys of the section (relative to it) that a reload applies to the running server. */
  readonly live?: readonly string[];
}

/** The whole schema in force: the core's keys and the loaded modules' sections. */
export interface ConfigSchema {
  readonly root: ObjectField<Shape>;
  /** Full key paths that a reload applies live, beyond the core's own (limits.*, log.*). */
  readonly live: ReadonlySet<string>;
}

/** The core's keys only (tools that read no module key: the shard and user commands). */
export const CORE_SCHEMA: ConfigSchema = { root: coreConfigSchema as unknown as ObjectField<Shape>, live: new Set() };

/** The core key before which the modules' sections are listed (in `parley config docs` and reload results). */
const MODULE_SECTIONS_BEFORE = 'cluster';

/**
 * The core's keys plus the sections of `sections` (the module list): the core's protocol
 * keys, then the modules' sections in list order, then the core's cluster, portal and
 * operations keys. A section whose key the core or another module already has is a
 * programming error.
 */
export function buildConfigSchema(sections: Iterable<ConfigSection>): ConfigSchema {
  const shape: Shape = {};
  const core = Object.entries(coreConfigSchema.shape as Shape);
  const at = core.findIndex(([k]) => k === MODULE_SECTIONS_BEFORE);
  for (const [k, f] of core.slice(0, at)) shape[k] = f;
  const live = new Set<string>();
  for (const s of sections) {
    if (Object.hasOwn(shape, s.key)) throw new Error(`config section ${s.key} is declared twice`);
    shape[s.key] = s.check
      ? {
          ...s.schema,
          get default() {
            return s.schema.default;
          },
          parse: (v: unknown, path: string) => {
            const out = s.schema.parse(v, path);
            s.check?.(out, path);
            return out;
          },
        }
      : s.schema;
    for (const k of s.live ?? []) live.add(`${s.key}.${k}`);
  }
  for (const [k, f] of core.slice(at)) {
    if (Object.hasOwn(shape, k)) throw new Error(`config section ${k} is declared twice`);
    shape[k] = f;
  }
  return { root: obj(shape, coreConfigSchema.doc), live };
}
