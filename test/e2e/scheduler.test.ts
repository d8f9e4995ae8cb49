import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { rawClient } from '../support/http.js';
import { cleanup, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/** The scheduler and the node simulator, driven with stock kubectl. */
let k: Kubicle;
let kc: Awaited<ReturnType<typeof kubectlFor>>;
const ok = (args: string[], input?: string) => mustSucceed(kc)(args, input);

before(async () => {
  k = await startKubicle({ args: ['--simulate-nodes', '3'] });
  kc = await kubectlFor(k, '1.33');
  const deadline = Date.now() + 15_000;
  while ((await ok(['get', 'nodes', '-o', 'name'])).trim().split('\n').filter(Boolean).length < 3) {
    assert.ok(Date.now() < deadline, 'simulated nodes did not register');
    await new Promise((r) => setTimeout(r, 100));
  }
});
after(async () => {
  await cleanup(k);
});

describe('scheduler on simulated nodes', () => {
  it('nodes are Ready with capacity, leases and the simulator named as such', async () => {
    const nodes = JSON.parse(await ok(['get', 'nodes', '-o', 'json'])).items;
    assert.equal(nodes.length, 3);
    for (const n of nodes) {
      assert.equal(n.status.conditions.find((c: { type: string }) => c.type === 'Ready').status, 'True');
      assert.equal(n.status.allocatable.cpu, '8');
      assert.match(n.status.nodeInfo.osImage, /simulator/);
    }
    assert.match(await ok(['get', 'lease', '-n', 'kube-node-lease']), /sim-node-0\s+sim-node-0/);
    assert.match(await ok(['get', 'lease', 'kube-scheduler', '-n', 'kube-system', '-o', 'jsonpath={.spec.holderIdentity}']), /\S+/);
  });

  it('a pod is bound and becomes Ready; a run-to-completion pod completes; deletion finishes', async () => {
    await ok(['run', 'web', '--image=nginx']);
    await ok(['wait', '--for=condition=Ready', 'pod/web', '--timeout=20s']);
    const pod = JSON.parse(await ok(['get', 'pod', 'web', '-o', 'json']));
    assert.match(pod.spec.nodeName, /^sim-node-\d$/);
    assert.match(pod.status.podIP, /^10\.244\./);
    assert.match(await ok(['describe', 'pod', 'web']), /Scheduled\s+\S+\s+default-scheduler\s+Successfully assigned default\/web to sim-node-\d/);
    await ok(['run', 'once', '--image=busybox', '--restart=Never', '--', 'true']);
    await ok(['wait', '--for=jsonpath={.status.phase}=Succeeded', 'pod/once', '--timeout=20s']);
    assert.match(await ok(['get', 'pod', 'once']), /Completed/);
    await ok(['run', 'oops', '--image=busybox', '--restart=Never', '--annotations=kubicle.io/simulated-exit-code=3', '--', 'false']);
    await ok(['wait', '--for=jsonpath={.status.phase}=Failed', 'pod/oops', '--timeout=20s']);
    assert.match(await ok(['delete', 'pod', 'web', '--timeout=20s']), /deleted/);
  });

  it('unschedulable pods say why, and are placed once a node fits', async () => {
    await ok(['run', 'picky', '--image=nginx', '--overrides={"spec":{"nodeSelector":{"disk":"ssd"}}}']);
    await ok(['run', 'big', '--image=nginx', '--overrides={"spec":{"containers":[{"name":"big","image":"nginx","resources":{"requests":{"cpu":"100"}}}]}}']);
    const deadline = Date.now() + 15_000;
    let picky = '';
    let big = '';
    while (!/FailedScheduling/.test(picky) || !/FailedScheduling/.test(big)) {
      assert.ok(Date.now() < deadline, `no FailedScheduling: ${picky} ${big}`);
      await new Promise((r) => setTimeout(r, 200));
      picky = await ok(['describe', 'pod', 'picky']);
      big = await ok(['describe', 'pod', 'big']);
    }
    assert.match(picky, /0\/3 nodes are available: 3 node\(s\) didn't match Pod's node affinity\/selector\./);
    assert.match(big, /0\/3 nodes are available: 3 Insufficient cpu\./);
    assert.match(await ok(['get', 'pod', 'picky', '-o', 'jsonpath={.status.conditions[?(@.type=="PodScheduled")].reason}']), /Unschedulable/);
    await ok(['label', 'node', 'sim-node-1', 'disk=ssd']);
    await ok(['wait', '--for=condition=Ready', 'pod/picky', '--timeout=20s']);
    assert.equal(await ok(['get', 'pod', 'picky', '-o', 'jsonpath={.spec.nodeName}']), 'sim-node-1');
  });

  it('cordons and taints keep pods away; tolerations let them in', async () => {
    await ok(['cordon', 'sim-node-0']);
    await ok(['taint', 'node', 'sim-node-1', 'dedicated=db:NoSchedule']);
    for (let i = 0; i < 4; i++) await ok(['run', `spread-${i}`, '--image=nginx']);
    for (let i = 0; i < 4; i++) await ok(['wait', '--for=condition=Ready', `pod/spread-${i}`, '--timeout=20s']);
    for (let i = 0; i < 4; i++) assert.equal(await ok(['get', 'pod', `spread-${i}`, '-o', 'jsonpath={.spec.nodeName}']), 'sim-node-2');
    await ok(['run', 'db', '--image=postgres', '--overrides={"spec":{"nodeSelector":{"disk":"ssd"},"tolerations":[{"key":"dedicated","operator":"Equal","value":"db","effect":"NoSchedule"}]}}']);
    await ok(['wait', '--for=condition=Ready', 'pod/db', '--timeout=20s']);
    assert.equal(await ok(['get', 'pod', 'db', '-o', 'jsonpath={.spec.nodeName}']), 'sim-node-1');
  });

  it('a bound pod cannot be bound again (409); a binding without a target is 422', async () => {
    const api = await rawClient(k);
    const node = await ok(['get', 'pod', 'db', '-o', 'jsonpath={.spec.nodeName}']);
    const again = await api.call('POST', '/api/v1/namespaces/default/pods/db/binding', JSON.stringify({ apiVersion: 'v1', kind: 'Binding', metadata: { name: 'db' }, target: { kind: 'Node', name: 'sim-node-2' } }));
    assert.equal(again.status, 409);
    assert.match(again.json.message, new RegExp(`already assigned to node "${node}"`));
    const bad = await api.call('POST', '/api/v1/namespaces/default/pods/db/binding', JSON.stringify({ apiVersion: 'v1', kind: 'Binding', metadata: { name: 'db' }, target: {} }));
    assert.equal(bad.status, 422);
    api.close();
  });

  it('kubicle simulate nodes N joins a cluster from its kubeconfig', async () => {
    const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/kubicle.js');
    const child = spawn(process.execPath, [bin, 'simulate', 'nodes', '2', '--kubeconfig', k.kubeconfig, '--node-prefix', 'extra', '--log-level', 'warn'], { stdio: 'ignore' });
    try {
      const deadline = Date.now() + 15_000;
      while (!/extra-1/.test(await ok(['get', 'nodes']))) {
        assert.ok(Date.now() < deadline, 'simulate nodes did not register');
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.match(await ok(['get', 'nodes', '-l', 'kubicle.io/simulated=true', '-o', 'name']), /node\/extra-0/);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
