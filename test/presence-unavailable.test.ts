/**
 * RFC 6121 §4.5.2: a resource's unavailable presence goes to its contacts, to the user's
 * other resources and back to the resource itself, with its status, like an available
 * presence does (issue 23, point 3).
 */
import { after, before, test } from 'node:test';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { befriend, connectClient, xml, type Element, type TestClient } from './helpers/client.js';

let ts: TestServer;
const open: TestClient[] = [];
const jid = (u: string) => `${u}@${DOMAIN}`;

before(async () => {
  ts = await startTestServer();
  for (const u of ['alice', 'bob']) await ts.addUser(u);
});
after(async () => {
  for (const c of open) await c.stop();
  await ts.stop();
});

async function online(username: string, resource: string): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, resource });
  open.push(c);
  return c;
}

test('an unavailable presence with a status reaches the sender itself, its other resources and its contacts', async () => {
  const phone = await online('alice', 'phone');
  const desk = await online('alice', 'desk');
  const bob = await online('bob', 'r');
  await befriend(phone, 'alice', bob, 'bob');
  const goodbye = (el: Element) => el.name === 'presence' && el.attrs.type === 'unavailable' && el.attrs.from === `${jid('alice')}/phone` && el.getChildText('status') === 'Goodbye';
  await phone.send(xml('presence', { type: 'unavailable' }, xml('status', null, 'Goodbye')));
  await phone.waitFor(goodbye, 5000, 'the echo to the sending resource');
  await desk.waitFor(goodbye, 5000, 'the other resource');
  await bob.waitFor(goodbye, 5000, 'the contact');
  // Once: not again when the session then ends.
  await phone.stop();
  open.splice(open.indexOf(phone), 1);
  await bob.expectNone((el) => el.name === 'presence' && el.attrs.type === 'unavailable' && el.attrs.from === `${jid('alice')}/phone`, 300, 'a second unavailable');
});
