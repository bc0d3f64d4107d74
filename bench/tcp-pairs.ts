/**
 * Throughput and latency between pairs of TCP users: P senders each keep W messages in
 * flight to their own receiver (closed loop); every message carries its send time, so
 * time-to-delivery is measured in this process for every message.
 */
import { RawSession, pool, sourceAddress } from './lib/raw-client.js';
import { startBenchServer, percentile, DOMAIN, PASSWORD, type BenchStorage } from './lib/harness.js';

export interface PairsResult {
  pairs: number;
  window: number;
  seconds: number;
  messages: number;
  messagesPerSecond: number;
  p50ms: number;
  p99ms: number;
  maxMs: number;
  lost: number;
  serverCpuPercent: number;
  generatorCpuPercent: number;
  /** With PairsOptions.storage: what the server ran on ('sqlite', 'mysql, 2 shards'). */
  storage?: string;
  /** With PairsOptions.offlineEvery (then also counted in `lost`). */
  offline?: OfflineFigures;
  /** With PairsOptions.countRows: rows added to each table during the measured window. */
  rows?: Record<string, RowFigures>;
  /** With PairsOptions.offlineEvery: error stanzas the senders got back. */
  errors?: number;
  /** With MySQL on this machine: CPU of the whole mariadbd (other clients count too), % of one core. */
  databaseCpuPercent?: number | null;
}

export interface OfflineFigures {
  /** Messages sent to offline recipients, warm-up included. */
  sent: number;
  /** Rows in offline storage once the server has caught up. */
  stored: number;
  /** sent − stored. */
  lost: number;
  /** Time after the window until the last offline message was stored. */
  catchUpSeconds: number;
  /** Most offline messages sent and not yet seen stored (the loop's window for them). */
  window: number;
}

export interface RowFigures {
  /** Rows added between the counts at the start and the end of the window. */
  added: number;
  perSecond: number;
  /** Rows at the end of the window, in all and per database. */
  total: number;
  perShard: Record<string, number>;
}

export interface PairsOptions {
  /** Where the server keeps its data; default SQLite in its temp directory. */
  storage?: BenchStorage;
  /**
   * Offline recipients: `pairs` more users who never log in. Each time a receiver has got
   * `offlineEvery` messages, its sender also sends one to its own offline recipient, so
   * one message in offlineEvery + 1 goes into offline storage. Nothing acknowledges a
   * message stored offline, so this process polls the offline table's row count and
   * keeps at most pairs × window ÷ offlineEvery of them unstored: a sender whose turn it
   * is waits (its next message too) until the server has caught up, so the share holds and
   * no backlog builds up in the server. Their count is checked against the rows stored.
   */
  offlineEvery?: number;
  /** Tables whose rows are counted at the start and the end of the measured window. */
  countRows?: Array<'archive' | 'offline'>;
}

