/**
 * A small schema language for the configuration: every key has a validator, a default
 * and a doc line. Validation errors name the key's path and the reason (ConfigError).
 *
 * @example
 * const server = obj({ port: int({ min: 0, max: 65535, default: 5222, doc: 'TCP port' }) });
 * const value = server.parse({ port: 5223 }, 'listen.c2s'); // { port: 5223 }
 */
import { ConfigError } from '../support/errors.js';

export interface Field<T> {
  readonly kind: 'field' | 'object';
  readonly doc: string;
  /** The value used when the key is absent. */
  readonly default: T;
  /** Validates and converts a value read from YAML. `path` names the key for errors. */
  parse(value: unknown, path: string): T;
  /** A short type name for the generated reference. */
  readonly typeName: string;
  /** The default as written in YAML, when that differs from the parsed value ("30s"). */
  readonly defaultText?: string;
}

export type Infer<F> = F extends Field<infer T> ? T : never;

interface Common<T> {
  doc: string;
  default: T;
}

function field<T>(typeName: string, opts: Common<T>, parse: (v: unknown, path: string) => T): Field<T> {
  return { kind: 'field', doc: opts.doc, default: opts.default, typeName, parse };
}

export function str(opts: Common<string> & { pattern?: RegExp; patternDoc?: string; minLength?: number }): Field<string> {
  return field('string', opts, (v, path) => {
    if (typeof v !== 'string') throw new ConfigError(path, `must be a string, got ${describe(v)}`);
    if (opts.minLength !== undefined && v.length < opts.minLength) {
      throw new ConfigError(path, `must be at least ${opts.minLength} characters`);
    }
    if (opts.pattern && !opts.pattern.test(v)) throw new ConfigError(path, `must be ${opts.patternDoc ?? `like ${opts.pattern}`}`);
    return v;
  });
}

export function optionalStr(opts: { doc: string }): Field<string | undefined> {
  return field('string (optional)', { doc: opts.doc, default: undefined }, (v, path) => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw new ConfigError(path, `must be a string, got ${describe(v)}`);
    return v;
  });
}

export function int(opts: Common<number> & { min?: number; max?: number }): Field<number> {
  return field('integer', opts, (v, path) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new ConfigError(path, `must be an integer, got ${describe(v)}`);
    if (opts.min !== undefined && v < opts.min) throw new ConfigError(path, `must be at least ${opts.min}, got ${v}`);
    if (opts.max !== undefined && v > opts.max) throw new ConfigError(path, `must be at most ${opts.max}, got ${v}`);
    return v;
  });
}

export function bool(opts: Common<boolean>): Field<boolean> {
  return field('boolean', opts, (v, path) => {
    if (typeof v !== 'boolean') throw new ConfigError(path, `must be true or false, got ${describe(v)}`);
    return v;
  });
}

export function oneOf<const T extends string>(values: readonly T[], opts: Common<T>): Field<T> {
  return field(values.map((v) => `"${v}"`).join(' | '), opts, (v, path) => {
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      throw new ConfigError(path, `must be one of ${values.join(', ')}, got ${describe(v)}`);
    }
    return v as T;
  });
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration written as "30s", "250ms", "5m", "1h", "7d" (or a number of milliseconds). Parsed to milliseconds. */
export function duration(opts: Common<string> & { min?: string; max?: string }): Field<number> {
  const parseDuration = (v: unknown, path: string): number => {
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
    if (typeof v !== 'string') throw new ConfigError(path, `must be a duration like "30s", got ${describe(v)}`);
    const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/.exec(v.trim());
    if (!m) throw new ConfigError(path, `must be a duration like "250ms", "30s", "5m", "1h" or "7d", got "${v}"`);
    return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
  };
  const min = opts.min === undefined ? undefined : parseDuration(opts.min, 'schema');
  const max = opts.max === undefined ? undefined : parseDuration(opts.max, 'schema');
  return {
    kind: 'field',
    doc: opts.doc,
    default: parseDuration(opts.default, 'schema'),
    defaultText: opts.default,
    typeName: 'duration',
    parse(v, path) {
      const ms = parseDuration(v, path);
      if (min !== undefined && ms < min) throw new ConfigError(path, `must be at least ${opts.min}`);
      if (max !== undefined && ms > max) throw new ConfigError(path, `must be at most ${opts.max}`);
      return ms;
    },
  };
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1000, kib: 1024, mb: 1e6, mib: 1024 * 1024 };

