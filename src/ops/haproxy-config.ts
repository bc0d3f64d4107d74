/**
 * The haproxy configuration in front of a Parley cluster. deploy/haproxy.cfg is this
 * function's output with the defaults (a unit test keeps them equal), and the tests run a
 * private haproxy on the same configuration with their own ports (test/helpers/haproxy.ts).
 *
 * What it does, per listener:
 * - c2s (TCP): `balance leastconn`, each server checked through its node's HTTP
 *   `GET /health/ready` (200 = takes new sessions, 503 = draining or not ready).
 * - HTTP (public): only the public paths reach the nodes (BOSH, WebSocket, the widget,
 *   host-meta, the demo pages); every other path (the portal API, the admin API,
 *   /metrics, /health) is refused here with 404. WebSocket (`/xmpp-websocket`): leastconn,
 *   and a 1 h tunnel timeout once upgraded. BOSH and the pages: sticky by an inserted
 *   cookie, since a BOSH session lives on the node that created it.
 * - internal (HTTP, 127.0.0.1:5281 by default): the portal API (`/api/`), the admin API
 *   (`/admin/`), `/metrics` and `/health/`, for the portal and operators; nothing else.
 * - Every connection to a node starts with a PROXY v2 header (`send-proxy-v2`, health
 *   checks included), so a node whose `listen.*.trustedProxies` lists haproxy sees each
 *   client's own address: per-address limits, allow-lists and logs work through it.
 * - stats on 127.0.0.1 (`/;csv` for scripts).
 *
 * Draining: a node answering 503 goes DOWN after `fall` checks and gets no new
 * connections or sessions; established TCP and WebSocket connections are left alone.
 * `option persist` still sends a request carrying the BOSH cookie to a DOWN server, so a
 * draining node keeps serving its BOSH sessions; `option redispatch` sends it elsewhere
 * once connecting fails on the last retry (a dead node), where the unknown sid ends the
 * session and the client starts a new one (and gets a new cookie).
 *
 * References: https://docs.haproxy.org/2.6/configuration.html
 *
 * @example
 * ```ts
 * writeFileSync('haproxy.cfg', haproxyConfig({ nodes: [{ name: 'a', host: '10.0.0.1', c2sPort: 5222, httpPort: 5280 }] }));
 * ```
 */

export interface HaproxyNode {
  /** Server name in haproxy (stats, logs) and the value of the BOSH cookie. */
  name: string;
  host: string;
  c2sPort: number;
  /** BOSH, WebSocket and the /health endpoints. */
  httpPort: number;
}

export interface HaproxyConfigOptions {
  /** Address the c2s and HTTP frontends listen on; '*' is every address. */
  bind: string;
  c2sPort: number;
  httpPort: number;
  /** The stats page, always on 127.0.0.1; 0 leaves it out. */
  statsPort: number;
  nodes: HaproxyNode[];
  /** Milliseconds between health checks of one server. */
  checkInterval: number;
  /** Failed checks before a server is marked DOWN. */
  fall: number;
  /** Passed checks before a DOWN server is UP again. */
  rise: number;
  /** The longest BOSH wait a client may ask for (`bosh.maxWait`); the server timeout exceeds it. */
  boshHoldSeconds: number;
  /** The runtime API socket (`disable server`, `set server ... state drain`); null leaves it out. */
  adminSocket: string | null;
  /** User and group haproxy drops to after binding; null keeps the one it runs as. */
  user: string | null;
  /** Address of the internal frontend (portal API, admin API, metrics): an address only the portal and operators reach. */
  internalBind: string;
  /** Port of the internal frontend; 0 leaves it out. */
  internalPort: number;
  /** Send a PROXY v2 header on every connection to a node (the nodes must list haproxy in listen.*.trustedProxies). */
  proxyProtocol: boolean;
  /** The address haproxy connects to the nodes from (`source`); null lets the system choose. */
  source: string | null;
}

/** Three nodes on this machine: c2s on 5322+i, HTTP on 5380+i. */
export const DEFAULT_HAPROXY_NODES: readonly HaproxyNode[] = [0, 1, 2].map((i) => ({
  name: `node${i}`,
  host: '127.0.0.1',
  c2sPort: 5322 + i,
  httpPort: 5380 + i,
}));

export const HAPROXY_DEFAULTS: Readonly<HaproxyConfigOptions> = {
  bind: '*',
  c2sPort: 5222,
  httpPort: 5280,
  statsPort: 8404,
  nodes: [...DEFAULT_HAPROXY_NODES],
  checkInterval: 2000,
  fall: 3,
  rise: 2,
  boshHoldSeconds: 60,
  adminSocket: '/run/haproxy/admin.sock',
  user: 'haproxy',
  internalBind: '127.0.0.1',
  internalPort: 5281,
  proxyProtocol: true,
  source: null,
};

