/**
 * shard-move: moving one user between two MySQL shards (`parley shards move`), by the
 * size of the user's archive: how long the user's writes are held, how long the whole
 * move takes, and what a user of the same shard waits meanwhile (the freeze is per user).
 * Runs on throw-away databases of the local MariaDB (PARLEY_TEST_MYSQL_* name another).
 */
import { openMysqlStorage } from '../src/storage/open.js';
import { MODULE_SCHEMAS } from '../src/modules/index.js';
import { createTestShards, TEST_TUNING } from '../src/storage/mysql-testing.js';
import { SqlUserStore } from '../src/auth/user-store-sql.js';
import { SqlArchiveStore } from '../src/modules/mam/store-sql.js';
import { makeCredentials } from '../src/auth/credentials.js';
import type { ArchiveEntry } from '../src/modules/mam/store.js';

export interface MoveFigure {
  archiveRows: number;
  rowsCopied: number;
  /** How long the user's writes were held. */
  frozenMs: number;
  /** The whole move (the live archive copy, the freeze, the old rows' deletion). */
  totalMs: number;
  rowsPerSecond: number;
  /** Longest single read of another user on the source shard during the move. */
  neighbourMaxMs: number;
}

const HOST = 'bench.test';
const STANZA = "<message xmlns='jabber:client' type='chat' from='a@bench.test/r' to='b@bench.test'><body>" + 'x'.repeat(120) + '</body></message>';

export async function shardMove(sizes: number[]): Promise<MoveFigure[]> {
  const shards = await createTestShards(2);
  const storage = await openMysqlStorage(shards.map, { ...TEST_TUNING, poolSize: 8, retries: 1, retryBackoffMs: 20, breakerThreshold: 5, breakerCooldownMs: 1000, healthIntervalMs: 0, moveTimeoutMs: 10_000 }, MODULE_SCHEMAS);
  try {
    const users = new SqlUserStore(storage);
    const archive = new SqlArchiveStore(storage);
    const creds = await makeCredentials('pw');
    const out: MoveFigure[] = [];
    let id = Date.now() * 1024;
    for (const size of sizes) {
      const name = `mover${size}`;
      await users.create(HOST, name, creds);
      // A neighbour on the same shard, read in a loop while the move runs.
      let neighbour = `n${size}`;
      for (let i = 0; storage.placeOf(HOST, neighbour) !== storage.placeOf(HOST, name); i++) neighbour = `n${size}_${i}`;
      await users.create(HOST, neighbour, creds);
      for (let i = 0; i < size; i += 1000) {
        const batch: ArchiveEntry[] = [];
        for (let j = i; j < Math.min(size, i + 1000); j++) batch.push({ id: ++id, with: 'b@bench.test', withResource: 'r', direction: j % 2 ? 'in' : 'out', stanza: STANZA, createdAt: Date.now() });
        await archive.append(HOST, name, batch);
      }
      const from = storage.placeOf(HOST, name);
      const to = storage.shardNames.find((s) => s !== from)!;
      let moving = true;
      let neighbourMaxMs = 0;
      const reads = (async () => {
        while (moving) {
          const t = performance.now();
          await users.exists(HOST, neighbour);
          neighbourMaxMs = Math.max(neighbourMaxMs, performance.now() - t);
        }
      })();
      const t0 = performance.now();
      const r = await storage.moveUser(HOST, name, to);
      const totalMs = performance.now() - t0;
      moving = false;
      await reads;
      out.push({ archiveRows: size, rowsCopied: r.rows, frozenMs: r.frozenMs, totalMs, rowsPerSecond: r.rows / (totalMs / 1000), neighbourMaxMs });
    }
    return out;
  } finally {
    await storage.close();
    await shards.drop();
  }
}
