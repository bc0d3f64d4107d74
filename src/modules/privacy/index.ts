/**
 * Privacy: privacy lists, blocking and invisibility, on one engine (engine.ts) and one
 * store (store.ts).
 * References: XEP-0016 (privacy lists: named lists, active and default list, items by
 * jid, group and subscription, for message, iq, presence-in and presence-out, pushes,
 * conflict rules), XEP-0191 (blocking command, with the blocklist mapped to the default
 * list's jid+deny items, §4), XEP-0186 (invisible command, urn:xmpp:invisible:0 and the
 * `probe` attribute of urn:xmpp:invisible:1), XEP-0126 (invisibility through a
 * presence-out deny list: no code of its own, it is a privacy list).
 *
 * Where the rules live: the router's stanza filters (synchronous) read each user's lists
 * from memory. Users with a session are kept loaded (from 'session-bound' on); other
 * users' lists — needed for stanzas to offline accounts and to accounts that do not
 * exist — are loaded on demand through the router's `prepare` step (the router holds the
 * stanza until the lists are in memory) and kept in a bounded LRU cache. Presence that
 * the server fans out itself is filtered by the presence module, which asks the same
 * filters (router.checkOut/checkIn) and this module's `privacy` service (invisibility).
 *
 * Deliberate choices:
 * - An active list replaces the default list (XEP-0016 §2.2 rule 1) except for the JIDs
 *   blocked in the default list: those stay blocked whatever list is active, so an
 *   XEP-0126 invisible list never lets a blocked contact through.
 * - While invisible, IQ get/set to the session's full JID from anyone it has not
 *   addressed since going invisible get service-unavailable, as for a resource that does
 *   not exist (XEP-0186 says to deliver them; that would tell a prober the user is online).
 * - While invisible (XEP-0186), no presence of the resource reaches anyone but the user's
 *   own resources: not what the server makes for it (broadcast, probe answers, avatar
 *   updates) and not a directed presence its client sends, which is refused with
 *   not-acceptable, as a privacy list denying presence-out refuses it (XEP-0016 §2.13).
 *   XEP-0186 §3.1.1 lets directed presence out; issue 18 forbids it, so that an invisible
 *   user cannot be shown online by anything (ejabberd and Prosody hide presence-out the
 *   same way for XEP-0126 lists, directed presence included).
 * - The out-filter is the one gate for presence leaving a resource, on every path and for
 *   sessions of other cluster nodes too: their invisibility (SessionFlag.Invisible) and
 *   their active list's name (LocalSession.privacyList) are published in the directory,
 *   and a node that does not have the user's lists in memory sends no available presence
 *   for them (it fails closed; callers load the lists first through router.prepare).
 * - Privacy list pushes go to the resources that used jabber:iq:privacy in their session
 *   (like blocklist pushes go to those that asked for the blocklist): a client that never
 *   fetched a list has nothing to refresh, and would only answer with an error.
 */
import { x, type XmlElement } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import { defineModule, type IqRequest } from '../../core/module.js';
import { SessionFlag, type LocalSession } from '../../core/session.js';
import type { StanzaFilter } from '../../core/router.js';
import type { PresenceService } from '../presence/api.js';
import type { PrivacyService } from './api.js';
import type { RosterItem } from '../roster/api.js';
import {
  NOT_IN_ROSTER,
  blockedJids,
  classifyIn,
  classifyOut,
  compileList,
  decide,
  type CompiledList,
  type Decision,
  type RosterView,
  type StanzaClass,
} from './engine.js';
import { SqlPrivacyStore } from './store-sql.js';
import type { PrivacyItem, PrivacyKind, PrivacyList, PrivacyStore } from './store.js';

