/**
 * Where friends come from (`portal.roster.source`): the portal's HTTP endpoint or a query
 * on the portal's database. The roster module mirrors what they return into Parley's
 * roster store (every friend is an item with subscription `both`).
 *
 * - http: GET `portal.roster.url` with `{user}` replaced by the (URL-encoded) username;
 *   the answer is JSON `[{"user": "bob", "name"?: "Bob", "groups"?: ["Friends"]}]`
 *   (`user` a localpart or a bare JID of this domain). Anything but a 200 with such an
 *   array is a failure (the cached roster stays).
 * - sql: `portal.roster.query` with `:user`; columns `user`, optionally `name` and
 *   `groups` (comma separated).
 * A friend that is not a valid local JID is skipped with a warning; so is the user.
 */
import type { Logger } from 'pino';
import { Jid } from '../xmpp/jid.js';
import type { Friend, FriendSource } from '../modules/roster/api.js';
import { readBody } from './auth-sources.js';
import { PortalUnavailable, type PortalDb, type Row } from './portal-db.js';

/** Bounds (SECURITY: a portal answer is input too). */
const MAX_FRIENDS = 5000;
const MAX_NAME = 1023;
const MAX_GROUPS = 64;
const MAX_BODY = 4 * 1024 * 1024;

/** Turns raw entries into friends: validated, deduplicated, bounded. */
export function normalizeFriends(user: string, domain: string, entries: Array<{ user: unknown; name?: unknown; groups?: unknown }>, log: Logger): Friend[] {
  const out = new Map<string, Friend>();
  for (const e of entries) {
    if (out.size >= MAX_FRIENDS) {
      log.warn({ user, max: MAX_FRIENDS }, 'portal friend list too long: the rest is skipped');
      break;
    }
    const raw = typeof e.user === 'string' ? e.user : typeof e.user === 'number' ? String(e.user) : null;
    const jid = raw === null ? null : Jid.tryParse(raw.includes('@') ? raw : `${raw}@${domain}`);
    if (!jid || !jid.local || !jid.isBare || jid.domain !== domain) {
      log.warn({ user, friend: raw }, 'portal friend is not a valid user of this domain: skipped');
      continue;
    }
    if (jid.local === user) continue;
    const name = typeof e.name === 'string' && e.name !== '' ? e.name.slice(0, MAX_NAME) : null;
    let groups: string[] = [];
    if (Array.isArray(e.groups)) groups = e.groups.filter((g): g is string => typeof g === 'string');
    else if (typeof e.groups === 'string') groups = e.groups.split(',');
    groups = [...new Set(groups.map((g) => g.trim().slice(0, MAX_NAME)).filter((g) => g !== ''))].slice(0, MAX_GROUPS);
    out.set(jid.bare, { jid: jid.bare, name, groups });
  }
  return [...out.values()];
}

export class HttpFriendSource implements FriendSource {
  readonly kind = 'http';

  constructor(
    readonly url: string,
    readonly domain: string,
    readonly timeoutMs: number,
    readonly log: Logger,
    readonly cacheTtl = 0,
  ) {}

  async friends(user: string): Promise<Friend[]> {
    const url = this.url.replaceAll('{user}', encodeURIComponent(user));
    let res: Response;
    let body: string;
    try {
      res = await fetch(url, { headers: { accept: 'application/json' }, redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs) });
      body = await readBody(res, MAX_BODY);
    } catch (e) {
      const err = e as Error;
      throw new PortalUnavailable(`portal friends at ${new URL(url).origin}: ${err.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : (err.cause as Error | undefined)?.message ?? err.message}`, { cause: e });
    }
    if (res.status !== 200) throw new PortalUnavailable(`portal friends at ${new URL(url).origin} answered ${res.status}`);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new PortalUnavailable('portal friends: the answer is not JSON');
    }
    if (!Array.isArray(json)) throw new PortalUnavailable('portal friends: the answer is not a JSON array');
    return normalizeFriends(
      user,
      this.domain,
      json.filter((e): e is { user: unknown } => typeof e === 'object' && e !== null),
      this.log,
    );
  }
}

export class SqlFriendSource implements FriendSource {
  readonly kind = 'sql';

  constructor(
    readonly db: PortalDb,
    readonly query: string,
    readonly domain: string,
    readonly log: Logger,
    readonly cacheTtl = 0,
  ) {}

  async friends(user: string): Promise<Friend[]> {
    const rows: Row[] = await this.db.query(this.query, { user });
    return normalizeFriends(
      user,
      this.domain,
      rows.map((r) => ({ user: r.user, name: r.name, groups: r.groups === null || r.groups === undefined ? undefined : Buffer.isBuffer(r.groups) ? r.groups.toString('utf8') : r.groups })),
      this.log,
    );
  }
}
