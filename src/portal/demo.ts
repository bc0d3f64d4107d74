/**
 * The demo portal (issue 8, part 6): what `parley start` without a config file serves at
 * http://localhost:5280/ — a login form for a few seeded users, two pages with the chat
 * widget embedded by one script tag, and logout. It plays the part of a real portal:
 * its login is a signed cookie (stateless: it survives a restart), and the widget gets
 * its XMPP session from the portal's own endpoint (`POST /demo/prebind`), which asks
 * Parley for a prebound BOSH session for the logged-in user.
 *
 * Routes: GET / (login or home), GET /people, POST /login, POST /logout,
 * POST /demo/prebind, GET /demo/portal.css and /demo/portal.js, GET /widget/<file> (web/dist).
 *
 * SECURITY: the pages send a strict CSP of their own (PAGE_CSP): scripts and styles only
 * from this origin (no inline code, no eval), connections only to it (BOSH, prebind), no
 * framing. Their style and script are therefore files, and the widget's stylesheet is
 * linked rather than injected.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/schema.js';
import type { ServerCore } from '../core/server.js';
import type { UserStore } from '../auth/user-store.js';
import type { RosterItem } from '../modules/roster/api.js';
import type { HttpRoute } from '../transports/http/http-listener.js';
import type { BoshManager } from '../transports/bosh/bosh-manager.js';
import { prebind } from './prebind.js';
import { makeCredentials } from '../auth/credentials.js';
import { checkScramPassword, constantTimeEqual } from '../xmpp/sasl/scram.js';
import { Jid } from '../xmpp/jid.js';
import { escapeAttr, escapeText as esc } from '../xml/escape.js';

export interface DemoUser {
  user: string;
  name: string;
  about: string;
}

export const DEMO_PASSWORD = 'demo';
export const DEMO_USERS: readonly DemoUser[] = [
  { user: 'alice', name: 'Alice', about: 'Runs the photography club.' },
  { user: 'bob', name: 'Bob', about: 'Plays bass in a garage band.' },
  { user: 'carol', name: 'Carol', about: 'Organises the Sunday football.' },
  { user: 'dave', name: 'Dave', about: 'New here; says hello to everyone.' },
];
/** Friendships of the demo (both ways, subscription both). Bob and Dave are not friends. */
export const DEMO_FRIENDS: ReadonlyArray<readonly [string, string]> = [
  ['alice', 'bob'],
  ['alice', 'carol'],
  ['alice', 'dave'],
  ['bob', 'carol'],
  ['carol', 'dave'],
];

/** A prebound BOSH session, as `prebind()` of src/portal/prebind.ts makes one. */
export type PrebindFn = (user: string) => Promise<{ jid: string; sid: string; rid: number }>;

export interface DemoOptions {
  /** HMAC key of the login cookie. */
  secret: string;
  prebind: PrebindFn;
  /** The widget's build (web/dist). */
  widgetDir?: string;
}