/**
 * Paths the public frontend passes to the nodes; every other one is refused. Exact
 * paths, then prefixes. Keep in step with the HTTP routes that are meant for browsers.
 */
export const PUBLIC_PATHS: readonly string[] = ['/http-bind', '/http-bind/', '/bosh', '/bosh/', '/xmpp-websocket', '/xmpp-websocket/', '/', '/people', '/login', '/logout'];
export const PUBLIC_PREFIXES: readonly string[] = ['/widget/', '/demo/', '/.well-known/host-meta'];
/** Paths of the internal frontend: the portal API, the admin API, metrics, health. */
export const INTERNAL_PATHS: readonly string[] = ['/metrics'];
export const INTERNAL_PREFIXES: readonly string[] = ['/api/', '/admin/', '/health/'];

/** The BOSH cookie haproxy inserts; its value is the node's name. */
export const BOSH_COOKIE = 'PARLEY_NODE';

const NAME = /^[A-Za-z0-9_.:-]+$/;

/** haproxy's time format: whole seconds when they are whole, else milliseconds. */
function time(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

// haproxy takes the last colon as the port separator, so IPv6 needs no brackets.
function addr(host: string, port: number): string {
  return `${host}:${port}`;
}

/** The configuration text; options not given take HAPROXY_DEFAULTS. */
export function haproxyConfig(options: Partial<HaproxyConfigOptions> = {}): string {
  const o: HaproxyConfigOptions = { ...HAPROXY_DEFAULTS, ...options };
  if (o.nodes.length === 0) throw new Error('haproxyConfig: no nodes');
  for (const n of o.nodes) {
    if (!NAME.test(n.name)) throw new Error(`haproxyConfig: bad node name "${n.name}"`);
  }
  if (new Set(o.nodes.map((n) => n.name)).size !== o.nodes.length) throw new Error('haproxyConfig: node names must differ');
  const boshTimeout = time((o.boshHoldSeconds + 15) * 1000);
  const servers = (line: (n: HaproxyNode) => string): string[] => o.nodes.map((n) => `    ${line(n)}`);
  // With a check port of its own (c2s), a check sends PROXY only when told to.
  const proxy = o.proxyProtocol ? ' send-proxy-v2' : '';
  const checkProxy = o.proxyProtocol ? ' check-send-proxy' : '';

  const global = ['global', '    log stderr format short local0 info'];
  if (o.user !== null) global.push(`    user ${o.user}`, `    group ${o.user}`);
  if (o.adminSocket !== null) global.push(`    stats socket ${o.adminSocket} mode 660 level admin`);

  const lines = [
    '# haproxy in front of Parley nodes. Generated by haproxyConfig() in',
    '# src/ops/haproxy-config.ts (a unit test keeps the two equal); regenerate with',
    '#   npm run build && node --input-type=module -e "import { haproxyConfig } from \'./dist/src/ops/haproxy-config.js\'; process.stdout.write(haproxyConfig())" > deploy/haproxy.cfg',
    '# Check it with: haproxy -c -f deploy/haproxy.cfg',
    '#',
    `# Each node serves XMPP on its c2s port and BOSH, WebSocket and /health/* on its`,
    '# HTTP port. /health/ready answers 200 while the node takes new sessions and 503',
    '# when it drains or is not ready: the server then goes DOWN here and gets nothing',
    '# new, while its open connections and (through the BOSH cookie) BOSH sessions stay.',
    '# Public frontends: c2s (5222) and http (5280, the public paths only). The portal API,',
    '# admin API and metrics are on the internal frontend (127.0.0.1:5281), never public.',
    '# Every connection to a node carries a PROXY v2 header: list haproxy\'s address in each',
    '# node\'s listen.c2s.trustedProxies and listen.http.trustedProxies.',
    '# To add a node, add one `server` line to each of the four backends, with a new',
    '# name (also the BOSH cookie value) and that node\'s ports.',
    '',
    ...global,
    '',
    'defaults',
    '    log global',
    '    option dontlognull',
    '    timeout connect 3s',
    '    timeout client 30s',
    '    timeout server 30s',
    '    # A failed connect is retried on the same server (1 s apart); with redispatch the',
    '    # last retry goes to another one.',
    '    retries 3',
    '    option redispatch',
    '    # Health checks: DOWN after `fall` failed ones, UP again after `rise` passed ones.',
    `    default-server inter ${time(o.checkInterval)} fall ${o.fall} rise ${o.rise}`,
    ...(o.source === null ? [] : ['    # The address the nodes see haproxy at (their trustedProxies).', `    source ${o.source}`]),
    '',
    o.proxyProtocol
      ? '# XMPP over TCP (STARTTLS passes through). A PROXY v2 header tells the node the client\'s address.'
      : '# XMPP over TCP (STARTTLS passes through). The nodes see haproxy\'s address.',
    'frontend c2s',
    '    mode tcp',
    `    bind ${addr(o.bind, o.c2sPort)}`,
    '    option tcplog',
    '    # Clients send keepalives far more often; the nodes end idle sessions themselves.',
    '    timeout client 1h',
    '    default_backend c2s',
    '',
    'backend c2s',
    '    mode tcp',
    '    balance leastconn',
    '    timeout server 1h',
    '    # Checked through the node\'s HTTP port.',
    '    option httpchk GET /health/ready',
    '    http-check expect status 200',
    ...servers((n) => `server ${n.name} ${addr(n.host, n.c2sPort)} check port ${n.httpPort}${checkProxy}${proxy}`),
    '',
    'frontend http',
    '    mode http',
    `    bind ${addr(o.bind, o.httpPort)}`,
    '    option httplog',
    '    option forwardfor',
    '    timeout http-request 10s',
    '    # As long as the BOSH server timeout: a held request is idle on both sides.',
    `    timeout client ${boshTimeout}`,
    '    # Only the public paths; the portal API, admin API, /metrics and /health are inside.',
    `    acl public path ${PUBLIC_PATHS.join(' ')}`,
    `    acl public path_beg ${PUBLIC_PREFIXES.join(' ')}`,
    '    http-request deny deny_status 404 unless public',
    '    use_backend websocket if { path /xmpp-websocket /xmpp-websocket/ }',
    '    default_backend bosh',
    '',
    '# BOSH (/http-bind, /bosh) and the pages. A BOSH session lives on one node,',
    '# so its requests stick to it by cookie. persist: the cookie still reaches a DOWN',
    '# (draining) server; redispatch (defaults): a dead one\'s clients go elsewhere once',
    '# connecting has failed.',
    'backend bosh',
    '    mode http',
    '    balance leastconn',
    `    cookie ${BOSH_COOKIE} insert indirect nocache`,
    '    option persist',
    `    # Longer than the BOSH hold (${o.boshHoldSeconds} s).`,
    `    timeout server ${boshTimeout}`,
    '    option httpchk GET /health/ready',
    '    http-check expect status 200',
    ...servers((n) => `server ${n.name} ${addr(n.host, n.httpPort)} cookie ${n.name} check${proxy}`),
    '',
    '# WebSocket: one long connection per session, so no cookie.',
    'backend websocket',
    '    mode http',
    '    balance leastconn',
    '    timeout tunnel 1h',
    '    option httpchk GET /health/ready',
    '    http-check expect status 200',
    ...servers((n) => `server ${n.name} ${addr(n.host, n.httpPort)} check${proxy}`),
  ];
  if (o.internalPort !== 0) {
    lines.push(
      '',
      '# The inside paths, for the portal (events API) and operators (admin API, metrics):',
      '# bind it to an address only they reach. The nodes still check portal.api.allowFrom,',
      '# metrics.allowFrom and the tokens, against the caller\'s own address. /metrics here',
      '# is one node\'s; Prometheus scrapes each node at its own HTTP port.',
      'frontend internal',
      '    mode http',
      `    bind ${addr(o.internalBind, o.internalPort)}`,
      '    option httplog',
      '    timeout http-request 10s',
      '    timeout client 30s',
      `    acl inside path ${INTERNAL_PATHS.join(' ')}`,
      `    acl inside path_beg ${INTERNAL_PREFIXES.join(' ')}`,
      '    http-request deny deny_status 404 unless inside',
      '    default_backend internal',
      '',
      'backend internal',
      '    mode http',
      '    balance leastconn',
      '    option httpchk GET /health/ready',
      '    http-check expect status 200',
      ...servers((n) => `server ${n.name} ${addr(n.host, n.httpPort)} check${proxy}`),
    );
  }
  if (o.statsPort !== 0) {
    lines.push(
      '',
      '# Server states; /;csv for scripts.',
      'listen stats',
      '    mode http',
      `    bind 127.0.0.1:${o.statsPort}`,
      '    stats enable',
      '    stats uri /',
      '    stats refresh 10s',
    );
  }
  return lines.join('\n') + '\n';
}
