import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cleanup, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/** The ResourceQuota controller's usage accounting, read back with stock kubectl. */
let k: Kubicle;
let kc: Awaited<ReturnType<typeof kubectlFor>>;
const ok = (args: string[], input?: string) => mustSucceed(kc)(args, input);

before(async () => {
  k = await startKubicle({ args: ['--simulate-nodes', '1'] });
  kc = await kubectlFor(k, '1.33');
  for (const ns of ['team', 'team2', 'capped']) await ok(['create', 'namespace', ns]);
});
after(async () => {
  await cleanup(k);
});

async function usedBecomes(quota: string, want: Record<string, string>, ns = 'team'): Promise<void> {
  const deadline = Date.now() + 20_000;
  let used: Record<string, string> = {};
  while (Date.now() < deadline) {
    used = JSON.parse((await ok(['get', 'quota', quota, '-n', ns, '-o', 'jsonpath={.status.used}'])) || '{}');
    if (Object.entries(want).every(([key, v]) => used[key] === v)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`quota ${quota} used ${JSON.stringify(used)}, want ${JSON.stringify(want)}`);
}

const podWith = (name: string, resources: object, extra: object = {}, ns = 'team') =>
  JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns }, spec: { containers: [{ name: 'c', image: 'nginx', resources }], ...extra } });

describe('resource quota usage', () => {
  it('counts pods, their requests and limits, services, claims and other kinds, and follows deletions', async () => {
    await ok(['create', 'quota', 'compute', '-n', 'team', '--hard=pods=10,requests.cpu=4,requests.memory=2Gi,limits.cpu=8,limits.memory=4Gi']);
    await ok(['create', 'quota', 'objects', '-n', 'team', '--hard=services=5,services.nodeports=4,configmaps=10,persistentvolumeclaims=3,requests.storage=10Gi,count/deployments.apps=2,local-path.storageclass.storage.k8s.io/requests.storage=5Gi']);
    await usedBecomes('compute', { pods: '0', 'requests.cpu': '0', 'requests.memory': '0', 'limits.cpu': '0', 'limits.memory': '0' });
    // The namespace's kube-root-ca.crt counts, as upstream.
    await usedBecomes('objects', { services: '0', configmaps: '1' });
    await ok(['apply', '-f', '-'], podWith('a', { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } }));
    // Limits only: requests default to the limits, as upstream's defaulting makes them.
    await ok(['apply', '-f', '-'], podWith('b', { limits: { cpu: '1', memory: '256Mi' } }));
    await usedBecomes('compute', { pods: '2', 'requests.cpu': '1250m', 'requests.memory': '320Mi', 'limits.cpu': '1500m', 'limits.memory': '384Mi' });
    await ok(['create', 'service', 'nodeport', 'np', '-n', 'team', '--tcp=80:8080,443:8443']);
    await ok(['create', 'service', 'clusterip', 'cip', '-n', 'team', '--tcp=80:8080']);
    await ok(['create', 'configmap', 'settings', '-n', 'team', '--from-literal=a=b']);
    await ok(['create', 'deployment', 'web', '-n', 'team', '--image=nginx', '--replicas=0']);
    await ok(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data', namespace: 'team' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '2Gi' } } } }));
    await usedBecomes('objects', {
      services: '2',
      'services.nodeports': '2',
      configmaps: '2',
      persistentvolumeclaims: '1',
      'requests.storage': '2Gi',
      'count/deployments.apps': '1',
      'local-path.storageclass.storage.k8s.io/requests.storage': '2Gi',
    });
    const described = await ok(['describe', 'quota', 'compute', '-n', 'team']);
    assert.match(described, /requests\.cpu\s+1250m\s+4/);
    await ok(['delete', 'pod', 'a', '-n', 'team', '--grace-period=0', '--force']);
    await usedBecomes('compute', { pods: '1', 'requests.cpu': '1', 'requests.memory': '256Mi' });
  });

  it('a scoped quota counts only the pods in its scope', async () => {
    await ok(['create', 'quota', 'besteffort', '-n', 'team2', '--hard=pods=5', '--scopes=BestEffort']);
    await usedBecomes('besteffort', { pods: '0' }, 'team2');
    await ok(['apply', '-f', '-'], podWith('free', {}, {}, 'team2'));
    await usedBecomes('besteffort', { pods: '1' }, 'team2');
    await ok(['create', 'priorityclass', 'gold', '--value=500']);
    await ok(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'gold', namespace: 'team2' }, spec: { hard: { pods: '3', 'requests.cpu': '2' }, scopeSelector: { matchExpressions: [{ scopeName: 'PriorityClass', operator: 'In', values: ['gold'] }] } } }));
    await usedBecomes('gold', { pods: '0', 'requests.cpu': '0' }, 'team2');
    await ok(['apply', '-f', '-'], podWith('vip', { requests: { cpu: '300m' } }, { priorityClassName: 'gold' }, 'team2'));
    await usedBecomes('gold', { pods: '1', 'requests.cpu': '300m' }, 'team2');
    await usedBecomes('besteffort', { pods: '1' }, 'team2');
  });
});

