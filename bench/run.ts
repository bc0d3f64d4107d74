/**
 * `npm run bench`: runs the benchmarks and prints their figures; results are written to
 * bench/results/latest.json. Run one with `npm run bench -- tcp-pairs`.
 * Figures depend on the machine; compare runs made on the same one.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { tcpIdle } from './tcp-idle.js';
import { tcpPairs } from './tcp-pairs.js';
import { boshIdle, boshPairs } from './bosh.js';

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

if (want('bosh-pairs')) {
  const r = await boshPairs(500, 10);
  results['bosh-pairs'] = r;
  console.log(
    `bosh-pairs: ${r.pairs} pairs, window ${r.window}: ${f(r.messagesPerSecond)} msg/s, p50 ${f(r.p50ms, 2)} ms, p99 ${f(r.p99ms, 2)} ms, max ${f(r.maxMs, 1)} ms, lost ${r.lost}; server CPU ${f(r.serverCpuPercent)}%, generator CPU ${f(r.generatorCpuPercent)}%`,
  );
}

if (want('bosh-idle')) {
  const r = await boshIdle(10_000);
  results['bosh-idle'] = r;
  console.log(
    `bosh-idle: ${f(r.sessions)} sessions, one request held each: ${f(r.rssBytesPerSession)} bytes RSS per session (heap ${f(r.heapBytesPerSession)}, external ${f(r.externalBytesPerSession)}); logins ${f(r.loginsPerSecond)}/s`,
  );
}

const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
mkdirSync(dir, { recursive: true });
// Keep the figures of benchmarks not run this time.
const previous = existsSync(`${dir}latest.json`) ? (JSON.parse(readFileSync(`${dir}latest.json`, 'utf8')) as Record<string, unknown>) : {};
writeFileSync(`${dir}latest.json`, JSON.stringify({ ...previous, ...results }, null, 2) + '\n');
console.log(`results written to bench/results/latest.json`);
