/**
 * Presence and the subscription state machine.
 * References: RFC 6121 §3 (subscriptions: request, approve, cancel, unsubscribe,
 * pre-approval §3.4), §4 (initial presence, probes, broadcast, directed presence,
 * unavailable presence), Appendix A (subscription states).
 *
 * Privacy: every presence that leaves a resource for someone else — broadcast, probe
 * answers, contacts' presence gathered at login, directed presence, avatar-hash updates,
 * presence after a subscription approval, for this node's sessions and for other nodes'
 * — passes one gate, the sender's policy (router.checkOut: privacy lists, blocking,
 * XEP-0186 invisibility), and the recipient's (router.checkIn: presence-in); the lists a
 * decision needs are loaded first (router.prepare). The `privacy` service says whether an
 * invisible session probes. A resource hidden from a contact looks to that contact
 * exactly like an offline one. The `presence` service keeps presence in line when a
 * policy changes (block, unblock, list edits, invisible, visible).
 */
import { XmlElement, x } from '../../xml/element.js';
import { SplitStanza, serialize } from '../../xml/serializer.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { defineModule, type ModuleContext } from '../../core/module.js';
import { StanzaError, type StanzaErrorCondition, type StanzaErrorType } from '../../xmpp/errors.js';
import type { LocalSession } from '../../core/session.js';
import type { PresenceService } from './api.js';
import type { PrivacyService } from '../privacy/api.js';
import type { RosterItem, RosterService } from '../roster/api.js';

