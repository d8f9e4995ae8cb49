import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { cleanup, eventually, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/**
 * The HPA scales a Deployment up and down from metrics.k8s.io usage. The metrics source is the
 * node simulator, driven by the pods' kubicle.io/simulated-cpu annotation (the test controls it).
 */
let k: Kubicle;
before(async () => {
  k = await startKubicle({ args: ['--simulate-nodes', '2', '--node-heartbeat-interval', '0.3'], env: { KUBICLE_HPA_SYNC_PERIOD_MS: '500' } });
});
after(async () => {
  await cleanup(k);
});

it('scales up under load, stops at max, scales down when load drops; kubectl top reads the same metrics', async () => {
  const kc = await kubectlFor(k, '1.33');
  const ok = mustSucceed(kc);
  const deploy = (cpu: string) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web' },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' }, annotations: { 'kubicle.io/simulated-cpu': cpu } }, spec: { containers: [{ name: 'c', image: 'nginx', resources: { requests: { cpu: '100m' } } }] } },
    },
  });
  await ok(['apply', '-f', '-'], JSON.stringify(deploy('90m')));
  await ok(['rollout', 'status', 'deploy/web', '--timeout=30s']);
  await ok(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'web' },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' },
        minReplicas: 1,
        maxReplicas: 6,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 50 } } }],
        behavior: { scaleDown: { stabilizationWindowSeconds: 0 } },
      },
    }),
  );
  const replicas = async () => Number(await ok(['get', 'deploy', 'web', '-o', 'jsonpath={.spec.replicas}']));
  await eventually(async () => (await replicas()) === 6, 'scaled up to maxReplicas', 40_000);
  const hpa = JSON.parse(await ok(['get', 'hpa', 'web', '-o', 'json']));
  assert.equal(hpa.status.currentMetrics[0].resource.current.averageUtilization, 90);
  assert.ok(hpa.status.conditions.some((c: { type: string; reason: string }) => c.type === 'ScalingLimited' && c.reason === 'TooManyReplicas'));
  assert.match(await ok(['get', 'hpa', 'web']), /web\s+Deployment\/web\s+cpu: 90%\/50%\s+1\s+6\s+\d/);
  assert.match(await ok(['describe', 'hpa', 'web']), /SuccessfulRescale.*New size: \d+; reason: cpu resource utilization \(percentage of request\) above target/);
  await ok(['rollout', 'status', 'deploy/web', '--timeout=30s']);
  await eventually(async () => /web-\S+\s+90m/.test((await kc(['top', 'pods', '-l', 'app=web'])).stdout), 'kubectl top shows the usage');
  assert.match(await ok(['top', 'nodes']), /sim-node-0\s+\d+m/);

  // Load drops: the pods are replaced with ones using 10m (10% of their request).
  await ok(['patch', 'deploy', 'web', '--type=merge', '-p', '{"spec":{"template":{"metadata":{"annotations":{"kubicle.io/simulated-cpu":"10m"}}}}}']);
  await eventually(async () => (await replicas()) === 1, 'scaled down to minReplicas', 60_000);
});
