/**
 * Client-to-server over TCP, driven from outside by a real client library (@xmpp/client)
 * and, for what no library sends, by raw sockets.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { authFailure, connectClient, RawClient, STREAM_HEADER, xml, makeClient, type TestClient } from './helpers/client.js';

let ts: TestServer;
const open: TestClient[] = [];

async function login(username: string, opts: Partial<Parameters<typeof connectClient>[0]> = {}): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, ...opts });
  open.push(c);
  return c;
}

before(async () => {
  ts = await startTestServer({ limits: { maxStanzaSize: 16384, authTimeout: '3s' } });
  for (const u of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'oscar', 'peggy', 'trent', 'victor', 'walter']) {
    await ts.addUser(u);
  }
});

after(async () => {
  for (const c of open) await c.stop();
  await ts.stop();
});

describe('authentication', () => {
  test('a client logs in with SCRAM over STARTTLS and gets its full JID', async () => {
    const c = await login('alice', { resource: 'laptop' });
    assert.equal(c.jid, `alice@${DOMAIN}/laptop`);
    assert.equal(c.xmpp.isSecure(), true);
    await c.stop();
  });

  test('a client logs in with PLAIN over STARTTLS', async () => {
    const c = await login('alice', { mechanism: 'PLAIN', resource: 'plain' });
    assert.equal(c.jid, `alice@${DOMAIN}/plain`);
    await c.stop();
  });

  test('a client logs in over direct TLS (XEP-0368)', async () => {
    const c = await connectClient({ port: ts.tlsPort, tls: 'direct', username: 'alice', resource: 'direct' });
    open.push(c);
    assert.equal(c.jid, `alice@${DOMAIN}/direct`);
    await c.stop();
  });

  test('a wrong password fails with not-authorized', async () => {
    assert.equal(await authFailure({ port: ts.port, username: 'alice', password: 'wrong' }), 'not-authorized');
    assert.equal(await authFailure({ port: ts.port, username: 'alice', password: 'wrong', mechanism: 'PLAIN' }), 'not-authorized');
  });

  test('an unknown user fails with not-authorized, like a wrong password', async () => {
    assert.equal(await authFailure({ port: ts.port, username: 'nobody', password: 'secret' }), 'not-authorized');
    assert.equal(await authFailure({ port: ts.port, username: 'nobody', password: 'secret', mechanism: 'PLAIN' }), 'not-authorized');
  });

  test('without TLS only STARTTLS is offered, and auth is refused with encryption-required', async () => {
    const c = await RawClient.connect(ts.port);
    c.write(STREAM_HEADER);
    const features = await c.until(/<\/stream:features>/);
    assert.match(features, /<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required\/><\/starttls>/);
    assert.doesNotMatch(features, /<mechanisms/);
    c.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0alice\0secret').toString('base64')}</auth>`);
    await c.until(/<encryption-required\/>/);
    c.close();
  });

  test('a stanza before authentication ends the stream with not-authorized', async () => {
    const c = await RawClient.connect(ts.port);
    c.write(STREAM_HEADER + "<message to='bob@example.test'><body>hi</body></message>");
    await c.until(/<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    await c.untilClosed();
  });

  test('a stream to another domain ends with host-unknown', async () => {
    const c = await RawClient.connect(ts.port);
    c.write(STREAM_HEADER.replace(`to='${DOMAIN}'`, "to='elsewhere.test'"));
    await c.until(/<host-unknown/);
    await c.untilClosed();
  });

  test('a connection that never authenticates is closed with connection-timeout', async () => {
    const c = await RawClient.connect(ts.port);
    c.write(STREAM_HEADER);
    await c.until(/<connection-timeout/, 6000);
    await c.untilClosed();
  });
});

describe('resource binding', () => {
  test('the server makes a resource when the client asks for none', async () => {
    const xmpp = makeClient({ port: ts.port, username: 'bob', resource: '' });
    const address = String(await xmpp.start());
    assert.match(address, new RegExp(`^bob@${DOMAIN}/parley-[0-9a-f]+$`));
    await xmpp.stop();
  });

  test('binding the same full JID again replaces the old session with a conflict error', async () => {
    const first = await login('carol', { resource: 'phone' });
    const errored = new Promise<{ condition?: string }>((resolve) => first.xmpp.on('error', resolve));
    const second = await login('carol', { resource: 'phone' });
    assert.equal((await errored).condition, 'conflict');
    // The new session works.
    const pong = await second.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    assert.equal(pong.attrs.type, 'result');
  });

  test('the legacy session IQ is answered', async () => {
    const c = await login('dave', { resource: 'legacy' });
    const r = await c.iq(xml('iq', { type: 'set' }, xml('session', { xmlns: 'urn:ietf:params:xml:ns:xmpp-session' })));
    assert.equal(r.attrs.type, 'result');
    await c.stop();
  });
});

describe('messages', () => {
  test('two users exchange messages both ways', async () => {
    const a = await login('erin');
    const b = await login('frank');
    await a.send(xml('message', { to: `frank@${DOMAIN}`, type: 'chat', id: 'm1' }, xml('body', null, 'hello frank')));
    const m1 = await b.message(`erin@${DOMAIN}`);
    assert.equal(m1.getChildText('body'), 'hello frank');
    assert.equal(m1.attrs.from, `erin@${DOMAIN}/test`);
    await b.send(xml('message', { to: a.jid, type: 'chat' }, xml('body', null, 'hi erin')));
    const m2 = await a.message(`frank@${DOMAIN}`);
    assert.equal(m2.getChildText('body'), 'hi erin');
  });

  test('a message to an offline user is stored and delivered with a delay stamp at login', async () => {
    const a = await login('grace');
    await a.send(xml('message', { to: `heidi@${DOMAIN}`, type: 'chat', id: 'off1' }, xml('body', null, 'while you were away')));
    await a.send(xml('message', { to: `heidi@${DOMAIN}`, type: 'chat', id: 'off2' }, xml('body', null, 'second')));
    // A resend (same id, same content, as after a "try again" error) is stored once; the
    // same content under another id is another message.
    await a.send(xml('message', { to: `heidi@${DOMAIN}`, type: 'chat', id: 'off1' }, xml('body', null, 'while you were away')));
    await a.send(xml('message', { to: `heidi@${DOMAIN}`, type: 'chat', id: 'off3' }, xml('body', null, 'second')));
    await a.expectNone((el) => el.attrs.type === 'error', 300, 'error');
    const h = await login('heidi');
    const m1 = await h.waitFor((el) => el.attrs.id === 'off1');
    const m2 = await h.waitFor((el) => el.attrs.id === 'off2');
    await h.waitFor((el) => el.attrs.id === 'off3');
    await h.expectNone((el) => el.name === 'message' && el.attrs.id === 'off1' && el !== m1, 300, 'the resend stored twice');
    assert.equal(m1.getChildText('body'), 'while you were away');
    assert.ok(m1.getChild('delay', 'urn:xmpp:delay')?.attrs.stamp);
    assert.equal(m2.getChildText('body'), 'second');
    // Delivered once: a second login gets nothing more.
    await h.stop();
    const again = await login('heidi', { resource: 'again' });
    await again.expectNone((el) => el.name === 'message', 400, 'offline message delivered twice');
  });

  test('a message to an account that does not exist bounces with service-unavailable', async () => {
    const a = await login('ivan');
    await a.send(xml('message', { to: `ghost@${DOMAIN}`, type: 'chat', id: 'g1' }, xml('body', null, 'boo')));
    const err = await a.waitFor((el) => el.attrs.id === 'g1' && el.attrs.type === 'error');
    assert.ok(err.getChild('error')?.getChild('service-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  });

  test('a message to another domain bounces with remote-server-not-found', async () => {
    const a = await login('ivan', { resource: 'remote' });
    await a.send(xml('message', { to: 'someone@elsewhere.test', type: 'chat', id: 'r1' }, xml('body', null, 'x')));
    const err = await a.waitFor((el) => el.attrs.id === 'r1' && el.attrs.type === 'error');
    assert.ok(err.getChild('error')?.getChild('remote-server-not-found', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  });

  test('a malformed recipient address bounces with jid-malformed', async () => {
    const a = await login('ivan', { resource: 'malformed' });
    await a.send(xml('message', { to: 'a@b@c', type: 'chat', id: 'j1' }, xml('body', null, 'x')));
    const err = await a.waitFor((el) => el.attrs.id === 'j1' && el.attrs.type === 'error');
    assert.ok(err.getChild('error')?.getChild('jid-malformed', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  });

  test('a message to a bare JID goes to the highest-priority resource only', async () => {
    const low = await connectClient({ port: ts.port, username: 'judy', resource: 'low', presence: false });
    const high = await connectClient({ port: ts.port, username: 'judy', resource: 'high', presence: false });
    open.push(low, high);
    await low.send(xml('presence', null, xml('priority', null, '1')));
    await high.send(xml('presence', null, xml('priority', null, '10')));
    await high.presence((p) => p.attrs.from === `judy@${DOMAIN}/low`);
    const a = await login('ivan', { resource: 'prio' });
    await a.send(xml('message', { to: `judy@${DOMAIN}`, type: 'chat', id: 'p1' }, xml('body', null, 'to the best')));
    await high.waitFor((el) => el.attrs.id === 'p1');
    await low.expectNone((el) => el.attrs.id === 'p1', 300, 'message on the low-priority resource');
  });

  test('an IQ to a full JID reaches that resource and its result comes back', async () => {
    const a = await login('mallory', { resource: 'asker' });
    const b = await login('oscar', { resource: 'answerer' });
    b.xmpp.iqCallee.get('urn:xmpp:test', 'q', () => xml('q', { xmlns: 'urn:xmpp:test' }, 'answer'));
    const r = await a.iq(xml('iq', { type: 'get', to: b.jid }, xml('q', { xmlns: 'urn:xmpp:test' })));
    assert.equal(r.attrs.type, 'result');
    assert.equal(r.attrs.from, b.jid);
    assert.equal(r.getChildText('q', 'urn:xmpp:test'), 'answer');
  });

  test('an IQ to a resource that is not online gets service-unavailable', async () => {
    const a = await login('mallory', { resource: 'asker2' });
    const r = await a.iq(xml('iq', { type: 'get', to: `oscar@${DOMAIN}/gone` }, xml('q', { xmlns: 'urn:xmpp:test' })));
    assert.equal(r.attrs.type, 'error');
    assert.ok(r.getChild('error')?.getChild('service-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  });
});

describe('server features', () => {
  test('disco#info on the server lists its identity and features', async () => {
    const c = await login('peggy', { resource: 'disco' });
    const r = await c.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
    const q = r.getChild('query', 'http://jabber.org/protocol/disco#info')!;
    assert.equal(q.getChild('identity')?.attrs.category, 'server');
    const features = q.getChildren('feature').map((f) => f.attrs.var);
    for (const f of ['urn:xmpp:ping', 'jabber:iq:version', 'urn:xmpp:time', 'msgoffline', 'http://jabber.org/protocol/disco#info']) {
      assert.ok(features.includes(f), `missing ${f}`);
    }
  });

  test('ping, version and time are answered', async () => {
    const c = await login('peggy', { resource: 'small' });
    assert.equal((await c.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('ping', { xmlns: 'urn:xmpp:ping' })))).attrs.type, 'result');
    const v = await c.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: 'jabber:iq:version' })));
    assert.equal(v.getChild('query')?.getChildText('name'), 'Parley');
    const t = await c.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('time', { xmlns: 'urn:xmpp:time' })));
    assert.match(t.getChild('time')?.getChildText('utc') ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  test('an IQ nobody handles gets service-unavailable', async () => {
    const c = await login('peggy', { resource: 'unknown' });
    const r = await c.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: 'urn:example:nothing' })));
    assert.equal(r.attrs.type, 'error');
    assert.ok(r.getChild('error')?.getChild('service-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  });

  test('an IQ with two payloads is a bad-request', async () => {
    const c = await login('peggy', { resource: 'two' });
    const r = await c.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('ping', { xmlns: 'urn:xmpp:ping' }), xml('ping', { xmlns: 'urn:xmpp:ping' })));
    assert.ok(r.getChild('error')?.getChild('bad-request', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  });
});

describe('bad input', () => {
  test('malformed XML ends that stream with not-well-formed and the server keeps serving others', async () => {
    const watcher = await login('trent', { resource: 'watch' });
    const c = await RawClient.connect(ts.port);
    c.write(STREAM_HEADER + '<message><body>unclosed</message>');
    await c.until(/<not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    await c.until(/<\/stream:stream>/);
    await c.untilClosed();
    const r = await watcher.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    assert.equal(r.attrs.type, 'result');
  });

  test('an oversized stanza ends that stream with policy-violation and others are unaffected', async () => {
    const a = await login('victor', { resource: 'big' });
    const b = await login('walter', { resource: 'fine' });
    const errored = new Promise<{ condition?: string }>((resolve) => a.xmpp.on('error', resolve));
    await a.send(xml('message', { to: `walter@${DOMAIN}`, type: 'chat' }, xml('body', null, 'x'.repeat(20000))));
    assert.equal((await errored).condition, 'policy-violation');
    const c = await login('victor', { resource: 'small' });
    await c.send(xml('message', { to: `walter@${DOMAIN}`, type: 'chat', id: 'ok' }, xml('body', null, 'small one')));
    await b.waitFor((el) => el.attrs.id === 'ok');
  });

  test('a DTD ends the stream with restricted-xml', async () => {
    const c = await RawClient.connect(ts.port);
    c.write("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]>" + STREAM_HEADER.slice(21));
    await c.until(/<restricted-xml/);
    await c.untilClosed();
  });

  test('whitespace keep-alives are accepted', async () => {
    const c = await login('walter', { resource: 'ws' });
    c.xmpp.socket.write('   \n  ');
    const r = await c.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    assert.equal(r.attrs.type, 'result');
  });

  test('a stanza claiming another sender ends the stream with invalid-from', async () => {
    const a = await login('walter', { resource: 'spoof' });
    const errored = new Promise<{ condition?: string }>((resolve) => a.xmpp.on('error', resolve));
    await a.send(xml('message', { from: `alice@${DOMAIN}/x`, to: `bob@${DOMAIN}`, type: 'chat' }, xml('body', null, 'fake')));
    assert.equal((await errored).condition, 'invalid-from');
  });

  test('a client closing its stream gets the closing tag back', async () => {
    const c = await login('walter', { resource: 'bye' });
    const el = await c.xmpp.stop();
    assert.ok(el === undefined || String(el).length >= 0);
    assert.equal(c.xmpp.status, 'offline');
  });
});