/** SECURITY: bounds on what one user may store. */
export const MAX_LISTS = 64;
export const MAX_ITEMS = 1000;
export const MAX_NAME = 128;
/** Offline users' lists kept in memory (LRU). */
export const CACHE_SIZE = 10_000;
/** SECURITY: contacts remembered per invisible session. */
const MAX_TALKED = 1000;
/** What an invisible session's client gets for a directed presence (the XEP-0016 §2.13 refusal). */
const INVISIBLE_REFUSAL = new StanzaError('not-acceptable', 'invisible: presence goes to no one');
/** The list the blocking command creates when the user has no default list. */
const BLOCKLIST_NAME = 'blocklist';
const KINDS: readonly PrivacyKind[] = ['message', 'iq', 'presence-in', 'presence-out'];
const SUBSCRIPTIONS = new Set(['none', 'to', 'from', 'both']);

/** A user's lists, compiled, in memory. */
interface UserState {
  defaultName: string | null;
  lists: Map<string, CompiledList>;
  /** Contacts' subscription and groups, kept while some list needs them. */
  roster: Map<string, RosterView> | null;
}

interface Invisible {
  probe: boolean;
  /** Bare JIDs the session addressed since going invisible (they may send it IQs). */
  talkedTo: Set<string>;
}

/** Per-session privacy state (only for sessions that have some). */
interface SessionPrivacy {
  active: string | null;
  usesPrivacy: boolean;
  wantsBlocklist: boolean;
  invisible: Invisible | null;
}