/** The demo pages' CSP: the listener's no-page CSP is replaced by this one on them. */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const COOKIE = 'parley_demo';
const COOKIE_TTL_S = 7 * 24 * 3600;
const MAX_FORM_BYTES = 4096;
export const WIDGET_DIR = fileURLToPath(new URL('../../../web/dist/', import.meta.url));
const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** `portal.secret`, or a random one kept in dataDir/portal-secret (mode 0600) so cookies survive restarts. */
export function demoSecret(config: Config): string {
  if (config.portal.secret) return config.portal.secret;
  const file = join(config.dataDir, 'portal-secret');
  if (existsSync(file)) {
    const s = readFileSync(file, 'utf8').trim();
    if (s.length >= 32) return s;
  }
  mkdirSync(dirname(file), { recursive: true });
  const s = randomBytes(32).toString('base64url');
  writeFileSync(file, s + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return s;
}

/** Creates the demo users and their friendships when missing; running it again changes nothing. */
export async function seedDemo(core: ServerCore<UserStore>): Promise<void> {
  const domain = core.config.domain;
  for (const u of DEMO_USERS) {
    if (!(await core.users.exists(domain, u.user))) await core.users.create(domain, u.user, await makeCredentials(DEMO_PASSWORD));
    // Disabled by an earlier start without demo mode (disableDemoAccounts): back on.
    const flag = await core.users.getFlag(domain, u.user);
    if (flag?.state === 'disabled' && flag.reason === DEMO_DISABLED_REASON) await core.users.setFlag(domain, u.user, null);
  }
  const roster = core.service('roster');
  const nameOf = (user: string) => DEMO_USERS.find((u) => u.user === user)?.name ?? user;
  for (const [a, b] of DEMO_FRIENDS) {
    for (const [user, contact] of [
      [a, b],
      [b, a],
    ] as const) {
      const owner = Jid.of(user, domain);
      const contactJid = `${contact}@${domain}`;
      const cur = await roster.getItem(owner, contactJid);
      if (cur && cur.inRoster && cur.subscription === 'both' && !cur.askOut && !cur.askIn) continue;
      await roster.update(owner, contactJid, (item): RosterItem => ({
        jid: contactJid,
        name: item?.name ?? nameOf(contact),
        subscription: 'both',
        groups: item?.groups.length ? item.groups : ['Friends'],
        askOut: false,
        askIn: false,
        askInStanza: null,
        approved: false,
        inRoster: true,
      }));
    }
  }
}

export const DEMO_DISABLED_REASON = 'a demo account: it logs in only while the demo portal is on (demo.enabled)';

/**
 * SECURITY: the demo's accounts have a password everybody knows. A server started without
 * demo mode on a dataDir (or database) that a demo run seeded must not accept them: every
 * demo account that still has the demo password is flagged disabled (login refused with
 * `account-disabled`, prebind refused), until demo mode seeds it again. Returns the
 * accounts it disabled now, for the start-up warning.
 */
export async function disableDemoAccounts(core: ServerCore<UserStore>): Promise<string[]> {
  const domain = core.config.domain;
  const disabled: string[] = [];
  for (const u of DEMO_USERS) {
    const creds = await core.users.getCredentials(domain, u.user, 'SHA-256');
    if (creds === null || (await core.users.getFlag(domain, u.user)) !== null) continue;
    if (!(await checkScramPassword(DEMO_PASSWORD, 'SHA-256', creds))) continue;
    await core.users.setFlag(domain, u.user, { state: 'disabled', reason: DEMO_DISABLED_REASON });
    disabled.push(`${u.user}@${domain}`);
  }
  return disabled;
}

/**
 * The demo portal of `config.demo.enabled`: seeds its users (after the modules loaded:
 * the roster service is needed) and returns its routes.
 */
export async function demoPortal(core: ServerCore<UserStore>, bosh: BoshManager | null): Promise<HttpRoute> {
  await seedDemo(core);
  return demoRoutes(core, {
    secret: demoSecret(core.config),
    prebind: async (user) => {
      if (!bosh) throw new Error('the demo portal needs BOSH (bosh.enabled)');
      return prebind(core, bosh, user, { resource: `web-${randomBytes(4).toString('hex')}` });
    },
  });
}

// ------------------------------------------------------------------ the login cookie

function cookieMac(secret: string, user: string, expires: number): string {
  return createHmac('sha256', secret).update(`parley-demo-login-v1\n${user}\n${expires}`).digest('base64url');
}

export function signDemoCookie(secret: string, user: string, expires: number): string {
  return `v1.${user}.${expires}.${cookieMac(secret, user, expires)}`;
}

/** The user a cookie value logs in, or null (bad signature, expired, unknown user). */
export function verifyDemoCookie(secret: string, value: string, now = Date.now()): string | null {
  const m = /^v1\.([a-z0-9]{1,64})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (!m) return null;
  const [, user, exp] = m as unknown as [string, string, string, string];
  // SECURITY: constant-time comparison of the MAC.
  if (!constantTimeEqual(Buffer.from(m[3]!), Buffer.from(cookieMac(secret, user, Number(exp))))) return null;
  if (Number(exp) * 1000 <= now) return null;
  return DEMO_USERS.some((u) => u.user === user) ? user : null;
}

function cookieUser(secret: string, req: IncomingMessage): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return verifyDemoCookie(secret, v.join('='));
  }
  return null;
}

// ------------------------------------------------------------------ routes

