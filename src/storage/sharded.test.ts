/**
 * The storage router on real MySQL shards (databases on the local MariaDB, made and
 * dropped by this file): placement, online moves of every per-user table, operations
 * held during a move, reloads that add, drain and remove shards, the migration lock,
 * and a shard that dies and comes back behind a TCP proxy.
 */
import { SqlLastActivityStore } from '../modules/last/store-sql.js';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { sql, type Kysely } from 'kysely';
import { makeCredentials } from '../auth/credentials.js';
import { SqlUserStore } from '../auth/user-store-sql.js';
import type { AccountCredentials } from '../auth/user-store.js';
import { parseConfig } from '../config/load.js';
import type { RosterItem } from '../modules/roster/api.js';
import { SqlArchiveStore } from '../modules/mam/store-sql.js';
import type { ArchiveEntry } from '../modules/mam/store.js';
import { SqlOfflineStore } from '../modules/offline/store-sql.js';
import { defaultConfig } from '../modules/pep/node-config.js';
import { SqlPepStore } from '../modules/pep/store-sql.js';
import { SqlPrivacyStore } from '../modules/privacy/store-sql.js';
import { SqlRosterStore } from '../modules/roster/store-sql.js';
import { SqlVcardStore } from '../modules/vcard/store-sql.js';
import { drainShard } from '../ops/shards.js';
import { ConfigError, StorageError } from '../support/errors.js';
import { countUserRows, USER_TABLES } from './mover.js';
import { createTestShards, TEST_MYSQL, TEST_TUNING, type TestShards } from './mysql-testing.js';
import { openMysqlStorage, type MysqlSettings } from './open.js';
import { HashRing } from './ring.js';
import type { Database } from './schema.js';
import type { ShardMap, ShardSpec } from './shard-map.js';
import type { ShardedStorage } from './sharded.js';
import { openSqlite } from './sqlite.js';
import { within } from '../../test/helpers/until.js';

const HOST = 'shards.test';
const SETTINGS: MysqlSettings = {
  ...TEST_TUNING,
  retries: 1,
  retryBackoffMs: 10,
  breakerThreshold: 3,
  // Long: only a health check closes the breaker in these tests, never a half-open trial.
  breakerCooldownMs: 60_000,
  healthIntervalMs: 0,
  moveTimeoutMs: 5000,
};
const PEP = defaultConfig(20);
const PEP_NODE = 'urn:test:node';

let fx: TestShards;
/** A storage over all three databases, for looking at (and emptying) each one directly. */
let inspect: ShardedStorage;
let creds: AccountCredentials;

before(async () => {
  fx = await createTestShards(3);
  inspect = await openMysqlStorage(fx.map, SETTINGS);
  creds = await makeCredentials('secret');
});

after(async () => {
  await inspect?.close();
  await fx?.drop();
});

const spec = (name: string, over: Partial<ShardSpec> = {}): ShardSpec => ({ ...fx.specs.find((s) => s.name === name)!, ...over });
const mapOf = (...shards: ShardSpec[]): ShardMap => ({ directory: 's1', shards });
const jid = (u: string) => `${u}@${HOST}`;

/** Opens a storage on emptied databases. */
async function openFresh(map: ShardMap): Promise<ShardedStorage> {
  await inspect.forEachShard('empty tables', async (db) => {
    for (const t of [...USER_TABLES.map((u) => u.table), 'shard_directory']) await sql`DELETE FROM ${sql.table(t)}`.execute(db);
  });
  return openMysqlStorage(map, SETTINGS);
}

/** Runs `fn` on every database, keyed by shard name. */
async function perShard<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<Map<string, T>> {
  const out = new Map<string, T>();
  await inspect.forEachShard('inspect', async (db, name) => void out.set(name, await fn(db)));
  return out;
}

const rowsOf = (u: string) => perShard((db) => countUserRows(db, HOST, u));
const usernamesOn = async (shard: string) =>
  (await perShard((db) => db.selectFrom('users').select('username').where('host', '=', HOST).execute())).get(shard)!.map((r) => r.username);
