/**
 * The long fuzz run: `npm run fuzz -- --minutes 10 --target parser|bosh|ws|sasl|jid|api|all`.
 * Runs each property of the chosen targets in turn, in slices of a few seconds with a new
 * seed each, until the time is up; a failing input (shrunk by fast-check) is written to
 * test/fuzz/corpus/<target>/<hash>.json, which `npm test` then replays for good.
 * Options: --minutes N (default 1), --seconds N, --target NAME (default all),
 * --seed N (first seed; default from the clock), --slice SECONDS (time per property and
 * turn; default 10, less when the run is too short for every property to get 10).
 */
import { relative } from 'node:path';
import { runProperty, saveCounterexample } from './harness.js';
import { TARGETS } from './targets/index.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const seconds = Number(arg('seconds') ?? Number(arg('minutes') ?? 1) * 60);
const which = arg('target') ?? 'all';
let seed = Number(arg('seed') ?? ((Date.now() ^ (Math.random() * 0x7fffffff)) | 0)) | 0;
const targets = which === 'all' ? TARGETS : TARGETS.filter((t) => which.split(',').includes(t.name));
if (targets.length === 0 || !Number.isFinite(seconds) || seconds <= 0) {
  console.error(`usage: npm run fuzz -- [--minutes N | --seconds N] [--target ${TARGETS.map((t) => t.name).join('|')}|all] [--seed N] [--slice S]`);
  process.exit(2);
}

// Every property gets a turn even in a short run: slices of at most 10 s.
const propertyCount = targets.reduce((n, t) => n + t.properties.length, 0);
const slice = Number(arg('slice') ?? Math.max(1, Math.min(10, seconds / propertyCount))) * 1000;
const started = Date.now();
const deadline = started + seconds * 1000;
const stats = new Map<string, { runs: number; failures: number }>();
const findings: string[] = [];
console.log(`fuzz: ${targets.map((t) => t.name).join(', ')} for ${seconds} s, first seed ${seed}`);

for (const t of targets) await t.setup?.();
try {
  outer: while (Date.now() < deadline) {
    for (const t of targets) {
      for (const p of t.properties) {
        const left = deadline - Date.now();
        if (left <= 0) break outer;
        const key = `${t.name}: ${p.name}`;
        const r = await runProperty(p, seed, 1_000_000_000, Math.min(slice, left));
        const s = stats.get(key) ?? { runs: 0, failures: 0 };
        s.runs += r.runs;
        if (r.failed) {
          s.failures++;
          const file = saveCounterexample(t.name, p.name, r);
          findings.push(`${key}\n  seed ${r.seed} path ${r.path}\n  ${(r.error ?? '').split('\n')[0]}\n  saved ${relative(process.cwd(), file)}`);
          console.log(`FAILED ${key} (seed ${r.seed}): saved ${relative(process.cwd(), file)}`);
        }
        stats.set(key, s);
        seed = (seed + 0x9e3779b1) | 0;
      }
    }
  }
} finally {
  for (const t of targets) await t.teardown?.();
}

const total = [...stats.values()].reduce((n, s) => n + s.runs, 0);
console.log(`\nfuzz: ${total} inputs in ${((Date.now() - started) / 1000).toFixed(0)} s`);
for (const [key, s] of stats) console.log(`  ${String(s.runs).padStart(9)}  ${s.failures ? `${s.failures} FAILED  ` : ''}${key}`);
if (findings.length > 0) {
  console.log(`\n${findings.length} finding(s); replay with npm test -- fuzz corpus:\n${findings.join('\n')}`);
  process.exitCode = 1;
} else console.log('no findings');
