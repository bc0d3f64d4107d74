#!/usr/bin/env node
// Takes docs/demo-portal.png: the demo portal (parley start without a config) with
// Alice and Bob chatting, in headless Chromium (playwright-core, Debian's chromium).
// Runs a private server on free ports in a temporary data directory.
// Usage: npm run build && node scripts/demo-screenshot.js
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const { parseConfig } = await import(join(root, 'dist/src/config/load.js'));
const { startServer } = await import(join(root, 'dist/src/main.js'));

const dataDir = mkdtempSync(join(tmpdir(), 'parley-screenshot-'));
const config = parseConfig({ dataDir, demo: { enabled: true }, listen: { c2s: { port: 0 }, c2sTls: { port: 0 }, http: { port: 0 } } });
const server = await startServer(config, { log: pino({ level: 'silent' }) });
const base = `http://127.0.0.1:${server.port('http')}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const logIn = async (user) => {
    const page = await (await browser.newContext({ viewport: { width: 1100, height: 640 } })).newPage();
    await page.goto(`${base}/`);
    await page.fill('#user', user);
    await page.fill('#password', 'demo');
    await Promise.all([page.waitForURL(`${base}/`), page.click('main button[type=submit]')]);
    await page.waitForSelector('.parley[data-connection="online"]');
    await page.click('.parley-launcher');
    return page;
  };
  const alice = await logIn('alice');
  const bob = await logIn('bob');
  await alice.waitForSelector('.parley-contact[data-jid="bob@localhost"][data-show="available"]');
  await alice.click('.parley-contact[data-jid="bob@localhost"] button');
  await alice.fill('.parley-chat textarea', 'Hi Bob! Coming to the photo walk on Thursday?');
  await alice.press('.parley-chat textarea', 'Enter');
  await bob.waitForSelector('.parley-contact[data-jid="alice@localhost"] [data-unread="1"]');
  await bob.click('.parley-contact[data-jid="alice@localhost"] button');
  await bob.fill('.parley-chat textarea', 'Sure, I will bring the tripod.');
  await bob.press('.parley-chat textarea', 'Enter');
  await alice.waitForSelector('.parley-theirs');
  await bob.type('.parley-chat textarea', 'What time');
  await alice.waitForFunction(() => document.querySelector('.parley-typing')?.textContent !== '');
  await alice.screenshot({ path: join(root, 'docs/demo-portal.png') });
  console.log('wrote docs/demo-portal.png');
} finally {
  await browser.close();
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
