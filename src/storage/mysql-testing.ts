/**
 * Throw-away MySQL shards for tests and benchmarks: databases named `parley_t_<random>_<n>`
 * on a server (the local MariaDB by default), with a shard map over them and a `drop()`
 * that removes them again. Kept in src/ so the conformance suite, the integration tests
 * and the benchmarks share it.
 */
import { randomBytes } from 'node:crypto';
import { createDatabase, serverQuery, type MysqlTuning } from './mysql.js';
import type { ShardMap, ShardSpec } from './shard-map.js';

export const TEST_MYSQL = {
  host: process.env.PARLEY_TEST_MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.PARLEY_TEST_MYSQL_PORT ?? 3306),
  user: process.env.PARLEY_TEST_MYSQL_USER ?? 'root',
  password: process.env.PARLEY_TEST_MYSQL_PASSWORD ?? '',
};

export const TEST_TUNING: MysqlTuning = { connectTimeoutMs: 2000, queryTimeoutMs: 5000, poolSize: 4 };

export interface TestShards {
  map: ShardMap;
  specs: ShardSpec[];
  drop(): Promise<void>;
}

/** Creates `n` empty databases (shards s1..sn) on a server; the first holds the directory. */
export async function createTestShards(n: number, server: Partial<typeof TEST_MYSQL> = {}): Promise<TestShards> {
  const tag = randomBytes(4).toString('hex');
  const conn = { ...TEST_MYSQL, ...server };
  const specs: ShardSpec[] = Array.from({ length: n }, (_, i) => ({ name: `s${i + 1}`, ...conn, database: `parley_t_${tag}_${i + 1}`, weight: 1, draining: false }));
  for (const s of specs) await createDatabase(s, TEST_TUNING);
  return {
    map: { directory: 's1', shards: specs },
    specs,
    async drop() {
      for (const s of specs) await serverQuery(s, TEST_TUNING, `DROP DATABASE IF EXISTS \`${s.database}\``).catch(() => {});
    },
  };
}

/** A spec for a database on another server (a second mariadbd, a proxy port). */
export function specOn(spec: ShardSpec, host: string, port: number): ShardSpec {
  return { ...spec, host, port };
}
