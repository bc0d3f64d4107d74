/**
 * External components (XEP-0114) as the core sees them: the configured ones are hosts
 * of the routing table (hosts.ts); a connection authenticates with its host's secret,
 * then gets every stanza for its host and its JIDs and may send stanzas from them only.
 * The transport (src/transports/component) frames the stream; the decisions are here.
 * References: XEP-0114 §3 (handshake: hex SHA-1 of the stream id and the secret),
 * RFC 6120 §4.9.3 (stream errors: host-unknown, not-authorized, invalid-from,
 * improper-addressing, conflict), §8.3 (stanza errors), §8.1.2.1 (the `from` a peer may use).
 *
 * - Unknown host → `host-unknown`; wrong secret → `not-authorized` (compared in constant
 *   time), then the end of the stream.
 * - A second connection for a host that is connected (on this node or, in a cluster, on
 *   another) is refused with `conflict`; the connected one stays (as Prosody does: a
 *   misconfigured twin cannot take a working component's traffic away).
 * - A stanza whose `from` is not the host or a JID of it ends the stream with
 *   `invalid-from`; one without `from` or `to`, with `improper-addressing`. What it sends
 *   is routed as any stanza (privacy lists and blocking of the recipients apply).
 * - A stanza for a configured component that is not connected anywhere bounces with
 *   `service-unavailable` (a known host, just down); one that was sent to a component
 *   whose connection died before the write left this process bounces the same way.
 * - In a cluster the host is claimed in Redis (ComponentCluster): stanzas for it on other
 *   nodes are forwarded over the links between nodes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { XmlElement } from '../xml/element.js';
import { Jid } from '../xmpp/jid.js';
import { NS } from '../xmpp/ns.js';
import { StanzaError, StreamError } from '../xmpp/errors.js';
import type { ServerStats, StanzaKind } from '../support/stats.js';
import type { HostTable } from './hosts.js';

/** One configured component (`components[]`). */
export interface ComponentSettings {
  readonly host: string;
  readonly secret: string;
  /** Shown in the user domain's disco#items. */
  readonly name?: string | undefined;
}

/** What the hub uses of one connection (the transport's ComponentConnection). */
export interface ComponentLink {
  readonly id: string;
  readonly remoteAddress: string;
  accept(): void;
  send(stanza: XmlElement): void;
  close(error?: StreamError): void;
}

/** What a connection tells the hub (the transport's ComponentStreamEvents). */
export interface ComponentLinkEvents {
  onOpen(host: string): StreamError | null;
  onHandshake(digest: string): void;
  onStanza(stanza: XmlElement): void;
  onOverflow(): void;
  onDisconnect(unsent: XmlElement[]): void;
}

/** Where the hub routes what components send, and bounces what cannot reach them (the router). */
export interface ComponentRouting {
  route(stanza: XmlElement, from: Jid, to: Jid): void;
  bounce(stanza: XmlElement, from: Jid, to: Jid, error: StanzaError): void;
}

/** The cluster's part: which node holds which component host, and the links to them. */
export interface ComponentCluster {
  /** Claims `host` for this node: resolves null once it is this node's, else the live node that holds it. */
  claim(host: string): Promise<string | null>;
  /** Gives `host` up (its component left this node). */
  release(host: string): void;
  /** The live node (never this one) that holds `host`, as this node knows it now (no I/O). */
  nodeOf(host: string): string | undefined;
  /** The same, read afresh from the cluster (a component that connected elsewhere a moment ago). */
  locate(host: string): Promise<string | undefined>;
  /** Sends a stanza to the component `host` connected to `node`; false when the link is full. */
  forward(node: string, host: string, stanza: XmlElement): boolean;
}

export interface ComponentHubDeps {
  hosts: HostTable;
  routing: ComponentRouting;
  stats: ServerStats;
  log: Logger;
  components: readonly ComponentSettings[];
}

