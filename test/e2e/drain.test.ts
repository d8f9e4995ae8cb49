import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { rawClient } from '../support/http.js';
import { cleanup, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/** kubectl drain evicts through pods/eviction and respects PodDisruptionBudgets. */
let k: Kubicle;
before(async () => {
  k = await startKubicle({ args: ['--simulate-nodes', '3'] });
});
after(async () => {
  await cleanup(k);
});

it('drain waits for a budget and proceeds once it allows', async () => {
  for (const version of ['1.27', '1.33']) {
    const kc = await kubectlFor(k, version);
    const ns = `drain${version.replace('.', '')}`;
    const ok = mustSucceed(kc);
    await ok(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }));
    await ok(['create', 'deployment', 'web', '-n', ns, '--image=nginx', '--replicas=3']);
    await ok(['rollout', 'status', 'deploy/web', '-n', ns, '--timeout=30s']);
    const spread = JSON.parse(await ok(['get', 'pods', '-n', ns, '-o', 'json'])).items.map((p: { spec: { nodeName: string } }) => p.spec.nodeName);
    assert.equal(new Set(spread).size, 3, `replicas spread over the nodes: ${spread}`);
    await ok(['create', 'pdb', 'web', '-n', ns, '--selector=app=web', '--min-available=3']);
    const deadline = Date.now() + 10_000;
    while ((await ok(['get', 'pdb', 'web', '-n', ns, '-o', 'jsonpath={.status.observedGeneration}'])) === '') {
      assert.ok(Date.now() < deadline);
      await new Promise((r) => setTimeout(r, 100));
    }
    const node = await ok(['get', 'pods', '-n', ns, '-o', 'jsonpath={.items[0].spec.nodeName}']);
    // No disruption allowed: drain keeps retrying, then times out.
    const blocked = await kc(['drain', node, '--ignore-daemonsets', '--pod-selector=app=web', '--timeout=4s']);
    assert.notEqual(blocked.code, 0);
    assert.match(blocked.stdout + blocked.stderr, /Cannot evict pod as it would violate the pod's disruption budget/);
    assert.equal(JSON.parse(await ok(['get', 'pods', '-n', ns, '-o', 'json'])).items.length, 3, 'nothing was evicted');
    // The raw answer is 429 with a DisruptionBudget cause.
    const api = await rawClient(k);
    const pod = await ok(['get', 'pods', '-n', ns, '-o', 'jsonpath={.items[0].metadata.name}']);
    const r = await api.call('POST', `/api/v1/namespaces/${ns}/pods/${pod}/eviction`, JSON.stringify({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod, namespace: ns } }));
    assert.equal(r.status, 429);
    assert.equal(r.json.details.causes[0].reason, 'DisruptionBudget');
    assert.match(r.json.details.causes[0].message, /needs 3 healthy pods and has 3 currently/);
    api.close();
    // Let one go: drain evicts, the replacement lands on another node.
    await ok(['patch', 'pdb', 'web', '-n', ns, '--type=merge', '-p', '{"spec":{"minAvailable":2}}']);
    await ok(['drain', node, '--ignore-daemonsets', '--pod-selector=app=web', '--timeout=30s']);
    await ok(['rollout', 'status', 'deploy/web', '-n', ns, '--timeout=30s']);
    const after = JSON.parse(await ok(['get', 'pods', '-n', ns, '-o', 'json'])).items.map((p: { spec: { nodeName: string } }) => p.spec.nodeName);
    assert.equal(after.length, 3);
    assert.ok(!after.includes(node), 'nothing runs on the drained node');
    await ok(['uncordon', node]);
  }
});
