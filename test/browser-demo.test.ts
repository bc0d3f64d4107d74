/**
 * The demo portal and the chat widget in headless Chromium (playwright-core): two users
 * log in through the portal's form in two browser contexts and chat through the widget;
 * typing, away and invisible show on the other page; navigating keeps the XMPP session
 * (a contact on TCP sees no unavailable presence); the server restarts on the same data
 * and port, and the widget reconnects by itself and shows what was sent meanwhile.
 * Screenshots go to test-artifacts/ (git-ignored).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type TestClient } from './helpers/client.js';
import { CHROMIUM, haveChromium } from './helpers/tools.js';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/browser-demo/', import.meta.url));
const WAIT = { timeout: 20_000 };
const ALICE = `alice@${DOMAIN}`;
const BOB = `bob@${DOMAIN}`;
const CAROL = `carol@${DOMAIN}`;

let ts: TestServer;
let browser: Browser;
let base: string;
let alice: Page;
let bob: Page;
const clients: TestClient[] = [];

async function start(dataDir?: string, httpPort = 0): Promise<TestServer> {
  return startTestServer({ demo: { enabled: true }, listen: { http: { port: httpPort } }, ...(dataDir ? { dataDir } : {}) });
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

/** Logs in through the portal's form; resolves when the widget is online. */
async function logIn(user: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.fill('#user', user);
  await page.fill('#password', 'demo');
  await Promise.all([page.waitForURL(`${base}/`), page.click('main button[type=submit]')]);
  await page.waitForSelector('.parley[data-connection="online"]', WAIT);
  return page;
}

const contact = (jid: string, show?: string) => `.parley-contact[data-jid="${jid}"]${show ? `[data-show="${show}"]` : ''}`;
const chat = (jid: string) => `.parley-chat[data-jid="${jid}"]`;

/** Waits until the chat window with `peer` shows a message with this text, and returns how many do. */
async function waitForMessage(page: Page, peer: string, text: string): Promise<number> {
  const bodies = page.locator(`${chat(peer)} .parley-body`, { hasText: text });
  await bodies.first().waitFor(WAIT);
  return (await bodies.allTextContents()).filter((t) => t === text).length;
}

before(async () => {
  if (!haveChromium()) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}: run "apt-get install chromium" (npm test does it when run as root)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  ts = await start();
  base = ts.httpUrl;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  for (const c of clients) await c.stop();
  await browser?.close();
  await ts?.stop();
  console.log(`screenshots: ${ARTIFACTS}`);
});

test('the demo portal serves its login page and the built widget with a content type and cache headers', async () => {
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /password is <code>demo<\/code>/);
  const js = await fetch(`${base}/widget/parley-widget.js`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
  assert.match(js.headers.get('cache-control') ?? '', /max-age=/);
  const again = await fetch(`${base}/widget/parley-widget.js`, { headers: { 'If-None-Match': js.headers.get('etag') ?? '' } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(`${base}/widget/..%2Fpackage.json`)).status, 404);
  assert.equal((await fetch(`${base}/demo/prebind`, { method: 'POST' })).status, 401);
  assert.ok(statSync(join(ts.dataDir, 'portal-secret')).mode % 0o1000 === 0o600, 'the cookie secret is kept with mode 0600');
});

