import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FieldErrors } from './field-errors.js';
import type { OpenApiSchema } from './openapi-schema.js';
import { applyDefaults, checkSchema, pruneUnknown, validateObject } from './structural-schema.js';

const messages = (errs: FieldErrors) => errs.causes.map((c) => `${c.field}: ${c.message}`);

test('controller-gen shapes are structural: int-or-string alternatives, metadata at the root', () => {
  const schema = {
    type: 'object',
    properties: {
      metadata: { type: 'object' },
      spec: {
        type: 'object',
        properties: {
          port: { anyOf: [{ type: 'integer' }, { type: 'string' }], 'x-kubernetes-int-or-string': true },
          size: { anyOf: [{ type: 'integer' }, { type: 'string' }], pattern: '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$', 'x-kubernetes-int-or-string': true },
        },
      },
    },
  };
  const errs = new FieldErrors();
  checkSchema(schema, 'schema', errs);
  assert.deepEqual(messages(errs), []);
  const obj = { apiVersion: 'x.io/v1', kind: 'X', metadata: { name: 'a', namespace: 'n', labels: { a: 'b' } }, spec: { port: 'http', size: '1Gi', extra: 1 } };
  assert.deepEqual(pruneUnknown(schema as OpenApiSchema, obj), ['spec.extra']);
  assert.deepEqual(obj.metadata, { name: 'a', namespace: 'n', labels: { a: 'b' } }, 'metadata is never pruned by the schema');
  const bad = new FieldErrors();
  validateObject(schema as OpenApiSchema, { ...obj, spec: { port: 1.5, size: 'lots' } }, bad);
  assert.deepEqual(messages(bad), [
    'spec.port: Invalid value: "number": spec.port in body must be of type integer or string: "number"',
    'spec.size: Invalid value: "lots": spec.size in body should match \'^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$\'',
  ]);
});

test('types inside junctors are refused unless they are an int-or-string\'s alternatives', () => {
  const errs = new FieldErrors();
  checkSchema({ type: 'object', properties: { x: { type: 'string', anyOf: [{ type: 'string' }] } } }, 's', errs);
  assert.deepEqual(messages(errs), ['s.properties[x].anyOf[0].type: Forbidden: must be empty to be structural']);
});

test('defaults fill absent fields at every level; a default must satisfy its own schema', () => {
  const schema: OpenApiSchema = {
    type: 'object',
    properties: { spec: { type: 'object', default: {}, properties: { replicas: { type: 'integer', default: 1 }, items: { type: 'array', items: { type: 'object', properties: { on: { type: 'boolean', default: true } } } } } } },
  };
  const obj: Record<string, unknown> = { spec: { items: [{}, { on: false }] } };
  applyDefaults(schema, obj);
  assert.deepEqual(obj.spec, { replicas: 1, items: [{ on: true }, { on: false }] });
  const empty: Record<string, unknown> = {};
  applyDefaults(schema, empty);
  assert.deepEqual(empty, { spec: { replicas: 1 } });
  const errs = new FieldErrors();
  checkSchema({ type: 'object', properties: { n: { type: 'integer', maximum: 3, default: 5 } } }, 's', errs);
  assert.match(messages(errs)[0], /^s.properties\[n\].default: Invalid value: 5: .*should be less than or equal to 3/);
});

test('hostile schemas are refused: depth, enum size, non-RE2 patterns', () => {
  let deep: OpenApiSchema = { type: 'string' };
  for (let i = 0; i < 80; i++) deep = { type: 'object', properties: { a: deep } };
  for (const [schema, want] of [
    [deep, /must not be nested deeper than 64 levels/],
    [{ type: 'object', properties: { e: { type: 'string', enum: Array.from({ length: 3000 }, (_, i) => String(i)) } } }, /Too many: 3000: must have at most 2000 items/],
    [{ type: 'object', properties: { p: { type: 'string', pattern: '(a)\\1' } } }, /must be a valid regular expression/],
  ] as const) {
    const errs = new FieldErrors();
    checkSchema(schema, 's', errs);
    assert.match(messages(errs).join('\n'), want);
  }
});

test('list-map keys and sets refuse duplicates', () => {
  const schema: OpenApiSchema = {
    type: 'object',
    properties: {
      ports: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'], items: { type: 'object', properties: { name: { type: 'string' } } } },
      tags: { type: 'array', 'x-kubernetes-list-type': 'set', items: { type: 'string' } },
    },
  };
  const errs = new FieldErrors();
  validateObject(schema, { ports: [{ name: 'a' }, { name: 'a' }], tags: ['x', 'x'] }, errs);
  assert.deepEqual(messages(errs), ['ports[1]: Duplicate value: {"name":"a"}', 'tags[1]: Duplicate value: "x"']);
});
