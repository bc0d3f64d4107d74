/**
 * External components (XEP-0114) in a cluster: two nodes in this process and a third in
 * a child process, sharing a Redis. A component connected to one node gets the stanzas
 * users of another node send it, and its stanzas reach them; which node holds which
 * component is in Redis; a second connection for the host on another node is refused;
 * when the component leaves, or the node holding it is killed (SIGKILL), its entry goes
 * and stanzas for it bounce with service-unavailable.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startTestServer, CLUSTER_SECRET, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { until } from './helpers/until.js';
import { killQuietly, trackChild, untrackChild } from './helpers/reaper.js';
import { openComponent, startEchoComponent, xml as cxml, type EchoComponent } from './fixtures/echo-component.js';

const REDIS = process.env.PARLEY_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const BIN = fileURLToPath(new URL('../../bin/parley.js', import.meta.url));
const prefix = `parley-test-${randomBytes(4).toString('hex')}`;
const dataDir = mkdtempSync(join(tmpdir(), 'parley-component-cluster-'));
const HOST = 'echo.example.test';
const HOST2 = 'gateway.example.test';
const SECRET = 'echo-component-secret-0123456789abcdef';
const SECRET2 = 'gateway-component-secret-0123456789abc';
const COMPONENTS = [
  { host: HOST, secret: SECRET },
  { host: HOST2, secret: SECRET2 },
];
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const jid = (u: string) => `${u}@${DOMAIN}`;

const nodes: TestServer[] = [];
const clients: TestClient[] = [];
const components: EchoComponent[] = [];
let redis: Redis;
let child: ChildProcess | null = null;
const childLog: string[] = [];

function errorCondition(el: Element): string | undefined {
  return el.getChild('error')?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === STANZAS && c.name !== 'text')?.name;
}

function startNode(id: string): Promise<TestServer> {
  return startTestServer({
    dataDir,
    listen: { component: { port: 0 } },
    components: COMPONENTS,
    cluster: { driver: 'redis', url: REDIS, prefix, nodeId: id, secret: CLUSTER_SECRET, heartbeat: '200ms', lease: '2s', drainTimeout: '0s' },
  });
}

let logins = 0;
async function login(node: TestServer, user: string): Promise<TestClient> {
  const c = await connectClient({ port: node.port, username: user, resource: `r${++logins}` });
  clients.push(c);
  return c;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

/** A third node in a child process (so it can be killed), with its component port. */
async function startChildNode(id: string): Promise<{ componentPort: number }> {
  const httpPort = await freePort();
  const componentPort = await freePort();
  const file = join(dataDir, `${id}.yaml`);
  writeFileSync(
    file,
    JSON.stringify({
      domain: DOMAIN,
      dataDir,
      listen: { c2s: { port: 0 }, c2sTls: { enabled: false }, http: { port: httpPort }, component: { port: componentPort } },
      components: COMPONENTS,
      tls: { cert: process.env.PARLEY_TEST_CERT, key: process.env.PARLEY_TEST_KEY },
      cluster: { driver: 'redis', url: REDIS, prefix, nodeId: id, secret: CLUSTER_SECRET, heartbeat: '200ms', lease: '2s', drainTimeout: '0s' },
      log: { level: 'warn' },
    }),
  );
  const proc = spawn(process.execPath, [BIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(proc);
  proc.once('exit', () => untrackChild(proc));
  const keep = (b: Buffer) => {
    childLog.push(...b.toString().split('\n').filter(Boolean));
    if (childLog.length > 200) childLog.splice(0, childLog.length - 200);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  child = proc;
  await until(
    `${id} ready (log: ${childLog.slice(-5).join(' | ')})`,
    async () => {
      if (proc.exitCode !== null) throw new Error(`${id} exited: ${childLog.join('\n')}`);
      try {
        return (await fetch(`http://127.0.0.1:${httpPort}/health/ready`)).status === 200;
      } catch {
        return false;
      }
    },
    30_000,
  );
  return { componentPort };
}

before(async () => {
  redis = new Redis(REDIS);
  for (const id of ['n1', 'n2']) nodes.push(await startNode(id));
  for (const u of ['alice', 'bob']) await nodes[0]!.addUser(u);
  await until('both nodes see two members', () => nodes.every((n) => n.server.cluster!.members().length === 2));
});

after(async () => {
  for (const c of components) await c.stop();
  for (const c of clients) await c.stop();
  if (child) killQuietly(child, 'SIGKILL');
  for (const n of nodes) await n.stop({ keepData: true });
  rmSync(dataDir, { recursive: true, force: true });
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

test('a component connected to one node gets what users of the other node send it, and its stanzas reach them', async () => {
  const [n1, n2] = [nodes[0]!, nodes[1]!];
  const echo = await startEchoComponent({ port: n1.server.port('component'), host: HOST, secret: SECRET });
  components.push(echo);
  assert.equal(await redis.hget(`${prefix}:components`, HOST), 'n1');
  const alice = await login(n2, 'alice');
  const bob = await login(n1, 'bob');

  await alice.send(xml('message', { to: HOST, type: 'chat', id: 'x1' }, xml('body', {}, 'across nodes')));
  const back = await alice.message(HOST);
  assert.equal(back.getChildText('body'), 'across nodes');
  assert.equal((await echo.waitFor((el) => el.attrs.id === 'x1', 'the message')).attrs.from, alice.jid);

  const info = await alice.iq(xml('iq', { to: HOST, type: 'get' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  assert.equal(info.attrs.type, 'result', info.toString());
  assert.equal(info.getChild('query')?.getChild('identity')?.attrs.name, 'Echo component');
  const version = await alice.iq(xml('iq', { to: `bot@${HOST}`, type: 'get' }, xml('query', { xmlns: 'jabber:iq:version' })));
  assert.equal(version.attrs.type, 'result', version.toString());

  // The component writes first, to users on both nodes.
  for (const [c, u] of [
    [alice, 'alice'],
    [bob, 'bob'],
  ] as const) {
    await echo.send(cxml('message', { from: `bot@${HOST}`, to: jid(u), type: 'chat' }, cxml('body', {}, `hello ${u}`)));
    assert.equal((await c.message(`bot@${HOST}`)).getChildText('body'), `hello ${u}`);
  }
  assert.ok(n2.server.core.stats.componentStanzasOut.message === 0, 'n2 sent nothing to a component itself');
  assert.ok(n1.server.core.stats.componentStanzasOut.message >= 1);
});

test('a second connection for the host, on another node, is refused with conflict', async () => {
  const second = openComponent({ port: nodes[1]!.server.port('component'), host: HOST, secret: SECRET });
  components.push(second);
  assert.equal(await second.outcome, 'conflict');
  assert.equal(await redis.hget(`${prefix}:components`, HOST), 'n1');
});

test('when the component leaves, its entry goes and users on the other node get service-unavailable', async () => {
  const echo = components[0]!;
  await echo.stop();
  await until('the entry is gone', async () => (await redis.hget(`${prefix}:components`, HOST)) === null);
  const alice = await login(nodes[1]!, 'alice');
  await alice.send(xml('message', { to: HOST, type: 'chat', id: 'gone-1' }, xml('body', {}, 'still there?')));
  const err = await alice.waitFor((el) => el.name === 'message' && el.attrs.id === 'gone-1', 10_000, 'the bounce');
  assert.equal(errorCondition(err), 'service-unavailable');
  // It may connect to the other node now.
  const again = await startEchoComponent({ port: nodes[1]!.server.port('component'), host: HOST, secret: SECRET });
  components.push(again);
  await alice.send(xml('message', { to: HOST, type: 'chat' }, xml('body', {}, 'welcome back')));
  assert.equal((await alice.message(HOST)).getChildText('body'), 'welcome back');
});

test('when the node holding a component is killed, its entry goes and stanzas for it bounce with service-unavailable', async () => {
  const { componentPort } = await startChildNode('n3');
  await until('every node sees three members', () => nodes.every((n) => n.server.cluster!.members().length === 3));
  const gw = await startEchoComponent({ port: componentPort, host: HOST2, secret: SECRET2 });
  components.push(gw);
  assert.equal(await redis.hget(`${prefix}:components`, HOST2), 'n3');
  const alice = await login(nodes[0]!, 'alice');
  await alice.send(xml('message', { to: HOST2, type: 'chat' }, xml('body', {}, 'to the child node')));
  assert.equal((await alice.message(HOST2)).getChildText('body'), 'to the child node');

  killQuietly(child!, 'SIGKILL');
  await until('n3 is declared dead', () => nodes.every((n) => !n.server.cluster!.members().includes('n3')), 20_000);
  await until('its component entry is gone', async () => (await redis.hget(`${prefix}:components`, HOST2)) === null);
  await alice.send(xml('message', { to: HOST2, type: 'chat', id: 'dead-1' }, xml('body', {}, 'anyone?')));
  const err = await alice.waitFor((el) => el.name === 'message' && el.attrs.id === 'dead-1', 10_000, 'the bounce');
  assert.equal(errorCondition(err), 'service-unavailable');
});
