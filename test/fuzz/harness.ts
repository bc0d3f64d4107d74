/**
 * The fuzzing harness shared by the bounded runs in `npm test` (`*.fuzz.test.ts`), the
 * corpus replay (`corpus.fuzz.test.ts`) and the long runs (`npm run fuzz`, run.ts).
 *
 * A target is a set of properties; a property is a fast-check arbitrary and a check that
 * throws on a violation. Inputs are plain JSON values (byte strings as arrays of numbers),
 * so a counterexample can be written to the corpus as is and replayed later.
 * See docs/fuzzing.md.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';

export interface FuzzProperty<T = any> {
  name: string;
  arbitrary: fc.Arbitrary<T>;
  /** Throws (anything) when the property does not hold for `input`. */
  check(input: T): void | Promise<void>;
  /** Runs in the bounded run of `npm test` (default 200). */
  runs?: number;
}

export interface FuzzTarget {
  name: string;
  properties: FuzzProperty[];
  /** Starts what the properties need (a test server); called once per process. */
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
}

export interface CorpusEntry {
  target: string;
  property: string;
  input: unknown;
  /** Why this input is here: a seed input, or the failure it reproduced. */
  note?: string;
  seed?: number;
  path?: string;
}

/** The source tree's corpus (not dist/): counterexamples are saved where git sees them. */
export const CORPUS_DIR = fileURLToPath(new URL('../../../test/fuzz/corpus/', import.meta.url));

/** The seed of this run: PARLEY_FUZZ_SEED, or one made from the clock. */
export function runSeed(): number {
  const env = process.env.PARLEY_FUZZ_SEED;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isSafeInteger(n)) throw new Error(`PARLEY_FUZZ_SEED must be an integer, not ${env}`);
    return n | 0;
  }
  return (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
}

/** Multiplies the bounded run counts (PARLEY_FUZZ_RUNS_FACTOR=10 for a longer `npm test`). */
export function runsFactor(): number {
  const f = Number(process.env.PARLEY_FUZZ_RUNS_FACTOR ?? 1);
  return Number.isFinite(f) && f > 0 ? f : 1;
}

function toProperty(p: FuzzProperty): fc.IRawProperty<[unknown]> {
  const isAsync = p.check.constructor.name === 'AsyncFunction';
  return isAsync
    ? (fc.asyncProperty(p.arbitrary, async (input) => {
        await p.check(input);
      }) as unknown as fc.IRawProperty<[unknown]>)
    : (fc.property(p.arbitrary, (input) => {
        void p.check(input);
      }) as unknown as fc.IRawProperty<[unknown]>);
}

export interface RunResult {
  runs: number;
  failed: boolean;
  counterexample?: unknown;
  error?: string;
  seed: number;
  path?: string;
  report: string;
}

/** Runs one property with a seed, at most `numRuns` times and for at most `timeLimitMs`. */
export async function runProperty(p: FuzzProperty, seed: number, numRuns: number, timeLimitMs: number, path?: string): Promise<RunResult> {
  const params: fc.Parameters<[unknown]> = {
    seed,
    numRuns,
    interruptAfterTimeLimit: timeLimitMs,
    markInterruptAsFailure: false,
    ...(path !== undefined ? { path, endOnFailure: true } : {}),
  };
  const details = (await fc.check(toProperty(p) as fc.IAsyncProperty<[unknown]>, params)) as fc.RunDetails<[unknown]>;
  const failed = details.failed && !details.interrupted;
  return {
    runs: details.numRuns,
    failed,
    counterexample: failed && details.counterexample ? details.counterexample[0] : undefined,
    error: failed ? String(details.errorInstance instanceof Error ? details.errorInstance.stack ?? details.errorInstance.message : details.errorInstance) : undefined,
    seed,
    path: failed ? details.counterexamplePath ?? undefined : undefined,
    report: failed ? fc.defaultReportMessage(details) ?? '' : '',
  };
}

/** Writes a counterexample into the corpus; returns the file's path (same input → same file). */
export function saveCounterexample(target: string, property: string, result: RunResult): string {
  const entry: CorpusEntry = {
    target,
    property,
    input: result.counterexample,
    note: `found by npm run fuzz: ${(result.error ?? '').split('\n')[0]}`,
    seed: result.seed,
    path: result.path,
  };
  const json = JSON.stringify(entry.input);
  const hash = createHash('sha256').update(`${property}\0${json}`).digest('hex').slice(0, 16);
  const dir = join(CORPUS_DIR, target);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${hash}.json`);
  writeFileSync(file, JSON.stringify(entry, null, 2) + '\n');
  return file;
}

/** Every corpus entry, with its file. */
export function readCorpus(): Array<{ file: string; entry: CorpusEntry }> {
  const out: Array<{ file: string; entry: CorpusEntry }> = [];
  if (!existsSync(CORPUS_DIR)) return out;
  for (const t of readdirSync(CORPUS_DIR, { withFileTypes: true })) {
    if (!t.isDirectory()) continue;
    for (const f of readdirSync(join(CORPUS_DIR, t.name)).sort()) {
      if (!f.endsWith('.json')) continue;
      const file = join(CORPUS_DIR, t.name, f);
      out.push({ file, entry: JSON.parse(readFileSync(file, 'utf8')) as CorpusEntry });
    }
  }
  return out;
}

/** Byte strings as JSON-friendly arrays of numbers. */
export const bytes = (max = 200): fc.Arbitrary<number[]> => fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: max });

/** Split points for a buffer of `len` bytes: sorted, distinct, inside (0, len). */
export function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (buf.length === 0 ? 0 : c % (buf.length + 1))))].filter((c) => c > 0 && c < buf.length).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    out.push(buf.subarray(from, p));
    from = p;
  }
  out.push(buf.subarray(from));
  return out;
}