export default defineModule({
  name: 'presence',
  setup(ctx) {
    const roster = (): RosterService => ctx.service('roster');
    /** Full JIDs a session sent directed available presence to (RFC 6121 §4.6). */
    const directed = new WeakMap<LocalSession, Set<string>>();
    /** Sessions that got their contacts' presence (initial presence, XEP-0186 probe). */
    const gathered = new WeakSet<LocalSession>();
    /**
     * Sessions whose presence the server just published for them (going visible): the
     * same presence sent again by the client is not broadcast a second time.
     */
    const republished = new WeakMap<LocalSession, string>();
    const privacy = (): PrivacyService | null => (ctx.hasService('privacy') ? ctx.service('privacy') : null);

    /** May the server show `s`'s presence to `to` (the sender's side)? */
    function shows(s: LocalSession, to: Jid, el: XmlElement): boolean {
      if (to.bare === s.jid.bare) return true;
      return ctx.policy.checkOut(el, s.jid, to, s) === null;
    }

    /** Does the recipient session `r` take presence `el` from `from` (presence-in)? */
    function takes(r: LocalSession, from: Jid, el: XmlElement): boolean {
      return from.bare === r.jid.bare || ctx.policy.checkIn(el, from, r.jid, r) === null;
    }

    /** `s`'s presence may go to the session `r` (both sides' policies). */
    const visibleTo = (s: LocalSession, r: LocalSession, el: XmlElement) => shows(s, r.jid, el) && takes(r, s.jid, el);

    ctx.addStreamFeature((_session, stage) => (stage === 'post-bind' ? x('sub', { xmlns: NS.PRE_APPROVAL }) : null));
    ctx.addStreamFeature((_session, stage) => (stage === 'post-bind' ? x('ver', { xmlns: NS.ROSTER_VER }) : null));

    // ---------------------------------------------------------------- from local clients

    ctx.hook('presence-from-client', async (session, stanza, to) => {
      const type = stanza.attrs.type;
      if (to === null || (to.bare === session.jid.bare && to.isBare && (type === undefined || type === 'unavailable'))) {
        if (type === undefined || type === 'unavailable') {
          // limits.presencePerMinute: unavailable is never refused (a client must be able to leave).
          if (type === undefined && !ctx.limits.allowPresence(session.jid.bare)) {
            refuse(session, stanza, session.jid.toBare(), 'too many presence updates; slow down and send again later', 'policy-violation', 'wait');
            return true;
          }
          await broadcast(session, stanza);
          return true;
        }
        if (type === 'probe' || type === 'error') return true; // nothing to do without an addressee
      }
      if (to === null) return true;
      switch (type) {
        case 'subscribe':
        case 'subscribed':
        case 'unsubscribe':
        case 'unsubscribed':
          if (roster().readOnly) {
            // Portal mode: subscriptions follow the portal's friendships (issue 8).
            refuse(session, stanza, to, "subscriptions follow the portal's friendships");
            return true;
          }
          await outboundSubscription(session, stanza, to.toBare(), type);
          return true;
        case 'probe': {
          // Clients should not probe (RFC 6121 §4.3); answer as the server would, after
          // the probed user's policy (a blocked prober gets nothing, as from no account).
          const target = to.toBare();
          if (target.bare !== session.jid.bare && ctx.isLocal(target)) {
            const wait = ctx.policy.prepare(target);
            if (wait) await wait;
            if (ctx.policy.checkIn(stanza, session.jid, target, null) !== null) return true;
          }
          await answerProbe(session.jid.toBare(), target, session.jid);
          return true;
        }
        case undefined:
        case 'unavailable':
          if (!trackDirected(session, to, type)) {
            ctx.limits.hit('directed-presences');
            refuse(session, stanza, to, 'too many directed presences from this session; send unavailable to some first', 'resource-constraint', 'wait');
            return true;
          }
          return false; // routed as is
        default:
          return false;
      }
    });

    /** A presence error back to the client (RFC 6120 §8.3: from the addressee, type error). */
    function refuse(session: LocalSession, stanza: XmlElement, to: Jid, text: string, condition: StanzaErrorCondition = 'not-allowed', type: StanzaErrorType = 'cancel'): void {
      const err = new StanzaError(condition, text, type);
      session.deliver(x('presence', { type: 'error', id: stanza.attrs.id, from: to.bare, to: session.jid.full }, err.toElement()));
    }

    /** Available or unavailable presence without `to`: RFC 6121 §4.2, §4.4, §4.5. */
    async function broadcast(session: LocalSession, stanza: XmlElement): Promise<void> {
      const user = session.jid.toBare();
      if (stanza.attrs.type === 'unavailable') {
        if (!session.isAvailable && !directed.has(session)) return;
        await sendUnavailable(session, stanza);
        return;
      }
      const initial = !session.isAvailable;
      delete stanza.attrs.to;
      const again = republished.get(session);
      republished.delete(session);
      session.presence = stanza;
      session.priority = priorityOf(stanza);
      // In a cluster: the directory has this presence before others' is read (see sync()).
      const synced = ctx.sessions.sync(session);
      const items = await roster().getItems(user);
      await synced;
      // The lists of those whose presence the user gets now (initial presence) too: the
      // gate judges their resources, on this node or another, by them.
      await prepareAll(initial ? subscribers(items).concat(publishers(items)) : subscribers(items));
      // The presence the server published when the session went visible, sent again by
      // the client: contacts have it already (XEP-0186 §3.2: presence once).
      if (again === undefined || again !== presenceKey(stanza)) fanOut(ctx, stanza, session, subscribers(items), directed.get(session), visibleTo);
      if (initial) {
        // The user's other available resources (a probe of one's own account).
        for (const s of ctx.sessions.available(user.bare)) {
          if (s !== session) session.deliverSerialized(withTo(s.presence!, s.jid.full, session.jid.full), 'presence', s.presence!);
        }
        if (privacy()?.probesContacts(session) ?? true) gatherContacts(session, items);
        // Subscription requests that came while the user was away (RFC 6121 §3.1.3).
        for (const item of items) {
          if (item.askIn && item.askInStanza) session.deliverSerialized(item.askInStanza, 'presence');
        }
      }
      await ctx.notify('session-available', session, initial);
    }

    /**
     * Probes, answered locally: the current presence of every contact the user is
     * subscribed to that shows itself to the user and that the user takes presence from.
     */
    function gatherContacts(session: LocalSession, items: RosterItem[]): void {
      gathered.add(session);
      for (const item of items) {
        if (item.subscription !== 'to' && item.subscription !== 'both') continue;
        for (const s of ctx.sessions.available(item.jid)) {
          if (visibleTo(s, session, s.presence!)) session.deliverSerialized(withTo(s.presence!, s.jid.full, session.jid.full), 'presence', s.presence!);
        }
      }
    }

    /** Loads the lists of online contacts whose filters are not ready yet (rare: just bound). */
    async function prepareAll(bares: string[]): Promise<void> {
      let waits: Array<Promise<void>> | null = null;
      for (const bare of bares) {
        if (ctx.sessions.resources(bare).length === 0) continue;
        const jid = Jid.tryParse(bare);
        const w = jid ? ctx.policy.prepare(jid) : null;
        if (w) (waits ??= []).push(w);
      }
      if (waits) await Promise.all(waits);
    }

    async function sendUnavailable(session: LocalSession, stanza: XmlElement | null): Promise<void> {
      const user = session.jid.toBare();
      const el = stanza ?? x('presence', { type: 'unavailable' });
      delete el.attrs.to;
      el.attrs.from = session.jid.full;
      el.attrs.type = 'unavailable';
      const wasAvailable = session.isAvailable;
      session.presence = null;
      ctx.sessions.changed(session);
      const targets = directed.get(session);
      directed.delete(session);
      const items = wasAvailable ? await roster().getItems(user) : [];
      // RFC 6121 §4.5.2: the client's own unavailable presence goes back to it too (not the
      // one the server makes for a session that is gone).
      const echo = stanza !== null && wasAvailable && !session.isClosed;
      fanOut(ctx, el, session, subscribers(items), targets, visibleTo, echo);
    }

    /**
     * Remembers a directed presence's target (RFC 6121 §4.6); false when the session has
     * as many targets as limits.directedPresences allows and this is a new one.
     */
    function trackDirected(session: LocalSession, to: Jid, type: string | undefined): boolean {
      if (to.bare === session.jid.bare) return true;
      let set = directed.get(session);
      if (type === 'unavailable') {
        set?.delete(to.full);
        return true;
      }
      if (!set) directed.set(session, (set = new Set()));
      if (set.has(to.full)) return true;
      if (set.size >= ctx.limits.settings.directedPresences) return false;
      set.add(to.full);
      return true;
    }

    // ---------------------------------------------------------------- subscriptions, outbound

    /** RFC 6121 §3.1.2, §3.1.5, §3.2.2, §3.3.2, §3.4: the user's server side. */
    async function outboundSubscription(session: LocalSession, stanza: XmlElement, contact: Jid, type: string): Promise<void> {
      const user = session.jid.toBare();
      const out = stanza.clone();
      out.attrs.from = user.bare;
      out.attrs.to = contact.bare;
      const route = () => ctx.route(out, user, contact);
      const r = roster();
      switch (type) {
        case 'subscribe': {
          await r.update(user, contact.bare, (cur) => {
            const item = cur ?? emptyItem(contact.bare);
            item.inRoster = true;
            if (item.subscription !== 'to' && item.subscription !== 'both') item.askOut = true;
            return item;
          });
          route();
          return;
        }
        case 'subscribed': {
          const cur = await r.getItem(user, contact.bare);
          if (cur?.askIn) {
            await r.update(user, contact.bare, (c) => {
              const item = c ?? emptyItem(contact.bare);
              item.subscription = item.subscription === 'to' || item.subscription === 'both' ? 'both' : 'from';
              item.askIn = false;
              item.askInStanza = null;
              item.inRoster = true;
              return item;
            });
            route();
            // The contact now sees the user: current presence from each available resource.
            for (const s of ctx.sessions.available(user.bare)) sendPresenceOf(s, contact);
          } else if (!cur || (cur.subscription !== 'from' && cur.subscription !== 'both')) {
            // Pre-approval (RFC 6121 §3.4): remembered, not routed.
            await r.update(user, contact.bare, (c) => ({ ...(c ?? emptyItem(contact.bare)), approved: true, inRoster: true }));
          }
          return;
        }
        case 'unsubscribe': {
          await r.update(user, contact.bare, (cur) => {
            if (!cur) return null;
            cur.subscription = cur.subscription === 'both' ? 'from' : cur.subscription === 'to' ? 'none' : cur.subscription;
            cur.askOut = false;
            return cur;
          });
          route();
          return;
        }
        case 'unsubscribed': {
          const cur = await r.getItem(user, contact.bare);
          if (!cur) {
            route();
            return;
          }
          const wasFrom = cur.subscription === 'from' || cur.subscription === 'both';
          await r.update(user, contact.bare, (c) => {
            if (!c) return null;
            c.subscription = c.subscription === 'both' ? 'to' : c.subscription === 'from' ? 'none' : c.subscription;
            c.askIn = false;
            c.askInStanza = null;
            c.approved = false;
            // A stored request from someone not in the roster simply goes away.
            return c.inRoster ? c : null;
          });
          route();
          if (wasFrom) {
            for (const s of ctx.sessions.available(user.bare)) {
              ctx.route(x('presence', { type: 'unavailable', from: s.jid.full, to: contact.bare }), s.jid, contact);
            }
          }
          return;
        }
      }
    }

    // ---------------------------------------------------------------- subscriptions, inbound

    ctx.hook('presence-to-user', async (from, to, stanza) => {
      const type = stanza.attrs.type;
      const user = to.toBare();
      const contact = from.toBare();
      if (!(await ctx.accounts.exists(user.local))) return true; // silently ignored
      const r = roster();
      // Portal mode: the roster follows friendships; requests from elsewhere change nothing.
      if (r.readOnly && (type === 'subscribe' || type === 'subscribed' || type === 'unsubscribe' || type === 'unsubscribed')) return true;
      switch (type) {
        case 'subscribe': {
          const cur = await r.getItem(user, contact.bare);
          if (cur && (cur.subscription === 'from' || cur.subscription === 'both')) {
            // Already approved: the server answers for the user (RFC 6121 §3.1.3).
            ctx.route(x('presence', { type: 'subscribed', from: user.bare, to: contact.bare }), user, contact);
            return true;
          }
          if (cur?.approved) {
            await r.update(user, contact.bare, (c) => {
              const item = c ?? emptyItem(contact.bare);
              item.subscription = item.subscription === 'to' ? 'both' : 'from';
              item.approved = false;
              return item;
            });
            ctx.route(x('presence', { type: 'subscribed', from: user.bare, to: contact.bare }), user, contact);
            for (const s of ctx.sessions.available(user.bare)) sendPresenceOf(s, contact);
            return true;
          }
          const request = stanza.clone();
          request.attrs.from = contact.bare;
          request.attrs.to = user.bare;
          const xml = serialize(request);
          await r.update(user, contact.bare, (c) => ({ ...(c ?? emptyItem(contact.bare)), askIn: true, askInStanza: xml }));
          for (const s of ctx.sessions.available(user.bare)) s.deliverSerialized(xml, 'presence');
          return true;
        }
        case 'subscribed': {
          const cur = await r.getItem(user, contact.bare);
          if (!cur?.askOut) return true; // nothing was asked: ignored (RFC 6121 §3.1.6)
          await r.update(user, contact.bare, (c) => {
            if (!c) return null;
            c.subscription = c.subscription === 'from' || c.subscription === 'both' ? 'both' : 'to';
            c.askOut = false;
            return c;
          });
          deliverToUser(user, stanza, contact);
          // The contact's current presence, now that the user may see it (after the
          // contact's policy: its lists first).
          const wait = ctx.policy.prepare(contact);
          if (wait) await wait;
          for (const cs of ctx.sessions.available(contact.bare)) {
            for (const us of ctx.sessions.available(user.bare)) {
              if (visibleTo(cs, us, cs.presence!)) us.deliverSerialized(withTo(cs.presence!, cs.jid.full, us.jid.full), 'presence', cs.presence!);
            }
          }
          return true;
        }
        case 'unsubscribe': {
          const cur = await r.getItem(user, contact.bare);
          if (!cur) return true;
          const wasFrom = cur.subscription === 'from' || cur.subscription === 'both';
          if (!wasFrom && !cur.askIn) return true;
          await r.update(user, contact.bare, (c) => {
            if (!c) return null;
            c.subscription = c.subscription === 'both' ? 'to' : c.subscription === 'from' ? 'none' : c.subscription;
            c.askIn = false;
            c.askInStanza = null;
            return c.inRoster ? c : null;
          });
          deliverToUser(user, stanza, contact);
          if (wasFrom) {
            for (const s of ctx.sessions.available(user.bare)) {
              ctx.route(x('presence', { type: 'unavailable', from: s.jid.full, to: contact.bare }), s.jid, contact);
            }
          }
          return true;
        }
        case 'unsubscribed': {
          const cur = await r.getItem(user, contact.bare);
          if (!cur) return true;
          const wasTo = cur.subscription === 'to' || cur.subscription === 'both';
          if (!wasTo && !cur.askOut) return true;
          await r.update(user, contact.bare, (c) => {
            if (!c) return null;
            c.subscription = c.subscription === 'both' ? 'from' : c.subscription === 'to' ? 'none' : c.subscription;
            c.askOut = false;
            return c;
          });
          deliverToUser(user, stanza, contact);
          if (wasTo) {
            for (const cs of ctx.sessions.available(contact.bare)) {
              for (const us of ctx.sessions.available(user.bare)) {
                const un = x('presence', { type: 'unavailable', from: cs.jid.full, to: us.jid.full });
                if (visibleTo(cs, us, un)) us.deliver(un);
              }
            }
          }
          return true;
        }
        case 'probe':
          await answerProbe(contact, user, from);
          return true;
        default:
          return false;
      }
    });

    /**
     * RFC 6121 §4.3.2: a subscribed prober gets the user's presence; others get nothing.
     * Resources hidden from the prober (invisible, presence-out denied) are left out; with
     * none left the answer is the one for an offline user.
     */
    async function answerProbe(prober: Jid, user: Jid, replyTo: Jid): Promise<void> {
      const self = prober.bare === user.bare;
      let allowed = self;
      if (!allowed) {
        const item = await roster().getItem(user, prober.bare);
        allowed = item !== null && (item.subscription === 'from' || item.subscription === 'both');
      }
      if (!allowed) return;
      const sessions = self ? ctx.sessions.available(user.bare) : ctx.sessions.available(user.bare).filter((s) => shows(s, replyTo, s.presence!));
      if (sessions.length === 0) {
        ctx.route(x('presence', { type: 'unavailable', from: user.bare, to: replyTo.full }), user, replyTo);
        return;
      }
      for (const s of sessions) {
        const p = s.presence!.clone();
        p.attrs.from = s.jid.full;
        p.attrs.to = replyTo.full;
        ctx.route(p, s.jid, replyTo);
      }
    }

    /** Delivers a subscription stanza to every available resource of the user. */
    function deliverToUser(user: Jid, stanza: XmlElement, contact: Jid): void {
      const el = stanza.clone();
      el.attrs.from = contact.bare;
      el.attrs.to = user.bare;
      for (const s of ctx.sessions.available(user.bare)) s.deliver(el);
    }

    /** Sends a session's current presence to a contact (all of the contact's available resources). */
    function sendPresenceOf(s: LocalSession, contact: Jid): void {
      if (!s.presence) return;
      const p = s.presence.clone();
      p.attrs.from = s.jid.full;
      p.attrs.to = contact.bare;
      ctx.route(p, s.jid, contact);
    }

    // ---------------------------------------------------------------- policy changes

    /** Who sees what, around one user: their resources' audiences and the contacts they see. */
    interface Snapshot {
      /** Each available resource → the sessions (by full JID) that see its presence. */
      out: Map<LocalSession, Map<string, LocalSession>>;
      /** "user resource|contact resource" → the pair, for contacts' presence the user sees. */
      in: Map<string, [LocalSession, LocalSession]>;
    }

    function snapshot(user: Jid, items: RosterItem[]): Snapshot {
      const out = new Map<LocalSession, Map<string, LocalSession>>();
      const subs = subscribers(items);
      const mine = ctx.sessions.available(user.bare);
      for (const s of mine) {
        const seen = new Map<string, LocalSession>();
        const p = s.presence!;
        for (const bare of subs) for (const r of ctx.sessions.available(bare)) if (visibleTo(s, r, p)) seen.set(r.jid.full, r);
        for (const t of directed.get(s) ?? []) {
          const jid = Jid.tryParse(t);
          if (!jid || !ctx.isLocal(jid) || jid.bare === user.bare) continue;
          const rs = jid.isBare ? ctx.sessions.available(jid.bare) : [ctx.sessions.get(jid)].filter((r): r is LocalSession => r !== undefined);
          for (const r of rs) if (visibleTo(s, r, p)) seen.set(r.jid.full, r);
        }
        out.set(s, seen);
      }
      const inbound = new Map<string, [LocalSession, LocalSession]>();
      for (const u of mine) {
        if (!gathered.has(u)) continue;
        for (const item of items) {
          if (item.subscription !== 'to' && item.subscription !== 'both') continue;
          for (const cs of ctx.sessions.available(item.jid)) {
            if (visibleTo(cs, u, cs.presence!)) inbound.set(`${u.jid.full}|${cs.jid.full}`, [u, cs]);
          }
        }
      }
      return { out, in: inbound };
    }

    const presenceService: PresenceService = {
      async applyPolicyChange(user, change, opts) {
        const items = await roster().getItems(user);
        await prepareAll(subscribers(items).concat(publishers(items)));
        const before = snapshot(user, items);
        const result = await change();
        if (opts?.forgetDirected) directed.delete(opts.forgetDirected);
        const after = snapshot(user, items);
        // The user's resources: unavailable to whoever stopped seeing one, its presence
        // (once) to whoever started to. Delivered directly: the new policy would stop an
        // unavailable that is routed.
        for (const [s, seen] of before.out) {
          if (s.isClosed) continue;
          const now = after.out.get(s) ?? new Map<string, LocalSession>();
          for (const [full, r] of seen) {
            if (!now.has(full) && !r.isClosed) r.deliver(x('presence', { type: 'unavailable', from: s.jid.full, to: full }));
          }
        }
        for (const [s, now] of after.out) {
          if (s.isClosed || !s.presence) continue;
          const was = s === opts?.republish ? undefined : before.out.get(s);
          let added = false;
          for (const [full, r] of now) {
            if (was?.has(full) || r.isClosed) continue;
            r.deliverSerialized(withTo(s.presence, s.jid.full, full), 'presence', s.presence);
            added = true;
          }
          if (added) republished.set(s, presenceKey(s.presence));
        }
        // Contacts' presence the user stopped or started taking (presence-in, blocking).
        for (const [key, [u, cs]] of before.in) {
          if (!after.in.has(key) && !u.isClosed) u.deliver(x('presence', { type: 'unavailable', from: cs.jid.full, to: u.jid.full }));
        }
        for (const [key, [u, cs]] of after.in) {
          if (!before.in.has(key) && !u.isClosed && cs.presence) u.deliverSerialized(withTo(cs.presence, cs.jid.full, u.jid.full), 'presence', cs.presence);
        }
        // A session that went visible without having probed (XEP-0186 probe='false').
        for (const u of ctx.sessions.available(user.bare)) {
          if (!gathered.has(u) && (privacy()?.probesContacts(u) ?? true)) gatherContacts(u, items);
        }
        return result;
      },

      async sessionsGone(jids, last) {
        // A handful at a time: a dead node may have held thousands of sessions.
        let next = 0;
        const one = async (jid: Jid) => {
          const el = x('presence', { type: 'unavailable', from: jid.full });
          const items = await roster().getItems(jid.toBare());
          // The gate, with the gone session's last state: an invisible resource, or one
          // its lists hid from a contact, had shown that contact nothing to take back.
          const gone = last?.get(jid.full);
          if (gone) {
            const wait = ctx.policy.prepare(jid.toBare());
            if (wait) await wait;
          }
          const split = new SplitStanza(el, 'to');
          const sent = new Set<string>();
          for (const bare of [...subscribers(items), jid.bare]) {
            for (const s of ctx.sessions.available(bare)) {
              if (sent.has(s.jid.full) || s.jid.full === jid.full) continue;
              sent.add(s.jid.full);
              if (gone && !visibleTo(gone, s, el)) continue;
              s.deliverSerialized(split.render(s.jid.full), 'presence', el);
            }
          }
        };
        const worker = async () => {
          while (next < jids.length) await one(jids[next++]!).catch(() => undefined);
        };
        await Promise.all(Array.from({ length: Math.min(16, jids.length) }, worker));
      },
    };
    ctx.provide('presence', presenceService);

    // ---------------------------------------------------------------- sessions ending

    ctx.hook('session-closed', async (session) => {
      if (session.isAvailable || directed.has(session)) await sendUnavailable(session, null);
    });
  },
});

