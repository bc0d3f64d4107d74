/**
 * Links between cluster nodes (issue 7, part 3; hardened in issue 18, point 3): one TCP
 * connection from each node to each other node it sends to, carrying length-prefixed
 * records.
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
 * - Mutually authenticated, encrypted, replay-proof (the handshake below): a peer is
 *   accepted only while it is a current member with the boot id it says, and the dialer
 *   checks that it reached the node it meant, in the incarnation it meant.
 *
 * Handshake (both hellos in clear, everything after them AES-256-GCM):
 *
 *   dialer → acceptor   hello D = { v, node, boot, link, to, nonce: 32 random bytes }
 *   acceptor            checks `to` is itself and `node` a member with that `boot`
 *   acceptor → dialer   hello A = { v, node, boot, nonce: 32 random bytes }, then its
 *                       finished record
 *   dialer              checks hello A's node and boot are the member record it dialed
 *   dialer → acceptor   its finished record, then data records
 *
 *   th   = SHA-256(len ‖ hello D bytes ‖ len ‖ hello A bytes)   (both nonces, ids, boots)
 *   keys = HKDF-SHA256(ikm = cluster.secret, salt = th, info = "parley cluster link v1"),
 *          64 bytes: the dialer's sending key, then the acceptor's.
 *
 * A record is AES-256-GCM under its direction's key with a 96-bit nonce that is the
 * record's number on the connection (0, 1, 2…; never sent, so a replayed, reordered,
 * dropped or injected record fails authentication). The first record of each side
 * ("finished") proves it knows the secret and saw the same two hellos: a replayed hello
 * is useless because the other side's nonce is fresh. A record that fails ends the
 * connection at once and nothing of it (or after it) is applied; the dialer reconnects
 * and sends again what was not acknowledged. A record's plaintext is one or more items
 * (length-prefixed JSON): frames, acks, the finished marker.
 *
 * Before authentication a peer may send at most PREAUTH_BYTES and take PREAUTH_MS.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';

/** What nodes send each other. `s`: the frame's number on its link. */
export type LinkFrame =
  /** Deliver a stanza to a session of the receiving node (`to`: full JID). */
  | { t: 'd'; s?: number; to: string; k: 'message' | 'presence' | 'iq'; x: string; c?: string[] }
  /** Close a session of the receiving node (conflict, kick) bound before `bt` (ms). */
  | { t: 'c'; s?: number; to: string; e: string; txt?: string; bt: number }
  /** Route a stanza on the receiving node (a reply to an IQ that node sent). */
  | { t: 'r'; s?: number; x: string }
  /** Deliver a stanza to the external component `h` connected to the receiving node (XEP-0114). */
  | { t: 'k'; s?: number; h: string; x: string };

/** An item of a record: a frame, an ack (acceptor → dialer), or the finished marker. */
type Item = LinkFrame | { t: 'a'; s: number } | { t: 'f' };

/** Where a node is and which incarnation of it published that (its member record). */
export interface NodeRecord {
  addr: string;
  boot: string;
}

/** Each outgoing link numbers its frames from 1: its own id tells a new link from a reconnection. */
let linkIds = 0;

export interface LinksOptions {
  nodeId: string;
  host: string;
  port: number;
  /** cluster.secret: the key of every link (required; the caller validates its length). */
  secret: string;
  queueLimit: number;
  log: Logger;
  /**
   * The member record of a node (as it published it), or null when unknown. `fresh`: do
   * not answer from a cache (the node answered with another boot id than the cached one).
   */
  addressOf(node: string, fresh: boolean): Promise<NodeRecord | null>;
  /** Whether `node` is a current member whose incarnation is `boot` (asked before a peer is accepted). */
  verifyPeer(node: string, boot: string): Promise<boolean>;
  /** A frame from another node, in order. */
  onFrame(from: string, frame: LinkFrame): void;
  /**
   * false while this node may not apply frames (it may have been declared dead): the frame
   * is neither applied nor acknowledged and the connection is closed, so the sender either
   * sends it again later or, having declared this node dead, takes it back.
   */
  mayApply?(): boolean;
  /** What a peer may send before it is authenticated (default PREAUTH_BYTES). */
  preAuthBytes?: number;
  /** How long a peer may take to authenticate (default PREAUTH_MS). */
  preAuthMs?: number;
}

