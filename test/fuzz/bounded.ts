/**
 * The bounded fuzz run of one target inside `npm test`: every property for a fixed number
 * of inputs (capped in time), from one seed printed at the start. A failure names the
 * seed and the shrunk counterexample; `PARLEY_FUZZ_SEED=<seed> npm test -- fuzz` replays it.
 */
import { after, before, test } from 'node:test';
import { runProperty, runSeed, runsFactor, type FuzzTarget } from './harness.js';

/** Per property: stop after this long even if the runs are not done (a loaded machine). */
const TIME_LIMIT_MS = 4000;

export function boundedRun(target: FuzzTarget): void {
  const seed = runSeed();
  console.log(`# fuzz ${target.name}: seed ${seed} (PARLEY_FUZZ_SEED=${seed} to replay)`);
  if (target.setup) before(() => target.setup!());
  if (target.teardown) after(() => target.teardown!());
  for (const p of target.properties) {
    test(`fuzz ${target.name}: ${p.name}`, async (t) => {
      const runs = Math.max(1, Math.round((p.runs ?? 200) * runsFactor()));
      const r = await runProperty(p, seed, runs, TIME_LIMIT_MS * runsFactor());
      t.diagnostic(`${r.runs} inputs, seed ${seed}`);
      if (r.failed) throw new Error(`fuzz ${target.name} / ${p.name} failed (seed ${seed}, path ${r.path}):\n${r.report}\n${r.error}`);
    });
  }
}
