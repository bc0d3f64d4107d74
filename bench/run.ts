/**
 * `npm run bench`: runs the benchmarks and prints their figures; results are written to
 * bench/results/latest.json. Run one with `npm run bench -- tcp-pairs`.
 * Figures depend on the machine; compare runs made on the same one.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { tcpIdle } from './tcp-idle.js';
import { tcpPairs } from './tcp-pairs.js';

const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
};

const f = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

if (want('tcp-pairs')) {
  const r = await tcpPairs(500, 10);
  results['tcp-pairs'] = r;
  console.log(
    `tcp-pairs: ${r.pairs} pairs, window ${r.window}: ${f(r.messagesPerSecond)} msg/s, p50 ${f(r.p50ms, 2)} ms, p99 ${f(r.p99ms, 2)} ms, max ${f(r.maxMs, 1)} ms, lost ${r.lost}; server CPU ${f(r.serverCpuPercent)}%, generator CPU ${f(r.generatorCpuPercent)}%`,
  );
}

if (want('tcp-idle')) {
  const r = await tcpIdle(10_000);
  results['tcp-idle'] = r;
  console.log(
    `tcp-idle: ${f(r.sessions)} sessions: ${f(r.rssBytesPerSession)} bytes RSS per session (heap ${f(r.heapBytesPerSession)}, external ${f(r.externalBytesPerSession)}); logins ${f(r.loginsPerSecond)}/s`,
  );
}

const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}latest.json`, JSON.stringify(results, null, 2) + '\n');
console.log(`results written to bench/results/latest.json`);
