import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeGnostic } from './gnostic.js';
import { schemaV2, swaggerDocument } from './openapi-v2.js';
import { fields } from './protobuf/wire.js';

test('v3 schemas become the v2 shapes kubectl parses', () => {
  // A described reference: $ref beside the description, never beside a type.
  assert.deepEqual(schemaV2({ description: 'd', allOf: [{ $ref: '#/components/schemas/io.k8s.api.core.v1.PodSpec' }], 'x-kubernetes-patch-strategy': 'retainKeys' }), {
    $ref: '#/definitions/io.k8s.api.core.v1.PodSpec',
    description: 'd',
    'x-kubernetes-patch-strategy': 'retainKeys',
  });
  // Quantity (string or number) and int-or-string are strings in v2, as upstream publishes them.
  assert.deepEqual(schemaV2({ oneOf: [{ type: 'string' }, { type: 'number' }] }), { type: 'string' });
  assert.deepEqual(schemaV2({ 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] }), { type: 'string', format: 'int-or-string', 'x-kubernetes-int-or-string': true });
  // An array always has exactly one items schema; nullable (v3 only) is dropped.
  assert.deepEqual(schemaV2({ type: 'array', nullable: true }), { type: 'array', items: {} });
  assert.deepEqual(schemaV2({ type: 'object', additionalProperties: false, properties: { a: { type: 'integer', minimum: 1, default: 2 } } }), {
    type: 'object',
    properties: { a: { type: 'integer', minimum: 1, default: 2 } },
    additionalProperties: false,
  });
});

/** A message's fields by number, each a list of raw values. */
function decode(buf: Buffer): Map<number, (Buffer | bigint)[]> {
  const out = new Map<number, (Buffer | bigint)[]>();
  for (const { field, value } of fields(buf)) {
    const v = value.wire === 0 ? value.n : value.bytes;
    out.set(field, [...(out.get(field) ?? []), v]);
  }
  return out;
}
const str = (b: Buffer | bigint | undefined) => (Buffer.isBuffer(b) ? b.toString() : undefined);
const one = (m: Map<number, (Buffer | bigint)[]>, f: number) => m.get(f)?.[0] as Buffer;

test('the Swagger document encodes as gnostic openapi_v2.Document', () => {
  const gvk = { group: 'apps', version: 'v1', kind: 'Deployment' };
  const swagger = swaggerDocument(
    [
      {
        paths: {
          '/apis/apps/v1/namespaces/{namespace}/deployments/{name}': {
            patch: {
              operationId: 'patchDeployment',
              'x-kubernetes-group-version-kind': gvk,
              parameters: [{ name: 'fieldValidation', in: 'query', description: 'how' }],
              requestBody: { content: { 'application/strategic-merge-patch+json': { schema: { type: 'object' } } } },
            },
          },
        },
        components: {
          schemas: {
            'io.k8s.api.apps.v1.Deployment': {
              type: 'object',
              required: ['spec'],
              'x-kubernetes-group-version-kind': [gvk],
              properties: { spec: { type: 'array', items: { $ref: '#/components/schemas/X' }, 'x-kubernetes-patch-merge-key': 'name' }, replicas: { type: 'integer', maximum: 5 } },
            },
          },
        },
      },
    ],
    'Kubicle',
    'v1.30.0',
  );
  const doc = decode(encodeGnostic(swagger));
  assert.equal(str(one(doc, 1)), '2.0');
  const info = decode(one(doc, 2));
  assert.equal(str(one(info, 1)), 'Kubicle');

  // Definitions{NamedSchema{name, Schema}}
  const named = decode(one(decode(one(doc, 9)), 1));
  assert.equal(str(one(named, 1)), 'io.k8s.api.apps.v1.Deployment');
  const schema = decode(one(named, 2));
  assert.equal(str(one(decode(one(schema, 22)), 1)), 'object', 'TypeItem');
  assert.deepEqual(schema.get(19)?.map(str), ['spec'], 'required');
  const ext = decode(one(schema, 31));
  assert.equal(str(one(ext, 1)), 'x-kubernetes-group-version-kind');
  assert.deepEqual(JSON.parse(str(one(decode(one(ext, 2)), 2)) ?? ''), [gvk], 'extension values travel as YAML (JSON) text');
  const props = (decode(one(schema, 25)).get(1) ?? []).map((p) => decode(p as Buffer));
  assert.deepEqual(
    props.map((p) => str(one(p, 1))),
    ['spec', 'replicas'],
  );
  const spec = decode(one(props[0], 2));
  const items = decode(one(decode(one(spec, 23)), 1));
  assert.equal(str(one(items, 1)), '#/definitions/X');
  const replicas = decode(one(props[1], 2));
  assert.equal(one(replicas, 7).readDoubleLE(0), 5, 'maximum is a double');

  // Paths{NamedPathItem{name, PathItem{patch=8: Operation}}}
  const path = decode(one(decode(one(doc, 8)), 2));
  assert.equal(str(one(path, 1)), '/apis/apps/v1/namespaces/{namespace}/deployments/{name}');
  const op = decode(one(decode(one(path, 2)), 8));
  assert.equal(str(one(op, 5)), 'patchDeployment');
  assert.deepEqual(op.get(7)?.map(str), ['application/strategic-merge-patch+json'], 'consumes');
  const params = (op.get(8) ?? []).map((p) => decode(one(decode(p as Buffer), 1)));
  assert.equal(params.length, 2, 'the body and fieldValidation');
  const query = decode(one(decode(one(params[1], 2)), 3));
  assert.equal(str(one(query, 4)), 'fieldValidation');
  assert.equal(str(one(query, 2)), 'query');
  const opExt = decode(one(op, 13));
  assert.equal(str(one(opExt, 1)), 'x-kubernetes-group-version-kind');
  assert.deepEqual(JSON.parse(str(one(decode(one(opExt, 2)), 2)) ?? ''), gvk);
});
