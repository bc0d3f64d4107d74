import { test } from 'node:test';
import assert from 'node:assert/strict';
import { until, within } from './until.js';

test('until returns once the condition holds, and fails naming it when it never does', async () => {
  let n = 0;
  await until('n reaches 3', () => ++n >= 3);
  assert.equal(n, 3);
  await assert.rejects(until('never', () => false, 50), /timed out waiting for never/);
});

test('within gives the value of a promise that settles, and fails one that does not', async () => {
  assert.equal(await within('quick', Promise.resolve(7)), 7);
  await assert.rejects(within('stuck', new Promise(() => undefined), 50), /stuck: nothing after 50 ms/);
  await assert.rejects(within('fails', Promise.reject(new Error('boom'))), /boom/);
});
