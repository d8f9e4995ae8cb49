import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCode } from '../observe/errors.js';
import { FieldErrors } from './field-errors.js';
import { dns1123LabelErrors, dns1123SubdomainErrors, qualifiedNameErrors, validateLabels } from './names.js';

test('DNS-1123 names', () => {
  assert.deepEqual(dns1123LabelErrors('web-1'), []);
  assert.equal(dns1123LabelErrors('Web').length, 1);
  assert.equal(dns1123LabelErrors('a.b').length, 1);
  assert.equal(dns1123LabelErrors('x'.repeat(64)).length, 1);
  assert.deepEqual(dns1123SubdomainErrors('a.b-c.d'), []);
  assert.equal(dns1123SubdomainErrors('-a').length, 1);
});

test('label keys and values', () => {
  assert.deepEqual(qualifiedNameErrors('app.kubernetes.io/name'), []);
  assert.ok(qualifiedNameErrors('a/b/c').length > 0);
  assert.ok(qualifiedNameErrors('bad key').length > 0);
  const errs = new FieldErrors();
  validateLabels({ ok: 'yes', 'bad key': 'v', k: 'bad value!' }, 'metadata.labels', errs);
  assert.equal(errs.causes.length, 2);
  assert.throws(
    () => errs.throwIfAny('Pod', 'p'),
    (e) => isCode(e, 'Invalid') && /^Pod "p" is invalid: \[metadata.labels: Invalid value/.test((e as Error).message),
  );
});
