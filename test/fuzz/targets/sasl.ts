/**
 * Fuzz target: SASL exchanges on the server side (src/xmpp/sasl/server.ts).
 * - PLAIN with random bytes and with structured messages around a real account: every step
 *   resolves or rejects with a SaslFailure of a defined condition; success only for the
 *   account's exact name and password.
 * - SCRAM-SHA-1/-256 (with and without -PLUS): a real client's client-first and
 *   client-final messages mutated field by field (dropped, duplicated, swapped, values
 *   replaced, characters flipped, extensions added, GS2 flag changed, truncated, random
 *   bytes): never a success unless both messages are the client's own, byte for byte;
 *   unmutated exchanges always succeed; no other exception escapes.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SaslFailure } from '../../../src/xmpp/errors.js';
import { ScramClient, plainMessage } from '../../../src/xmpp/sasl/client.js';
import { deriveScramCredentials, type ScramCredentials, type ScramHash } from '../../../src/xmpp/sasl/scram.js';
import { createServerMechanism, type SaslServerContext, type SaslStep } from '../../../src/xmpp/sasl/server.js';
import { preparePassword } from '../../../src/xmpp/sasl/prep.js';
import { bytes, type FuzzTarget } from '../harness.js';

const USER = 'juliet';
const PASSWORD = 'r0meo!\u00e9';
const EXPORTER = Buffer.from('exporter-keying-material-0123456789abcdef');
const CONDITIONS = new Set(['aborted', 'account-disabled', 'credentials-expired', 'encryption-required', 'incorrect-encoding', 'invalid-authzid', 'invalid-mechanism', 'malformed-request', 'mechanism-too-weak', 'not-authorized', 'temporary-auth-failure']);

const creds = new Map<ScramHash, Promise<ScramCredentials>>();
function credsFor(hash: ScramHash): Promise<ScramCredentials> {
  let c = creds.get(hash);
  if (!c) creds.set(hash, (c = deriveScramCredentials(PASSWORD, hash, 4096)));
  return c;
}

function context(): SaslServerContext {
  return {
    channelBinding: (type) => (type === 'tls-exporter' ? EXPORTER : null),
    getScramCredentials: async (username, hash) => (username === USER ? credsFor(hash) : null),
    verifyPlain: async (username, password) => username === USER && password === preparePassword(PASSWORD),
  };
}

/** Runs a step; a rejection must be a SaslFailure with a defined condition. */
async function step(mech: { step(b: Buffer): Promise<SaslStep> }, msg: Buffer): Promise<SaslStep | SaslFailure> {
  try {
    return await mech.step(msg);
  } catch (e) {
    assert.ok(e instanceof SaslFailure, `not a SaslFailure: ${String((e as Error)?.stack ?? e)}`);
    assert.ok(CONDITIONS.has(e.condition), `undefined condition ${e.condition}`);
    return e;
  }
}

// ------------------------------------------------------------------ PLAIN

const plainField = fc.oneof(
  fc.constantFrom('', USER, 'Juliet', 'juliet ', PASSWORD, 'r0meo!', 'r0meo!e\u0301', 'admin', '\u0000', 'x'.repeat(1100)),
  fc.string({ maxLength: 10 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
);
const plainArb = fc.oneof(
  bytes(120),
  fc.tuple(plainField, plainField, plainField).map(([z, c, p]) => [...Buffer.from(`${z}\0${c}\0${p}`)]),
  fc.tuple(plainField, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([z, at, v]) => {
    const b = [...plainMessage(USER, PASSWORD, z || undefined)];
    b[at % b.length] = v;
    return b;
  }),
);

// ------------------------------------------------------------------ SCRAM

type Mutation =
  | { m: 'none' }
  | { m: 'drop' | 'dup'; i: number }
  | { m: 'swap'; i: number; j: number }
  | { m: 'value'; i: number; v: string }
  | { m: 'flip'; i: number; at: number; c: number }
  | { m: 'insert'; i: number; v: string }
  | { m: 'truncate'; at: number }
  | { m: 'append'; v: string }
  | { m: 'bytes'; b: number[] };

const scramValue = fc.oneof(
  fc.constantFrom('', '=', '==', 'biws', 'eSws', 'cD10bHMtZXhwb3J0ZXIsLA==', 'juliet', 'Juliet', 'jul=2Ciet', 'jul=3Diet', '=ZZ', 'AAAA', '0', '-1', '4096', 'tls-exporter', 'tls-unique', 'n', 'y', 'p=tls-exporter'),
  fc.string({ maxLength: 8 }),
  fc.base64String({ maxLength: 48 }),
);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ m: 'none' as const }) },
  fc.record({ m: fc.constantFrom('drop' as const, 'dup' as const), i: fc.nat(8) }),
  fc.record({ m: fc.constant('swap' as const), i: fc.nat(8), j: fc.nat(8) }),
  fc.record({ m: fc.constant('value' as const), i: fc.nat(8), v: scramValue }),
  fc.record({ m: fc.constant('flip' as const), i: fc.nat(8), at: fc.nat(), c: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ m: fc.constant('insert' as const), i: fc.nat(8), v: fc.tuple(fc.constantFrom('a', 'n', 'm', 'r', 'c', 'p', 'x', 'e', 'v', 's', 'i', 'ä'), scramValue).map(([k, v]) => `${k}=${v}`) }),
  fc.record({ m: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ m: fc.constant('append' as const), v: fc.constantFrom(',', ',x=1', '\0', ',p=AAAA', '\u00ff') }),
  fc.record({ m: fc.constant('bytes' as const), b: bytes(60) }),
);

