/**
 * The fault campaign (issue 10, point 3): for each fault, a cluster of Parley node
 * processes behind a private haproxy, on a private redis-server, under a counted load,
 * the fault injected, and every message's fate counted.
 *
 * The load is a ledger of real XMPP clients (@xmpp/client over TCP through haproxy),
 * because `parley loadtest` does not reconnect and cannot tell a stored or bounced message
 * from a lost one: "chatters" write to each other's bare JIDs and to "sleepers" (users
 * offline during the run) round robin, reconnect (a new resource) whenever their
 * connection dies, and follow each message with a ping whose answer means the server took
 * the message. A message ends as
 *   - delivered: received live (no <delay/>),
 *   - stored: received from offline storage (with <delay/>) at a later login, or found
 *     only in the recipient's archive (MAM) at the end: the copy live delivery wrote into
 *     a socket that died with its node, which a client catches up through MAM,
 *   - bounced: a message error came back to its sender,
 *   - stored and bounced: both (an ambiguous write: the shard died before it answered),
 *   - unacked: none of these, written by a client into a connection that died before the
 *     server answered the ping after it (the server never took it; XEP-0198 resends it),
 *   - lost: none of these, although the server answered the ping after it. Must be 0.
 * Duplicated: a message received live more than once, or live and from storage.
 * Recovery: from the fault's end (injection for kill -9) until every chatter is online
 * again and a fresh login through haproxy sends a message that arrives.
 *
 * Everything started is registered in a cleanup stack (test/helpers/reaper.ts) run in
 * reverse order at the end, on an error, and on SIGINT/SIGTERM: nodes, haproxy,
 * redis-server, mariadbd, mounts, network namespaces, databases; every child process is
 * tracked by the reaper as well. Redis is always a private server on a free port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, closeSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { openStorage } from '../../src/storage/open.js';
import { CONFIG_SCHEMA, MODULE_SCHEMAS } from '../../src/modules/index.js';
import { SqlUserStore } from '../../src/auth/user-store-sql.js';
import { SqlRosterStore } from '../../src/modules/roster/store-sql.js';
import { makeCredentials } from '../../src/auth/credentials.js';
import { CLUSTER_SECRET, DOMAIN } from '../helpers/server.js';
import { makeClient, xml, type Element } from '../helpers/client.js';
import { startHaproxy, type RunningHaproxy } from '../helpers/haproxy.js';
import { startPrivateMariadb, type PrivateMariadb } from '../helpers/mariadb-server.js';
import { mamQuery } from '../helpers/mam.js';
import { TestClient } from '../helpers/client.js';
import { until as waitUntil } from '../helpers/until.js';
import { CleanupStack, runOnSignals, trackChild, trackDir, untrackChild, untrackDir } from '../helpers/reaper.js';

export const FAULTS = ['kill9', 'sigstop', 'redis-restart', 'mysql-shard', 'partition', 'disk-full'] as const;
export type FaultName = (typeof FAULTS)[number];

export interface FaultResult {
  fault: FaultName;
  nodes: number;
  sent: number;
  delivered: number;
  stored: number;
  /** Of `stored`: found only in the archive (live copy died in a socket). */
  archiveOnly: number;
  /** Of `stored`: sent to a user who was online, stored instead, read at that user's next login. */
  heldForOnline: number;
  bounced: number;
  storedAndBounced: number;
  unacked: number;
  lost: number;
  duplicated: number;
  /** ms from the fault's end (kill -9: its injection) to recovery; -1 if it never recovered. */
  recoveryMs: number;
  /** How long the fault lasted (ms). */
  faultMs: number;
  bounceConditions: Record<string, number>;
  notes: string[];
  lostIds: string[];
  dupIds: string[];
}

export interface CampaignOptions {
  short: boolean;
  /** Also run `parley loadtest` through haproxy as background load (default: not in short runs). */
  loadtest?: boolean;
  log?: (line: string) => void;
}

