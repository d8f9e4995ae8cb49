import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCode } from '../observe/errors.js';
import { bytes, milliCpu, parseQuantity } from './quantity.js';

test('quantities', () => {
  assert.equal(milliCpu('100m'), 100);
  assert.equal(milliCpu('1.5'), 1500);
  assert.equal(milliCpu(2), 2000);
  assert.equal(bytes('128Mi'), 128 * 1024 * 1024);
  assert.equal(bytes('1G'), 1e9);
  assert.equal(parseQuantity('2e3'), 2000);
  assert.equal(bytes('1.5Gi'), 1.5 * 2 ** 30);
  assert.throws(() => parseQuantity('ten'), (e) => isCode(e, 'BadRequest'));
});
