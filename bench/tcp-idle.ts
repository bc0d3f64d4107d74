/**
 * Bytes of server memory per idle authenticated TCP session: N sessions log in (PLAIN,
 * bind, initial presence) and stay idle; server RSS and heap are read after a full GC
 * before and after.
 */
import { RawSession, pool, sourceAddress } from './lib/raw-client.js';
import { startBenchServer, DOMAIN, PASSWORD, type MemReport } from './lib/harness.js';

export interface IdleResult {
  sessions: number;
  loginSeconds: number;
  loginsPerSecond: number;
  rssBytesPerSession: number;
  heapBytesPerSession: number;
  externalBytesPerSession: number;
}

export async function tcpIdle(n = 10_000): Promise<IdleResult> {
  const server = await startBenchServer({ users: n });
  const sessions: RawSession[] = [];
  try {
    const before = await server.request<MemReport>('mem');
    const t0 = performance.now();
    const users = Array.from({ length: n }, (_, i) => i);
    await pool(users, 200, async (i) => {
      const s = await RawSession.login({
        host: '127.0.0.1',
        port: server.port,
        domain: DOMAIN,
        username: `u${i}`,
        password: PASSWORD,
        localAddress: sourceAddress(i, 10_000),
      });
      await s.available();
      sessions.push(s);
    });
    const loginSeconds = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 1000));
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
