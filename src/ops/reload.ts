/**
 * Live reload (SIGHUP, `parley reload`, `POST /admin/v1/reload`): the config file the
 * server was started with is read and validated again, and what can change while running
 * is applied:
 *
 *   limits.*              copied into the live `core.config.limits` object (read at use time)
 *   a module's live keys  the same, in its section (offline.maxPerUser: `live` in its options.ts)
 *   log.level, log.modules  the level of every part's logger
 *   the shard map         read again from its file (storage.driver mysql)
 *
 * A file that does not validate (or a shard map that does not) changes nothing and the
 * result says why. Keys that changed but only take effect at startup (listeners, storage,
 * domain, ...) are listed as needing a restart; they are not applied.
 */
import type { ServerCore } from '../core/server.js';
import type { Config } from '../config/schema.js';
import type { ConfigSchema } from '../config/schema.js';
import { loadConfigFile } from '../config/load.js';
import { join, type Field, type ObjectField, type Shape } from '../config/schema-dsl.js';
import { ConfigError, ParleyError } from '../support/errors.js';
import { XmppError } from '../xmpp/errors.js';
import { loadShardMap } from '../storage/shard-map.js';
import type { ReloadResult as ShardReloadResult, ShardedStorage } from '../storage/sharded.js';

/** Limits read once at startup (sizes of caches made then): changing them needs a restart. */
const LIMITS_FIXED_AT_START = new Set(['limits.plainLoginCache', 'limits.plainLoginCacheTtl']);

export interface ConfigReloadResult {
  ok: boolean;
  /** The file read. */
  file: string | null;
  /** Why nothing was changed (ok false). */
  error?: string;
  /** The key the error is about, when there is one. */
  key?: string;
  /** Changed keys now in force. */
  applied: string[];
  /** Changed keys that take effect only after a restart (not applied). */
  restartNeeded: string[];
  /** The shard map reload (mysql), when there was one. */
  shards?: ShardReloadResult;
}

/** Key paths of the leaves of the schema (a record such as log.modules is one leaf). */
function leaves(f: Field<unknown>, path = ''): string[] {
  if (f.kind !== 'object') return [path];
  const o = f as ObjectField<Shape>;
  return Object.keys(o.shape).flatMap((k) => leaves(o.shape[k]!, join(path, k)));
}

function get(c: unknown, path: string): unknown {
  let v: unknown = c;
  for (const k of path.split('.')) v = v === undefined || v === null ? undefined : (v as Record<string, unknown>)[k];
  return v;
}

/** The leaf keys whose values differ between two configurations. */
export function changedKeys(schema: ConfigSchema, a: Config, b: Config): string[] {
  return leaves(schema.root).filter((k) => JSON.stringify(get(a, k)) !== JSON.stringify(get(b, k)));
}

function isLive(schema: ConfigSchema, key: string): boolean {
  if (key.startsWith('limits.')) return !LIMITS_FIXED_AT_START.has(key);
  return schema.live.has(key) || key === 'log.level' || key === 'log.modules';
}

export interface Reloader {
  /** Reads the config file again and applies what can change live. Never throws for a bad file. */
  reload(): Promise<ConfigReloadResult>;
}

/**
 * The reloader of a running server. `file` is the config file it was started with
 * (undefined: built-in defaults, nothing to re-read). Reloads run one at a time.
 */
export function configReloader(core: ServerCore, storage: ShardedStorage, file: string | undefined, schema: ConfigSchema): Reloader {
  let running: Promise<unknown> = Promise.resolve();
  const log = core.logs.for('admin');
  return {
    reload() {
      const run = running.then(() => reloadOnce(core, storage, file, schema));
      running = run.catch(() => undefined);
      return run.then((r) => {
        if (r.ok) log.info({ file: r.file, applied: r.applied, restartNeeded: r.restartNeeded, shards: r.shards }, 'configuration reloaded');
        else log.warn({ file: r.file, error: r.error, key: r.key }, 'configuration reload refused; nothing changed');
        return r;
      });
    },
  };
}

async function reloadOnce(core: ServerCore, storage: ShardedStorage, file: string | undefined, schema: ConfigSchema): Promise<ConfigReloadResult> {
  if (file === undefined) {
    return { ok: false, file: null, error: 'the server was started without a config file: there is nothing to read again', applied: [], restartNeeded: [] };
  }
  let next: Config;
  try {
    next = loadConfigFile(file, schema).config;
  } catch (e) {
    if (e instanceof ConfigError) return { ok: false, file, error: e.message, key: e.path || undefined, applied: [], restartNeeded: [] };
    throw e;
  }
  const live = core.config;
  const changed = changedKeys(schema, live, next);
  const applied = changed.filter((k) => isLive(schema, k));
  const restartNeeded = changed.filter((k) => !isLive(schema, k));
  // The shard map first: a bad map (or a reload the storage refuses) leaves everything as it was.
  let shards: ShardReloadResult | undefined;
  if (live.storage.driver === 'mysql' && next.storage.driver === 'mysql') {
    try {
      shards = await storage.reload(loadShardMap(live.storage.mysql.shardMap));
    } catch (e) {
      if (e instanceof ParleyError || e instanceof XmppError) return { ok: false, file, error: `shard map reload failed (${live.storage.mysql.shardMap}); the map in force is kept: ${e.message}`, key: e instanceof ConfigError ? e.path || undefined : undefined, applied: [], restartNeeded: [] };
      throw e;
    }
  }
  // In place: the parts that enforce limits hold the object, not a copy.
  for (const k of applied) {
    if (k.startsWith('limits.')) {
      const name = k.slice('limits.'.length) as keyof Config['limits'];
      (live.limits as Record<string, unknown>)[name] = next.limits[name];
    }
  }
  // A module's live keys, in place in its section (the module holds the section object).
  for (const k of applied) {
    if (!schema.live.has(k)) continue;
    const dot = k.lastIndexOf('.');
    const section = get(live, k.slice(0, dot));
    if (section !== null && typeof section === 'object') (section as Record<string, unknown>)[k.slice(dot + 1)] = get(next, k);
  }
  if (applied.includes('log.level') || applied.includes('log.modules')) {
    live.log.level = next.log.level;
    live.log.modules = next.log.modules;
    core.logs.configure({ level: next.log.level, modules: next.log.modules });
  }
  return { ok: true, file, applied, restartNeeded, ...(shards ? { shards } : {}) };
}
