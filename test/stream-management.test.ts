/**
 * XEP-0198 Stream Management over TCP and WebSocket, driven from outside: enabling,
 * acks both ways, resumption after a cut connection with nothing lost or duplicated,
 * failed resumption (messages go to offline storage), and the error cases.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from './helpers/until.js';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { XmlClient } from './helpers/xml-client.js';
import { connectClient, xml, type TestClient } from './helpers/client.js';
import { RawBosh } from './helpers/bosh.js';
import { Jid } from '../src/xmpp/jid.js';

const SM = 'urn:xmpp:sm:3';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';

let ts: TestServer;
const open: XmlClient[] = [];
const libClients: TestClient[] = [];

before(async () => {
  ts = await startTestServer({ listen: { c2s: { requireTls: false } }, streamManagement: { ackTimeout: '1s' } });
  for (const u of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'hank', 'ivy', 'jack', 'kim', 'lou', 'mia', 'ned', 'olga', 'pete', 'quill', 'rex']) await ts.addUser(u);
});

after(async () => {
  for (const c of open) c.cut();
  for (const c of libClients) await c.stop();
  await ts.stop();
});

const tcp = async (): Promise<XmlClient> => {
  const c = await XmlClient.tcp(ts.port);
  open.push(c);
  return c;
};
const ws = async (): Promise<XmlClient> => {
  const c = await XmlClient.ws(`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`);
  open.push(c);
  return c;
};

/** A plain sender (no stream management). */
async function sender(user: string): Promise<XmlClient> {
  const c = await tcp();
  await c.login(user);
  await c.bind('send');
  return c;
}

function sendMessages(from: XmlClient, to: string, bodies: string[]): void {
  from.write(bodies.map((b) => `<message to='${to}' type='chat' id='${b}'><body>${b}</body></message>`).join(''));
}

/** Waits until `c` has received messages with all these bodies. */
async function untilBodies(c: XmlClient, bodies: string[]): Promise<void> {
  for (const b of bodies) await c.waitFor((el) => el.name === 'message' && el.getChildText('body') === b, `message ${b}`);
}

/** The server's session for a full JID (the c2s session: hibernation is visible on it). */
function session(user: string, resource: string): { isHibernated: boolean; transport: string } | undefined {
  return ts.server.core.sessions.get(Jid.of(user, DOMAIN, resource)) as unknown as { isHibernated: boolean; transport: string } | undefined;
}

describe('enabling', () => {
  test('<sm/> is offered after authentication on TCP and WebSocket, not before, and not on BOSH', async () => {
    for (const connect of [tcp, ws]) {
      const c = await connect();
      const features = await c.login('alice');
      assert.ok(features.getChild('sm', SM), 'offered after authentication');
      assert.ok(!c.received[0]!.getChild('sm', SM), 'not offered before');
      c.end();
    }
    const bosh = new RawBosh(`${ts.httpUrl}/http-bind`);
    await bosh.login('alice', 'secret', { resource: 'bosh', presence: false });
    const r = await bosh.send({}, `<enable xmlns='${SM}' resume='true'/>`);
    const failed = await bosh.until(r, 'failed');
    assert.ok(failed.getChild('feature-not-implemented', STANZAS), 'BOSH has its own reliability');
    await bosh.send({ type: 'terminate' });
  });

  test('enable before binding fails with unexpected-request; after binding it gives an id, resume and max', async () => {
    const c = await tcp();
    await c.login('bob');
    c.write(`<enable xmlns='${SM}' resume='true'/>`);
    assert.ok((await c.sm('failed')).getChild('unexpected-request', STANZAS));
    await c.bind('r1');
    c.write(`<enable xmlns='${SM}' resume='true' max='60'/>`);
    const enabled = await c.sm('enabled');
    assert.equal(enabled.attrs.resume, 'true');
    assert.equal(enabled.attrs.max, '60', "the client's shorter max is granted");
    assert.ok((enabled.attrs.id ?? '').length >= 16, 'an unguessable id');
    c.write(`<enable xmlns='${SM}'/>`);
    assert.ok((await c.sm('failed')).getChild('unexpected-request', STANZAS), 'enabling twice');
    c.end();
  });

  test('without resume the session is not resumable and ends with its connection', async () => {
    const c = await tcp();
    await c.login('carol');
    await c.bind('plain');
    c.write(`<enable xmlns='${SM}'/>`);
    const enabled = await c.sm('enabled');
    assert.equal(enabled.attrs.id, undefined);
    assert.equal(enabled.attrs.resume, undefined);
    c.cut();
    await until('the session ended', () => ts.server.core.sessions.resources(`carol@${DOMAIN}`).length === 0);
  });

  test('<r/> and <a/> before enabling fail with unexpected-request', async () => {
    const c = await tcp();
    await c.login('carol');
    await c.bind('early');
    c.write(`<r xmlns='${SM}'/>`);
    assert.ok((await c.sm('failed')).getChild('unexpected-request', STANZAS));
    c.end();
  });
});

