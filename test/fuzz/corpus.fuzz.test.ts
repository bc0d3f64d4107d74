/**
 * Replays every input of the corpus (test/fuzz/corpus/<target>/*.json): the seed inputs
 * and every counterexample `npm run fuzz` saved. Each must satisfy its property now.
 */
import { after, before, test } from 'node:test';
import { basename } from 'node:path';
import { readCorpus } from './harness.js';
import { TARGETS } from './targets/index.js';

const corpus = readCorpus();
const byName = new Map(TARGETS.map((t) => [t.name, t]));
const needed = new Set(corpus.map((c) => c.entry.target));

before(async () => {
  for (const name of needed) await byName.get(name)?.setup?.();
});
after(async () => {
  for (const name of needed) await byName.get(name)?.teardown?.();
});

test('the corpus has seed inputs for every target', () => {
  for (const t of TARGETS) if (!needed.has(t.name)) throw new Error(`no corpus file for target ${t.name}`);
});

for (const { file, entry } of corpus) {
  test(`fuzz corpus ${entry.target}/${basename(file)}: ${entry.property}`, async () => {
    const target = byName.get(entry.target);
    if (!target) throw new Error(`${file}: unknown target ${entry.target}`);
    const property = target.properties.find((p) => p.name === entry.property);
    if (!property) throw new Error(`${file}: target ${entry.target} has no property "${entry.property}"`);
    await property.check(entry.input);
  });
}