const BIN = fileURLToPath(new URL('../../../bin/parley.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jid = (u: string) => `${u}@${DOMAIN}`;

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

/** The shared until (helpers/until.ts) with the campaign's more generous bound (node processes under faults). */
const until = (what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> => waitUntil(what, cond, ms);

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message || `exit ${r.status}`}`);
}

// ------------------------------------------------------------------ cleanup
// The shared reaper (test/helpers/reaper.ts): the ordered CleanupStack with sync
// fallbacks at exit, SIGINT/SIGTERM, and every child process tracked (SIGKILLed at exit).

// ------------------------------------------------------------------ redis

interface PrivateRedis {
  port: number;
  host: string;
  start(): Promise<void>;
  kill(): void;
}

async function privateRedis(cleanup: CleanupStack, binds: string[]): Promise<PrivateRedis> {
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const r: PrivateRedis = {
    port,
    host: binds[binds.length - 1]!,
    async start() {
      const child = spawn('redis-server', ['--port', String(port), '--bind', binds.join(' '), '--save', '', '--appendonly', 'no', ...(binds.length > 1 ? ['--protected-mode', 'no'] : [])], { stdio: 'ignore' });
      trackChild(child);
      child.once('exit', () => untrackChild(child));
      proc = child;
      await until('redis-server up', async () => {
        const c = new Redis(port, r.host, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        c.on('error', () => {});
        try {
          await c.connect();
          return (await c.ping()) === 'PONG';
        } catch {
          return false;
        } finally {
          c.disconnect();
        }
      });
    },
    kill() {
      proc?.kill('SIGKILL');
      proc = null;
    },
  };
  cleanup.add('redis-server', () => r.kill());
  await r.start();
  return r;
}

// ------------------------------------------------------------------ nodes

interface Node {
  name: string;
  /** Where haproxy and probes reach it. */
  host: string;
  c2sPort: number;
  httpPort: number;
  proc: ChildProcess;
  log: string[];
}

interface NodeSpec {
  name: string;
  dir: string;
  dataDir: string;
  redisUrl: string | null;
  frontC2s: number;
  storage?: unknown;
  /** Run inside this network namespace, listening on `host`. */
  netns?: string;
  host?: string;
  clusterHost?: string;
}

async function startNode(spec: NodeSpec, cleanup: CleanupStack): Promise<Node> {
  const c2sPort = await freePort();
  const httpPort = await freePort();
  const host = spec.host ?? '127.0.0.1';
  const file = join(spec.dir, `${spec.name}.yaml`);
  const cluster = spec.redisUrl
    ? {
        driver: 'redis',
        url: spec.redisUrl,
        prefix: 'faults',
        nodeId: spec.name,
        secret: CLUSTER_SECRET,
        heartbeat: '200ms',
        lease: '1s',
        drainTimeout: '300ms',
        reconnectHost: `127.0.0.1:${spec.frontC2s}`,
        listen: { host: spec.clusterHost ?? '127.0.0.1', port: 0 },
      }
    : { driver: 'none' };
  writeFileSync(
    file,
    JSON.stringify({
      domain: DOMAIN,
      dataDir: spec.dataDir,
      listen: { c2s: { host, port: c2sPort, requireTls: false }, c2sTls: { enabled: false }, http: { host, port: httpPort, secure: true } },
      ...(spec.storage ? { storage: spec.storage } : {}),
      // The runner's certificate (trusted by the test process) when there is one; else each node makes its own.
      ...(process.env.PARLEY_TEST_CERT ? { tls: { cert: process.env.PARLEY_TEST_CERT, key: process.env.PARLEY_TEST_KEY } } : {}),
      limits: { exemptAddresses: ['127.0.0.1', '::1', '10.231.0.1'] },
      cluster,
      log: { level: process.env.FAULTS_DEBUG ? 'debug' : 'info' },
    }),
  );
  const argv = [process.execPath, BIN, 'start', '--config', file];
  const proc = spec.netns ? spawn('ip', ['netns', 'exec', spec.netns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(proc);
  proc.once('exit', () => untrackChild(proc));
  const log: string[] = [];
  const keep = (b: Buffer) => {
    log.push(...b.toString().split('\n').filter(Boolean));
    if (log.length > (process.env.FAULTS_DEBUG ? 5000 : 300)) log.splice(0, log.length - (process.env.FAULTS_DEBUG ? 5000 : 300));
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const kill = () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGCONT');
      proc.kill('SIGKILL');
    }
  };
  cleanup.add(`node ${spec.name}`, kill);
  const node = { name: spec.name, host, c2sPort, httpPort, proc, log };
  await until(`${spec.name} ready`, () => ready(node), 30_000).catch((e: Error) => {
    throw new Error(`${e.message}; log:\n${log.slice(-20).join('\n')}`);
  });
  return node;
}

async function ready(n: Node): Promise<boolean> {
  try {
    return (await fetch(`http://${n.host}:${n.httpPort}/health/ready`, { signal: AbortSignal.timeout(1000) })).status === 200;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ the ledger

interface Sent {
  id: string;
  from: string;
  to: string;
  at: number;
  /** The connection (index in the sender's connection list) it was written on. */
  conn: number;
  acked: boolean;
}

class Ledger {
  readonly sent = new Map<string, Sent>();
  readonly live = new Map<string, number>();
  readonly stored = new Set<string>();
  readonly archiveOnly = new Set<string>();
  readonly bounced = new Map<string, string>();
  duplicated = 0;
  /** After the run: receipts now come from the final logins. */
  finalPhase = false;
  /** Stored for a user who was online (a chatter), read only at the final login. */
  readonly heldForOnline = new Set<string>();
  readonly dupIds: string[] = [];
  t0 = Date.now();

  readonly raw = new Map<string, string[]>();
  receive(el: Element, who = ''): void {
    if (el.name !== 'message') return;
    if (process.env.FAULTS_DEBUG) {
      const b = el.getChildText('body') ?? el.attrs.id ?? '';
      this.raw.set(b, [...(this.raw.get(b) ?? []), `${Date.now() - this.t0} ${who} ${el.toString()}`]);
    }
    const id = el.attrs.id ?? '';
    if (el.attrs.type === 'error') {
      if (!this.sent.has(id)) return;
      const err = el.getChild('error');
      const cond = err?.children.map((x) => (typeof x === 'string' ? '' : x.name)).find((n) => n && n !== 'text');
      this.bounced.set(id, `${err?.attrs.type}/${cond}`);
      return;
    }
    const body = el.getChildText('body') ?? '';
    if (!this.sent.has(body)) return;
    const delayed = el.getChild('delay', 'urn:xmpp:delay') !== undefined;
    if (this.live.has(body) || this.stored.has(body)) {
      this.duplicated++;
      this.dupIds.push(`${body} (${this.live.has(body) ? 'live' : 'stored'} then ${delayed ? 'stored' : 'live'}) at ${Date.now() - this.t0} ms`);
    }
    if (delayed && this.finalPhase && this.sent.get(body)!.to.startsWith('c')) this.heldForOnline.add(body);
    if (delayed) this.stored.add(body);
    else this.live.set(body, (this.live.get(body) ?? 0) + 1);
  }
}

/** A user whose client reconnects through haproxy whenever its connection dies. */
class Chatter {
  client: TestClient | null = null;
  online = false;
  stopped = false;
  /** Connections made; a message records the index of the one it went on. */
  conns = 0;
  #n = 0;
  #acks = new Map<string, Sent[]>();

  constructor(
    readonly user: string,
    readonly front: () => number,
    readonly ledger: Ledger,
  ) {}

  async connect(): Promise<void> {
    const xmpp = makeClient({ port: this.front(), username: this.user, resource: `r${this.conns + 1}-${randomBytes(2).toString('hex')}` });
    xmpp.on('error', () => {});
    const c = new TestClient(xmpp);
    const conn = ++this.conns;
    xmpp.on('stanza', (el: Element) => {
      this.ledger.receive(el, `${this.user}#${conn}`);
      if (el.name === 'iq' && el.attrs.id?.startsWith('ack-')) for (const s of this.#acks.get(el.attrs.id) ?? []) s.acked = true;
    });
    xmpp.on('disconnect', () => this.#lost(c));
    await xmpp.start();
    await c.send(xml('presence'));
    if (conn !== this.conns) return;
    this.client = c;
    this.online = true;
  }

  #lost(c: TestClient): void {
    if (c !== this.client || this.stopped) return;
    this.online = false;
    this.client = null;
    void c.stop();
    void (async () => {
      for (let i = 0; i < 200 && !this.stopped; i++) {
        await sleep(200);
        try {
          await this.connect();
          return;
        } catch {
          // the cluster is not back yet
        }
      }
    })();
  }

  /** One counted message and the ping that acknowledges it. */
  send(to: string): void {
    const c = this.client;
    if (!this.online || !c) return;
    const id = `fc-${this.user}-${++this.#n}`;
    const s: Sent = { id, from: this.user, to, at: Date.now(), conn: this.conns, acked: false };
    this.ledger.sent.set(id, s);
    const ack = `ack-${id}`;
    this.#acks.set(ack, [s]);
    c.send(xml('message', { to: jid(to), type: 'chat', id }, xml('body', null, id))).catch(() => undefined);
    c.send(xml('iq', { type: 'get', id: ack }, xml('ping', { xmlns: 'urn:xmpp:ping' }))).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.client?.stop();
    this.client = null;
    this.online = false;
  }
}

// ------------------------------------------------------------------ one fault

interface Env {
  dir: string;
  cleanup: CleanupStack;
  nodes: Node[];
  hp: RunningHaproxy;
  front: { c2s: number; http: number };
  redis: PrivateRedis | null;
  users: string[];
  sleepers: string[];
  notes: string[];
  /** Why recovery probes failed (the first few), and when the fault ended. */
  probeFailures: string[];
  /** Bodies of probe messages that did not arrive (looked for in probe2's offline storage at the end). */
  failedProbes: string[];
  /** Probe messages that arrived after the probe gave up. */
  lateProbes: number;
  faultEnd: number;
}

async function provisionSqlite(dataDir: string, users: string[], extra: string[]): Promise<void> {
  const config = parseConfig({ domain: DOMAIN, dataDir }, CONFIG_SCHEMA);
  const storage = await openStorage(config, MODULE_SCHEMAS, pino({ level: 'silent' }));
  await provision(storage, users, extra);
  await storage.close();
}

async function provision(storage: Awaited<ReturnType<typeof openStorage>>, users: string[], extra: string[]): Promise<void> {
  const accounts = new SqlUserStore(storage);
  const rosters = new SqlRosterStore(storage);
  const creds = await makeCredentials('secret');
  for (const u of [...users, ...extra]) await accounts.create(DOMAIN, u, creds);
  for (const u of users) {
    for (const v of users) {
      if (u === v) continue;
      await rosters.update(DOMAIN, u, jid(v), () => ({ jid: jid(v), name: null, subscription: 'both', groups: [], askOut: false, askIn: false, askInStanza: null, approved: false, inRoster: true }));
    }
  }
}

/** A fresh login through haproxy whose message to another fresh login arrives. */
async function probe(env: Env): Promise<boolean> {
  let a: TestClient | null = null;
  let b: TestClient | null = null;
  let body = '';
  try {
    const mk = async (u: string) => {
      const x = makeClient({ port: env.front.c2s, username: u, resource: `p${randomBytes(3).toString('hex')}` });
      x.on('error', () => {});
      x.timeout = 3000;
      const c = new TestClient(x);
      await Promise.race([x.start(), sleep(4000).then(() => Promise.reject(new Error('login timeout')))]);
      return c;
    };
    a = await mk('probe1');
    b = await mk('probe2');
    body = `probe-${randomBytes(4).toString('hex')}`;
    const got = b.waitFor((el) => el.name === 'message' && el.getChildText('body') === body, 1500, 'the probe message');
    const bounced = a.waitFor((el) => el.name === 'message' && el.attrs.type === 'error' && el.attrs.id === body, 1500, 'a bounce').then(
      (el) => Promise.reject(new Error(`bounced: ${el.getChild('error')?.toString() ?? ''}`)),
      () => new Promise<never>(() => undefined),
    );
    // Whichever settles second must not be an unhandled rejection.
    got.catch(() => undefined);
    bounced.catch(() => undefined);
    await a.send(xml('message', { to: `${b.xmpp.jid?.toString() ?? jid('probe2')}`, type: 'chat', id: body }, xml('body', null, body)));
    await Promise.race([got, bounced]);
    return true;
  } catch (e) {
    if (body) {
      // It may only be late: then it is no failure of delivery.
      await sleep(500);
      if (b?.received.some((el) => el.name === 'message' && el.getChildText('body') === body)) env.lateProbes++;
      else env.failedProbes.push(body);
    }
    if (env.probeFailures.length < 5) env.probeFailures.push(`${Date.now() - env.faultEnd} ms after the fault: ${((e as Error).message || String(e)).slice(0, 300)}`);
    return false;
  } finally {
    await a?.stop();
    await b?.stop();
  }
}

interface Plan {
  /** Nodes in the cluster (1 for disk-full). */
  nodes: number;
  setup?(env: Env): Promise<void>;
  /** Injects the fault and returns when it is over (the time it ended is the start of recovery). */
  inject(env: Env, victimOf: () => Node): Promise<void>;
}

async function runFault(name: FaultName, opts: CampaignOptions): Promise<FaultResult> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const cleanup = new CleanupStack();
  const stopSignals = runOnSignals(cleanup);
  const dir = mkdtempSync(join(tmpdir(), `parley-faults-${name}-`));
  trackDir(dir);
  cleanup.add('temp dir', () => {
    rmSync(dir, { recursive: true, force: true });
    untrackDir(dir);
  });
  const notes: string[] = [];
  try {
    const users = Array.from({ length: opts.short ? 6 : 12 }, (_, i) => `c${i}`);
    const sleepers = Array.from({ length: opts.short ? 2 : 4 }, (_, i) => `z${i}`);
    const withLoad = opts.loadtest ?? !opts.short;
    const loadUsers = withLoad ? Array.from({ length: LOAD_USERS }, (_, i) => `lt${i + 1}`) : [];
    const front = { c2s: await freePort(), http: await freePort() };
    const plan = PLANS[name](opts);
    const env: Env = { dir, cleanup, nodes: [], hp: null as unknown as RunningHaproxy, front, redis: null, users, sleepers, notes, probeFailures: [], failedProbes: [], lateProbes: 0, faultEnd: 0 };
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir, { recursive: true });
    let storage: unknown;
    let nodeDataDir = dataDir;
    let netns: { name: string; host: string } | null = null;
    let redisBinds = ['127.0.0.1'];
    if (name === 'mysql-shard') storage = await setupMysql(env, [...users, ...sleepers, 'probe1', 'probe2', ...loadUsers]);
    if (name === 'disk-full') nodeDataDir = await setupTmpfs(env);
    if (name === 'partition') {
      netns = setupNetns(env);
      redisBinds = ['127.0.0.1', REDIS_ADDR];
    }
    if (!storage) await provisionSqlite(nodeDataDir, users, [...sleepers, 'probe1', 'probe2', ...loadUsers]);
    if (plan.nodes > 1) env.redis = await privateRedis(cleanup, redisBinds);
    const redisUrl = env.redis ? `redis://${env.redis.host}:${env.redis.port}` : null;
    for (let i = 1; i <= plan.nodes; i++) {
      const inNs = netns && i === plan.nodes;
      env.nodes.push(
        await startNode(
          {
            name: `n${i}`,
            dir,
            dataDir: nodeDataDir,
            redisUrl,
            frontC2s: front.c2s,
            storage,
            ...(inNs ? { netns: netns!.name, host: netns!.host, clusterHost: netns!.host } : netns ? { clusterHost: HOST_ADDR } : {}),
          },
          cleanup,
        ),
      );
    }
    // The nodes do not list haproxy in trustedProxies (client addresses: test/proxy-addresses.test.ts).
    env.hp = await startHaproxy({ proxyProtocol: false, bind: '127.0.0.1', c2sPort: front.c2s, httpPort: front.http, nodes: env.nodes.map((n) => ({ name: n.name, host: n.host, c2sPort: n.c2sPort, httpPort: n.httpPort })), checkInterval: 200, fall: 2, rise: 2 });
    cleanup.add('haproxy', () => env.hp.stop());
    for (const n of env.nodes) await env.hp.waitFor(`c2s/${n.name}`, 'UP', 15_000);
    await plan.setup?.(env);

    // The background load from `parley loadtest` (it cannot tell stored or bounced from lost: the ledger counts fates).
    const load = withLoad ? startLoadtest(env, opts.short ? 15 : 20) : null;
    if (load) cleanup.add('loadtest', () => load.kill(), () => load.kill());
    // The counted load.
    const ledger = new Ledger();
    const chatters = users.map((u) => new Chatter(u, () => front.c2s, ledger));
    cleanup.add('clients', async () => {
      for (const c of chatters) await c.stop();
    });
    for (const c of chatters) await c.connect();
    // Where each chatter is: the victim is the node with most of them (the last node for a partition).
    const placement = async (): Promise<Map<string, number>> => {
      const m = new Map<string, number>();
      for (const n of env.nodes) m.set(n.name, 0);
      if (env.nodes.length === 1) return m;
      const r = new Redis(env.redis!.port, '127.0.0.1');
      for (const n of env.nodes) m.set(n.name, Math.max(0, (await r.hlen(`faults:sessions:${n.name}`)) - 1));
      r.disconnect();
      return m;
    };
    const counts = await placement();
    const victim = name === 'partition' ? env.nodes[env.nodes.length - 1]! : [...env.nodes].sort((a, b) => counts.get(b.name)! - counts.get(a.name)!)[0]!;
    notes.push(`sessions per node before: ${[...counts].map(([k, v]) => `${k}=${v}`).join(' ')}; victim ${victim.name}`);

    let stop = false;
    let k = 0;
    const every = opts.short ? 25 : 15;
    const targets = [...users, ...sleepers];
    const loop = (async () => {
      while (!stop) {
        const from = chatters[k % chatters.length]!;
        const to = targets[(k * 7 + 3) % targets.length]!;
        k++;
        if (from.user !== to) from.send(to);
        await sleep(every);
      }
    })();
    await sleep(opts.short ? 1000 : 3000);
    const t0 = Date.now();
    ledger.t0 = t0;
    log(`${name}: injecting`);
    await plan.inject(env, () => victim);
    const t1 = Date.now();
    env.faultEnd = t1;
    log(`${name}: fault over after ${t1 - t0} ms; waiting for recovery`);
    let recoveryMs = -1;
    const deadline = Date.now() + (opts.short ? 25_000 : 60_000);
    while (Date.now() < deadline) {
      if (chatters.every((c) => c.online) && (await probe(env))) {
        recoveryMs = Date.now() - t1;
        break;
      }
      await sleep(100);
    }
    log(`${name}: recovered in ${recoveryMs} ms`);
    if (env.probeFailures.length > 0) notes.push(`recovery probes that failed: ${env.probeFailures.join('; ')}${env.lateProbes > 0 ? ` (${env.lateProbes} of their messages arrived late)` : ''}`);
    await sleep(opts.short ? 500 : 3000);
    stop = true;
    await loop;
    await sleep(opts.short ? 1000 : 1500);

    if (load) {
      const r = await load.result;
      notes.push(r ? `parley loadtest (${LOAD_USERS} users over TCP through haproxy, 20 msgs/min each, no reconnection): sent ${r.messages.sent}, received live ${r.messages.delivered}, not received live ${r.messages.lost} (stored, bounced or on a dead connection: it cannot tell), duplicated ${r.messages.duplicated}, errors ${JSON.stringify(r.errors)}` : 'parley loadtest gave no result');
    }
    // Every chatter logs in again (what a client does sooner or later: offline storage is
    // read at login) and reads its whole archive; the sleepers log in and read what was stored for them.
    ledger.finalPhase = true;
    for (const c of chatters) await c.stop();
    const readers: Chatter[] = [];
    let lostProbes: string[] = [];
    for (const u of [...users, ...sleepers]) {
      const c = new Chatter(u, () => front.c2s, ledger);
      readers.push(c);
      cleanup.add('reader', () => c.stop());
      await c.connect().catch((e: Error) => notes.push(`${u} could not log in at the end: ${e.message}`));
    }
    // Probe messages that did not arrive in time: stored (read now, at a login with
    // presence), or gone, which would be a loss the ledger does not count.
    if (env.failedProbes.length > 0) {
      const p2 = new TestClient(makeClient({ port: front.c2s, username: 'probe2', resource: 'final' }));
      p2.xmpp.on('error', () => {});
      cleanup.add('probe reader', () => p2.stop());
      try {
        await p2.xmpp.start();
        await p2.send(xml('presence'));
        await sleep(1000);
        const got = new Set(p2.received.filter((el) => el.name === 'message').map((el) => el.getChildText('body') ?? ''));
        const found = env.failedProbes.filter((b) => got.has(b));
        notes.push(`probe messages that did not arrive in time: ${env.failedProbes.length}, found later in offline storage: ${found.length}`);
        if (found.length < env.failedProbes.length) lostProbes = env.failedProbes.filter((b) => !got.has(b));
      } catch (e) {
        notes.push(`probe2 could not log in at the end: ${(e as Error).message}`);
      }
    }
    await sleep(opts.short ? 800 : 1500);
    for (const c of readers) {
      if (!c.client || !users.includes(c.user)) continue;
      try {
        let after: string | undefined;
        for (let page = 0; page < 100; page++) {
          const res = await mamQuery(c.client, { max: 250, ...(after ? { after } : {}) });
          for (const b of res.bodies) {
            const s = ledger.sent.get(b);
            if (s && s.to === c.user && !ledger.live.has(b) && !ledger.stored.has(b)) {
              ledger.stored.add(b);
              ledger.archiveOnly.add(b);
            }
          }
          if (res.complete || !res.last) break;
          after = res.last;
        }
      } catch (e) {
        notes.push(`MAM query of ${c.user} failed: ${(e as Error).message}`);
      }
    }

    // The count.
    let delivered = 0;
    let unacked = 0;
    let storedAndBounced = 0;
    const lostIds: string[] = [];
    const conds: Record<string, number> = {};
    for (const [id, s] of ledger.sent) {
      const isLive = ledger.live.has(id);
      const isStored = ledger.stored.has(id);
      const isBounced = ledger.bounced.has(id);
      if (isLive) delivered++;
      if (isBounced) conds[ledger.bounced.get(id)!] = (conds[ledger.bounced.get(id)!] ?? 0) + 1;
      if (isStored && isBounced) storedAndBounced++;
      if (isLive && isBounced) ledger.duplicated++;
      if (!isLive && !isStored && !isBounced) {
        if (!s.acked) unacked++;
        else lostIds.push(`${id} → ${s.to} at ${s.at - t0} ms`);
      }
    }
    for (const v of ledger.live.values()) if (v > 1) ledger.duplicated += v - 1;
    if (ledger.heldForOnline.size > 0) notes.push(`stored for a user who was online: ${[...ledger.heldForOnline].slice(0, 5).map((id) => `${id} → ${ledger.sent.get(id)!.to} sent at ${ledger.sent.get(id)!.at - t0} ms`).join(', ')}`);
    const result: FaultResult = {
      fault: name,
      nodes: plan.nodes,
      sent: ledger.sent.size,
      delivered,
      stored: ledger.stored.size,
      archiveOnly: ledger.archiveOnly.size,
      heldForOnline: ledger.heldForOnline.size,
      bounced: ledger.bounced.size,
      storedAndBounced,
      unacked,
      lost: lostIds.length + lostProbes.length,
      duplicated: ledger.duplicated,
      recoveryMs,
      faultMs: t1 - t0,
      bounceConditions: conds,
      notes,
      lostIds: [...lostIds, ...lostProbes.map((b) => `${b} (a recovery probe to probe2)`)].slice(0, 20),
      dupIds: ledger.dupIds.slice(0, 20).map((d) => `${d} (sent at ${(ledger.sent.get(d.split(' ')[0]!)?.at ?? 0) - t0} ms)`),
    };
    if (process.env.FAULTS_DEBUG) for (const n of env.nodes) console.error(n.log.filter((l) => /routed again|declared dead|expelled|stood still|lease|membership changed|joined|writing this node|directory write/.test(l)).map((l) => `${n.name}: ${l}`).join('\n'));
    if (process.env.FAULTS_DEBUG) for (const d of ledger.dupIds.slice(0, 3)) console.error(ledger.raw.get(d.split(' ')[0]!)?.join('\n'));
    if (process.env.FAULTS_DEBUG) for (const [id] of [...ledger.sent].filter(([, v]) => v.to.startsWith('z')).slice(0, 2)) console.error(id, ledger.live.get(id), ledger.stored.has(id), ledger.raw.get(id)?.join('\n'));
    return result;
  } finally {
    await cleanup.run();
    stopSignals();
  }
}

// ------------------------------------------------------------------ parley loadtest

const LOAD_USERS = 60;

interface LoadSummary {
  messages: { sent: number; delivered: number; lost: number; duplicated: number };
  errors: Record<string, number>;
}

function startLoadtest(env: Env, seconds: number): { result: Promise<LoadSummary | null>; kill(): void } {
  const out = join(env.dir, 'loadtest.json');
  const p = spawn(
    process.execPath,
    [BIN, 'loadtest', '--host', '127.0.0.1', '--domain', DOMAIN, '--tcpPort', String(env.front.c2s), '--httpPort', String(env.front.http), '--users', String(LOAD_USERS), '--prefix', 'lt', '--password', 'secret', '--transports', 'tcp:1', '--messagesPerMinute', '20', '--warmup', '1s', '--duration', `${seconds}s`, '--drain', '3s', '--workers', '1', '--json', out, '--progress', 'false'],
    { stdio: 'ignore' },
  );
  trackChild(p);
  p.once('exit', () => untrackChild(p));
  const result = new Promise<LoadSummary | null>((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), (seconds + 60) * 1000);
    p.on('exit', () => {
      clearTimeout(t);
      try {
        resolve(JSON.parse(readFileSync(out, 'utf8')) as LoadSummary);
      } catch {
        resolve(null);
      }
    });
  });
  return { result, kill: () => p.exitCode === null && p.signalCode === null && p.kill('SIGKILL') };
}

