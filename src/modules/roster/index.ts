/**
 * Roster management.
 * References: RFC 6121 §2 (roster get, set, remove, pushes), §2.1.6 (interested
 * resources); the subscription state itself changes through the presence module.
 *
 * Portal mode (`portal.roster.source` http or sql, issue 8): the roster is the portal's
 * friend list, mirrored into the roster store (so presence, privacy and archive
 * preferences work unchanged). A user's list is read again from the portal when the copy
 * is older than `portal.roster.cacheTtl` — at roster get and whenever the presence module
 * reads the roster (login) — and the differences are applied as friendships (`befriend`
 * / `unfriend`: items on both sides, pushes, presence exchanged). Clients may not change
 * the roster (`not-allowed`). A portal that does not answer leaves the copy as it is.
 * Friendships are mutual: the portal's lists are expected to be symmetric.
 */
import { XmlElement, x } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import { defineModule, type ModuleContext } from '../../core/module.js';
import type { Friend, FriendshipService, RosterItem, RosterService } from './api.js';
import { SqlRosterStore } from './store-sql.js';
import type { RosterStore } from './store.js';

/** Longest item name or group name accepted (RFC 6121 §2.1.2.4 lets servers set one). */
const MAX_NAME = 1023;
const MAX_GROUPS = 64;
/** After a failed read of the portal, the next try waits at least this long (or the TTL if shorter). */
const RETRY_MS = 30_000;
/** Bound on users whose last portal read time is kept. */
const MAX_FRESH = 200_000;

