/**
 * Redis restarted (empty) under a running cluster: two nodes on a private redis-server
 * that is killed and started again without its data. Stanzas between nodes keep flowing
 * meanwhile (the links do not go through Redis); once Redis is back the nodes notice the
 * loss (the cluster's epoch key is gone), join again and write their sessions again, so
 * the directory holds every live session and a user logging in afterwards sees contacts
 * on the other node.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startTestServer, CLUSTER_SECRET, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type TestClient } from './helpers/client.js';
import { needRedisServer } from './helpers/tools.js';
import { until } from './helpers/until.js';

const jid = (u: string) => `${u}@${DOMAIN}`;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

describe('Redis restarted empty under a running cluster', { skip: needRedisServer() }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-redis-restart-'));
  let port = 0;
  let redis: ChildProcess | null = null;
  const nodes: TestServer[] = [];
  const open: TestClient[] = [];

  async function startRedis(): Promise<void> {
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await until('redis-server up', async () => {
      const r = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on('error', () => {});
      try {
        await r.connect();
        return (await r.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        r.disconnect();
      }
    });
  }

  before(async () => {
    port = await freePort();
    await startRedis();
    for (const id of ['r1', 'r2']) {
      nodes.push(await startTestServer({ dataDir, cluster: { driver: 'redis', url: `redis://127.0.0.1:${port}`, prefix: 'pt', nodeId: id, secret: CLUSTER_SECRET, heartbeat: '100ms', lease: '600ms', drainTimeout: '0s' } }));
    }
    for (const u of ['ann', 'ben', 'cat']) await nodes[0]!.addUser(u);
    await until('two members', () => nodes.every((n) => n.server.cluster!.members().length === 2));
  });

  after(async () => {
    for (const c of open) await c.stop();
    for (const n of nodes) await n.stop({ keepData: true });
    redis?.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('stanzas keep flowing while Redis is down; afterwards the directory is rebuilt from the live sessions', async () => {
    const ann = await connectClient({ port: nodes[0]!.port, username: 'ann', resource: 'a' });
    const ben = await connectClient({ port: nodes[1]!.port, username: 'ben', resource: 'b' });
    open.push(ann, ben);
    await until('ben known on r1', () => nodes[0]!.server.core.sessions.resources(jid('ben')).length === 1);

    const gone = new Promise((r) => redis!.once('exit', r));
    redis!.kill('SIGKILL');
    await gone;
    // Redis is gone: ann still reaches ben on the other node.
    const m1 = ben.message(jid('ann'));
    await ann.send(xml('message', { to: `${jid('ben')}/b`, type: 'chat' }, xml('body', null, 'while redis is down')));
    assert.equal((await m1).getChildText('body'), 'while redis is down');

    await startRedis(); // empty: no members, no sessions, no epoch
    const r = new Redis(port, '127.0.0.1');
    try {
      await until('both nodes are members again', async () => (await r.zrange('pt:members', '0', '-1')).length === 2);
      await until('both nodes wrote their sessions again', async () => (await r.hexists('pt:sessions:r1', `${jid('ann')}/a`)) === 1 && (await r.hexists('pt:sessions:r2', `${jid('ben')}/b`)) === 1);
    } finally {
      r.disconnect();
    }
    assert.ok(nodes.every((n) => n.server.cluster!.members().length === 2), 'each node sees both');

    // A login after the restart resolves users on the other node, and sessions are still in each replica.
    const cat = await connectClient({ port: nodes[1]!.port, username: 'cat', resource: 'c' });
    open.push(cat);
    await until('cat known on r1', () => nodes[0]!.server.core.sessions.resources(jid('cat')).length === 1);
    const m2 = cat.message(jid('ann'));
    await ann.send(xml('message', { to: jid('cat'), type: 'chat' }, xml('body', null, 'after the restart')));
    assert.equal((await m2).getChildText('body'), 'after the restart');
    assert.equal(nodes[1]!.server.core.sessions.resources(jid('ann')).length, 1);
  });
});
