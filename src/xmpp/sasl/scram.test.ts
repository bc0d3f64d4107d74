/**
 * Tests for the SCRAM primitives: RFC 5802 §3 key derivation (vectors from the RFC 5802 §5
 * and RFC 7677 §3 examples) and the RFC 5802 §7 message syntax.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkScramPassword,
  constantTimeEqual,
  decodeBase64Strict,
  decodeSaslName,
  decodeScramMessage,
  deriveScramCredentials,
  encodeSaslName,
  fakeScramCredentials,
  gs2Header,
  parseAttributes,
  parseClientFinal,
  parseClientFirst,
  parseGs2Header,
  parseServerFinal,
  parseServerFirst,
  saltedPassword,
  SCRAM_MAX_MESSAGE_BYTES,
} from './scram.js';

const MALFORMED = { name: 'SaslFailure', code: 'SASL_MALFORMED_REQUEST' };
const BAD_ENCODING = { name: 'SaslFailure', code: 'SASL_INCORRECT_ENCODING' };
const b64 = (s: string) => Buffer.from(s, 'base64');

describe('SCRAM key derivation', () => {
  it('computes the RFC 5802 salted password for "pencil"', async () => {
    const salted = await saltedPassword('pencil', 'SHA-1', b64('QSXCR+Q6sek8bf92'), 4096);
    assert.equal(salted.toString('hex'), '1d96ee3a529b5a5f9e47c01f229a2cb8a6e15f7d');
  });

  it('derives the StoredKey and ServerKey of the RFC 5802 example', async () => {
    const creds = await deriveScramCredentials('pencil', 'SHA-1', 4096, b64('QSXCR+Q6sek8bf92'));
    assert.equal(creds.storedKey.toString('base64'), '6dlGYMOdZcOPutkcNY8U2g7vK9Y=');
    assert.equal(creds.serverKey.toString('base64'), 'D+CSWLOshSulAsxiupA+qs2/fTE=');
    assert.equal(creds.iterations, 4096);
    assert.equal(creds.salt.toString('base64'), 'QSXCR+Q6sek8bf92');
  });

  it('derives the StoredKey and ServerKey of the RFC 7677 example', async () => {
    const creds = await deriveScramCredentials('pencil', 'SHA-256', 4096, b64('W22ZaJ0SNY7soEsUEjb6gQ=='));
    assert.equal(creds.storedKey.toString('base64'), 'WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=');
    assert.equal(creds.serverKey.toString('base64'), 'wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=');
  });

  it('uses a fresh 16-byte salt and 4096 iterations by default', async () => {
    const a = await deriveScramCredentials('pencil', 'SHA-256');
    const b = await deriveScramCredentials('pencil', 'SHA-256');
    assert.equal(a.salt.length, 16);
    assert.equal(a.iterations, 4096);
    assert.notDeepEqual(a.salt, b.salt);
    assert.notDeepEqual(a.storedKey, b.storedKey);
  });

  it('rejects an iteration count below one', async () => {
    await assert.rejects(deriveScramCredentials('pencil', 'SHA-1', 0), RangeError);
  });

  it('checks a plaintext password against stored credentials', async () => {
    const creds = await deriveScramCredentials('pencil', 'SHA-256', 4096);
    assert.equal(await checkScramPassword('pencil', 'SHA-256', creds), true);
    assert.equal(await checkScramPassword('pencil2', 'SHA-256', creds), false);
  });

  it('gives an unknown user the same stand-in credentials every time', () => {
    const a = fakeScramCredentials('nobody', 'SHA-1');
    const b = fakeScramCredentials('nobody', 'SHA-1');
    assert.deepEqual(a, b);
    assert.equal(a.salt.length, 16);
    assert.equal(a.storedKey.length, 20);
    assert.equal(fakeScramCredentials('nobody', 'SHA-256').storedKey.length, 32);
  });

  it('gives different unknown users different stand-in salts', () => {
    assert.notDeepEqual(fakeScramCredentials('a', 'SHA-1').salt, fakeScramCredentials('b', 'SHA-1').salt);
  });

  it('derives stand-in salts from the key, so a cluster can share one', () => {
    const k1 = Buffer.alloc(32, 1);
    const k2 = Buffer.alloc(32, 2);
    assert.deepEqual(fakeScramCredentials('x', 'SHA-1', 4096, k1), fakeScramCredentials('x', 'SHA-1', 4096, k1));
    const salt1 = fakeScramCredentials('x', 'SHA-1', 4096, k1).salt;
    assert.notDeepEqual(salt1, fakeScramCredentials('x', 'SHA-1', 4096, k2).salt);
  });

  it('compares buffers of different lengths as unequal', () => {
    assert.equal(constantTimeEqual(Buffer.from('abc'), Buffer.from('abcd')), false);
    assert.equal(constantTimeEqual(Buffer.from('abc'), Buffer.from('abc')), true);
  });
});

describe('SCRAM names', () => {
  it('escapes "=" and "," in names', () => {
    assert.equal(encodeSaslName('a=b,c'), 'a=3Db=2Cc');
  });

  it('decodes escaped names', () => {
    assert.equal(decodeSaslName('a=3Db=2Cc'), 'a=b,c');
    assert.equal(decodeSaslName('=3D2C'), '=2C');
  });

  for (const bad of ['', 'a=b', 'a=', '=2c', '=3d', '=41', 'a=2', 'a,b']) {
    it(`rejects the name ${JSON.stringify(bad)}`, () => {
      assert.throws(() => decodeSaslName(bad), MALFORMED);
    });
  }

  it('rejects a name longer than 1024 bytes', () => {
    assert.throws(() => decodeSaslName('é'.repeat(513)), MALFORMED);
  });
});

describe('SCRAM base64', () => {
  it('decodes canonical base64', () => {
    assert.equal(decodeBase64Strict('biws').toString(), 'n,,');
    assert.equal(decodeBase64Strict('QQ==').toString(), 'A');
  });

  for (const bad of ['', 'biw', 'QQ', 'QQ=', 'QR==', 'bi ws', 'bi\nws', 'b!ws', 'QQ==QQ==', 'bi-_']) {
    it(`rejects the base64 ${JSON.stringify(bad)} as incorrect-encoding`, () => {
      assert.throws(() => decodeBase64Strict(bad), BAD_ENCODING);
    });
  }
});

describe('SCRAM message decoding', () => {
  it('rejects an empty message', () => {
    assert.throws(() => decodeScramMessage(Buffer.alloc(0)), MALFORMED);
  });

  it('rejects a NUL byte', () => {
    assert.throws(() => decodeScramMessage(Buffer.from('n,,n=u\0,r=x')), MALFORMED);
  });

  it('rejects invalid UTF-8', () => {
    assert.throws(() => decodeScramMessage(Buffer.from([0x6e, 0x2c, 0x2c, 0xc3, 0x28])), MALFORMED);
  });

  it('rejects a message above the size limit', () => {
    assert.throws(() => decodeScramMessage(Buffer.alloc(SCRAM_MAX_MESSAGE_BYTES + 1, 0x61)), MALFORMED);
  });

  it('splits attributes whose values contain "="', () => {
    assert.deepEqual(parseAttributes('r=abc,x=a=b'), [
      { name: 'r', value: 'abc' },
      { name: 'x', value: 'a=b' },
    ]);
  });

  for (const bad of ['r=', 'rr=x', 'r=x,,s=y', '=x', 'r', '1=x']) {
    it(`rejects the attribute list ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseAttributes(bad), MALFORMED);
    });
  }
});

describe('GS2 header', () => {
  it('parses "n,,"', () => {
    assert.deepEqual(parseGs2Header('n,,n=u,r=x'), { header: { cbFlag: 'n', raw: 'n,,' }, rest: 'n=u,r=x' });
  });

  it('parses "y,," ', () => {
    assert.equal(parseGs2Header('y,,n=u,r=x').header.cbFlag, 'y');
  });

  it('parses a channel binding type and an authzid', () => {
    const { header } = parseGs2Header('p=tls-exporter,a=admin=3Dx,n=u,r=x');
    assert.equal(header.cbFlag, 'p');
    assert.equal(header.cbType, 'tls-exporter');
    assert.equal(header.authzid, 'admin=x');
    assert.equal(header.raw, 'p=tls-exporter,a=admin=3Dx,');
  });

  it('round-trips with gs2Header', () => {
    const raw = gs2Header('p', 'tls-server-end-point', 'a,b');
    const { header } = parseGs2Header(raw + 'n=u,r=x');
    assert.equal(header.raw, raw);
    assert.equal(header.authzid, 'a,b');
  });

  const badHeaders = [
    'x,,n=u,r=a',
    'p=,,n=u,r=a',
    'p=tls unique,,n=u,r=a',
    'n,n=u',
    'n,b=x,n=u,r=a',
    'n,a=,n=u',
    'N,,n=u,r=a',
  ];
  for (const bad of badHeaders) {
    it(`rejects the header of ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseGs2Header(bad), MALFORMED);
    });
  }
});

describe('SCRAM messages', () => {
  it('parses the RFC 5802 client-first message', () => {
    const m = parseClientFirst('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL');
    assert.equal(m.username, 'user');
    assert.equal(m.clientNonce, 'fyko+d2lbbFgONRv9qkxdawL');
    assert.equal(m.bare, 'n=user,r=fyko+d2lbbFgONRv9qkxdawL');
  });

  it('ignores unknown extensions in client-first', () => {
    assert.equal(parseClientFirst('n,,n=user,r=abc,x=ext').clientNonce, 'abc');
  });

  it('rejects a mandatory extension in client-first', () => {
    assert.throws(() => parseClientFirst('n,,m=ext,n=user,r=abc'), MALFORMED);
  });

  for (const bad of ['n,,r=abc', 'n,,n=user', 'n,,r=abc,n=user', 'n,,n=user,r=a b', 'n,,n=user,r=ab\u00e9']) {
    it(`rejects the client-first ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseClientFirst(bad), MALFORMED);
    });
  }

  it('rejects an over-long nonce', () => {
    assert.throws(() => parseClientFirst('n,,n=user,r=' + 'a'.repeat(513)), MALFORMED);
  });

  it('parses the RFC 5802 server-first message', () => {
    const m = parseServerFirst('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096');
    assert.equal(m.nonce, 'fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j');
    assert.equal(m.salt.toString('base64'), 'QSXCR+Q6sek8bf92');
    assert.equal(m.iterations, 4096);
  });

  const badServerFirsts = [
    'r=a,s=QQ==,i=0',
    'r=a,s=QQ==,i=01',
    'r=a,s=QQ==,i=x',
    'r=a,s=QQ==,i=1234567890',
    'r=a,i=1,s=QQ==',
    'm=x,r=a,s=QQ==,i=1',
  ];
  for (const bad of badServerFirsts) {
    it(`rejects the server-first ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseServerFirst(bad), MALFORMED);
    });
  }

  it('rejects a server-first with a bad salt encoding', () => {
    assert.throws(() => parseServerFirst('r=a,s=Q,i=4096'), BAD_ENCODING);
  });

  it('parses the RFC 5802 client-final message', () => {
    const msg = 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=';
    const m = parseClientFinal(msg);
    assert.equal(m.channelBinding.toString(), 'n,,');
    assert.equal(m.withoutProof, 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j');
    assert.equal(m.proof.toString('base64'), 'v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=');
  });

  it('keeps extensions of client-final inside the signed part', () => {
    assert.equal(parseClientFinal('c=biws,r=abc,x=1,p=QQ==').withoutProof, 'c=biws,r=abc,x=1');
  });

  for (const bad of ['r=abc,c=biws,p=QQ==', 'c=biws,p=QQ==', 'c=biws,r=abc', 'c=biws,r=abc,p=QQ==,x=1']) {
    it(`rejects the client-final ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseClientFinal(bad), MALFORMED);
    });
  }

  it('parses a server-final verifier and a server-final error', () => {
    assert.deepEqual(parseServerFinal('v=QQ=='), { verifier: Buffer.from('A') });
    assert.deepEqual(parseServerFinal('e=invalid-proof'), { error: 'invalid-proof' });
  });

  it('rejects a server-final without v= or e=', () => {
    assert.throws(() => parseServerFinal('x=1'), MALFORMED);
  });
});