/** A size in bytes written as 65536, "64KiB", "1MiB", "10kB". */
export function size(opts: Common<string | number> & { min?: number; max?: number }): Field<number> {
  const parseSize = (v: unknown, path: string): number => {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
    if (typeof v !== 'string') throw new ConfigError(path, `must be a size like "64KiB", got ${describe(v)}`);
    const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(v.trim());
    const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
    if (!m || unit === undefined) throw new ConfigError(path, `must be a size like 65536, "64KiB" or "1MiB", got "${v}"`);
    return Number(m[1]) * unit;
  };
  return {
    kind: 'field',
    doc: opts.doc,
    default: parseSize(opts.default, 'schema'),
    defaultText: String(opts.default),
    typeName: 'size',
    parse(v, path) {
      const n = parseSize(v, path);
      if (opts.min !== undefined && n < opts.min) throw new ConfigError(path, `must be at least ${opts.min} bytes`);
      if (opts.max !== undefined && n > opts.max) throw new ConfigError(path, `must be at most ${opts.max} bytes`);
      return n;
    },
  };
}

export function list<T>(item: Field<T>, opts: Common<T[]>): Field<T[]> & { readonly item: Field<T> } {
  const f = field(`list of ${item.typeName}`, opts, (v, path) => {
    if (!Array.isArray(v)) throw new ConfigError(path, `must be a list, got ${describe(v)}`);
    return v.map((e, i) => item.parse(e, `${path}[${i}]`));
  });
  return { ...f, item };
}

/** A mapping of names (matching `keyPattern`) to values of one kind, e.g. a level per module. */
export function record<T>(value: Field<T>, opts: Common<Record<string, T>> & { keyPattern: RegExp; keyDoc: string }): Field<Record<string, T>> {
  return field(`mapping of name → ${value.typeName}`, opts, (v, path) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(path, `must be a mapping of names, got ${describe(v)}`);
    const out: Record<string, T> = {};
    for (const [k, e] of Object.entries(v as Record<string, unknown>)) {
      if (!opts.keyPattern.test(k)) throw new ConfigError(join(path, k), `is not a valid name (${opts.keyDoc})`);
      out[k] = value.parse(e, join(path, k));
    }
    return out;
  });
}

export type Shape = Record<string, Field<unknown>>;
export type InferShape<S extends Shape> = { [K in keyof S]: Infer<S[K]> };

export interface ObjectField<S extends Shape> extends Field<InferShape<S>> {
  readonly shape: S;
}

/** An object with known keys. Unknown keys are an error; absent keys take their default. */
export function obj<S extends Shape>(shape: S, doc = ''): ObjectField<S> {
  const defaults = (): InferShape<S> => {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(shape)) out[k] = structuredClone(shape[k]!.default);
    return out as InferShape<S>;
  };
  return {
    kind: 'object',
    doc,
    shape,
    typeName: 'object',
    get default() {
      return defaults();
    },
    parse(v, path) {
      if (v === undefined || v === null) return defaults();
      if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(path, `must be a mapping of keys, got ${describe(v)}`);
      const input = v as Record<string, unknown>;
      for (const k of Object.keys(input)) {
        if (!Object.hasOwn(shape, k)) {
          const known = Object.keys(shape).join(', ');
          throw new ConfigError(join(path, k), `unknown key (known keys here: ${known})`);
        }
      }
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(shape)) {
        const f = shape[k]!;
        const raw = input[k];
        out[k] = raw === undefined ? structuredClone(f.default) : f.parse(raw, join(path, k));
      }
      return out as InferShape<S>;
    },
  };
}

/**
 * An object that is off when its key is absent (`undefined`), and has its keys' defaults
 * when present (`snmp: {}` turns the feature on with every default).
 */
export function optionalObj<S extends Shape>(shape: S, doc = ''): Field<InferShape<S> | undefined> & { readonly shape: S } {
  const inner = obj(shape, doc);
  return {
    kind: 'object',
    doc,
    shape,
    typeName: 'object (optional)',
    default: undefined,
    parse(v, path) {
      if (v === undefined) return undefined;
      return inner.parse(v, path);
    },
  };
}

export function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v.length > 40 ? v.slice(0, 40) + '…' : v}"`;
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- objects and lists are described above; what is left is a primitive
  return `${typeof v} ${String(v)}`;
}

/** Lines of a reference: `path (type, default): doc` for every key, depth first. */
export function describeSchema(f: Field<unknown>, path = ''): string[] {
  if (f.kind === 'object') {
    const o = f as ObjectField<Shape>;
    const lines: string[] = [];
    if (path && o.doc) lines.push(`- \`${path}\`: ${o.doc}`);
    for (const k of Object.keys(o.shape)) lines.push(...describeSchema(o.shape[k]!, join(path, k)));
    return lines;
  }
  const def = f.defaultText !== undefined ? JSON.stringify(f.defaultText) : f.default === undefined ? 'unset' : JSON.stringify(f.default);
  const line = `- \`${path}\` (${f.typeName}, default ${def}): ${f.doc}`;
  // A list of objects: each entry's keys, as `path[].key`.
  const item = (f as { item?: Field<unknown> }).item;
  if (item?.kind === 'object') return [line, ...describeSchema(item, `${path}[]`).filter((l) => !l.startsWith(`- \`${path}[]\`:`))];
  return [line];
}
