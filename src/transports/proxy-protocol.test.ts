import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { buildProxyV2, parseProxyV2, PROXY_V2_MAX_LENGTH, PROXY_V2_SIGNATURE, readProxyHeader, type ProxyRead } from './proxy-protocol.js';

const v4 = buildProxyV2({ command: 'proxy', source: { address: '203.0.113.7', port: 40000 }, destination: { address: '10.0.0.1', port: 5222 } });

test('an IPv4 PROXY header gives the client and the address it connected to', () => {
  const p = parseProxyV2(v4);
  assert.equal(p.state, 'done');
  assert.deepEqual(p.state === 'done' && p.header, {
    command: 'proxy',
    source: { address: '203.0.113.7', port: 40000 },
    destination: { address: '10.0.0.1', port: 5222 },
    length: 28,
  });
});

test('IPv6 addresses come out in the form node:net uses (zero runs compressed, mapped IPv4 dotted)', () => {
  for (const address of ['2001:db8::1', '::1', 'fe80::1:0:0:2', '2001:db8:1:2:3:4:5:6', '::ffff:192.0.2.1']) {
    const p = parseProxyV2(buildProxyV2({ command: 'proxy', source: { address, port: 1 }, destination: { address: '::1', port: 2 } }));
    assert.equal(p.state === 'done' && p.header.source?.address, address);
  }
});

test('LOCAL (health checks), UNSPEC and UNIX headers carry no client address', () => {
  const local = parseProxyV2(buildProxyV2({ command: 'local' }));
  assert.deepEqual(local.state === 'done' && local.header, { command: 'local', source: null, destination: null, length: 16 });
  // LOCAL with addresses (allowed by the spec): they are ignored.
  const withAddr = Buffer.from(v4);
  withAddr[12] = 0x20;
  assert.equal(parseProxyV2(withAddr).state === 'done' && (parseProxyV2(withAddr) as { header: { source: unknown } }).header.source, null);
  const unix = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x31, 0x00, 216]), Buffer.alloc(216)]);
  const u = parseProxyV2(unix);
  assert.equal(u.state === 'done' && u.header.source, null);
  assert.equal(u.state === 'done' && u.header.length, 232);
});

test('a header arriving in pieces is incomplete until its last byte', () => {
  for (let i = 1; i < v4.length; i++) assert.equal(parseProxyV2(v4.subarray(0, i)).state, 'incomplete', `at ${i} bytes`);
  assert.equal(parseProxyV2(v4).state, 'done');
});

test('TLVs after the addresses are skipped: the header ends after them', () => {
  const tlv = Buffer.from([0x05, 0x00, 0x03, 0x61, 0x62, 0x63]); // PP2_TYPE_UNIQUE_ID "abc"
  const h = buildProxyV2({ command: 'proxy', source: { address: '198.51.100.2', port: 1 }, destination: { address: '10.0.0.1', port: 2 }, tlvs: tlv });
  const p = parseProxyV2(Buffer.concat([h, Buffer.from('<stream')]));
  assert.equal(p.state === 'done' && p.header.length, 28 + tlv.length);
  assert.equal(p.state === 'done' && p.header.source?.address, '198.51.100.2');
});

test('bytes that are not a v2 header are refused on the first read', () => {
  for (const text of ['<?xml', 'GET / HTTP/1.1\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n', '\x16\x03\x01']) {
    assert.equal(parseProxyV2(Buffer.from(text)).state, 'invalid', text);
  }
  assert.equal(parseProxyV2(Buffer.from([0x0d, 0x0a, 0x0d, 0x0b])).state, 'invalid');
});

test('a bad version, command, family, transport or length is invalid', () => {
  const bad = (at: number, value: number): Buffer => {
    const b = Buffer.from(v4);
    b[at] = value;
    return b;
  };
  assert.match(reason(bad(12, 0x11)), /version 1/);
  assert.match(reason(bad(12, 0x22)), /command 2/);
  assert.match(reason(bad(13, 0x41)), /family 4/);
  assert.match(reason(bad(13, 0x12)), /datagram/);
  const short = Buffer.from(v4);
  short.writeUInt16BE(8, 14); // less than an IPv4 address block
  assert.match(reason(short), /need 12 bytes/);
  const long = Buffer.from(v4);
  long.writeUInt16BE(PROXY_V2_MAX_LENGTH + 1, 14);
  assert.match(reason(long), /at most/);
});

function reason(b: Buffer): string {
  const p = parseProxyV2(b);
  assert.equal(p.state, 'invalid');
  return p.state === 'invalid' ? p.reason : '';
}

/** A server that reads a PROXY header off each connection, then collects what follows. */
async function reader(timeoutMs = 2000): Promise<{ port: number; next(): Promise<{ r: ProxyRead; after: Promise<string>; socket: Socket }>; close(): void }> {
  const waiting: Array<(v: { r: ProxyRead; after: Promise<string>; socket: Socket }) => void> = [];
  const server = createServer((socket) => {
    readProxyHeader(socket, { timeoutMs }, (r) => {
      const after = new Promise<string>((resolve) => {
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
        socket.on('close', () => resolve(text));
        socket.on('end', () => resolve(text));
      });
      if (r.ok) socket.resume();
      waiting.shift()?.({ r, after, socket });
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return {
    port: (server.address() as AddressInfo).port,
    next: () => new Promise((res) => waiting.push(res)),
    close: () => server.close(),
  };
}

test('on a socket, a header sent a byte at a time is read, and what follows it reaches the protocol in order', async () => {
  const srv = await reader();
  try {
    const got = srv.next();
    const c = connect(srv.port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    const bytes = Buffer.concat([v4, Buffer.from('<stream:stream>')]);
    for (let i = 0; i < v4.length; i++) {
      c.write(bytes.subarray(i, i + 1));
      await new Promise((r) => setImmediate(r));
    }
    c.end(bytes.subarray(v4.length));
    const { r, after } = await got;
    assert.equal(r.ok && r.header.source?.address, '203.0.113.7');
    assert.equal(await after, '<stream:stream>');
  } finally {
    srv.close();
  }
});

test('on a socket, the bytes sent with the header in one write are put back for the protocol', async () => {
  const srv = await reader();
  try {
    const got = srv.next();
    const c = connect(srv.port, '127.0.0.1');
    c.end(Buffer.concat([v4, Buffer.from('GET / HTTP/1.1\r\n\r\n')]));
    const { r, after } = await got;
    assert.equal(r.ok, true);
    assert.equal(await after, 'GET / HTTP/1.1\r\n\r\n');
  } finally {
    srv.close();
  }
});

test('on a socket, a connection without a header, or silent, is closed', async () => {
  const srv = await reader(300);
  try {
    let got = srv.next();
    const plain = connect(srv.port, '127.0.0.1');
    plain.on('error', () => undefined);
    plain.write("<?xml version='1.0'?><stream:stream>");
    const { r, socket } = await got;
    assert.equal(r.ok, false);
    assert.equal(socket.destroyed, true);

    got = srv.next();
    const silent = connect(srv.port, '127.0.0.1');
    silent.on('error', () => undefined);
    const closed = new Promise((res) => silent.once('close', res));
    const second = await got;
    assert.equal(second.r.ok === false && second.r.reason, 'no PROXY header in time');
    await closed;
  } finally {
    srv.close();
  }
});
