/**
 * The stanza policies (privacy lists, blocking, invisibility): filters that modules add,
 * applied by the router at the two gates every stanza between users passes — the
 * sender's (`checkOut`) and the recipient's (`checkIn`). Filters are synchronous (they
 * read state kept in memory), so the hot path stays free of awaits; what they need about
 * a user is made ready first (`prepare`).
 * References: XEP-0016 §2, XEP-0191 §3, XEP-0186 §3.
 */
import type { XmlElement } from '../xml/element.js';
import type { StanzaError } from '../xmpp/errors.js';
import type { Jid } from '../xmpp/jid.js';
import type { LocalSession } from './session.js';

/**
 * What a stanza filter decides: null lets the stanza through, 'drop' discards it
 * silently, a StanzaError bounces it to its sender with that error.
 */
export type FilterVerdict = StanzaError | 'drop' | null;

/**
 * A policy on stanzas.
 * - `in`: the policy of the local user `to` on a stanza reaching them. `session` is the
 *   resource it is about to be delivered to, or null when it goes to the account (offline
 *   storage, an IQ to the bare JID, a subscription request).
 * - `out`: the policy of the local sender `session`'s user on a stanza it sends to `to`
 *   (`session` is null for stanzas the server sends on the user's behalf). `fromClient`:
 *   the stanza is the client's own (the router's check of what a client sends), not one
 *   the server makes for the resource (presence fan-out, probe answers).
 */
export type StanzaFilter = (args: { stanza: XmlElement; from: Jid; to: Jid; session: LocalSession | null; fromClient?: boolean }) => FilterVerdict;

/**
 * Makes what a filter needs about a local user (their lists) available in memory before
 * stanzas to or from them are judged: null when it is there already (the usual case: the
 * user is online or recently seen), else a promise. The router holds a stanza until it
 * resolves, so filters can stay synchronous.
 */
export type FilterPrepare = (user: Jid) => Promise<void> | null;

export class Policy {
  readonly #inFilters: StanzaFilter[] = [];
  readonly #outFilters: StanzaFilter[] = [];
  readonly #prepares: FilterPrepare[] = [];

  /** No filter at all (the router skips the gates). */
  get hasIn(): boolean {
    return this.#inFilters.length > 0;
  }

  get hasOut(): boolean {
    return this.#outFilters.length > 0;
  }

  get hasPrepares(): boolean {
    return this.#prepares.length > 0;
  }

  /** Adds a filter (and what prepares its data); returns its removal. */
  add(direction: 'in' | 'out', filter: StanzaFilter, prepare?: FilterPrepare): () => void {
    const list = direction === 'in' ? this.#inFilters : this.#outFilters;
    list.push(filter);
    if (prepare) this.#prepares.push(prepare);
    return () => {
      const i = list.indexOf(filter);
      if (i >= 0) list.splice(i, 1);
      const j = prepare ? this.#prepares.indexOf(prepare) : -1;
      if (j >= 0) this.#prepares.splice(j, 1);
    };
  }

  /** Null when the filters can judge stanzas of the local `user` now, else when they can. */
  prepare(user: Jid): Promise<void> | null {
    let waits: Array<Promise<void>> | null = null;
    for (const p of this.#prepares) {
      const w = p(user);
      if (w) (waits ??= []).push(w);
    }
    if (waits === null) return null;
    return waits.length === 1 ? waits[0]! : Promise.all(waits).then(() => undefined);
  }

  /** The recipient's policy on `stanza` reaching `to` (through `session`, or the account when null). */
  checkIn(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null): FilterVerdict {
    for (const f of this.#inFilters) {
      const v = f({ stanza, from, to, session });
      if (v !== null) return v;
    }
    return null;
  }

  /** The local sender's policy on `stanza` going to `to` (`session`: the sending resource). */
  checkOut(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null, fromClient = false): FilterVerdict {
    for (const f of this.#outFilters) {
      const v = f({ stanza, from, to, session, fromClient });
      if (v !== null) return v;
    }
    return null;
  }
}
