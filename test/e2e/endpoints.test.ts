import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { cleanup, eventually, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/** Services get Endpoints and EndpointSlices that follow their pods' readiness. */
let k: Kubicle;
before(async () => {
  k = await startKubicle({ args: ['--simulate-nodes', '2'] });
});
after(async () => {
  await cleanup(k);
});


it('endpoints and slices track ready pods; describe shows them on 1.27 and 1.33', async () => {
  const kc = await kubectlFor(k, '1.33');
  const ok = mustSucceed(kc);
  const deploy = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'nginx', ports: [{ name: 'http', containerPort: 8080 }] }] } } } };
  await ok(['apply', '-f', '-'], JSON.stringify(deploy));
  await ok(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ name: 'web', port: 80, targetPort: 'http' }] } }));
  await ok(['rollout', 'status', 'deploy/web', '--timeout=30s']);
  const ips = async () => JSON.parse(await ok(['get', 'pods', '-l', 'app=web', '-o', 'json'])).items.map((p: { status: { podIP: string } }) => p.status.podIP).sort();
  const ready = async () => {
    const ep = JSON.parse(await ok(['get', 'endpoints', 'web', '-o', 'json']));
    return (ep.subsets ?? []).flatMap((s: { addresses?: { ip: string }[] }) => (s.addresses ?? []).map((a) => a.ip)).sort();
  };
  await eventually(async () => JSON.stringify(await ready()) === JSON.stringify(await ips()), 'endpoints list both pods');
  const ep = JSON.parse(await ok(['get', 'endpoints', 'web', '-o', 'json']));
  assert.deepEqual(ep.subsets[0].ports, [{ name: 'web', port: 8080, protocol: 'TCP' }], 'the named targetPort resolves to the container port');
  const slices = JSON.parse(await ok(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=web', '-o', 'json'])).items;
  assert.equal(slices.length, 1);
  assert.equal(slices[0].endpoints.length, 2);
  assert.ok(slices[0].endpoints.every((e: { conditions: { ready: boolean } }) => e.conditions.ready));
  for (const version of ['1.27', '1.33']) {
    const kv = await kubectlFor(k, version);
    const d = await kv(['describe', 'svc', 'web']);
    assert.equal(d.code, 0, d.stderr);
    for (const ip of await ips()) assert.match(d.stdout, new RegExp(`Endpoints:.*${ip.replace(/\./g, '\\.')}:8080`), `kubectl ${version} describe shows ${ip}`);
  }

  // A pod that stops being ready moves to notReadyAddresses and its slice endpoint turns not ready.
  const pod = await ok(['get', 'pods', '-l', 'app=web', '-o', 'jsonpath={.items[0].metadata.name}']);
  const podIp = await ok(['get', 'pod', pod, '-o', 'jsonpath={.status.podIP}']);
  await ok(['patch', 'pod', pod, '--subresource=status', '--type=strategic', '-p', '{"status":{"conditions":[{"type":"Ready","status":"False"}]}}']);
  await eventually(async () => !(await ready()).includes(podIp), 'not-ready pod leaves addresses');
  const after = JSON.parse(await ok(['get', 'endpoints', 'web', '-o', 'json']));
  assert.ok(after.subsets.some((s: { notReadyAddresses?: { ip: string }[] }) => (s.notReadyAddresses ?? []).some((a) => a.ip === podIp)));
  await eventually(async () => {
    const s = JSON.parse(await ok(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=web', '-o', 'json'])).items[0];
    return s.endpoints.some((e: { addresses: string[]; conditions: { ready: boolean } }) => e.addresses[0] === podIp && !e.conditions.ready);
  }, 'slice marks it not ready');

  await ok(['delete', 'svc', 'web']);
  await eventually(async () => (await kc(['get', 'endpoints', 'web'])).code !== 0, 'endpoints removed with the service');
  await eventually(async () => !(await ok(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=web', '-o', 'name'])).trim(), 'slices removed with the service');
});
