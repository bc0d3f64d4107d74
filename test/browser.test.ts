/**
 * A real browser: headless Chromium (playwright-core) loads a page from another origin
 * that uses Strophe.js, logs in over BOSH in one tab and over WebSocket in another, and
 * both chat with a TCP user. CORS, keep-alive and the transports are exercised as a
 * portal page would.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { chromium, type BrowserContext } from 'playwright-core';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type TestClient } from './helpers/client.js';
import { CHROMIUM, haveChromium } from './helpers/tools.js';

const require = createRequire(import.meta.url);
const STROPHE = readFileSync(join(require.resolve('strophe.js').replace(/strophe\.cjs$/, ''), 'strophe.umd.min.js'), 'utf8');

const PAGE = `<!doctype html><meta charset="utf-8"><title>Parley test page</title>
<script src="/strophe.js"></script>
<script>
  window.received = [];
  window.login = (service, jid, password) => new Promise((resolve, reject) => {
    const conn = new Strophe.Connection(service);
    window.conn = conn;
    conn.connect(jid, password, (status, condition) => {
      if (status === Strophe.Status.CONNECTED) {
        conn.addHandler((m) => {
          const body = m.getElementsByTagName('body')[0];
          if (body) window.received.push({ from: m.getAttribute('from'), body: body.textContent });
          return true;
        }, null, 'message');
        conn.send($pres());
        resolve(conn.jid);
      } else if (status === Strophe.Status.AUTHFAIL || status === Strophe.Status.CONNFAIL) {
        reject(new Error('login failed: ' + status + ' ' + condition));
      }
    });
  });
  window.say = (to, text) => window.conn.send($msg({ to, type: 'chat' }).c('body').t(text));
</script>`;

let ts: TestServer;
let web: Server;
let pageUrl: string;
let browser: BrowserContext;
let profile: string;
const clients: TestClient[] = [];

before(async () => {
  if (!haveChromium()) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}: run "apt-get install chromium" (npm test does it when run as root)`);
  }
  // The page comes from another origin than the XMPP service, as on a portal, which is
  // listed in listen.http.corsOrigins.
  web = createServer((req, res) => {
    if (req.url === '/strophe.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      res.end(STROPHE);
    } else {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    }
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  pageUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}/`;
  ts = await startTestServer({ listen: { http: { corsOrigins: [pageUrl.slice(0, -1)] } } });
  for (const u of ['alma', 'bert', 'cora']) await ts.addUser(u);
  profile = mkdtempSync(join(tmpdir(), 'parley-chromium-'));
  // A fresh profile directory for every run.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  for (const c of clients) await c.stop();
  await browser?.close();
  await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
  if (profile) rmSync(profile, { recursive: true, force: true });
  await ts?.stop();
});

test('in Chromium, a BOSH tab and a WebSocket tab log in and chat with a TCP user', async () => {
  const tcp = await connectClient({ port: ts.port, username: 'cora' });
  clients.push(tcp);
  const boshTab = await browser.newPage();
  const wsTab = await browser.newPage();
  await boshTab.goto(pageUrl);
  await wsTab.goto(pageUrl);

  const boshJid = await boshTab.evaluate(([service, jid]) => (globalThis as any).login(service, jid, 'secret'), [`${ts.httpUrl}/http-bind`, `alma@${DOMAIN}/browser`]);
  const wsJid = await wsTab.evaluate(([service, jid]) => (globalThis as any).login(service, jid, 'secret'), [`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`, `bert@${DOMAIN}/browser`]);
  assert.equal(boshJid, `alma@${DOMAIN}/browser`);
  assert.equal(wsJid, `bert@${DOMAIN}/browser`);

  // BOSH tab → WebSocket tab, WebSocket tab → TCP, TCP → BOSH tab.
  await boshTab.evaluate((to) => (globalThis as any).say(to, 'from the BOSH tab'), `bert@${DOMAIN}`);
  await wsTab.evaluate((to) => (globalThis as any).say(to, 'from the WebSocket tab'), `cora@${DOMAIN}`);
  await tcp.send(xml('message', { to: `alma@${DOMAIN}`, type: 'chat' }, xml('body', null, 'from TCP')));

  const m = await tcp.waitFor((el) => el.name === 'message' && el.getChildText('body') === 'from the WebSocket tab');
  assert.equal(m.attrs.from, `bert@${DOMAIN}/browser`);
  await wsTab.waitForFunction(() => (globalThis as any).received.some((r: { body: string }) => r.body === 'from the BOSH tab'), null, { timeout: 10_000 });
  await boshTab.waitForFunction(() => (globalThis as any).received.some((r: { body: string }) => r.body === 'from TCP'), null, { timeout: 10_000 });
  await boshTab.close();
  await wsTab.close();
});
