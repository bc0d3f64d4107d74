/** Opens the storage backend the configuration names. */
import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../support/logger.js';
import { StorageError } from '../support/errors.js';
import { composeSchema, migrateToLatest, type SchemaPart } from './migrations.js';
import { openMysqlBackend, type Backend, type MysqlTuning } from './mysql.js';
import { loadShardMap, shardAddress, type ShardMap, type ShardSpec } from './shard-map.js';
import { ShardedStorage, type ShardedOptions } from './sharded.js';
import { openSqlite } from './sqlite.js';

type Log = Pick<Logger, 'info' | 'warn' | 'error'>;

/**
 * Opens the configured storage and brings its schema up to date: the storage's own
 * tables and those of `schema`, the modules' parts. Pass every module's part (the
 * composition root passes `MODULE_SCHEMAS`), not only the loaded modules': a database
 * that ran a module's migrations refuses to open without them, and a move between shards
 * carries only the tables it is told of.
 *
 * @example
 * const storage = await openStorage(config, MODULE_SCHEMAS, logs.for('storage'));
 */
export function openStorage(config: Config, schema: readonly SchemaPart[], log?: Log): Promise<ShardedStorage> {
  switch (config.storage.driver) {
    case 'sqlite': {
      const file = config.storage.sqlite.file === ':memory:' ? ':memory:' : resolve(config.dataDir, config.storage.sqlite.file);
      return openSqlite({ file, busyTimeoutMs: config.storage.sqlite.busyTimeout, log, schema });
    }
    case 'mysql':
      return openMysqlStorage(loadShardMap(config.storage.mysql.shardMap), mysqlSettings(config), schema, log);
  }
}

export interface MysqlSettings extends MysqlTuning, Omit<ShardedOptions, 'dialect' | 'log' | 'healthTimeoutMs' | 'userTables'> {}

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
export async function openMysqlShard(spec: ShardSpec, tuning: MysqlTuning, schema: readonly SchemaPart[]): Promise<Backend> {
  const composed = composeSchema(schema);
  const backend = openMysqlBackend(spec, tuning);
  // Migrations on a connection of their own, without the query timeout: waiting for the
  // migration lock while another node migrates is not a failure.
  const migrator = openMysqlBackend(spec, { ...tuning, poolSize: 2, queryTimeoutMs: 10 * 60_000 });
  try {
    await migrateToLatest(migrator.db, 'mysql', composed);
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
export function openMysqlStorage(map: ShardMap, s: MysqlSettings, schema: readonly SchemaPart[], log?: Log): Promise<ShardedStorage> {
  const { userTables } = composeSchema(schema);
  // An operation is a few queries (a transaction): allow a connect and two full query timeouts.
  const opts: ShardedOptions = { ...s, dialect: 'mysql', log, userTables, healthTimeoutMs: Math.min(s.queryTimeoutMs, 2000), opTimeoutMs: s.connectTimeoutMs + 2 * s.queryTimeoutMs };
  return ShardedStorage.fromMap(opts, map, (spec) => openMysqlShard(spec, s, schema));
}
