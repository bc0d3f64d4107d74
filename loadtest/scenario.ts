/**
 * A load scenario: who logs in, over what, how fast, and what they do. Read from a YAML
 * file (`--scenario FILE`) and/or flags; flags win. Every key is checked, and a bad one
 * is reported with its name.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export interface TransportMix {
  tcp: number;
  bosh: number;
  websocket: number;
}

export interface Scenario {
  /** A name for the report. */
  name: string;
  /** The server: one address, ports per transport. */
  host: string;
  domain: string;
  tcpPort: number;
  httpPort: number;
  boshPath: string;
  wsPath: string;
  /** Test users: prefix + index, first..first+users-1, all with one password. */
  users: number;
  prefix: string;
  first: number;
  password: string;
  /** SASL mechanism: PLAIN (the servers allow it in plaintext on loopback) or SCRAM-SHA-1. */
  mechanism: 'PLAIN' | 'SCRAM-SHA-1';
  /** Share of users per transport (weights). */
  transports: TransportMix;
  /** Logins per second, all workers together. */
  loginRate: number;
  /**
   * At most this many logins in progress at once, all workers together (0: no limit).
   * With it, a server slower than `loginRate` is measured at its own pace instead of
   * being buried under a queue of logins that time out.
   */
  loginConcurrency: number;
  /** Friends per user (rosters must exist: see provisioning). */
  rosterSize: number;
  /** Presence changes per user per minute. */
  presencePerMinute: number;
  /** Messages per user per minute, to random friends (ignored in pairs mode). */
  messagesPerMinute: number;
  /** Closed loop: `pairs` senders each keep `window` messages in flight to their receiver. */
  pairs: number;
  window: number;
  /** Bytes of text in each message body besides the timestamp. */
  bodySize: number;
  /** Milliseconds. */
  warmup: number;
  duration: number;
  drain: number;
  /** All online users (or `reconnectUsers`) drop and log in again, spread over `reconnectWithin` ms, at `reconnectAt` ms into the run. */
  reconnectAt: number;
  reconnectWithin: number;
  reconnectUsers: number;
  /** Generator processes and source addresses (127.0.0.2, .3, ...). */
  workers: number;
  sourceAddresses: number;
  /** Server processes to sample from /proc (RSS, CPU). */
  serverPids: number[];
  /** BOSH: hold and wait asked for. */
  boshWait: number;
  /** TCP and WebSocket clients enable stream management (XEP-0198 acks) where offered. */
  streamManagement: boolean;
  /** Output files ('' = none). */
  json: string;
  html: string;
  /** Print a progress line every second. */
  progress: boolean;
}

export const DEFAULTS: Scenario = {
  name: 'load',
  host: '127.0.0.1',
  domain: 'localhost',
  tcpPort: 5222,
  httpPort: 5280,
  boshPath: '/http-bind',
  wsPath: '/xmpp-websocket',
  users: 100,
  prefix: 'user',
  first: 1,
  password: 'password',
  mechanism: 'PLAIN',
  transports: { tcp: 1, bosh: 0, websocket: 0 },
  loginRate: 200,
  loginConcurrency: 0,
  rosterSize: 0,
  presencePerMinute: 0,
  messagesPerMinute: 1,
  pairs: 0,
  window: 1,
  bodySize: 40,
  warmup: 2000,
  duration: 10_000,
  drain: 5000,
  reconnectAt: 0,
  reconnectWithin: 3000,
  reconnectUsers: 0,
  workers: 2,
  sourceAddresses: 4,
  serverPids: [],
  boshWait: 60,
  streamManagement: false,
  json: '',
  html: '',
  progress: true,
};

export class ScenarioError extends Error {
  readonly code = 'LOADTEST_SCENARIO';
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`scenario: ${key}: ${reason}`);
    this.name = 'ScenarioError';
  }
}

const DURATION_KEYS = new Set(['warmup', 'duration', 'drain', 'reconnectAt', 'reconnectWithin']);

/** "30s", "500ms", "2m" or a number of milliseconds. */
function duration(key: string, v: unknown): number {
  if (typeof v === 'number' && v >= 0) return v;
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(v.trim()) : null;
  if (!m) throw new ScenarioError(key, `must be a duration like "30s" or "500ms", got ${JSON.stringify(v)}`);
  return Math.round(Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000));
}