/** Largest record after the handshake. */
const MAX_FRAME = 16 * 1024 * 1024;
/** SECURITY: what a peer may send before it is authenticated (both hellos are ~250 bytes). */
export const PREAUTH_BYTES = 4096;
/** SECURITY: how long a peer may take to authenticate. */
export const PREAUTH_MS = 5000;
/** Frames are packed into records of about this size. */
const BATCH_BYTES = 64 * 1024;
const TAG = 16;
const VERSION = 1;
const INFO = Buffer.from('parley cluster link v1');
const FINISHED = item({ t: 'f' });

const NODE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const BOOT_ID = /^[0-9a-f]{16}$/;
const LINK_ID = /^[0-9a-z.]{1,32}$/;

/** Length-prefixed bytes (a frame on the wire, or an item inside a record). */
function framed(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

function item(w: Item): Buffer {
  return framed(Buffer.from(JSON.stringify(w)));
}

function nonceOf(n: number): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 4);
  iv.writeUInt32BE(n >>> 0, 8);
  return iv;
}

/** One direction of an authenticated connection: a key and the next record's number. */
class Direction {
  #n = 0;
  constructor(private readonly key: Buffer) {}

  seal(plain: Buffer): Buffer {
    const c = createCipheriv('aes-256-gcm', this.key, nonceOf(this.#n++));
    const out = Buffer.allocUnsafe(4 + plain.length + TAG);
    out.writeUInt32BE(plain.length + TAG, 0);
    const body = c.update(plain);
    body.copy(out, 4);
    c.final();
    c.getAuthTag().copy(out, 4 + plain.length);
    return out;
  }

  /** The plaintext, or null when the record is not the next one of this direction (forged, replayed, altered). */
  open(rec: Buffer): Buffer | null {
    if (rec.length < TAG) return null;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, nonceOf(this.#n));
      d.setAuthTag(rec.subarray(rec.length - TAG));
      const plain = d.update(rec.subarray(0, rec.length - TAG));
      d.final();
      this.#n++;
      return plain;
    } catch {
      return null;
    }
  }
}

/** The two directions' keys of a connection, from the secret and both hellos. */
function keysOf(secret: string, helloD: Buffer, helloA: Buffer): { dialer: Buffer; acceptor: Buffer } {
  const th = createHash('sha256').update(framed(helloD)).update(framed(helloA)).digest();
  const okm = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), th, INFO, 64));
  return { dialer: okm.subarray(0, 32), acceptor: okm.subarray(32) };
}

/** The items of a record's plaintext; throws on a malformed one (an authenticated peer's bug). */
function itemsOf(plain: Buffer): Item[] {
  const out: Item[] = [];
  let off = 0;
  while (off < plain.length) {
    if (plain.length - off < 4) throw new Error('cluster link: truncated item');
    const len = plain.readUInt32BE(off);
    if (plain.length - off - 4 < len) throw new Error('cluster link: truncated item');
    const w = JSON.parse(plain.toString('utf8', off + 4, off + 4 + len)) as Item;
    if (!w || typeof w !== 'object' || typeof w.t !== 'string') throw new Error('cluster link: bad item');
    out.push(w);
    off += 4 + len;
  }
  return out;
}

interface Hello {
  v: number;
  node: string;
  boot: string;
  nonce: string;
  link?: string;
  to?: string;
}

/** SECURITY: a hello from an unauthenticated peer: every field checked for type and shape. */
function parseHello(raw: Buffer, dialer: boolean): Hello | null {
  let h: Partial<Hello>;
  try {
    h = JSON.parse(raw.toString('utf8')) as Partial<Hello>;
  } catch {
    return null;
  }
  if (!h || typeof h !== 'object' || h.v !== VERSION) return null;
  if (typeof h.node !== 'string' || !NODE_ID.test(h.node)) return null;
  if (typeof h.boot !== 'string' || !BOOT_ID.test(h.boot)) return null;
  if (typeof h.nonce !== 'string' || Buffer.from(h.nonce, 'base64').length !== 32) return null;
  if (dialer && (typeof h.link !== 'string' || !LINK_ID.test(h.link) || typeof h.to !== 'string')) return null;
  return h as Hello;
}

/**
 * Splits a byte stream into length-prefixed frames. Chunks are kept as they came and
 * joined only for a frame that spans several (never the whole buffer per chunk).
 */
export class FrameReader {
  #chunks: Buffer[] = [];
  #len = 0;
  /** The length of the frame being read, once its header is in (-1: not yet). */
  #need = -1;
  /** SECURITY: the largest frame accepted now (small before authentication). */
  max = PREAUTH_BYTES;
  /** Set by the consumer to stop at once (the connection is being closed). */
  stopped = false;

