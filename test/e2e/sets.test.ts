import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { rawClient } from '../support/http.js';
import { cleanup, eventually, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/** DaemonSets and StatefulSets on simulated nodes, driven by stock kubectl 1.33. */
let k: Kubicle;
let kc: Awaited<ReturnType<typeof kubectlFor>>;
const ok = (args: string[], input?: string) => mustSucceed(kc)(args, input);
const podsOf = async (selector: string) => JSON.parse(await ok(['get', 'pods', '-l', selector, '-o', 'json'])).items as { metadata: { name: string }; spec: { nodeName: string; containers: { image: string }[] } }[];

before(async () => {
  k = await startKubicle({ args: ['--simulate-nodes', '2'] });
  kc = await kubectlFor(k, '1.33');
});
after(async () => {
  await cleanup(k);
});

describe('DaemonSet', () => {
  it('follows nodes, rolls updates, keeps history', async () => {
    const ds = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent' }, spec: { selector: { matchLabels: { app: 'agent' } }, template: { metadata: { labels: { app: 'agent' } }, spec: { nodeSelector: { 'kubernetes.io/os': 'linux' }, containers: [{ name: 'a', image: 'busybox:1' }] } } } };
    await ok(['apply', '-f', '-'], JSON.stringify(ds));
    assert.match(await ok(['rollout', 'status', 'ds/agent', '--timeout=30s']), /successfully rolled out/);
    assert.deepEqual((await podsOf('app=agent')).map((p) => p.spec.nodeName).sort(), ['sim-node-0', 'sim-node-1']);
    const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/kubicle.js');
    const extra = spawn(process.execPath, [bin, 'simulate', 'nodes', '1', '--kubeconfig', k.kubeconfig, '--node-prefix', 'late', '--log-level', 'warn'], { stdio: 'ignore' });
    try {
      await eventually(async () => (await podsOf('app=agent')).some((p) => p.spec.nodeName === 'late-0'), 'a pod on the new node');
      await ok(['label', 'node', 'sim-node-0', 'kubernetes.io/os=plan9', '--overwrite']);
      await eventually(async () => !(await podsOf('app=agent')).some((p) => p.spec.nodeName === 'sim-node-0'), 'the pod leaves a node that no longer matches');
      await ok(['set', 'image', 'ds/agent', 'a=busybox:2']);
      assert.match(await ok(['rollout', 'status', 'ds/agent', '--timeout=30s']), /successfully rolled out/);
      await eventually(async () => (await podsOf('app=agent')).every((p) => p.spec.containers[0].image === 'busybox:2'), 'updated pods');
      assert.match(await ok(['rollout', 'history', 'ds/agent']), /1\s+<none>\s+2\s+<none>/);
      await ok(['rollout', 'undo', 'ds/agent']);
      await eventually(async () => (await podsOf('app=agent')).every((p) => p.spec.containers[0].image === 'busybox:1'), 'undone');
    } finally {
      extra.kill('SIGTERM');
      // With the default 40 s grace period the stopped simulator's node would still look Ready
      // to the StatefulSet below, so it is removed at once.
      await ok(['delete', 'node', 'late-0']);
      await ok(['label', 'node', 'sim-node-0', 'kubernetes.io/os=linux', '--overwrite']);
    }
  });
});

describe('StatefulSet', () => {
  it('creates in order, each after the last is Ready, and deletes in reverse', async () => {
    const api = await rawClient(k);
    const rv = (await api.call('GET', '/api/v1/namespaces/default/pods')).json.metadata.resourceVersion;
    const watch = api.watch(`/api/v1/namespaces/default/pods?watch=true&resourceVersion=${rv}&labelSelector=app%3Ddb`);
    await watch.opened;
    const sts = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db' },
      spec: {
        serviceName: 'db',
        replicas: 3,
        selector: { matchLabels: { app: 'db' } },
        template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'pg', image: 'postgres:16' }] } },
        volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
      },
    };
    await ok(['apply', '-f', '-'], JSON.stringify(sts));
    assert.match(await ok(['rollout', 'status', 'sts/db', '--timeout=30s']), /roll out complete/);
    const events = () => watch.events.map((e) => ({ type: e.type, name: e.object.metadata.name, ready: (e.object.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True') }));
    const added = events().filter((e) => e.type === 'ADDED').map((e) => e.name);
    assert.deepEqual(added, ['db-0', 'db-1', 'db-2']);
    for (const [prev, next] of [
      ['db-0', 'db-1'],
      ['db-1', 'db-2'],
    ]) {
      const readyAt = events().findIndex((e) => e.name === prev && e.ready);
      const addedAt = events().findIndex((e) => e.name === next && e.type === 'ADDED');
      assert.ok(readyAt >= 0 && readyAt < addedAt, `${next} created only after ${prev} was Ready`);
    }
    const pods = await podsOf('app=db');
    assert.deepEqual(pods.map((p) => p.metadata.name).sort(), ['db-0', 'db-1', 'db-2']);
    assert.match(await ok(['get', 'pvc']), /data-db-0[\s\S]*data-db-1[\s\S]*data-db-2/);
    const db1 = JSON.parse(await ok(['get', 'pod', 'db-1', '-o', 'json']));
    assert.equal(db1.spec.hostname, 'db-1');
    assert.equal(db1.spec.subdomain, 'db');
    assert.equal(db1.spec.volumes.find((v: { name: string }) => v.name === 'data').persistentVolumeClaim.claimName, 'data-db-1');

    // A partitioned rolling update replaces only ordinals at or above the partition.
    await ok(['patch', 'sts', 'db', '--type=merge', '-p', '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}']);
    await ok(['set', 'image', 'sts/db', 'pg=postgres:17']);
    await eventually(async () => (await ok(['get', 'pod', 'db-2', '-o', 'jsonpath={.spec.containers[0].image}'])) === 'postgres:17', 'db-2 updated');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await ok(['get', 'pod', 'db-0', '-o', 'jsonpath={.spec.containers[0].image}']), 'postgres:16');

    await ok(['scale', 'sts/db', '--replicas=0']);
    await eventually(async () => (await podsOf('app=db')).length === 0, 'scaled to zero');
    const deleted = events().filter((e) => e.type === 'DELETED').map((e) => e.name);
    assert.deepEqual(deleted.slice(-3), ['db-2', 'db-1', 'db-0'], 'removed from the highest ordinal down');
    assert.match(await ok(['get', 'pvc']), /data-db-0/, 'claims are retained by default');
    watch.stop();
    api.close();
  });

  it('deletes its claims with the set when its retention policy says so', async () => {
    await ok(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'cache' },
      spec: {
        serviceName: 'cache',
        replicas: 2,
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Delete', whenScaled: 'Retain' },
        selector: { matchLabels: { app: 'cache' } },
        template: { metadata: { labels: { app: 'cache' } }, spec: { containers: [{ name: 'redis', image: 'redis:7' }] } },
        volumeClaimTemplates: [{ metadata: { name: 'state' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
      },
    }));
    assert.match(await ok(['rollout', 'status', 'sts/cache', '--timeout=30s']), /roll out complete/);
    assert.equal(await ok(['get', 'pvc', 'state-cache-1', '-o', 'jsonpath={.metadata.ownerReferences[0].kind}']), 'StatefulSet');
    await ok(['delete', 'sts', 'cache']);
    await eventually(async () => !/state-cache/.test(await ok(['get', 'pvc', '-o', 'name'])), 'the claims went with the set');
    assert.match(await ok(['get', 'pvc', '-o', 'name']), /data-db-0/, 'the other set keeps its retained claims');
  });
});