/** "tcp:1,bosh:2" or { tcp: 1, bosh: 2 }. */
function transports(v: unknown): TransportMix {
  const mix: TransportMix = { tcp: 0, bosh: 0, websocket: 0 };
  const entries: Array<[string, unknown]> =
    typeof v === 'string' ? v.split(',').map((p) => p.split(':') as [string, string]).map(([k, n]) => [k.trim(), n === undefined ? 1 : Number(n)]) : Object.entries(v as object);
  for (const [k, n] of entries) {
    if (!(k in mix)) throw new ScenarioError('transports', `unknown transport "${k}" (tcp, bosh, websocket)`);
    if (typeof n !== 'number' || !(n >= 0)) throw new ScenarioError('transports', `weight of ${k} must be a number ≥ 0`);
    mix[k as keyof TransportMix] = n;
  }
  if (mix.tcp + mix.bosh + mix.websocket <= 0) throw new ScenarioError('transports', 'at least one transport needs a weight');
  return mix;
}

/** Builds a scenario from a plain object (YAML or flags), checking every key. */
export function makeScenario(input: Record<string, unknown>, base: Scenario = DEFAULTS): Scenario {
  const s: Scenario = { ...base, transports: { ...base.transports }, serverPids: [...base.serverPids] };
  for (const [key, raw] of Object.entries(input)) {
    if (raw === undefined) continue;
    if (!(key in DEFAULTS)) throw new ScenarioError(key, `unknown key (known: ${Object.keys(DEFAULTS).join(', ')})`);
    const k = key as keyof Scenario;
    if (k === 'transports') s.transports = transports(raw);
    else if (k === 'serverPids') {
      const list = typeof raw === 'string' ? raw.split(',') : Array.isArray(raw) ? raw : [raw];
      s.serverPids = list.map((p) => Number(p));
      if (s.serverPids.some((p) => !Number.isInteger(p) || p <= 0)) throw new ScenarioError(key, 'must be process ids');
    } else if (DURATION_KEYS.has(k)) (s as unknown as Record<string, number>)[k] = duration(k, raw);
    else if (typeof DEFAULTS[k] === 'number') {
      const n = typeof raw === 'string' ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw new ScenarioError(key, `must be a number ≥ 0, got ${JSON.stringify(raw)}`);
      (s as unknown as Record<string, number>)[k] = n;
    } else if (typeof DEFAULTS[k] === 'boolean') {
      (s as unknown as Record<string, boolean>)[k] = raw === true || raw === 'true';
    } else {
      if (typeof raw !== 'string' && typeof raw !== 'number') throw new ScenarioError(key, 'must be a string');
      (s as unknown as Record<string, string>)[k] = String(raw);
    }
  }
  if (s.mechanism !== 'PLAIN' && s.mechanism !== 'SCRAM-SHA-1') throw new ScenarioError('mechanism', 'PLAIN or SCRAM-SHA-1');
  if (!Number.isInteger(s.users) || s.users < 1) throw new ScenarioError('users', 'must be a whole number ≥ 1');
  if (s.pairs * 2 > s.users) throw new ScenarioError('pairs', `needs ${s.pairs * 2} users, the scenario has ${s.users}`);
  if (s.rosterSize >= s.users) throw new ScenarioError('rosterSize', 'must be smaller than the number of users');
  if (s.workers < 1 || !Number.isInteger(s.workers)) throw new ScenarioError('workers', 'must be a whole number ≥ 1');
  if (s.loginRate <= 0) throw new ScenarioError('loginRate', 'must be > 0');
  if (s.window < 1) throw new ScenarioError('window', 'must be ≥ 1');
  return s;
}

export function loadScenarioFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ScenarioError('scenario', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const data: unknown = parseYaml(text);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new ScenarioError('scenario', `${file} must be a mapping of keys`);
  return data as Record<string, unknown>;
}

/**
 * The friends of user i (0-based among `users`): its neighbours i±1 .. i±size/2, so
 * friendship is mutual (an odd size is rounded down).
 */
export function friendsOf(i: number, users: number, size: number): number[] {
  const half = Math.floor(size / 2);
  const out: number[] = [];
  for (let d = 1; d <= half; d++) out.push((i + d) % users, (i - d + users) % users);
  return out;
}

/** The transport of user i, spreading the mix evenly over the indices. */
export function transportOf(i: number, mix: TransportMix): keyof TransportMix {
  const total = mix.tcp + mix.bosh + mix.websocket;
  const x = ((i * 0.6180339887) % 1) * total; // golden-ratio spread: even in every prefix
  if (x < mix.tcp) return 'tcp';
  if (x < mix.tcp + mix.bosh) return 'bosh';
  return 'websocket';
}
