/**
 * The portal's events, applied to Parley: friendships, accounts, profiles, notifications
 * and broadcasts (issue 8; the seed's "custom listener for events from the portal").
 * The HTTP side (authentication, JSON, status codes) is `api.ts`; this file validates an
 * event's fields and applies it, once per event id.
 *
 * Each event is `{ "id": "...", "type": "...", ...fields }`. A repeated id is applied
 * once: the id is recorded (table `portal_events`) before the event is applied, and
 * forgotten again when applying it failed, so the portal may simply retry.
 */
import { x, type XmlElement } from '../xml/element.js';
import { Jid, JidError } from '../xmpp/jid.js';
import { NS } from '../xmpp/ns.js';
import { StreamError } from '../xmpp/errors.js';
import { normalizeUsername } from '../auth/authenticator.js';
import type { ServerCore } from '../core/server.js';
import type { UserStore } from '../auth/user-store.js';
import { Envelope } from '../core/envelope.js';
import { insertedUnlessDuplicate } from '../storage/storage.js';

/** A bad event: the HTTP side answers 400 (or `status`) with the field and the problem. */
export class EventError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
    readonly status = 400,
  ) {
    super(`${field}: ${problem}`);
  }
}

export type EventType =
  | 'friendship.added'
  | 'friendship.removed'
  | 'user.created'
  | 'user.deleted'
  | 'user.banned'
  | 'user.unbanned'
  | 'profile.changed'
  | 'notification'
  | 'broadcast';

export const EVENT_TYPES: readonly EventType[] = [
  'friendship.added',
  'friendship.removed',
  'user.created',
  'user.deleted',
  'user.banned',
  'user.unbanned',
  'profile.changed',
  'notification',
  'broadcast',
];

export interface EventResult {
  id: string;
  type: EventType;
  /** False when the id was applied before (nothing was done now). */
  applied: boolean;
  duplicate?: boolean;
  /** What happened, per event type (sessions closed, resources reached, stored offline...). */
  [detail: string]: unknown;
}

const MAX_ID = 128;
/** XEP-0172 user nickname. */
const NICK = 'http://jabber.org/protocol/nick';
const MAX_TEXT = 4096;
/** Where event ids live: a name no account can have ('@' is not allowed in a localpart). */
const EVENTS_KEY = '@portal-events';
/** The cluster topic of broadcasts (each node delivers to its own sessions). */
const BROADCAST_TOPIC = 'portal-broadcast';

/** Reads, checks and applies portal events for one server. */
export class PortalEvents {
  readonly #core: ServerCore<UserStore>;
  readonly #host: string;
  readonly #sweep: NodeJS.Timeout;
  readonly #unsubscribe: () => void;

