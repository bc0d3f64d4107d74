/**
 * Links between cluster nodes (issue 7, part 3): one TCP connection from each node to
 * each other node it sends to, carrying length-prefixed JSON frames.
 *
 * - Order: one connection per (sender node, receiver node) and frames numbered in send
 *   order, so stanzas between two users on two nodes arrive in the order sent.
 * - Nothing lost in between: a frame stays in the sender's queue until the receiver
 *   acknowledges it (cumulative acks, coalesced per event-loop turn). A dropped
 *   connection is reopened and the unacknowledged frames are sent again (the receiver
 *   skips numbers it has seen, per sender incarnation). When the receiver node is dead,
 *   its unacknowledged frames are handed back (`takeBack`) for the router to re-route:
 *   messages then go to the user's other resources or to offline storage.
 * - Bounded: a queue holds at most `queueLimit` frames; `send` returns false beyond
 *   that (the caller bounces the stanza with resource-constraint, type wait). The
 *   socket's own backpressure pauses writing, not queueing.
 * - Authenticated: a hello frame carries an HMAC of the node id and incarnation with the
 *   shared cluster secret (compared in constant time); without a secret the cluster
 *   port must be on a private network.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';

/** What nodes send each other. `s`: the frame's number on its link. */
export type LinkFrame =
  /** Deliver a stanza to a session of the receiving node (`to`: full JID). */
  | { t: 'd'; s?: number; to: string; k: 'message' | 'presence' | 'iq'; x: string; c?: string[] }
  /** Close a session of the receiving node (conflict, kick) bound before `bt` (ms). */
  | { t: 'c'; s?: number; to: string; e: string; txt?: string; bt: number }
  /** Route a stanza on the receiving node (a reply to an IQ that node sent). */
  | { t: 'r'; s?: number; x: string };

type Wire = LinkFrame | { t: 'h'; node: string; boot: string; mac: string } | { t: 'a'; s: number };

/** Each outgoing link numbers its frames from 1: its own id tells a new link from a reconnection. */
let linkIds = 0;

export interface LinksOptions {
  nodeId: string;
  host: string;
  port: number;
  secret?: string;
  queueLimit: number;
  log: Logger;
  /** The address of a node (as it published it), or null when unknown. */
  addressOf(node: string): Promise<string | null>;
  /** A frame from another node, in order. */
  onFrame(from: string, frame: LinkFrame): void;
  /**
   * false while this node may not apply frames (it may have been declared dead): the frame
   * is neither applied nor acknowledged and the connection is closed, so the sender either
   * sends it again later or, having declared this node dead, takes it back.
   */
  mayApply?(): boolean;
}

const MAX_FRAME = 16 * 1024 * 1024;

