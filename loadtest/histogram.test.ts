import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram } from './histogram.js';

test('percentiles are within a few percent of the exact values', () => {
  const h = new Histogram();
  for (let i = 1; i <= 10_000; i++) h.record(i / 10); // 0.1 .. 1000 ms
  for (const [p, exact] of [[50, 500], [95, 950], [99, 990]] as const) {
    const v = h.percentile(p);
    assert.ok(Math.abs(v - exact) / exact < 0.05, `p${p} = ${v}, exact ${exact}`);
  }
  assert.equal(h.max, 1000);
  assert.equal(h.count, 10_000);
});

test('merged histograms give the percentiles of the union', () => {
  const a = new Histogram();
  const b = new Histogram();
  for (let i = 0; i < 1000; i++) a.record(1);
  for (let i = 0; i < 1000; i++) b.record(100);
  const m = new Histogram();
  m.merge(a.toJSON());
  m.merge(b.toJSON());
  assert.equal(m.count, 2000);
  assert.ok(m.percentile(25) < 1.1);
  assert.ok(m.percentile(75) > 95);
});
