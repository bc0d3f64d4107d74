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
import { mamPairs, mamQuery, mamStorage, OFFLINE_EVERY } from './mam.js';
import { shardMove } from './shard-move.js';
import { clusterPairs, type ClusterLayout, type ClusterPairsResult } from './cluster-pairs.js';

const args = process.argv.slice(2);
/** `--quick`: shorter runs of the benchmarks that support it, to check they work. */
const quick = args.includes('--quick');
const only = args.filter((a) => !a.startsWith('--'));
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

if (want('mam-pairs')) {
  const r = quick ? await mamPairs(100, 10, 1000, 4000) : await mamPairs(500, 10);
  results['mam-pairs'] = r;
  for (const [name, p] of [['archive off', r.off], ['archive on', r.on]] as const) {
    console.log(
      `mam-pairs (${name}): ${p.pairs} pairs, window ${p.window}: ${f(p.messagesPerSecond)} msg/s, p50 ${f(p.p50ms, 2)} ms, p99 ${f(p.p99ms, 2)} ms, lost ${p.lost}; server CPU ${f(p.serverCpuPercent)}%, generator CPU ${f(p.generatorCpuPercent)}%`,
    );
  }
  console.log(`mam-pairs: with the archive on, ${f(r.ratio * 100)}% of the messages/s of archive off`);
}