export default defineModule({
  name: 'privacy',
  setup(ctx) {
    const host = ctx.domain;
    const store: PrivacyStore = new SqlPrivacyStore(ctx.storage);
    const online = new Map<string, UserState>();
    const recent = new Map<string, UserState>();
    const loading = new Map<string, Promise<UserState>>();
    /** One change at a time per user. */
    const chains = new Map<string, Promise<unknown>>();
    const perSession = new WeakMap<LocalSession, SessionPrivacy>();
    let pushId = 0;

    ctx.addFeature(NS.PRIVACY);
    ctx.addFeature(NS.BLOCKING);
    ctx.addFeature(NS.INVISIBLE_0);
    ctx.addFeature(NS.INVISIBLE_1);

    // ------------------------------------------------------------------ state in memory

    const hasSessions = (bare: string) => ctx.sessions.resources(bare).length > 0;

    function lookup(bare: string): UserState | undefined {
      const s = online.get(bare);
      if (s) return s;
      const r = recent.get(bare);
      if (!r) return undefined;
      recent.delete(bare);
      if (hasSessions(bare)) online.set(bare, r);
      else recent.set(bare, r); // most recently used
      return r;
    }

    ctx.onInvalidate(
        'privacy',
        (bare) => {
          // Read again before the next stanza to or from the user is judged (router.prepare).
          online.delete(bare);
          recent.delete(bare);
        },
        () => {
          online.clear();
          recent.clear();
        },
      );

    function keep(bare: string, st: UserState): void {
      if (hasSessions(bare)) {
        online.set(bare, st);
        recent.delete(bare);
        return;
      }
      online.delete(bare);
      recent.set(bare, st);
      while (recent.size > CACHE_SIZE) recent.delete(recent.keys().next().value!);
    }

    function ensure(user: Jid): Promise<UserState> {
      const bare = user.bare;
      const have = lookup(bare);
      if (have) return Promise.resolve(have);
      let p = loading.get(bare);
      if (!p) {
        p = (async () => {
          const data = await store.load(host, user.local);
          const lists = new Map<string, CompiledList>();
          for (const l of data.lists) lists.set(l.name, compileList(l));
          const st: UserState = { defaultName: data.defaultName, lists, roster: null };
          if ([...lists.values()].some((l) => l.needsRoster)) st.roster = await loadRoster(user);
          keep(bare, st);
          return st;
        })();
        loading.set(bare, p);
        const done = () => loading.delete(bare);
        p.then(done, done);
      }
      return p;
    }

    async function loadRoster(user: Jid): Promise<Map<string, RosterView>> {
      const m = new Map<string, RosterView>();
      for (const item of await ctx.service('roster').getItems(user)) {
        const v = viewOf(item);
        if (v) m.set(item.jid, v);
      }
      return m;
    }

    const isAccount = (jid: Jid) => jid.local !== '' && jid.domain === host;

    function prepare(user: Jid): Promise<void> | null {
      if (!isAccount(user) || lookup(user.bare)) return null;
      return ensure(user).then(() => undefined);
    }

    ctx.hook('session-bound', async (session) => {
      await ensure(session.jid.toBare());
    });

    ctx.hook('session-closed', (session) => {
      const bare = session.jid.bare;
      if (hasSessions(bare)) return;
      const st = online.get(bare);
      if (st) keep(bare, st); // moves to the LRU
    });

    ctx.hook('roster-changed', (user, contact, item) => {
      const st = online.get(user.bare) ?? recent.get(user.bare);
      // Lists by group or subscription read the roster: other nodes read it again.
      ctx.invalidate('privacy', user.bare);
      if (!st?.roster) return;
      const v = item ? viewOf(item) : null;
      if (v) st.roster.set(contact, v);
      else st.roster.delete(contact);
    });

    // ------------------------------------------------------------------ the filters

    const sp = (s: LocalSession | null): SessionPrivacy | undefined => (s ? perSession.get(s) : undefined);
    /** The session's active list: this node's state, or what another node published for its session. */
    const activeOf = (s: LocalSession | null): string | null => (s === null ? null : s.node !== undefined ? (s.privacyList ?? null) : (perSession.get(s)?.active ?? null));

    /** Sets a session's active list, published for the other nodes of a cluster. */
    function setActive(s: LocalSession, me: SessionPrivacy, name: string | null): Promise<void> {
      me.active = name;
      s.privacyList = name;
      return ctx.sessions.sync(s);
    }

    function judge(st: UserState, active: string | null, contact: Jid, cls: StanzaClass): Decision {
      const def = st.defaultName !== null ? st.lists.get(st.defaultName) : undefined;
      const act = active !== null ? st.lists.get(active) : undefined;
      return decide(def, act, contact, cls, () => st.roster?.get(contact.bare) ?? NOT_IN_ROSTER);
    }

    /** The recipient's policy: XEP-0016 §2.13, XEP-0191 §3.3 (the user appears offline). */
    const inFilter: StanzaFilter = ({ stanza, from, to, session }) => {
      if (from.bare === to.bare || !isAccount(to)) return null;
      // The server itself (its own JID) is never filtered.
      if (from.local === '' && from.resource === '' && from.domain === host) return null;
      const type = stanza.attrs.type;
      const state = sp(session);
      const inv = state?.invisible;
      if (inv && stanza.name === 'iq' && (type === 'get' || type === 'set') && !inv.talkedTo.has(from.bare)) {
        return new StanzaError('service-unavailable'); // as for a resource that is not there
      }
      const st = lookup(to.bare);
      if (!st || st.lists.size === 0) return null;
      const d = judge(st, activeOf(session), from, classifyIn(stanza.name, type));
      if (d.action === 'allow') return null;
      if (stanza.name === 'presence') return 'drop';
      if (stanza.name === 'iq' && type !== 'get' && type !== 'set') return 'drop';
      return new StanzaError('service-unavailable');
    };

    /** The sender's policy: XEP-0016 §2.13 and XEP-0191 §3.3 (not-acceptable, <blocked/>). */
    const outFilter: StanzaFilter = ({ stanza, from, to, session, fromClient }) => {
      if (from.bare === to.bare || !isAccount(from)) return null;
      // Presence the server makes for a resource may come with no session: find it (on
      // this node or, as a stand-in, on another).
      const s = session ?? (from.resource !== '' ? (ctx.sessions.get(from) ?? null) : null);
      const type = stanza.attrs.type;
      const notification = stanza.name === 'presence' && (type === undefined || type === 'unavailable');
      // SECURITY: an invisible resource (XEP-0186; the flag is published, so this holds for
      // another node's session too) shows itself to no one: presence the server would send
      // for it is dropped, a directed presence its client sends is refused.
      if (notification && s !== null && (s.flags & SessionFlag.Invisible) !== 0) return fromClient ? INVISIBLE_REFUSAL : 'drop';
      const inv = sp(s)?.invisible;
      // Whom the invisible client addresses (messages, IQs) may send IQs to its full JID.
      if (inv && fromClient && stanza.name !== 'presence' && inv.talkedTo.size < MAX_TALKED) inv.talkedTo.add(to.bare);
      const st = lookup(from.bare);
      // SECURITY: the user's lists are not in memory here (a session of another node, or a
      // copy dropped after missed invalidations): no available presence is made for the
      // resource rather than one its lists might deny (fail closed).
      if (!st) return notification && type === undefined && s !== null && !fromClient ? 'drop' : null;
      if (st.lists.size === 0) return null;
      const d = judge(st, activeOf(s), to, classifyOut(stanza.name, type));
      if (d.action === 'allow') return null;
      // XEP-0191 §3.3.3 (as Prosody does): a text the sender's client can show; the blocked
      // contact learns nothing of this (what it sends gets service-unavailable).
      return d.blocked
        ? new StanzaError('not-acceptable', 'You have blocked this contact', 'cancel', x('blocked', { xmlns: NS.BLOCKING_ERRORS }))
        : new StanzaError('not-acceptable', 'Your privacy list does not allow this', 'cancel');
    };

    ctx.addFilter('in', inFilter, prepare);
    ctx.addFilter('out', outFilter);

    const service: PrivacyService = {
      probesContacts(session) {
        const inv = perSession.get(session)?.invisible;
        return !inv || inv.probe;
      },
    };
    ctx.provide('privacy', service);

    // ------------------------------------------------------------------ changes

    function stateOf(session: LocalSession): SessionPrivacy {
      let s = perSession.get(session);
      if (!s) perSession.set(session, (s = { active: null, usesPrivacy: false, wantsBlocklist: false, invisible: null }));
      return s;
    }

    /** Runs `fn` after the user's previous change (one at a time per user). */
    function serial<T>(user: Jid, fn: () => Promise<T>): Promise<T> {
      const prev = chains.get(user.bare) ?? Promise.resolve();
      // Other cluster nodes drop their copy of the user's lists once the change is in.
      const next = prev.then(fn, fn).finally(() => ctx.invalidate('privacy', user.bare));
      const tail = next.catch(() => undefined);
      chains.set(user.bare, tail);
      void tail.then(() => {
        if (chains.get(user.bare) === tail) chains.delete(user.bare);
      });
      return next;
    }

    /** Applies a policy change with presence following it (when the presence module is there). */
    function withPresence<T>(user: Jid, change: () => Promise<T> | T, opts?: { forgetDirected?: LocalSession; republish?: LocalSession }): Promise<T> {
      const presence: PresenceService | null = ctx.hasService('presence') ? ctx.service('presence') : null;
      return presence ? presence.applyPolicyChange(user, change, opts) : Promise.resolve().then(change);
    }

    /** Does another session of the user run on the default list (no active list of its own)? */
    function defaultInUseByOthers(user: Jid, sender: LocalSession): boolean {
      for (const s of ctx.sessions.resources(user.bare)) {
        if (s !== sender && activeOf(s) === null) return true;
      }
      return false;
    }

    /** Is the list `name` applied to another session of the user (as its active list or as the default)? */
    function inUseByOthers(user: Jid, st: UserState, sender: LocalSession, name: string): boolean {
      for (const s of ctx.sessions.resources(user.bare)) {
        if (s === sender) continue;
        const effective = activeOf(s) ?? st.defaultName;
        if (effective === name) return true;
      }
      return false;
    }

    function pushPrivacy(user: Jid, name: string): void {
      for (const s of ctx.sessions.resources(user.bare)) {
        if (s.isClosed || !perSession.get(s)?.usesPrivacy) continue;
        s.deliver(x('iq', { type: 'set', id: `privacy-push-${++pushId}`, to: s.jid.full }, x('query', { xmlns: NS.PRIVACY }, x('list', { name }))));
      }
    }

    function pushBlocking(user: Jid, what: 'block' | 'unblock', jids: string[]): void {
      for (const s of ctx.sessions.resources(user.bare)) {
        if (s.isClosed || !perSession.get(s)?.wantsBlocklist) continue;
        const el = x(what, { xmlns: NS.BLOCKING });
        for (const j of jids) el.append(x('item', { jid: j }));
        s.deliver(x('iq', { type: 'set', id: `block-push-${++pushId}`, to: s.jid.full }, el));
      }
    }

    /** After a change to which list is default or to its contents: blocklist pushes (XEP-0191 §4). */
    function pushBlocklistDiff(user: Jid, before: string[], after: string[]): void {
      const added = after.filter((j) => !before.includes(j));
      const removed = before.filter((j) => !after.includes(j));
      if (added.length > 0) pushBlocking(user, 'block', added);
      if (removed.length > 0) pushBlocking(user, 'unblock', removed);
    }

    const defaultOf = (st: UserState) => (st.defaultName !== null ? st.lists.get(st.defaultName) : undefined);

    function requireSelf(req: IqRequest): LocalSession {
      // Another account's lists are nobody else's business: answered as for no account.
      if (!req.isSelf || req.session === null) throw new StanzaError('service-unavailable');
      return req.session;
    }

    async function setListInMemory(user: Jid, st: UserState, list: PrivacyList | null, name: string): Promise<void> {
      if (list === null) st.lists.delete(name);
      else {
        const compiled = compileList(list);
        if (compiled.needsRoster && st.roster === null) st.roster = await loadRoster(user);
        st.lists.set(name, compiled);
      }
      if (st.roster !== null && ![...st.lists.values()].some((l) => l.needsRoster)) st.roster = null;
    }

    // ------------------------------------------------------------------ XEP-0016

    ctx.handleIq(
      'get',
      NS.PRIVACY,
      'query',
      async (req) => {
        const session = requireSelf(req);
        const me = stateOf(session);
        me.usesPrivacy = true;
        const user = req.from.toBare();
        const st = await ensure(user);
        const children = req.payload.elements();
        if (children.length === 0) {
          const q = x('query', { xmlns: NS.PRIVACY });
          if (me.active !== null && st.lists.has(me.active)) q.append(x('active', { name: me.active }));
          if (st.defaultName !== null) q.append(x('default', { name: st.defaultName }));
          for (const name of [...st.lists.keys()].sort()) q.append(x('list', { name }));
          return q;
        }
        if (children.length !== 1 || !children[0]!.is('list', NS.PRIVACY)) throw new StanzaError('bad-request', 'ask for one list at a time');
        const name = children[0]!.attrs.name;
        const list = name !== undefined ? st.lists.get(name) : undefined;
        if (!list) throw new StanzaError('item-not-found');
        return x('query', { xmlns: NS.PRIVACY }, listElement(list));
      },
      { scope: 'account' },
    );

    ctx.handleIq(
      'set',
      NS.PRIVACY,
      'query',
      async (req) => {
        const session = requireSelf(req);
        const me = stateOf(session);
        me.usesPrivacy = true;
        const user = req.from.toBare();
        const children = req.payload.elements();
        if (children.length !== 1) throw new StanzaError('bad-request', 'a privacy set carries exactly one of active, default or list');
        const el = children[0]!;
        if (el.ns !== NS.PRIVACY) throw new StanzaError('bad-request');
        const name = el.attrs.name;
        switch (el.localName) {
          case 'active':
            await serial(user, async () => {
              const st = await ensure(user);
              if (name !== undefined && !st.lists.has(name)) throw new StanzaError('item-not-found');
              // XEP-0016 §2.4: applied before the result goes back.
              await withPresence(user, () => setActive(session, me, name ?? null));
            });
            return null;
          case 'default':
            await serial(user, async () => {
              const st = await ensure(user);
              if (name !== undefined && !st.lists.has(name)) throw new StanzaError('item-not-found');
              const wanted = name ?? null;
              if (wanted === st.defaultName) return;
              if (st.defaultName !== null && defaultInUseByOthers(user, session)) {
                throw new StanzaError('conflict', 'the default list applies to another resource');
              }
              const before = blockedJids(defaultOf(st));
              await withPresence(user, async () => {
                await store.setDefault(host, user.local, wanted);
                st.defaultName = wanted;
              });
              pushBlocklistDiff(user, before, blockedJids(defaultOf(st)));
            });
            return null;
          case 'list': {
            if (name === undefined || name === '') throw new StanzaError('bad-request', 'a list needs a name');
            if (name.length > MAX_NAME) throw new StanzaError('not-acceptable', 'the list name is too long');
            const itemEls = el.elements();
            if (itemEls.length === 0) {
              await serial(user, () => removeList(user, session, name));
              return null;
            }
            const items = await readItems(user, itemEls);
            await serial(user, async () => {
              const st = await ensure(user);
              if (!st.lists.has(name) && st.lists.size >= MAX_LISTS) throw new StanzaError('not-acceptable', 'too many privacy lists');
              const before = blockedJids(defaultOf(st));
              const list: PrivacyList = { name, items };
              await withPresence(user, async () => {
                await store.putList(host, user.local, list);
                await setListInMemory(user, st, list, name);
              });
              pushPrivacy(user, name);
              if (st.defaultName === name) pushBlocklistDiff(user, before, blockedJids(defaultOf(st)));
            });
            return null;
          }
          default:
            throw new StanzaError('bad-request');
        }
      },
      { scope: 'account' },
    );

    async function removeList(user: Jid, session: LocalSession, name: string): Promise<void> {
      const st = await ensure(user);
      if (!st.lists.has(name)) throw new StanzaError('item-not-found');
      if (inUseByOthers(user, st, session, name)) throw new StanzaError('conflict', 'the list applies to another resource');
      const before = blockedJids(defaultOf(st));
      const me = stateOf(session);
      await withPresence(user, async () => {
        await store.removeList(host, user.local, name);
        await setListInMemory(user, st, null, name);
        if (st.defaultName === name) st.defaultName = null;
        if (me.active === name) await setActive(session, me, null);
      });
      pushPrivacy(user, name);
      pushBlocklistDiff(user, before, blockedJids(defaultOf(st)));
    }

    /** Reads and checks the items of a list set (XEP-0016 §2.1). */
    async function readItems(user: Jid, els: XmlElement[]): Promise<PrivacyItem[]> {
      if (els.length > MAX_ITEMS) throw new StanzaError('not-acceptable', 'too many items in one list');
      const orders = new Set<number>();
      const items: PrivacyItem[] = [];
      let groups: Set<string> | null = null;
      for (const el of els) {
        if (!el.is('item', NS.PRIVACY)) throw new StanzaError('bad-request', 'a list holds only items');
        const action = el.attrs.action;
        if (action !== 'allow' && action !== 'deny') throw new StanzaError('bad-request', 'an item needs action allow or deny');
        const orderText = el.attrs.order;
        const order = orderText !== undefined && /^\d{1,10}$/.test(orderText) ? Number(orderText) : NaN;
        if (!Number.isInteger(order) || order > 0xffffffff) throw new StanzaError('bad-request', 'an item needs an unsigned integer order');
        if (orders.has(order)) throw new StanzaError('bad-request', 'item orders must be unique');
        orders.add(order);
        const type = el.attrs.type;
        let value: string | null = null;
        if (type === undefined) {
          value = null;
        } else if (type === 'jid') {
          const jid = Jid.tryParse(el.attrs.value);
          if (!jid) throw new StanzaError('bad-request', 'a jid item needs a valid JID');
          value = jid.full;
        } else if (type === 'group') {
          value = el.attrs.value ?? '';
          if (value === '') throw new StanzaError('bad-request', 'a group item needs a group name');
          groups ??= new Set((await ctx.service('roster').getItems(user)).filter((i) => i.inRoster).flatMap((i) => i.groups));
          // XEP-0016 §2.1: a group that is not in the roster.
          if (!groups.has(value)) throw new StanzaError('item-not-found', `no roster group ${value}`);
        } else if (type === 'subscription') {
          value = el.attrs.value ?? '';
          if (!SUBSCRIPTIONS.has(value)) throw new StanzaError('bad-request', 'subscription must be none, to, from or both');
        } else {
          throw new StanzaError('bad-request', `unknown item type ${type}`);
        }
        const kinds: PrivacyKind[] = [];
        for (const k of el.elements()) {
          const kind = KINDS.find((n) => k.is(n, NS.PRIVACY));
          if (!kind) throw new StanzaError('bad-request', `unknown element ${k.name} in an item`);
          if (!kinds.includes(kind)) kinds.push(kind);
        }
        items.push({ type: type === undefined ? null : (type as PrivacyItem['type']), value, action, order, kinds });
      }
      return items;
    }

    // ------------------------------------------------------------------ XEP-0191

    ctx.handleIq(
      'get',
      NS.BLOCKING,
      'blocklist',
      async (req) => {
        const session = requireSelf(req);
        stateOf(session).wantsBlocklist = true;
        const st = await ensure(req.from.toBare());
        const el = x('blocklist', { xmlns: NS.BLOCKING });
        for (const j of blockedJids(defaultOf(st))) el.append(x('item', { jid: j }));
        return el;
      },
      { scope: 'account' },
    );

    /** The JIDs of the items of a block or unblock command, in canonical form. */
    function readJids(el: XmlElement): string[] {
      const out: string[] = [];
      for (const item of el.getChildren('item', NS.BLOCKING)) {
        const jid = Jid.tryParse(item.attrs.jid);
        if (!jid) throw new StanzaError('jid-malformed', 'an item needs a valid jid');
        if (!out.includes(jid.full)) out.push(jid.full);
      }
      return out;
    }

    ctx.handleIq(
      'set',
      NS.BLOCKING,
      'block',
      async (req) => {
        requireSelf(req);
        const user = req.from.toBare();
        const jids = readJids(req.payload);
        if (jids.length === 0) throw new StanzaError('bad-request', 'block at least one JID');
        if (jids.includes(user.bare)) throw new StanzaError('not-acceptable', 'an account cannot block itself');
        await serial(user, async () => {
          const st = await ensure(user);
          const def = defaultOf(st);
          const already = blockedJids(def);
          const fresh = jids.filter((j) => !already.includes(j));
          if (fresh.length === 0) return;
          const existing = def ? def.items.map((ci) => ci.item) : [];
          if (existing.length + fresh.length > MAX_ITEMS) throw new StanzaError('not-acceptable', 'the blocklist is full');
          const items = prependBlocks(
            existing,
            fresh.map((value) => ({ type: 'jid', value, action: 'deny', order: 0, kinds: [] })),
          );
          const name = def ? def.name : freeName(st);
          const list: PrivacyList = { name, items };
          await withPresence(user, async () => {
            if (def) await store.putList(host, user.local, list);
            else await store.putDefaultList(host, user.local, list);
            await setListInMemory(user, st, list, name);
            st.defaultName = name;
          });
          pushBlocking(user, 'block', fresh);
          pushPrivacy(user, name);
        });
        return null;
      },
      { scope: 'account' },
    );

    ctx.handleIq(
      'set',
      NS.BLOCKING,
      'unblock',
      async (req) => {
        requireSelf(req);
        const user = req.from.toBare();
        const jids = readJids(req.payload);
        await serial(user, async () => {
          const st = await ensure(user);
          const def = defaultOf(st);
          if (!def) return;
          const all = jids.length === 0;
          const removed: string[] = [];
          const keepItems: PrivacyItem[] = [];
          for (const ci of def.items) {
            if (ci.isBlock && (all || jids.includes(ci.jid!.full))) {
              if (!removed.includes(ci.jid!.full)) removed.push(ci.jid!.full);
            } else keepItems.push(ci.item);
          }
          if (removed.length === 0) return;
          const name = def.name;
          await withPresence(user, async () => {
            if (keepItems.length === 0) {
              // Nothing left: the list goes, and with it the default.
              await store.removeList(host, user.local, name);
              await setListInMemory(user, st, null, name);
              st.defaultName = null;
              for (const s of ctx.sessions.resources(user.bare)) {
                const p = perSession.get(s);
                if (p?.active === name) await setActive(s, p, null);
              }
            } else {
              const list = { name, items: keepItems };
              await store.putList(host, user.local, list);
              await setListInMemory(user, st, list, name);
            }
          });
          pushBlocking(user, 'unblock', all ? [] : removed);
          pushPrivacy(user, name);
        });
        return null;
      },
      { scope: 'account' },
    );

    // ------------------------------------------------------------------ XEP-0186

    for (const ns of [NS.INVISIBLE_0, NS.INVISIBLE_1]) {
      ctx.handleIq(
        'set',
        ns,
        'invisible',
        async (req) => {
          const session = requireSelf(req);
          const probeAttr = req.payload.attrs.probe;
          let probe: boolean;
          if (probeAttr === undefined) probe = ns === NS.INVISIBLE_0; // :0 had no attribute and probed; :1 defaults to false
          else if (probeAttr === 'true' || probeAttr === '1') probe = true;
          else if (probeAttr === 'false' || probeAttr === '0') probe = false;
          else throw new StanzaError('bad-request', 'probe is a boolean');
          const me = stateOf(session);
          const user = req.from.toBare();
          await serial(user, async () => {
            if (me.invisible) {
              me.invisible.probe = probe;
              return;
            }
            // XEP-0186 §3.1: unavailable to everyone who saw this resource.
            await withPresence(
              user,
              () => {
                me.invisible = { probe, talkedTo: new Set() };
                session.flags |= SessionFlag.Invisible;
                // Other nodes have the flag before the IQ result goes back.
                return ctx.sessions.sync(session);
              },
              { forgetDirected: session },
            );
          });
          return null;
        },
        { scope: 'account' },
      );
      ctx.handleIq(
        'set',
        ns,
        'visible',
        async (req) => {
          const session = requireSelf(req);
          const me = stateOf(session);
          const user = req.from.toBare();
          await serial(user, async () => {
            if (!me.invisible) return;
            // XEP-0186 §3.2: the presence the session has goes out, once, to those who
            // now see it (directed-presence targets already have it).
            await withPresence(
              user,
              () => {
                me.invisible = null;
                session.flags &= ~SessionFlag.Invisible;
                return ctx.sessions.sync(session);
              },
              { republish: session },
            );
          });
          return null;
        },
        { scope: 'account' },
      );
    }
  },
});