const directoryRows = async (u: string) =>
  (await perShard((db) => db.selectFrom('shard_directory').select('shard').where('host', '=', HOST).where('username', '=', u).execute())).get('s1')!;
const zeros = () => Object.fromEntries(USER_TABLES.map((t) => [t.table, 0]));
const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
/** The other of shards s1 and s2. */
const otherOf = (shard: string) => (shard === 's1' ? 's2' : 's1');

function rosterItem(contact: string, over: Partial<RosterItem> = {}): RosterItem {
  return { jid: contact, name: null, subscription: 'none', groups: [], askOut: false, askIn: false, askInStanza: null, approved: false, inRoster: true, ...over };
}

function archiveEntry(i: number): ArchiveEntry {
  const at = Date.UTC(2026, 0, 1) + i * 1000;
  return { id: at * 1024, with: 'bob@x.test', withResource: i % 2 ? 'phone' : '', direction: i % 3 ? 'in' : 'out', stanza: `<message xmlns='jabber:client' id='a${i}'/>`, createdAt: at };
}

/** Gives a user rows in every per-user table, through the real stores. */
async function populate(storage: ShardedStorage, u: string): Promise<void> {
  assert.equal(await new SqlUserStore(storage).create(HOST, u, creds), true);
  const roster = new SqlRosterStore(storage);
  await roster.update(HOST, u, 'bob@x.test', () => rosterItem('bob@x.test', { name: 'Bob', groups: ['Friends', 'Wörk'] }));
  await roster.update(HOST, u, 'carol@x.test', () => rosterItem('carol@x.test', { subscription: 'both' }));
  const offline = new SqlOfflineStore(storage);
  for (let i = 0; i < 5; i++) assert.equal(await offline.push(HOST, u, `<message id="o${i}"/>`, 100, `o${i}`), 'stored');
  const privacy = new SqlPrivacyStore(storage);
  await privacy.putList(HOST, u, { name: 'public', items: [{ type: 'jid', value: 'eve@x.test', action: 'deny', order: 1, kinds: [] }] });
  await privacy.putList(HOST, u, { name: 'work', items: [{ type: null, value: null, action: 'allow', order: 2, kinds: ['message'] }] });
  assert.equal(await privacy.setDefault(HOST, u, 'public'), true);
  const archive = new SqlArchiveStore(storage);
  await archive.append(HOST, u, Array.from({ length: 7 }, (_, i) => archiveEntry(i)));
  await archive.setPrefs(HOST, u, { default: 'roster', always: ['bob@x.test'], never: ['eve@x.test'] });
  await new SqlVcardStore(storage).set(HOST, u, { xml: "<vCard xmlns='vcard-temp'><FN>Møver</FN></vCard>", photoHash: 'a'.repeat(40) });
  const pep = new SqlPepStore(storage, PEP);
  assert.equal(await pep.createNode(HOST, u, PEP_NODE, PEP, 10), 'created');
  for (const id of ['a', 'b', 'c']) await pep.publish(HOST, u, PEP_NODE, { id, payload: `<x xmlns='urn:test' n='${id}'/>` }, 10);
  // A republished id becomes the newest: the order is b, c, a (kept by a move only if ids are inserted in order).
  await pep.publish(HOST, u, PEP_NODE, { id: 'a', payload: "<x xmlns='urn:test' n='a2'/>" }, 10);
  await new SqlUserStore(storage).setFlag(HOST, u, { state: 'banned', reason: 'moved while banned' });
  await new SqlLastActivityStore(storage).set(HOST, u, { at: 1_800_000_000_000, status: 'Moving house' });
}