  /** Calls `each` per complete frame; throws on a frame longer than `max`. */
  push(chunk: Buffer, each: (frame: Buffer) => void): void {
    if (this.stopped) return;
    this.#chunks.push(chunk);
    this.#len += chunk.length;
    while (!this.stopped) {
      if (this.#need < 0) {
        if (this.#len < 4) return;
        const len = this.#take(4).readUInt32BE(0);
        if (len > this.max) throw new Error(`cluster frame of ${len} bytes (at most ${this.max} now)`);
        this.#need = len;
      }
      if (this.#len < this.#need) return;
      const frame = this.#take(this.#need);
      this.#need = -1;
      each(frame);
    }
  }

  /** The next n bytes (a view when they lie in one chunk). */
  #take(n: number): Buffer {
    this.#len -= n;
    const first = this.#chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first && first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    return out;
  }
}

/**
 * The pre-authentication budget of a connection: bytes and time. SECURITY: a peer that
 * has not authenticated holds at most PREAUTH_BYTES of this node's memory, for at most
 * PREAUTH_MS.
 */
class PreAuth {
  #left: number;
  readonly #timer: NodeJS.Timeout;
  constructor(
    private readonly reader: FrameReader,
    limits: { bytes: number; ms: number },
    onTimeout: () => void,
  ) {
    this.#left = limits.bytes;
    this.#timer = setTimeout(onTimeout, limits.ms);
    this.#timer.unref();
    reader.max = this.#left - 4;
  }

