/**
 * A small parser of the Prometheus text exposition format (version 0.0.4), enough for
 * the tests to check names, types, labels and values of /metrics.
 */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  type: string;
  help: string;
  samples: PromSample[];
}

export function parseProm(text: string): Map<string, PromFamily> {
  const families = new Map<string, PromFamily>();
  const familyOf = (sample: string): PromFamily | undefined => {
    if (families.has(sample)) return families.get(sample);
    for (const suffix of ['_bucket', '_sum', '_count']) {
      if (sample.endsWith(suffix)) {
        const f = families.get(sample.slice(0, -suffix.length));
        if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
      }
    }
    return undefined;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (m) {
      const f = families.get(m[2]!) ?? { name: m[2]!, type: 'untyped', help: '', samples: [] };
      if (m[1] === 'HELP') f.help = m[3]!;
      else f.type = m[3]!;
      families.set(f.name, f);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const raw = m[3]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    const f = familyOf(m[1]!);
    if (!f) throw new Error(`sample ${m[1]} has no # TYPE line before it`);
    f.samples.push({ name: m[1]!, labels, value });
  }
  return families;
}

/** The value of one sample (name and exactly matching labels, extra labels ignored when `partial`). */
export function sampleValue(fams: Map<string, PromFamily>, family: string, labels: Record<string, string> = {}, sample = family): number | undefined {
  const f = fams.get(family);
  if (!f) return undefined;
  const s = f.samples.find((x) => x.name === sample && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}

/** Sum of a family's samples (named `sample`) matching the labels given. */
export function sampleSum(fams: Map<string, PromFamily>, family: string, labels: Record<string, string> = {}, sample = family): number {
  const f = fams.get(family);
  if (!f) return NaN;
  return f.samples.filter((x) => x.name === sample && Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);
}