/** Everything of a user as the stores read it (offline ids are renumbered by a move; their order is not). */
async function snapshot(storage: ShardedStorage, u: string) {
  const roster = new SqlRosterStore(storage);
  const archive = new SqlArchiveStore(storage);
  const pep = new SqlPepStore(storage, PEP);
  return {
    sha1: await new SqlUserStore(storage).getCredentials(HOST, u, 'SHA-1'),
    sha256: await new SqlUserStore(storage).getCredentials(HOST, u, 'SHA-256'),
    roster: (await roster.list(HOST, u)).sort((a, b) => (a.jid < b.jid ? -1 : 1)),
    rosterVersion: await roster.version(HOST, u),
    offline: (await new SqlOfflineStore(storage).fetch(HOST, u, 100)).map((m) => [m.stanza, m.createdAt]),
    privacy: await new SqlPrivacyStore(storage).load(HOST, u),
    archive: (await archive.page(HOST, u, {}, { limit: 100, from: 'start' })).items,
    prefs: await archive.getPrefs(HOST, u),
    vcard: await new SqlVcardStore(storage).get(HOST, u),
    pepNodes: await pep.listNodes(HOST, u),
    pepItems: (await pep.items(HOST, u, PEP_NODE)).map((i) => [i.id, i.payload, i.createdAt]),
    flag: await new SqlUserStore(storage).getFlag(HOST, u),
    last: await new SqlLastActivityStore(storage).get(HOST, u),
  };
}

test('accounts land on the shard placeOf names, and both shards get some', async () => {
  const storage = await openFresh(mapOf(spec('s1'), spec('s2')));
  try {
    const users = new SqlUserStore(storage);
    const names = Array.from({ length: 40 }, (_, i) => `p${i}`);
    for (const n of names) assert.equal(await users.create(HOST, n, creds), true, n);
    const where = new Map<string, string>();
    for (const shard of ['s1', 's2', 's3']) {
      for (const n of await usernamesOn(shard)) {
        assert.equal(where.get(n), undefined, `${n} is on one shard only`);
        where.set(n, shard);
      }
    }
    for (const n of names) assert.equal(where.get(n), storage.placeOf(HOST, n), n);
    const on = (s: string) => names.filter((n) => where.get(n) === s).length;
    assert.ok(on('s1') > 0 && on('s2') > 0, `s1 ${on('s1')}, s2 ${on('s2')}`);
    assert.equal(on('s3'), 0, 's3 is not in this map');
  } finally {
    await storage.close();
  }
});

test('moveUser carries every per-user table to the other shard and back; the stores read the same data', async () => {
  const storage = await openFresh(mapOf(spec('s1'), spec('s2')));
  try {
    const u = 'mover';
    await populate(storage, u);
    const from = storage.placeOf(HOST, u);
    const to = otherOf(from);
    const before = (await rowsOf(u)).get(from)!;
    for (const [table, n] of Object.entries(before)) assert.ok(n > 0, `populate() writes no row in ${table}: give the user rows there too`);
    assert.deepEqual((await rowsOf(u)).get(to), zeros());
    const seen = await snapshot(storage, u);

    const r = await storage.moveUser(HOST, u, to);
    assert.deepEqual([r.moved, r.from, r.to, r.rows], [true, from, to, total(before)]);
    let rows = await rowsOf(u);
    assert.deepEqual(rows.get(from), zeros(), 'nothing left on the source');
    assert.deepEqual(rows.get(to), before, 'every row on the target');
    assert.deepEqual(await snapshot(storage, u), seen);
    assert.equal(storage.placeOf(HOST, u), to);
    assert.equal(storage.overrides().get(jid(u)), to);
    assert.deepEqual(await directoryRows(u), [{ shard: to }]);

    const back = await storage.moveUser(HOST, u, from);
    assert.equal(back.moved, true);
    rows = await rowsOf(u);
    assert.deepEqual(rows.get(from), before);
    assert.deepEqual(rows.get(to), zeros());
    assert.deepEqual(await snapshot(storage, u), seen);
    assert.equal(storage.overrides().has(jid(u)), false, 'back where the ring puts them: no override');
    assert.deepEqual(await directoryRows(u), []);
  } finally {
    await storage.close();
  }
});

