/**
 * Tests for the client mechanisms: RFC 5802 §5 and RFC 7677 §3 client messages byte for
 * byte, server verification, checks on hostile server messages, the salted password cache,
 * and the RFC 4616 PLAIN message.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ScramClient, cachedSaltedPassword, plainMessage } from './client.js';

const MALFORMED = { name: 'SaslFailure', code: 'SASL_MALFORMED_REQUEST' };
const NOT_AUTHORIZED = { name: 'SaslFailure', code: 'SASL_NOT_AUTHORIZED' };

const RFC5802 = {
  first: 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL',
  serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
  final: 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
  serverFinal: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=',
};

const RFC7677 = {
  first: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  final:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

const rfc5802Client = () => new ScramClient('SHA-1', 'user', 'pencil', { clientNonce: 'fyko+d2lbbFgONRv9qkxdawL' });

describe('SCRAM client', () => {
  it('produces the RFC 5802 §5 SCRAM-SHA-1 messages byte for byte', async () => {
    const client = rfc5802Client();
    assert.equal(client.mechanism, 'SCRAM-SHA-1');
    assert.equal(client.first().toString(), RFC5802.first);
    assert.equal((await client.final(Buffer.from(RFC5802.serverFirst))).toString(), RFC5802.final);
    client.verify(Buffer.from(RFC5802.serverFinal));
  });

  it('produces the RFC 7677 §3 SCRAM-SHA-256 messages byte for byte', async () => {
    const client = new ScramClient('SHA-256', 'user', 'pencil', { clientNonce: 'rOprNGfwEbeRWgbNEkqO' });
    assert.equal(client.first().toString(), RFC7677.first);
    assert.equal((await client.final(Buffer.from(RFC7677.serverFirst))).toString(), RFC7677.final);
    client.verify(Buffer.from(RFC7677.serverFinal));
  });

  it('rejects a server signature that does not match', async () => {
    const client = rfc5802Client();
    client.first();
    await client.final(Buffer.from(RFC5802.serverFirst));
    assert.throws(() => client.verify(Buffer.from('v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=')), NOT_AUTHORIZED);
  });

  it('reports a server error attribute as not-authorized', async () => {
    const client = rfc5802Client();
    client.first();
    await client.final(Buffer.from(RFC5802.serverFirst));
    assert.throws(() => client.verify(Buffer.from('e=invalid-proof')), NOT_AUTHORIZED);
  });

  it('rejects a server nonce that does not extend the client nonce', async () => {
    const client = rfc5802Client();
    client.first();
    await assert.rejects(client.final(Buffer.from('r=somethingelse,s=QSXCR+Q6sek8bf92,i=4096')), MALFORMED);
  });

  it('rejects a server nonce equal to the client nonce', async () => {
    const client = rfc5802Client();
    client.first();
    await assert.rejects(client.final(Buffer.from('r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096')), MALFORMED);
  });

  it('rejects a mandatory extension in server-first', async () => {
    const client = rfc5802Client();
    client.first();
    await assert.rejects(client.final(Buffer.from('m=x,' + RFC5802.serverFirst)), MALFORMED);
  });

  it('refuses an iteration count above its limit', async () => {
    const client = new ScramClient('SHA-1', 'user', 'pencil', { clientNonce: 'abc', maxIterations: 10000 });
    client.first();
    await assert.rejects(client.final(Buffer.from('r=abcdef,s=QSXCR+Q6sek8bf92,i=10001')), MALFORMED);
  });

  it('escapes "=" and "," in the username', () => {
    const client = new ScramClient('SHA-1', 'a=b,c', 'pw', { clientNonce: 'n0' });
    assert.equal(client.first().toString(), 'n,,n=a=3Db=2Cc,r=n0');
  });

  it('sends "y" when it supports channel binding but has no binding to use', () => {
    const client = new ScramClient('SHA-1', 'user', 'pw', { clientNonce: 'n0', supportsPlus: true });
    assert.equal(client.first().toString(), 'y,,n=user,r=n0');
  });

  it('sends the channel binding type and an authzid in the GS2 header', () => {
    const client = new ScramClient('SHA-256', 'user', 'pw', {
      clientNonce: 'n0',
      cbType: 'tls-exporter',
      cbData: Buffer.from('cb'),
      authzid: 'admin',
    });
    assert.equal(client.mechanism, 'SCRAM-SHA-256-PLUS');
    assert.equal(client.first().toString(), 'p=tls-exporter,a=admin,n=user,r=n0');
  });

  it('binds the GS2 header and the channel binding data in c=', async () => {
    const cbData = Buffer.from([0, 1, 2, 250, 251]);
    const client = new ScramClient('SHA-1', 'user', 'pencil', { clientNonce: 'n0', cbType: 'tls-exporter', cbData });
    client.first();
    const final = (await client.final(Buffer.from('r=n0x,s=QSXCR+Q6sek8bf92,i=4096'))).toString();
    const c = /^c=([^,]+),/.exec(final)![1]!;
    assert.deepEqual(Buffer.from(c, 'base64'), Buffer.concat([Buffer.from('p=tls-exporter,,'), cbData]));
  });

  it('requires cbType and cbData together', () => {
    assert.throws(() => new ScramClient('SHA-1', 'u', 'p', { cbType: 'tls-exporter' }), TypeError);
    assert.throws(() => new ScramClient('SHA-1', 'u', 'p', { cbData: Buffer.from('x') }), TypeError);
  });

  it('rejects a client nonce containing a comma', () => {
    assert.throws(() => new ScramClient('SHA-1', 'u', 'p', { clientNonce: 'a,b' }), TypeError);
  });

  it('refuses to run steps out of order', async () => {
    const client = rfc5802Client();
    await assert.rejects(client.final(Buffer.from(RFC5802.serverFirst)), Error);
    client.first();
    assert.throws(() => client.first(), Error);
  });
});

describe('salted password cache', () => {
  it('runs PBKDF2 once for the same hash, password, salt and iterations', () => {
    const salt = Buffer.from('cache-test-salt-1');
    const a = cachedSaltedPassword('shared', 'SHA-256', salt, 4096);
    const b = cachedSaltedPassword('shared', 'SHA-256', Buffer.from(salt), 4096);
    assert.equal(a, b);
  });

  it('keeps different salts, hashes and iteration counts apart', async () => {
    const salt = Buffer.from('cache-test-salt-2');
    const base = await cachedSaltedPassword('shared', 'SHA-256', salt, 4096);
    assert.notDeepEqual(await cachedSaltedPassword('shared', 'SHA-256', Buffer.from('cache-test-salt-3'), 4096), base);
    assert.notDeepEqual(await cachedSaltedPassword('shared', 'SHA-1', salt, 4096), base);
    assert.notDeepEqual(await cachedSaltedPassword('shared', 'SHA-256', salt, 4097), base);
    assert.notDeepEqual(await cachedSaltedPassword('other', 'SHA-256', salt, 4096), base);
  });

  it('shares the cache between clients so the second login skips PBKDF2', async () => {
    const settled = async (p: Promise<Buffer>) => Promise.race([p, Promise.resolve('pending' as const)]);
    const salt = 'Y2FjaGUtdGVzdC1zYWx0LTQ=';
    const fresh = cachedSaltedPassword('fresh', 'SHA-1', Buffer.from('never-used-salt'), 4096);
    assert.equal(await settled(fresh), 'pending');
    const client = new ScramClient('SHA-1', 'user', 'shared-pw', { clientNonce: 'n0' });
    client.first();
    await client.final(Buffer.from(`r=n0x,s=${salt},i=4096`));
    const hit = await settled(cachedSaltedPassword('shared-pw', 'SHA-1', Buffer.from(salt, 'base64'), 4096));
    assert.ok(Buffer.isBuffer(hit), 'the client left a settled entry in the cache');
  });
});

describe('PLAIN client', () => {
  it('builds authzid NUL authcid NUL password', () => {
    assert.deepEqual(plainMessage('juliet', 'r0meo!'), Buffer.from('\0juliet\0r0meo!'));
    assert.deepEqual(plainMessage('juliet', 'r0meo!', 'admin'), Buffer.from('admin\0juliet\0r0meo!'));
  });

  it('prepares the password with OpaqueString', () => {
    assert.deepEqual(plainMessage('juliet', 'cafe\u0301'), Buffer.from('\0juliet\0caf\u00e9'));
  });
});