describe('resource quota admission', () => {
  it('refuses what would exceed a quota with upstream\'s message, and a dry run charges nothing', async () => {
    await ok(['create', 'quota', 'small', '-n', 'capped', '--hard=pods=2,requests.cpu=1,count/configmaps=2']);
    // kube-root-ca.crt takes one of the two.
    await usedBecomes('small', { pods: '0', 'requests.cpu': '0', 'count/configmaps': '1' }, 'capped');
    const refused = async (manifest: string) => {
      const r = await kc(['apply', '-f', '-'], { input: manifest });
      assert.notEqual(r.code, 0, 'the create should have been refused');
      return r.stderr;
    };
    assert.match(await refused(podWith('nocpu', {}, {}, 'capped')), /pods "nocpu" is forbidden: failed quota: small: must specify requests\.cpu/);
    await ok(['apply', '-f', '-'], podWith('one', { requests: { cpu: '600m' } }, {}, 'capped'));
    // Server-side dry run: checked against the quota, but nothing is charged.
    await ok(['apply', '--dry-run=server', '-f', '-'], podWith('ghost', { requests: { cpu: '300m' } }, {}, 'capped'));
    assert.equal(await ok(['get', 'quota', 'small', '-n', 'capped', '-o', 'jsonpath={.status.used.requests\\.cpu}']), '600m');
    assert.match(
      await refused(podWith('two', { requests: { cpu: '500m' } }, {}, 'capped')),
      /pods "two" is forbidden: exceeded quota: small, requested: requests\.cpu=500m, used: requests\.cpu=600m, limited: requests\.cpu=1/,
    );
    await ok(['apply', '-f', '-'], podWith('two', { requests: { cpu: '400m' } }, {}, 'capped'));
    assert.match(
      await refused(podWith('three', { requests: { cpu: '1m' } }, {}, 'capped')),
      /exceeded quota: small, requested: pods=1,requests\.cpu=1m, used: pods=2,requests\.cpu=1, limited: pods=2,requests\.cpu=1/,
    );
    await ok(['create', 'configmap', 'first', '-n', 'capped']);
    const r = await kc(['create', 'configmap', 'second', '-n', 'capped']);
    assert.match(r.stderr, /configmaps "second" is forbidden: exceeded quota: small, requested: count\/configmaps=1, used: count\/configmaps=2, limited: count\/configmaps=2/);
    // Freed room is usable again once the controller has recounted.
    await ok(['delete', 'pod', 'two', '-n', 'capped', '--grace-period=0', '--force']);
    await usedBecomes('small', { pods: '1', 'requests.cpu': '600m' }, 'capped');
    await ok(['apply', '-f', '-'], podWith('again', { requests: { cpu: '400m' } }, {}, 'capped'));
    await usedBecomes('small', { pods: '2', 'requests.cpu': '1' }, 'capped');
    // A controller meets the same refusal: the ReplicaSet reports it as FailedCreate.
    await ok(['create', 'deployment', 'over', '-n', 'capped', '--image=nginx']);
    const deadline = Date.now() + 20_000;
    let events = '';
    while (!/FailedCreate/.test(events)) {
      assert.ok(Date.now() < deadline, `no FailedCreate event: ${events}`);
      await new Promise((r) => setTimeout(r, 200));
      events = await ok(['get', 'events', '-n', 'capped', '--field-selector', 'involvedObject.kind=ReplicaSet', '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']);
    }
    assert.match(events, /FailedCreate: Error creating: pods "over-[a-z0-9]+-[a-z0-9]+" is forbidden: failed quota: small: must specify requests\.cpu/);
  });
});