export default defineModule({
  name: 'roster',
  setup(ctx) {
      const store: RosterStore = new SqlRosterStore(ctx.storage);
    const host = ctx.domain;
    let pushId = 0;

    /** Sends a roster push for `item` (or a removal) to every interested resource. */
    const push = (user: Jid, item: RosterItem | null, contact: string, version: number): void => {
      const el = item && item.inRoster ? itemElement(item) : x('item', { jid: contact, subscription: 'remove' });
      for (const s of ctx.sessions.resources(user.bare)) {
        if (!s.rosterRequested || s.isClosed) continue;
        s.deliver(
          x('iq', { type: 'set', id: `push${++pushId}`, to: s.jid.full }, x('query', { xmlns: NS.ROSTER, ver: String(version) }, el)),
        );
      }
    };

    const source = ctx.hasService('friends') ? ctx.service('friends') : null;
    const readOnly = source !== null;
    const ttl = source?.cacheTtl ?? 0;
    /** Bare JID → when its friend list was last read from the portal (or a retry is due). */
    const readAt = new Map<string, number>();
    const reading = new Map<string, Promise<void>>();

    /** Reads the portal's list now when the copy is too old; failures keep the copy. */
    const fresh = async (user: Jid): Promise<void> => {
      if (!source || !ctx.isLocal(user) || !user.local) return;
      const t = readAt.get(user.bare);
      if (t !== undefined && Date.now() - t < ttl) return;
      let p = reading.get(user.bare);
      if (!p) {
        p = refresh(user)
          .catch((err: unknown) => {
            ctx.log.warn({ err, user: user.bare }, 'portal friend list unavailable: the cached roster is kept');
            markRead(user, Date.now() - ttl + Math.min(ttl, RETRY_MS));
          })
          .finally(() => reading.delete(user.bare));
        reading.set(user.bare, p);
      }
      await p;
    };

    const markRead = (user: Jid, at: number): void => {
      readAt.delete(user.bare);
      if (readAt.size >= MAX_FRESH) readAt.delete(readAt.keys().next().value!);
      readAt.set(user.bare, at);
    };
    if (source) {
      ctx.every(Math.max(ttl, 60_000), () => {
        const old = Date.now() - ttl;
        for (const [k, t] of readAt) if (t < old) readAt.delete(k);
      });
    }

    /** Applies the portal's current friend list of `user` to the mirror. */
    const refresh = async (user: Jid): Promise<void> => {
      if (!source) return;
      let friends = await source.friends(user.local);
      const max = ctx.limits.settings.maxRosterSize;
      if (friends.length > max) {
        // Capped, with a warning: the mirror keeps the first maxRosterSize friends.
        ctx.limits.hit('roster-size');
        ctx.log.warn({ user: user.bare, friends: friends.length, max }, 'portal friend list longer than limits.maxRosterSize: cut');
        friends = friends.slice(0, max);
      }
      const items = await store.list(host, user.local);
      const want = new Map<string, Friend>(friends.map((f) => [f.jid, f]));
      const have = new Map<string, RosterItem>(items.map((i) => [i.jid, i]));
      for (const item of items) {
        const jid = Jid.tryParse(item.jid);
        if (!want.has(item.jid) && jid) await friendships.unfriend(user, jid);
      }
      for (const f of friends) {
        const cur = have.get(f.jid);
        if (cur && isFriendItem(cur, f.name, f.groups)) continue;
        await friendships.befriend(user, Jid.parse(f.jid), { nameOfB: f.name, groupsOfB: f.groups });
      }
      markRead(user, Date.now());
    };

    const service: RosterService = {
      readOnly,
      async getItems(user) {
        await fresh(user);
        return store.list(host, user.local);
      },
      getItem: (user, contact) => store.get(host, user.local, contact),
      async update(user, contact, change) {
        const max = ctx.limits.settings.maxRosterSize;
        const { before, after, version, full } = await store.update(host, user.local, contact, change, max);
        if (full) {
          ctx.limits.hit('roster-size');
          throw new StanzaError('not-allowed', `the roster is full (at most ${max} items)`, 'cancel');
        }
        if (before !== after) await ctx.notify('roster-changed', user, contact, after);
        if (visibleChanged(before, after)) push(user, after, contact, version);
        return after;
      },
    };
    ctx.provide('roster', service);

    /** Sends the current presence of `from`'s available resources to `to` (its available resources). */
    const presenceTo = (from: Jid, to: Jid, type?: 'unavailable'): void => {
      for (const s of ctx.sessions.available(from.bare)) {
        if (!s.presence) continue;
        let p: XmlElement;
        if (type === 'unavailable') p = x('presence', { type: 'unavailable', from: s.jid.full, to: to.bare });
        else {
          p = s.presence.clone();
          p.attrs.from = s.jid.full;
          p.attrs.to = to.bare;
        }
        ctx.route(p, s.jid, to);
      }
    };
    const sees = (item: RosterItem | null) => item !== null && (item.subscription === 'from' || item.subscription === 'both');

    const friendships: FriendshipService = {
      readOnly,
      async befriend(a, b, opts) {
        const A = a.toBare();
        const B = b.toBare();
        if (A.bare === B.bare) throw new Error('a user cannot befriend itself');
        for (const u of [A, B]) if (ctx.isLocal(u) && u.local) await ctx.accounts.ensure(u.local);
        const make = (cur: RosterItem | null, jid: string, name: string | null | undefined, groups: string[] | undefined): RosterItem => ({
          ...(cur ?? emptyItem(jid)),
          name: name === undefined ? (cur?.name ?? null) : name,
          groups: groups === undefined ? (cur?.groups ?? []) : groups,
          subscription: 'both',
          askOut: false,
          askIn: false,
          askInStanza: null,
          approved: false,
          inRoster: true,
        });
        const aBefore = await store.get(host, A.local, B.bare);
        // A side whose roster is full keeps its roster as it is (warned, counted).
        const capped = async (u: Jid, contact: string, change: (cur: RosterItem | null) => RosterItem): Promise<boolean> => {
          try {
            await service.update(u, contact, change);
            return true;
          } catch (e) {
            if (!(e instanceof StanzaError) || e.condition !== 'not-allowed') throw e;
            ctx.log.warn({ user: u.bare, contact }, 'friendship not mirrored: the roster is at limits.maxRosterSize');
            return false;
          }
        };
        const aDone = await capped(A, B.bare, (cur) => make(cur, B.bare, opts?.nameOfB, opts?.groupsOfB));
        let bBefore: RosterItem | null = null;
        let bDone = false;
        if (ctx.isLocal(B)) {
          bBefore = await store.get(host, B.local, A.bare);
          bDone = await capped(B, A.bare, (cur) => make(cur, A.bare, opts?.nameOfA, opts?.groupsOfA));
        }
        if (!aDone && !bDone) return;
        // Presence both ways, from the resources the other side did not see yet.
        if (!sees(aBefore)) presenceTo(A, B);
        if (ctx.isLocal(B) && !sees(bBefore)) presenceTo(B, A);
      },
      async unfriend(a, b) {
        const A = a.toBare();
        const B = b.toBare();
        const aBefore = await store.get(host, A.local, B.bare);
        if (aBefore) await service.update(A, B.bare, () => null);
        let bBefore: RosterItem | null = null;
        if (ctx.isLocal(B)) {
          bBefore = await store.get(host, B.local, A.bare);
          if (bBefore) await service.update(B, A.bare, () => null);
        }
        if (sees(aBefore)) presenceTo(A, B, 'unavailable');
        if (sees(bBefore)) presenceTo(B, A, 'unavailable');
      },
      refresh: (user) => refresh(user.toBare()),
    };
    ctx.provide('friendships', friendships);

    ctx.handleIq(
      'get',
      NS.ROSTER,
      'query',
      async (req) => {
        if (!req.isSelf) throw new StanzaError('forbidden', 'a roster belongs to its account');
        if (req.session && !req.session.rosterRequested) {
          req.session.rosterRequested = true;
          ctx.sessions.changed(req.session);
        }
        await fresh(req.from.toBare());
        const [items, version] = await Promise.all([store.list(host, req.from.local), store.version(host, req.from.local)]);
        const ver = String(version);
        const query = x('query', { xmlns: NS.ROSTER, ver });
        // XEP-0237: an up-to-date client gets an empty result and pushes from here on.
        if (req.payload.attrs.ver !== undefined && req.payload.attrs.ver === ver) return null;
        for (const item of items) if (item.inRoster) query.append(itemElement(item));
        return query;
      },
      { scope: 'account' },
    );

    ctx.handleIq(
      'set',
      NS.ROSTER,
      'query',
      async (req) => {
        if (!req.isSelf) throw new StanzaError('forbidden', 'a roster belongs to its account');
        if (readOnly) throw new StanzaError('not-allowed', "the roster is the portal's friend list and cannot be changed here");
        const items = req.payload.getChildren('item', NS.ROSTER);
        if (items.length !== 1) throw new StanzaError('bad-request', 'a roster set carries exactly one item');
        const item = items[0]!;
        const contact = Jid.tryParse(item.attrs.jid);
        if (!contact) throw new StanzaError('bad-request', 'the item needs a valid jid');
        const contactBare = contact.bare;
        const user = req.from.toBare();
        if (item.attrs.subscription === 'remove') {
          await removeItem(ctx, service, user, contact.toBare());
          return null;
        }
        const { name, groups } = readItem(item);
        await service.update(user, contactBare, (cur) => ({
          ...(cur ?? emptyItem(contactBare)),
          name,
          groups,
          inRoster: true,
        }));
        return null;
      },
      { scope: 'account' },
    );
  },
});

