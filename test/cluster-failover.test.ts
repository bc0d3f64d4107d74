/**
 * Failover behind haproxy: three node processes (one Redis, one SQLite file), haproxy in
 * front, users over TCP, WebSocket and BOSH (Strophe.js) who are all each other's
 * contacts and chat the whole time. One node is killed with SIGKILL. Its users reconnect
 * through haproxy to a surviving node; their contacts see each of their old resources go
 * unavailable exactly once and their new ones come online; every message is counted:
 * delivered live, or found in the recipient's archive (MAM) after reconnecting (what a
 * client catching up does). None may be lost; none may be delivered twice.
 *
 * One exception is counted and reported, not asserted: messages a user of the killed node
 * wrote to its socket in the last 250 ms before the kill may have died in that node's
 * memory before being handled (a client with XEP-0198 would send them again).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { until as waitUntil } from './helpers/until.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
// @ts-expect-error @xmpp/client ships no type declarations
import { client as xmppClient } from '@xmpp/client';
import { WebSocket as NodeWebSocket } from 'ws';
import { parseConfig } from '../src/config/load.js';
import { openStorage } from '../src/storage/open.js';
import { CONFIG_SCHEMA, MODULE_SCHEMAS } from '../src/modules/index.js';
import { SqlUserStore } from '../src/auth/user-store-sql.js';
import { SqlRosterStore } from '../src/modules/roster/store-sql.js';
import { makeCredentials } from '../src/auth/credentials.js';
import { CLUSTER_SECRET, DOMAIN } from './helpers/server.js';
import { xml, type Element } from './helpers/client.js';
import { installXhr, clearCookies } from './helpers/xhr.js';
import { startHaproxy, type RunningHaproxy } from './helpers/haproxy.js';
import { needHaproxy } from './helpers/tools.js';
import { Strophe, $msg, $pres, $iq, stropheLogin } from './helpers/strophe.js';

installXhr();
(globalThis as { WebSocket?: unknown }).WebSocket ??= NodeWebSocket;

const REDIS = process.env.PARLEY_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const BIN = fileURLToPath(new URL('../../bin/parley.js', import.meta.url));
const MAM = 'urn:xmpp:mam:2';
const prefix = `parley-test-${randomBytes(4).toString('hex')}`;
/** haproxy's ports, chosen first: the nodes send draining clients there (see-other-host). */
const front = { c2s: 0, http: 0 };
const dir = mkdtempSync(join(tmpdir(), 'parley-failover-'));
const jid = (u: string) => `${u}@${DOMAIN}`;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