test('moving a user without an account fails with a StorageError and leaves nothing behind', async () => {
  const storage = await openFresh(mapOf(spec('s1'), spec('s2')));
  try {
    const u = 'ghost';
    const to = otherOf(storage.placeOf(HOST, u));
    await assert.rejects(storage.moveUser(HOST, u, to), (e: unknown) => e instanceof StorageError && e.code === 'STORAGE_FAILED');
    assert.equal(storage.overrides().has(jid(u)), false);
    assert.deepEqual(await directoryRows(u), []);
    for (const [shard, counts] of await rowsOf(u)) assert.deepEqual(counts, zeros(), shard);
    // The user is not left frozen.
    assert.equal(await new SqlOfflineStore(storage).count(HOST, u), 0);
  } finally {
    await storage.close();
  }
});

test('operations for a user being moved wait and land on the target; other users are not held', async () => {
  const storage = await openFresh(mapOf(spec('s1'), spec('s2')));
  try {
    const heavy = 'heavy';
    const from = storage.placeOf(HOST, heavy);
    const to = otherOf(from);
    // A bystander on the same source shard, so the shard itself is busy with the move.
    const bystander = Array.from({ length: 50 }, (_, i) => `by${i}`).find((n) => storage.placeOf(HOST, n) === from)!;
    const users = new SqlUserStore(storage);
    const offline = new SqlOfflineStore(storage);
    await users.create(HOST, heavy, creds);
    await users.create(HOST, bystander, creds);
    const archive = new SqlArchiveStore(storage);
    const ARCHIVED = 4000;
    for (let i = 0; i < ARCHIVED; i += 1000) await archive.append(HOST, heavy, Array.from({ length: 1000 }, (_, j) => archiveEntry(i + j)));

    let moveDone = false;
    const heldUntilMoved: boolean[] = [];
    const pushes: Array<Promise<'stored' | 'full'>> = [];
    const push = (id: string) =>
      offline.push(HOST, heavy, `<message id="${id}"/>`, 100, id).then((r) => {
        if (id.startsWith('frozen')) heldUntilMoved.push(storage.placeOf(HOST, heavy) === to);
        return r;
      });
    // Five writes while the archive is copied live (they land on the source and are
    // carried over), five once the user is frozen (they wait and land on the target).
    const move = storage
      .moveUser(HOST, heavy, to, { onFrozen: () => pushes.push(...Array.from({ length: 5 }, (_, i) => push(`frozen${i}`))) })
      .then((r) => {
        moveDone = true;
        return r;
      });
    pushes.push(...Array.from({ length: 5 }, (_, i) => push(`live${i}`)));
    const t0 = performance.now();
    assert.equal(await offline.push(HOST, bystander, '<message id="b"/>', 100, 'b'), 'stored');
    assert.equal(await offline.count(HOST, bystander), 1);
    assert.notEqual(await users.getCredentials(HOST, bystander, 'SHA-256'), null);
    const bystanderMs = performance.now() - t0;
    assert.equal(moveDone, false, `the bystander's operations (${bystanderMs.toFixed(0)} ms) finished while the move was running`);

    const r = await move;
    assert.equal(r.moved, true);
    assert.deepEqual(await Promise.all(pushes), Array(10).fill('stored'));
    assert.deepEqual(heldUntilMoved, Array(5).fill(true), 'every write issued under the freeze waited until the directory pointed at the target');
    const rows = await rowsOf(heavy);
    assert.equal(rows.get(from)!.offline, 0, 'no held write landed on the source');
    assert.equal(rows.get(from)!.archive, 0);
    assert.equal(rows.get(to)!.offline, 10);
    assert.equal(rows.get(to)!.archive, ARCHIVED);
    const stanzas = (await offline.fetch(HOST, heavy, 100)).map((m) => m.stanza).sort();
    assert.deepEqual(stanzas, [...Array.from({ length: 5 }, (_, i) => `<message id="frozen${i}"/>`), ...Array.from({ length: 5 }, (_, i) => `<message id="live${i}"/>`)].sort());
    assert.equal((await rowsOf(bystander)).get(from)!.offline, 1);
  } finally {
    await storage.close();
  }
});

