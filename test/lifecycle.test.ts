/**
 * Nothing is lost when sessions end: a client that stops reading is cut off and what it
 * did not get goes to offline storage; a shutdown ends every stream with
 * system-shutdown and stored messages survive a restart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN } from './helpers/server.js';
import { connectClient, rawLogin, xml } from './helpers/client.js';
import { RawBosh } from './helpers/bosh.js';
import { until } from './helpers/until.js';

test('a client that stops reading is disconnected and every message reaches it or offline storage', async () => {
  const ts = await startTestServer({ listen: { c2s: { requireTls: false } }, limits: { maxSendBuffer: '64KiB', closeTimeout: '120s', messagesPerSecond: 0 }, offline: { maxPerUser: 100000 } });
  try {
    await ts.addUser('sender');
    await ts.addUser('sleeper');
    const sleeper = await rawLogin(ts.port, 'sleeper');
    sleeper.write('<presence/>');
    await sleeper.until(/<presence[^>]*from='sleeper@example.test\/raw'/);
    sleeper.socket.pause(); // stops reading: the kernel buffers fill, then the server's

    const sender = await rawLogin(ts.port, 'sender');
    const N = 20000;
    const body = 'x'.repeat(1000);
    let out = '';
    for (let i = 0; i < N; i++) out += `<message to='sleeper@${DOMAIN}' type='chat' id='n${i}'><body>${body}</body></message>`;
    sender.write(out);
    sender.write(`<iq type='get' id='done' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    // Correctness, not speed: 20,000 messages go through the archive and offline storage
    // one by one (about 15 s on a quiet 2-core machine, more with other tests beside it).
    await sender.until(/id='done'/, 90_000);
    // The server gave up on the sleeper: its session is gone from the registry.
    assert.equal(ts.server.core.sessions.resources(`sleeper@${DOMAIN}`).length, 0, 'the slow reader was cut off');

    // It reads again before the close timeout: it gets what the server had written, up to
    // the stream error, and the connection closes.
    sleeper.socket.resume();
    await sleeper.untilClosed(20000);
    const got = new Set<string>();
    let dup = 0;
    const count = (text: string) => {
      for (const m of text.matchAll(/<message [^>]*id='(n\d+)'/g)) {
        if (got.has(m[1]!)) dup++;
        got.add(m[1]!);
      }
    };
    count(sleeper.text);
    assert.match(sleeper.text, /<policy-violation/, 'the stream error came after the last message written');
    const beforeOffline = got.size;

    // The rest waits in offline storage: the hand-off of the closed session is tracked work.
    assert.ok(await ts.server.core.settle(30_000), 'the offline hand-off finished');
    const back = await rawLogin(ts.port, 'sleeper', 'secret', 'back');
    back.write('<presence/>');
    const deadline = Date.now() + 60_000;
    while (got.size < N && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      got.clear();
      dup = 0;
      count(sleeper.text);
      count(back.text);
    }
    assert.equal(dup, 0, 'no message delivered twice');
    assert.equal(got.size, N, `all ${N} messages arrived (${beforeOffline} live, the rest from offline storage)`);
    assert.ok(beforeOffline < N, 'some messages went through offline storage');
    back.close();
    sender.close();
  } finally {
    await ts.stop();
  }
});

test('shutdown ends streams with system-shutdown and offline messages survive a restart', async () => {
  const ts = await startTestServer();
  await ts.addUser('amy');
  await ts.addUser('ben');
  const amy = await connectClient({ port: ts.port, username: 'amy' });
  await amy.send(xml('message', { to: `ben@${DOMAIN}`, type: 'chat', id: 'keep' }, xml('body', null, 'see you after the restart')));
  await amy.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  const errored = new Promise<{ condition?: string }>((resolve) => amy.xmpp.on('error', resolve));
  await ts.stop({ keepData: true });
  assert.equal((await errored).condition, 'system-shutdown');
  await amy.stop();

  const again = await startTestServer({ dataDir: ts.dataDir });
  try {
    const ben = await connectClient({ port: again.port, username: 'ben' });
    const m = await ben.waitFor((el) => el.attrs.id === 'keep');
    assert.equal(m.getChildText('body'), 'see you after the restart');
    await ben.stop();
  } finally {
    await again.stop();
  }
});

test('shutdown answers held BOSH requests with system-shutdown and stores what was queued', async () => {
  const ts = await startTestServer();
  await ts.addUser('cat');
  await ts.addUser('dog');
  const b = new RawBosh(`${ts.httpUrl}/http-bind`);
  await b.login('cat', 'secret', { create: { wait: '30' } });
  const held = b.send();
  await until('the request is held', () => (ts.server.bosh!.requestsOf(b.sid)?.held ?? 0) >= 1);
  const stopping = ts.stop({ keepData: true });
  const r = await held;
  assert.equal(r.body.attrs.type, 'terminate');
  assert.equal(r.body.attrs.condition, 'system-shutdown');
  await stopping;
  const again = await startTestServer({ dataDir: ts.dataDir });
  try {
    // The session is gone after the restart; the account is still there.
    const dog = await connectClient({ port: again.port, username: 'dog' });
    await dog.stop();
  } finally {
    await again.stop();
  }
});
