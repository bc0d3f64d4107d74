/**
 * A generator worker process: logs in its share of the users, sends what the scenario
 * asks (rate-driven messages and presence, or closed-loop pairs), measures what it
 * receives, and reports to the coordinator over IPC every second.
 *
 * Messages carry their flow and number in the id (`lt.<sender>.<seq>`) and their send
 * time in the body; time-to-delivery uses the shared wall clock (timeOrigin + now) so
 * sender and receiver may live in different workers.
 */
import type { XmlElement } from '../src/xml/element.js';
import { Histogram } from './histogram.js';
import { FlowTracker } from './sequence.js';
import { friendsOf, transportOf, type Scenario } from './scenario.js';
import type { LoadClient, ClientOptions } from './clients/client.js';
import { TcpLoadClient } from './clients/tcp.js';
import { BoshLoadClient, boshCounters } from './clients/bosh.js';
import { WsLoadClient } from './clients/websocket.js';
import type { ToWorker, WorkerReport, WorkerFinal } from './protocol.js';

const now = (): number => performance.timeOrigin + performance.now();

interface User {
  index: number;
  client: LoadClient | null;
  /** Next sequence number per receiver index. */
  seq: Map<number, number> | null;
  away: boolean;
}

let sc: Scenario;
let workerId = 0;
let runStart = 0;
let users: User[] = [];
const byIndex = new Map<number, User>();
let measuring = false;
let sending = false;
let mode: 'load' | 'rosters' = 'load';

// Per-second counters (reset after each report) and totals.
const loginHist = new Histogram();
const latency = new Histogram();
let loginsDone = 0;
let loginErrors = 0;
let sent = 0;
let received = 0;
let presences = 0;
let measuredReceived = 0;
const errors = new Map<string, number>();
const flowsIn = new Map<string, FlowTracker>();
const flowsOut = new Map<string, number>();
let lastCpu = process.cpuUsage();
let lastCpuAt = performance.now();
let stormDone: number | null = null;
// Closed-loop pairs: messages in flight per pair index.
const inFlight = new Map<number, number>();
// Roster provisioning: subscriptions confirmed per user.
const subscribedTo = new Map<number, Set<number>>();

