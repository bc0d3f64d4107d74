/**
 * Moves between shards, table by table (src/storage/mover.ts), over the tables the
 * storage and every module declare: the declared per-user tables cover the schema, and
 * a bulk table (the archive) is brought up to date under the freeze.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MODULE_SCHEMAS } from '../src/modules/index.js';
import { composeSchema } from '../src/storage/migrations.js';
import { openSqlite } from '../src/storage/sqlite.js';
import { copyBulk, dropMovedUser, syncBulk } from '../src/storage/mover.js';

const USER_TABLES = composeSchema(MODULE_SCHEMAS).userTables;
const ARCHIVE = USER_TABLES.find((t) => t.table === 'archive')!;

test('USER_TABLES lists every table with host and username columns except shard_directory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-mover-'));
  try {
    const storage = await openSqlite({ file: join(dir, 'm.db'), busyTimeoutMs: 1000, schema: MODULE_SCHEMAS });
    try {
      const [tables] = await storage.forEachShard('x', (db) => db.introspection.getTables());
      const perUser = tables!
        .filter((t) => t.columns.some((c) => c.name === 'host') && t.columns.some((c) => c.name === 'username'))
        .map((t) => t.name)
        .filter((n) => n !== 'shard_directory')
        .sort();
      assert.ok(perUser.length >= 10, `found ${perUser.join(', ')}`);
      const listed = USER_TABLES.map((t) => t.table as string).sort();
      assert.deepEqual(listed, perUser, 'a per-user table is missing from USER_TABLES (moves would lose its rows) or listed without being one');
      // Each paging key is a real column of its table.
      for (const t of USER_TABLES) {
        const cols = tables!.find((x) => x.name === t.table)!.columns.map((c) => c.name);
        assert.ok(cols.includes(t.key), `${t.table}.${t.key}`);
        if (t.dropId) assert.ok(cols.includes('id'), `${t.table} has an id to drop`);
      }
    } finally {
      await storage.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('syncArchive: a late row and a deleted one that leave the count alike are both found; the tail is added', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-mover-'));
  const a = await openSqlite({ file: join(dir, 'a.db'), busyTimeoutMs: 1000, schema: MODULE_SCHEMAS });
  const b = await openSqlite({ file: join(dir, 'b.db'), busyTimeoutMs: 1000, schema: MODULE_SCHEMAS });
  try {
    const H = 'x.test';
    const row = (id: number, user = 'u') => ({ host: H, username: user, id, with_jid: 'p@x.test', with_resource: '', direction: 'in', stanza: `<m n='${id}'/>`, created_at: id });
    const ids = (s: typeof a, user = 'u') =>
      s.forUser(H, user, 'ids', (db) => db.selectFrom('archive').select('id').where('username', '=', user).orderBy('id').execute()).then((r) => r.map((x) => Number(x.id)));
    await a.forUser(H, 'u', 'fill', (db) => db.insertInto('archive').values([1, 2, 4, 5, 6, 7, 8, 9, 10].map((i) => row(i))).execute());
    await a.forUser(H, 'v', 'fill', (db) => db.insertInto('archive').values(row(5, 'v')).execute());
    await b.forUser(H, 'u', 'stale', (db) => db.insertInto('archive').values(row(99)).execute());
    const [src] = await a.forEachShard('db', async (db) => db);
    const [dst] = await b.forEachShard('db', async (db) => db);
    // Step 1: the live copy (after clearing what an earlier attempt left).
    await dropMovedUser(dst!, H, 'u', USER_TABLES);
    const pre = await copyBulk(src!, dst!, ARCHIVE, H, 'u', null);
    assert.deepEqual(pre, { rows: 9, lastId: 10 });
    // Meanwhile on the source: a message committed late with a lower id, one undone, two new.
    await a.forUser(H, 'u', 'late', (db) => db.insertInto('archive').values([row(3), row(11), row(12)]).execute());
    await a.forUser(H, 'u', 'undo', (db) => db.deleteFrom('archive').where('username', '=', 'u').where('id', '=', 7).execute());
    // Step 2, under the freeze.
    const changed = await syncBulk(src!, dst!, ARCHIVE, H, 'u', pre.lastId);
    assert.equal(changed, 4, 'one late row, one deleted row, two new rows');
    assert.deepEqual(await ids(b), await ids(a));
    assert.deepEqual(await ids(b), [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]);
    assert.deepEqual(await ids(b, 'v'), [], "another user's rows are not copied");
    // Step 3: the source forgets the user, not the neighbour.
    assert.equal(await dropMovedUser(src!, H, 'u', USER_TABLES), 11);
    assert.deepEqual(await ids(a, 'v'), [5]);
  } finally {
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
