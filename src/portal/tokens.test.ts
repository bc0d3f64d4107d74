import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { bearerMatches, looksLikeToken, requestSignatureMatches, signLoginToken, signRequest, verifyLoginToken, verifyRequestSignature } from './tokens.js';
import { EVENT_TYPES } from './events.js';

const SECRET = 'a-secret-of-the-portal-123';
const now = Date.UTC(2026, 10, 27, 12, 0, 0);
const t = Math.floor(now / 1000);

test('a login token is good for its user and domain until it expires', () => {
  const token = signLoginToken(SECRET, 'example.com', 'alice', t + 300);
  assert.ok(looksLikeToken(token));
  assert.match(token, /^pt1\.\d+\.[A-Za-z0-9_-]{43}$/);
  const opts = { maxTtlSeconds: 3600, now };
  assert.equal(verifyLoginToken(SECRET, 'example.com', 'alice', token, opts), 'ok');
  assert.equal(verifyLoginToken(SECRET, 'example.com', 'bob', token, opts), 'bad-signature');
  assert.equal(verifyLoginToken(SECRET, 'other.example', 'alice', token, opts), 'bad-signature');
  assert.equal(verifyLoginToken('another-secret-xxxxxxxx', 'example.com', 'alice', token, opts), 'bad-signature');
  assert.equal(verifyLoginToken(SECRET, 'example.com', 'alice', token, { ...opts, now: now + 301_000 }), 'expired');
  assert.equal(verifyLoginToken(SECRET, 'example.com', 'alice', signLoginToken(SECRET, 'example.com', 'alice', t + 7200), opts), 'too-long');
  // The expiry is covered by the signature.
  const stretched = token.replace(`pt1.${t + 300}.`, `pt1.${t + 900}.`);
  assert.equal(verifyLoginToken(SECRET, 'example.com', 'alice', stretched, opts), 'bad-signature');
  for (const bad of ['', 'pt1', 'pt1..', `pt1.${t}.short`, `pt2.${t + 300}.${token.split('.')[2]}`, token + 'x']) {
    assert.equal(verifyLoginToken(SECRET, 'example.com', 'alice', bad, opts), 'malformed', bad);
  }
});

test('a request signature covers method, path, timestamp and body', () => {
  const sig = signRequest(SECRET, 'POST', '/api/v1/events', t, '{"a":1}');
  assert.match(sig, /^v1=[0-9a-f]{64}$/);
  const body = Buffer.from('{"a":1}');
  assert.equal(requestSignatureMatches(SECRET, 'POST', '/api/v1/events', t, body, sig), true);
  assert.equal(requestSignatureMatches(SECRET, 'POST', '/api/v1/prebind', t, body, sig), false);
  assert.equal(requestSignatureMatches(SECRET, 'POST', '/api/v1/events', t + 1, body, sig), false);
  assert.equal(requestSignatureMatches(SECRET, 'POST', '/api/v1/events', t, Buffer.from('{"a":2}'), sig), false);
  assert.equal(requestSignatureMatches(SECRET, 'PUT', '/api/v1/events', t, body, sig), false);
  assert.equal(requestSignatureMatches(SECRET, 'POST', '/api/v1/events', t, body, sig.slice(0, -1)), false);
  assert.equal(bearerMatches(`Bearer ${SECRET}`, SECRET), true);
  assert.equal(bearerMatches(`bearer   ${SECRET}  `, SECRET), true);
  assert.equal(bearerMatches(`Bearer ${SECRET}x`, SECRET), false);
  assert.equal(bearerMatches(undefined, SECRET), false);
  assert.equal(bearerMatches(SECRET, SECRET), false);
});

test('docs/openapi.yaml describes every event type and endpoint', () => {
  const spec = parse(readFileSync(new URL('../../../docs/openapi.yaml', import.meta.url), 'utf8')) as { paths: Record<string, unknown> };
  assert.deepEqual(Object.keys(spec.paths).sort(), ['/api/v1/events', '/api/v1/prebind', '/api/v1/tokens']);
  const text = readFileSync(new URL('../../../docs/openapi.yaml', import.meta.url), 'utf8');
  const doc = readFileSync(new URL('../../../docs/api.md', import.meta.url), 'utf8');
  for (const type of EVENT_TYPES) {
    assert.ok(text.includes(type), `openapi.yaml lacks ${type}`);
    assert.ok(doc.includes(`\`${type}\``), `api.md lacks ${type}`);
  }
});

test('a request signature is accepted only in its canonical form, and the verified MAC is returned', () => {
  const t = 1_700_000_000;
  const body = Buffer.from('{"a":1}');
  const sig = signRequest(SECRET, 'POST', '/api/v1/tokens', t, body);
  assert.deepEqual(verifyRequestSignature(SECRET, 'POST', '/api/v1/tokens', t, body, sig), Buffer.from(sig.slice(3), 'hex'));
  for (const v of [`${sig}\u00a0`, `\u00a0${sig}`, ` ${sig}`, `${sig}\n`, `${sig}\u2003`, sig.toUpperCase(), `v1=${sig.slice(3).toUpperCase()}`, `${sig},${sig}`, `v1=${sig.slice(3)}00`]) {
    assert.equal(verifyRequestSignature(SECRET, 'POST', '/api/v1/tokens', t, body, v), null, JSON.stringify(v));
  }
});
