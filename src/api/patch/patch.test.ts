import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCode } from '../../observe/errors.js';
import { jsonPatch } from './json-patch.js';
import { mergePatch } from './merge-patch.js';
import { strategicMergePatch } from './strategic-merge-patch.js';

const D = 'io.k8s.api.apps.v1.Deployment';
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
  }, D) as typeof deployment;
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
  const del = strategicMergePatch(deployment, { spec: { template: { spec: { containers: [{ name: 'b', $patch: 'delete' }] } } } }, D) as typeof deployment;
  assert.deepEqual(
    del.spec.template.spec.containers.map((c) => c.name),
    ['a'],
  );
  const rep = strategicMergePatch(deployment, { spec: { template: { spec: { volumes: [{ $patch: 'replace' }, { name: 'v2', emptyDir: {} }] } } } }, D) as typeof deployment;
  assert.deepEqual(rep.spec.template.spec.volumes, [{ name: 'v2', emptyDir: {} }]);
  const reordered = strategicMergePatch(deployment, {
    spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'b' }, { name: 'a' }], containers: [{ name: 'a', image: 'a:2' }] } } },
  }, D) as typeof deployment;
  assert.deepEqual(
    reordered.spec.template.spec.containers.map((c) => [c.name, c.image]),
    [
      ['b', 'b:1'],
      ['a', 'a:2'],
    ],
  );
  const fromList = strategicMergePatch({ metadata: { finalizers: ['x', 'y'] } }, { metadata: { '$deleteFromPrimitiveList/finalizers': ['x'] } }, D) as { metadata: { finalizers: string[] } };
  assert.deepEqual(fromList.metadata.finalizers, ['y']);
  const fromArgs = strategicMergePatch({ args: ['a', 'b', 'c'], finalizers: ['x', 'y'] }, { '$deleteFromPrimitiveList/finalizers': ['x'] }) as { finalizers: string[] };
  assert.deepEqual(fromArgs.finalizers, ['y'], 'the directive works without a schema too');
  const retained = strategicMergePatch({ spec: { strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1 } } } }, { spec: { strategy: { $retainKeys: ['type'], type: 'Recreate' } } }, D) as {
    spec: { strategy: object };
  };
  assert.deepEqual(retained.spec.strategy, { type: 'Recreate' });
  assert.throws(() => strategicMergePatch(deployment, { spec: { $patch: 'explode' } }, D), (e) => isCode(e, 'BadRequest'));
});

test('strategic merge patch: merge keys come from each list\'s schema', () => {
  const svc = { spec: { ports: [{ port: 80, name: 'http' }] } };
  const out = strategicMergePatch(svc, { spec: { ports: [{ port: 443, name: 'https' }, { port: 80, name: 'web' }] } }, 'io.k8s.api.core.v1.Service') as typeof svc;
  assert.deepEqual(out.spec.ports, [
    { port: 80, name: 'web' },
    { port: 443, name: 'https' },
  ]);
  // The same field name is merged by a different key, or not at all, elsewhere.
  const pod = { spec: { containers: [{ name: 'a', ports: [{ containerPort: 80, name: 'http' }] }] } };
  const merged = strategicMergePatch(pod, { spec: { containers: [{ name: 'a', ports: [{ containerPort: 81 }] }] } }, 'io.k8s.api.core.v1.Pod') as typeof pod;
  assert.deepEqual(merged.spec.containers[0].ports, [{ containerPort: 80, name: 'http' }, { containerPort: 81 }]);
  const eps = { subsets: [{ addresses: [{ ip: '10.0.0.1' }] }] };
  const replaced = strategicMergePatch(eps, { subsets: [{ addresses: [{ ip: '10.0.0.2' }] }] }, 'io.k8s.api.core.v1.Endpoints') as typeof eps;
  assert.deepEqual(replaced.subsets, [{ addresses: [{ ip: '10.0.0.2' }] }], 'Endpoints subsets are replaced');
  // Lists the hand-kept table of earlier versions missed: webhooks merge by name.
  const whc = { webhooks: [{ name: 'a.example.com', sideEffects: 'None' }] };
  const hooks = strategicMergePatch(whc, { webhooks: [{ name: 'b.example.com', sideEffects: 'None' }] }, 'io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration') as typeof whc;
  assert.deepEqual(
    hooks.webhooks.map((w) => w.name),
    ['a.example.com', 'b.example.com'],
  );
  // A kind without a schema gets every list replaced.
  assert.deepEqual(strategicMergePatch(pod, { spec: { containers: [{ name: 'b' }] } }), { spec: { containers: [{ name: 'b' }] } });
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