describe('acknowledgements', () => {
  test('the server answers <r/> with the number of stanzas it handled', async () => {
    for (const connect of [tcp, ws]) {
      const { c } = await XmlClient.session(connect, 'dave', 'count', { presence: false });
      c.write('<presence/>');
      c.write(`<iq type='get' id='p1' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`);
      c.write(`<iq type='get' id='p2' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`);
      // Even a stanza that gets an error counts as handled.
      c.write(`<message to='nobody@${DOMAIN}' type='chat'><body>x</body></message>`);
      c.write(`<r xmlns='${SM}'/>`);
      const a = await c.sm('a');
      assert.equal(a.attrs.h, '4');
      c.end();
      await until('closed', () => ts.server.core.sessions.resources(`dave@${DOMAIN}`).length === 0);
    }
  });

  test('the server asks for an acknowledgement after a message, and an acknowledged stanza is not sent again', async () => {
    const { c, id } = await XmlClient.session(tcp, 'erin', 'phone');
    const s = await sender('frank');
    sendMessages(s, `erin@${DOMAIN}/phone`, ['one']);
    await untilBodies(c, ['one']);
    await c.sm('r');
    c.ack();
    c.cut();
    await until('hibernated', () => session('erin', 'phone')?.isHibernated === true);
    const again = await tcp();
    await again.login('erin');
    const resumed = await again.resume(id, c.h!);
    assert.equal(resumed.name, 'resumed');
    await again.expectNone((el) => el.name === 'message', 200, 'resent message');
    again.end();
    s.end();
  });

  test('an acknowledgement of more than was sent ends the stream with undefined-condition and handled-count-too-high', async () => {
    for (const connect of [tcp, ws]) {
      const { c } = await XmlClient.session(connect, 'gina', 'liar');
      const sent = c.h!;
      c.write(`<a xmlns='${SM}' h='${sent + 5}'/>`);
      const err = await c.waitFor((el) => el.localName === 'error' && !!el.getChild('undefined-condition', STREAMS), 'stream error');
      const detail = err.getChild('handled-count-too-high', SM);
      assert.ok(detail, 'the SM condition');
      assert.equal(detail.attrs.h, String(sent + 5));
      assert.equal(detail.attrs['send-count'], String(sent));
      await until('stream closed', () => c.streamClosed || c.closed);
    }
  });

  test('an <a/> with an h that is not a number ends the stream with bad-format', async () => {
    const { c } = await XmlClient.session(tcp, 'gina', 'nan');
    c.write(`<a xmlns='${SM}' h='many'/>`);
    await c.waitFor((el) => el.localName === 'error' && !!el.getChild('bad-format', STREAMS), 'bad-format');
  });
});

