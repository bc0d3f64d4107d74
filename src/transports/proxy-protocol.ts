/**
 * PROXY protocol version 2 (the binary header haproxy sends with `send-proxy-v2`), read
 * at the start of a connection from a trusted proxy, before any XMPP, TLS or HTTP byte.
 * References: https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt (§2.2)
 *
 * Who is trusted is the listener's `trustedProxies` (addresses and CIDR blocks). A
 * connection from one of them must start with a valid v2 header, or it is closed: a
 * proxy that forgot `send-proxy-v2` would otherwise make every client look like the
 * proxy. A connection from any other address is never read as PROXY: its bytes go to the
 * protocol as they are, so a client cannot claim an address by sending a header itself.
 *
 * The header: a 12-byte signature, a version/command byte (0x20 LOCAL, 0x21 PROXY), a
 * family/transport byte, a 16-bit length of what follows (addresses, then TLVs). LOCAL
 * (haproxy's own health checks) and families without an address (UNSPEC, UNIX: a client
 * on the proxy's machine) keep the connection's own address. TLVs are skipped.
 *
 * @example
 * ```ts
 * readProxyHeader(socket, { timeoutMs: 5000 }, (r) => {
 *   if (!r.ok) return; // the socket is destroyed already
 *   const client = r.header.source?.address ?? socket.remoteAddress;
 *   startProtocol(socket, client); // then socket.resume()
 * });
 * ```
 */
import type { BlockList, Socket } from 'node:net';
import { isTrustedProxy } from '../support/client-address.js';

export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Signature, version/command, family, length. */
export const PROXY_V2_FIXED = 16;
/**
 * Largest address-and-TLV part accepted. haproxy sends 12 (IPv4) or 36 (IPv6) bytes with
 * plain `send-proxy-v2`, a few hundred with its TLV options (unique id, SSL); the format
 * allows 65535, which we do not buffer for anyone.
 */
export const PROXY_V2_MAX_LENGTH = 2048;
/** How long a trusted proxy has to send its header (haproxy sends it on connecting). */
export const PROXY_HEADER_TIMEOUT_MS = 5000;

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyHeader {
  command: 'local' | 'proxy';
  /** The client (source) and the address it connected to (destination); null for LOCAL, UNSPEC and UNIX. */
  source: ProxyEndpoint | null;
  destination: ProxyEndpoint | null;
  /** Bytes the header took, TLVs included. */
  length: number;
}

export type ProxyParse = { state: 'incomplete' } | { state: 'invalid'; reason: string } | { state: 'done'; header: ProxyHeader };

const AF_UNSPEC = 0x0;
const AF_INET = 0x1;
const AF_INET6 = 0x2;
const AF_UNIX = 0x3;
const T_UNSPEC = 0x0;
const T_STREAM = 0x1;
const ADDRESS_BYTES: Record<number, number> = { [AF_UNSPEC]: 0, [AF_INET]: 12, [AF_INET6]: 36, [AF_UNIX]: 216 };

/** Parses a PROXY v2 header at the start of `buf`: incomplete (read more), invalid (close), or done. */
export function parseProxyV2(buf: Buffer): ProxyParse {
  // SECURITY: the signature is checked on the bytes there are, so a connection that is not
  // PROXY is refused on its first read, not after 16 bytes.
  const sig = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  if (buf.compare(PROXY_V2_SIGNATURE, 0, sig, 0, sig) !== 0) return { state: 'invalid', reason: 'no PROXY v2 signature' };
  if (buf.length < PROXY_V2_FIXED) return { state: 'incomplete' };
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 0x2) return { state: 'invalid', reason: `PROXY version ${verCmd >> 4}, not 2` };
  const cmd = verCmd & 0x0f;
  if (cmd !== 0x0 && cmd !== 0x1) return { state: 'invalid', reason: `unknown PROXY command ${cmd}` };
  const family = buf[13]! >> 4;
  const transport = buf[13]! & 0x0f;
  const length = buf.readUInt16BE(14);
  // SECURITY: a bounded header; no buffering up to 64 KiB on a proxy's word.
  if (length > PROXY_V2_MAX_LENGTH) return { state: 'invalid', reason: `PROXY header of ${length} bytes (at most ${PROXY_V2_MAX_LENGTH})` };
  const need = ADDRESS_BYTES[family];
  if (need === undefined) return { state: 'invalid', reason: `unknown PROXY address family ${family}` };
  if (transport !== T_UNSPEC && transport !== T_STREAM) {
    if (cmd === 0x1) return { state: 'invalid', reason: 'a PROXY header for a datagram on a stream connection' };
  }
  if (cmd === 0x1 && length < need) return { state: 'invalid', reason: `PROXY addresses need ${need} bytes, the header has ${length}` };
  if (buf.length < PROXY_V2_FIXED + length) return { state: 'incomplete' };
  const total = PROXY_V2_FIXED + length;
  // LOCAL: the proxy speaking for itself (health checks); the addresses, if any, are ignored.
  if (cmd === 0x0 || family === AF_UNSPEC || family === AF_UNIX) {
    return { state: 'done', header: { command: cmd === 0x0 ? 'local' : 'proxy', source: null, destination: null, length: total } };
  }
  const a = PROXY_V2_FIXED;
  if (family === AF_INET) {
    return {
      state: 'done',
      header: {
        command: 'proxy',
        source: { address: ipv4(buf, a), port: buf.readUInt16BE(a + 8) },
        destination: { address: ipv4(buf, a + 4), port: buf.readUInt16BE(a + 10) },
        length: total,
      },
    };
  }
  return {
    state: 'done',
    header: {
      command: 'proxy',
      source: { address: ipv6(buf, a), port: buf.readUInt16BE(a + 32) },
      destination: { address: ipv6(buf, a + 16), port: buf.readUInt16BE(a + 34) },
      length: total,
    },
  };
}

