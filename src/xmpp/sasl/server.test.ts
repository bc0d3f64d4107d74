/**
 * Tests for the server mechanisms: RFC 5802 §5 and RFC 7677 §3 examples byte for byte,
 * client↔server round trips with and without channel binding (RFC 5802 §6), failure
 * conditions (RFC 6120 §6.5), and PLAIN parsing (RFC 4616 §2).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ScramClient, plainMessage } from './client.js';
import {
  checkScramPassword,
  deriveScramCredentials,
  fakeScramCredentials,
  type ChannelBindingType,
  type ScramCredentials,
  type ScramHash,
} from './scram.js';
import {
  channelBindingFeature,
  createServerMechanism,
  parsePlain,
  serverMechanismNames,
  supportedChannelBindingTypes,
  type SaslServerContext,
  type SaslServerMechanism,
  type SaslStep,
  type ServerMechanismOptions,
} from './server.js';

const MALFORMED = { name: 'SaslFailure', code: 'SASL_MALFORMED_REQUEST' };
const NOT_AUTHORIZED = { name: 'SaslFailure', code: 'SASL_NOT_AUTHORIZED' };
const BAD_ENCODING = { name: 'SaslFailure', code: 'SASL_INCORRECT_ENCODING' };

const EXPORTER = Buffer.from('exporter-keying-material-0123456789abcdef');
const END_POINT = Buffer.from('certificate-hash-0123456789abcdef');

interface TestContext extends SaslServerContext {
  plainCalls: Array<[string, string]>;
}

function makeCtx(
  opts: {
    users?: Record<string, string>;
    cb?: Partial<Record<ChannelBindingType, Buffer>>;
    salt?: Buffer;
  } = {},
): TestContext {
  const users = opts.users ?? { juliet: 'r0meo!' };
  const cache = new Map<string, Promise<ScramCredentials>>();
  const creds = (username: string, hash: ScramHash): Promise<ScramCredentials> | null => {
    const password = users[username];
    if (password === undefined) return null;
    const key = `${hash}:${username}`;
    if (!cache.has(key)) cache.set(key, deriveScramCredentials(password, hash, 4096, opts.salt));
    return cache.get(key)!;
  };
  const ctx: TestContext = {
    plainCalls: [],
    channelBinding: (type) => opts.cb?.[type] ?? null,
    getScramCredentials: async (username, hash) => (await creds(username, hash)) ?? null,
    verifyPlain: async (username, password) => {
      ctx.plainCalls.push([username, password]);
      const stored = await creds(username, 'SHA-256');
      const ok = await checkScramPassword(password, 'SHA-256', stored ?? fakeScramCredentials(username, 'SHA-256'));
      return ok && stored !== null;
    },
  };
  return ctx;
}

function mech(name: string, ctx: SaslServerContext, opts?: ServerMechanismOptions): SaslServerMechanism {
  const m = createServerMechanism(name, ctx, opts);
  assert.ok(m, `mechanism ${name}`);
  return m;
}

function challenge(step: SaslStep): Buffer {
  assert.equal(step.done, false);
  return step.challenge;
}

/** Runs a whole SCRAM exchange; returns the success step after the client verified it. */
async function exchange(server: SaslServerMechanism, client: ScramClient): Promise<Extract<SaslStep, { done: true }>> {
  const serverFirst = challenge(await server.step(client.first()));
  const result = await server.step(await client.final(serverFirst));
  assert.equal(result.done, true);
  assert.ok(result.additionalData);
  client.verify(result.additionalData);
  return result;
}

/** Sends a valid client-first, then `final` as the client-final message. */
async function withFinal(server: SaslServerMechanism, final: string, first = 'n,,n=juliet,r=abc'): Promise<SaslStep> {
  const serverFirst = challenge(await server.step(Buffer.from(first))).toString();
  const nonce = /^r=([^,]+)/.exec(serverFirst)![1]!;
  return server.step(Buffer.from(final.replace('NONCE', nonce)));
}

const PROOF_SHA1 = 'p=' + Buffer.alloc(20).toString('base64');

