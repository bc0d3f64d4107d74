/**
 * Message archive benchmarks:
 * - `mam-pairs`: `tcp-pairs` twice, with the archive on (every message written to the
 *   sender's and the recipient's archive before delivery) and off: what archiving costs;
 * - `mam-storage`: `mam-pairs` with the archive on, plus offline recipients (one message in
 *   five goes to a user who is not logged in, so offline storage is written too), once on
 *   SQLite and once on MySQL with two shards (throw-away databases on the local MariaDB,
 *   dropped afterwards): delivered messages/s, archive rows written/s and offline rows
 *   stored, counted in the databases around the measured window;
 * - `mam-query`: one user with an archive of 100,000 messages (written in bulk through the
 *   store before the server starts) queries pages of 50 over TCP, one query at a time:
 *   the latest page (what a client opening a conversation asks), pages after a random
 *   id, and pages filtered by a contact; latency from sending the IQ to its fin.
 */
import { performance } from 'node:perf_hooks';
import { RawSession } from './lib/raw-client.js';
import { startBenchServer, percentile, DOMAIN, PASSWORD } from './lib/harness.js';
import { tcpPairs, type PairsResult } from './tcp-pairs.js';
import { SqlArchiveStore } from '../src/modules/mam/store-sql.js';
import { encodeId, IDS_PER_MS } from '../src/modules/mam/ids.js';
import type { ArchiveEntry } from '../src/modules/mam/store.js';

export interface MamPairsResult {
  on: PairsResult;
  off: PairsResult;
  /** on ÷ off, messages per second. */
  ratio: number;
}

export async function mamPairs(pairs = 500, window = 10, warmupMs = 3000, measureMs = 10_000): Promise<MamPairsResult> {
  const off = await tcpPairs(pairs, window, warmupMs, measureMs, { mam: { enabled: false } });
  const on = await tcpPairs(pairs, window, warmupMs, measureMs, { mam: { enabled: true, default: 'always' } });
  return { on, off, ratio: on.messagesPerSecond / off.messagesPerSecond };
}

export interface MamStorageResult {
  sqlite: PairsResult;
  mysql: PairsResult;
  /** MySQL ÷ SQLite, delivered messages per second. */
  ratio: number;
}

/** Offline messages: one for every 4 delivered, i.e. one message in 5 goes to a user who is offline. */
export const OFFLINE_EVERY = 4;

export async function mamStorage(pairs = 500, window = 10, warmupMs = 3000, measureMs = 10_000, shards = 2): Promise<MamStorageResult> {
  const extra = { mam: { enabled: true, default: 'always' } };
  const opts = { offlineEvery: OFFLINE_EVERY, countRows: ['archive', 'offline'] as Array<'archive' | 'offline'> };
  const sqlite = await tcpPairs(pairs, window, warmupMs, measureMs, extra, { ...opts, storage: { driver: 'sqlite' } });
  const mysql = await tcpPairs(pairs, window, warmupMs, measureMs, extra, { ...opts, storage: { driver: 'mysql', shards } });
  return { sqlite, mysql, ratio: mysql.messagesPerSecond / sqlite.messagesPerSecond };
}

export interface MamQueryResult {
  archive: number;
  fillSeconds: number;
  queries: number;
  pageSize: number;
  /** Per query shape: latency in ms. */
  latest: { p50ms: number; p99ms: number };
  afterId: { p50ms: number; p99ms: number };
  withContact: { p50ms: number; p99ms: number };
}

const CONTACTS = 20;

export async function mamQuery(archive = 100_000, queriesPerShape = 200): Promise<MamQueryResult> {
  const ids: number[] = [];
  const t0 = Date.now() - archive * 1000; // one message a second, ending now
  let fillSeconds = 0;
  const server = await startBenchServer({
    users: 2,
    extra: { mam: { enabled: true } },
    prepare: async (storage) => {
      const started = performance.now();
      const store = new SqlArchiveStore(storage);
      const body = 'x'.repeat(80);
      for (let i = 0; i < archive; i += 500) {
        const batch: ArchiveEntry[] = [];
        for (let k = i; k < Math.min(archive, i + 500); k++) {
          const at = t0 + k * 1000;
          const id = at * IDS_PER_MS;
          ids.push(id);
          const peer = `c${k % CONTACTS}@${DOMAIN}`;
          const out = k % 2 === 0;
          batch.push({
            id,
            with: peer,
            withResource: out ? '' : 'phone',
            direction: out ? 'out' : 'in',
            stanza: `<message xmlns='jabber:client' from='${out ? `u0@${DOMAIN}/bench` : `${peer}/phone`}' to='${out ? peer : `u0@${DOMAIN}`}' type='chat' id='m${k}'><body>${k} ${body}</body><origin-id xmlns='urn:xmpp:sid:0' id='o${k}'/></message>`,
            createdAt: at,
          });
        }
        await store.append(DOMAIN, 'u0', batch);
      }
      fillSeconds = (performance.now() - started) / 1000;
    },
  });
  try {
    const s = await RawSession.login({ host: '127.0.0.1', port: server.port, domain: DOMAIN, username: 'u0', password: PASSWORD });
    let buf = '';
    let waiting: { id: string; resolve: (results: number) => void } | null = null;
    s.socket.on('data', (d: string) => {
      buf += d;
      if (!waiting) return;
      const end = buf.indexOf('</iq>');
      if (end < 0 && !/<iq [^>]*\/>/.test(buf)) return;
      const results = buf.split('<result ').length - 1;
      buf = '';
      const w = waiting;
      waiting = null;
      w.resolve(results);
    });
    let seq = 0;
    const query = (form: string, rsm: string): Promise<{ ms: number; results: number }> =>
      new Promise((resolve, reject) => {
        const id = `q${++seq}`;
        const start = performance.now();
        waiting = {
          id,
          resolve: (results) => resolve({ ms: performance.now() - start, results }),
        };
        setTimeout(() => reject(new Error(`query ${id} timed out`)), 30_000).unref();
        s.send(
          `<iq type='set' id='${id}'><query xmlns='urn:xmpp:mam:2' queryid='${id}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>${form}</x><set xmlns='http://jabber.org/protocol/rsm'><max>50</max>${rsm}</set></query></iq>`,
        );
      });
    const run = async (make: (i: number) => [string, string]): Promise<{ p50ms: number; p99ms: number }> => {
      const samples = new Float64Array(queriesPerShape);
      for (let i = 0; i < 10; i++) await query(...make(i)); // warm-up
      for (let i = 0; i < queriesPerShape; i++) {
        const r = await query(...make(i));
        if (r.results !== 50) throw new Error(`a page had ${r.results} results, not 50`);
        samples[i] = r.ms;
      }
      samples.sort();
      return { p50ms: percentile(samples, 50), p99ms: percentile(samples, 99) };
    };
    // Deterministic "random" positions, away from the end so every page is full.
    const pos = (i: number) => (i * 7919) % (archive - 60 * CONTACTS);
    const latest = await run(() => ['', '<before/>']);
    const afterId = await run((i) => ['', `<after>${encodeId(ids[pos(i)]!)}</after>`]);
    const withContact = await run((i) => [`<field var='with'><value>c${i % CONTACTS}@${DOMAIN}</value></field>`, `<after>${encodeId(ids[pos(i)]!)}</after>`]);
    s.close();
    return { archive, fillSeconds, queries: queriesPerShape, pageSize: 50, latest, afterId, withContact };
  } finally {
    await server.stop();
  }
}