/** `extra`: server configuration on top of the benchmark defaults (e.g. `{ mam: { enabled: false } }`). */
export async function tcpPairs(
  pairs = 500,
  window = 10,
  warmupMs = 3000,
  measureMs = 10_000,
  extra?: Record<string, unknown>,
  opts: PairsOptions = {},
): Promise<PairsResult> {
  const offlineEvery = opts.offlineEvery ?? 0;
  const tables = [...(opts.countRows ?? [])];
  if (offlineEvery > 0 && !tables.includes('offline')) tables.push('offline');
  const server = await startBenchServer({ users: pairs * (offlineEvery > 0 ? 3 : 2), extra, storage: opts.storage });
  const senders: RawSession[] = [];
  const receivers: RawSession[] = [];
  let polling: Promise<void> = Promise.resolve();
  let pollDone = false;
  let pollError: unknown;
  try {
    await pool(
      Array.from({ length: pairs * 2 }, (_, i) => i),
      100,
      async (i) => {
        const s = await RawSession.login({ host: '127.0.0.1', port: server.port, domain: DOMAIN, username: `u${i}`, password: PASSWORD, localAddress: sourceAddress(i) });
        await s.available();
        if (i < pairs) senders[i] = s;
        else receivers[i - pairs] = s;
      },
    );

    let measuring = false;
    let stopped = false;
    let count = 0;
    let inFlight = 0;
    const samples = new Float64Array(20_000_000);
    let nSamples = 0;
    let maxMs = 0;

    const body = 'x'.repeat(40);
    const sendOne = (p: number) => {
      inFlight++;
      senders[p]!.send(`<message to='u${pairs + p}@${DOMAIN}/bench' type='chat'><body>${performance.now()} ${body}</body></message>`);
    };
    // Offline recipients u(2 × pairs + p), one per sender: never logged in.
    let offlineSent = 0;
    let offlineStored = 0;
    const offlineWindow = Math.max(1, Math.round((pairs * window) / Math.max(1, offlineEvery)));
    /** Senders whose offline message (and next message) wait for the server to catch up. */
    const held: number[] = [];
    let errors = 0;
    const got = new Uint32Array(pairs);
    const sendOffline = (p: number) => {
      offlineSent++;
      senders[p]!.send(`<message to='u${2 * pairs + p}@${DOMAIN}' type='chat'><body>${performance.now()} ${body}</body></message>`);
    };
    const next = (p: number) => {
      if (offlineEvery > 0 && ++got[p]! % offlineEvery === 0) {
        if (offlineSent - offlineStored >= offlineWindow) return void held.push(p);
        sendOffline(p);
      }
      sendOne(p);
    };
    if (offlineEvery > 0) {
      polling = (async () => {
        while (!pollDone) {
          try {
            offlineStored = (await server.countRows(['offline'])).offline.total;
          } catch (e) {
            pollError = e;
            return;
          }
          let i = 0;
          while (i < held.length && !stopped && offlineSent - offlineStored < offlineWindow) {
            const p = held[i++]!;
            sendOffline(p);
            sendOne(p);
          }
          held.splice(0, i);
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
    }
    if (offlineEvery > 0) {
      for (const s of senders) {
        s.onMessage = (stanza) => {
          if (/^<message[^>]* type=['"]error['"]/.test(stanza)) errors++;
        };
      }
    }
    receivers.forEach((r, p) => {
      r.onMessage = (stanza) => {
        const b = stanza.indexOf('<body>') + 6;
        const sent = parseFloat(stanza.slice(b, stanza.indexOf(' ', b)));
        const ms = performance.now() - sent;
        inFlight--;
        if (measuring) {
          count++;
          if (nSamples < samples.length) samples[nSamples++] = ms;
          if (ms > maxMs) maxMs = ms;
        }
        if (!stopped) next(p);
      };
    });
    for (let p = 0; p < pairs; p++) for (let w = 0; w < window; w++) sendOne(p);

    await new Promise((r) => setTimeout(r, warmupMs));
    // Rows are counted around the window; the rate uses the time between the counts' starts.
    const c0 = performance.now();
    const rows0 = tables.length > 0 ? await server.countRows(tables) : null;
    const cpu0 = await server.request<{ cpu: NodeJS.CpuUsage }>('cpu');
    const gen0 = process.cpuUsage();
    const db0 = server.databaseCpuMs();
    const t0 = performance.now();
    measuring = true;
    await new Promise((r) => setTimeout(r, measureMs));
    measuring = false;
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = await server.request<{ cpu: NodeJS.CpuUsage }>('cpu');
    const gen1 = process.cpuUsage(gen0);
    const db1 = server.databaseCpuMs();
    const c1 = performance.now();
    const rows1 = tables.length > 0 ? await server.countRows(tables) : null;
    stopped = true;
    const windowEnd = performance.now();
    // Let the last messages in flight arrive: any still missing after that are lost.
    const deadline = Date.now() + 5000;
    while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // Offline messages are not acknowledged: wait for the server to store the last ones.
    let offline: OfflineFigures | undefined;
    if (offlineEvery > 0) {
      const until = Date.now() + 10_000;
      while (offlineStored < offlineSent && Date.now() < until && pollError === undefined) await new Promise((r) => setTimeout(r, 20));
      pollDone = true;
      await polling;
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- whatever the poll loop caught, rethrown as it was
      if (pollError !== undefined) throw pollError;
      const stored = (await server.countRows(['offline'])).offline.total;
      offline = { sent: offlineSent, stored, lost: Math.max(0, offlineSent - stored), catchUpSeconds: (performance.now() - windowEnd) / 1000, window: offlineWindow };
    }
    let rows: Record<string, RowFigures> | undefined;
    if (rows0 && rows1) {
      rows = {};
      for (const t of tables) {
        const added = rows1[t].total - rows0[t].total;
        rows[t] = { added, perSecond: added / ((c1 - c0) / 1000), total: rows1[t].total, perShard: rows1[t].perShard };
      }
    }
    const sorted = samples.slice(0, nSamples).sort();
    const serverCpu = (cpu1.cpu.user + cpu1.cpu.system - cpu0.cpu.user - cpu0.cpu.system) / 1000 / (seconds * 1000);
    const more: Partial<PairsResult> = {};
    if (opts.storage) more.storage = server.storage;
    if (offline) {
      more.offline = offline;
      more.errors = errors;
    }
    if (rows) more.rows = rows;
    if (opts.storage?.driver === 'mysql') more.databaseCpuPercent = db0 !== null && db1 !== null ? ((db1 - db0) / (seconds * 1000)) * 100 : null;
    return {
      pairs,
      window,
      seconds,
      messages: count,
      messagesPerSecond: count / seconds,
      p50ms: percentile(sorted, 50),
      p99ms: percentile(sorted, 99),
      maxMs,
      lost: inFlight + (offline?.lost ?? 0),
      serverCpuPercent: serverCpu * 100,
      generatorCpuPercent: ((gen1.user + gen1.system) / 1000 / (seconds * 1000)) * 100,
      ...more,
    };
  } finally {
    pollDone = true;
    await polling;
    for (const s of [...senders, ...receivers]) s?.close();
    await server.stop();
  }
}