function count(map: Map<string, number>, key: string, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

function jidOf(i: number): string {
  return `${sc.prefix}${sc.first + i}@${sc.domain}`;
}

function indexOf(jid: string | undefined): number {
  if (!jid) return -1;
  const at = jid.indexOf('@');
  const local = jid.slice(0, at);
  if (!local.startsWith(sc.prefix)) return -1;
  const n = Number(local.slice(sc.prefix.length));
  return Number.isInteger(n) ? n - sc.first : -1;
}

function clientFor(i: number): LoadClient {
  const t = transportOf(i, sc.transports);
  const addresses = Math.max(1, sc.sourceAddresses);
  const opts: ClientOptions = {
    host: sc.host,
    port: t === 'tcp' ? sc.tcpPort : sc.httpPort,
    path: t === 'bosh' ? sc.boshPath : sc.wsPath,
    domain: sc.domain,
    username: `${sc.prefix}${sc.first + i}`,
    password: sc.password,
    resource: 'load',
    mechanism: sc.mechanism,
    localAddress: sc.host.startsWith('127.') ? `127.0.0.${2 + ((i + workerId) % addresses)}` : undefined,
    boshWait: sc.boshWait,
    streamManagement: sc.streamManagement,
  };
  if (t === 'bosh') return new BoshLoadClient(opts);
  if (t === 'websocket') return new WsLoadClient(opts);
  return new TcpLoadClient(opts);
}

/** A login that has not finished after this long counts as failed (`login:timeout`). */
const LOGIN_TIMEOUT_MS = 60_000;

async function login(u: User): Promise<void> {
  const t0 = performance.now();
  const c = clientFor(u.index);
  u.client = c;
  c.onStanza = (el) => onStanza(u, el);
  c.onClose = (condition) => {
    if (u.client === c) {
      u.client = null;
      if (sending || mode === 'rosters') count(errors, 'closed:' + condition);
    }
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    // A server that accepts and then never answers must not hang the run.
    await Promise.race([
      c.login(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject({ condition: 'timeout' }), LOGIN_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    c.send("<presence xmlns='jabber:client'/>");
    if (c instanceof BoshLoadClient) c.start();
    loginHist.record(performance.now() - t0);
    loginsDone++;
  } catch (e) {
    clearTimeout(timer);
    loginErrors++;
    count(errors, 'login:' + ((e as { condition?: string })?.condition ?? String(e)));
    c.close(false);
    if (u.client === c) u.client = null;
  }
}

/** Logs users in at `rate` per second, each as soon as its turn comes. */
async function loginAll(list: User[], rate: number): Promise<void> {
  const interval = 1000 / rate;
  const limit = sc.loginConcurrency > 0 ? Math.max(1, Math.ceil(sc.loginConcurrency / sc.workers)) : Infinity;
  let inProgress = 0;
  let wake: (() => void) | null = null;
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  for (let k = 0; k < list.length; k++) {
    const due = t0 + k * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    while (inProgress >= limit) await new Promise<void>((r) => (wake = r));
    inProgress++;
    pending.push(
      login(list[k]!).finally(() => {
        inProgress--;
        const w = wake;
        wake = null;
        w?.();
      }),
    );
  }
  await Promise.all(pending);
}

function onStanza(u: User, el: XmlElement): void {
  if (el.name === 'message') {
    if (el.attrs.type === 'error') {
      const cond = el.getChild('error')?.elements().find((e) => e.name !== 'text')?.name ?? 'unknown';
      count(errors, 'message-error:' + cond);
      return;
    }
    const id = el.attrs.id;
    if (!id || !id.startsWith('lt.')) return;
    const dot = id.indexOf('.', 3);
    const sender = Number(id.slice(3, dot));
    const seq = Number(id.slice(dot + 1));
    const body = el.getChildText('body') ?? '';
    const sentAt = Number(body.slice(0, body.indexOf(' ')));
    // Messages of an earlier run (stored offline, delivered at this login) do not count.
    if (!(sentAt >= runStart)) return;
    received++;
    const key = `${sender}>${u.index}`;
    let flow = flowsIn.get(key);
    if (!flow) flowsIn.set(key, (flow = new FlowTracker()));
    flow.receive(seq);
    if (measuring) {
      measuredReceived++;
      if (Number.isFinite(sentAt)) latency.record(now() - sentAt);
    }
    // Closed loop: the receiver of pair p is user pairs+p; the sender sends the next.
    if (sc.pairs > 0 && u.index >= sc.pairs && u.index < 2 * sc.pairs) {
      const p = u.index - sc.pairs;
      inFlight.set(p, (inFlight.get(p) ?? 1) - 1);
      if (sending) sendPair(p);
    }
    return;
  }
  if (el.name === 'presence') {
    const type = el.attrs.type;
    const from = indexOf(el.attrs.from);
    if (type === 'subscribe' && from >= 0) {
      // Everyone says yes, and asks back: friendships end up mutual.
      u.client?.send(`<presence xmlns='jabber:client' to='${jidOf(from)}' type='subscribed'/>`);
      if (!subscribedTo.get(u.index)?.has(from)) u.client?.send(`<presence xmlns='jabber:client' to='${jidOf(from)}' type='subscribe'/>`);
      return;
    }
    if (type === 'subscribed' && from >= 0) {
      let set = subscribedTo.get(u.index);
      if (!set) subscribedTo.set(u.index, (set = new Set()));
      set.add(from);
      return;
    }
    presences++;
    return;
  }
  if (el.name === 'iq' && (el.attrs.type === 'get' || el.attrs.type === 'set')) {
    // Roster pushes and pings get a result (RFC 6120: every IQ is answered).
    u.client?.send(`<iq xmlns='jabber:client' type='result' id='${el.attrs.id ?? ''}'${el.attrs.from ? ` to='${el.attrs.from}'` : ''}/>`);
  }
}

const pad = (n: number) => 'x'.repeat(n);
let body = '';

function sendMessage(from: User, to: number): void {
  const c = from.client;
  if (!c?.isOnline) return;
  const seqs = (from.seq ??= new Map<number, number>());
  const seq = seqs.get(to) ?? 0;
  seqs.set(to, seq + 1);
  count(flowsOut, `${from.index}>${to}`);
  sent++;
  c.send(`<message xmlns='jabber:client' to='${jidOf(to)}' type='chat' id='lt.${from.index}.${seq}'><body>${now()} ${body}</body></message>`);
}

function sendPair(p: number): void {
  const u = byIndex.get(p);
  if (!u?.client?.isOnline) return;
  while ((inFlight.get(p) ?? 0) < sc.window) {
    inFlight.set(p, (inFlight.get(p) ?? 0) + 1);
    sendMessage(u, sc.pairs + p);
  }
}

/** Rate-driven traffic: messages and presence changes, spread over ticks of 100 ms. */
let msgCarry = 0;
let presCarry = 0;
function tick(): void {
  if (!sending || sc.pairs > 0) return;
  const online = users.filter((u) => u.client?.isOnline);
  if (online.length === 0) return;
  msgCarry += (online.length * sc.messagesPerMinute) / 600;
  presCarry += (online.length * sc.presencePerMinute) / 600;
  while (msgCarry >= 1) {
    msgCarry--;
    const u = online[Math.floor(Math.random() * online.length)]!;
    const friends = sc.rosterSize > 0 ? friendsOf(u.index, sc.users, sc.rosterSize) : null;
    let to = friends ? friends[Math.floor(Math.random() * friends.length)]! : Math.floor(Math.random() * sc.users);
    if (to === u.index) to = (to + 1) % sc.users;
    sendMessage(u, to);
  }
  while (presCarry >= 1) {
    presCarry--;
    const u = online[Math.floor(Math.random() * online.length)]!;
    u.away = !u.away;
    u.client?.send(u.away ? "<presence xmlns='jabber:client'><show>away</show></presence>" : "<presence xmlns='jabber:client'/>");
  }
}

/** Drops `share` of this worker's online users and logs them in again over `within` ms. */
async function storm(share: number, within: number): Promise<void> {
  const t0 = performance.now();
  const victims = users.filter((u) => u.client?.isOnline).slice(0, share);
  const dropped: LoadClient[] = [];
  for (const u of victims) {
    dropped.push(u.client!);
    u.client = null; // sends nothing more
  }
  // The connections drop a moment after their last message, which the server has read
  // by then: an abrupt close with unread data makes the kernel reset the connection and
  // discard what the server had not read yet, which would count as lost in transit.
  setTimeout(() => {
    for (const c of dropped) c.close(false);
  }, 200);
  await Promise.all(
    victims.map(async (u) => {
      await new Promise((r) => setTimeout(r, Math.random() * within));
      await login(u);
    }),
  );
  stormDone = performance.now() - t0;
}

async function makeRosters(): Promise<void> {
  mode = 'rosters';
  for (const u of users) {
    const friends = friendsOf(u.index, sc.users, sc.rosterSize);
    for (const f of friends) if (f > u.index) u.client?.send(`<presence xmlns='jabber:client' to='${jidOf(f)}' type='subscribe'/>`);
  }
}

function rostersComplete(): number {
  let done = 0;
  for (const u of users) {
    const friends = friendsOf(u.index, sc.users, sc.rosterSize);
    const got = subscribedTo.get(u.index);
    if (got && friends.every((f) => got.has(f))) done++;
  }
  return done;
}

function report(): WorkerReport {
  const cpu = process.cpuUsage(lastCpu);
  const t = performance.now();
  const cpuPercent = ((cpu.user + cpu.system) / 1000 / (t - lastCpuAt)) * 100;
  lastCpu = process.cpuUsage();
  lastCpuAt = t;
  const r: WorkerReport = {
    type: 'report',
    worker: workerId,
    online: users.reduce((n, u) => n + (u.client?.isOnline ? 1 : 0), 0),
    loginsDone,
    loginErrors,
    loginHist: loginHist.toJSON(),
    latency: latency.toJSON(),
    sent,
    received,
    measuredReceived,
    presences,
    errors: Object.fromEntries(errors),
    cpuPercent,
    inFlight: [...inFlight.values()].reduce((a, b) => a + b, 0),
    stormDone,
    rostersDone: mode === 'rosters' ? rostersComplete() : 0,
    httpRequests: boshCounters.requests,
  };
  latency.reset();
  loginHist.reset();
  return r;
}

function final(): WorkerFinal {
  const flows: WorkerFinal['flows'] = {};
  for (const [k, f] of flowsIn) flows[k] = { unique: f.unique, duplicates: f.duplicates, outOfOrder: f.outOfOrder };
  return { type: 'final', worker: workerId, sentPerFlow: Object.fromEntries(flowsOut), flows };
}

let ticker: NodeJS.Timeout | null = null;
let reporter: NodeJS.Timeout | null = null;

process.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'init':
      sc = msg.scenario;
      workerId = msg.worker;
      runStart = msg.startedAt;
      body = pad(sc.bodySize);
      users = msg.users.map((index) => ({ index, client: null, seq: null, away: false }));
      for (const u of users) byIndex.set(u.index, u);
      reporter = setInterval(() => process.send!(report()), 1000);
      process.send!({ type: 'ready', worker: workerId });
      break;
    case 'login':
      void loginAll(users, msg.rate).then(() => process.send!({ type: 'logged-in', worker: workerId }));
      break;
    case 'rosters':
      void makeRosters();
      break;
    case 'traffic':
      sending = msg.on;
      if (sending && sc.pairs > 0) for (const u of users) if (u.index < sc.pairs) sendPair(u.index);
      if (sending && !ticker) ticker = setInterval(tick, 100);
      if (!sending && ticker) {
        clearInterval(ticker);
        ticker = null;
      }
      break;
    case 'measure':
      measuring = msg.on;
      break;
    case 'storm':
      void storm(msg.share, msg.within);
      break;
    case 'final':
      process.send!(report());
      process.send!(final());
      break;
    case 'logout':
      if (ticker) clearInterval(ticker);
      if (reporter) clearInterval(reporter);
      for (const u of users) u.client?.close(true);
      setTimeout(() => process.exit(0), 2500).unref();
      break;
  }
});
