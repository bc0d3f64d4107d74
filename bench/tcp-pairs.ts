/**
 * Throughput and latency between pairs of TCP users: P senders each keep W messages in
 * flight to their own receiver (closed loop); every message carries its send time, so
 * time-to-delivery is measured in this process for every message.
 */
import { RawSession, pool, sourceAddress } from './lib/raw-client.js';
import { startBenchServer, percentile, DOMAIN, PASSWORD } from './lib/harness.js';

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
}

/** `extra`: server configuration on top of the benchmark defaults (e.g. `{ mam: { enabled: false } }`). */
export async function tcpPairs(pairs = 500, window = 10, warmupMs = 3000, measureMs = 10_000, extra?: Record<string, unknown>): Promise<PairsResult> {
  const server = await startBenchServer({ users: pairs * 2, extra });
  const senders: RawSession[] = [];
  const receivers: RawSession[] = [];
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
        if (!stopped) sendOne(p);
      };
    });
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
    // Let the last messages in flight arrive: any still missing after that are lost.
    const deadline = Date.now() + 5000;
    while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const sorted = samples.slice(0, nSamples).sort();
    const serverCpu = (cpu1.cpu.user + cpu1.cpu.system - cpu0.cpu.user - cpu0.cpu.system) / 1000 / (seconds * 1000);
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
      serverCpuPercent: serverCpu * 100,
      generatorCpuPercent: ((gen1.user + gen1.system) / 1000 / (seconds * 1000)) * 100,
    };
  } finally {
    for (const s of [...senders, ...receivers]) s?.close();
    await server.stop();
  }
}
