/**
 * The routing table of hosts: where a JID's domain goes. In order: the user domain (the
 * router's own paths: accounts, sessions, the server), then hosts served by Parley's
 * own modules (`conference.<domain>`, an echo service…), then external components
 * (XEP-0114), then nowhere: no server-to-server yet, so `remote-server-not-found`.
 * References: RFC 6120 §8.1.1 (the `to` address and what a server does with it),
 * §10.4 (a domain the server does not serve), XEP-0114 (components), XEP-0030 §4
 * (the services a server lists in its disco#items).
 *
 * The router compares a stanza's domain with the user domain first (one string compare:
 * the hot path); only other domains are looked up here.
 *
 * @example
 * const hosts = new HostTable('example.com');
 * const remove = hosts.add({ host: 'echo.example.com', kind: 'module', owner: 'echo', name: 'Echo', deliver: (s, from, to) => … });
 * hosts.get('echo.example.com'); // the entry
 * hosts.get('elsewhere.org');    // undefined: remote-server-not-found
 */
import { x, type XmlElement } from '../xml/element.js';
import type { Jid } from '../xmpp/jid.js';
import { ParleyError } from '../support/errors.js';

/**
 * The IQ scope of a host a module serves (`ctx.handleIq(…, { scope: { host } })`): IQ
 * get/set addressed to that host's own JID. `{ host: '*' }` is every such host, for
 * what every hosted service answers alike (service discovery): a handler for the host
 * itself goes first.
 */
export interface HostScope {
  readonly host: string;
}

/** The wildcard host scope: every host a module serves. */
export const ANY_HOST = '*';

/** A stable string for a scope (the key of IQ handlers and disco registrations). */
export function scopeKey(scope: 'host' | 'account' | HostScope): string {
  return typeof scope === 'string' ? scope : `host=${scope.host}`;
}

/**
 * What a module serving a host (`ctx.addHost`) handles. Every stanza addressed to the
 * host or to one of its JIDs (`room@host`, `host/resource`, `room@host/nick`) reaches
 * `onStanza`, after the router's checks; IQ get and set addressed to the host's own JID
 * go to the IQ handlers registered with the scope `{ host }` instead (none: the router
 * answers service-unavailable), and a result or error answering a request the server
 * made (Router.request) resolves it.
 *
 * `onStanza` may throw (or reject with) a StanzaError: the stanza is then bounced to its
 * sender with that error (never for an error stanza, RFC 6120 §8.3.1).
 */
export interface HostHandler {
  /** The service's name in the user domain's disco#items. */
  readonly name?: string;
  onStanza(stanza: XmlElement, from: Jid, to: Jid): void | Promise<void>;
}

/** A host other than the user domain, as the router sees it. */
export interface HostEntry {
  /** The host's name (a DNS name, lower case). */
  readonly host: string;
  /** `module`: served in this process by a module; `component`: an external component (XEP-0114). */
  readonly kind: 'module' | 'component';
  /** The module, or `component`. */
  readonly owner: string;
  /** Shown in the user domain's disco#items. */
  readonly name?: string;
  /**
   * Takes a stanza for the host or one of its JIDs. A module host's IQ get/set to the
   * host itself never comes here (see HostHandler). May return a promise (or throw):
   * a StanzaError it fails with bounces the stanza.
   */
  deliver(stanza: XmlElement, from: Jid, to: Jid): void | Promise<void>;
}

/** An error in using the host table (a module's mistake at setup): `HOST_TAKEN`, `HOST_INVALID`. */
export class HostError extends ParleyError {
  readonly code: 'HOST_TAKEN' | 'HOST_INVALID';
  constructor(code: 'HOST_TAKEN' | 'HOST_INVALID', message: string) {
    super(message);
    this.name = 'HostError';
    this.code = code;
  }
}

/** A lower-case DNS name, as `domain` is (config/schema.ts). */
const HOST_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Is this a name a host may have (a lower-case DNS name)? */
export function isHostName(name: string): boolean {
  return HOST_NAME.test(name);
}

/** The hosts other than the user domain, by name (one lookup per stanza for another domain). */
export class HostTable {
  /** The user domain: never an entry of the table. */
  readonly domain: string;
  readonly #hosts = new Map<string, HostEntry>();

  constructor(domain: string) {
    this.domain = domain;
  }

  /**
   * Adds a host; returns its removal. Throws HostError when the name is not a DNS name,
   * is the user domain, or is served already (by a module or a component).
   */
  add(entry: HostEntry): () => void {
    const name = entry.host;
    if (!isHostName(name)) throw new HostError('HOST_INVALID', `${name} is not a lower-case DNS name`);
    if (name === this.domain) throw new HostError('HOST_TAKEN', `${name} is the user domain`);
    const held = this.#hosts.get(name);
    if (held) throw new HostError('HOST_TAKEN', `${name} is served already (by ${held.kind === 'component' ? 'a configured component' : `module ${held.owner}`})`);
    this.#hosts.set(name, entry);
    return () => {
      if (this.#hosts.get(name) === entry) this.#hosts.delete(name);
    };
  }

  /** The entry of a domain other than the user domain; undefined: no such host here. */
  get(domain: string): HostEntry | undefined {
    return this.#hosts.get(domain);
  }

  /** Every host, module hosts first, each kind in the order added. */
  list(): HostEntry[] {
    const all = [...this.#hosts.values()];
    return [...all.filter((h) => h.kind === 'module'), ...all.filter((h) => h.kind === 'component')];
  }

  /** The `<item/>`s of the user domain's disco#items (XEP-0030 §4.1): every hosted service. */
  discoItems(): XmlElement[] {
    return this.list().map((h) => x('item', { jid: h.host, name: h.name }));
  }
}