function emptyItem(jid: string): RosterItem {
  return { jid, name: null, subscription: 'none', groups: [], askOut: false, askIn: false, askInStanza: null, approved: false, inRoster: false };
}

/** Is the item already the mirror of a friend with this name and these groups? */
function isFriendItem(i: RosterItem, name: string | null, groups: string[]): boolean {
  return i.inRoster && i.subscription === 'both' && !i.askOut && !i.askIn && i.name === name && i.groups.join('\u0000') === groups.join('\u0000');
}

/** RFC 6121 §2.5: removing an item cancels both directions of the subscription. */
async function removeItem(ctx: ModuleContext, service: RosterService, user: Jid, contact: Jid): Promise<void> {
  const current = await service.getItem(user, contact.bare);
  if (!current || !current.inRoster) throw new StanzaError('item-not-found');
  await service.update(user, contact.bare, () => null);
  const send = (type: string) => ctx.route(x('presence', { type, from: user.bare, to: contact.bare }), user, contact);
  if (current.subscription === 'from' || current.subscription === 'both' || current.askIn) {
    send('unsubscribed');
    // The contact no longer sees this user: each available resource goes unavailable for it.
    for (const s of ctx.sessions.available(user.bare)) {
      ctx.route(x('presence', { type: 'unavailable', from: s.jid.full, to: contact.bare }), s.jid, contact);
    }
  }
  if (current.subscription === 'to' || current.subscription === 'both' || current.askOut) send('unsubscribe');
}

function readItem(item: XmlElement): { name: string | null; groups: string[] } {
  const name = item.attrs.name ?? null;
  if (name !== null && name.length > MAX_NAME) throw new StanzaError('not-acceptable', 'the item name is too long');
  const groups: string[] = [];
  for (const g of item.getChildren('group', NS.ROSTER)) {
    const text = g.text();
    if (text === '') throw new StanzaError('not-acceptable', 'a group name must not be empty');
    if (text.length > MAX_NAME) throw new StanzaError('not-acceptable', 'a group name is too long');
    if (groups.includes(text)) throw new StanzaError('bad-request', `group ${text} is listed twice`);
    groups.push(text);
  }
  if (groups.length > MAX_GROUPS) throw new StanzaError('not-acceptable', 'too many groups');
  return { name, groups };
}

/** The `<item/>` of a roster result or push (RFC 6121 §2.1.2). */
export function itemElement(item: RosterItem): XmlElement {
  const el = x('item', {
    jid: item.jid,
    name: item.name ?? undefined,
    subscription: item.subscription,
    ask: item.askOut ? 'subscribe' : undefined,
    approved: item.approved ? 'true' : undefined,
  });
  for (const g of item.groups) el.append(x('group', null, g));
  return el;
}

/** Did what the client sees of this item change (so a push is due)? */
function visibleChanged(a: RosterItem | null, b: RosterItem | null): boolean {
  const va = a?.inRoster ? a : null;
  const vb = b?.inRoster ? b : null;
  if (va === null || vb === null) return va !== vb;
  return (
    va.name !== vb.name ||
    va.subscription !== vb.subscription ||
    va.askOut !== vb.askOut ||
    va.approved !== vb.approved ||
    va.groups.join('\u0000') !== vb.groups.join('\u0000')
  );
}
