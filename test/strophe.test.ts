/**
 * Strophe.js as a real client: the same scenarios over every transport a browser uses
 * (WebSocket, RFC 7395; BOSH, XEP-0124/0206), against users on TCP.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type TestClient } from './helpers/client.js';
import { installXhr } from './helpers/xhr.js';
import { $msg, $pres, nextBody, stropheLogin } from './helpers/strophe.js';

installXhr();

let ts: TestServer;
const clients: TestClient[] = [];

before(async () => {
  ts = await startTestServer();
  for (const u of ['wendy', 'xavier', 'quin', 'ray']) await ts.addUser(u);
});

after(async () => {
  for (const c of clients) await c.stop();
  await ts.stop();
});

const TRANSPORTS = [
  { name: 'WebSocket', url: () => `ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`, user: 'wendy', peer: 'xavier' },
  { name: 'BOSH', url: () => `${ts.httpUrl}/http-bind`, user: 'quin', peer: 'ray' },
];

for (const t of TRANSPORTS) {
  describe(`Strophe.js over ${t.name}`, () => {
    test(`Strophe logs in over ${t.name} and chats with a TCP user`, async () => {
      const tc = await connectClient({ port: ts.port, username: t.peer });
      clients.push(tc);
      const conn = await stropheLogin(t.url(), t.user, 'strophe');
      const got = nextBody(conn);
      conn.send($pres());
      conn.send($msg({ to: `${t.peer}@${DOMAIN}`, type: 'chat', id: 's1' }).c('body').t(`over ${t.name}`));
      const m = await tc.waitFor((el) => el.attrs.id === 's1');
      assert.equal(m.getChildText('body'), `over ${t.name}`);
      await tc.send(xml('message', { to: `${t.user}@${DOMAIN}/strophe`, type: 'chat' }, xml('body', null, `back to ${t.name}`)));
      assert.equal(await got, `back to ${t.name}`);
      conn.disconnect();
    });
  });
}
