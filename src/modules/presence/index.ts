/**
 * Presence and the subscription state machine.
 * References: RFC 6121 §3 (subscriptions: request, approve, cancel, unsubscribe,
 * pre-approval §3.4), §4 (initial presence, probes, broadcast, directed presence,
 * unavailable presence), Appendix A (subscription states).
 */
import { XmlElement, x } from '../../xml/element.js';
import { SplitStanza, serialize } from '../../xml/serializer.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { defineModule } from '../../core/module.js';
import type { LocalSession } from '../../core/session.js';
import type { RosterItem, RosterService } from '../../core/services.js';
import type { ServerCore } from '../../core/server.js';

export default defineModule({
  name: 'presence',
  setup(ctx) {
    const server = ctx.server;
    const roster = (): RosterService => ctx.service('roster');
    /** Full JIDs a session sent directed available presence to (RFC 6121 §4.6). */
    const directed = new WeakMap<LocalSession, Set<string>>();

    ctx.addStreamFeature((_session, stage) => (stage === 'post-bind' ? x('sub', { xmlns: NS.PRE_APPROVAL }) : null));
    ctx.addStreamFeature((_session, stage) => (stage === 'post-bind' ? x('ver', { xmlns: NS.ROSTER_VER }) : null));

    // ---------------------------------------------------------------- from local clients

    ctx.hook('presence-from-client', async (session, stanza, to) => {
      const type = stanza.attrs.type;
      if (to === null || (to.bare === session.jid.bare && to.isBare && (type === undefined || type === 'unavailable'))) {
        if (type === undefined || type === 'unavailable') {
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
          await outboundSubscription(session, stanza, to.toBare(), type);
          return true;
        case 'probe':
          // Clients should not probe (RFC 6121 §4.3); answer as the server would.
          await answerProbe(session.jid.toBare(), to.toBare(), session.jid);
          return true;
        case undefined:
        case 'unavailable':
          trackDirected(session, to, type);
          return false; // routed as is
        default:
          return false;
      }
    });

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
      session.presence = stanza;
      session.priority = priorityOf(stanza);
      const items = await roster().getItems(user);
      fanOut(server, stanza, session, subscribers(items), directed.get(session));
      if (initial) {
        // The user's other available resources (a probe of one's own account).
        for (const s of server.sessions.available(user.bare)) {
          if (s !== session) session.deliverSerialized(withTo(s.presence!, s.jid.full, session.jid.full), 'presence', s.presence!);
        }
        // Probes, answered locally: the current presence of every contact the user is subscribed to.
        for (const item of items) {
          if (item.subscription !== 'to' && item.subscription !== 'both') continue;
          for (const s of server.sessions.available(item.jid)) {
            session.deliverSerialized(withTo(s.presence!, s.jid.full, session.jid.full), 'presence', s.presence!);
          }
        }
        // Subscription requests that came while the user was away (RFC 6121 §3.1.3).
        for (const item of items) {
          if (item.askIn && item.askInStanza) session.deliverSerialized(item.askInStanza, 'presence');
        }
      }
      await server.hooks.notify('session-available', session, initial);
    }

    async function sendUnavailable(session: LocalSession, stanza: XmlElement | null): Promise<void> {
      const user = session.jid.toBare();
      const el = stanza ?? x('presence', { type: 'unavailable' });
      delete el.attrs.to;
      el.attrs.from = session.jid.full;
      el.attrs.type = 'unavailable';
      const wasAvailable = session.isAvailable;
      session.presence = null;
      const targets = directed.get(session);
      directed.delete(session);
      const items = wasAvailable ? await roster().getItems(user) : [];
      fanOut(server, el, session, subscribers(items), targets);
    }

    function trackDirected(session: LocalSession, to: Jid, type: string | undefined): void {
      if (to.bare === session.jid.bare) return;
      let set = directed.get(session);
      if (type === 'unavailable') {
        set?.delete(to.full);
        return;
      }
      if (!set) directed.set(session, (set = new Set()));
      if (set.size < 1000) set.add(to.full);
    }

    // ---------------------------------------------------------------- subscriptions, outbound

    /** RFC 6121 §3.1.2, §3.1.5, §3.2.2, §3.3.2, §3.4: the user's server side. */
    async function outboundSubscription(session: LocalSession, stanza: XmlElement, contact: Jid, type: string): Promise<void> {
      const user = session.jid.toBare();
      const out = stanza.clone();
      out.attrs.from = user.bare;
      out.attrs.to = contact.bare;
      const route = () => server.router.route(out, user, contact);
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
            for (const s of server.sessions.available(user.bare)) sendPresenceOf(s, contact);
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
            for (const s of server.sessions.available(user.bare)) {
              server.router.route(x('presence', { type: 'unavailable', from: s.jid.full, to: contact.bare }), s.jid, contact);
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
      if (!(await server.users.exists(server.domain, user.local))) return true; // silently ignored
      const r = roster();
      switch (type) {
        case 'subscribe': {
          const cur = await r.getItem(user, contact.bare);
          if (cur && (cur.subscription === 'from' || cur.subscription === 'both')) {
            // Already approved: the server answers for the user (RFC 6121 §3.1.3).
            server.router.route(x('presence', { type: 'subscribed', from: user.bare, to: contact.bare }), user, contact);
            return true;
          }
          if (cur?.approved) {
            await r.update(user, contact.bare, (c) => {
              const item = c ?? emptyItem(contact.bare);
              item.subscription = item.subscription === 'to' ? 'both' : 'from';
              item.approved = false;
              return item;
            });
            server.router.route(x('presence', { type: 'subscribed', from: user.bare, to: contact.bare }), user, contact);
            for (const s of server.sessions.available(user.bare)) sendPresenceOf(s, contact);
            return true;
          }
          const request = stanza.clone();
          request.attrs.from = contact.bare;
          request.attrs.to = user.bare;
          const xml = serialize(request);
          await r.update(user, contact.bare, (c) => ({ ...(c ?? emptyItem(contact.bare)), askIn: true, askInStanza: xml }));
          for (const s of server.sessions.available(user.bare)) s.deliverSerialized(xml, 'presence');
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
          // The contact's current presence, now that the user may see it.
          for (const cs of server.sessions.available(contact.bare)) {
            for (const us of server.sessions.available(user.bare)) us.deliverSerialized(withTo(cs.presence!, cs.jid.full, us.jid.full), 'presence', cs.presence!);
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
            for (const s of server.sessions.available(user.bare)) {
              server.router.route(x('presence', { type: 'unavailable', from: s.jid.full, to: contact.bare }), s.jid, contact);
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
            for (const cs of server.sessions.available(contact.bare)) {
              for (const us of server.sessions.available(user.bare)) {
                us.deliver(x('presence', { type: 'unavailable', from: cs.jid.full, to: us.jid.full }));
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

    /** RFC 6121 §4.3.2: a subscribed prober gets the user's presence; others get nothing. */
    async function answerProbe(prober: Jid, user: Jid, replyTo: Jid): Promise<void> {
      let allowed = prober.bare === user.bare;
      if (!allowed) {
        const item = await roster().getItem(user, prober.bare);
        allowed = item !== null && (item.subscription === 'from' || item.subscription === 'both');
      }
      if (!allowed) return;
      const sessions = server.sessions.available(user.bare);
      if (sessions.length === 0) {
        server.router.route(x('presence', { type: 'unavailable', from: user.bare, to: replyTo.full }), user, replyTo);
        return;
      }
      for (const s of sessions) {
        const p = s.presence!.clone();
        p.attrs.from = s.jid.full;
        p.attrs.to = replyTo.full;
        server.router.route(p, s.jid, replyTo);
      }
    }

    /** Delivers a subscription stanza to every available resource of the user. */
    function deliverToUser(user: Jid, stanza: XmlElement, contact: Jid): void {
      const el = stanza.clone();
      el.attrs.from = contact.bare;
      el.attrs.to = user.bare;
      for (const s of server.sessions.available(user.bare)) s.deliver(el);
    }

    /** Sends a session's current presence to a contact (all of the contact's available resources). */
    function sendPresenceOf(s: LocalSession, contact: Jid): void {
      if (!s.presence) return;
      const p = s.presence.clone();
      p.attrs.from = s.jid.full;
      p.attrs.to = contact.bare;
      server.router.route(p, s.jid, contact);
    }

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
function fanOut(server: ServerCore, presence: XmlElement, session: LocalSession, subscriberJids: string[], directedTo: Set<string> | undefined): void {
  const split = new SplitStanza(presence, 'to');
  const sent = new Set<string>();
  const sendTo = (s: LocalSession) => {
    if (sent.has(s.jid.full)) return;
    sent.add(s.jid.full);
    s.deliverSerialized(split.render(s.jid.full), 'presence', presence);
  };
  for (const bare of subscriberJids) {
    const jid = Jid.tryParse(bare);
    if (!jid || !server.router.isLocal(jid)) continue;
    for (const s of server.sessions.available(bare)) sendTo(s);
  }
  for (const s of server.sessions.available(session.jid.bare)) sendTo(s);
  if (session.isAvailable) sendTo(session);
  if (directedTo) {
    for (const full of directedTo) {
      if (sent.has(full)) continue;
      const jid = Jid.tryParse(full);
      if (!jid) continue;
      const el = presence.clone();
      el.attrs.to = full;
      server.router.route(el, session.jid, jid);
    }
  }
}