describe('SCRAM server, RFC examples', () => {
  it('produces the RFC 5802 §5 SCRAM-SHA-1 messages byte for byte', async () => {
    const ctx = makeCtx({ users: { user: 'pencil' }, salt: Buffer.from('QSXCR+Q6sek8bf92', 'base64') });
    const server = mech('SCRAM-SHA-1', ctx, { serverNonce: '3rfcNHYJY1ZVvWVs7j' });
    const first = await server.step(Buffer.from('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL'));
    assert.equal(
      challenge(first).toString(),
      'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
    );
    const final = await server.step(
      Buffer.from('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts='),
    );
    assert.deepEqual(final, {
      done: true,
      username: 'user',
      additionalData: Buffer.from('v=rmF9pqV8S7suAoZWja4dJRkFsKQ='),
    });
  });

  it('produces the RFC 7677 §3 SCRAM-SHA-256 messages byte for byte', async () => {
    const ctx = makeCtx({ users: { user: 'pencil' }, salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64') });
    const server = mech('SCRAM-SHA-256', ctx, { serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0' });
    const first = await server.step(Buffer.from('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
    assert.equal(
      challenge(first).toString(),
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    );
    const final = await server.step(
      Buffer.from(
        'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
      ),
    );
    assert.deepEqual(final, {
      done: true,
      username: 'user',
      additionalData: Buffer.from('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='),
    });
  });
});

describe('SCRAM server, round trips', () => {
  for (const hash of ['SHA-1', 'SHA-256'] as const) {
    it(`authenticates a client with SCRAM-${hash}`, async () => {
      const result = await exchange(mech(`SCRAM-${hash}`, makeCtx()), new ScramClient(hash, 'juliet', 'r0meo!'));
      assert.equal(result.username, 'juliet');
      assert.equal(result.authzid, undefined);
    });

    for (const [type, data] of [
      ['tls-exporter', EXPORTER],
      ['tls-server-end-point', END_POINT],
    ] as const) {
      it(`authenticates a client with SCRAM-${hash}-PLUS over ${type}`, async () => {
        const ctx = makeCtx({ cb: { 'tls-exporter': EXPORTER, 'tls-server-end-point': END_POINT } });
        const client = new ScramClient(hash, 'juliet', 'r0meo!', { cbType: type, cbData: data });
        assert.equal(client.mechanism, `SCRAM-${hash}-PLUS`);
        const result = await exchange(mech(client.mechanism, ctx), client);
        assert.equal(result.username, 'juliet');
      });
    }

    it(`rejects a wrong password with SCRAM-${hash}`, async () => {
      const server = mech(`SCRAM-${hash}`, makeCtx());
      await assert.rejects(exchange(server, new ScramClient(hash, 'juliet', 'wrong')), NOT_AUTHORIZED);
    });

    it(`rejects an unknown user with SCRAM-${hash}`, async () => {
      const server = mech(`SCRAM-${hash}`, makeCtx());
      await assert.rejects(exchange(server, new ScramClient(hash, 'romeo', 'r0meo!')), NOT_AUTHORIZED);
    });
  }

  it('returns the authzid from the GS2 header', async () => {
    const client = new ScramClient('SHA-256', 'juliet', 'r0meo!', { authzid: 'admin@example.com' });
    const result = await exchange(mech('SCRAM-SHA-256', makeCtx()), client);
    assert.equal(result.authzid, 'admin@example.com');
  });

  it('decodes "=2C" and "=3D" in the username', async () => {
    const ctx = makeCtx({ users: { 'a,b=c': 'pw' } });
    const result = await exchange(mech('SCRAM-SHA-1', ctx), new ScramClient('SHA-1', 'a,b=c', 'pw'));
    assert.equal(result.username, 'a,b=c');
  });

  it('answers an empty initial response with an empty challenge, then proceeds', async () => {
    const server = mech('SCRAM-SHA-256', makeCtx());
    assert.equal(challenge(await server.step(Buffer.alloc(0))).length, 0);
    const result = await exchange(server, new ScramClient('SHA-256', 'juliet', 'r0meo!'));
    assert.equal(result.username, 'juliet');
  });

  it('uses a 24-byte random server nonce appended to the client nonce', async () => {
    const server = mech('SCRAM-SHA-256', makeCtx());
    const first = challenge(await server.step(Buffer.from('n,,n=juliet,r=abc'))).toString();
    const nonce = /^r=abc([^,]+),/.exec(first)![1]!;
    assert.equal(Buffer.from(nonce, 'base64').length, 24);
  });

  it('accepts "y" when no -PLUS mechanism was advertised', async () => {
    const client = new ScramClient('SHA-256', 'juliet', 'r0meo!', { supportsPlus: true });
    assert.equal(client.first().toString().slice(0, 3), 'y,,');
    const fresh = new ScramClient('SHA-256', 'juliet', 'r0meo!', { supportsPlus: true });
    const result = await exchange(mech('SCRAM-SHA-256', makeCtx()), fresh);
    assert.equal(result.username, 'juliet');
  });

  it('accepts "n" even when -PLUS was advertised', async () => {
    const ctx = makeCtx({ cb: { 'tls-exporter': EXPORTER } });
    const result = await exchange(mech('SCRAM-SHA-1', ctx), new ScramClient('SHA-1', 'juliet', 'r0meo!'));
    assert.equal(result.username, 'juliet');
  });
});

/** The salt a fresh SCRAM-SHA-1 exchange sends for this name. */
async function saltFor(ctx: SaslServerContext, name: string): Promise<string> {
  const first = challenge(await mech('SCRAM-SHA-1', ctx).step(Buffer.from(`n,,n=${name},r=abc`)));
  return /s=([^,]+)/.exec(first.toString())![1]!;
}

describe('SCRAM server, unknown users', () => {
  it('sends an unknown user a server-first of the same shape as a real one', async () => {
    const ctx = makeCtx();
    const real = challenge(await mech('SCRAM-SHA-256', ctx).step(Buffer.from('n,,n=juliet,r=abc'))).toString();
    const fake = challenge(await mech('SCRAM-SHA-256', ctx).step(Buffer.from('n,,n=nobody,r=abc'))).toString();
    const shape = (s: string) => s.replace(/r=[^,]+/, 'r=').replace(/s=[^,]+/, (m) => `s=${m.length}`);
    assert.equal(shape(fake), shape(real));
  });

  it('sends an unknown user the same salt every time', async () => {
    const ctx = makeCtx();
    assert.equal(await saltFor(ctx, 'nobody'), await saltFor(ctx, 'nobody'));
  });

  it('sends case variants of an unknown name the same salt, like a real user gets', async () => {
    const ctx = makeCtx();
    assert.equal(await saltFor(ctx, 'NoBody'), await saltFor(ctx, 'nobody'));
  });

  it('uses the configured iteration count for unknown users', async () => {
    const server = mech('SCRAM-SHA-1', makeCtx(), { fakeIterations: 10000 });
    assert.match(challenge(await server.step(Buffer.from('n,,n=nobody,r=abc'))).toString(), /,i=10000$/);
  });
});

describe('SCRAM server, channel binding', () => {
  const cbCtx = () => makeCtx({ cb: { 'tls-exporter': EXPORTER } });

  it('rejects "y" as a downgrade when -PLUS was advertised', async () => {
    const client = new ScramClient('SHA-256', 'juliet', 'r0meo!', { supportsPlus: true });
    await assert.rejects(mech('SCRAM-SHA-256', cbCtx()).step(client.first()), NOT_AUTHORIZED);
  });

  it('rejects "y" when the caller says -PLUS was advertised', async () => {
    const server = mech('SCRAM-SHA-256', makeCtx(), { plusAdvertised: true });
    await assert.rejects(server.step(Buffer.from('y,,n=juliet,r=abc')), NOT_AUTHORIZED);
  });

  it('rejects channel binding data that does not match the connection', async () => {
    const client = new ScramClient('SHA-256', 'juliet', 'r0meo!', {
      cbType: 'tls-exporter',
      cbData: Buffer.from('attacker-side-exporter-value-0123456789'),
    });
    await assert.rejects(exchange(mech('SCRAM-SHA-256-PLUS', cbCtx()), client), NOT_AUTHORIZED);
  });

  it('rejects a -PLUS exchange whose client-final binds "n,," instead', async () => {
    const server = mech('SCRAM-SHA-1-PLUS', cbCtx());
    const final = `c=${Buffer.from('n,,').toString('base64')},r=NONCE,${PROOF_SHA1}`;
    await assert.rejects(withFinal(server, final, 'p=tls-exporter,,n=juliet,r=abc'), NOT_AUTHORIZED);
  });

  it('rejects a channel binding type the connection does not offer', async () => {
    const client = new ScramClient('SHA-256', 'juliet', 'r0meo!', {
      cbType: 'tls-server-end-point',
      cbData: END_POINT,
    });
    await assert.rejects(mech('SCRAM-SHA-256-PLUS', cbCtx()).step(client.first()), NOT_AUTHORIZED);
  });

  it('rejects an unknown channel binding type', async () => {
    const first = Buffer.from('p=tls-unique,,n=juliet,r=abc');
    await assert.rejects(mech('SCRAM-SHA-256-PLUS', cbCtx()).step(first), NOT_AUTHORIZED);
  });

  it('rejects a -PLUS mechanism without "p="', async () => {
    await assert.rejects(mech('SCRAM-SHA-256-PLUS', cbCtx()).step(Buffer.from('n,,n=juliet,r=abc')), MALFORMED);
  });

  it('rejects "p=" with a mechanism that is not -PLUS', async () => {
    await assert.rejects(mech('SCRAM-SHA-256', cbCtx()).step(Buffer.from('p=tls-exporter,,n=juliet,r=abc')), MALFORMED);
  });
});

describe('SCRAM server, malformed messages', () => {
  const firsts: Array<[string, string]> = [
    ['a client-first without a GS2 header', 'n=juliet,r=abc'],
    ['a client-first without a username', 'n,,r=abc'],
    ['a client-first without a nonce', 'n,,n=juliet'],
    ['a client-first with a mandatory extension', 'n,,m=foo,n=juliet,r=abc'],
    ['a client-first with a bad escape', 'n,,n=jul=iet,r=abc'],
    ['a client-first with a comma in the nonce position', 'n,,n=juliet,r=,'],
    ['an empty client-first after an empty challenge', ''],
  ];
  for (const [what, msg] of firsts) {
    it(`rejects ${what} as malformed-request`, async () => {
      const server = mech('SCRAM-SHA-1', makeCtx());
      if (msg === '') challenge(await server.step(Buffer.alloc(0)));
      await assert.rejects(server.step(Buffer.from(msg)), MALFORMED);
    });
  }

  it('rejects a client-final without a proof', async () => {
    await assert.rejects(withFinal(mech('SCRAM-SHA-1', makeCtx()), 'c=biws,r=NONCE'), MALFORMED);
  });

  it('rejects a client-final without channel binding', async () => {
    await assert.rejects(withFinal(mech('SCRAM-SHA-1', makeCtx()), `r=NONCE,${PROOF_SHA1}`), MALFORMED);
  });

  it('rejects a proof of the wrong length', async () => {
    await assert.rejects(withFinal(mech('SCRAM-SHA-256', makeCtx()), `c=biws,r=NONCE,${PROOF_SHA1}`), MALFORMED);
  });

  it('rejects a proof in bad base64 as incorrect-encoding', async () => {
    await assert.rejects(withFinal(mech('SCRAM-SHA-1', makeCtx()), 'c=biws,r=NONCE,p=!!!!'), BAD_ENCODING);
  });

  it('rejects channel binding in bad base64 as incorrect-encoding', async () => {
    await assert.rejects(withFinal(mech('SCRAM-SHA-1', makeCtx()), `c=biw,r=NONCE,${PROOF_SHA1}`), BAD_ENCODING);
  });

  it('rejects a client-final with another nonce', async () => {
    await assert.rejects(withFinal(mech('SCRAM-SHA-1', makeCtx()), `c=biws,r=abcdef,${PROOF_SHA1}`), NOT_AUTHORIZED);
  });

  it('refuses further steps after a failure', async () => {
    const server = mech('SCRAM-SHA-1', makeCtx());
    await assert.rejects(server.step(Buffer.from('n,,r=abc')), MALFORMED);
    await assert.rejects(server.step(Buffer.from('n,,n=juliet,r=abc')), MALFORMED);
  });

  it('refuses further steps after success', async () => {
    const server = mech('SCRAM-SHA-1', makeCtx());
    await exchange(server, new ScramClient('SHA-1', 'juliet', 'r0meo!'));
    await assert.rejects(server.step(Buffer.from('c=biws')), MALFORMED);
  });
});

describe('PLAIN server', () => {
  it('authenticates a valid user', async () => {
    const result = await mech('PLAIN', makeCtx()).step(plainMessage('juliet', 'r0meo!'));
    assert.deepEqual(result, { done: true, username: 'juliet' });
  });

  it('returns the authzid when one is sent', async () => {
    const result = await mech('PLAIN', makeCtx()).step(plainMessage('juliet', 'r0meo!', 'admin@example.com'));
    assert.deepEqual(result, { done: true, username: 'juliet', authzid: 'admin@example.com' });
  });

  it('rejects a wrong password', async () => {
    await assert.rejects(mech('PLAIN', makeCtx()).step(plainMessage('juliet', 'nope')), NOT_AUTHORIZED);
  });

  it('rejects an unknown user', async () => {
    await assert.rejects(mech('PLAIN', makeCtx()).step(plainMessage('romeo', 'r0meo!')), NOT_AUTHORIZED);
  });

  it('passes the password to the context prepared with OpaqueString', async () => {
    const ctx = makeCtx({ users: { juliet: 'caf\u00e9' } });
    const result = await mech('PLAIN', ctx).step(Buffer.from('\0juliet\0cafe\u0301'));
    assert.equal(result.done, true);
    assert.deepEqual(ctx.plainCalls, [['juliet', 'caf\u00e9']]);
  });

  it('answers an empty initial response with an empty challenge, then proceeds', async () => {
    const server = mech('PLAIN', makeCtx());
    assert.equal(challenge(await server.step(Buffer.alloc(0))).length, 0);
    assert.equal((await server.step(plainMessage('juliet', 'r0meo!'))).done, true);
  });

  const bad: Array<[string, Buffer]> = [
    ['a message without NUL', Buffer.from('juliet')],
    ['a message with one NUL', Buffer.from('juliet\0r0meo!')],
    ['a message with three NULs', Buffer.from('\0juliet\0r0\0meo!')],
    ['an empty authcid', Buffer.from('admin\0\0r0meo!')],
    ['an empty password', Buffer.from('\0juliet\0')],
    ['a field over 1024 bytes', Buffer.from(`\0juliet\0${'x'.repeat(1025)}`)],
    ['an authzid over 1024 bytes', Buffer.from(`${'x'.repeat(1025)}\0juliet\0pw`)],
    ['invalid UTF-8', Buffer.concat([Buffer.from('\0juliet\0'), Buffer.from([0xff, 0xfe])])],
    ['an empty second response', Buffer.alloc(0)],
  ];
  for (const [what, msg] of bad) {
    it(`rejects ${what} as malformed-request`, async () => {
      const server = mech('PLAIN', makeCtx());
      if (msg.length === 0) challenge(await server.step(msg));
      await assert.rejects(server.step(msg), MALFORMED);
    });
  }

  it('accepts fields of exactly 1024 bytes', () => {
    const pw = 'x'.repeat(1024);
    assert.deepEqual(parsePlain(Buffer.from(`${'a'.repeat(1024)}\0${'u'.repeat(1024)}\0${pw}`)).passwd, pw);
  });

  it('rejects a password OpaqueString refuses as not-authorized', async () => {
    const ctx = makeCtx();
    await assert.rejects(mech('PLAIN', ctx).step(Buffer.from('\0juliet\0bad\u0007pw')), NOT_AUTHORIZED);
    assert.deepEqual(ctx.plainCalls, []);
  });
});

describe('mechanism selection', () => {
  it('offers every mechanism over TLS with channel binding, strongest first', () => {
    assert.deepEqual(
      serverMechanismNames({ isSecure: true, allowPlainInsecure: false, channelBindingTypes: ['tls-exporter'] }),
      ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'],
    );
  });

  it('offers no -PLUS mechanism without a supported channel binding type', () => {
    assert.deepEqual(
      serverMechanismNames({ isSecure: true, allowPlainInsecure: false, channelBindingTypes: ['tls-unique'] }),
      ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'],
    );
  });

  it('offers no PLAIN and no -PLUS without TLS', () => {
    assert.deepEqual(
      serverMechanismNames({ isSecure: false, allowPlainInsecure: false, channelBindingTypes: ['tls-exporter'] }),
      ['SCRAM-SHA-256', 'SCRAM-SHA-1'],
    );
  });

  it('offers PLAIN without TLS when allowed', () => {
    const names = serverMechanismNames({ isSecure: false, allowPlainInsecure: true, channelBindingTypes: [] });
    assert.ok(names.includes('PLAIN'));
  });

  it('returns null for an unknown mechanism name', () => {
    assert.equal(createServerMechanism('DIGEST-MD5', makeCtx()), null);
    assert.equal(createServerMechanism('scram-sha-1', makeCtx()), null);
    assert.equal(createServerMechanism('SCRAM-SHA-512', makeCtx()), null);
  });

  it('lists the channel binding types the connection supports, tls-exporter first', () => {
    const ctx = makeCtx({ cb: { 'tls-server-end-point': END_POINT, 'tls-exporter': EXPORTER } });
    assert.deepEqual(supportedChannelBindingTypes(ctx), ['tls-exporter', 'tls-server-end-point']);
    assert.deepEqual(supportedChannelBindingTypes(makeCtx()), []);
  });

  it('builds the XEP-0440 stream feature', () => {
    const el = channelBindingFeature(['tls-exporter', 'tls-server-end-point']);
    assert.equal(el.name, 'sasl-channel-binding');
    assert.equal(el.attrs.xmlns, 'urn:xmpp:sasl-cb:0');
    assert.deepEqual(
      el.getChildren('channel-binding').map((c) => c.attrs.type),
      ['tls-exporter', 'tls-server-end-point'],
    );
  });
});
