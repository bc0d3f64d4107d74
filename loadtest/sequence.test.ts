import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowTracker } from './sequence.js';

test('in-order delivery counts every message once', () => {
  const f = new FlowTracker();
  for (let i = 0; i < 10; i++) f.receive(i);
  assert.deepEqual([f.unique, f.duplicates, f.outOfOrder], [10, 0, 0]);
});

test('gaps filled later count as out of order, repeats as duplicates', () => {
  const f = new FlowTracker();
  for (const s of [0, 1, 3, 4, 2, 4, 1, 5]) f.receive(s);
  assert.equal(f.unique, 6);
  assert.equal(f.outOfOrder, 1);
  assert.equal(f.duplicates, 2);
});
