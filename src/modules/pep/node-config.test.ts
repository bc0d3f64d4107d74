import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseElement } from '../../xml/parse.js';
import { StanzaError } from '../../xmpp/errors.js';
import { applyFields, configFromJson, configToJson, defaultConfig, meetsPreconditions, readForm } from './node-config.js';

const form = (fields: Record<string, string>, type = 'http://jabber.org/protocol/pubsub#publish-options') =>
  parseElement(
    `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${type}</value></field>${Object.entries(fields)
      .map(([k, v]) => `<field var='${k}'><value>${v}</value></field>`)
      .join('')}</x>`,
  );

test('publish-options shape a new node; "max" means the service limit', () => {
  const fields = readForm(form({ 'pubsub#access_model': 'open', 'pubsub#max_items': 'max', 'pubsub#persist_items': 'true', 'pubsub#unknown': 'x' }), 'http://jabber.org/protocol/pubsub#publish-options');
  const c = applyFields(defaultConfig(20), fields, 256, false);
  assert.equal(c.accessModel, 'open');
  assert.equal(c.maxItems, 256);
  assert.equal(c.persistItems, true);
});

test('an existing node meets the preconditions only when the known fields match', () => {
  const node = { ...defaultConfig(20), accessModel: 'open' as const };
  assert.equal(meetsPreconditions(node, new Map([['pubsub#access_model', ['open']], ['pubsub#other', ['1']]]), 256), true);
  assert.equal(meetsPreconditions(node, new Map([['pubsub#access_model', ['presence']]]), 256), false);
  assert.equal(meetsPreconditions(node, new Map([['pubsub#access_model', ['bogus']]]), 256), false);
});

test('bad values are not-acceptable; a form of another FORM_TYPE is a bad request', () => {
  assert.throws(() => applyFields(defaultConfig(20), new Map([['pubsub#max_items', ['0']]]), 256, false), (e: unknown) => e instanceof StanzaError && e.condition === 'not-acceptable');
  assert.throws(() => applyFields(defaultConfig(20), new Map([['pubsub#max_items', ['1000']]]), 256, false), (e: unknown) => e instanceof StanzaError && e.condition === 'not-acceptable');
  assert.throws(() => applyFields(defaultConfig(20), new Map([['pubsub#access_model', ['roster']]]), 256, false), (e: unknown) => e instanceof StanzaError && e.condition === 'not-acceptable');
  assert.throws(() => applyFields(defaultConfig(20), new Map([['pubsub#x', ['1']]]), 256, true), (e: unknown) => e instanceof StanzaError && e.condition === 'not-acceptable');
  assert.throws(() => readForm(form({}, 'urn:other'), 'http://jabber.org/protocol/pubsub#publish-options'), (e: unknown) => e instanceof StanzaError && e.condition === 'bad-request');
});

test('a stored configuration round-trips, and bad stored values fall back to the defaults', () => {
  const c = { ...defaultConfig(20), accessModel: 'whitelist' as const, maxItems: 7, title: 't' };
  assert.deepEqual(configFromJson(configToJson(c), defaultConfig(20)), c);
  assert.deepEqual(configFromJson('{"accessModel":"nope","maxItems":-1}', defaultConfig(20)), defaultConfig(20));
  assert.deepEqual(configFromJson('not json', defaultConfig(20)), defaultConfig(20));
});