function emptyItem(jid: string): RosterItem {
  return { jid, name: null, subscription: 'none', groups: [], askOut: false, askIn: false, askInStanza: null, approved: false, inRoster: false };
}

function subscribers(items: RosterItem[]): string[] {
  const out: string[] = [];
  for (const i of items) if (i.subscription === 'from' || i.subscription === 'both') out.push(i.jid);
  return out;
}

/** The contacts whose presence the user is subscribed to. */
function publishers(items: RosterItem[]): string[] {
  const out: string[] = [];
  for (const i of items) if (i.subscription === 'to' || i.subscription === 'both') out.push(i.jid);
  return out;
}

/** A presence as contacts see it (without addressing and id), to spot one sent twice. */
function presenceKey(p: XmlElement): string {
  const c = new XmlElement('presence', { ...p.attrs }, null, p.ns);
  delete c.attrs.to;
  delete c.attrs.from;
  delete c.attrs.id;
  c.children = p.children;
  return serialize(c);
}

function priorityOf(stanza: XmlElement): number {
  const text = stanza.getChildText('priority');
  if (text === undefined) return 0;
  const n = Number(text.trim());
  return Number.isInteger(n) && n >= -128 && n <= 127 ? n : 0;
}

/** A presence serialized with another `to`. */
function withTo(presence: XmlElement, from: string, to: string): string {
  const p = new XmlElement('presence', { ...presence.attrs, from }, null, presence.ns);
  p.children = presence.children;
  return new SplitStanza(p, 'to').render(to);
}