if (want('mam-storage')) {
  // The only benchmark that needs a database server (MySQL/MariaDB, see bench/README.md):
  // without one it is reported as failed and the others still run.
  const r = await (quick ? mamStorage(100, 10, 1000, 4000) : mamStorage(500, 10)).catch((e: unknown) => {
    console.log(`mam-storage: failed (is MariaDB/MySQL running? PARLEY_TEST_MYSQL_* name it): ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
    return null;
  });
  if (r) {
    results['mam-storage'] = r;
    for (const p of [r.sqlite, r.mysql]) {
      const archive = p.rows?.archive;
      const offline = p.rows?.offline;
      const shards = archive && Object.keys(archive.perShard).length > 1 ? ` (rows at the end: ${Object.entries(archive.perShard).map(([k, n]) => `${k} ${f(n)}`).join(', ')})` : '';
      const db = p.databaseCpuPercent != null ? `, database server CPU ${f(p.databaseCpuPercent)}% (whole process)` : '';
      console.log(
        `mam-storage (${p.storage}): ${p.pairs} pairs, window ${p.window}, archive on, 1 message in ${OFFLINE_EVERY + 1} to an offline user: ${f(p.messagesPerSecond)} msg/s delivered, p50 ${f(p.p50ms, 2)} ms, p99 ${f(p.p99ms, 2)} ms, lost ${p.lost}; archive ${f(archive?.perSecond ?? NaN)} rows/s written${shards}; offline ${f(offline?.added ?? NaN)} rows stored in the window (${f(offline?.perSecond ?? NaN)}/s), ${f(p.offline?.stored ?? NaN)} of ${f(p.offline?.sent ?? NaN)} sent (at most ${f(p.offline?.window ?? NaN)} unstored at a time), all stored ${f(p.offline?.catchUpSeconds ?? NaN, 1)} s after the window; ${p.errors ?? 0} errors; server CPU ${f(p.serverCpuPercent)}%${db}, generator CPU ${f(p.generatorCpuPercent)}%`,
      );
    }
    console.log(`mam-storage: on ${r.mysql.storage}, ${f(r.ratio * 100)}% of the messages/s of SQLite`);
  }
}

if (want('mam-query')) {
  const r = quick ? await mamQuery(100_000, 50) : await mamQuery(100_000, 200);
  results['mam-query'] = r;
  const l = (x: { p50ms: number; p99ms: number }) => `p50 ${f(x.p50ms, 2)} ms, p99 ${f(x.p99ms, 2)} ms`;
  console.log(
    `mam-query: archive of ${f(r.archive)} messages (filled in ${f(r.fillSeconds, 1)} s), pages of ${r.pageSize}, ${r.queries} queries each: latest page ${l(r.latest)}; after an id ${l(r.afterId)}; with a contact after an id ${l(r.withContact)}`,
  );
}

if (want('shard-move')) {
  const r = await shardMove(quick ? [0, 1000] : [0, 1000, 10_000, 100_000]).catch((e: unknown) => {
    console.log(`shard-move: failed (is MariaDB/MySQL running?): ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
    return null;
  });
  if (r) {
    results['shard-move'] = r;
    for (const m of r) {
      console.log(
        `shard-move: a user with ${f(m.archiveRows)} archived messages: writes held ${f(m.frozenMs, 1)} ms; whole move ${f(m.totalMs, 0)} ms, ${f(m.rowsCopied)} rows copied (${f(m.rowsPerSecond)} rows/s); a neighbour's reads on the same shard at most ${f(m.neighbourMaxMs, 1)} ms`,
      );
    }
  }
}

if (want('cluster-pairs')) {
  // Needs Redis (PARLEY_BENCH_REDIS_URL, default redis://127.0.0.1:6379): without it this
  // one is reported as failed and the others still run.
  const runs: Array<[ClusterLayout, boolean]> = quick
    ? [['single', false], ['cross', false], ['half', false]]
    : [['single', false], ['single-cluster', false], ['cross', false], ['half', false], ['single', true], ['cross', true], ['half', true]];
  const label: Record<ClusterLayout, string> = {
    single: '1 node (no cluster)',
    'single-cluster': '1 node, cluster on',
    cross: '2 nodes, every pair across',
    half: '2 nodes, half the pairs across',
  };
  const out: ClusterPairsResult[] = [];
  try {
    for (const [layout, archive] of runs) {
      const r = quick ? await clusterPairs(layout, 100, 10, 1000, 4000, archive) : await clusterPairs(layout, 500, 10, 3000, 10_000, archive);
      out.push(r);
      console.log(
        `cluster-pairs (${label[layout]}, archive ${archive ? 'on' : 'off'}): ${r.pairs} pairs (${r.crossPairs} across nodes), window ${r.window}: ${f(r.messagesPerSecond)} msg/s, p50 ${f(r.p50ms, 2)} ms, p99 ${f(r.p99ms, 2)} ms, max ${f(r.maxMs, 1)} ms, lost ${r.lost}, offline rows ${r.offlineRows}, errors ${r.errors}; server CPU ${f(r.serverCpuPercent)}% (${f(r.serverCpuMicrosPerMessage, 1)} µs per message; ${r.perNode.map((n) => `${n.node} ${f(n.cpuPercent)}%`).join(', ')}), generator CPU ${f(r.generatorCpuPercent)}%, other processes ${f(r.otherCpuPercent)}%`,
      );
      for (const n of r.perNode) {
        if (r.nodes > 1 || n.logLines > 0) console.log(`  ${n.node}: ${n.sessions} sessions, forwarded ${f(n.forwarded)}, received ${f(n.received)}, rerouted ${n.rerouted}; ${n.logLines} log lines${n.firstLogLines.map((l) => `\n    ${l}`).join('')}`);
      }
    }
    for (const archive of [false, true]) {
      const one = out.find((r) => r.layout === 'single' && r.archive === archive);
      if (!one) continue;
      for (const r of out.filter((x) => x.nodes > 1 && x.archive === archive)) {
        console.log(`cluster-pairs: archive ${archive ? 'on' : 'off'}, ${label[r.layout]}: ${f((r.messagesPerSecond / one.messagesPerSecond) * 100)}% of the messages/s of 1 node, p99 ${f(r.p99ms, 1)} ms vs ${f(one.p99ms, 1)} ms`);
      }
    }
  } catch (e) {
    console.log(`cluster-pairs: failed (is Redis running on ${process.env.PARLEY_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'}?): ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  }
  if (out.length > 0) results['cluster-pairs'] = out;
}

const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
mkdirSync(dir, { recursive: true });
// Keep the figures of benchmarks not run this time.
const previous = existsSync(`${dir}latest.json`) ? (JSON.parse(readFileSync(`${dir}latest.json`, 'utf8')) as Record<string, unknown>) : {};
writeFileSync(`${dir}latest.json`, JSON.stringify({ ...previous, ...results }, null, 2) + '\n');
console.log(`results written to bench/results/latest.json`);
