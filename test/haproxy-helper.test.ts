/**
 * The haproxy configuration (src/ops/haproxy-config.ts, deploy/haproxy.cfg) in front of
 * two fake nodes: BOSH stickiness by cookie, draining through /health/ready, a dead
 * node's cookie redispatched, and the c2s TCP backend balanced.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { BOSH_COOKIE } from '../src/ops/haproxy-config.js';
import { startHaproxy, type RunningHaproxy } from './helpers/haproxy.js';
import { needHaproxy } from './helpers/tools.js';
import { within } from './helpers/until.js';
import { RawClient } from './helpers/client.js';

/** A node as haproxy sees it: /health/ready, /http-bind answering its name, a c2s port greeting with its name. */
interface FakeNode {
  name: string;
  ready: boolean;
  http: HttpServer;
  c2s: NetServer;
  httpPort: number;
  c2sPort: number;
  close(): Promise<void>;
}

async function listen(server: HttpServer | NetServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function fakeNode(name: string): Promise<FakeNode> {
  const sockets = new Set<Socket>();
  const node: FakeNode = {
    name,
    ready: true,
    http: createHttpServer((req, res) => {
      if (req.url === '/health/ready') res.writeHead(node.ready ? 200 : 503).end(node.ready ? 'ready' : 'draining');
      else if (req.url === '/http-bind') res.writeHead(200, { 'content-type': 'text/plain', 'x-cookie-seen': req.headers.cookie ?? '' }).end(name);
      else res.writeHead(404).end();
    }),
    c2s: createNetServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      s.write(name);
    }),
    httpPort: 0,
    c2sPort: 0,
    async close() {
      const closed = Promise.all([
        new Promise((r) => node.http.close(r)),
        new Promise((r) => node.c2s.close(r)),
      ]);
      node.http.closeAllConnections();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
  node.httpPort = await listen(node.http);
  node.c2sPort = await listen(node.c2s);
  return node;
}

interface Answer {
  node: string;
  /** The PARLEY_NODE value haproxy set, if it set one. */
  setCookie: string | undefined;
  /** The Cookie header the node received. */
  cookieSeen: string;
}

async function bosh(hp: RunningHaproxy, cookie?: string): Promise<Answer> {
  const res = await fetch(`http://127.0.0.1:${hp.httpPort}/http-bind`, {
    method: 'POST',
    body: '<body/>',
    headers: cookie ? { cookie: `${BOSH_COOKIE}=${cookie}` } : {},
  });
  assert.equal(res.status, 200, `HTTP ${res.status}\n${hp.log().slice(-2000)}`);
  const set = res.headers.get('set-cookie') ?? '';
  return {
    node: await res.text(),
    setCookie: new RegExp(`${BOSH_COOKIE}=([^;]*)`).exec(set)?.[1],
    cookieSeen: res.headers.get('x-cookie-seen') ?? '',
  };
}

/** Opens a c2s connection through haproxy (the shared RawClient) and resolves with the greeting (the node's name); the connection stays open. */
async function c2sGreeting(hp: RunningHaproxy, open: RawClient[]): Promise<string> {
  const c = await RawClient.connect(hp.c2sPort);
  open.push(c);
  return c.until(/\S/, 10_000);
}

describe('haproxy in front of two nodes', { skip: needHaproxy() }, () => {
  let a: FakeNode;
  let b: FakeNode;
  let hp: RunningHaproxy;

  before(async () => {
    [a, b] = await Promise.all([fakeNode('a'), fakeNode('b')]);
    // The fake nodes do not read PROXY headers (client addresses: test/proxy-addresses.test.ts).
    hp = await startHaproxy({
      proxyProtocol: false,
      nodes: [a, b].map((n) => ({ name: n.name, host: '127.0.0.1', c2sPort: n.c2sPort, httpPort: n.httpPort })),
      checkInterval: 200,
      fall: 2,
      rise: 2,
    });
    for (const be of ['bosh', 'websocket', 'c2s']) for (const n of ['a', 'b']) await hp.waitFor(`${be}/${n}`, 'UP');
  });
  after(async () => {
    await hp?.stop();
    await Promise.all([a?.close(), b?.close()]);
  });

  test('c2s connections are spread over the nodes (leastconn)', async () => {
    const open: RawClient[] = [];
    try {
      const greetings: string[] = [];
      for (let i = 0; i < 4; i++) greetings.push(await c2sGreeting(hp, open));
      assert.deepEqual(greetings.sort(), ['a', 'a', 'b', 'b']);
    } finally {
      for (const c of open) c.close();
    }
  });

  test('a BOSH client gets a cookie naming its node and sticks to it; the node never sees the cookie', async () => {
    const first = await bosh(hp);
    assert.equal(first.setCookie, first.node);
    for (let i = 0; i < 6; i++) {
      const next = await bosh(hp, first.node);
      assert.equal(next.node, first.node);
      assert.equal(next.setCookie, undefined); // indirect: no new cookie while it stays valid
      assert.equal(next.cookieSeen, ''); // indirect: removed before the node
    }
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await bosh(hp)).node);
    assert.deepEqual([...seen].sort(), ['a', 'b'], 'new sessions go to both nodes');
  });

  test('a draining node (503 on /health/ready) gets no new sessions, but its BOSH cookie still reaches it', async () => {
    a.ready = false;
    try {
      for (const be of ['bosh', 'websocket', 'c2s']) await hp.waitFor(`${be}/a`, 'DOWN');
      for (let i = 0; i < 6; i++) {
        const fresh = await bosh(hp);
        assert.equal(fresh.node, 'b');
        assert.equal(fresh.setCookie, 'b');
      }
      const open: RawClient[] = [];
      try {
        for (let i = 0; i < 3; i++) assert.equal(await c2sGreeting(hp, open), 'b');
      } finally {
        for (const c of open) c.close();
      }
      const old = await bosh(hp, 'a'); // option persist
      assert.equal(old.node, 'a');
      assert.equal(old.setCookie, undefined);
    } finally {
      a.ready = true;
    }
    await hp.waitFor('bosh/a', 'UP');
  });

  test('the cookie of a dead node is redispatched to a live one, which gets a new cookie', async () => {
    await a.close();
    await hp.waitFor('bosh/a', 'DOWN');
    // persist tries a, connecting fails, the last retry goes to b (promptly: a bound on the event)
    const moved = await within('the request redispatched to b', bosh(hp, 'a'), 10_000);
    assert.equal(moved.node, 'b');
    assert.equal(moved.setCookie, 'b');
    assert.equal((await bosh(hp, 'b')).node, 'b');
  });
});