function viewOf(item: RosterItem): RosterView | null {
  if (!item.inRoster && item.subscription === 'none') return null;
  return { subscription: item.subscription, groups: item.groups };
}

/** A list element with its items, as stored (XEP-0016 §2.3). */
function listElement(list: CompiledList): XmlElement {
  const el = x('list', { name: list.name });
  for (const { item } of list.items) {
    const it = x('item', {
      type: item.type ?? undefined,
      value: item.value ?? undefined,
      action: item.action,
      order: String(item.order),
    });
    for (const k of item.kinds) it.append(x(k));
    el.append(it);
  }
  return el;
}

/**
 * New blocklist items go first (XEP-0191 §4). Orders stay as they were when there is
 * room below the lowest one; otherwise the list is renumbered in its current order.
 */
export function prependBlocks(existing: PrivacyItem[], blocks: PrivacyItem[]): PrivacyItem[] {
  const sorted = [...existing].sort((a, b) => a.order - b.order);
  const k = blocks.length;
  const min = sorted.length > 0 ? sorted[0]!.order : k;
  if (min >= k) return [...blocks.map((b, i) => ({ ...b, order: min - k + i })), ...sorted];
  return [...blocks, ...sorted].map((it, i) => ({ ...it, order: i }));
}

function freeName(st: { lists: Map<string, unknown> }): string {
  if (!st.lists.has(BLOCKLIST_NAME)) return BLOCKLIST_NAME;
  for (let i = 2; ; i++) if (!st.lists.has(`${BLOCKLIST_NAME}-${i}`)) return `${BLOCKLIST_NAME}-${i}`;
}
