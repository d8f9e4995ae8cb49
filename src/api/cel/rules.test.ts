import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FieldErrors } from '../field-errors.js';
import type { OpenApiSchema } from '../openapi-schema.js';
import { compileRules, evaluateRules } from './rules.js';
import { escapeProperty, unescapeProperty } from './values.js';

/** One rule on `spec` of a schema whose spec has `props`; the errors of `spec` (and `old`), as lines. */
function check(rule: string, props: Record<string, OpenApiSchema>, spec: unknown, old?: unknown): string[] {
  const schema: OpenApiSchema = { type: 'object', properties: { spec: { type: 'object', properties: props, 'x-kubernetes-validations': [{ rule }] } } };
  const compileErrs = new FieldErrors();
  compileRules(schema, 'schema', compileErrs);
  assert.deepEqual(compileErrs.causes, [], rule);
  const errs = new FieldErrors();
  evaluateRules(compileRules(schema) as NonNullable<ReturnType<typeof compileRules>>, { spec }, old === undefined ? undefined : { spec: old }, errs);
  return errs.causes.map((c) => `${c.field}: ${c.message}`);
}

test('property names escape to CEL identifiers and back, as upstream', () => {
  for (const [name, escaped] of [
    ['foo', 'foo'],
    ['a-b', 'a__dash__b'],
    ['x.y/z', 'x__dot__y__slash__z'],
    ['a__b', 'a__underscores__b'],
    ['namespace', '__namespace__'],
  ]) {
    assert.equal(escapeProperty(name), escaped);
    assert.equal(unescapeProperty(escaped), name);
  }
  assert.equal(escapeProperty('1abc'), undefined);
  assert.deepEqual(check("self.__dash__ok == 'y' && self.a__dash__b == 1", { '-ok': { type: 'string' }, 'a-b': { type: 'integer' } }, { '-ok': 'y', 'a-b': 1 }), []);
});

test('values are typed by the schema: int, double, durations, timestamps and bytes', () => {
  const props: Record<string, OpenApiSchema> = {
    n: { type: 'integer' },
    d: { type: 'number' },
    every: { type: 'string', format: 'duration' },
    at: { type: 'string', format: 'date-time' },
    raw: { type: 'string', format: 'byte' },
  };
  const spec = { n: 3, d: 1.5, every: '1h30m', at: '2025-06-01T00:00:00Z', raw: Buffer.from('hi').toString('base64') };
  assert.deepEqual(check("self.n / 2 == 1 && self.d * 2.0 == 3.0 && self.every == duration('90m') && self.at > timestamp('2025-01-01T00:00:00Z') && self.raw == b'hi'", props, spec), []);
});

test("Kubernetes' lists and regex libraries", () => {
  const props: Record<string, OpenApiSchema> = { l: { type: 'array', items: { type: 'integer' } }, s: { type: 'string' } };
  const spec = { l: [1, 2, 5], s: 'id-12 id-345' };
  for (const rule of [
    'self.l.isSorted() && self.l.sum() == 8 && self.l.min() == 1 && self.l.max() == 5',
    'self.l.indexOf(2) == 1 && self.l.lastIndexOf(9) == -1',
    "self.s.find('[0-9]+') == '12' && self.s.findAll('id-[0-9]+') == ['id-12', 'id-345'] && self.s.findAll('[0-9]', 2).size() == 2",
  ]) {
    assert.deepEqual(check(rule, props, spec), [], rule);
  }
  assert.deepEqual(check('self.l.isSorted()', props, { l: [3, 1] }), ['spec: Invalid value: "object": failed rule: self.l.isSorted()']);
});

test('transition rules run only on updates, and unchanged values are not held to new rules', () => {
  const props: Record<string, OpenApiSchema> = { n: { type: 'integer' } };
  assert.deepEqual(check('self.n >= oldSelf.n', props, { n: 1 }), [], 'no old value: skipped');
  assert.deepEqual(check('self.n >= oldSelf.n', props, { n: 1 }, { n: 2 }), ['spec: Invalid value: "object": failed rule: self.n >= oldSelf.n']);
  assert.deepEqual(check('self.n > 5', props, { n: 1 }, { n: 1 }), [], 'ratcheted');
  assert.deepEqual(check('self.n > 5', props, { n: 1 }, { n: 2 }), ['spec: Invalid value: "object": failed rule: self.n > 5']);
});

test('the cost estimate refuses unbounded nested walks and accepts bounded ones', () => {
  const compile = (l: OpenApiSchema) => {
    const errs = new FieldErrors();
    compileRules({ type: 'object', properties: { l }, 'x-kubernetes-validations': [{ rule: 'self.l.all(x, self.l.exists(y, x == y))' }] }, 's', errs);
    return errs.causes.map((c) => c.message);
  };
  assert.match(compile({ type: 'array', items: { type: 'string' } })[0] ?? '', /estimated rule cost exceeds budget by factor of more than 100x/);
  assert.deepEqual(compile({ type: 'array', maxItems: 50, items: { type: 'string', maxLength: 100 } }), []);
});

test('a rule cheap enough in its schema but dear on the value at hand is stopped at the per-call limit', () => {
  const props: Record<string, OpenApiSchema> = { l: { type: 'array', items: { type: 'string' } } };
  assert.deepEqual(check('self.l.all(x, x.size() < 5)', props, { l: Array.from({ length: 1000 }, () => 'a') }), []);
  assert.deepEqual(check('self.l.all(x, x.size() < 5)', props, { l: Array.from({ length: 400_000 }, () => 'a') }), [
    `spec: Invalid value: "object": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: self.l.all(x, x.size() < 5)`,
  ]);
});