  /** A frame of `len` bytes was read before authentication. */
  spent(len: number): void {
    this.#left -= 4 + len;
    this.reader.max = Math.max(0, this.#left - 4);
  }

  done(): void {
    clearTimeout(this.#timer);
    this.reader.max = MAX_FRAME + TAG;
  }
}

/** The outgoing side of a link to one node. */
class Peer {
  readonly node: string;
  /** This link's incarnation (its frame numbers start again in a new one). */
  readonly #id = `${Date.now().toString(36)}.${(++linkIds).toString(36)}`;
  #seq = 0;
  /** Sent or waiting, not acknowledged; in order. `raw`: the frame as a record item. */
  #queue: Array<{ s: number; frame: LinkFrame; raw: Buffer; at: number }> = [];
  #head = 0;
  /** Index in #queue of the next frame to write on the current socket. */
  #next = 0;
  #socket: Socket | null = null;
  /** The sending direction of the current connection, once authenticated. */
  #out: Direction | null = null;
  #connecting = false;
  #closed = false;
  #retry: NodeJS.Timeout | null = null;
  #backoff = 50;
  /** The node answered as another incarnation than the record said: read the record again. */
  #stale = false;
  #flushQueued = false;

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
    this.#queue.push({ s, frame, raw: item(frame), at: Date.now() });
    if (!this.#out) this.#connect();
    else if (!this.#flushQueued) {
      // Frames queued in one turn of the event loop (a fan-out, the stanzas of many
      // sockets read in one poll) share a record: one seal, one write.
      this.#flushQueued = true;
      setImmediate(() => {
        this.#flushQueued = false;
        this.#flush();
      });
    }
    return true;
  }

  /** false when `s` acknowledges a frame never sent (the connection is then closed). */
  ack(s: number): boolean {
    // SECURITY: an ack beyond what was sent would drop frames nobody received.
    if (!Number.isSafeInteger(s) || s > this.#seq) return false;
    while (this.#head < this.#queue.length && this.#queue[this.#head]!.s <= s) this.#head++;
    if (this.#next < this.#head) this.#next = this.#head;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#next -= this.#head;
      this.#head = 0;
    }
    return true;
  }

  #flush(): void {
    const sock = this.#socket;
    const out = this.#out;
    if (!sock || !out) return;
    sock.cork();
    let ok = true;
    while (ok && this.#next < this.#queue.length) {
      const parts: Buffer[] = [];
      let size = 0;
      while (this.#next < this.#queue.length && size < BATCH_BYTES) {
        const raw = this.#queue[this.#next++]!.raw;
        parts.push(raw);
        size += raw.length;
      }
      ok = sock.write(out.seal(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size)));
    }
    sock.uncork();
  }

  #connect(): void {
    if (this.#connecting || this.#socket || this.#closed || this.#retry) return;
    this.#connecting = true;
    const fresh = this.#stale;
    this.#stale = false;
    void this.links.addressOf(this.node, fresh).then(
      (rec) => {
        this.#connecting = false;
        if (this.#closed) return;
        if (!rec) {
          this.#later();
          return;
        }
        this.#open(rec);
      },
      () => {
        this.#connecting = false;
        this.#later();
      },
    );
  }

  #open(rec: NodeRecord): void {
    const i = rec.addr.lastIndexOf(':');
    const sock = createConnection({ host: rec.addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(rec.addr.slice(i + 1)) });
    sock.setNoDelay(true);
    this.#socket = sock;
    const reader = new FrameReader();
    const pre = new PreAuth(reader, this.links.preAuth, () => fail('no authentication in time'));
    const helloD = Buffer.from(JSON.stringify({ v: VERSION, node: this.links.nodeId, boot: this.links.boot, link: this.#id, to: this.node, nonce: randomBytes(32).toString('base64') } satisfies Hello));
    let inbound: Direction | null = null;
    let outbound: Direction | null = null;
    const fail = (why: string) => {
      if (reader.stopped) return;
      reader.stopped = true;
      if (why) this.links.log.warn({ node: this.node, addr: rec.addr, why }, 'cluster link: connection closed');
      sock.destroy();
    };
    sock.on('connect', () => {
      this.#backoff = 50;
      sock.write(framed(helloD));
    });
    sock.on('drain', () => this.#flush());
    sock.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (frame) => {
          if (!outbound) {
            // hello A, in clear
            pre.spent(frame.length);
            const h = parseHello(frame, false);
            if (!h) return fail('bad hello');
            // SECURITY: the node that answers must be the member record this link dialed.
            if (h.node !== this.node || h.boot !== rec.boot) {
              this.#stale = true;
              return fail(`answered as ${h.node} boot ${h.boot}, not the member record (${this.node} boot ${rec.boot})`);
            }
            const k = keysOf(this.links.secret, helloD, frame);
            outbound = new Direction(k.dialer);
            inbound = new Direction(k.acceptor);
            return;
          }
          const plain = inbound!.open(frame);
          if (!this.#out) {
            pre.spent(frame.length);
            // SECURITY: the acceptor's finished record proves the secret and this transcript.
            if (!plain || !plain.equals(FINISHED)) return fail('the node did not prove the cluster secret');
            pre.done();
            sock.write(outbound.seal(FINISHED));
            this.#out = outbound;
            this.#next = this.#head; // everything not acknowledged goes again
            this.#flush();
            return;
          }
          // SECURITY: a record that fails authentication ends the connection; nothing of it is used.
          if (!plain) return fail('a record failed authentication');
          for (const w of itemsOf(plain)) {
            if (w.t !== 'a' || !this.ack(w.s)) return fail(`unexpected item ${w.t === 'a' ? `ack ${String(w.s)} beyond ${this.#seq}` : w.t}`);
          }
        });
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err));
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      reader.stopped = true;
      pre.done();
      if (this.#socket === sock) {
        this.#socket = null;
        this.#out = null;
        if (this.pending > 0) this.#later();
      }
    });
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
    this.#out = null;
    const left = this.#queue.slice(this.#head).map((q) => ({ frame: q.frame, at: q.at }));
    this.#queue = [];
    this.#head = this.#next = 0;
    return left;
  }
}

export class Links {
  readonly #o: LinksOptions;
  /** This process's incarnation: published in the member record, checked by every peer. */
  readonly boot = randomBytes(8).toString('hex');
  readonly #peers = new Map<string, Peer>();
  /** Incoming connections, with their node once authenticated. */
  readonly #inbound = new Map<Socket, string | null>();
  /** Highest frame number applied per sending link ("node boot link"). */
  readonly #applied = new Map<string, number>();
  #server: Server | null = null;
  /** Incoming connections refused or ended for a failed check (bad hello, not a member, a forged record). */
  refused = 0;

  constructor(opts: LinksOptions) {
    if (!opts.secret) throw new Error('cluster links need a secret');
    this.#o = opts;
  }

  get nodeId(): string {
    return this.#o.nodeId;
  }

  get secret(): string {
    return this.#o.secret;
  }

  get log(): Logger {
    return this.#o.log;
  }

  get preAuth(): { bytes: number; ms: number } {
    return { bytes: this.#o.preAuthBytes ?? PREAUTH_BYTES, ms: this.#o.preAuthMs ?? PREAUTH_MS };
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

  /** Queues a frame for a node; false when its queue is full (or it is gone). */
  send(node: string, frame: LinkFrame): boolean {
    let p = this.#peers.get(node);
    if (!p) this.#peers.set(node, (p = new Peer(node, this)));
    return p.send(frame, this.#o.queueLimit);
  }

  addressOf(node: string, fresh: boolean): Promise<NodeRecord | null> {
    return this.#o.addressOf(node, fresh);
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
    this.#inbound.set(sock, null);
    const reader = new FrameReader();
    let from: string | null = null;
    let key = '';
    let state: 'hello' | 'checking' | 'finished' | 'open' = 'hello';
    let inbound: Direction | null = null;
    let outbound: Direction | null = null;
    let ackTimer: NodeJS.Immediate | null = null;
    const fail = (why: string, refusal = true) => {
      if (reader.stopped) return;
      reader.stopped = true;
      if (refusal) {
        this.refused++;
        this.#o.log.warn({ remote: sock.remoteAddress, node: from, why }, 'cluster link: connection refused');
      }
      sock.destroy();
    };
    const pre = new PreAuth(reader, this.preAuth, () => fail('no authentication in time'));
    const ack = () => {
      ackTimer = null;
      if (!sock.destroyed && outbound) sock.write(outbound.seal(item({ t: 'a', s: this.#applied.get(key) ?? 0 })));
    };
    const onHello = (raw: Buffer) => {
      const h = parseHello(raw, true);
      if (!h) return fail('bad hello');
      // SECURITY: the dialer meant this node (the transcript binds it too).
      if (h.to !== this.#o.nodeId) return fail(`hello for ${h.to}`);
      if (h.node === this.#o.nodeId) return fail('hello from this node\'s own id');
      state = 'checking';
      // SECURITY: only a current member, in the incarnation it published, may link.
      void this.#o.verifyPeer(h.node, h.boot).then(
        (ok) => {
          if (reader.stopped) return;
          if (!ok) return fail(`${h.node} boot ${h.boot} is not a current member`);
          const helloA = Buffer.from(JSON.stringify({ v: VERSION, node: this.#o.nodeId, boot: this.boot, nonce: randomBytes(32).toString('base64') } satisfies Hello));
          const k = keysOf(this.#o.secret, raw, helloA);
          inbound = new Direction(k.dialer);
          outbound = new Direction(k.acceptor);
          from = h.node;
          key = `${h.node} ${h.boot} ${h.link}`;
          state = 'finished';
          sock.cork();
          sock.write(framed(helloA));
          sock.write(outbound.seal(FINISHED));
          sock.uncork();
        },
        (err: unknown) => fail(`membership check failed: ${String(err)}`),
      );
    };
    sock.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (frame) => {
          if (state !== 'open') pre.spent(frame.length);
          if (state === 'hello') return onHello(frame);
          // SECURITY: nothing may come between the hello and this node's answer.
          if (state === 'checking') return fail('data before the handshake');
          const plain = inbound!.open(frame);
          if (state === 'finished') {
            // SECURITY: the dialer's finished record proves the secret and this transcript.
            if (!plain || !plain.equals(FINISHED)) return fail('the peer did not prove the cluster secret');
            pre.done();
            state = 'open';
            this.#inbound.set(sock, from);
            return;
          }
          // SECURITY: forged, replayed, reordered or altered: the connection ends, nothing of it applied.
          if (!plain) return fail('a record failed authentication');
          for (const w of itemsOf(plain)) {
            if (reader.stopped) return;
            if (w.t !== 'd' && w.t !== 'c' && w.t !== 'r' && w.t !== 'k') return fail(`unexpected item ${w.t}`);
            if (!Number.isSafeInteger(w.s)) return fail('a frame without its number');
            const s = w.s!;
            const last = this.#applied.get(key) ?? 0;
            if (s > last && this.#o.mayApply && !this.#o.mayApply()) return fail('', false);
            if (s > last) {
              this.#applied.set(key, s);
              try {
                this.#o.onFrame(from!, w);
              } catch (err) {
                this.#o.log.error({ err }, 'cluster link: frame failed');
              }
            }
          }
          ackTimer ??= setImmediate(ack);
        });
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err));
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      reader.stopped = true;
      pre.done();
      if (ackTimer) clearImmediate(ackTimer);
      this.#inbound.delete(sock);
    });
  }

  /** Forgets what a dead node's incarnations sent (their numbers never come again); its links end. */
  forget(node: string): void {
    for (const k of [...this.#applied.keys()]) if (k.startsWith(`${node} `)) this.#applied.delete(k);
    for (const [s, n] of this.#inbound) if (n === node) s.destroy();
  }

  async close(): Promise<void> {
    for (const node of [...this.#peers.keys()]) this.takeBack(node);
    for (const s of this.#inbound.keys()) s.destroy();
    await new Promise<void>((r) => (this.#server ? this.#server.close(() => r()) : r()));
  }
}
