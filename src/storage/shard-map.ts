/**
 * The shard map: which MySQL databases hold users' data. It lives in its own YAML file
 * (config key `storage.mysql.shardMap`) so it can change while Parley runs
 * (`parley shards reload`, SIGHUP, the admin API). A bad file names the key and the
 * problem, and a reload with a bad file keeps the map in force.
 *
 * @example
 * # shards.yaml
 * directory: s1            # the shard that keeps the per-user placement directory
 * defaults: { host: 127.0.0.1, port: 3306, user: parley, password: secret }
 * shards:
 *   s1: { database: parley_s1 }
 *   s2: { database: parley_s2, host: 10.0.0.12 }
 *   s3: { database: parley_s3, draining: true }   # takes no new users
 */
import { ConfigError } from '../support/errors.js';
import { bool, int, obj, str } from '../config/schema-dsl.js';
import { readYamlFile } from '../config/load.js';

export interface ShardSpec {
  name: string;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** Share of new users on the hash ring (0: none). */
  weight: number;
  /** Takes no new users; its users stay (pinned) until moved off. */
  draining: boolean;
}

export interface ShardMap {
  /** The shard holding the placement directory. */
  directory: string;
  shards: ShardSpec[];
}

const SHARD_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const DB_NAME = /^[A-Za-z0-9_$]{1,64}$/;

const connection = {
  host: str({ doc: 'database server host', default: '127.0.0.1', minLength: 1 }),
  port: int({ doc: 'database server port', default: 3306, min: 1, max: 65535 }),
  user: str({ doc: 'database user', default: 'root', minLength: 1 }),
  password: str({ doc: 'database password', default: '' }),
};
const defaultsSchema = obj(connection, 'connection settings every shard inherits');
const shardSchema = obj(
  {
    ...connection,
    database: str({ doc: 'database (schema) name', default: '', pattern: DB_NAME, patternDoc: 'a database name of letters, digits, _ and $' }),
    weight: int({ doc: 'share of new users', default: 1, min: 0, max: 1000 }),
    draining: bool({ doc: 'take no new users', default: false }),
  },
  'one shard',
);

/** Validates a parsed shard map; `source` names the file in errors. */
export function parseShardMap(input: unknown, source = 'shard map'): ShardMap {
  const at = (path: string) => `${source}: ${path}`;
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new ConfigError(source, 'must be a mapping with "directory" and "shards"');
  const raw = input as Record<string, unknown>;
  for (const k of Object.keys(raw)) {
    if (!['directory', 'defaults', 'shards'].includes(k)) throw new ConfigError(at(k), 'unknown key (known keys here: directory, defaults, shards)');
  }
  const defaults = defaultsSchema.parse(raw.defaults, at('defaults'));
  const shardsRaw = raw.shards;
  if (shardsRaw === null || typeof shardsRaw !== 'object' || Array.isArray(shardsRaw) || Object.keys(shardsRaw).length === 0) {
    throw new ConfigError(at('shards'), 'must map at least one shard name to its settings');
  }
  const shards: ShardSpec[] = [];
  const seenDb = new Map<string, string>();
  for (const [name, value] of Object.entries(shardsRaw as Record<string, unknown>)) {
    const path = at(`shards.${name}`);
    if (!SHARD_NAME.test(name)) throw new ConfigError(path, 'a shard name is 1 to 64 letters, digits, _ or -');
    if (value !== null && (typeof value !== 'object' || Array.isArray(value))) throw new ConfigError(path, 'must be a mapping of keys');
    const merged = { ...defaults, ...((value ?? {}) as Record<string, unknown>) };
    const spec = shardSchema.parse(merged, path);
    if (spec.database === '') throw new ConfigError(`${path}.database`, 'is required');
    const where = `${spec.host}:${spec.port}/${spec.database}`;
    const other = seenDb.get(where);
    if (other !== undefined) throw new ConfigError(`${path}.database`, `${where} is already shard ${other}`);
    seenDb.set(where, name);
    shards.push({ name, ...spec });
  }
  if (!shards.some((s) => s.weight > 0 && !s.draining)) throw new ConfigError(at('shards'), 'at least one shard must take new users (weight above 0, not draining)');
  const directory = raw.directory ?? shards[0]!.name;
  if (typeof directory !== 'string' || !shards.some((s) => s.name === directory)) {
    throw new ConfigError(at('directory'), `must name one of the shards (${shards.map((s) => s.name).join(', ')})`);
  }
  return { directory, shards };
}

/** Reads and validates a shard map file. */
export function loadShardMap(file: string): ShardMap {
  return parseShardMap(readYamlFile(file, 'storage.mysql.shardMap'), file);
}

/** host:port/database, for logs and status (never the password). */
export function shardAddress(s: Pick<ShardSpec, 'host' | 'port' | 'database'>): string {
  return `${s.host}:${s.port}/${s.database}`;
}

/** True when two specs reach the same database the same way. */
export function sameConnection(a: ShardSpec, b: ShardSpec): boolean {
  return a.host === b.host && a.port === b.port && a.user === b.user && a.password === b.password && a.database === b.database;
}
