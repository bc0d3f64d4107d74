/**
 * The privacy state of each session of this node, for the sessions that have some: the
 * active list (XEP-0016 §2.4; published as LocalSession.privacyList for the other nodes
 * of a cluster), which kind of pushes the client asked for, and invisibility (XEP-0186).
 * References: XEP-0016 §2.4 (the active list applies to one session), §2.6 (pushes);
 * XEP-0191 §3.1 (blocklist pushes); XEP-0186 §3.1 (invisible, with `probe`).
 */
import type { LocalSession } from '../../core/session.js';

/** An invisible session (XEP-0186). */
export interface Invisible {
  probe: boolean;
  /** Bare JIDs the session addressed since going invisible (they may send it IQs). */
  talkedTo: Set<string>;
}

/** Per-session privacy state (only for sessions that have some). */
export interface SessionPrivacy {
  active: string | null;
  usesPrivacy: boolean;
  wantsBlocklist: boolean;
  invisible: Invisible | null;
}

/** The sessions' privacy state, kept beside the sessions (gone with them). */
export class PrivacySessions {
  readonly #bySession = new WeakMap<LocalSession, SessionPrivacy>();
  readonly #sync: (s: LocalSession) => Promise<void>;

  /** `sync` publishes a session's traits (active list, flags) to the other nodes. */
  constructor(sync: (s: LocalSession) => Promise<void>) {
    this.#sync = sync;
  }

  /** The session's state, if it has some. */
  get(s: LocalSession | null): SessionPrivacy | undefined {
    return s ? this.#bySession.get(s) : undefined;
  }

  /** The session's state, made when it has none. */
  of(session: LocalSession): SessionPrivacy {
    let s = this.#bySession.get(session);
    if (!s) this.#bySession.set(session, (s = { active: null, usesPrivacy: false, wantsBlocklist: false, invisible: null }));
    return s;
  }

  /** The session's active list: this node's state, or what another node published for its session. */
  activeOf(s: LocalSession | null): string | null {
    return s === null ? null : s.node !== undefined ? (s.privacyList ?? null) : (this.#bySession.get(s)?.active ?? null);
  }

  /** Sets a session's active list, published for the other nodes of a cluster. */
  setActive(s: LocalSession, me: SessionPrivacy, name: string | null): Promise<void> {
    me.active = name;
    s.privacyList = name;
    return this.#sync(s);
  }
}
