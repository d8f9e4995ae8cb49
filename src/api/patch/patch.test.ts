import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCode } from '../../observe/errors.js';
import { jsonPatch } from './json-patch.js';
import { mergePatch } from './merge-patch.js';
import { strategicMergePatch } from './strategic-merge-patch.js';

const deployment = {
  metadata: { name: 'd', labels: { a: '1' }, finalizers: ['x'] },
  spec: {
    template: {
      spec: {
        containers: [
          { name: 'a', image: 'a:1', env: [{ name: 'E1', value: '1' }], ports: [{ containerPort: 80 }] },
          { name: 'b', image: 'b:1' },
        ],
        volumes: [{ name: 'v1', emptyDir: {} }],
        tolerations: [{ key: 't1' }],
      },
    },
  },
};

test('merge patch: objects merge, null deletes, lists replace', () => {
  const out = mergePatch(deployment, { metadata: { labels: { a: null, b: '2' } }, spec: { template: { spec: { tolerations: [{ key: 't2' }] } } } }) as typeof deployment;
  assert.deepEqual(out.metadata.labels, { b: '2' });
  assert.deepEqual(out.spec.template.spec.tolerations, [{ key: 't2' }]);
  assert.equal(out.spec.template.spec.containers.length, 2);
});

test('strategic merge patch merges lists by their keys', () => {
  const out = strategicMergePatch(deployment, {
    metadata: { finalizers: ['y'] },
    spec: { template: { spec: { containers: [{ name: 'b', image: 'b:2' }, { name: 'c', image: 'c:1' }, { name: 'a', env: [{ name: 'E2', value: '2' }] }] } } },
  }) as typeof deployment;
  const cs = out.spec.template.spec.containers as { name: string; image: string; env?: unknown[] }[];
  assert.deepEqual(
    cs.map((c) => [c.name, c.image]),
    [
      ['a', 'a:1'],
      ['b', 'b:2'],
      ['c', 'c:1'],
    ],
  );
  assert.deepEqual(cs[0].env, [
    { name: 'E1', value: '1' },
    { name: 'E2', value: '2' },
  ]);
  assert.deepEqual(out.metadata.finalizers, ['x', 'y'], 'finalizers are a set');
});

test('strategic merge patch directives', () => {
  const del = strategicMergePatch(deployment, { spec: { template: { spec: { containers: [{ name: 'b', $patch: 'delete' }] } } } }) as typeof deployment;
  assert.deepEqual(
    del.spec.template.spec.containers.map((c) => c.name),
    ['a'],
  );
  const rep = strategicMergePatch(deployment, { spec: { template: { spec: { volumes: [{ $patch: 'replace' }, { name: 'v2', emptyDir: {} }] } } } }) as typeof deployment;
  assert.deepEqual(rep.spec.template.spec.volumes, [{ name: 'v2', emptyDir: {} }]);
  const reordered = strategicMergePatch(deployment, {
    spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'b' }, { name: 'a' }], containers: [{ name: 'a', image: 'a:2' }] } } },
  }) as typeof deployment;
  assert.deepEqual(
    reordered.spec.template.spec.containers.map((c) => [c.name, c.image]),
    [
      ['b', 'b:1'],
      ['a', 'a:2'],
    ],
  );
  const fromList = strategicMergePatch({ args: ['a', 'b', 'c'], finalizers: ['x', 'y'] }, { '$deleteFromPrimitiveList/finalizers': ['x'] }) as { finalizers: string[] };
  assert.deepEqual(fromList.finalizers, ['y']);
  const retained = strategicMergePatch({ strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1 } } }, { strategy: { $retainKeys: ['type'], type: 'Recreate' } }) as {
    strategy: object;
  };
  assert.deepEqual(retained.strategy, { type: 'Recreate' });
  assert.throws(() => strategicMergePatch(deployment, { spec: { $patch: 'explode' } }), (e) => isCode(e, 'BadRequest'));
});

test('strategic merge patch: service ports merge by port, container ports by containerPort', () => {
  const svc = { spec: { ports: [{ port: 80, name: 'http' }] } };
  const out = strategicMergePatch(svc, { spec: { ports: [{ port: 443, name: 'https' }] } }) as typeof svc;
  assert.equal(out.spec.ports.length, 2);
});

test('json patch applies, tests and fails cleanly', () => {
  const out = jsonPatch(deployment, [
    { op: 'replace', path: '/metadata/name', value: 'e' },
    { op: 'add', path: '/metadata/labels/b', value: '2' },
  ]) as typeof deployment;
  assert.equal(out.metadata.name, 'e');
  assert.equal(deployment.metadata.name, 'd', 'the input is not mutated');
  assert.throws(() => jsonPatch(deployment, [{ op: 'test', path: '/metadata/name', value: 'zzz' }]), (e) => isCode(e, 'Invalid'));
  assert.throws(() => jsonPatch(deployment, [{ op: 'remove', path: '/nope/deeper' }]), (e) => isCode(e, 'Invalid'));
  assert.throws(() => jsonPatch(deployment, { op: 'add' }), (e) => isCode(e, 'BadRequest'));
});
