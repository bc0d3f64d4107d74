/**
 * Helpers for the attack tests (test/attacks-*.test.ts): a WebSocket client that keeps
 * every message, a byte pump that sends a huge amount without holding it in memory, an
 * HTTP request written by hand on a raw socket, and the resident set size.
 */
import type { Socket } from 'node:net';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocket } from 'ws';
import { DOMAIN } from './server.js';
import { RawClient } from './client.js';
import { waitUntil } from './limits.js';

export const WS_OPEN = `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='${DOMAIN}' version='1.0'/>`;

export interface WsConn {
  ws: WebSocket;
  messages: string[];
  closed: () => boolean;
  closeCode: () => number | undefined;
  until(re: RegExp, timeoutMs?: number): Promise<string>;
  untilClosed(timeoutMs?: number): Promise<void>;
}

/** A WebSocket with the xmpp sub-protocol; resolves once open, or with the HTTP status of a refused upgrade. */
export function wsConnect(url: string, localAddress = '127.0.0.1'): Promise<WsConn | { status: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['xmpp'], { localAddress });
    const messages: string[] = [];
    let closed = false;
    let code: number | undefined;
    ws.on('message', (d) => messages.push(d.toString()));
    ws.on('close', (c) => {
      closed = true;
      code = c;
    });
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    ws.once('error', (e) => (closed ? undefined : reject(e)));
    ws.once('open', () =>
      resolve({
        ws,
        messages,
        closed: () => closed,
        closeCode: () => code,
        async until(re, timeoutMs = 10_000) {
          await waitUntil(() => messages.some((m) => re.test(m)), timeoutMs, () => `${re} in ${messages.join('\n')}`);
          return messages.join('\n');
        },
        async untilClosed(timeoutMs = 10_000) {
          await waitUntil(() => closed, timeoutMs, () => 'the WebSocket to close');
        },
      }),
    );
  });
}

/** Opens a WebSocket and its XMPP stream; resolves after the stream features. */
export async function wsStream(url: string, localAddress = '127.0.0.1'): Promise<WsConn> {
  const c = await wsConnect(url, localAddress);
  if (!('ws' in c)) throw new Error(`upgrade refused: ${c.status}`);
  c.ws.send(WS_OPEN);
  await c.until(/<stream:features/);
  return c;
}

/**
 * Writes `total` bytes of `chunk` repeated (one buffer, reused: the sender holds one
 * chunk, not `total` bytes), honouring back-pressure; stops early when the socket
 * closes or errors. Resolves with the bytes written.
 */
export function pump(socket: Socket, chunk: Buffer, total: number): Promise<number> {
  return new Promise((resolve) => {
    let sent = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve(sent);
    };
    socket.once('close', finish);
    socket.once('error', finish);
    const more = () => {
      while (!done && sent < total && !socket.destroyed) {
        sent += chunk.length;
        if (!socket.write(chunk)) {
          socket.once('drain', more);
          return;
        }
      }
      if (sent >= total || socket.destroyed) finish();
    };
    more();
  });
}

/** A raw TCP socket to 127.0.0.1:port, from `localAddress` (the shared RawClient's), with the text received so far. */
export async function rawSocket(port: number, localAddress = '127.0.0.1'): Promise<Socket & { received: () => string }> {
  const c = await RawClient.connect(port, { localAddress });
  return Object.assign(c.socket, { received: () => c.text });
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Resident set size and the bytes of Buffers/ArrayBuffers alive, after a full garbage collection. */
export async function memory(): Promise<{ rss: number; buffers: number }> {
  // Twice, with a turn of the event loop between: closed sockets release their buffers late.
  gc();
  await sleep(50);
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, buffers: m.arrayBuffers };
}

/**
 * Runs `attack` and checks that memory did not grow by anything like `perConnection`
 * bytes for each of `n` connections: Buffers alive (what the process holds, a precise
 * figure) under a quarter of it, the resident set (noisy here: allocator, heap growth, the
 * client in the same process) under three quarters of it.
 */
export async function assertBoundedMemory(what: string, n: number, perConnection: number, attack: () => Promise<void>): Promise<void> {
  const before = await memory();
  await attack();
  const after = await memory();
  const mb = (x: number) => `${(x / 1048576).toFixed(1)} MB`;
  const buffers = after.buffers - before.buffers;
  const rss = after.rss - before.rss;
  console.log(`# ${what}: Buffers +${mb(buffers)}, RSS +${mb(rss)} for ${n} connections`);
  assert.ok(buffers < (n * perConnection) / 4, `${what}: Buffers grew by ${mb(buffers)}`);
  assert.ok(rss < (n * perConnection * 3) / 4, `${what}: RSS grew by ${mb(rss)}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A WebSocket upgrade written by hand on a raw socket; resolves once the server answered 101. */
export async function wsRawUpgrade(port: number, localAddress = '127.0.0.1'): Promise<Socket & { received: () => string }> {
  const c = await RawClient.connect(port, { localAddress });
  c.write(
    'GET /xmpp-websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n',
  );
  await c.when(() => c.text.includes('\r\n\r\n'), 10_000, () => `no upgrade answer: ${c.text}`);
  if (!c.text.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${c.text}`);
  return Object.assign(c.socket, { received: () => c.text });
}

/**
 * The header of a masked client frame (RFC 6455 §5.2) announcing `length` payload bytes,
 * with the mask key 0 (the payload goes as it is).
 */
export function wsFrameHeader(length: number, opts: { opcode?: number; fin?: boolean } = {}): Buffer {
  const first = (opts.fin === false ? 0 : 0x80) | (opts.opcode ?? 0x1);
  if (length < 126) return Buffer.from([first, 0x80 | length, 0, 0, 0, 0]);
  if (length < 65536) {
    const b = Buffer.from([first, 0x80 | 126, 0, 0, 0, 0, 0, 0]);
    b.writeUInt16BE(length, 2);
    return b;
  }
  const b = Buffer.alloc(14);
  b[0] = first;
  b[1] = 0x80 | 127;
  b.writeBigUInt64BE(BigInt(length), 2);
  return b;
}
