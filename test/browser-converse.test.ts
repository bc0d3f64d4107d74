/**
 * Converse.js (the npm package's dist build) attaches to a prebound BOSH session in
 * headless Chromium: a page of another origin serves Converse with
 * `authentication: 'prebind'`; its prebind URL calls Parley's prebind(); Converse ends up
 * connected as that user, with the user's roster, and a TCP contact gets its presence
 * and a message sent through Converse's API.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, type TestClient } from './helpers/client.js';
import { prebind } from '../src/portal/prebind.js';
import { CHROMIUM, haveChromium } from './helpers/tools.js';

const CONVERSE_DIST = fileURLToPath(new URL('../../node_modules/converse.js/dist/', import.meta.url));
const TYPES: Record<string, string> = { '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml', '.png': 'image/png' };
const DAVE = `dave@${DOMAIN}`;
const ALICE = `alice@${DOMAIN}`;

let ts: TestServer;
let web: Server;
let browser: Browser;
const clients: TestClient[] = [];

function page(boshUrl: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Converse on Parley</title>
<link rel="stylesheet" href="/dist/converse.min.css"></head><body>
<script type="module">
  // The dist build is an ES module with Converse as its default export.
  import converse from '/dist/converse.min.js';
  window.converse = converse;
  converse.plugins.add('parley-test', { initialize() { window._converse = this._converse; } });
  converse.initialize({
    authentication: 'prebind',
    prebind_url: '/prebind',
    bosh_service_url: ${JSON.stringify(boshUrl)},
    jid: ${JSON.stringify(DAVE)},
    auto_login: true,
    keepalive: true,
    discover_connection_methods: false,
    assets_path: '/dist/',
    view_mode: 'fullscreen',
    whitelisted_plugins: ['parley-test'],
    loglevel: 'warn',
  });
</script></body></html>`;
}

before(async () => {
  if (!haveChromium()) throw new Error(`Chromium is not installed at ${CHROMIUM}: run "apt-get install chromium"`);
  if (!existsSync(join(CONVERSE_DIST, 'converse.min.js'))) throw new Error('converse.js is not installed (npm install)');
  // The page is on another origin than Parley (a portal's own web server): it is listed
  // in listen.http.corsOrigins, as docs/portal.md says. The demo seeds dave with his
  // friends alice and carol.
  web = createServer((req, res) => {
    const bosh = ts.server.bosh!;
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/prebind') {
      // The portal's side: its user is logged in; it asks Parley for a session.
      prebind(ts.server.core, bosh, 'dave', { resource: 'converse' }).then(
        (s) => {
          res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
          res.end(JSON.stringify(s));
        },
        (e: unknown) => {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end(String(e));
        },
      );
      return;
    }
    if (url.pathname.startsWith('/dist/')) {
      const rel = normalize(decodeURIComponent(url.pathname.slice('/dist/'.length)));
      const file = join(CONVERSE_DIST, rel);
      if (rel.startsWith('..') || !file.startsWith(CONVERSE_DIST) || !existsSync(file)) {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(readFileSync(file));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(page(`${ts.httpUrl}/http-bind`));
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  ts = await startTestServer({ demo: { enabled: true }, listen: { http: { corsOrigins: [`http://127.0.0.1:${(web.address() as AddressInfo).port}`] } } });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  for (const c of clients) await c.stop();
  await browser?.close();
  await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
  await ts?.stop();
});

test('Converse.js attaches to a prebound BOSH session and chats as that user', async () => {
  const alice = await connectClient({ port: ts.port, username: 'alice', password: 'demo' });
  clients.push(alice);
  const tab = await browser.newPage();
  const errors: string[] = [];
  tab.on('pageerror', (e) => errors.push(String(e)));
  await tab.goto(`http://127.0.0.1:${(web.address() as AddressInfo).port}/`);

  await tab.waitForFunction(() => (globalThis as any)._converse?.api?.connection?.connected?.() === true, null, { timeout: 30_000 }).catch((e: Error) => {
    throw new Error(`Converse did not connect: ${e.message}; page errors: ${errors.join('; ')}`);
  });
  const jid = await tab.evaluate(() => (globalThis as any)._converse.api.connection.get().jid as string);
  assert.equal(jid, `${DAVE}/converse`);

  // Converse read the roster and sent initial presence: Alice (a friend) sees Dave online.
  await alice.presence((p) => p.attrs.from === `${DAVE}/converse` && p.attrs.type === undefined, 'presence of Dave in Converse');
  await tab.waitForFunction(
    async (a) => {
      const contacts = await (globalThis as any)._converse.api.contacts.get();
      return contacts.some((c: any) => c.get('jid') === a);
    },
    ALICE,
    { timeout: 20_000 },
  );

  await tab.evaluate((to) => {
    const { $msg } = (globalThis as any).converse.env;
    (globalThis as any)._converse.api.send($msg({ to, type: 'chat', id: 'conv1' }).c('body').t('Hello from Converse'));
  }, ALICE);
  const m = await alice.waitFor((el) => el.name === 'message' && el.getChildText('body') === 'Hello from Converse', 10_000, 'message from Converse');
  assert.equal(m.attrs.from, `${DAVE}/converse`);
  await tab.close();
});