describe('resumption', () => {
  for (const [name, connect] of [
    ['TCP', tcp],
    ['WebSocket', ws],
  ] as const) {
    test(`after a cut ${name} connection every message arrives exactly once and in order`, async () => {
      const user = name === 'TCP' ? 'hank' : 'olga';
      const { c, id } = await XmlClient.session(connect, user, name);
      const s = await sender('ivy');
      const to = `${user}@${DOMAIN}/${name}`;
      sendMessages(s, to, ['m1', 'm2', 'm3']);
      await untilBodies(c, ['m1', 'm2', 'm3']);
      // The client processed m1..m3 but its acknowledgement never left: the network dies.
      const handled = c.h!;
      const firstBodies = c.bodies();
      c.cut();
      await until('hibernated', () => session(user, name)?.isHibernated === true);
      // While it is away its contacts still see it (no unavailable presence), and messages queue.
      sendMessages(s, to, ['m4', 'm5']);
      sendMessages(s, `${user}@${DOMAIN}`, ['m6']);
      await new Promise((r) => setTimeout(r, 100));

      const again = await connect();
      await again.login(user);
      const resumed = await again.resume(id, handled);
      assert.equal(resumed.name, 'resumed');
      assert.equal(resumed.attrs.previd, id);
      assert.equal(resumed.attrs.h, '1', 'the server tells what it handled of ours (the presence)');
      await untilBodies(again, ['m4', 'm5', 'm6']);
      sendMessages(s, to, ['m7']);
      await untilBodies(again, ['m7']);
      const all = [...firstBodies, ...again.bodies()];
      assert.deepEqual(all, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7'], 'exactly once, in order');
      // The resumed session is the same bound resource, on the new connection.
      const live = session(user, name);
      assert.equal(live?.isHibernated, false);
      again.write(`<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>`);
      await again.waitFor((el) => el.attrs.id === 'after', 'IQ on the resumed stream');
      again.end();
      s.end();
    });
  }

  test('unacknowledged stanzas are sent again after <resumed/>, from what the client says it handled', async () => {
    const { c, id } = await XmlClient.session(tcp, 'jack', 'lossy');
    const s = await sender('kim');
    sendMessages(s, `jack@${DOMAIN}/lossy`, ['a1', 'a2', 'a3', 'a4']);
    await untilBodies(c, ['a1', 'a2', 'a3', 'a4']);
    // Say only the first message was handled (the rest was lost on the way to the app).
    const h = c.h! - 3;
    c.cut();
    const again = await tcp();
    await again.login('jack');
    assert.equal((await again.resume(id, h)).name, 'resumed');
    await untilBodies(again, ['a2', 'a3', 'a4']);
    assert.deepEqual(again.bodies(), ['a2', 'a3', 'a4']);
    again.end();
    s.end();
  });

  test('resuming while the old connection is still open (half-open) closes the old one and moves the session', async () => {
    const { c, id } = await XmlClient.session(tcp, 'lou', 'half');
    const s = await sender('mia');
    sendMessages(s, `lou@${DOMAIN}/half`, ['h1']);
    await untilBodies(c, ['h1']);
    const handled = c.h!;
    const again = await ws();
    await again.login('lou');
    assert.equal((await again.resume(id, handled)).name, 'resumed');
    await until('the old connection was closed', () => c.streamClosed || c.closed);
    sendMessages(s, `lou@${DOMAIN}/half`, ['h2']);
    await untilBodies(again, ['h2']);
    assert.deepEqual(again.bodies(), ['h2']);
    assert.equal(session('lou', 'half')?.transport, 'websocket');
    again.end();
    s.end();
  });

  test('a connection that does not answer ack requests counts as dead and the session can be resumed', async () => {
    const { c, id } = await XmlClient.session(tcp, 'ned', 'silent');
    const s = await sender('alice');
    sendMessages(s, `ned@${DOMAIN}/silent`, ['q1']);
    await untilBodies(c, ['q1']);
    await c.sm('r');
    // No answer: after ackTimeout (1 s here) the server lets the connection go.
    await until('the server closed the silent connection', () => c.streamClosed || c.closed, 4000);
    const again = await tcp();
    await again.login('ned');
    assert.equal((await again.resume(id, 0)).name, 'resumed');
    await untilBodies(again, ['q1']);
    again.end();
    s.end();
  });
});

describe('failed resumption', () => {
  test('an unknown id fails with item-not-found and the client can bind a new session', async () => {
    const c = await tcp();
    await c.login('alice');
    const failed = await c.resume('no-such-id', 0);
    assert.equal(failed.name, 'failed');
    assert.ok(failed.getChild('item-not-found', STANZAS));
    assert.match(await c.bind('fresh'), /alice@example\.test\/fresh/);
    c.end();
  });

  test("another user's session cannot be resumed: item-not-found, and it stays resumable", async () => {
    const { c, id } = await XmlClient.session(tcp, 'bob', 'mine');
    const handled = c.h!;
    c.cut();
    const thief = await tcp();
    await thief.login('carol');
    const failed = await thief.resume(id, 0);
    assert.ok(failed.getChild('item-not-found', STANZAS));
    assert.equal(failed.attrs.h, undefined, 'nothing is told about it');
    const owner = await tcp();
    await owner.login('bob');
    assert.equal((await owner.resume(id, handled)).name, 'resumed');
    owner.end();
    thief.end();
  });

  test('after the resumption time every unacknowledged message is in offline storage and is delivered at the next login', async () => {
    const { c, id } = await XmlClient.session(tcp, 'dave', 'gone', { max: 1 });
    const s = await sender('erin');
    sendMessages(s, `dave@${DOMAIN}/gone`, ['o1', 'o2']);
    await untilBodies(c, ['o1', 'o2']);
    c.ack(c.h! - 1); // o2 not acknowledged
    await new Promise((r) => setTimeout(r, 50));
    c.cut();
    await until('hibernated', () => session('dave', 'gone')?.isHibernated === true);
    sendMessages(s, `dave@${DOMAIN}/gone`, ['o3']);
    sendMessages(s, `dave@${DOMAIN}`, ['o4']);
    await until('the session expired', () => ts.server.core.sessions.resources(`dave@${DOMAIN}`).length === 0, 4000);
    await new Promise((r) => setTimeout(r, 100));

    const late = await tcp();
    await late.login('dave');
    const failed = await late.resume(id, 0);
    assert.ok(failed.getChild('item-not-found', STANZAS));
    assert.ok(Number(failed.attrs.h) >= 1, 'the final count of the expired session is told to its owner');
    await late.bind('back');
    late.write('<presence/>');
    await untilBodies(late, ['o2', 'o3', 'o4']);
    assert.deepEqual(late.bodies(), ['o2', 'o3', 'o4'], 'nothing acknowledged comes again, nothing is lost, order kept');
    for (const m of late.received.filter((e) => e.name === 'message')) assert.ok(m.getChild('delay', 'urn:xmpp:delay'), 'offline delivery is stamped');
    late.end();
    s.end();
  });

  test('a resumption claiming more than was sent ends with handled-count-too-high, and the messages go offline', async () => {
    const { c, id } = await XmlClient.session(tcp, 'frank', 'bad');
    const s = await sender('gina');
    sendMessages(s, `frank@${DOMAIN}/bad`, ['t1']);
    await untilBodies(c, ['t1']);
    const h = c.h!;
    c.cut();
    const again = await tcp();
    await again.login('frank');
    again.write(`<resume xmlns='${SM}' previd='${id}' h='${h + 10}'/>`);
    const err = await again.waitFor((el) => el.localName === 'error' && !!el.getChild('undefined-condition', STREAMS), 'stream error');
    assert.ok(err.getChild('handled-count-too-high', SM));
    await until('the old session ended', () => ts.server.core.sessions.resources(`frank@${DOMAIN}`).length === 0);
    const next = await tcp();
    await next.login('frank');
    await next.bind('next');
    next.write('<presence/>');
    await untilBodies(next, ['t1']);
    next.end();
    s.end();
  });

  test('a hibernated session replaced by a new login of the same resource hands its messages on', async () => {
    const { c } = await XmlClient.session(tcp, 'hank', 'same');
    const s = await sender('ivy');
    sendMessages(s, `hank@${DOMAIN}/same`, ['r1']);
    await untilBodies(c, ['r1']);
    c.cut();
    await until('hibernated', () => session('hank', 'same')?.isHibernated === true);
    sendMessages(s, `hank@${DOMAIN}/same`, ['r2']);
    await new Promise((r) => setTimeout(r, 50));
    const fresh = await tcp();
    await fresh.login('hank');
    await fresh.bind('same');
    fresh.write('<presence/>');
    await untilBodies(fresh, ['r1', 'r2']);
    fresh.end();
    s.end();
  });
});

describe('a session the server closes', () => {
  for (const [name, connect, user] of [['TCP', tcp, 'quill'], ['WebSocket', ws, 'rex']] as const) {
    test(`${name}: the server asks for an acknowledgement before its closing tag; what the client acknowledges then is not stored again, the rest is`, async () => {
      const { c } = await XmlClient.session(connect, user, 'old', { resume: false });
      const s = await sender('olga');
      sendMessages(s, `${user}@${DOMAIN}/old`, [`${user}-1`, `${user}-2`]);
      await untilBodies(c, [`${user}-1`, `${user}-2`]);
      const before = c.received.length;
      // A new login with the same resource: the server ends the old session with <conflict/>.
      const next = await connect();
      await next.login(user);
      await next.bind('old');
      const err = await c.waitFor((el) => el.localName === 'error' && !!el.getChild('conflict', STREAMS), 'conflict');
      const tail = c.received.slice(before, c.received.indexOf(err));
      assert.ok(tail.some((el) => el.ns === SM && el.name === 'r'), `an <r/> before the stream error: ${tail.map((e) => e.name).join(' ')}`);
      // The client answers after the server's closing tag: the first message handled, not the second.
      c.ack(c.h! - 1);
      c.end({ ack: false });
      await c.untilClosed();
      next.write('<presence/>');
      await untilBodies(next, [`${user}-2`]);
      await next.expectNone((el) => el.name === 'message' && el.getChildText('body') === `${user}-1`, 300, 'the acknowledged message again');
      assert.deepEqual(next.bodies(), [`${user}-2`]);
      next.end();
      s.end();
    });
  }
});

describe('with @xmpp/client', () => {
  test('@xmpp/client enables stream management and resumes after its socket is cut', async () => {
    const bob = await connectClient({ port: ts.port, username: 'jack', resource: 'lib' });
    libClients.push(bob);
    const alice = await connectClient({ port: ts.port, username: 'kim', resource: 'lib' });
    libClients.push(alice);
    await until('SM enabled', () => (bob.xmpp.streamManagement?.enabled as boolean) === true);
    const id = bob.xmpp.streamManagement.id as string;
    assert.ok(id);
    await alice.send(xml('message', { to: `jack@${DOMAIN}/lib`, type: 'chat', id: 'x1' }, xml('body', null, 'before')));
    await bob.waitFor((el) => el.attrs.id === 'x1');
    // Cut the socket under the library and let it reconnect and resume.
    const resumed = new Promise<void>((resolve) => bob.xmpp.streamManagement.once('resumed', () => resolve()));
    bob.xmpp.reconnect.delay = 50;
    bob.xmpp.reconnect.start();
    await until('bound', () => session('jack', 'lib') !== undefined);
    bob.xmpp.socket.socket.destroy();
    await until('hibernated', () => session('jack', 'lib')?.isHibernated === true);
    await alice.send(xml('message', { to: `jack@${DOMAIN}/lib`, type: 'chat', id: 'x2' }, xml('body', null, 'while away')));
    await resumed;
    await bob.waitFor((el) => el.attrs.id === 'x2');
    assert.equal(bob.xmpp.streamManagement.id, id, 'the same session');
    assert.equal(bob.received.filter((el) => el.attrs.id === 'x1').length, 1, 'no duplicate');
  });
});

describe('bounds and shutdown', () => {
  test('a client that does not acknowledge more than maxQueue stanzas loses the session, and its messages go offline', async () => {
    const small = await startTestServer({ listen: { c2s: { requireTls: false } }, streamManagement: { maxQueue: 10 } });
    try {
      await small.addUser('quinn');
      await small.addUser('ruth');
      const c = await XmlClient.session(() => XmlClient.tcp(small.port), 'quinn', 'slow', { presence: false });
      const s = await XmlClient.tcp(small.port);
      await s.login('ruth');
      await s.bind('send');
      const bodies = Array.from({ length: 12 }, (_, i) => `b${i}`);
      sendMessages(s, `quinn@${DOMAIN}/slow`, bodies);
      await c.c.waitFor((el) => el.localName === 'error' && !!el.getChild('resource-constraint', STREAMS), 'resource-constraint');
      await until('the session ended', () => small.server.core.sessions.resources(`quinn@${DOMAIN}`).length === 0);
      const back = await XmlClient.tcp(small.port);
      await back.login('quinn');
      await back.bind('back');
      back.write('<presence/>');
      await untilBodies(back, bodies);
      const live = new Set(c.c.bodies());
      assert.ok(live.size >= 10, 'the first ones reached the connection');
      assert.deepEqual(back.bodies(), bodies, 'every unacknowledged message, in order, from offline storage');
      for (const x of [c.c, s, back]) x.cut();
    } finally {
      await small.stop();
    }
  });

  test('a session waiting for resumption when the server stops hands its messages to offline storage', async () => {
    let srv = await startTestServer({ listen: { c2s: { requireTls: false } } });
    const dataDir = srv.dataDir;
    try {
      await srv.addUser('sid');
      await srv.addUser('tess');
      const { c } = await XmlClient.session(() => XmlClient.tcp(srv.port), 'sid', 'away');
      const s = await XmlClient.tcp(srv.port);
      await s.login('tess');
      await s.bind('send');
      sendMessages(s, `sid@${DOMAIN}/away`, ['k1']);
      await untilBodies(c, ['k1']);
      c.cut();
      await until('hibernated', () => (srv.server.core.sessions.get(Jid.of('sid', DOMAIN, 'away')) as unknown as { isHibernated: boolean } | undefined)?.isHibernated === true);
      sendMessages(s, `sid@${DOMAIN}/away`, ['k2']);
      await new Promise((r) => setTimeout(r, 100));
      s.cut();
      await srv.stop({ keepData: true });
      srv = await startTestServer({ dataDir, listen: { c2s: { requireTls: false } } });
      const back = await XmlClient.tcp(srv.port);
      await back.login('sid');
      await back.bind('back');
      back.write('<presence/>');
      await untilBodies(back, ['k1', 'k2']);
      assert.deepEqual(back.bodies(), ['k1', 'k2']);
      back.cut();
    } finally {
      await srv.stop();
    }
  });
});