  constructor(core: ServerCore<UserStore>) {
    this.#core = core;
    this.#host = core.domain;
    const retention = core.config.portal.api.eventRetention;
    this.#sweep = setInterval(() => void this.#forgetOld(retention), Math.min(retention, 3_600_000));
    this.#sweep.unref();
    // A broadcast reached another node: deliver it to this node's sessions.
    this.#unsubscribe = core.onInvalidate(BROADCAST_TOPIC, (key) => {
      try {
        const b = JSON.parse(key) as { body: string; subject?: string };
        this.#broadcastHere(b.body, b.subject);
      } catch (err) {
        core.logs.for('portal').warn({ err }, 'portal: a broadcast from another node could not be read');
      }
    });
  }

  stop(): void {
    clearInterval(this.#sweep);
    this.#unsubscribe();
  }

  /** Applies one event (a parsed JSON object); throws EventError on bad input. */
  async apply(body: Record<string, unknown>): Promise<EventResult> {
    const id = text(body, 'id', { max: MAX_ID });
    const type = body.type;
    if (typeof type !== 'string' || !(EVENT_TYPES as readonly string[]).includes(type)) {
      throw new EventError('type', `is required, one of ${EVENT_TYPES.join(', ')}`);
    }
    const run = await this.#prepare(type as EventType, body);
    if (!(await this.#record(id))) return { id, type: type as EventType, applied: false, duplicate: true };
    try {
      return { id, type: type as EventType, applied: true, ...(await run()) };
    } catch (e) {
      await this.#forget(id).catch((err: unknown) => this.#core.logs.for('portal').error({ err, id }, 'portal: could not forget a failed event; a retry of it will be taken as a duplicate'));
      throw e;
    }
  }

  /** Checks every field first (nothing is recorded for a bad event), then returns the work. */
  async #prepare(type: EventType, b: Record<string, unknown>): Promise<() => Promise<Record<string, unknown>>> {
    switch (type) {
      case 'friendship.added': {
        const [a, f] = await this.#twoUsers(b);
        const groups = optionalGroups(b, 'groups');
        const userName = optionalText(b, 'userName');
        const friendName = optionalText(b, 'friendName');
        return async () => {
          await this.#core.service('friendships').befriend(a, f, { nameOfB: friendName, groupsOfB: groups, nameOfA: userName, groupsOfA: groups });
          return { user: a.bare, friend: f.bare };
        };
      }
      case 'friendship.removed': {
        const [a, f] = await this.#twoUsers(b);
        return async () => {
          await this.#core.service('friendships').unfriend(a, f);
          return { user: a.bare, friend: f.bare };
        };
      }
      case 'user.created': {
        const user = this.#jidOf(b, 'user');
        return async () => {
          const created = await this.#core.users.ensure(this.#host, user.local);
          // A user deleted with data kept, and created again, may log in again.
          const flag = await this.#core.users.getFlag(this.#host, user.local);
          if (flag?.state === 'deleted') await this.#core.users.setFlag(this.#host, user.local, null);
          return { user: user.bare, created };
        };
      }
      case 'user.deleted': {
        const user = await this.#knownUser(b, 'user');
        const reason = optionalText(b, 'reason') ?? 'account deleted';
        return async () => {
          const keep = this.#core.config.portal.deletedUsers === 'keep';
          if (keep) await this.#core.users.setFlag(this.#host, user.local, { state: 'deleted', reason });
          const closed = this.#closeSessions(user, new StreamError('not-authorized', reason));
          let friendsUpdated = 0;
          if (!keep) {
            // Friends lose the deleted user from their rosters (pushes and presence follow).
            const items = await this.#core.service('roster').getItems(user);
            for (const item of items) {
              const friend = Jid.tryParse(item.jid);
              if (!friend || friend.domain !== this.#host || !item.inRoster) continue;
              await this.#core.service('friendships').unfriend(user, friend);
              friendsUpdated++;
            }
            await this.#core.users.delete(this.#host, user.local);
          }
          return { user: user.bare, sessionsClosed: closed, dataRemoved: !keep, friendsUpdated };
        };
      }
      case 'user.banned': {
        const user = await this.#knownUser(b, 'user');
        const reason = optionalText(b, 'reason') ?? 'banned';
        return async () => {
          await this.#core.users.setFlag(this.#host, user.local, { state: 'banned', reason });
          return { user: user.bare, sessionsClosed: this.#closeSessions(user, new StreamError('policy-violation', reason)) };
        };
      }
      case 'user.unbanned': {
        const user = await this.#knownUser(b, 'user');
        return async () => {
          const flag = await this.#core.users.getFlag(this.#host, user.local);
          if (flag?.state === 'banned') await this.#core.users.setFlag(this.#host, user.local, null);
          return { user: user.bare, wasBanned: flag?.state === 'banned' };
        };
      }
      case 'profile.changed': {
        const user = await this.#knownUser(b, 'user');
        const vcard = profileVcard(b);
        const nickname = optionalText(b, 'nickname', 1024);
        return async () => {
          const hash = await this.#core.service('vcard').set(user, vcard);
          // XEP-0172: the nickname goes to friends' clients as a PEP notification too.
          let nickPublished = false;
          if (nickname !== undefined && this.#core.hasService('pep')) {
            await this.#core.service('pep').publish(user, NICK, { id: 'current', payload: x('nick', { xmlns: NICK }, nickname) }, { accessModel: 'presence' });
            nickPublished = true;
          }
          return { user: user.bare, avatarHash: hash, nickPublished };
        };
      }
      case 'notification': {
        const user = await this.#knownUser(b, 'user');
        const message = headline(this.#host, user.bare, b);
        return async () => {
          let delivered = 0;
          for (const s of this.#core.sessions.available(user.bare)) {
            if (s.priority < 0 || s.isClosed) continue;
            s.deliver(message);
            delivered++;
          }
          let stored = false;
          if (delivered === 0 && this.#core.config.portal.notificationsOffline) {
            stored = await this.#core.delivery.storeOffline(new Envelope(message, this.#core.router.domainJid, user));
          }
          return { user: user.bare, delivered, stored };
        };
      }
      case 'broadcast': {
        const body = text(b, 'body', { max: MAX_TEXT });
        const subject = optionalText(b, 'subject');
        return async () => {
          const delivered = this.#broadcastHere(body, subject);
          this.#core.invalidate(BROADCAST_TOPIC, JSON.stringify({ body, subject }));
          return { deliveredHere: delivered, nodes: this.#core.cluster.members().length };
        };
      }
    }
  }

  /** Headline to every available session on this node; returns how many got it. */
  #broadcastHere(body: string, subject: string | undefined): number {
    let n = 0;
    for (const s of this.#core.sessions.all()) {
      if (s.node !== undefined || !s.isAvailable || s.isClosed) continue;
      const m = x('message', { type: 'headline', from: this.#host, to: s.jid.full, id: `bc-${Date.now().toString(36)}` }, subject ? x('subject', null, subject) : null, x('body', null, body));
      s.deliver(m);
      n++;
    }
    return n;
  }

  /** Ends every session of the user, on every node; returns how many. */
  #closeSessions(user: Jid, error: StreamError): number {
    const sessions = [...this.#core.sessions.resources(user.bare)];
    for (const s of sessions) s.close(error);
    return sessions.length;
  }

  // ------------------------------------------------------------------ fields

  /** A user of this domain from a field: "alice" or "alice@domain". */
  #jidOf(b: Record<string, unknown>, name: string): Jid {
    const v = text(b, name, { max: 1024 });
    const at = v.lastIndexOf('@');
    const local = at >= 0 ? v.slice(0, at) : v;
    if (at >= 0 && v.slice(at + 1).toLowerCase() !== this.#host) throw new EventError(name, `must be a user of ${this.#host}`);
    const norm = normalizeUsername(local);
    if (norm === null) throw new EventError(name, 'is not a valid username (PRECIS UsernameCaseMapped, no "&\'/:<>@)');
    try {
      return Jid.of(norm, this.#host);
    } catch (e) {
      if (e instanceof JidError) throw new EventError(name, `is not a valid username: ${e.message}`);
      throw e;
    }
  }

  /** As #jidOf, and the account must exist (404 otherwise). */
  async #knownUser(b: Record<string, unknown>, name: string): Promise<Jid> {
    const jid = this.#jidOf(b, name);
    if (!(await this.#core.users.exists(this.#host, jid.local))) throw new EventError(name, `unknown user ${jid.bare} (send user.created first)`, 404);
    return jid;
  }

  async #twoUsers(b: Record<string, unknown>): Promise<[Jid, Jid]> {
    const a = await this.#knownUser(b, 'user');
    const f = await this.#knownUser(b, 'friend');
    if (a.bare === f.bare) throw new EventError('friend', 'must differ from user');
    return [a, f];
  }

  // ------------------------------------------------------------------ event ids

  /** Records an id; false when it was recorded before (a repeated event). */
  #record(id: string): Promise<boolean> {
    const host = this.#host;
    return this.#core.storage.forUser(
      host,
      EVENTS_KEY,
      'record portal event',
      async (db) => {
        return insertedUnlessDuplicate(db.insertInto('portal_events').values({ host, id, created_at: Date.now() }).executeTakeFirst());
      },
      { idempotent: false },
    );
  }

  #forget(id: string): Promise<void> {
    const host = this.#host;
    return this.#core.storage.forUser(host, EVENTS_KEY, 'forget portal event', async (db) => {
      await db.deleteFrom('portal_events').where('host', '=', host).where('id', '=', id).execute();
    });
  }

  async #forgetOld(retentionMs: number): Promise<void> {
    const host = this.#host;
    await this.#core.storage
      .forUser(host, EVENTS_KEY, 'expire portal events', async (db) => {
        await db
          .deleteFrom('portal_events')
          .where('host', '=', host)
          .where('created_at', '<', Date.now() - retentionMs)
          .execute();
      })
      .catch((err: unknown) => this.#core.logs.for('portal').warn({ err }, 'portal: expiring old event ids failed (retried next time)'));
  }
}

// ------------------------------------------------------------------ field readers

function text(b: Record<string, unknown>, name: string, opts: { max: number }): string {
  const v = b[name];
  if (typeof v !== 'string' || v.trim() === '') throw new EventError(name, 'is required (a non-empty string)');
  if (v.length > opts.max) throw new EventError(name, `is longer than ${opts.max} characters`);
  // eslint-disable-next-line no-control-regex -- SECURITY: the check is for the control characters XML 1.0 forbids
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.test(v)) throw new EventError(name, 'contains characters XML cannot carry');
  return v;
}

function optionalText(b: Record<string, unknown>, name: string, max = MAX_TEXT): string | undefined {
  if (b[name] === undefined || b[name] === null) return undefined;
  return text(b, name, { max });
}

function optionalGroups(b: Record<string, unknown>, name: string): string[] | undefined {
  const v = b[name];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length > 64) throw new EventError(name, 'must be an array of at most 64 group names');
  return v.map((g, i) => {
    if (typeof g !== 'string' || g === '' || g.length > 1023) throw new EventError(`${name}[${i}]`, 'must be a non-empty string of at most 1023 characters');
    return g;
  });
}

