/**
 * SASL against the running server, through STARTTLS, with our own SCRAM client:
 * SCRAM-SHA-256, and the -PLUS variants with tls-exporter and tls-server-end-point
 * channel binding (which @xmpp/client does not speak).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TLSSocket } from 'node:tls';
import { createHash, X509Certificate } from 'node:crypto';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { RawClient, STREAM_HEADER } from './helpers/client.js';
import { ScramClient } from '../src/xmpp/sasl/client.js';

let ts: TestServer;

before(async () => {
  ts = await startTestServer();
  await ts.addUser('scram', 'pässwörd');
});
after(() => ts.stop());

/** A TLS stream after STARTTLS (the shared RawClient), with a reader that takes what matched. */
async function starttls(): Promise<{ tls: TLSSocket; until(re: RegExp): Promise<string>; write(s: string): void }> {
  const raw = await RawClient.connect(ts.port);
  raw.write(STREAM_HEADER);
  await raw.until(/<\/stream:features>/);
  raw.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await raw.until(/<proceed/);
  const secure = await raw.startTls({ servername: DOMAIN });
  return {
    tls: secure.tls!,
    write: (s) => secure.write(s),
    until: (re) => secure.take(re, 5000),
  };
}

async function scramLogin(mechanism: string, client: ScramClient, conn: Awaited<ReturnType<typeof starttls>>): Promise<string> {
  conn.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='${mechanism}'>${client.first().toString('base64')}</auth>`);
  const challenge = await conn.until(/<\/challenge>|<failure/);
  const m = /<challenge[^>]*>([^<]*)<\/challenge>/.exec(challenge);
  if (!m) return challenge;
  conn.write(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${(await client.final(Buffer.from(m[1]!, 'base64'))).toString('base64')}</response>`);
  const outcome = await conn.until(/<\/success>|<success[^>]*\/>|<failure/);
  const s = /<success[^>]*>([^<]*)<\/success>/.exec(outcome);
  if (s) client.verify(Buffer.from(s[1]!, 'base64'));
  return outcome;
}

test('after STARTTLS the -PLUS mechanisms and channel binding types are offered', async () => {
  const conn = await starttls();
  conn.write(STREAM_HEADER);
  const features = await conn.until(/<\/stream:features>/);
  for (const m of ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']) {
    assert.match(features, new RegExp(`<mechanism>${m}</mechanism>`));
  }
  assert.match(features, /<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'\/><channel-binding type='tls-server-end-point'\/>/);
  conn.tls.destroy();
});

test('SCRAM-SHA-256 logs in and the server proves it knows the password', async () => {
  const conn = await starttls();
  conn.write(STREAM_HEADER);
  await conn.until(/<\/stream:features>/);
  const outcome = await scramLogin('SCRAM-SHA-256', new ScramClient('SHA-256', 'scram', 'pässwörd', { supportsPlus: false }), conn);
  assert.match(outcome, /<success/);
  conn.tls.destroy();
});

test('SCRAM-SHA-256-PLUS with tls-exporter logs in', async () => {
  const conn = await starttls();
  conn.write(STREAM_HEADER);
  await conn.until(/<\/stream:features>/);
  const cbData = conn.tls.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
  const outcome = await scramLogin('SCRAM-SHA-256-PLUS', new ScramClient('SHA-256', 'scram', 'pässwörd', { cbType: 'tls-exporter', cbData }), conn);
  assert.match(outcome, /<success/);
  conn.tls.destroy();
});

test('SCRAM-SHA-1-PLUS with tls-server-end-point logs in', async () => {
  const conn = await starttls();
  conn.write(STREAM_HEADER);
  await conn.until(/<\/stream:features>/);
  const der = new X509Certificate(conn.tls.getPeerX509Certificate()!.raw).raw;
  const cbData = createHash('sha256').update(der).digest();
  const outcome = await scramLogin('SCRAM-SHA-1-PLUS', new ScramClient('SHA-1', 'scram', 'pässwörd', { cbType: 'tls-server-end-point', cbData }), conn);
  assert.match(outcome, /<success/);
  conn.tls.destroy();
});

test('channel binding data from another connection is refused (no man in the middle)', async () => {
  const conn = await starttls();
  conn.write(STREAM_HEADER);
  await conn.until(/<\/stream:features>/);
  const outcome = await scramLogin('SCRAM-SHA-256-PLUS', new ScramClient('SHA-256', 'scram', 'pässwörd', { cbType: 'tls-exporter', cbData: Buffer.alloc(32, 7) }), conn);
  assert.match(outcome, /<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized\/>/);
  conn.tls.destroy();
});

test('a client that could bind but says the server cannot (y) is refused: downgrade', async () => {
  const conn = await starttls();
  conn.write(STREAM_HEADER);
  await conn.until(/<\/stream:features>/);
  const outcome = await scramLogin('SCRAM-SHA-256', new ScramClient('SHA-256', 'scram', 'pässwörd', { supportsPlus: true }), conn);
  assert.match(outcome, /<not-authorized\/>/);
  conn.tls.destroy();
});

test('an unknown mechanism is invalid-mechanism and bad base64 is incorrect-encoding', async () => {
  const conn = await starttls();
  conn.write(STREAM_HEADER);
  await conn.until(/<\/stream:features>/);
  conn.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>");
  assert.match(await conn.until(/<\/failure>/), /<invalid-mechanism\/>/);
  conn.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!not base64!!!</auth>");
  assert.match(await conn.until(/<\/failure>/), /<incorrect-encoding\/>/);
  conn.tls.destroy();
});

test('too many failed attempts close the stream', async () => {
  const conn = await starttls();
  conn.write(STREAM_HEADER);
  await conn.until(/<\/stream:features>/);
  const bad = Buffer.from('\0scram\0wrong').toString('base64');
  for (let i = 0; i < 2; i++) {
    conn.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${bad}</auth>`);
    assert.match(await conn.until(/<\/failure>/), /<not-authorized\/>/);
  }
  conn.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${bad}</auth>`);
  assert.match(await conn.until(/<\/stream:stream>/), /<policy-violation/);
  conn.tls.destroy();
});
