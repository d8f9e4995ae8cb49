import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { cleanup, eventually, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/** Claims bind to matching volumes, or to ones provisioned for them; reclaim policies apply. */
let k: Kubicle;
before(async () => {
  k = await startKubicle({ args: ['--simulate-nodes', '1'] });
});
after(async () => {
  await cleanup(k);
});

it('dynamic provisioning, static binding, reclaim policies, StatefulSet claims', async () => {
  const kc = await kubectlFor(k, '1.33');
  const ok = mustSucceed(kc);
  assert.match(await ok(['get', 'storageclass']), /local-path \(default\)\s+kubicle.io\/local-path\s+Delete\s+WaitForFirstConsumer/);
  const claim = (name: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, ...extra } });
  const phase = async (what: string) => ok(['get', what, '-o', 'jsonpath={.status.phase}']);

  // WaitForFirstConsumer: the claim waits for a pod; the volume is made on that pod's node.
  await ok(['apply', '-f', '-'], claim('dynamic'));
  await eventually(async () => /WaitForFirstConsumer\s+.*waiting for first consumer to be created before binding/.test(await ok(['describe', 'pvc', 'dynamic'])), 'the claim says it waits for a pod');
  assert.equal(await phase('pvc/dynamic'), 'Pending');
  const user = (name: string, claimName: string) =>
    JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { containers: [{ name: 'c', image: 'busybox' }], volumes: [{ name: 'data', persistentVolumeClaim: { claimName } }] } });
  await ok(['apply', '-f', '-'], user('writer', 'dynamic'));
  await eventually(async () => (await phase('pvc/dynamic')) === 'Bound', 'dynamic claim bound');
  await eventually(async () => (await phase('pod/writer')) === 'Running', 'its pod runs');
  const pvc = JSON.parse(await ok(['get', 'pvc', 'dynamic', '-o', 'json']));
  assert.equal(pvc.spec.storageClassName, 'local-path', 'DefaultStorageClass filled the class in');
  assert.equal(pvc.metadata.annotations['volume.kubernetes.io/selected-node'], 'sim-node-0');
  const pv = JSON.parse(await ok(['get', 'pv', pvc.spec.volumeName, '-o', 'json']));
  assert.equal(pv.spec.claimRef.name, 'dynamic');
  assert.match(pv.spec.hostPath.path, /^\/var\/lib\/kubicle\/local-path\/pvc-/);
  assert.deepEqual(pv.spec.nodeAffinity.required.nodeSelectorTerms, [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['sim-node-0'] }] }]);
  assert.deepEqual(pv.metadata.finalizers, ['kubicle.io/local-path-cleanup']);
  assert.equal(pv.status.phase, 'Bound');
  assert.equal(await ok(['get', 'pod', 'writer', '-o', 'jsonpath={.spec.nodeName}']), 'sim-node-0');

  // Pods whose claims cannot be met say why.
  await ok(['apply', '-f', '-'], user('no-claim', 'nope'));
  await ok(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'manual-now' }, provisioner: 'example.com/nobody', volumeBindingMode: 'Immediate' }));
  await ok(['apply', '-f', '-'], claim('unbound-now', { storageClassName: 'manual-now' }));
  await ok(['apply', '-f', '-'], user('waits-now', 'unbound-now'));
  await eventually(async () => /persistentvolumeclaim "nope" not found/.test(await ok(['describe', 'pod', 'no-claim'])), 'a missing claim is named');
  await eventually(async () => /pod has unbound immediate PersistentVolumeClaims/.test(await ok(['describe', 'pod', 'waits-now'])), 'an unbound Immediate claim is named');
  // local-path needs the node first: an Immediate class of it provisions nothing and says why.
  await ok(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'local-now' }, provisioner: 'kubicle.io/local-path', volumeBindingMode: 'Immediate' }));
  await ok(['apply', '-f', '-'], claim('local-now', { storageClassName: 'local-now' }));
  await eventually(async () => /ProvisioningFailed\s+.*provisions only for a StorageClass with volumeBindingMode WaitForFirstConsumer/.test(await ok(['describe', 'pvc', 'local-now'])), 'an Immediate local-path claim says why it stays Pending');
  await ok(['delete', 'pod', 'no-claim', 'waits-now', '--wait=false']);
  assert.match(await ok(['get', 'pvc', 'dynamic']), /dynamic\s+Bound\s+pvc-\S+\s+1Gi\s+RWO\s+local-path/);

  // A static volume with no class binds a claim that asks for no class; Retain keeps it, Released.
  await ok(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'static-big' }, spec: { capacity: { storage: '10Gi' }, accessModes: ['ReadWriteOnce', 'ReadOnlyMany'], storageClassName: '', hostPath: { path: '/data/big' } } }));
  await ok(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'static-small' }, spec: { capacity: { storage: '2Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: '', hostPath: { path: '/data/small' } } }));
  await eventually(async () => (await phase('pv/static-small')) === 'Available', 'static volume available');
  await ok(['apply', '-f', '-'], claim('manual', { storageClassName: '' }));
  await eventually(async () => (await phase('pvc/manual')) === 'Bound', 'manual claim bound');
  assert.equal(await ok(['get', 'pvc', 'manual', '-o', 'jsonpath={.spec.volumeName}']), 'static-small', 'the smallest volume that fits');
  await ok(['delete', 'pvc', 'manual']);
  await eventually(async () => (await phase('pv/static-small')) === 'Released', 'retained volume released');

  // Delete reclaims the provisioned volume with its claim, once its node has let it go.
  await ok(['delete', 'pod', 'writer']);
  await ok(['delete', 'pvc', 'dynamic']);
  await eventually(async () => (await kc(['get', 'pv', pv.metadata.name])).code !== 0, 'provisioned volume deleted');

  // StatefulSet claims are provisioned and bound.
  await ok(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db' },
      spec: { serviceName: 'db', replicas: 2, selector: { matchLabels: { app: 'db' } }, template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'c', image: 'postgres' }] } }, volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }] },
    }),
  );
  await ok(['rollout', 'status', 'sts/db', '--timeout=30s']);
  await eventually(async () => (await phase('pvc/data-db-1')) === 'Bound' && (await phase('pvc/data-db-0')) === 'Bound', 'StatefulSet claims bound');
});