export function demoRoutes(core: ServerCore<UserStore>, opts: DemoOptions): HttpRoute {
  const widgetDir = opts.widgetDir ?? WIDGET_DIR;
  const domain = core.config.domain;

  async function checkPassword(user: string, password: string): Promise<boolean> {
    const creds = await core.users.getCredentials(domain, user, 'SHA-256');
    return creds !== null && (await checkScramPassword(password, 'SHA-256', creds));
  }

  return async (req, res, url) => {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path.startsWith('/widget/')) {
      if (method !== 'GET' && method !== 'HEAD') return false;
      serveWidgetFile(req, res, widgetDir, path.slice('/widget/'.length));
      return true;
    }
    if ((path === '/demo/portal.css' || path === '/demo/portal.js') && (method === 'GET' || method === 'HEAD')) {
      const css = path.endsWith('.css');
      res.writeHead(200, { 'Content-Type': css ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8', 'Cache-Control': 'public, max-age=300' });
      res.end(method === 'HEAD' ? undefined : css ? PORTAL_CSS : PORTAL_JS);
      return true;
    }
    const user = cookieUser(opts.secret, req);
    if (path === '/' && method === 'GET') {
      html(res, 200, user ? homePage(user, domain) : loginPage(url.searchParams.has('failed')));
      return true;
    }
    if (path === '/people' && method === 'GET') {
      if (!user) return redirect(res, '/');
      html(res, 200, peoplePage(user, domain));
      return true;
    }
    if (path === '/login' && method === 'POST') {
      if (!sameOrigin(req)) return forbidden(res);
      const form = await readForm(req);
      const name = (form?.get('user') ?? '').trim().toLowerCase();
      const ok = DEMO_USERS.some((u) => u.user === name) && (await checkPassword(name, form?.get('password') ?? ''));
      if (!ok) return redirect(res, '/?failed');
      const expires = Math.floor(Date.now() / 1000) + COOKIE_TTL_S;
      res.setHeader('Set-Cookie', `${COOKIE}=${signDemoCookie(opts.secret, name, expires)}; Path=/; Max-Age=${COOKIE_TTL_S}; HttpOnly; SameSite=Lax`);
      return redirect(res, '/');
    }
    if (path === '/logout' && method === 'POST') {
      if (!sameOrigin(req)) return forbidden(res);
      res.setHeader('Set-Cookie', `${COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax`);
      return redirect(res, '/');
    }
    if (path === '/demo/prebind' && method === 'POST') {
      // SECURITY: a page of another origin must not get a session for our user (the
      // cookie is SameSite=Lax, and the Origin is checked too).
      if (!sameOrigin(req)) return forbidden(res);
      if (!user) {
        json(res, 401, { error: 'not logged in' });
        return true;
      }
      const session = await opts.prebind(user);
      json(res, 200, session);
      return true;
    }
    return false;
  };
}

function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined || origin === 'null') return origin === undefined;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

function forbidden(res: ServerResponse): true {
  res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end('forbidden\n');
  return true;
}

function redirect(res: ServerResponse, to: string): true {
  res.writeHead(303, { Location: to, 'Cache-Control': 'no-store' });
  res.end();
  return true;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}

