/**
 * BOSH benchmarks: bytes of server memory per idle BOSH session (each holding one
 * request, as an idle web client does), and throughput/latency between BOSH pairs.
 * The server treats HTTP as secure (TLS in front), so PLAIN is allowed, as for the peers.
 */
import { BoshLoadSession } from './lib/raw-bosh.js';
import { pool, sourceAddress } from './lib/raw-client.js';
import { startBenchServer, percentile, DOMAIN, PASSWORD, type MemReport } from './lib/harness.js';
import type { IdleResult } from './tcp-idle.js';
import type { PairsResult } from './tcp-pairs.js';

const HTTP = { listen: { c2s: { port: 0, requireTls: false }, c2sTls: { enabled: false }, http: { port: 0, secure: true } } };

export async function boshIdle(n = 10_000): Promise<IdleResult> {
  // Idle sessions hibernate after hibernateAfter; measure them hibernated, as a long-running
  // server holds them (5 s here instead of the default 30 s to keep the run short).
  const server = await startBenchServer({ users: n, extra: { ...HTTP, bosh: { hibernateAfter: '5s' } } });
  const sessions: BoshLoadSession[] = [];
  try {
    const before = await server.request<MemReport>('mem');
    const t0 = performance.now();
    await pool(
      Array.from({ length: n }, (_, i) => i),
      200,
      async (i) => {
        const s = await BoshLoadSession.login({ host: '127.0.0.1', port: server.httpPort!, domain: DOMAIN, username: `u${i}`, password: PASSWORD, localAddress: sourceAddress(i, 8000) });
        s.start(); // one request held from now on
        sessions.push(s);
      },
    );
    const loginSeconds = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 7000));
    const after = await server.request<MemReport>('mem');
    if (after.sessions !== n) throw new Error(`expected ${n} sessions, server has ${after.sessions}`);
    return {
      sessions: n,
      loginSeconds,
      loginsPerSecond: n / loginSeconds,
      rssBytesPerSession: (after.mem.rss - before.mem.rss) / n,
      heapBytesPerSession: (after.mem.heapUsed - before.mem.heapUsed) / n,
      externalBytesPerSession: (after.mem.external + after.mem.arrayBuffers - before.mem.external - before.mem.arrayBuffers) / n,
    };
  } finally {
    for (const s of sessions) s.close();
    await server.stop();
  }
}

export async function boshPairs(pairs = 500, window = 10, warmupMs = 3000, measureMs = 10_000): Promise<PairsResult> {
  const server = await startBenchServer({ users: pairs * 2, extra: HTTP });
  const senders: BoshLoadSession[] = [];
  const receivers: BoshLoadSession[] = [];
  try {
    await pool(
      Array.from({ length: pairs * 2 }, (_, i) => i),
      100,
      async (i) => {
        const s = await BoshLoadSession.login({ host: '127.0.0.1', port: server.httpPort!, domain: DOMAIN, username: `u${i}`, password: PASSWORD, localAddress: sourceAddress(i, 8000) });
        if (i < pairs) senders[i] = s;
        else receivers[i - pairs] = s;
      },
    );
    let measuring = false;
    let stopped = false;
    let count = 0;
    let inFlight = 0;
    const samples = new Float64Array(5_000_000);
    let n = 0;
    let maxMs = 0;
    const body = 'x'.repeat(40);
    const sendOne = (p: number) => {
      inFlight++;
      senders[p]!.send(`<message xmlns='jabber:client' to='u${pairs + p}@${DOMAIN}/bench' type='chat'><body>${performance.now()} ${body}</body></message>`);
    };
    receivers.forEach((r, p) => {
      r.onPayload = (payload) => {
        let at = 0;
        for (;;) {
          const b = payload.indexOf('<body>', at);
          if (b < 0) break;
          const sent = parseFloat(payload.slice(b + 6, payload.indexOf(' ', b)));
          at = b + 6;
          if (!Number.isFinite(sent)) continue;
          const ms = performance.now() - sent;
          inFlight--;
          if (measuring) {
            count++;
            if (n < samples.length) samples[n++] = ms;
            if (ms > maxMs) maxMs = ms;
          }
          if (!stopped) sendOne(p);
        }
      };
      r.start();
    });
    for (const s of senders) s.start();
    for (let p = 0; p < pairs; p++) for (let w = 0; w < window; w++) sendOne(p);

    await new Promise((r) => setTimeout(r, warmupMs));
    const cpu0 = await server.request<{ cpu: NodeJS.CpuUsage }>('cpu');
    const gen0 = process.cpuUsage();
    const t0 = performance.now();
    measuring = true;
    await new Promise((r) => setTimeout(r, measureMs));
    measuring = false;
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = await server.request<{ cpu: NodeJS.CpuUsage }>('cpu');
    const gen1 = process.cpuUsage(gen0);
    stopped = true;
    const deadline = Date.now() + 5000;
    while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const sorted = samples.slice(0, n).sort();
    return {
      pairs,
      window,
      seconds,
      messages: count,
      messagesPerSecond: count / seconds,
      p50ms: percentile(sorted, 50),
      p99ms: percentile(sorted, 99),
      maxMs,
      lost: inFlight,
      serverCpuPercent: ((cpu1.cpu.user + cpu1.cpu.system - cpu0.cpu.user - cpu0.cpu.system) / 1000 / (seconds * 1000)) * 100,
      generatorCpuPercent: ((gen1.user + gen1.system) / 1000 / (seconds * 1000)) * 100,
    };
  } finally {
    for (const s of [...senders, ...receivers]) s?.close();
    await server.stop();
  }
}
