import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cleanup, eventually, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/** A node that stops heartbeating turns NotReady; its pods are evicted and rescheduled. */
let k: Kubicle;
before(async () => {
  k = await startKubicle({ args: ['--simulate-nodes', '2', '--node-monitor-grace-period', '2', '--node-heartbeat-interval', '0.3'] });
});
after(async () => {
  await cleanup(k);
});


it('evicts pods from a silent node after their toleration and reschedules them', async () => {
  const kc = await kubectlFor(k, '1.33');
  const ok = mustSucceed(kc);
  const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/kubicle.js');
  const flaky = spawn(process.execPath, [bin, 'simulate', 'nodes', '1', '--kubeconfig', k.kubeconfig, '--node-prefix', 'flaky', '--node-heartbeat-interval', '0.3', '--log-level', 'warn'], { stdio: 'ignore' });
  try {
    await eventually(async () => /flaky-0\s+Ready/.test(await ok(['get', 'nodes'])), 'flaky node ready');
    const deploy = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'app' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'app' } },
        template: {
          metadata: { labels: { app: 'app' } },
          spec: {
            affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, preference: { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['flaky-0'] }] } }] } },
            tolerations: [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 1 }],
            containers: [{ name: 'c', image: 'busybox' }],
          },
        },
      },
    };
    await ok(['apply', '-f', '-'], JSON.stringify(deploy));
    await ok(['rollout', 'status', 'deploy/app', '--timeout=30s']);
    const nodesOf = async () => (JSON.parse(await ok(['get', 'pods', '-l', 'app=app', '-o', 'json'])).items as { spec: { nodeName: string } }[]).map((p) => p.spec.nodeName);
    assert.deepEqual(await nodesOf(), ['flaky-0', 'flaky-0']);
    const pod = JSON.parse(await ok(['get', 'pods', '-l', 'app=app', '-o', 'json'])).items[0];
    assert.ok(
      pod.spec.tolerations.some((t: { key: string; tolerationSeconds: number }) => t.key === 'node.kubernetes.io/not-ready' && t.tolerationSeconds === 300),
      'DefaultTolerationSeconds added the not-ready toleration',
    );

    flaky.kill('SIGKILL');
    await eventually(async () => /flaky-0\s+NotReady/.test(await ok(['get', 'nodes'])), 'flaky node NotReady');
    const node = JSON.parse(await ok(['get', 'node', 'flaky-0', '-o', 'json']));
    assert.deepEqual(
      node.spec.taints.map((t: { key: string; effect: string }) => `${t.key}:${t.effect}`).sort(),
      ['node.kubernetes.io/unreachable:NoExecute', 'node.kubernetes.io/unreachable:NoSchedule'],
    );
    await eventually(async () => {
      const nodes = await nodesOf();
      return nodes.length === 2 && nodes.every((n) => n && n !== 'flaky-0');
    }, 'pods evicted and rescheduled on live nodes');
    await ok(['rollout', 'status', 'deploy/app', '--timeout=30s']);
    assert.match(await ok(['get', 'events', '--field-selector', 'reason=TaintManagerEviction']), /Marking for deletion Pod default\/app-/);
  } finally {
    flaky.kill('SIGKILL');
  }
});