test('two users log in through the demo portal and chat through the widget, with typing and unread counts', async () => {
  alice = await logIn('alice');
  bob = await logIn('bob');
  await alice.click('.parley-launcher');
  await alice.waitForSelector(contact(BOB, 'available'), WAIT);
  await bob.click('.parley-launcher');
  await bob.waitForSelector(contact(ALICE, 'available'), WAIT);

  await alice.click(`${contact(BOB)} button`);
  await alice.fill(`${chat(BOB)} textarea`, 'Hello Bob, it is Alice');
  await alice.press(`${chat(BOB)} textarea`, 'Enter');
  // Bob has the chat closed: an unread count on the launcher and on Alice's entry.
  await bob.waitForSelector(`${contact(ALICE)} [data-unread="1"]`, WAIT);
  assert.equal(await bob.getAttribute('.parley-launcher', 'aria-label'), 'Chat, 1 unread');
  await bob.click(`${contact(ALICE)} button`);
  assert.equal(await waitForMessage(bob, ALICE, 'Hello Bob, it is Alice'), 1);
  await bob.waitForSelector(`${contact(ALICE)} [data-unread]`, { state: 'detached', ...WAIT });

  // XEP-0085: Bob types; Alice sees it; Bob sends; the notice goes.
  await bob.type(`${chat(ALICE)} textarea`, 'Hi Alice');
  await alice.waitForFunction((sel) => (globalThis as any).document.querySelector(`${sel} .parley-typing`)?.textContent?.includes('is typing'), chat(BOB), WAIT);
  await shot(alice, '1-alice-sees-typing');
  await bob.press(`${chat(ALICE)} textarea`, 'Enter');
  assert.equal(await waitForMessage(alice, BOB, 'Hi Alice'), 1);
  await alice.waitForFunction((sel) => (globalThis as any).document.querySelector(`${sel} .parley-typing`)?.textContent === '', chat(BOB), WAIT);
  await shot(alice, '2-alice-chat');
  await shot(bob, '2-bob-chat');
});

test('away and invisible show on the other page', async () => {
  await bob.selectOption('.parley-show', 'away');
  await alice.waitForSelector(contact(BOB, 'away'), WAIT);
  await bob.selectOption('.parley-show', 'invisible');
  await alice.waitForSelector(contact(BOB, 'offline'), WAIT);
  await shot(alice, '3-bob-invisible');
  // Bob, invisible, still gets messages.
  await alice.fill(`${chat(BOB)} textarea`, 'Are you there?');
  await alice.press(`${chat(BOB)} textarea`, 'Enter');
  assert.equal(await waitForMessage(bob, ALICE, 'Are you there?'), 1);
  await bob.selectOption('.parley-show', 'available');
  await alice.waitForSelector(contact(BOB, 'available'), WAIT);
});

test('navigating between portal pages and reloading keep the session: a contact sees no unavailable presence', async () => {
  const carol = await connectClient({ port: ts.port, username: 'carol', password: 'demo', resource: 'tcp' });
  clients.push(carol);
  await carol.presence((p) => p.attrs.from?.startsWith(`${ALICE}/`) === true && p.attrs.type === undefined, 'alice available');
  const sessionBefore = await alice.evaluate(() => (globalThis as any).sessionStorage.getItem('strophe-bosh-session'));
  const sid = JSON.parse(sessionBefore ?? '{}').sid as string;
  assert.ok(sid, 'the BOSH session is kept in sessionStorage');

  await alice.click('nav a[href="/people"]');
  await alice.waitForURL(`${base}/people`);
  await alice.waitForSelector('.parley[data-connection="online"]', WAIT);
  // The open chat and the contacts' presence came back from sessionStorage.
  await alice.waitForSelector(contact(BOB, 'available'), WAIT);
  assert.equal(await waitForMessage(alice, BOB, 'Hi Alice'), 1);
  await alice.reload();
  await alice.waitForSelector('.parley[data-connection="online"]', WAIT);
  assert.equal(JSON.parse((await alice.evaluate(() => (globalThis as any).sessionStorage.getItem('strophe-bosh-session'))) ?? '{}').sid, sid, 'same BOSH session');

  // The restored session is alive: a message from Carol arrives on the reloaded page.
  await carol.send(xml('message', { to: ALICE, type: 'chat', id: 'c1' }, xml('body', null, 'Carol says hi')));
  await alice.waitForSelector(`${contact(CAROL)} [data-unread="1"]`, WAIT);
  await alice.click(`${contact(CAROL)} button`);
  assert.equal(await waitForMessage(alice, CAROL, 'Carol says hi'), 1);
  const flaps = carol.received.filter((el) => el.name === 'presence' && el.attrs.from?.startsWith(`${ALICE}/`) && el.attrs.type === 'unavailable');
  assert.deepEqual(flaps.map(String), [], 'no unavailable presence of Alice while she moved between pages');
  await shot(alice, '4-alice-after-reload');
  await carol.stop();
});