/** A headline message for a notification. */
function headline(host: string, to: string, b: Record<string, unknown>): XmlElement {
  const body = text(b, 'body', { max: MAX_TEXT });
  const subject = optionalText(b, 'subject');
  const url = optionalText(b, 'url', 2048);
  if (url !== undefined && !/^https?:\/\//i.test(url)) throw new EventError('url', 'must be an http:// or https:// URL');
  const m = x('message', { type: 'headline', from: host, to, id: `n-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}` });
  if (subject) m.append(x('subject', null, subject));
  m.append(x('body', null, body));
  // XEP-0066: out-of-band data, the link the notification is about.
  if (url) m.append(x('x', { xmlns: 'jabber:x:oob' }, x('url', null, url)));
  return m;
}

/**
 * The vCard (XEP-0054) of a profile event: fullName, nickname, email, url, birthday,
 * and avatar {type, data (base64)} or null to remove it.
 */
function profileVcard(b: Record<string, unknown>): XmlElement {
  const v = x('vCard', { xmlns: NS.VCARD });
  const fields: Array<[string, string]> = [
    ['fullName', 'FN'],
    ['nickname', 'NICKNAME'],
    ['url', 'URL'],
    ['birthday', 'BDAY'],
  ];
  let any = false;
  for (const [key, el] of fields) {
    const val = optionalText(b, key, 1024);
    if (val !== undefined) {
      v.c(el).t(val);
      any = true;
    }
  }
  const email = optionalText(b, 'email', 320);
  if (email !== undefined) {
    // Built top-down so every element inherits the vcard-temp namespace.
    const e = v.c('EMAIL');
    e.c('INTERNET');
    e.c('USERID').t(email);
    any = true;
  }
  const avatar = b.avatar;
  if (avatar !== undefined && avatar !== null) {
    if (typeof avatar !== 'object' || Array.isArray(avatar)) throw new EventError('avatar', 'must be an object {type, data} or null');
    const a = avatar as Record<string, unknown>;
    const type = a.type;
    if (typeof type !== 'string' || !/^image\/[a-z0-9.+-]+$/i.test(type)) throw new EventError('avatar.type', 'must be an image media type such as image/png');
    const data = a.data;
    if (typeof data !== 'string' || data === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(data) || data.length % 4 !== 0) throw new EventError('avatar.data', 'must be the image in base64');
    const photo = v.c('PHOTO');
    photo.c('TYPE').t(type);
    photo.c('BINVAL').t(data);
    any = true;
  }
  if (!any && avatar !== null) throw new EventError('profile', 'names no field to change (fullName, nickname, email, url, birthday, avatar)');
  return v;
}