function encode(w: Wire): Buffer {
  const body = Buffer.from(JSON.stringify(w));
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** Splits a byte stream into frames. */
class FrameReader {
  #buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer, each: (w: Wire) => void): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    let off = 0;
    while (this.#buf.length - off >= 4) {
      const len = this.#buf.readUInt32BE(off);
      if (len > MAX_FRAME) throw new Error(`cluster frame of ${len} bytes`);
      if (this.#buf.length - off - 4 < len) break;
      each(JSON.parse(this.#buf.toString('utf8', off + 4, off + 4 + len)) as Wire);
      off += 4 + len;
    }
    this.#buf = off === this.#buf.length ? Buffer.alloc(0) : this.#buf.subarray(off);
  }
}

/** The outgoing side of a link to one node. */
class Peer {
  readonly node: string;
  /** This link's incarnation (its frame numbers start again in a new one). */
  readonly #id = `${Date.now().toString(36)}.${(++linkIds).toString(36)}`;
  #seq = 0;
  /** Sent or waiting, not acknowledged; in order. */
  #queue: Array<{ s: number; frame: LinkFrame; raw: Buffer; at: number }> = [];
  #head = 0;
  /** Index in #queue of the next frame to write on the current socket. */
  #next = 0;
  #socket: Socket | null = null;
  #ready = false;
  #connecting = false;
  #closed = false;
  #retry: NodeJS.Timeout | null = null;
  #backoff = 50;

  constructor(
    node: string,
    private readonly links: Links,
  ) {
    this.node = node;
  }

  get pending(): number {
    return this.#queue.length - this.#head;
  }

  send(frame: LinkFrame, limit: number): boolean {
    if (this.#closed) return false;
    if (this.pending >= limit) return false;
    const s = ++this.#seq;
    frame.s = s;
    this.#queue.push({ s, frame, raw: encode(frame), at: Date.now() });
    if (this.#ready) this.#flush();
    else this.#connect();
    return true;
  }

  ack(s: number): void {
    while (this.#head < this.#queue.length && this.#queue[this.#head]!.s <= s) this.#head++;
    if (this.#next < this.#head) this.#next = this.#head;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#next -= this.#head;
      this.#head = 0;
    }
  }

  #flush(): void {
    const sock = this.#socket;
    if (!sock || !this.#ready) return;
    sock.cork();
    let ok = true;
    while (ok && this.#next < this.#queue.length) ok = sock.write(this.#queue[this.#next++]!.raw);
    sock.uncork();
  }

  #connect(): void {
    if (this.#connecting || this.#socket || this.#closed || this.#retry) return;
    this.#connecting = true;
    void this.links.addressOf(this.node).then(
      (addr) => {
        this.#connecting = false;
        if (this.#closed) return;
        if (!addr) {
          this.#later();
          return;
        }
        const i = addr.lastIndexOf(':');
        const sock = createConnection({ host: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1)) });
        sock.setNoDelay(true);
        this.#socket = sock;
        const reader = new FrameReader();
        sock.on('connect', () => {
          this.#backoff = 50;
          sock.write(encode(this.links.hello(this.#id)));
          this.#ready = true;
          this.#next = this.#head; // everything not acknowledged goes again
          this.#flush();
        });
        sock.on('drain', () => this.#flush());
        sock.on('data', (chunk: Buffer) => {
          try {
            reader.push(chunk, (w) => {
              if (w.t === 'a') this.ack(w.s);
            });
          } catch {
            sock.destroy();
          }
        });
        sock.on('error', () => {});
        sock.on('close', () => {
          if (this.#socket === sock) {
            this.#socket = null;
            this.#ready = false;
            if (this.pending > 0) this.#later();
          }
        });
      },
      () => {
        this.#connecting = false;
        this.#later();
      },
    );
  }

  #later(): void {
    if (this.#closed || this.#retry) return;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      if (this.pending > 0) this.#connect();
    }, this.#backoff);
    this.#retry.unref();
    this.#backoff = Math.min(this.#backoff * 2, 1000);
  }

  /** The node is gone: stops, and returns what it never acknowledged (with when it was sent). */
  close(): Array<{ frame: LinkFrame; at: number }> {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.#socket?.destroy();
    this.#socket = null;
    const left = this.#queue.slice(this.#head).map((q) => ({ frame: q.frame, at: q.at }));
    this.#queue = [];
    this.#head = this.#next = 0;
    return left;
  }
}

export class Links {
  readonly #o: LinksOptions;
  readonly boot = randomBytes(8).toString('hex');
  readonly #peers = new Map<string, Peer>();
  readonly #inbound = new Set<Socket>();
  /** Highest frame number applied per sending link ("node boot.link"). */
  readonly #applied = new Map<string, number>();
  #server: Server | null = null;

  constructor(opts: LinksOptions) {
    this.#o = opts;
  }

  /** Starts listening; returns the address other nodes reach this one at. */
  async listen(): Promise<AddressInfo> {
    const server = createServer((sock) => this.#accept(sock));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port, this.#o.host, () => resolve());
    });
    return server.address() as AddressInfo;
  }

  hello(link: string): Wire {
    const boot = `${this.boot}.${link}`;
    return { t: 'h', node: this.#o.nodeId, boot, mac: this.#mac(this.#o.nodeId, boot) };
  }

  #mac(node: string, boot: string): string {
    return createHmac('sha256', this.#o.secret ?? '').update(`${node}|${boot}`).digest('hex');
  }

  /** Queues a frame for a node; false when its queue is full (or it is gone). */
  send(node: string, frame: LinkFrame): boolean {
    let p = this.#peers.get(node);
    if (!p) this.#peers.set(node, (p = new Peer(node, this)));
    return p.send(frame, this.#o.queueLimit);
  }

  addressOf(node: string): Promise<string | null> {
    return this.#o.addressOf(node);
  }

  /** Frames waiting for a node's acknowledgement. */
  pending(node: string): number {
    return this.#peers.get(node)?.pending ?? 0;
  }

  /** A node is gone for good: its link closes and its unacknowledged frames come back. */
  takeBack(node: string): Array<{ frame: LinkFrame; at: number }> {
    const p = this.#peers.get(node);
    if (!p) return [];
    this.#peers.delete(node);
    return p.close();
  }

  #accept(sock: Socket): void {
    sock.setNoDelay(true);
    this.#inbound.add(sock);
    const reader = new FrameReader();
    let from: string | null = null;
    let key = '';
    let ackTimer: NodeJS.Immediate | null = null;
    const hello = setTimeout(() => sock.destroy(), 5000);
    hello.unref();
    const ack = () => {
      ackTimer = null;
      if (!sock.destroyed) sock.write(encode({ t: 'a', s: this.#applied.get(key) ?? 0 }));
    };
    let refused = false;
    sock.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (w) => {
          if (refused) return;
          if (from === null) {
            if (w.t !== 'h' || typeof w.node !== 'string' || typeof w.boot !== 'string' || !this.#checkMac(w.node, w.boot, w.mac)) {
              this.#o.log.warn({ remote: sock.remoteAddress }, 'cluster link: bad hello, connection closed');
              sock.destroy();
              return;
            }
            clearTimeout(hello);
            from = w.node;
            key = `${w.node} ${w.boot}`;
            return;
          }
          if (w.t === 'h' || w.t === 'a' || typeof w.s !== 'number') return;
          const last = this.#applied.get(key) ?? 0;
          if (w.s > last && this.#o.mayApply && !this.#o.mayApply()) {
            refused = true;
            sock.destroy();
            return;
          }
          if (w.s > last) {
            this.#applied.set(key, w.s);
            try {
              this.#o.onFrame(from, w);
            } catch (err) {
              this.#o.log.error({ err }, 'cluster link: frame failed');
            }
          }
          ackTimer ??= setImmediate(ack);
        });
      } catch (err) {
        this.#o.log.warn({ err }, 'cluster link: bad frame, connection closed');
        sock.destroy();
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(hello);
      this.#inbound.delete(sock);
    });
  }

  #checkMac(node: string, boot: string, mac: unknown): boolean {
    if (typeof mac !== 'string') return false;
    const want = Buffer.from(this.#mac(node, boot));
    const got = Buffer.from(mac);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  /** Forgets what a dead node's incarnations sent (their numbers never come again). */
  forget(node: string): void {
    for (const k of [...this.#applied.keys()]) if (k.startsWith(`${node} `)) this.#applied.delete(k);
  }

  async close(): Promise<void> {
    for (const node of [...this.#peers.keys()]) this.takeBack(node);
    for (const s of this.#inbound) s.destroy();
    await new Promise<void>((r) => (this.#server ? this.#server.close(() => r()) : r()));
  }
}