// ------------------------------------------------------------------ the faults

const NS_HOST = '10.231.0.2';
const HOST_ADDR = '10.231.0.1';
/** Redis's own address, routed into the namespace through the veth: deleting that route cuts Redis only. */
const REDIS_ADDR = '10.232.0.1';

function setupNetns(env: Env): { name: string; host: string } {
  const tag = randomBytes(2).toString('hex');
  const ns = `parley-f${tag}`;
  const a = `pfa${tag}`;
  const b = `pfb${tag}`;
  sh('ip', ['netns', 'add', ns]);
  const undo = () => {
    spawnSync('ip', ['link', 'del', a]);
    spawnSync('ip', ['netns', 'del', ns]);
  };
  env.cleanup.add(`netns ${ns}`, undo, undo);
  sh('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  sh('ip', ['link', 'set', b, 'netns', ns]);
  sh('ip', ['addr', 'add', `${HOST_ADDR}/30`, 'dev', a]);
  sh('ip', ['addr', 'add', `${REDIS_ADDR}/32`, 'dev', a]);
  sh('ip', ['link', 'set', a, 'up']);
  sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  sh('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${NS_HOST}/30`, 'dev', b]);
  sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', b, 'up']);
  sh('ip', ['netns', 'exec', ns, 'ip', 'route', 'add', `${REDIS_ADDR}/32`, 'via', HOST_ADDR]);
  env.notes.push(`node n3 in netns ${ns} (${NS_HOST}), Redis on ${REDIS_ADDR} reached through a route that the fault deletes`);
  (env as Env & { netns?: string }).netns = ns;
  return { name: ns, host: NS_HOST };
}

async function setupTmpfs(env: Env): Promise<string> {
  const mnt = join(env.dir, 'disk');
  mkdirSync(mnt);
  sh('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
  const undo = () => {
    spawnSync('umount', ['-l', mnt]);
  };
  env.cleanup.add(`tmpfs ${mnt}`, undo, undo);
  return mnt;
}

/** Fills the file system holding `dir` with one file; returns its path. */
function fill(dir: string): string {
  const file = join(dir, 'filler');
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch {
    // ENOSPC: full
  }
  const small = Buffer.alloc(512, 1);
  try {
    for (;;) writeSync(fd, small);
  } catch {
    // full to the last block
  }
  closeSync(fd);
  return file;
}

async function setupMysql(env: Env, users: string[]): Promise<unknown> {
  const db: PrivateMariadb = await startPrivateMariadb();
  env.cleanup.add('mariadbd', () => db.destroy());
  const tag = randomBytes(3).toString('hex');
  const mysql = (await import('mysql2/promise')).default;
  const shards = [
    { name: 's1', host: '127.0.0.1', port: 3306, database: `parley_t_faults_${tag}_1` },
    { name: 's2', host: '127.0.0.1', port: db.port, database: `parley_t_faults_${tag}_2` },
  ];
  for (const s of shards) {
    const c = await mysql.createConnection({ host: s.host, port: s.port, user: 'root', password: '' });
    await c.query(`CREATE DATABASE \`${s.database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    await c.end();
    env.cleanup.add(`database ${s.database}`, async () => {
      const d = await mysql.createConnection({ host: s.host, port: s.port, user: 'root', password: '' }).catch(() => null);
      await d?.query(`DROP DATABASE IF EXISTS \`${s.database}\``);
      await d?.end();
    });
  }
  const map = join(env.dir, 'shards.yaml');
  writeFileSync(map, ['directory: s1', 'shards:', ...shards.map((s) => `  ${s.name}: { host: ${s.host}, port: ${s.port}, user: root, password: "", database: ${s.database} }`)].join('\n') + '\n');
  const storage = {
    driver: 'mysql',
    mysql: { shardMap: map, poolSize: 4, connectTimeout: '1s', queryTimeout: '2s', retries: 1, retryBackoff: '20ms', breakerThreshold: 3, breakerCooldown: '300ms', healthInterval: '150ms' },
  };
  const config = parseConfig({ domain: DOMAIN, dataDir: join(env.dir, 'data'), storage }, CONFIG_SCHEMA);
  const st = await openStorage(config, MODULE_SCHEMAS, pino({ level: 'silent' }));
  await provision(st, env.users, users.filter((u) => !env.users.includes(u)));
  await st.close();
  (env as Env & { mariadb?: PrivateMariadb }).mariadb = db;
  return storage;
}

const PLANS: Record<FaultName, (o: CampaignOptions) => Plan> = {
  kill9: () => ({
    nodes: 3,
    async inject(env, victim) {
      victim().proc.kill('SIGKILL');
    },
  }),
  sigstop: (o) => ({
    nodes: 3,
    async inject(env, victim) {
      const v = victim();
      v.proc.kill('SIGSTOP');
      await sleep(o.short ? 2000 : 4000); // lease 1 s: well past it
      v.proc.kill('SIGCONT');
      const other = env.nodes.find((n) => n !== v)!;
      const r = await fetch(`http://${other.host}:${other.httpPort}/health/ready`).then((x) => x.json() as Promise<{ members: string[] }>).catch(() => null);
      env.notes.push(`while frozen ${v.name} ${r && !r.members.includes(v.name) ? 'was' : 'was NOT yet'} expelled`);
      await until(`${v.name} ready again`, () => ready(v), 20_000).catch(() => env.notes.push(`${v.name} did not become ready again`));
      if (v.log.some((l) => /declared dead/.test(l))) env.notes.push(`${v.name} logged that it was declared dead and ended its sessions`);
    },
  }),
  'redis-restart': (o) => ({
    nodes: 3,
    async inject(env) {
      env.redis!.kill();
      await sleep(o.short ? 1500 : 3000);
      await env.redis!.start();
    },
  }),
  'mysql-shard': (o) => ({
    nodes: 3,
    async inject(env) {
      const db = (env as Env & { mariadb?: PrivateMariadb }).mariadb!;
      await db.kill();
      await sleep(o.short ? 1500 : 3000);
      await db.restart();
    },
  }),
  partition: (o) => ({
    nodes: 3,
    async inject(env, victim) {
      const ns = (env as Env & { netns?: string }).netns!;
      sh('ip', ['netns', 'exec', ns, 'ip', 'route', 'del', `${REDIS_ADDR}/32`]);
      await sleep(o.short ? 2500 : 4000);
      const v = victim();
      const other = env.nodes.find((n) => n !== v)!;
      const r = await fetch(`http://${other.host}:${other.httpPort}/health/ready`).then((x) => x.json() as Promise<{ members: string[] }>).catch(() => null);
      env.notes.push(`during the partition ${v.name} ${r && !r.members.includes(v.name) ? 'was' : 'was NOT'} expelled by the others`);
      sh('ip', ['netns', 'exec', ns, 'ip', 'route', 'add', `${REDIS_ADDR}/32`, 'via', HOST_ADDR]);
      await until(`${v.name} ready again`, () => ready(v), 20_000).catch(() => env.notes.push(`${v.name} did not become ready again`));
      if (v.log.some((l) => /declared dead/.test(l))) env.notes.push(`${v.name} logged that it was declared dead and ended its sessions`);
    },
  }),
  'disk-full': (o) => ({
    nodes: 1,
    async inject(env) {
      const dir = join(env.dir, 'disk');
      const file = fill(dir);
      env.notes.push('one node (SQLite on an 8 MB tmpfs), haproxy in front');
      await sleep(o.short ? 2000 : 4000);
      unlinkSync(file);
    },
  }),
};

export async function runCampaign(faults: readonly FaultName[], opts: CampaignOptions): Promise<FaultResult[]> {
  const out: FaultResult[] = [];
  for (const f of faults) out.push(await runFault(f, opts));
  return out;
}

export function table(results: FaultResult[], command: (f: FaultName) => string): string {
  const head = '| fault | nodes | sent | delivered | stored (archive only / held for an online user) | bounced | stored and bounced | unacked by server | lost | duplicated | fault lasted | recovery | command |';
  const rows = results.map(
    (r) =>
      `| ${r.fault} | ${r.nodes} | ${r.sent} | ${r.delivered} | ${r.stored} (${r.archiveOnly} / ${r.heldForOnline}) | ${r.bounced}${Object.keys(r.bounceConditions).length ? ` (${Object.entries(r.bounceConditions).map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''} | ${r.storedAndBounced} | ${r.unacked} | ${r.lost} | ${r.duplicated} | ${(r.faultMs / 1000).toFixed(1)} s | ${r.recoveryMs < 0 ? 'never' : `${(r.recoveryMs / 1000).toFixed(1)} s`} | \`${command(r.fault)}\` |`,
  );
  return [head, '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}
