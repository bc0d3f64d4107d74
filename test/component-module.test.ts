/**
 * A host served by an internal module (ctx.addHost): the echo service of
 * test/fixtures/echo-module.ts, loaded with the default modules. Messages to it and to
 * its JIDs come back; IQs to the host go to its IQ handlers and to the disco module's
 * answers for every module host; the domain's disco#items lists it; a module host may
 * not take the user domain or a component's host.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { echoModule } from './fixtures/echo-module.js';
import { DEFAULT_MODULES } from '../src/main.js';
import { HostError } from '../src/core/hosts.js';

const ECHO = `echo.${DOMAIN}`;
const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

let ts: TestServer;
let alice: TestClient;

function errorCondition(el: Element): string | undefined {
  return el.getChild('error')?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === STANZAS && c.name !== 'text')?.name;
}

before(async () => {
  ts = await startTestServer({}, { modules: [...DEFAULT_MODULES, echoModule(ECHO)] });
  await ts.addUser('alice');
  alice = await connectClient({ port: ts.port, username: 'alice' });
});

after(async () => {
  await alice.stop();
  await ts.stop();
});

test('a message to the module\'s host, or to a JID of it, comes back from that JID', async () => {
  await alice.send(xml('message', { to: ECHO, type: 'chat', id: 'e1' }, xml('body', {}, 'ping?')));
  const back = await alice.message(ECHO);
  assert.equal(back.attrs.from, ECHO);
  assert.equal(back.attrs.id, 'e1');
  assert.equal(back.getChildText('body'), 'ping?');

  await alice.send(xml('message', { to: `someone@${ECHO}/res`, type: 'chat' }, xml('body', {}, 'full JID')));
  const back2 = await alice.message(`someone@${ECHO}/res`);
  assert.equal(back2.getChildText('body'), 'full JID');
});

test('IQs to the host: its own handler (ping), disco#info with its identity and features, and service-unavailable for the rest', async () => {
  const pong = await alice.iq(xml('iq', { to: ECHO, type: 'get' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  assert.equal(pong.attrs.type, 'result', pong.toString());
  assert.equal(pong.attrs.from, ECHO);

  const info = await alice.iq(xml('iq', { to: ECHO, type: 'get' }, xml('query', { xmlns: DISCO_INFO })));
  assert.equal(info.attrs.type, 'result', info.toString());
  const q = info.getChild('query', DISCO_INFO)!;
  assert.deepEqual(
    q.getChildren('identity').map((i) => [i.attrs.category, i.attrs.type, i.attrs.name]),
    [['service', 'echo', 'Echo']],
  );
  const features = q.getChildren('feature').map((f) => f.attrs.var);
  for (const f of [DISCO_INFO, DISCO_ITEMS, 'urn:xmpp:ping']) assert.ok(features.includes(f), f);
  // Nothing of the server's own features (roster, blocking...) leaks into the service's.
  assert.ok(!features.includes('urn:xmpp:blocking'));

  const items = await alice.iq(xml('iq', { to: ECHO, type: 'get' }, xml('query', { xmlns: DISCO_ITEMS })));
  assert.equal(items.attrs.type, 'result');
  assert.equal(items.getChild('query', DISCO_ITEMS)!.getChildren('item').length, 0);

  const version = await alice.iq(xml('iq', { to: ECHO, type: 'get' }, xml('query', { xmlns: 'jabber:iq:version' })));
  assert.equal(errorCondition(version), 'service-unavailable');
  // An IQ to another JID of the host goes to the module's stanza handler, which refuses it.
  const toJid = await alice.iq(xml('iq', { to: `someone@${ECHO}`, type: 'get' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  assert.equal(errorCondition(toJid), 'service-unavailable');
});

test('the domain\'s disco#items lists the module\'s host with its name; the domain\'s own disco#info is unchanged', async () => {
  const items = await alice.iq(xml('iq', { to: DOMAIN, type: 'get' }, xml('query', { xmlns: DISCO_ITEMS })));
  const list = items.getChild('query', DISCO_ITEMS)!.getChildren('item').map((i) => [i.attrs.jid, i.attrs.name]);
  assert.deepEqual(list, [[ECHO, 'Echo service']]);
  const info = await alice.iq(xml('iq', { to: DOMAIN, type: 'get' }, xml('query', { xmlns: DISCO_INFO })));
  const ids = info.getChild('query', DISCO_INFO)!.getChildren('identity').map((i) => i.attrs.category);
  assert.deepEqual(ids, ['server']);
});

test('a module cannot serve the user domain, a host served already, or a name that is not a DNS name', async () => {
  for (const [name, code] of [
    [DOMAIN, 'HOST_TAKEN'],
    [ECHO, 'HOST_TAKEN'],
    ['Not A Host', 'HOST_INVALID'],
  ] as const) {
    await assert.rejects(
      ts.server.core.modules.load(Object.assign(echoModule(name), { name: `echo-${code}-${name.length}` })),
      (e: unknown) => e instanceof HostError && e.code === code,
    );
  }
  // The failed loads left nothing behind: the echo service still answers.
  await alice.send(xml('message', { to: ECHO, type: 'chat' }, xml('body', {}, 'still here')));
  assert.equal((await alice.message(ECHO)).getChildText('body'), 'still here');
});