/** The shared until (helpers/until.ts) with this file's more generous bound: three node processes on a loaded machine. */
const until = (what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> => waitUntil(what, cond, ms);

// ------------------------------------------------------------------ nodes

interface Node {
  name: string;
  c2sPort: number;
  httpPort: number;
  proc: ChildProcess;
  log: string[];
}

async function startNode(name: string): Promise<Node> {
  const c2sPort = await freePort();
  const httpPort = await freePort();
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    JSON.stringify({
      domain: DOMAIN,
      dataDir: join(dir, 'data'),
      listen: { c2s: { port: c2sPort, requireTls: false }, c2sTls: { enabled: false }, http: { port: httpPort, secure: true } },
      tls: { cert: process.env.PARLEY_TEST_CERT, key: process.env.PARLEY_TEST_KEY },
      cluster: { driver: 'redis', url: REDIS, prefix, nodeId: name, secret: CLUSTER_SECRET, heartbeat: '200ms', lease: '1s', drainTimeout: '600ms', reconnectHost: `127.0.0.1:${front.c2s}` },
      log: { level: 'info' },
    }),
  );
  const proc = spawn(process.execPath, [BIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  const keep = (b: Buffer) => {
    log.push(...b.toString().split('\n').filter(Boolean));
    if (log.length > 400) log.splice(0, log.length - 400);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const node = { name, c2sPort, httpPort, proc, log };
  await until(`${name} ready`, async () => {
    try {
      return (await fetch(`http://127.0.0.1:${httpPort}/health/ready`)).status === 200;
    } catch {
      return false;
    }
  });
  return node;
}

// ------------------------------------------------------------------ chatters

type Kind = 'tcp' | 'websocket' | 'bosh';

/** One user's client, whatever its transport; reconnects (a new session) when its connection dies. */
class Chatter {
  full = '';
  /** Full JIDs this user had, in order. */
  readonly resources: string[] = [];
  /** Message ids received live, with how many times. */
  readonly got = new Map<string, number>();
  /** Presence seen: "from|type" in order. */
  readonly presence: string[] = [];
  /** Sent message ids with the time they were written. */
  readonly sent: Array<{ id: string; to: string; at: number }> = [];
  /** When each connection came up. */
  readonly connectedAt: number[] = [];
  online = false;
  stopped = false;
  #conn: any = null;
  #n = 0;

  constructor(
    readonly user: string,
    readonly kind: Kind,
    readonly hp: RunningHaproxy,
  ) {}

  #stanza(name: string, attrs: Record<string, string | undefined>, body?: string, from?: string): void {
    if (name === 'message' && body?.startsWith('fo-')) this.got.set(attrs.id!, (this.got.get(attrs.id!) ?? 0) + 1);
    if (name === 'presence' && from && !from.startsWith(`${jid(this.user)}/`)) this.presence.push(`${from}|${attrs.type ?? 'available'}`);
  }

  async connect(): Promise<void> {
    this.online = false;
    if (this.kind === 'bosh') await this.#connectBosh();
    else await this.#connectXmppJs();
    this.resources.push(this.full);
    this.connectedAt.push(Date.now());
    this.online = true;
  }

  async #connectXmppJs(): Promise<void> {
    const service = this.kind === 'tcp' ? `xmpp://127.0.0.1:${this.hp.c2sPort}` : `ws://127.0.0.1:${this.hp.httpPort}/xmpp-websocket`;
    const xmpp = xmppClient({
      service,
      domain: DOMAIN,
      credentials: async (auth: (c: unknown, m: string) => Promise<void>) => auth({ username: this.user, password: 'secret' }, 'PLAIN'),
    });
    // A loaded 2-core machine (tests in parallel) can take more than the default 2 s to answer a stream open.
    xmpp.timeout = 10_000;
    xmpp.reconnect.stop();
    xmpp.on('error', () => {});
    xmpp.on('stanza', (el: Element) => this.#stanza(el.name, el.attrs, el.getChildText('body') ?? undefined, el.attrs.from));
    xmpp.on('disconnect', () => this.#lost(xmpp));
    this.full = String(await xmpp.start());
    this.#conn = xmpp;
    await xmpp.send(xml('presence'));
  }

  async #connectBosh(): Promise<void> {
    const url = `http://127.0.0.1:${this.hp.httpPort}/http-bind?user=${this.user}`;
    clearCookies(url); // a new session is placed afresh (a dead node's cookie is useless)
    // The shared Strophe login (helpers/strophe.ts); a later DISCONNECTED is the node going away.
    const conn = await stropheLogin(url, this.user, null, 'secret', (status, c) => {
      if (status === Strophe.Status.DISCONNECTED) this.#lost(c);
    });
    conn.addHandler(
      (el: any) => {
        const attrs: Record<string, string> = {};
        for (const a of Array.from(el.attributes as ArrayLike<{ name: string; value: string }>)) attrs[a.name] = a.value;
        this.#stanza(el.tagName, attrs, el.getElementsByTagName('body')[0]?.textContent ?? undefined, attrs.from);
        return true;
      },
      null,
      null,
    );
    this.full = conn.jid;
    this.#conn = conn;
    conn.send($pres());
  }

  #lost(conn: unknown): void {
    if (conn !== this.#conn || this.stopped) return;
    this.online = false;
    this.#conn = null;
    const retry = async () => {
      for (let i = 0; i < 40 && !this.stopped; i++) {
        try {
          await this.connect();
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    };
    setTimeout(() => void retry(), 200);
  }

  /** Sends one counted message (when online). */
  send(to: string): void {
    if (!this.online || !this.#conn) return;
    const id = `fo-${this.user}-${++this.#n}`;
    this.sent.push({ id, to, at: Date.now() });
    if (this.kind === 'bosh') this.#conn.send($msg({ to: jid(to), type: 'chat', id }).c('body').t(id));
    else this.#conn.send(xml('message', { to: jid(to), type: 'chat', id }, xml('body', null, id))).catch(() => undefined);
  }

  /** Message ids in this user's archive (XEP-0313), all pages. */
  async archived(): Promise<Set<string>> {
    const ids = new Set<string>();
    const qid = `q${randomBytes(4).toString('hex')}`;
    if (this.kind === 'bosh') {
      const conn = this.#conn;
      await new Promise<void>((resolve, reject) => {
        conn.addHandler(
          (m: any) => {
            const body = m.getElementsByTagName('body')[0]?.textContent;
            if (body?.startsWith('fo-')) ids.add(body);
            return true;
          },
          MAM,
          'message',
        );
        conn.sendIQ($iq({ type: 'set' }).c('query', { xmlns: MAM, queryid: qid }).c('set', { xmlns: 'http://jabber.org/protocol/rsm' }).c('max').t('5000'), () => resolve(), () => reject(new Error('MAM query failed')), 10_000);
      });
      return ids;
    }
    const xmpp = this.#conn;
    const onStanza = (el: Element) => {
      const r = el.getChild('result', MAM);
      if (r?.attrs.queryid !== qid) return;
      const body = r.getChild('forwarded')?.getChild('message')?.getChildText('body');
      if (body?.startsWith('fo-')) ids.add(body);
    };
    xmpp.on('stanza', onStanza);
    await xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: MAM, queryid: qid }, xml('set', { xmlns: 'http://jabber.org/protocol/rsm' }, xml('max', null, '5000')))), 10_000);
    xmpp.off('stanza', onStanza);
    return ids;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.#conn;
    this.#conn = null;
    if (!c) return;
    if (this.kind === 'bosh') c.disconnect();
    else await c.stop().catch(() => undefined);
  }
}

// ------------------------------------------------------------------ the test

describe('failover behind haproxy', { skip: needHaproxy() }, () => {
  const nodes: Node[] = [];
  let hp: RunningHaproxy;
  const users = ['ua', 'ub', 'uc', 'ud', 'ue', 'uf', 'ug', 'uh', 'ui'];
  const kinds: Kind[] = ['tcp', 'websocket', 'bosh'];
  const chatters: Chatter[] = [];

  before(async () => {
    // Accounts and friendships (everyone subscribed to everyone) written before the nodes start.
    const config = parseConfig({ domain: DOMAIN, dataDir: join(dir, 'data') }, CONFIG_SCHEMA);
    const storage = await openStorage(config, MODULE_SCHEMAS, pino({ level: 'silent' }));
    const accounts = new SqlUserStore(storage);
    const rosters = new SqlRosterStore(storage);
    for (const u of [...users, 'uz']) await accounts.create(DOMAIN, u, await makeCredentials('secret'));
    for (const u of users) {
      for (const v of users) {
        if (u === v) continue;
        await rosters.update(DOMAIN, u, jid(v), () => ({ jid: jid(v), name: null, subscription: 'both', groups: [], askOut: false, askIn: false, askInStanza: null, approved: false, inRoster: true }));
      }
    }
    await storage.close();
    front.c2s = await freePort();
    front.http = await freePort();
    for (const n of ['f1', 'f2', 'f3']) nodes.push(await startNode(n));
    // These nodes do not list haproxy in trustedProxies (client addresses: test/proxy-addresses.test.ts).
    hp = await startHaproxy({ proxyProtocol: false, bind: '127.0.0.1', c2sPort: front.c2s, httpPort: front.http, nodes: nodes.map((n) => ({ name: n.name, host: '127.0.0.1', c2sPort: n.c2sPort, httpPort: n.httpPort })), checkInterval: 200, fall: 2, rise: 2 });
    for (const n of nodes) {
      await hp.waitFor(`bosh/${n.name}`, 'UP', 10_000);
      await hp.waitFor(`c2s/${n.name}`, 'UP', 10_000);
    }
  });

  after(async () => {
    for (const c of chatters) await c.stop();
    await hp?.stop();
    for (const n of nodes) n.proc.kill('SIGKILL');
    const r = new Redis(REDIS);
    const keys = await r.keys(`${prefix}:*`);
    if (keys.length > 0) await r.del(...keys);
    r.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  test('kill -9 of a node while its users chat: they reconnect elsewhere, presence goes and comes once, no message lost or duplicated', async () => {
    users.forEach((u, i) => chatters.push(new Chatter(u, kinds[i % 3]!, hp)));
    for (const c of chatters) await c.connect();

    // Where did each land? The directory in Redis says.
    const r = new Redis(REDIS);
    const placement = new Map<string, string>();
    for (const n of nodes) for (const full of Object.keys(await r.hgetall(`${prefix}:sessions:${n.name}`))) if (full !== '#seq') placement.set(full, n.name);
    r.disconnect();
    assert.equal(placement.size, chatters.length, `every session is in the directory: ${[...placement.keys()].join(', ')}`);
    // The victim: the node with the most of our users, preferring one with a BOSH and a WebSocket user.
    const score = (n: Node) => {
      const mine = chatters.filter((c) => placement.get(c.full) === n.name);
      return mine.length + (mine.some((c) => c.kind === 'bosh') ? 10 : 0) + (mine.some((c) => c.kind === 'websocket') ? 10 : 0);
    };
    const victim = [...nodes].sort((a, b) => score(b) - score(a))[0]!;
    const victims = chatters.filter((c) => placement.get(c.full) === victim.name);
    const survivors = chatters.filter((c) => !victims.includes(c));
    assert.ok(victims.length > 0, 'the killed node holds some of the users');

    // Everyone sees everyone before the run.
    const missing = () => chatters.flatMap((c) => chatters.filter((o) => o !== c && !c.presence.includes(`${o.full}|available`)).map((o) => `${c.user}@${placement.get(c.full)} misses ${o.user}@${placement.get(o.full)}`));
    await until('initial presence everywhere', () => missing().length === 0).catch((e: Error) => {
      throw new Error(`${e.message}: ${missing().join(', ')}`);
    });

    // Chat: every 20 ms one user writes to another, round robin, for 2 s before the kill and until everyone is back + 1 s.
    let stop = false;
    let k = 0;
    const loop = (async () => {
      while (!stop) {
        const from = chatters[k % chatters.length]!;
        const to = chatters[(k * 7 + 3) % chatters.length]!;
        k++;
        if (from !== to) from.send(to.user);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await new Promise((r) => setTimeout(r, 2000));
    const killedAt = Date.now();
    victim.proc.kill('SIGKILL');
    const oldResources = new Map(victims.map((c) => [c, c.full]));
    await until('the victims are back online on other nodes', () => victims.every((c) => c.online && c.full !== oldResources.get(c)), 20_000);
    const backAt = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await loop;
    await new Promise((r) => setTimeout(r, 1500)); // the last messages land

    // Presence: each old resource of a victim went unavailable exactly once for every
    // survivor, and its new resource came online.
    for (const s of survivors) {
      for (const v of victims) {
        const old = oldResources.get(v)!;
        const unav = s.presence.filter((p) => p === `${old}|unavailable`).length;
        assert.equal(unav, 1, `${s.user} saw ${old} go unavailable ${unav} times`);
        assert.ok(s.presence.includes(`${v.full}|available`), `${s.user} saw ${v.full} come back`);
      }
    }

    // Messages: live, or in the recipient's archive after reconnecting.
    let sent = 0;
    let live = 0;
    let fromArchive = 0;
    const dups: string[] = [];
    let inFlightAtKill = 0;
    const lost: string[] = [];
    for (const to of chatters) {
      const archive = await to.archived();
      for (const from of chatters) {
        for (const m of from.sent) {
          if (m.to !== to.user) continue;
          sent++;
          const n = to.got.get(m.id) ?? 0;
          if (n > 1) dups.push(`${m.id} → ${to.user}${victims.includes(to) ? ' (victim)' : ''} at ${m.at - killedAt} ms`);
          if (n > 0) live++;
          else if (archive.has(m.id)) fromArchive++;
          // Written by a user of the killed node after its last 250 ms and before its client
          // noticed and reconnected: never acknowledged by any server.
          else if (victims.includes(from) && m.at > killedAt - 250 && m.at < from.connectedAt.at(-1)!) inFlightAtKill++;
          else lost.push(`${m.id} → ${to.user} at ${m.at - killedAt} ms`);
        }
      }
    }
    const report = { victim: victim.name, victims: victims.map((v) => `${v.user}/${v.kind}`), sent, live, fromArchive, lost: lost.length, duplicated: dups.length, inFlightAtKill, reconnectMs: backAt - killedAt };
    console.log(`# failover: ${JSON.stringify(report)}`);
    assert.deepEqual(lost, [], `lost messages: ${JSON.stringify(report)}`);
    assert.deepEqual(dups, [], 'no message delivered twice');
    assert.ok(sent > 100, `enough traffic (${sent})`);
  });

  test('a node shut down drains: health says not ready, haproxy stops sending it sessions, its clients are told to go and reconnect elsewhere', async () => {
    const live = nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
    assert.ok(live.length >= 2, 'two nodes are left');
    const leaving = live[0]!;
    const r = new Redis(REDIS);
    const mine = async () => Object.keys(await r.hgetall(`${prefix}:sessions:${leaving.name}`)).filter((k) => k !== '#seq');
    const onLeaving = (await mine()).length;
    leaving.proc.kill('SIGTERM');
    // While it drains, /health/ready says 503.
    await until('health turns 503', async () => {
      try {
        return (await fetch(`http://127.0.0.1:${leaving.httpPort}/health/ready`)).status === 503;
      } catch {
        return true; // already gone
      }
    }, 5000);
    await new Promise<void>((resolve) => leaving.proc.once('exit', () => resolve()));
    // Everyone is online again, on the nodes left; the leaving node's hash is gone.
    await until('every chatter back online', () => chatters.every((c) => c.online), 20_000);
    assert.deepEqual(await mine(), []);
    r.disconnect();
    console.log(`# drain: ${leaving.name} held ${onLeaving} of the test's sessions; all reconnected elsewhere`);
    const log = leaving.log.join('\n');
    assert.match(log, /"msg":"stopped"/, 'the node stopped cleanly');
  });

  test('a node frozen past its lease is declared dead, and once resumed ends its sessions instead of believing it still holds them', async () => {
    // A fresh node to freeze; a survivor of the earlier tests declares it dead.
    const other = nodes.find((x) => x.proc.exitCode === null && x.proc.signalCode === null)!;
    const n = await startNode('f4');
    nodes.push(n);
    const c = new Chatter('uz', 'tcp', { ...hp, c2sPort: n.c2sPort } as RunningHaproxy);
    chatters.push(c);
    await c.connect();
    const before = c.full;
    n.proc.kill('SIGSTOP');
    try {
      await until('the frozen node is declared dead', async () => {
        const res = await fetch(`http://127.0.0.1:${other.httpPort}/health/ready`);
        const body = (await res.json()) as { members: string[] };
        return !body.members.includes(n.name);
      }, 10_000);
    } finally {
      n.proc.kill('SIGCONT');
    }
    // Resumed: it learns it was expelled, ends the session (the client reconnects to it
    // or another node with a new resource) and joins again.
    await until('the client is back with a new session', () => c.online && c.full !== before, 15_000).catch((e: Error) => {
      throw new Error(`${e.message}; node log:\n${n.log.slice(-15).join('\n')}`);
    });
    await until('the node is a member again', async () => {
      const res = await fetch(`http://127.0.0.1:${n.httpPort}/health/ready`).catch(() => null);
      return res?.status === 200;
    }, 10_000);
    assert.match(n.log.join('\n'), /declared dead/);
  });
});
