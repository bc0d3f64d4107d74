/**
 * The client-to-server side of one server: what its c2s sessions and the transports that
 * carry them (TCP, BOSH, WebSocket) share. Transports get this, never the server core: the
 * port (`C2sCore`) names what c2s uses of the core, and the registry of resumable sessions
 * (XEP-0198 §5) lives here, one per server, so a session can be resumed over any listener.
 * References: RFC 6120 §4–§7 (the session state machine, c2s/session.ts); XEP-0198 §5.
 */
import type { XmlElement } from '../xml/element.js';
import type { Jid } from '../xmpp/jid.js';
import type { StreamError } from '../xmpp/errors.js';
import type { Config } from '../config/schema.js';
import type { Logs } from '../support/logger.js';
import type { ServerStats } from '../support/stats.js';
import type { TlsIdentity } from '../support/tls.js';
import type { AuthPort } from '../core/auth-port.js';
import type { HookBus } from '../core/hooks.js';
import type { Limits } from '../core/limits.js';
import type { StreamFeatureProvider } from '../core/module.js';
import type { LocalSession } from '../core/session.js';
import { SmRegistry } from './stream-management.js';

/**
 * What c2s (the sessions and the transports) uses of the server core. `ServerCore`
 * provides it; the transports see nothing more of the server.
 */
export interface C2sCore {
  /** The user domain the sessions are on. */
  readonly domain: string;
  /** Read when used: a reload applies to new connections and exchanges. */
  readonly config: Config;
  readonly logs: Logs;
  readonly tls: TlsIdentity;
  readonly stats: ServerStats;
  readonly limits: Limits;
  readonly authenticator: AuthPort;
  readonly streamFeatures: readonly StreamFeatureProvider[];
  readonly hooks: Pick<HookBus, 'notify'>;
  /** The registry of bound sessions: a session joins it when bound, leaves it when it closes. */
  readonly sessions: {
    add(session: LocalSession): LocalSession | undefined;
    remove(session: LocalSession): boolean;
    resources(bare: string): readonly LocalSession[];
  };
  /** Addressing: what a client sends (`fromClient`), and what goes back through routing. */
  readonly router: {
    readonly domainJid: Jid;
    fromClient(session: LocalSession, stanza: XmlElement, to: Jid | null): void;
    route(stanza: XmlElement, from: Jid, to: Jid): void;
  };
  /** The owner of stanza fates: an error the session answers its client with is counted there. */
  readonly delivery: { answered(stanza: XmlElement): void };
  /** Every client connection, bound or not, until it is gone (shutdown waits on it). */
  readonly connections: Set<{ close(error?: StreamError): void }>;
  /** Keeps background work (hooks a session runs) known to shutdown until it settles. */
  track<T>(p: Promise<T>): Promise<T>;
}

/**
 * The c2s side of a server: made once by the composition root and handed to every
 * listener, which makes a `C2sSession` on it for each connection.
 *
 * @example
 * const c2s = new C2sEndpoint(core);
 * await startC2sListener(c2s);
 */
export class C2sEndpoint {
  readonly core: C2sCore;
  /**
   * Resumable sessions by resumption id (XEP-0198 §5), across every listener. Typed
   * loosely so this file needs nothing of the session's: the session checks what it finds.
   */
  readonly resumable = new SmRegistry<object>();

  constructor(core: C2sCore) {
    this.core = core;
  }
}