function ipv4(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

/** RFC 5952 text (what node:net gives for socket addresses): lower case, the longest zero run as ::, IPv4-mapped as ::ffff:a.b.c.d. */
function ipv6(buf: Buffer, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(at + 2 * i));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${ipv4(buf, at + 12)}`;
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Builds a v2 header (tests, and anything that speaks to a PROXY listener). */
export function buildProxyV2(h: { command: 'local' | 'proxy'; source?: ProxyEndpoint; destination?: ProxyEndpoint; tlvs?: Buffer }): Buffer {
  const tlvs = h.tlvs ?? Buffer.alloc(0);
  if (h.command === 'local' || !h.source || !h.destination) {
    const head = Buffer.alloc(PROXY_V2_FIXED);
    PROXY_V2_SIGNATURE.copy(head);
    head[12] = h.command === 'local' ? 0x20 : 0x21;
    head[13] = 0x00;
    head.writeUInt16BE(tlvs.length, 14);
    return Buffer.concat([head, tlvs]);
  }
  const v6 = h.source.address.includes(':');
  const addrLen = v6 ? 36 : 12;
  const out = Buffer.alloc(PROXY_V2_FIXED + addrLen);
  PROXY_V2_SIGNATURE.copy(out);
  out[12] = 0x21;
  out[13] = ((v6 ? AF_INET6 : AF_INET) << 4) | T_STREAM;
  out.writeUInt16BE(addrLen + tlvs.length, 14);
  const put = (addr: string, at: number): void => {
    if (!v6) addr.split('.').forEach((p, i) => (out[at + i] = Number(p)));
    else ipv6Bytes(addr).copy(out, at);
  };
  put(h.source.address, 16);
  put(h.destination.address, v6 ? 32 : 20);
  out.writeUInt16BE(h.source.port, v6 ? 48 : 24);
  out.writeUInt16BE(h.destination.port, v6 ? 50 : 26);
  return Buffer.concat([out, tlvs]);
}

function ipv6Bytes(addr: string): Buffer {
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const parse = (s: string | undefined): number[] =>
    s
      ? s.split(':').flatMap((g) => {
          if (!g.includes('.')) return [parseInt(g, 16)];
          const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
          return [(a << 8) | b, (c << 8) | d];
        })
      : [];
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  const groups = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(g, 2 * i));
  return b;
}

export type ProxyRead = { ok: true; header: ProxyHeader } | { ok: false; reason: string };

/**
 * Reads the PROXY v2 header off `socket`, then calls `done` with the socket paused and the
 * bytes after the header put back (the caller attaches its protocol, then resumes the
 * socket). An invalid header, a silent proxy (`timeoutMs`) or a connection closed before
 * the header ends the socket; `done` gets the reason.
 */
export function readProxyHeader(socket: Socket, opts: { timeoutMs: number }, done: (r: ProxyRead) => void): void {
  let buf: Buffer | null = null;
  let finished = false;
  const finish = (r: ProxyRead): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
    if (!r.ok) socket.destroy();
    done(r);
  };
  const onData = (chunk: Buffer): void => {
    buf = buf ? Buffer.concat([buf, chunk]) : chunk;
    const p = parseProxyV2(buf);
    if (p.state === 'incomplete') return;
    if (p.state === 'invalid') return finish({ ok: false, reason: p.reason });
    socket.pause();
    const rest = buf.subarray(p.header.length);
    buf = null;
    if (rest.length > 0) socket.unshift(rest);
    finish({ ok: true, header: p.header });
  };
  const onClose = (): void => finish({ ok: false, reason: 'closed before the PROXY header' });
  // SECURITY: a trusted address that connects and says nothing is not kept open.
  const timer = setTimeout(() => finish({ ok: false, reason: 'no PROXY header in time' }), opts.timeoutMs);
  timer.unref();
  socket.on('error', () => undefined); // 'close' follows
  socket.on('data', onData);
  socket.on('close', onClose);
}

/**
 * The start of every connection on a listener with trusted proxies: from a trusted proxy,
 * the PROXY v2 header is read and `next` gets the client's address with the socket paused
 * (it attaches its protocol and resumes it, see `proxied`); from anyone else `next` runs
 * at once with the socket's address and the socket untouched. A trusted proxy's connection
 * without a valid header is closed and reported to `refused`.
 */
export function acceptConnection(
  socket: Socket,
  trusted: BlockList | null,
  next: (remoteAddress: string, proxied: boolean) => void,
  refused: (proxy: string, reason: string) => void,
): void {
  const peer = socket.remoteAddress ?? '';
  // SECURITY: only a trusted proxy's bytes are read as PROXY; anyone else's go to the
  // protocol untouched (where a forged header is just bad XML or a bad request line).
  if (!isTrustedProxy(trusted, peer)) return next(peer, false);
  readProxyHeader(socket, { timeoutMs: PROXY_HEADER_TIMEOUT_MS }, (r) => {
    if (!r.ok) return refused(peer, r.reason);
    next(r.header.source?.address ?? peer, true);
  });
}
