import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import bcrypt from 'bcryptjs';
import { compileQuery } from './portal-db.js';
import { verifyPasswordHash } from './auth-sources.js';
import { normalizeFriends } from './friend-sources.js';
import { parseConfig } from '../config/load.js';

const log = pino({ level: 'silent' });

test('placeholders become ? in order; quoted text, comments and :: are left alone', () => {
  assert.deepEqual(compileQuery("SELECT ':user', x::int FROM t WHERE a = :user AND b = :password -- :user", ['user', 'password']), {
    sql: "SELECT ':user', x::int FROM t WHERE a = ? AND b = ? -- :user",
    names: ['user', 'password'],
  });
  assert.deepEqual(compileQuery('SELECT 1 FROM t WHERE a = :user OR b = :user', ['user']).names, ['user', 'user']);
});

test('an unknown placeholder is an error naming it', () => {
  assert.throws(() => compileQuery('SELECT 1 WHERE a = :login', ['user']), /unknown placeholder :login/);
});

test('password hashes: bcrypt $2a$/$2b$/$2y$, sha256:<hex>, sha256:<salt>:<hex>; other forms refused', async () => {
  const b = bcrypt.hashSync('pw', 4);
  assert.equal(await verifyPasswordHash('pw', b), true);
  assert.equal(await verifyPasswordHash('pw', b.replace('$2b$', '$2y$')), true);
  assert.equal(await verifyPasswordHash('pw', b.replace('$2b$', '$2a$')), true);
  assert.equal(await verifyPasswordHash('nope', b), false);
  const hex = (s: string) => createHash('sha256').update(s).digest('hex');
  assert.equal(await verifyPasswordHash('pw', `sha256:${hex('pw')}`), true);
  assert.equal(await verifyPasswordHash('pw', `sha256:${hex('pw').toUpperCase()}`), true);
  assert.equal(await verifyPasswordHash('pw', `sha256:s4lt:${hex('s4ltpw')}`), true);
  assert.equal(await verifyPasswordHash('pw', `sha256:s4lt:${hex('pw')}`), false);
  assert.equal(await verifyPasswordHash('pw', 'pw'), false, 'a plain text column is not a hash');
  assert.equal(await verifyPasswordHash('pw', `md5:${hex('pw')}`, log), false);
});

test('friends: localparts and bare JIDs of the domain, deduplicated; invalid ones and the user skipped', () => {
  const out = normalizeFriends(
    'alice',
    'example.test',
    [{ user: 'Bob', name: 'Bob', groups: ['A', 'A', ' ', 'B'] }, { user: 'bob@example.test' }, { user: 'alice' }, { user: 'x@other.test' }, { user: 'a b@' }, { user: 42 }, { user: null }, { user: 'carol', groups: 'X, Y' }],
    log,
  );
  assert.deepEqual(out, [
    { jid: 'bob@example.test', name: null, groups: [] },
    { jid: '42@example.test', name: null, groups: [] },
    { jid: 'carol@example.test', name: null, groups: ['X', 'Y'] },
  ]);
});

test('config: portal sources need their keys; existsUrl/existsQuery only with their source', () => {
  assert.throws(() => parseConfig({ portal: { auth: { source: 'http' } } }), /portal\.auth\.url/);
  assert.throws(() => parseConfig({ portal: { roster: { source: 'sql', query: 'SELECT 1' } } }), /portal\.db/);
  assert.throws(() => parseConfig({ portal: { auth: { existsQuery: 'SELECT 1' } } }), /portal\.auth\.existsQuery/);
  assert.throws(() => parseConfig({ portal: { auth: { source: 'http', url: 'http://p/auth', existsUrl: 'ftp://x' } } }), /portal\.auth\.existsUrl/);
});