function mutate(msg: Buffer, mu: Mutation): Buffer {
  if (mu.m === 'none') return msg;
  if (mu.m === 'bytes') return Buffer.from(mu.b);
  if (mu.m === 'truncate') return msg.subarray(0, mu.at % (msg.length + 1));
  if (mu.m === 'append') return Buffer.concat([msg, Buffer.from(mu.v)]);
  const f = msg.toString('latin1').split(',');
  const i = mu.i % f.length;
  switch (mu.m) {
    case 'drop':
      f.splice(i, 1);
      break;
    case 'dup':
      f.splice(i, 0, f[i]!);
      break;
    case 'swap': {
      const j = mu.j % f.length;
      [f[i], f[j]] = [f[j]!, f[i]!];
      break;
    }
    case 'value': {
      const eq = f[i]!.indexOf('=');
      f[i] = eq < 0 ? mu.v : f[i]!.slice(0, eq + 1) + Buffer.from(mu.v).toString('latin1');
      break;
    }
    case 'flip': {
      const s = f[i]!;
      const at = s.length === 0 ? 0 : mu.at % s.length;
      f[i] = s.slice(0, at) + String.fromCharCode(mu.c) + s.slice(at + 1);
      break;
    }
    case 'insert':
      f.splice(i, 0, Buffer.from(mu.v).toString('latin1'));
      break;
  }
  return Buffer.from(f.join(','), 'latin1');
}

const scramArb = fc.record({
  hash: fc.constantFrom<ScramHash>('SHA-1', 'SHA-256'),
  plus: fc.boolean(),
  user: fc.constantFrom(USER, USER, USER, 'romeo', 'Juliet'),
  password: fc.constantFrom(PASSWORD, PASSWORD, PASSWORD, 'r0meo!', ''),
  authzid: fc.constantFrom(undefined, 'juliet@example.test', 'x,y=z'),
  first: mutation,
  final: mutation,
});

type ScramInput = typeof scramArb extends fc.Arbitrary<infer T> ? T : never;

async function scramExchange(input: ScramInput): Promise<void> {
  const name = `SCRAM-${input.hash}${input.plus ? '-PLUS' : ''}`;
  const server = createServerMechanism(name, context(), { plusAdvertised: true, fakeIterations: 4096 })!;
  const client = new ScramClient(input.hash, input.user, input.password || 'x', {
    ...(input.plus ? { cbType: 'tls-exporter', cbData: EXPORTER } : { supportsPlus: false }),
    ...(input.authzid ? { authzid: input.authzid } : {}),
  });
  const first = client.first();
  const sentFirst = mutate(first, input.first);
  const r1 = await step(server, sentFirst);
  if (r1 instanceof SaslFailure) return;
  assert.equal(r1.done, false, 'SCRAM succeeded on the client-first message');
  if (r1.done) return;
  let final: Buffer;
  try {
    final = await client.final(r1.challenge);
  } catch (e) {
    // The client refuses a server-first that echoes a nonce it did not send (mutated).
    assert.ok(e instanceof SaslFailure, String(e));
    assert.ok(!sentFirst.equals(first), 'the client refused the answer to its own client-first');
    const nonce = /r=([^,]*)/.exec(r1.challenge.toString())?.[1] ?? '';
    final = Buffer.from(`c=biws,r=${nonce},p=${Buffer.alloc(32).toString('base64')}`);
  }
  const sentFinal = mutate(final, input.final);
  const r2 = await step(server, sentFinal);
  const genuine = sentFirst.equals(first) && sentFinal.equals(final) && input.user === USER && input.password === PASSWORD;
  if (!(r2 instanceof SaslFailure) && r2.done) {
    assert.ok(genuine, `SCRAM accepted a mutated or wrong exchange: ${sentFirst.toString('latin1')} / ${sentFinal.toString('latin1')}`);
    client.verify(r2.additionalData!);
  } else {
    assert.ok(!genuine, `SCRAM refused a genuine exchange: ${r2 instanceof SaslFailure ? r2.message : 'not done'}`);
  }
  // Nothing more is accepted once the exchange ended.
  const r3 = await step(server, final);
  assert.ok(r3 instanceof SaslFailure, 'a step after the end was accepted');
}

export const saslTarget: FuzzTarget = {
  name: 'sasl',
  properties: [
    {
      name: 'PLAIN with any bytes succeeds only with the right name and password, else a defined SaslFailure',
      arbitrary: plainArb,
      check: async (input: number[]) => {
        const mech = createServerMechanism('PLAIN', context())!;
        const msg = Buffer.from(input);
        const r = await step(mech, msg);
        if (!(r instanceof SaslFailure) && r.done) {
          const [, c, p] = msg.toString('utf8').split('\0');
          assert.equal(c, USER);
          assert.equal(preparePassword(p!), preparePassword(PASSWORD));
        }
      },
      runs: 800,
    },
    {
      name: 'SCRAM messages mutated field by field are never accepted, and fail with a defined SaslFailure',
      arbitrary: scramArb,
      check: async (input: ScramInput) => scramExchange(input),
      runs: 400,
    },
  ],
};
