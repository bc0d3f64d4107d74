/** Opens the storage backend the configuration names. */
import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../support/logger.js';
import { StorageError } from '../support/errors.js';
import { migrateToLatest } from './migrations.js';
import { openMysqlBackend, type Backend, type MysqlTuning } from './mysql.js';
import { loadShardMap, shardAddress, type ShardMap, type ShardSpec } from './shard-map.js';
import { ShardedStorage, type ShardedOptions } from './sharded.js';
import { openSqlite } from './sqlite.js';

type Log = Pick<Logger, 'info' | 'warn' | 'error'>;

export function openStorage(config: Config, log?: Log): Promise<ShardedStorage> {
  switch (config.storage.driver) {
    case 'sqlite': {
      const file = config.storage.sqlite.file === ':memory:' ? ':memory:' : resolve(config.dataDir, config.storage.sqlite.file);
      return openSqlite({ file, busyTimeoutMs: config.storage.sqlite.busyTimeout, log });
    }
    case 'mysql':
      return openMysqlStorage(loadShardMap(config.storage.mysql.shardMap), mysqlSettings(config), log);
  }
}

export interface MysqlSettings extends MysqlTuning, Omit<ShardedOptions, 'dialect' | 'log' | 'healthTimeoutMs'> {}

/** The mysql section of the configuration as the storage takes it. */
export function mysqlSettings(config: Config): MysqlSettings {
  const m = config.storage.mysql;
  return {
    poolSize: m.poolSize,
    connectTimeoutMs: m.connectTimeout,
    queryTimeoutMs: m.queryTimeout,
    retries: m.retries,
    retryBackoffMs: m.retryBackoff,
    breakerThreshold: m.breakerThreshold,
    breakerCooldownMs: m.breakerCooldown,
    healthIntervalMs: m.healthInterval,
    moveTimeoutMs: m.moveTimeout,
  };
}

/** Opens one shard's pool and brings its schema up to date (under MySQL's migration lock). */
export async function openMysqlShard(spec: ShardSpec, tuning: MysqlTuning): Promise<Backend> {
  const backend = openMysqlBackend(spec, tuning);
  // Migrations on a connection of their own, without the query timeout: waiting for the
  // migration lock while another node migrates is not a failure.
  const migrator = openMysqlBackend(spec, { ...tuning, poolSize: 2, queryTimeoutMs: 10 * 60_000 });
  try {
    await migrateToLatest(migrator.db, 'mysql');
  } catch (e) {
    await backend.close();
    const code = (e as { cause?: { code?: string } }).cause?.code;
    const hint = code === 'ER_BAD_DB_ERROR' ? ' (the database does not exist: run `parley shards init`)' : '';
    throw new StorageError(`shard ${spec.name} (${shardAddress(spec)}): ${e instanceof Error ? e.message : String(e)}${hint}`, false, { cause: e });
  } finally {
    await migrator.close();
  }
  return backend;
}

/** Sharded MySQL storage from a shard map. */
export function openMysqlStorage(map: ShardMap, s: MysqlSettings, log?: Log): Promise<ShardedStorage> {
  // An operation is a few queries (a transaction): allow a connect and two full query timeouts.
  const opts: ShardedOptions = { ...s, dialect: 'mysql', log, healthTimeoutMs: Math.min(s.queryTimeoutMs, 2000), opTimeoutMs: s.connectTimeoutMs + 2 * s.queryTimeoutMs };
  return ShardedStorage.fromMap(opts, map, (spec) => openMysqlShard(spec, s));
}
