/**
 * `parley start --nodes N`: N node processes on one machine sharing one Redis, so a
 * machine with N cores uses them all (one Node.js process uses one core).
 *
 * - Node i (1..N) is `parley start --node-index i` with the same config file: cluster on
 *   (driver redis, the configured url, nodeId `<cluster.nodeId or "node">-i`), and every
 *   listener moved up by 100 + i - 1 (c2s 5222 → 5322, 5323, …; HTTP 5280 → 5380, …),
 *   the ports deploy/haproxy.cfg sends to; direct TLS moves by 200 + i - 1 (5223 → 5423, …).
 * - `--haproxy` also runs haproxy on the configured ports (5222, 5280) in front of the
 *   nodes, with the config haproxyConfig() makes (haproxy must be installed), and its
 *   internal frontend (portal API, admin API, metrics) on the HTTP port + 1. haproxy
 *   sends PROXY v2 headers, so each node (started with `--haproxy` too) trusts the
 *   address haproxy reaches it from, its own listen host, for c2s and HTTP.
 * - A node that exits unexpectedly is started again (backoff up to 10 s); SIGTERM and
 *   SIGINT stop every node (each drains), SIGHUP is passed on.
 * - The nodes' links need `cluster.secret`: without one in the config, the supervisor
 *   makes a random one for this run and hands it to its nodes in their environment
 *   (PARLEY_CLUSTER_SECRET; not on the command line, which every local user can read).
 *   Nodes started by another run, or by hand, then cannot link to these: configure the
 *   secret for that.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/schema.js';
import { haproxyConfig } from '../ops/haproxy-config.js';
import { checkClusterSecret } from '../cluster/secret.js';

/** The environment variable a `--nodes` supervisor passes its generated cluster secret in. */
export const NODES_SECRET_ENV = 'PARLEY_CLUSTER_SECRET';

const BIN = fileURLToPath(new URL('../../../bin/parley.js', import.meta.url));

/** The address haproxy reaches a node's listener at: the node's own host (loopback for a wildcard). */
function haproxyFacing(host: string): string {
  return host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
}

/**
 * The config of node `index` (1-based) among N started by `--nodes`; `behindHaproxy`:
 * trusts haproxy's PROXY headers; `secret` is the cluster secret the supervisor made when
 * the config has none.
 */
export function nodeConfig(base: Config, index: number, behindHaproxy = false, secret: string | undefined = process.env[NODES_SECRET_ENV]): Config {
  const c = structuredClone(base);
  if (behindHaproxy) {
    // haproxy connects from the address it connects to (same machine).
    c.listen.c2s.trustedProxies = [...new Set([...c.listen.c2s.trustedProxies, haproxyFacing(c.listen.c2s.host)])];
    c.listen.http.trustedProxies = [...new Set([...c.listen.http.trustedProxies, haproxyFacing(c.listen.http.host)])];
  }
  c.cluster.driver = 'redis';
  if (c.cluster.secret === undefined && secret) c.cluster.secret = secret;
  c.cluster.nodeId = `${base.cluster.nodeId ?? 'node'}-${index}`;
  if (c.listen.c2s.port !== 0) c.listen.c2s.port += 100 + index - 1;
  if (c.listen.http.port !== 0) c.listen.http.port += 100 + index - 1;
  // Direct TLS moves further up, clear of the c2s ports of the other nodes.
  if (c.listen.c2sTls.port !== 0) c.listen.c2sTls.port += 200 + index - 1;
  return c;
}

export async function startNodes(base: Config, count: number, configFile: string | undefined, withHaproxy: boolean): Promise<number> {
  if (!Number.isInteger(count) || count < 1 || count > 50) {
    console.error('parley: --nodes takes a number from 1 to 50');
    return 1;
  }
  // A configured secret is checked now (else every node would fail and be started again).
  if (base.cluster.secret !== undefined) checkClusterSecret(base.cluster.secret);
  const env = base.cluster.secret === undefined ? { ...process.env, [NODES_SECRET_ENV]: randomBytes(32).toString('base64url') } : process.env;
  const children = new Map<number, ChildProcess>();
  let stopping = false;
  let haproxy: ChildProcess | null = null;
  let haproxyDir: string | null = null;

  const run = (i: number, backoff: number) => {
    const args = [BIN, 'start', '--node-index', String(i)];
    if (withHaproxy) args.push('--haproxy');
    if (configFile) args.push('--config', configFile);
    // Its own process group: a Ctrl-C reaches the supervisor only, which stops the nodes
    // one signal at a time (each drains).
    const child = spawn(process.execPath, args, { stdio: 'inherit', detached: true, env });
    const startedAt = Date.now();
    children.set(i, child);
    child.on('exit', (code, signal) => {
      children.delete(i);
      if (stopping) return;
      const next = Date.now() - startedAt > 30_000 ? 500 : Math.min(backoff * 2, 10_000);
      console.error(`parley: node ${i} exited (${signal ?? code}); starting it again in ${next} ms`);
      setTimeout(() => {
        if (!stopping) run(i, next);
      }, next);
    });
  };
  for (let i = 1; i <= count; i++) run(i, 250);

  if (withHaproxy) {
    const nodes = Array.from({ length: count }, (_, k) => {
      const c = nodeConfig(base, k + 1);
      return { name: c.cluster.nodeId!, host: haproxyFacing(c.listen.http.host), c2sPort: c.listen.c2s.port, httpPort: c.listen.http.port };
    });
    haproxyDir = mkdtempSync(join(tmpdir(), 'parley-haproxy-'));
    const cfg = join(haproxyDir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      haproxyConfig({ bind: base.listen.c2s.host, c2sPort: base.listen.c2s.port, httpPort: base.listen.http.port, internalBind: '127.0.0.1', internalPort: base.listen.http.port + 1, nodes, adminSocket: null, user: null }),
    );
    haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: 'inherit', detached: true });
    haproxy.on('error', (err) => console.error(`parley: haproxy did not start (${err.message}); install it with apt-get install haproxy`));
    console.error(`parley: haproxy in front on ${base.listen.c2s.host}:${base.listen.c2s.port} (XMPP) and :${base.listen.http.port} (BOSH, WebSocket), internal 127.0.0.1:${base.listen.http.port + 1} (API, admin, metrics); config ${cfg}`);
  }

  return new Promise<number>((resolve) => {
    const stop = (sig: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      console.error(`parley: ${sig}: stopping ${children.size} node(s)`);
      for (const c of children.values()) c.kill('SIGTERM');
      const done = () => {
        if (children.size > 0) return;
        haproxy?.kill('SIGTERM');
        if (haproxyDir) rmSync(haproxyDir, { recursive: true, force: true });
        resolve(0);
      };
      for (const c of children.values()) c.on('exit', done);
      done();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', () => {
      for (const c of children.values()) c.kill('SIGHUP');
    });
  });
}
