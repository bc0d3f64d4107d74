/**
 * The per-account PEP quota (pep.maxItemsPerAccount, pep.maxBytesPerAccount) through a
 * real client: an account spreading items over many nodes, or publishing large payloads,
 * gets resource-constraint (wait) past the quota with nothing stored; replacing an item, or publishing into a node that drops its oldest, costs
 * nothing; retracting, purging and deleting nodes free the quota.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';

const PUBSUB = 'http://jabber.org/protocol/pubsub';
const OWNER = 'http://jabber.org/protocol/pubsub#owner';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const MAX_ITEMS = 4;
const MAX_BYTES = 2048;

let ts: TestServer;
const open: TestClient[] = [];

before(async () => {
  ts = await startTestServer({ pep: { maxItemsPerAccount: MAX_ITEMS, maxBytesPerAccount: MAX_BYTES } });
  for (const u of ['pia', 'rob']) await ts.addUser(u);
});

after(async () => {
  for (const c of open) await c.stop();
  await ts.stop();
});

async function login(user: string): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username: user, resource: 'q', mechanism: 'PLAIN' });
  open.push(c);
  return c;
}

const publish = (c: TestClient, node: string, id: string, payload: Element) =>
  c.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: PUBSUB }, xml('publish', { node }, xml('item', { id }, payload)))));
const note = (text: string) => xml('note', { xmlns: 'urn:test:quota' }, text);
const itemIds = async (c: TestClient, node: string): Promise<string[]> => {
  const r = await c.iq(xml('iq', { type: 'get' }, xml('pubsub', { xmlns: PUBSUB }, xml('items', { node }))));
  if (r.attrs.type !== 'result') return [];
  return r.getChild('pubsub', PUBSUB)!.getChild('items')!.getChildren('item').map((i) => i.attrs.id!);
};
const owner = (c: TestClient, action: string, node: string) => c.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: OWNER }, xml(action, { node }))));
const retract = (c: TestClient, node: string, id: string) => c.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: PUBSUB }, xml('retract', { node }, xml('item', { id })))));

function assertFull(r: Element): void {
  assert.equal(r.attrs.type, 'error', r.toString());
  const err = r.getChild('error')!;
  assert.equal(err.attrs.type, 'wait', r.toString());
  assert.ok(err.getChild('resource-constraint', STANZAS), r.toString());
}
const assertOk = (r: Element) => assert.equal(r.attrs.type, 'result', r.toString());

test('items over many nodes: past pep.maxItemsPerAccount a publish gets resource-constraint (wait) and nothing is stored; freeing items makes room', async () => {
  const pia = await login('pia');
  // One item in each of four nodes (each node on its own is far below its max items).
  for (let i = 1; i <= MAX_ITEMS; i++) assertOk(await publish(pia, `urn:test:n${i}`, 'one', note(`n${i}`)));
  // A fifth node, or a second item in a node: refused.
  assertFull(await publish(pia, 'urn:test:n5', 'one', note('n5')));
  assertFull(await publish(pia, 'urn:test:n1', 'two', note('n1 two')));
  assert.deepEqual(await itemIds(pia, 'urn:test:n1'), ['one']);
  assert.deepEqual(await itemIds(pia, 'urn:test:n5'), [], 'nothing stored in the new node');
  // Replacing an item adds nothing: allowed at the quota.
  assertOk(await publish(pia, 'urn:test:n1', 'one', note('n1 again')));
  // Freed by a retraction, a purge and a node deletion.
  assertOk(await retract(pia, 'urn:test:n2', 'one'));
  assertOk(await publish(pia, 'urn:test:n1', 'two', note('n1 two')));
  assertFull(await publish(pia, 'urn:test:n1', 'three', note('n1 three')));
  assertOk(await owner(pia, 'purge', 'urn:test:n3'));
  assertOk(await publish(pia, 'urn:test:n1', 'three', note('n1 three')));
  assertOk(await owner(pia, 'delete', 'urn:test:n4'));
  assertOk(await publish(pia, 'urn:test:n5', 'one', note('n5')));
  assert.deepEqual(await itemIds(pia, 'urn:test:n1'), ['one', 'two', 'three']);
  assert.equal(ts.server.core.stats.limitHits['pep-quota'], 3, 'each refusal counted');
});

test('payload bytes: past pep.maxBytesPerAccount a publish gets resource-constraint (wait) and nothing is stored; a node that drops its oldest item costs only the difference', async () => {
  const rob = await login('rob');
  const big = (n: number, tag: string) => xml('blob', { xmlns: 'urn:test:quota' }, `${tag}:${'x'.repeat(n)}`);
  assertOk(await publish(rob, 'urn:test:blobs', 'a', big(1200, 'a')));
  assertFull(await publish(rob, 'urn:test:other', 'b', big(1200, 'b')));
  assert.deepEqual(await itemIds(rob, 'urn:test:other'), [], 'nothing stored');
  // A node keeping one item: the new one replaces the old in the count.
  const form = xml(
    'publish-options',
    null,
    xml(
      'x',
      { xmlns: 'jabber:x:data', type: 'submit' },
      xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', null, `${PUBSUB}#publish-options`)),
      xml('field', { var: 'pubsub#max_items' }, xml('value', null, '1')),
    ),
  );
  assertOk(await rob.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: PUBSUB }, xml('publish', { node: 'urn:test:avatar' }, xml('item', { id: 'v1' }, big(600, 'v1'))), form))));
  assertOk(await rob.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: PUBSUB }, xml('publish', { node: 'urn:test:avatar' }, xml('item', { id: 'v2' }, big(600, 'v2'))), form))));
  assert.deepEqual(await itemIds(rob, 'urn:test:avatar'), ['v2']);
  assertFull(await publish(rob, 'urn:test:other', 'c', big(400, 'c')));
  // Smaller payloads fit again once the big one is gone.
  assertOk(await retract(rob, 'urn:test:blobs', 'a'));
  assertOk(await publish(rob, 'urn:test:other', 'c', big(400, 'c')));
});
