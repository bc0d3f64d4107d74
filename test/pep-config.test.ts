/**
 * PEP node configuration (XEP-0060 §8.2) and the account's node list (XEP-0060 §5.2):
 * the form offers every supported field with its value, label and options; a field the
 * service does not support is refused with not-acceptable and changes nothing; the
 * owner's disco#items lists the nodes (issue 23, point 6).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';

const PUBSUB = 'http://jabber.org/protocol/pubsub';
const OWNER = 'http://jabber.org/protocol/pubsub#owner';
const CONFIG = 'http://jabber.org/protocol/pubsub#node_config';
const ITEMS = 'http://jabber.org/protocol/disco#items';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

let ts: TestServer;
let kim: TestClient;
let lee: TestClient;

before(async () => {
  ts = await startTestServer();
  for (const u of ['kim', 'lee']) await ts.addUser(u);
  kim = await connectClient({ port: ts.port, username: 'kim' });
  lee = await connectClient({ port: ts.port, username: 'lee' });
});
after(async () => {
  await kim.stop();
  await lee.stop();
  await ts.stop();
});

const condition = (iq: Element) => iq.getChild('error')?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === STANZAS && c.name !== 'text')?.name;
const submit = (fields: Record<string, string>) =>
  xml(
    'x',
    { xmlns: 'jabber:x:data', type: 'submit' },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', null, CONFIG)),
    ...Object.entries(fields).map(([k, v]) => xml('field', { var: k }, xml('value', null, v))),
  );
const getConfig = async (node: string) => {
  const r = await kim.iq(xml('iq', { type: 'get' }, xml('pubsub', { xmlns: OWNER }, xml('configure', { node }))));
  return r.getChild('pubsub', OWNER)!.getChild('configure')!.getChild('x', 'jabber:x:data')!;
};
const value = (form: Element, v: string) => form.getChildren('field').find((f) => f.attrs.var === v)?.getChildText('value');

test('the configuration form offers every supported field with its current value, a label and the options', async () => {
  const node = 'urn:test:config';
  const created = await kim.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: PUBSUB }, xml('create', { node }), xml('configure', null, submit({ 'pubsub#title': 'Notes', 'pubsub#max_items': '5' })))));
  assert.equal(created.attrs.type, 'result');
  const form = await getConfig(node);
  assert.equal(form.attrs.type, 'form');
  const fields = form.getChildren('field').filter((f) => f.attrs.var !== 'FORM_TYPE');
  assert.deepEqual(
    fields.map((f) => f.attrs.var).sort(),
    ['pubsub#access_model', 'pubsub#deliver_notifications', 'pubsub#max_items', 'pubsub#notify_retract', 'pubsub#persist_items', 'pubsub#send_last_published_item', 'pubsub#title'],
  );
  for (const f of fields) assert.ok(f.attrs.label && f.attrs.type, `${f.attrs.var} has a label and a type`);
  assert.equal(value(form, 'pubsub#title'), 'Notes');
  assert.equal(value(form, 'pubsub#max_items'), '5');
  assert.equal(value(form, 'pubsub#access_model'), 'presence');
  const access = fields.find((f) => f.attrs.var === 'pubsub#access_model')!;
  assert.deepEqual(access.getChildren('option').map((o) => o.getChildText('value')), ['open', 'presence', 'whitelist']);
  assert.ok(access.getChildren('option').every((o) => o.attrs.label));
});

test('an unsupported field in a configuration is not-acceptable and changes nothing', async () => {
  const node = 'urn:test:config';
  const r = await kim.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: OWNER }, xml('configure', { node }, submit({ 'pubsub#title': 'Changed', 'pubsub#made_up_option': '1' })))));
  assert.equal(condition(r), 'not-acceptable');
  assert.equal(value(await getConfig(node), 'pubsub#title'), 'Notes', 'nothing applied');
  const ok = await kim.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: OWNER }, xml('configure', { node }, submit({ 'pubsub#title': 'Changed' })))));
  assert.equal(ok.attrs.type, 'result');
  assert.equal(value(await getConfig(node), 'pubsub#title'), 'Changed');
});

test('a node created with an unsupported configuration field is refused and not created', async () => {
  const node = 'urn:test:refused';
  const r = await kim.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: PUBSUB }, xml('create', { node }), xml('configure', null, submit({ 'pubsub#no_such_thing': 'x' })))));
  assert.equal(condition(r), 'not-acceptable');
  const cfg = await kim.iq(xml('iq', { type: 'get' }, xml('pubsub', { xmlns: OWNER }, xml('configure', { node }))));
  assert.equal(condition(cfg), 'item-not-found');
});

test("the owner's disco#items lists the account's PEP nodes; another user learns nothing", async () => {
  const r = await kim.iq(xml('iq', { type: 'get', to: `kim@${DOMAIN}` }, xml('query', { xmlns: ITEMS })));
  const items = r.getChild('query', ITEMS)!.getChildren('item');
  const config = items.find((i) => i.attrs.node === 'urn:test:config');
  assert.ok(config, 'the node is listed');
  assert.equal(config.attrs.jid, `kim@${DOMAIN}`);
  assert.equal(config.attrs.name, 'Changed');
  assert.ok(!items.some((i) => i.attrs.node === 'urn:test:refused'));
  const other = await lee.iq(xml('iq', { type: 'get', to: `kim@${DOMAIN}` }, xml('query', { xmlns: ITEMS })));
  assert.equal(condition(other), 'service-unavailable');
});
