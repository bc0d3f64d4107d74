import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker, type BreakerState } from './breaker.js';

/** A breaker on a clock the test moves by hand, recording its changes of state. */
function make(threshold = 3, cooldownMs = 1000) {
  const clock = { now: 0 };
  const breaker = new CircuitBreaker({ failureThreshold: threshold, cooldownMs, now: () => clock.now });
  const changes: BreakerState[] = [];
  breaker.onChange = (s) => changes.push(s);
  return { breaker, clock, changes };
}

function fail(b: CircuitBreaker, n: number): void {
  for (let i = 0; i < n; i++) b.failure();
}

test('it opens after the threshold of consecutive failures, not before', () => {
  const { breaker } = make(3);
  fail(breaker, 2);
  assert.equal(breaker.state, 'closed');
  assert.equal(breaker.allow(), true);
  breaker.failure();
  assert.equal(breaker.state, 'open');
  assert.equal(breaker.opens, 1);
});

test('an open breaker refuses everything during the cooldown', () => {
  const { breaker, clock } = make(3, 1000);
  fail(breaker, 3);
  for (const t of [0, 500, 999]) {
    clock.now = t;
    assert.equal(breaker.allow(), false, `at ${t} ms`);
  }
  assert.equal(breaker.state, 'open');
});

test('after the cooldown it lets exactly one trial through (half-open)', () => {
  const { breaker, clock } = make(3, 1000);
  fail(breaker, 3);
  clock.now = 1000;
  assert.equal(breaker.allow(), true, 'the trial');
  assert.equal(breaker.state, 'half-open');
  assert.equal(breaker.allow(), false, 'a second operation waits for the trial');
  assert.equal(breaker.allow(), false);
});

test('a successful trial closes the breaker', () => {
  const { breaker, clock } = make(3, 1000);
  fail(breaker, 3);
  clock.now = 1500;
  assert.equal(breaker.allow(), true);
  breaker.success();
  assert.equal(breaker.state, 'closed');
  assert.equal(breaker.allow(), true);
  assert.equal(breaker.allow(), true);
});

test('a failed trial opens it again for another cooldown', () => {
  const { breaker, clock } = make(3, 1000);
  fail(breaker, 3);
  clock.now = 1000;
  assert.equal(breaker.allow(), true);
  breaker.failure();
  assert.equal(breaker.state, 'open');
  assert.equal(breaker.opens, 2);
  clock.now = 1999;
  assert.equal(breaker.allow(), false, 'the cooldown starts again at the failed trial');
  clock.now = 2000;
  assert.equal(breaker.allow(), true);
});

test('a success resets the count of consecutive failures', () => {
  const { breaker } = make(3);
  fail(breaker, 2);
  breaker.success();
  fail(breaker, 2);
  assert.equal(breaker.state, 'closed');
  breaker.failure();
  assert.equal(breaker.state, 'open');
});

test('a released trial lets the next operation be the trial', () => {
  const { breaker, clock } = make(1, 100);
  breaker.failure();
  clock.now = 100;
  assert.equal(breaker.allow(), true);
  breaker.release();
  assert.equal(breaker.state, 'half-open');
  assert.equal(breaker.allow(), true);
});

test('onChange is called once per change of state', () => {
  const { breaker, clock, changes } = make(2, 100);
  fail(breaker, 5); // opens once; further failures while open are no change
  clock.now = 100;
  breaker.allow();
  breaker.failure();
  clock.now = 200;
  breaker.allow();
  breaker.success();
  breaker.success();
  assert.deepEqual(changes, ['open', 'half-open', 'open', 'half-open', 'closed']);
});
