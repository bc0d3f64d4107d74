/**
 * One owner of a stanza's fate (core/delivery.ts): every stanza is delivered, stored,
 * bounced, or dropped by a named rule of the RFCs, and each fate is counted
 * (`parley_stanzas_dropped_total{rule}` beside the bounce and offline counters). Nothing
 * that is lost to a missing module goes unheard: without the offline module, a message
 * for an offline user bounces.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type TestClient } from './helpers/client.js';
import { until } from './helpers/until.js';
import { MODULES } from '../src/modules/index.js';
import { Jid } from '../src/xmpp/jid.js';
import { parseElement } from '../src/xml/parse.js';

const jid = (u: string) => `${u}@${DOMAIN}`;

describe('fates with the default modules', () => {
  let ts: TestServer;
  let alice: TestClient;
  before(async () => {
    ts = await startTestServer();
    for (const u of ['alice', 'bob']) await ts.addUser(u);
    alice = await connectClient({ port: ts.port, username: 'alice' });
  });
  after(async () => {
    await alice?.stop();
    await ts?.stop();
  });

  test('a chat state for an offline user is dropped by the offline store\'s rule, counted, not bounced and not counted as stored', async () => {
    const stats = ts.server.core.stats;
    const stored = stats.offlineStored;
    await alice.send(xml('message', { to: jid('bob'), type: 'chat', id: 'cs1' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));
    await until('the chat state is dropped', () => stats.stanzasDropped['not-worth-storing'] === 1);
    assert.equal(stats.offlineStored, stored, 'not reported as stored');
    await alice.expectNone((el) => el.attrs.type === 'error' && el.attrs.id === 'cs1', 300, 'a bounce of the chat state');
  });

  test('a headline for an offline user and presence to a gone resource are dropped by their rules', async () => {
    const stats = ts.server.core.stats;
    await alice.send(xml('message', { to: jid('bob'), type: 'headline', id: 'h1' }, xml('body', null, 'news')));
    await alice.send(xml('presence', { to: `${jid('bob')}/gone` }));
    await until('both dropped', () => stats.stanzasDropped['headline-no-resource'] === 1 && stats.stanzasDropped['presence-no-resource'] >= 1);
    await alice.expectNone((el) => el.attrs.type === 'error' && el.attrs.id === 'h1', 300, 'a bounce of the headline');
  });

  test('the dropped counters are exported per rule', async () => {
    const text = await (await fetch(`${ts.httpUrl}/metrics`)).text();
    assert.match(text, /^parley_stanzas_dropped_total\{rule="not-worth-storing"\} 1$/m);
    assert.match(text, /^parley_stanzas_dropped_total\{rule="headline-no-resource"\} 1$/m);
  });
});

describe('fates without the offline module', () => {
  let ts: TestServer;
  let alice: TestClient;
  before(async () => {
    ts = await startTestServer({}, { modules: MODULES.filter((m) => m.name !== 'offline') });
    for (const u of ['alice', 'bob']) await ts.addUser(u);
    alice = await connectClient({ port: ts.port, username: 'alice' });
  });
  after(async () => {
    await alice?.stop();
    await ts?.stop();
  });

  test('a message for an offline user bounces with service-unavailable instead of vanishing', async () => {
    const stats = ts.server.core.stats;
    await alice.send(xml('message', { to: jid('bob'), type: 'chat', id: 'm1' }, xml('body', null, 'are you there?')));
    const err = await alice.waitFor((el) => el.attrs.type === 'error' && el.attrs.id === 'm1', 5000, 'the bounce');
    assert.ok(err.getChild('error')?.getChild('service-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
    assert.equal(stats.stanzasBounced.message, 1);
    assert.equal(stats.offlineRefused, 1);
  });

  test('a session that ends with a message it did not deliver gives it back: its sender hears', async () => {
    const bob = await connectClient({ port: ts.port, username: 'bob' });
    const session = ts.server.core.sessions.getLocal(Jid.parse(bob.jid));
    assert.ok(session, 'bob is bound');
    // What the c2s session reports as undelivered when it ends (the stream-management
    // tests make real ones): the core gives it back to routing, whatever modules run.
    const msg = parseElement(`<message xmlns='jabber:client' from='${jid('alice')}/test' to='${jid('bob')}' type='chat' id='given-back'><body>late</body></message>`);
    await bob.stop();
    await until('bob is gone', () => ts.server.core.sessions.getLocal(session.jid) === undefined);
    await ts.server.core.hooks.notify('session-closed', session, { reason: 'client', undelivered: [msg] });
    const err = await alice.waitFor((el) => el.attrs.type === 'error' && el.attrs.id === 'given-back', 5000, 'the bounce of the given-back message');
    assert.ok(err.getChild('error')?.getChild('service-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  });
});
