/**
 * The privacy filters the router runs on every stanza: the recipient's policy (in) and
 * the sender's (out), from the users' lists in memory (cache.ts) and the sessions'
 * invisibility. Synchronous: a user's lists are loaded first by the router's prepare step.
 * References: XEP-0016 §2.13 (what a denied stanza becomes), XEP-0191 §3.3 (a blocked
 * contact: the user appears offline; the user's own stanzas: not-acceptable with
 * <blocked/>), XEP-0186 §3.1 (an invisible resource sends no presence).
 */
import { x } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import type { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import { SessionFlag, type LocalSession } from '../../core/session.js';
import type { StanzaFilter } from '../../core/policy.js';
import { classifyIn, classifyOut } from './engine.js';
import { judge, type PrivacyListCache } from './cache.js';
import type { PrivacySessions } from './session-state.js';

/** SECURITY: contacts remembered per invisible session. */
const MAX_TALKED = 1000;
/** What an invisible session's client gets for a directed presence (the XEP-0016 §2.13 refusal). */
const INVISIBLE_REFUSAL = new StanzaError('not-acceptable', 'invisible: presence goes to no one');

/** What the filters need. */
export interface FilterDeps {
  /** The user domain. */
  host: string;
  cache: PrivacyListCache;
  sessions: PrivacySessions;
  /** The session of a full JID: this node's, or a stand-in for another node's. */
  sessionOf(jid: Jid): LocalSession | null;
}

/** The in and out filters of the privacy module. */
export function privacyFilters(deps: FilterDeps): { in: StanzaFilter; out: StanzaFilter } {
  const { host, cache, sessions } = deps;

  /** The recipient's policy: XEP-0016 §2.13, XEP-0191 §3.3 (the user appears offline). */
  const inFilter: StanzaFilter = ({ stanza, from, to, session }) => {
    if (from.bare === to.bare || !cache.isAccount(to)) return null;
    // The server itself (its own JID) is never filtered.
    if (from.local === '' && from.resource === '' && from.domain === host) return null;
    const type = stanza.attrs.type;
    const state = sessions.get(session);
    const inv = state?.invisible;
    if (inv && stanza.name === 'iq' && (type === 'get' || type === 'set') && !inv.talkedTo.has(from.bare)) {
      return new StanzaError('service-unavailable'); // as for a resource that is not there
    }
    const st = cache.lookup(to.bare);
    if (!st || st.lists.size === 0) return null;
    const d = judge(st, sessions.activeOf(session), from, classifyIn(stanza.name, type));
    if (d.action === 'allow') return null;
    if (stanza.name === 'presence') return 'drop';
    if (stanza.name === 'iq' && type !== 'get' && type !== 'set') return 'drop';
    return new StanzaError('service-unavailable');
  };

  /** The sender's policy: XEP-0016 §2.13 and XEP-0191 §3.3 (not-acceptable, <blocked/>). */
  const outFilter: StanzaFilter = ({ stanza, from, to, session, fromClient }) => {
    if (from.bare === to.bare || !cache.isAccount(from)) return null;
    // Presence the server makes for a resource may come with no session: find it (on
    // this node or, as a stand-in, on another).
    const s = session ?? (from.resource !== '' ? deps.sessionOf(from) : null);
    const type = stanza.attrs.type;
    const notification = stanza.name === 'presence' && (type === undefined || type === 'unavailable');
    // SECURITY: an invisible resource (XEP-0186; the flag is published, so this holds for
    // another node's session too) shows itself to no one: presence the server would send
    // for it is dropped, a directed presence its client sends is refused.
    if (notification && s !== null && (s.flags & SessionFlag.Invisible) !== 0) return fromClient ? INVISIBLE_REFUSAL : 'drop';
    const inv = sessions.get(s)?.invisible;
    // Whom the invisible client addresses (messages, IQs) may send IQs to its full JID.
    if (inv && fromClient && stanza.name !== 'presence' && inv.talkedTo.size < MAX_TALKED) inv.talkedTo.add(to.bare);
    const st = cache.lookup(from.bare);
    // SECURITY: the user's lists are not in memory here (a session of another node, or a
    // copy dropped after missed invalidations): no available presence is made for the
    // resource rather than one its lists might deny (fail closed).
    if (!st) return notification && type === undefined && s !== null && !fromClient ? 'drop' : null;
    if (st.lists.size === 0) return null;
    const d = judge(st, sessions.activeOf(s), to, classifyOut(stanza.name, type));
    if (d.action === 'allow') return null;
    // XEP-0191 §3.3.3 (as Prosody does): a text the sender's client can show; the blocked
    // contact learns nothing of this (what it sends gets service-unavailable).
    return d.blocked
      ? new StanzaError('not-acceptable', 'You have blocked this contact', 'cancel', x('blocked', { xmlns: NS.BLOCKING_ERRORS }))
      : new StanzaError('not-acceptable', 'Your privacy list does not allow this', 'cancel');
  };

  return { in: inFilter, out: outFilter };
}