test('after a server restart the widget reconnects by itself and shows the messages sent meanwhile', async () => {
  const { dataDir, httpPort } = ts;
  // Hold Alice's new prebind until the message below is stored, so it is sent while she is offline.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let prebinds = 0;
  await alice.route('**/demo/prebind', async (route) => {
    prebinds++;
    await held;
    await route.continue();
  });
  await ts.server.stop();
  await alice.waitForSelector('.parley[data-connection="reconnecting"]', WAIT);
  await shot(alice, '5-alice-reconnecting');
  ts = await start(dataDir, httpPort);
  const carol = await connectClient({ port: ts.port, username: 'carol', password: 'demo', resource: 'tcp2' });
  clients.push(carol);
  await carol.send(xml('message', { to: ALICE, type: 'chat', id: 'c2' }, xml('body', null, 'Sent while you were away')));
  // Stored (offline and archive) once the server answers a ping after it: the message went first.
  await carol.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  release();
  await alice.waitForSelector('.parley[data-connection="online"]', { timeout: 60_000 });
  assert.ok(prebinds >= 1, 'a new session came from the prebind URL');
  assert.equal(await waitForMessage(alice, CAROL, 'Sent while you were away'), 1, 'shown once (offline delivery and archive catch-up deduplicated)');
  // Bob's page reconnected too and sees Alice again.
  await bob.waitForSelector('.parley[data-connection="online"]', { timeout: 60_000 });
  await bob.waitForSelector(contact(ALICE, 'available'), WAIT);
  await alice.waitForSelector(contact(BOB, 'available'), WAIT);
  await shot(alice, '6-alice-after-restart');
  await alice.unroute('**/demo/prebind');
});

test('logging out of the portal ends the XMPP session at once: a contact sees the user go unavailable', async () => {
  const carol = clients[clients.length - 1]!;
  await alice.click('nav button[type=submit]');
  await alice.waitForSelector('#password', WAIT);
  await carol.waitFor((el) => el.name === 'presence' && el.attrs.from?.startsWith(`${ALICE}/`) === true && el.attrs.type === 'unavailable', 20_000, 'unavailable presence of Alice');
  assert.equal(await alice.evaluate(() => (globalThis as any).sessionStorage.getItem('strophe-bosh-session')), null);
  assert.equal(await alice.locator('.parley').count(), 0, 'no widget on the login page');
});

test('a fresh login opens a chat from the keyboard and shows its history from the archive', async () => {
  const page = await logIn('bob');
  await page.focus('.parley-launcher');
  await page.keyboard.press('Enter');
  // Carol (on TCP) is the one contact online: the list's order is settled.
  await page.waitForSelector(contact(CAROL, 'available'), WAIT);
  // The panel focuses the first contact; arrows move between contacts; Enter opens a chat.
  const order = await page.locator('.parley-contact').evaluateAll((els) => els.map((e) => e.getAttribute('data-jid')));
  const target = order.indexOf(ALICE);
  for (let i = 0; i < target; i++) await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => (globalThis as any).document.activeElement?.dataset?.jid), ALICE);
  await page.keyboard.press('Enter');
  assert.equal(await waitForMessage(page, ALICE, 'Hello Bob, it is Alice'), 1, 'history from the archive');
  assert.equal(await waitForMessage(page, ALICE, 'Hi Alice'), 1);
  assert.equal(await page.evaluate(() => (globalThis as any).document.activeElement?.tagName), 'TEXTAREA', 'the message box has the focus');
  await page.keyboard.press('Escape');
  await page.waitForSelector(chat(ALICE), { state: 'detached', ...WAIT });
  await shot(page, '7-bob-fresh-login');
  await page.context().close();
});

test('an offline contact shows when it was last seen (XEP-0012)', async () => {
  // Alice logged out above: her last activity is stored.
  const page = await logIn('carol');
  await page.click('.parley-launcher');
  const presence = page.locator(`${contact(ALICE, 'offline')} .parley-presence`);
  await presence.filter({ hasText: 'last seen' }).waitFor(WAIT);
  assert.match((await presence.textContent()) ?? '', /^offline, last seen (just now|\d+ min ago)$/);
  assert.match((await page.locator(`${contact(ALICE)} button`).getAttribute('aria-label')) ?? '', /last seen/);
  await shot(page, '8-carol-last-seen');
  await page.context().close();
});