const STANZA_KINDS = new Set(['message', 'presence', 'iq']);
const IQ_TYPES = new Set(['get', 'set', 'result', 'error']);
const PRESENCE_TYPES = new Set(['unavailable', 'subscribe', 'subscribed', 'unsubscribe', 'unsubscribed', 'probe', 'error']);

/** Is `digest` hex SHA-1(streamId ‖ secret) (XEP-0114 §3)? Constant time in the digest and the secret. */
export function handshakeMatches(streamId: string, secret: string, digest: string): boolean {
  const expected = createHash('sha1').update(streamId + secret, 'utf8').digest('hex');
  // SECURITY: compared as digests of equal length, in constant time (no length or prefix leak).
  const a = createHash('sha256').update(digest.trim().toLowerCase()).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The configured components and the connections of this node's: registers the hosts,
 * decides each handshake, checks and routes what components send, delivers what is sent
 * to them (here, or over the cluster).
 */
export class ComponentHub {
  readonly #d: ComponentHubDeps;
  readonly #settings = new Map<string, ComponentSettings>();
  /** Components connected to this node, by host. */
  readonly #here = new Map<string, ComponentPeer>();
  /** Hosts whose handshake is being completed (a claim in the cluster is on its way). */
  readonly #claiming = new Set<string>();
  #cluster: ComponentCluster | null = null;

  constructor(deps: ComponentHubDeps) {
    this.#d = deps;
    for (const s of deps.components) {
      this.#settings.set(s.host, s);
      deps.hosts.add({ host: s.host, kind: 'component', owner: 'component', name: s.name, deliver: (stanza, from, to) => this.#deliver(s.host, stanza, from, to) });
    }
  }

  /** Joins the hub to the cluster (or detaches it: null). */
  attachCluster(cluster: ComponentCluster | null): void {
    this.#cluster = cluster;
  }

  /** Components connected to this node. */
  get connected(): number {
    return this.#here.size;
  }

  /** The hosts of the components connected to this node. */
  hostsHere(): string[] {
    return [...this.#here.keys()];
  }

  /** Is `host` a configured component? */
  isComponent(host: string): boolean {
    return this.#settings.has(host);
  }

  /** A new connection (the transport calls this). */
  open(link: ComponentLink): ComponentLinkEvents {
    return new ComponentPeer(this, link);
  }

  /** Ends every component connection of this node (shutdown, or this node left the cluster). */
  closeAll(error: StreamError): void {
    for (const p of [...this.#here.values()]) p.link.close(error);
  }

  /**
   * A stanza another node forwarded to a component of this node. The component left
   * meanwhile: bounced, service-unavailable.
   */
  fromCluster(host: string, stanza: XmlElement): void {
    const peer = this.#here.get(host);
    if (peer) {
      peer.send(stanza);
      return;
    }
    this.#bounce(stanza, new StanzaError('service-unavailable', 'the component is not connected'));
  }

  // ------------------------------------------------------------------ to components

  #deliver(host: string, stanza: XmlElement, from: Jid, to: Jid): void | Promise<void> {
    // XEP-0114: what a component gets names its sender and recipient.
    if (stanza.attrs.from === undefined) stanza.attrs.from = from.full;
    if (stanza.attrs.to === undefined) stanza.attrs.to = to.full;
    const peer = this.#here.get(host);
    if (peer) {
      peer.send(stanza);
      return;
    }
    const c = this.#cluster;
    if (c === null) throw down();
    const node = c.nodeOf(host);
    if (node !== undefined) {
      forward(c, node, host, stanza);
      return;
    }
    // Not known here: it may have connected to another node a moment ago.
    return c.locate(host).then((n) => {
      const now = this.#here.get(host);
      if (now) now.send(stanza);
      else if (n === undefined) throw down();
      else forward(c, n, host, stanza);
    });
  }

  /** Bounces a stanza that cannot reach its component (not for errors, results or presence). */
  #bounce(stanza: XmlElement, error: StanzaError): void {
    const type = stanza.attrs.type;
    if (type === 'error' || (stanza.name === 'iq' && type === 'result') || stanza.name === 'presence') return;
    const from = Jid.tryParse(stanza.attrs.from);
    const to = Jid.tryParse(stanza.attrs.to);
    if (from && to) this.#d.routing.bounce(stanza, from, to, error);
  }

  // ------------------------------------------------------------------ connections

  /** The stream opened for `host`. */
  opened(host: string): ComponentSettings | StreamError {
    const s = this.#settings.get(host);
    if (!s) return new StreamError('host-unknown', host === '' ? 'the stream names no host' : `${host} is not a component of this server`);
    return s;
  }

  /** The handshake arrived: checked, then the host is claimed (here and in the cluster). */
  async authenticate(peer: ComponentPeer, s: ComponentSettings, digest: string): Promise<void> {
    const { link } = peer;
    const log = this.#d.log;
    if (!handshakeMatches(link.id, s.secret, digest)) {
      this.#d.stats.componentAuthFailures++;
      log.warn({ host: s.host, remote: link.remoteAddress }, 'component handshake refused: wrong secret');
      link.close(new StreamError('not-authorized', 'the handshake does not match the secret of this host'));
      return;
    }
    if (this.#here.has(s.host) || this.#claiming.has(s.host)) {
      log.warn({ host: s.host, remote: link.remoteAddress }, 'component refused: its host is connected already');
      link.close(new StreamError('conflict', 'this component is connected already'));
      return;
    }
    const c = this.#cluster;
    this.#claiming.add(s.host);
    try {
      const holder = c ? await c.claim(s.host) : null;
      if (holder !== null) {
        log.warn({ host: s.host, remote: link.remoteAddress, node: holder }, 'component refused: its host is connected to another node');
        link.close(new StreamError('conflict', 'this component is connected to another node of the cluster'));
        return;
      }
      if (peer.isGone) {
        c?.release(s.host);
        return;
      }
      this.#here.set(s.host, peer);
      peer.active(s.host);
      link.accept();
      log.info({ host: s.host, remote: link.remoteAddress }, 'component connected');
    } catch (err) {
      log.warn({ err, host: s.host }, 'component refused: its host could not be claimed in the cluster');
      link.close(new StreamError('internal-server-error', 'the cluster could not be reached; connect again later'));
    } finally {
      this.#claiming.delete(s.host);
    }
  }

  /** A stanza from a connected component: checked (SECURITY: its `from`), then routed. */
  received(peer: ComponentPeer, host: string, el: XmlElement): void {
    const kind = el.name as StanzaKind;
    this.#d.stats.componentStanzasIn[kind]++;
    const { link } = peer;
    if (el.ns !== NS.COMPONENT) {
      link.close(new StreamError('invalid-namespace', `stanzas must be in ${NS.COMPONENT}`));
      return;
    }
    const fromAttr = el.attrs.from;
    const toAttr = el.attrs.to;
    if (fromAttr === undefined || toAttr === undefined) {
      link.close(new StreamError('improper-addressing', 'a component stanza needs a from and a to'));
      return;
    }
    // SECURITY: a component speaks for its host and the JIDs of its host only.
    const from = Jid.tryParse(fromAttr);
    if (!from || from.domain !== host) {
      this.#d.log.warn({ host, from: fromAttr }, 'component stream ended: a stanza from a JID not of its host');
      link.close(new StreamError('invalid-from', `stanzas may only come from ${host} or its JIDs`));
      return;
    }
    requalify(el);
    el.attrs.from = from.full;
    const type = el.attrs.type;
    if (kind === 'iq' && (type === undefined || !IQ_TYPES.has(type) || !el.attrs.id)) {
      peer.reply(el, new StanzaError('bad-request', 'an IQ needs an id and a type of get, set, result or error'));
      return;
    }
    if (kind === 'presence' && type !== undefined && !PRESENCE_TYPES.has(type)) {
      peer.reply(el, new StanzaError('bad-request', `unknown presence type ${type}`));
      return;
    }
    const to = Jid.tryParse(toAttr);
    if (!to) {
      peer.reply(el, new StanzaError('jid-malformed'));
      return;
    }
    el.attrs.to = to.full;
    this.#d.routing.route(el, from, to);
  }

  /** A connection is gone: its host is free again; what it did not get bounces. */
  gone(peer: ComponentPeer, host: string | null, unsent: XmlElement[]): void {
    if (host !== null && this.#here.get(host) === peer) {
      this.#here.delete(host);
      this.#cluster?.release(host);
      this.#d.log.info({ host, remote: peer.link.remoteAddress }, 'component disconnected');
    }
    for (const el of unsent) this.#bounce(el, new StanzaError('service-unavailable', 'the component went away before it got this'));
  }

  overflowed(host: string | null): void {
    this.#d.stats.componentOverflows++;
    this.#d.log.warn({ host }, 'component stream ended: it does not read what is sent to it');
  }

  sent(kind: StanzaKind): void {
    this.#d.stats.componentStanzasOut[kind]++;
  }
}

/** One connection, from the stream's opening to its end. */
class ComponentPeer implements ComponentLinkEvents {
  #settings: ComponentSettings | null = null;
  /** The host, once the handshake succeeded. */
  #host: string | null = null;
  isGone = false;

  constructor(
    readonly hub: ComponentHub,
    readonly link: ComponentLink,
  ) {}

  onOpen(host: string): StreamError | null {
    const s = this.hub.opened(host);
    if (s instanceof StreamError) return s;
    this.#settings = s;
    return null;
  }

  onHandshake(digest: string): void {
    const s = this.#settings;
    if (s === null) {
      this.link.close(new StreamError('not-authorized'));
      return;
    }
    void this.hub.authenticate(this, s, digest);
  }

  active(host: string): void {
    this.#host = host;
  }

  onStanza(stanza: XmlElement): void {
    if (this.#host === null) return;
    this.hub.received(this, this.#host, stanza);
  }

  onOverflow(): void {
    this.hub.overflowed(this.#host);
  }

  onDisconnect(unsent: XmlElement[]): void {
    this.isGone = true;
    this.hub.gone(this, this.#host, unsent);
  }

  send(stanza: XmlElement): void {
    if (STANZA_KINDS.has(stanza.name)) this.hub.sent(stanza.name as StanzaKind);
    this.link.send(stanza);
  }

  /** Answers one of the component's stanzas with an error, straight back (never an error with an error). */
  reply(el: XmlElement, error: StanzaError): void {
    if (el.attrs.type === 'error') return;
    const r = new XmlElement(el.name, { type: 'error', id: el.attrs.id, from: el.attrs.to, to: el.attrs.from });
    for (const k of ['id', 'from', 'to'] as const) if (r.attrs[k] === undefined) delete r.attrs[k];
    for (const c of el.children) if (typeof c !== 'string') r.append(c);
    r.append(error.toElement());
    this.send(r);
  }
}

function down(): StanzaError {
  return new StanzaError('service-unavailable', 'the component is not connected');
}

function forward(c: ComponentCluster, node: string, host: string, stanza: XmlElement): void {
  // The link to that node is full: the sender hears it (as for a session there).
  if (!c.forward(node, host, stanza)) throw new StanzaError('resource-constraint', 'the node of the component is overloaded', 'wait');
}

/**
 * A component's stanza, in jabber:client from here on: what reaches clients, the archive
 * and modules looks like any other stanza (as BOSH does with its httpbind namespace).
 */
function requalify(el: XmlElement): void {
  if (el.attrs.xmlns === NS.COMPONENT) delete el.attrs.xmlns;
  el.ns = NS.CLIENT;
  for (const c of el.children) {
    if (typeof c !== 'string' && c.ns === NS.COMPONENT && c.attrs.xmlns === undefined && !c.name.includes(':')) requalify(c);
  }
}