test('reloads: adding a shard pins moved users; removing a full shard is refused; a drained shard can go', async () => {
  const storage = await openFresh(mapOf(spec('s1'), spec('s2')));
  try {
    const users = new SqlUserStore(storage);
    const old = Array.from({ length: 60 }, (_, i) => `r${i}`);
    for (const n of old) await users.create(HOST, n, creds);
    const placedBefore = new Map(old.map((n) => [n, storage.placeOf(HOST, n)]));

    const map3 = mapOf(spec('s1'), spec('s2'), spec('s3'));
    const ring3 = new HashRing(map3.shards.map((s) => ({ name: s.name, weight: s.weight })));
    const changing = old.filter((n) => ring3.lookup(jid(n)) !== placedBefore.get(n)).length;
    assert.ok(changing > 0, 'some users would move with the new ring');
    const added = await storage.reload(map3);
    assert.deepEqual(added.added, ['s3']);
    assert.equal(added.pinned, changing);
    assert.equal(storage.overrides().size, changing);
    for (const n of old) {
      assert.equal(storage.placeOf(HOST, n), placedBefore.get(n), `${n} stays where its data is`);
      assert.deepEqual(await users.getCredentials(HOST, n, 'SHA-256'), creds.sha256, n);
    }

    const fresh = Array.from({ length: 30 }, (_, i) => `n${i}`);
    for (const n of fresh) await users.create(HOST, n, creds);
    const onS3 = await usernamesOn('s3');
    assert.ok(onS3.length > 0, 'new users land on s3');
    for (const n of onS3) assert.equal(storage.placeOf(HOST, n), 's3');

    await assert.rejects(storage.reload(mapOf(spec('s1'), spec('s2'))), (e: unknown) => e instanceof ConfigError && e.code === 'CONFIG_INVALID' && e.message.includes('shards.s3'));
    assert.deepEqual(storage.shardNames, ['s1', 's2', 's3'], 'a refused reload changes nothing');

    const draining = await storage.reload(mapOf(spec('s1'), spec('s2'), spec('s3', { draining: true })));
    assert.deepEqual(draining.draining, ['s3']);
    const config = parseConfig({ storage: { driver: 'mysql' } });
    const drained = await drainShard(config, storage, 's3');
    assert.deepEqual(drained.failed, []);
    assert.equal(drained.moved, onS3.length);
    assert.equal(drained.remaining, 0);
    assert.deepEqual(await usernamesOn('s3'), []);

    const removed = await storage.reload(mapOf(spec('s1'), spec('s2')));
    assert.deepEqual(removed.removed, ['s3']);
    assert.deepEqual(storage.shardNames, ['s1', 's2']);
    for (const n of [...old, ...fresh]) assert.deepEqual(await users.getCredentials(HOST, n, 'SHA-256'), creds.sha256, n);
    assert.equal(await users.count(HOST), old.length + fresh.length);
  } finally {
    await storage.close();
  }
});

test('a reload may not change the directory shard', async () => {
  const storage = await openFresh(mapOf(spec('s1'), spec('s2')));
  try {
    await assert.rejects(storage.reload({ directory: 's2', shards: [spec('s1'), spec('s2')] }), (e: unknown) => e instanceof ConfigError && e.code === 'CONFIG_INVALID' && /directory/.test(e.message));
  } finally {
    await storage.close();
  }
});

