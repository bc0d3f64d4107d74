/**
 * What clients ask the server about itself: contact addresses (XEP-0157) in disco#info,
 * and external STUN/TURN services with time-limited credentials (XEP-0215).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { parseConfig } from '../src/config/load.js';
import { parseElement } from '../src/xml/parse.js';
import { Jid } from '../src/xmpp/jid.js';
import { CONFIG_SCHEMA } from '../src/modules/index.js';

const EXT = 'urn:xmpp:extdisco:2';
const TURN_SECRET = 'coturn-static-auth-secret-for-tests';
let ts: TestServer;
let alice: TestClient;

before(async () => {
  ts = await startTestServer({
    contact: { abuse: ['mailto:abuse@example.test', 'xmpp:abuse@example.test'], security: ['mailto:security@example.test'], support: ['https://example.test/help'] },
    externalServices: [
      { type: 'stun', host: 'stun.example.test', port: 3478, transport: 'udp' },
      { type: 'turn', host: 'turn.example.test', port: 3478, transport: 'udp', secret: TURN_SECRET, ttl: '1h', name: 'Example TURN' },
      { type: 'turns', host: 'turn.example.test', port: 5349, transport: 'tcp', secret: TURN_SECRET, ttl: '1h' },
    ],
  });
  await ts.addUser('alice');
  alice = await connectClient({ port: ts.port, username: 'alice' });
});
after(async () => {
  await alice?.stop();
  await ts?.stop();
});

const service = (q: Element | undefined, host: string, type: string) => q?.getChildren('service').find((s) => s.attrs.host === host && s.attrs.type === type);

describe('contact addresses (XEP-0157)', () => {
  test('the server disco#info carries the serverinfo form with the configured addresses and leaves out empty fields', async () => {
    const r = await alice.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
    const forms = r.getChild('query')!.getChildren('x', 'jabber:x:data');
    const form = forms.find((f) => f.getChildren('field').some((fl) => fl.attrs.var === 'FORM_TYPE' && fl.getChildText('value') === 'http://jabber.org/network/serverinfo'));
    assert.ok(form, 'serverinfo form present');
    assert.equal(form.attrs.type, 'result');
    const values = (v: string) => form.getChildren('field').find((f) => f.attrs.var === v)?.getChildren('value').map((x) => x.text());
    assert.deepEqual(values('abuse-addresses'), ['mailto:abuse@example.test', 'xmpp:abuse@example.test']);
    assert.deepEqual(values('security-addresses'), ['mailto:security@example.test']);
    assert.deepEqual(values('support-addresses'), ['https://example.test/help']);
    assert.equal(values('admin-addresses'), undefined, 'unset fields are left out');
    assert.equal(values('sales-addresses'), undefined);
  });

  test('a contact address that is not a URI stops startup naming the key', () => {
    assert.throws(() => parseConfig({ contact: { abuse: ['abuse@example.test'] } }, CONFIG_SCHEMA), /contact\.abuse\[0\]/);
  });
});

describe('external services (XEP-0215)', () => {
  test('the server announces urn:xmpp:extdisco:2', async () => {
    const r = await alice.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
    assert.ok(r.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === EXT));
  });

  test('a user gets every service, TURN with time-limited credentials that a coturn use-auth-secret server accepts', async () => {
    const before = Math.floor(Date.now() / 1000);
    const r = await alice.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('services', { xmlns: EXT })));
    assert.equal(r.attrs.type, 'result');
    const q = r.getChild('services', EXT);
    assert.equal(q?.getChildren('service').length, 3);
    const stun = service(q, 'stun.example.test', 'stun')!;
    assert.equal(stun.attrs.port, '3478');
    assert.equal(stun.attrs.transport, 'udp');
    assert.equal(stun.attrs.username, undefined, 'no credentials for a service without a secret');
    assert.equal(stun.attrs.restricted, undefined);
    const turn = service(q, 'turn.example.test', 'turn')!;
    assert.equal(turn.attrs.restricted, '1');
    assert.equal(turn.attrs.name, 'Example TURN');
    const [expiry, user] = turn.attrs.username!.split(':');
    assert.equal(user, `alice@${DOMAIN}`);
    assert.ok(Number(expiry) >= before + 3600 && Number(expiry) <= before + 3602, 'expires after the configured ttl');
    // What coturn computes for `use-auth-secret`: base64(HMAC-SHA1(secret, username)).
    assert.equal(turn.attrs.password, createHmac('sha1', TURN_SECRET).update(turn.attrs.username!).digest('base64'));
    assert.equal(new Date(turn.attrs.expires!).getTime(), Number(expiry) * 1000);
    assert.match(turn.attrs.expires!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'XEP-0082 DateTime');
  });

  test('services can be asked for by type', async () => {
    const r = await alice.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('services', { xmlns: EXT, type: 'turn' })));
    const q = r.getChild('services', EXT)!;
    assert.deepEqual(q.getChildren('service').map((s) => s.attrs.type), ['turn']);
    assert.equal(q.attrs.type, 'turn');
  });

  test('credentials for one service; an unknown one is item-not-found, a request without a service bad-request', async () => {
    const r = await alice.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('credentials', { xmlns: EXT }, xml('service', { host: 'turn.example.test', type: 'turns' }))));
    const s = r.getChild('credentials', EXT)?.getChild('service');
    assert.equal(s?.attrs.port, '5349');
    assert.equal(s?.attrs.password, createHmac('sha1', TURN_SECRET).update(s!.attrs.username!).digest('base64'));
    const unknown = await alice.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('credentials', { xmlns: EXT }, xml('service', { host: 'evil.example.test', type: 'turn' }))));
    assert.ok(unknown.getChild('error')?.getChild('item-not-found'));
    const none = await alice.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('credentials', { xmlns: EXT })));
    assert.ok(none.getChild('error')?.getChild('bad-request'));
  });

  test('a server without configured services answers service-unavailable and does not announce the feature', async () => {
    const bare = await startTestServer();
    try {
      await bare.addUser('bob');
      const bob = await connectClient({ port: bare.port, username: 'bob' });
      const r = await bob.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('services', { xmlns: EXT })));
      assert.ok(r.getChild('error')?.getChild('service-unavailable'));
      const info = await bob.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
      assert.ok(!info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === EXT));
      assert.ok(!info.getChild('query')!.getChildren('x', 'jabber:x:data').length, 'no serverinfo form without contact addresses');
      await bob.stop();
    } finally {
      await bare.stop();
    }
  });
});

describe('external services for strangers', () => {
  test('a JID of another domain (a component or a remote server, once they exist) gets forbidden', async () => {
    // No stranger can reach the server through the protocol yet (no s2s, no components):
    // the request is handed to the server's IQ dispatch as the router would.
    const iq = parseElement(`<iq xmlns='jabber:client' type='get' id='x1' to='${DOMAIN}'><services xmlns='${EXT}'/></iq>`);
    const reply = await ts.server.core.iq.dispatch(iq, Jid.parse('mallory@elsewhere.example/x'), Jid.parse(DOMAIN), 'host', null);
    assert.equal(reply.attrs.type, 'error');
    assert.ok(reply.getChild('error')?.getChild('forbidden'));
    assert.ok(!reply.toString().includes('password'), 'no credentials in the refusal');
  });
});
