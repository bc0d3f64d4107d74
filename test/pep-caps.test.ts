/**
 * XEP-0115 entity capabilities and PEP interest (XEP-0163 §4.3): when a client changes its
 * capabilities twice in a row, the newest presence's capabilities decide which PEP
 * notifications it gets, whatever order the server's two disco#info queries are
 * answered in, and when one answer never comes (issue 23, point 1).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { befriend, connectClient, xml, type Element, type TestClient } from './helpers/client.js';

const PUBSUB = 'http://jabber.org/protocol/pubsub';
const EVENT = 'http://jabber.org/protocol/pubsub#event';
const DISCO = 'http://jabber.org/protocol/disco#info';
const CAPS = 'http://jabber.org/protocol/caps';
const MOOD = 'http://jabber.org/protocol/mood';
const NODE = 'https://parley.test/caps-client';

let ts: TestServer;
const open: TestClient[] = [];
const jid = (u: string) => `${u}@${DOMAIN}`;
let unique = 0;

before(async () => {
  ts = await startTestServer();
  for (const u of ['pub1', 'sub1', 'pub2', 'sub2', 'pub3', 'sub3']) await ts.addUser(u);
});
after(async () => {
  for (const c of open) await c.stop();
  await ts.stop();
});

async function online(username: string): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username });
  open.push(c);
  return c;
}


interface Caps {
  ver: string;
  features: string[];
}

/** A feature set of its own (so no test hits another's cache) and its XEP-0115 ver. */
function caps(notify: string[]): Caps {
  const features = [DISCO, CAPS, `urn:test:unique:${++unique}`, ...notify.map((n) => `${n}+notify`)].sort();
  const s = 'client/pc//Test<' + features.map((f) => f + '<').join('');
  return { ver: createHash('sha1').update(s).digest('base64'), features };
}

/**
 * Holds the server's disco#info queries until the test answers them: `answer(ver)` sends
 * the reply for that ver; a query never answered is a lost answer.
 */
function holdQueries(c: TestClient, known: Caps[]): { asked(ver: string): Promise<void>; answer(ver: string): void } {
  const waiting = new Map<string, () => void>();
  const askedWaiters = new Map<string, () => void>();
  c.xmpp.iqCallee.get(DISCO, 'query', (ctx: { element: Element }) => {
    const node = ctx.element.attrs.node ?? '';
    const ver = node.slice(NODE.length + 1);
    const cap = known.find((k) => k.ver === ver);
    askedWaiters.get(ver)?.();
    return new Promise<Element>((resolve) => {
      waiting.set(ver, () => resolve(xml('query', { xmlns: DISCO, node }, xml('identity', { category: 'client', type: 'pc', name: 'Test' }), ...(cap?.features ?? []).map((f) => xml('feature', { var: f })))));
    });
  });
  return {
    asked: (ver) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no caps query for ${ver}`)), 5000);
        askedWaiters.set(ver, () => {
          clearTimeout(t);
          resolve();
        });
      }),
    answer(ver) {
      const w = waiting.get(ver);
      assert.ok(w, `a query for ${ver} is waiting`);
      w();
    },
  };
}

const presenceWith = (c: Caps) => xml('presence', null, xml('c', { xmlns: CAPS, hash: 'sha-1', node: NODE, ver: c.ver }));
const isMood = (from: string) => (el: Element) => el.name === 'message' && el.attrs.from === from && el.getChild('event', EVENT)?.getChild('items')?.attrs.node === MOOD;

async function publishMood(c: TestClient, mood: string): Promise<void> {
  const r = await c.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: PUBSUB }, xml('publish', { node: MOOD }, xml('item', { id: 'current' }, xml('mood', { xmlns: MOOD }, xml(mood)))))));
  assert.equal(r.attrs.type, 'result');
}

/** Two presences in a row: first without mood+notify, then with it; answers in `order`. */
async function twoChanges(pub: string, sub: string, order: 'in order' | 'newest first' | 'older lost'): Promise<TestClient> {
  const p = await online(pub);
  const s = await online(sub);
  await befriend(p, pub, s, sub);
  const older = caps([]);
  const newer = caps([MOOD]);
  const q = holdQueries(s, [older, newer]);
  const askedOlder = q.asked(older.ver);
  const askedNewer = q.asked(newer.ver);
  await s.send(presenceWith(older));
  await askedOlder;
  await s.send(presenceWith(newer));
  await askedNewer;
  if (order === 'in order') {
    q.answer(older.ver);
    await new Promise((r) => setTimeout(r, 100));
    q.answer(newer.ver);
  } else if (order === 'newest first') {
    q.answer(newer.ver);
    await new Promise((r) => setTimeout(r, 100));
    q.answer(older.ver);
  } else q.answer(newer.ver); // the older query's answer never comes
  await new Promise((r) => setTimeout(r, 300)); // the answers are applied
  await publishMood(p, 'happy');
  return s;
}

test('answers in the order asked: the newest capabilities win and the notification arrives', async () => {
  const s = await twoChanges('pub1', 'sub1', 'in order');
  await s.waitFor(isMood(jid('pub1')), 5000, 'mood notification');
});

test('the newest answer first and the older one after: the newest capabilities still win', async () => {
  const s = await twoChanges('pub2', 'sub2', 'newest first');
  await s.waitFor(isMood(jid('pub2')), 5000, 'mood notification');
});

test('the older query is never answered: the newest capabilities win without waiting for it', async () => {
  const s = await twoChanges('pub3', 'sub3', 'older lost');
  await s.waitFor(isMood(jid('pub3')), 3000, 'mood notification');
});