function html(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': PAGE_CSP });
  res.end(body);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) return null; // SECURITY: bounded body
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** A file of the widget's build; names only (no paths), revalidated by ETag. */
function serveWidgetFile(req: IncomingMessage, res: ServerResponse, dir: string, name: string): void {
  // SECURITY: a plain file name, never a path out of the directory.
  const ext = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*(\.[a-z]+)$/.exec(name)?.[1];
  const type = ext ? CONTENT_TYPES[ext] : undefined;
  const file = join(dir, name);
  if (!type || !existsSync(file)) {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(existsSync(dir) ? 'not found\n' : 'the widget is not built: run npm run build\n');
    return;
  }
  const st = statSync(file);
  const etag = `"${st.size.toString(36)}-${Math.floor(st.mtimeMs).toString(36)}"`;
  // The file name is not content-hashed: caches keep it briefly and then revalidate.
  const headers = { 'Content-Type': type, 'Cache-Control': 'public, max-age=300, must-revalidate', ETag: etag, 'X-Content-Type-Options': 'nosniff' };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const body = readFileSync(file);
  res.writeHead(200, { ...headers, 'Content-Length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}

// ------------------------------------------------------------------ pages

/** The portal's style (served as /demo/portal.css: the pages' CSP allows no inline style). */
const PORTAL_CSS = `body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: #1b1b1b; background: #f4f6f9; }
header.site { background: #13294b; color: #fff; padding: 12px 24px; display: flex; gap: 24px; align-items: center; flex-wrap: wrap; }
header.site h1 { font-size: 20px; margin: 0; }
header.site a { color: #fff; margin-right: 12px; }
nav { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
.logout { display: inline; margin-left: 12px; }
main { max-width: 760px; margin: 24px auto; padding: 0 24px 120px; }
.card { background: #fff; border: 1px solid #d5dae1; border-radius: 8px; padding: 16px 20px; margin-bottom: 16px; }
label { display: block; margin-top: 8px; }
input { font: inherit; padding: 6px; }
button { font: inherit; }
.error { color: #b00020; }
table { border-collapse: collapse; } td, th { padding: 4px 12px 4px 0; text-align: left; }
`;

/**
 * The portal's script (served as /demo/portal.js: the pages' CSP allows no inline script):
 * logging out ends the widget's session; a logged-out page forgets this tab's chat.
 */
const PORTAL_JS = `(function () {
  var logout = document.querySelector('form.logout');
  if (logout) logout.addEventListener('submit', function () { if (window.Parley) window.Parley.logout(); });
  if (document.body.hasAttribute('data-logged-out')) {
    try { sessionStorage.removeItem('strophe-bosh-session'); sessionStorage.removeItem('parley-widget:v1'); } catch (e) {}
  }
})();
`;

function layout(title: string, body: string, user: string | null, domain: string): string {
  const nav = user
    ? `<nav aria-label="Portal"><a href="/">Home</a> <a href="/people">People</a>
  <form method="post" action="/logout" class="logout">
    <span>Logged in as <strong>${esc(user)}</strong></span> <button type="submit">Log out</button></form></nav>`
    : '';
  const widgetCss = user ? '\n<link id="parley-widget-css" rel="stylesheet" href="/widget/parley-widget.css">' : '';
  const widget = user
    ? `<script src="/widget/parley-widget.js" defer data-service="/http-bind" data-prebind-url="/demo/prebind" data-user="${escapeAttr(`${user}@${domain}`)}"></script>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · Parley demo portal</title>
<link rel="stylesheet" href="/demo/portal.css">${widgetCss}
<script src="/demo/portal.js" defer></script></head>
<body${user ? '' : ' data-logged-out'}><header class="site"><h1>Parley demo portal</h1>${nav}</header>
<main>${body}</main>
${widget}
</body></html>`;
}

function loginPage(failed: boolean): string {
  const users = DEMO_USERS.map((u) => `<code>${esc(u.user)}</code>`).join(', ');
  return layout(
    'Log in',
    `<section class="card"><h2>Log in</h2>
<p>This is a demo portal with a chat widget. Demo users: ${users}; the password is <code>${DEMO_PASSWORD}</code>.
Log in as one user in one browser window and as another in a private window, then chat.</p>
${failed ? '<p class="error" role="alert">Wrong user name or password.</p>' : ''}
<form method="post" action="/login">
  <label for="user">User name</label><input id="user" name="user" autocomplete="username" required value="alice">
  <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required value="demo">
  <p><button type="submit">Log in</button></p>
</form></section>`,
    null,
    '',
  );
}

function friendsOf(user: string): string[] {
  return DEMO_FRIENDS.flatMap(([a, b]) => (a === user ? [b] : b === user ? [a] : []));
}

function homePage(user: string, domain: string): string {
  const me = DEMO_USERS.find((u) => u.user === user)!;
  return layout(
    'Home',
    `<section class="card"><h2>Welcome, ${esc(me.name)}</h2>
<p>${esc(me.about)}</p>
<p>Your friends: ${friendsOf(user).map(esc).join(', ')}. Open the chat at the bottom right and pick one.
The chat stays connected when you move between pages of the portal.</p></section>
<section class="card"><h2>News</h2><p>The photography club meets on Thursday. Bring a tripod.</p></section>`,
    user,
    domain,
  );
}

function peoplePage(user: string, domain: string): string {
  const friends = new Set(friendsOf(user));
  const rows = DEMO_USERS.filter((u) => u.user !== user)
    .map((u) => `<tr><td>${esc(u.name)}</td><td><code>${esc(u.user)}@${esc(domain)}</code></td><td>${friends.has(u.user) ? 'friend' : 'not a friend'}</td><td>${esc(u.about)}</td></tr>`)
    .join('\n');
  return layout(
    'People',
    `<section class="card"><h2>People</h2>
<table><thead><tr><th>Name</th><th>Address</th><th>Friendship</th><th>About</th></tr></thead><tbody>${rows}</tbody></table></section>`,
    user,
    domain,
  );
}
