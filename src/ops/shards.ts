/**
 * Shard administration on a running server: reload the shard map, move one user, drain a
 * shard. The admin HTTP API, SIGHUP and the `parley shards` command all come here, so
 * they behave alike.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../support/logger.js';
import { ConfigError } from '../support/errors.js';
import { loadShardMap } from '../storage/shard-map.js';
import type { MoveResult, ReloadResult, ShardedStorage } from '../storage/sharded.js';

export interface DrainResult {
  shard: string;
  moved: number;
  failed: Array<{ jid: string; error: string }>;
  /** Users left on the shard (0 once drained). */
  remaining: number;
}

function requireMysql(config: Config): void {
  if (config.storage.driver !== 'mysql') throw new ConfigError('storage.driver', 'shards exist with the mysql driver only (this server runs on SQLite)');
}

/** Reads the shard map file again and applies it. A bad file changes nothing. */
export async function reloadShards(config: Config, storage: ShardedStorage): Promise<ReloadResult> {
  requireMysql(config);
  return storage.reload(loadShardMap(config.storage.mysql.shardMap));
}

/** Moves one user (bare JID "name@host") to a shard, online. */
export async function moveUser(config: Config, storage: ShardedStorage, jid: string, shard: string): Promise<MoveResult> {
  requireMysql(config);
  const at = jid.lastIndexOf('@');
  if (at <= 0) throw new ConfigError('jid', `"${jid}" is not a bare JID`);
  return storage.moveUser(jid.slice(at + 1), jid.slice(0, at), shard);
}

/**
 * Moves every user off a draining shard to where the ring puts them, one at a time (each
 * with its own short freeze). The shard must be marked `draining: true` in the map (and
 * the map reloaded), so no new user lands on it meanwhile.
 */
export async function drainShard(config: Config, storage: ShardedStorage, shard: string, log?: Pick<Logger, 'info' | 'warn'>): Promise<DrainResult> {
  requireMysql(config);
  const st = storage.status().find((s) => s.name === shard);
  if (!st) throw new ConfigError('shard', `no shard "${shard}" (shards: ${storage.shardNames.join(', ')})`);
  if (!st.draining) throw new ConfigError('shard', `shard ${shard} is not draining: set "draining: true" for it in the shard map and reload first`);
  const result: DrainResult = { shard, moved: 0, failed: [], remaining: 0 };
  // Collect first: moving while paging would shift the pages.
  const users: Array<{ host: string; username: string }> = [];
  for await (const page of storage.usersOn(shard)) users.push(...page);
  for (const u of users) {
    if (storage.placeOf(u.host, u.username) !== shard) continue; // an orphan copy
    const target = storage.ringPlaceOf(u.host, u.username);
    try {
      const r = await storage.moveUser(u.host, u.username, target);
      if (r.moved) result.moved++;
    } catch (e) {
      result.failed.push({ jid: `${u.username}@${u.host}`, error: e instanceof Error ? e.message : String(e) });
    }
  }
  for await (const page of storage.usersOn(shard)) result.remaining += page.filter((u) => storage.placeOf(u.host, u.username) === shard).length;
  log?.info({ ...result, failed: result.failed.length }, 'shard drain done');
  return result;
}