test('two servers opening the same new databases at once both start, and each migration runs once', async () => {
  const shards = await createTestShards(2);
  try {
    const [a, b] = await Promise.all([openMysqlStorage(shards.map, SETTINGS), openMysqlStorage(shards.map, SETTINGS)]);
    try {
      const lite = await openSqlite({ file: ':memory:', busyTimeoutMs: 100 });
      const [expected] = await lite.forEachShard('migrations', async (db) => (await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(db)).rows.map((r) => r.name));
      await lite.close();
      assert.ok(expected!.length > 0);
      const lists = await a.forEachShard('migrations', async (db) => (await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(db)).rows.map((r) => r.name));
      for (const names of lists) assert.deepEqual(names, expected);
      // Both work.
      assert.equal(await new SqlUserStore(a).create(HOST, 'x', creds), true);
      assert.equal(await new SqlUserStore(b).exists(HOST, 'x'), true);
    } finally {
      await a.close();
      await b.close();
    }
  } finally {
    await shards.drop();
  }
});

/** A port nothing listens on. */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

test('a shard that cannot be reached at start fails the open with a StorageError naming it', async () => {
  const port = await freePort();
  await assert.rejects(openMysqlStorage(mapOf(spec('s1'), spec('s2', { port })), SETTINGS), (e: unknown) => {
    assert.ok(e instanceof StorageError, String(e));
    assert.match(e.message, /\bs2\b/);
    assert.match(e.message, new RegExp(`:${port}/`));
    return true;
  });
});

/** A TCP proxy to the database server that can be cut (every connection dropped, port closed) and restored. */
class CuttableProxy {
  #server: Server | null = null;
  readonly #sockets = new Set<Socket>();
  port = 0;

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(TEST_MYSQL.port, TEST_MYSQL.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

test('a shard that dies: its users fail fast, the breaker opens, others are unaffected; a health check closes it again', async () => {
  const proxy = new CuttableProxy();
  await proxy.start();
  const storage = await openFresh(mapOf(spec('s1'), spec('s2', { port: proxy.port })));
  try {
    const users = new SqlUserStore(storage);
    const names = Array.from({ length: 40 }, (_, i) => `d${i}`);
    const onS1 = names.find((n) => storage.placeOf(HOST, n) === 's1')!;
    const onS2 = names.find((n) => storage.placeOf(HOST, n) === 's2')!;
    await users.create(HOST, onS1, creds);
    await users.create(HOST, onS2, creds);
    const s2 = () => storage.status().find((s) => s.name === 's2')!;

    await proxy.cut();
    const transient = (e: unknown) => e instanceof StorageError && e.transient === true && e.code === 'STORAGE_TRANSIENT';
    for (let i = 0; i < 10 && s2().breaker !== 'open'; i++) {
      // It fails, it does not hang (a generous bound on the event, not a measured time).
      await within('a query to the cut shard failed', assert.rejects(users.getCredentials(HOST, onS2, 'SHA-256'), transient), 10_000);
    }
    assert.equal(s2().breaker, 'open', 'the breaker opened');
    assert.equal(s2().healthy, false);
    const rejected = s2().rejected;
    const ops = s2().ops;
    for (let i = 0; i < 3; i++) {
      await assert.rejects(new SqlOfflineStore(storage).push(HOST, onS2, '<message/>', 10, `r${i}`), transient);
      // Refused at once while open: the breaker counts it as rejected, without trying the shard.
      assert.equal(s2().rejected, rejected + i + 1, 'refused at once while open');
    }
    assert.equal(s2().rejected, rejected + 3);
    assert.equal(s2().ops, ops, 'the open breaker did not try the shard');
    assert.deepEqual(await users.getCredentials(HOST, onS1, 'SHA-256'), creds.sha256, 's1 users are unaffected');
    assert.equal(storage.status().find((s) => s.name === 's1')!.breaker, 'closed');
    await storage.checkHealth();
    assert.equal(s2().breaker, 'open', 'a failed health check keeps it open');

    await proxy.start();
    await storage.checkHealth();
    assert.equal(s2().breaker, 'closed');
    assert.equal(s2().healthy, true);
    assert.deepEqual(await users.getCredentials(HOST, onS2, 'SHA-256'), creds.sha256);
  } finally {
    await storage.close();
    await proxy.cut();
  }
});