/**
 * Broadcasts one presence, serialized once: to the available resources of each
 * subscriber, to the user's own available resources, and to directed-presence targets.
 */
function fanOut(
  ctx: ModuleContext,
  presence: XmlElement,
  session: LocalSession,
  subscriberJids: string[],
  directedTo: Set<string> | undefined,
  visibleTo: (s: LocalSession, r: LocalSession, el: XmlElement) => boolean,
  /** Send it to `session` even though it is no longer available (its own unavailable presence). */
  echo = false,
): void {
  const split = new SplitStanza(presence, 'to');
  const sent = new Set<string>();
  const sendTo = (s: LocalSession) => {
    if (sent.has(s.jid.full)) return;
    sent.add(s.jid.full);
    s.deliverSerialized(split.render(s.jid.full), 'presence', presence);
  };
  for (const bare of subscriberJids) {
    const jid = Jid.tryParse(bare);
    if (!jid || !ctx.isLocal(jid)) continue;
    for (const s of ctx.sessions.available(bare)) {
      if (visibleTo(session, s, presence)) sendTo(s);
    }
  }
  for (const s of ctx.sessions.available(session.jid.bare)) sendTo(s);
  if (session.isAvailable || echo) sendTo(session);
  if (directedTo) {
    for (const full of directedTo) {
      if (sent.has(full)) continue;
      const jid = Jid.tryParse(full);
      if (!jid) continue;
      const el = presence.clone();
      el.attrs.to = full;
      ctx.route(el, session.jid, jid);
    }
  }
}
