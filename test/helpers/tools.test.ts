import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCi, requireTool } from './tools.js';

test('an available tool never skips, with CI set or not', () => {
  assert.equal(requireTool('haproxy', true, 'apt-get install haproxy', {}), false);
  assert.equal(requireTool('haproxy', true, 'apt-get install haproxy', { CI: 'true' }), false);
});

test('a missing tool skips with its name and the hint outside CI', () => {
  const skip = requireTool('haproxy', false, 'apt-get install haproxy', {});
  assert.equal(typeof skip, 'string');
  assert.match(skip as string, /haproxy is not installed/);
  assert.match(skip as string, /apt-get install haproxy/);
  // Only CI=true is CI: other values (as a developer may set) still skip.
  assert.equal(typeof requireTool('haproxy', false, 'h', { CI: 'false' }), 'string');
  assert.equal(typeof requireTool('haproxy', false, 'h', { CI: '1' }), 'string');
});

test('a missing tool under CI=true fails, naming the tool and the hint', () => {
  assert.throws(() => requireTool('redis-server', false, 'apt-get install redis-server', { CI: 'true' }), /redis-server is not installed.*apt-get install redis-server.*CI=true/);
});

test('isCi is true only for CI=true', () => {
  assert.equal(isCi({ CI: 'true' }), true);
  assert.equal(isCi({}), false);
  assert.equal(isCi({ CI: '' }), false);
});
