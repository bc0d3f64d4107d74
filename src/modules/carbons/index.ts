/**
 * Message Carbons: every resource of a user that asked for it sees the user's
 * conversations held on the other resources — copies of what they receive (`received`)
 * and of what they send (`sent`), wrapped as forwarded messages.
 * References: XEP-0280 (urn:xmpp:carbons:2: §4 enabling and disabling, §5 receiving
 * and §6 sending copies, §6.1 which messages are eligible, §7 avoiding carbons with
 * <private/>, §11 security), XEP-0297 (forwarding), XEP-0334 (<no-copy/> hint).
 */
import { XmlElement } from '../../xml/element.js';
import { escapeAttr } from '../../xml/escape.js';
import { serialize } from '../../xml/serializer.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import { defineModule, type IqRequest } from '../../core/module.js';
import { SessionFlag, type LocalSession } from '../../core/session.js';

const HINTS = 'urn:xmpp:hints';

/**
 * XEP-0280 §6.1 rule 3: payloads "typically used in IM" that make a message eligible
 * without a body (chat states, receipts, markers, corrections, reactions, retractions,
 * encrypted payloads with no fallback body, call invitations).
 */
const IM_PAYLOADS = new Set([
  'http://jabber.org/protocol/chatstates',
  'urn:xmpp:receipts',
  'urn:xmpp:chat-markers:0',
  'urn:xmpp:message-correct:0',
  'urn:xmpp:reactions:0',
  'urn:xmpp:message-retract:1',
  'urn:xmpp:fasten:0',
  'eu.siacs.conversations.axolotl',
  'urn:xmpp:omemo:2',
  'urn:xmpp:jingle-message:0',
  'jabber:x:oob',
]);

export default defineModule({
  name: 'carbons',
  setup(ctx) {
    const host = ctx.domain;
    /** Sessions that enabled carbons (a flag other cluster nodes see too). */
    const enabled = { has: (s: LocalSession) => (s.flags & SessionFlag.Carbons) !== 0 };

    ctx.addFeature(NS.CARBONS, 'host');

    // §4: a client enables and disables carbons for its own session, with an IQ to its
    // account (no `to`) or to the server.
    const toggle = (on: boolean) => (req: IqRequest) => {
      const s = req.session;
      if (!s || (req.to.local !== '' && !req.isSelf)) throw new StanzaError('service-unavailable');
      const flags = on ? s.flags | SessionFlag.Carbons : s.flags & ~SessionFlag.Carbons;
      if (flags !== s.flags) {
        s.flags = flags;
        ctx.sessions.changed(s);
      }
      return null;
    };
    ctx.handleIq('set', NS.CARBONS, 'enable', toggle(true), { scope: 'both' });
    ctx.handleIq('set', NS.CARBONS, 'disable', toggle(false), { scope: 'both' });

    ctx.addMessageStage({
      name: 'carbons',
      delivered(msg, delivered) {
        const { stanza, from, to } = msg;
        if (!isEligible(stanza)) return;
        // §5: received copies for the recipient's other resources. A message between a
        // user's own resources is copied as sent only (never twice to one resource).
        if (from.bare !== to.bare) {
          let inner: string | undefined;
          for (const s of ctx.sessions.resources(to.bare)) {
            if (!enabled.has(s) || s.isClosed || delivered.includes(s)) continue;
            // The resource's own policy (an active privacy list) applies to the copy too.
            if (ctx.policy.checkIn(stanza, from, s.jid, s) !== null) continue;
            inner ??= serialize(forwardable(stanza, null, null));
            s.deliverSerialized(wrap('received', to.bare, s.jid, stanza.attrs.type, inner), 'message');
          }
        }
        // §6: sent copies for the sender's other resources, with the sender's archive id.
        if (from.domain === host && from.local !== '' && from.resource !== '') {
          let inner: string | undefined;
          for (const s of ctx.sessions.resources(from.bare)) {
            if (!enabled.has(s) || s.isClosed || s.jid.full === from.full || delivered.includes(s)) continue;
            inner ??= serialize(forwardable(stanza, from.bare, msg.stanzaIds.get(from.bare) ?? null));
            s.deliverSerialized(wrap('sent', from.bare, s.jid, stanza.attrs.type, inner), 'message');
          }
        }
      },
    });
  },
});

/** XEP-0280 §6.1: which messages are copied. */
export function isEligible(stanza: XmlElement): boolean {
  const type = stanza.attrs.type ?? 'normal';
  if (type === 'groupchat' || type === 'headline') return false;
  let im = false;
  for (const c of stanza.children) {
    if (typeof c === 'string') continue;
    if (c.ns === NS.CARBONS) {
      // §7 <private/>; and a carbon copy is never copied again.
      return false;
    }
    if (c.ns === HINTS && c.name === 'no-copy') return false;
    if (c.name === 'body' || IM_PAYLOADS.has(c.ns)) im = true;
  }
  // Errors count when they answer an eligible message (they carry its payload).
  return type === 'chat' || im;
}

/**
 * The message as forwarded: in its namespace, with the stanza-ids of this server replaced
 * by `by`'s (the sender's copy carries the sender's archive id) when `by` is given.
 */
function forwardable(stanza: XmlElement, by: string | null, id: string | null): XmlElement {
  const el = new XmlElement(stanza.name, { ...stanza.attrs }, null, stanza.ns);
  if (el.attrs.xmlns === undefined) el.attrs.xmlns = NS.CLIENT;
  el.children = by === null ? stanza.children : stanza.children.filter((c) => typeof c === 'string' || c.name !== 'stanza-id' || c.ns !== NS.SID);
  if (by !== null && id !== null) el.children.push(new XmlElement('stanza-id', { xmlns: NS.SID, by, id }));
  return el;
}

function wrap(kind: 'received' | 'sent', account: string, to: Jid, type: string | undefined, inner: string): string {
  const t = type === undefined ? '' : ` type='${escapeAttr(type)}'`;
  return `<message xmlns='jabber:client' from='${escapeAttr(account)}' to='${escapeAttr(to.full)}'${t}><${kind} xmlns='${NS.CARBONS}'><forwarded xmlns='${NS.FORWARD}'>${inner}</forwarded></${kind}></message>`;
}
