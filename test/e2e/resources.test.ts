import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rawClient } from '../support/http.js';
import { cleanup, eventually, type Kubicle, startKubicle } from '../support/kubicle.js';

/**
 * Every resource discovery lists gets the full verb set against a minimal valid object; plus
 * token authentication, health and metrics endpoints, legacy discovery and graceful deletion.
 */
let k: Kubicle;
let api: Awaited<ReturnType<typeof rawClient>>;
const tokenFile = path.join(os.tmpdir(), `kubicle-tokens-${process.pid}`);

before(async () => {
  await writeFile(tokenFile, 'sekret-token,alice,1001,"devs,ops"\n');
  k = await startKubicle({ args: ['--token-file', tokenFile] });
  api = await rawClient(k);
  await api.call('POST', '/api/v1/namespaces', JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'sweep' } }));
});
after(async () => {
  api.close();
  await cleanup(k);
});

const template = { metadata: { labels: { app: 's' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } };
const selector = { matchLabels: { app: 's' } };
const sweepWebhook = {
  name: 'sweep.kubicle.test',
  clientConfig: { url: 'https://127.0.0.1:1/sweep' },
  rules: [{ operations: ['CREATE'], apiGroups: ['sweep.invalid'], apiVersions: ['v1'], resources: ['nothing'] }],
  failurePolicy: 'Ignore',
  sideEffects: 'None',
  admissionReviewVersions: ['v1'],
};
const samples: Record<string, Record<string, unknown>> = {
  'v1/pods': { spec: { containers: [{ name: 'c', image: 'busybox' }] } },
  'v1/services': { spec: { ports: [{ port: 80 }] } },
  'v1/endpoints': { subsets: [{ addresses: [{ ip: '10.0.0.1' }], ports: [{ port: 80 }] }] },
  'v1/configmaps': { data: { a: 'b' } },
  'apiextensions.k8s.io/v1/customresourcedefinitions': {
    // A CRD's name is fixed by its plural and group.
    metadata: { name: 'sweeps.sweep.example.com' },
    spec: {
      group: 'sweep.example.com',
      scope: 'Namespaced',
      names: { plural: 'sweeps', kind: 'Sweep' },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  },
  // Webhooks that match no resource, so the rest of the sweep never calls them.
  'admissionregistration.k8s.io/v1/mutatingwebhookconfigurations': { webhooks: [{ ...sweepWebhook, reinvocationPolicy: 'Never' }] },
  'admissionregistration.k8s.io/v1/validatingwebhookconfigurations': { webhooks: [sweepWebhook] },
  'v1/secrets': { stringData: { a: 'b' } },
  'v1/serviceaccounts': {},
  'v1/events': { involvedObject: { kind: 'Pod', name: 'x', namespace: 'sweep' }, reason: 'Tested', message: 'm', type: 'Normal' },
  'v1/nodes': {},
  'v1/namespaces': {},
  'v1/persistentvolumes': { spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: '/tmp/pv' } } },
  'v1/persistentvolumeclaims': { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
  'v1/resourcequotas': { spec: { hard: { pods: '10' } } },
  'v1/limitranges': { spec: { limits: [{ type: 'Container', default: { cpu: '100m' } }] } },
  'apps/v1/deployments': { spec: { selector, template } },
  'apps/v1/replicasets': { spec: { selector, template } },
  'apps/v1/statefulsets': { spec: { selector, template, serviceName: 's' } },
  'apps/v1/daemonsets': { spec: { selector, template } },
  'apps/v1/controllerrevisions': { revision: 1, data: { spec: {} } },
  'batch/v1/jobs': { spec: { template: { spec: { containers: [{ name: 'c', image: 'busybox' }], restartPolicy: 'Never' } } } },
  'batch/v1/cronjobs': { spec: { schedule: '*/5 * * * *', jobTemplate: { spec: { template: { spec: { containers: [{ name: 'c', image: 'busybox' }], restartPolicy: 'OnFailure' } } } } } },
  'coordination.k8s.io/v1/leases': { spec: { holderIdentity: 'me', leaseDurationSeconds: 15 } },
  'discovery.k8s.io/v1/endpointslices': { addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'] }], ports: [{ port: 80 }] },
  'storage.k8s.io/v1/storageclasses': { provisioner: 'kubicle.io/local-path' },
  'node.k8s.io/v1/runtimeclasses': { handler: 'runc' },
  'policy/v1/poddisruptionbudgets': { spec: { minAvailable: 1, selector } },
  'networking.k8s.io/v1/networkpolicies': { spec: { podSelector: {} } },
  'networking.k8s.io/v1/ingresses': { spec: { defaultBackend: { service: { name: 's', port: { number: 80 } } } } },
  'networking.k8s.io/v1/ingressclasses': { spec: { controller: 'kubicle.io/ingress' } },
  'autoscaling/v2/horizontalpodautoscalers': { spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'd' }, maxReplicas: 3 } },
  'autoscaling/v1/horizontalpodautoscalers': { spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'd' }, maxReplicas: 3, targetCPUUtilizationPercentage: 50 } },
  'scheduling.k8s.io/v1/priorityclasses': { value: 1000 },
  'metrics.k8s.io/v1beta1/pods': { timestamp: '2026-11-23T00:00:00Z', window: '10s', containers: [{ name: 'c', usage: { cpu: '5m', memory: '1Mi' } }] },
  'metrics.k8s.io/v1beta1/nodes': { timestamp: '2026-11-23T00:00:00Z', window: '10s', usage: { cpu: '5m', memory: '1Mi' } },
  'rbac.authorization.k8s.io/v1/roles': { rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] },
  'rbac.authorization.k8s.io/v1/clusterroles': { rules: [{ nonResourceURLs: ['/x'], verbs: ['get'] }] },
  'rbac.authorization.k8s.io/v1/rolebindings': { roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' }, subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'u' }] },
  'rbac.authorization.k8s.io/v1/clusterrolebindings': { roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' }, subjects: [{ kind: 'ServiceAccount', namespace: 'sweep', name: 'default' }] },
  'authorization.k8s.io/v1/localsubjectaccessreviews': { spec: { user: 'u', resourceAttributes: { namespace: 'sweep', verb: 'get', resource: 'pods' } } },
  'authorization.k8s.io/v1/selfsubjectaccessreviews': { spec: { nonResourceAttributes: { path: '/version', verb: 'get' } } },
  'authorization.k8s.io/v1/selfsubjectrulesreviews': { spec: { namespace: 'sweep' } },
  'authorization.k8s.io/v1/subjectaccessreviews': { spec: { user: 'u', groups: ['g'], resourceAttributes: { verb: 'list', resource: 'nodes' } } },
  'authentication.k8s.io/v1/selfsubjectreviews': {},
  'authentication.k8s.io/v1beta1/selfsubjectreviews': {},
  'authentication.k8s.io/v1/tokenreviews': { spec: { token: 'not-a-token' } },
  'events.k8s.io/v1/events': { eventTime: '2026-11-23T00:00:00.000000Z', reportingController: 'test', reportingInstance: 'test-1', action: 'Test', reason: 'Tested', regarding: { kind: 'Pod', name: 'x', namespace: 'sweep' }, note: 'n', type: 'Normal' },
};

interface Served {
  gv: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  verbs: string[];
}

async function served(): Promise<Served[]> {
  const out: Served[] = [];
  const add = async (gv: string, base: string) => {
    for (const r of (await api.call('GET', base)).json.resources) if (!r.name.includes('/')) out.push({ gv, plural: r.name, kind: r.kind, namespaced: r.namespaced, verbs: r.verbs });
  };
  await add('v1', '/api/v1');
  for (const g of (await api.call('GET', '/apis')).json.groups) for (const v of g.versions) await add(v.groupVersion, `/apis/${v.groupVersion}`);
  return out;
}

describe('every served resource', () => {
  it('has a sample here (a new resource must get one)', async () => {
    const missing = (await served()).map((r) => `${r.gv}/${r.plural}`).filter((id) => !samples[id]);
    assert.deepEqual(missing, []);
  });

  it('create, get, list (JSON and Table), patch, update, watch, delete', async () => {
    for (const [n, r] of (await served()).entries()) {
      if (!r.verbs.includes('list')) continue; // the reviews: answered on create, kept nowhere (below)
      const id = `${r.gv}/${r.plural}`;
      const base = `${r.gv === 'v1' ? '/api/v1' : `/apis/${r.gv}`}${r.namespaced ? '/namespaces/sweep' : ''}/${r.plural}`;
      const name = (samples[id]?.metadata as { name?: string } | undefined)?.name ?? `sweep-${n}-${r.plural}`;
      const body = { apiVersion: r.gv, kind: r.kind, metadata: { name }, ...samples[id] };
      const made = await api.call('POST', `${base}?fieldValidation=Strict`, JSON.stringify(body));
      assert.equal(made.status, 201, `${id} create: ${made.text}`);
      assert.equal(made.json.kind, r.kind);
      assert.equal(made.json.apiVersion, r.gv);
      const got = await api.call('GET', `${base}/${name}`);
      assert.equal(got.status, 200, `${id} get`);
      assert.equal(got.json.metadata.uid, made.json.metadata.uid);
      const list = await api.call('GET', base);
      assert.equal(list.json.kind, `${r.kind}List`, id);
      assert.ok(list.json.items.some((i: { metadata: { name: string } }) => i.metadata.name === name), `${id} list`);
      const table = await api.call('GET', base, undefined, { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' });
      assert.equal(table.status, 200, `${id} table`);
      assert.ok(table.json.rows.length >= 1 && table.json.columnDefinitions.length >= 1, `${id} table rows`);
      const watch = api.watch(`${base}?watch=true&fieldSelector=metadata.name%3D${name}`);
      await watch.opened;
      const patched = await api.call('PATCH', `${base}/${name}`, '{"metadata":{"labels":{"swept":"yes"}}}', { 'Content-Type': 'application/merge-patch+json' });
      assert.equal(patched.status, 200, `${id} patch: ${patched.text}`);
      // Read-modify-write, retried on 409: controllers may write the object meanwhile.
      let put = { status: 0, text: '', json: {} as { metadata: { annotations: Record<string, string> } } };
      let current = patched.json;
      for (let attempt = 0; attempt < 5; attempt++) {
        current.metadata.annotations = { ...(current.metadata.annotations ?? {}), updated: 'yes' };
        put = await api.call('PUT', `${base}/${name}`, JSON.stringify(current));
        if (put.status !== 409) break;
        current = (await api.call('GET', `${base}/${name}`)).json;
      }
      assert.equal(put.status, 200, `${id} update: ${put.text}`);
      assert.equal(put.json.metadata.annotations.updated, 'yes');
      await watch.until(() => watch.events.filter((e) => e.type === 'MODIFIED').length >= 2);
      watch.stop();
      const del = await api.call('DELETE', `${base}/${name}`);
      assert.ok(del.status === 200 || del.status === 202, `${id} delete: ${del.text}`);
      // Namespaces and CRDs go once their contents are deleted (finalizers), the rest at once.
      if (r.plural === 'customresourcedefinitions') await eventually(async () => (await api.call('GET', `${base}/${name}`)).status === 404, `${id} gone`);
      else if (r.plural !== 'namespaces') assert.equal((await api.call('GET', `${base}/${name}`)).status, 404, `${id} gone`);
    }
  });

  it('the review kinds answer a create and keep nothing', async () => {
    const reviews = (await served()).filter((r) => !r.verbs.includes('list'));
    assert.ok(reviews.length >= 7, reviews.map((r) => r.plural).join());
    for (const r of reviews) {
      assert.deepEqual(r.verbs, ['create']);
      const base = `/apis/${r.gv}${r.namespaced ? '/namespaces/sweep' : ''}/${r.plural}`;
      const made = await api.call('POST', base, JSON.stringify({ apiVersion: r.gv, kind: r.kind, ...samples[`${r.gv}/${r.plural}`] }));
      assert.equal(made.status, 201, `${r.gv}/${r.plural}: ${made.text}`);
      assert.ok(made.json.status, `${r.plural} answered`);
      assert.equal((await api.call('GET', base)).status, 405, `${r.plural} cannot be listed`);
    }
  });

  it('deletecollection removes what the selector picks', async () => {
    const base = '/api/v1/namespaces/sweep/configmaps';
    for (const [n, team] of [
      ['dc-1', 'a'],
      ['dc-2', 'a'],
      ['dc-3', 'b'],
    ]) {
      await api.call('POST', base, JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: n, labels: { team } } }));
    }
    const r = await api.call('DELETE', `${base}?labelSelector=team%3Da`);
    assert.equal(r.status, 200);
    assert.equal(r.json.items.length, 2);
    const left = (await api.call('GET', base)).json.items.map((i: { metadata: { name: string } }) => i.metadata.name);
    assert.ok(left.includes('dc-3') && !left.includes('dc-1'));
  });
});

describe('pods', () => {
  it('a pod on a node is deleted gracefully; grace 0 removes it', async () => {
    const base = '/api/v1/namespaces/sweep/pods';
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'graceful' }, spec: { nodeName: 'node-1', terminationGracePeriodSeconds: 20, containers: [{ name: 'c', image: 'busybox' }] } };
    assert.equal((await api.call('POST', base, JSON.stringify(pod))).status, 201);
    const del = await api.call('DELETE', `${base}/graceful`);
    assert.equal(del.status, 202);
    assert.equal(del.json.metadata.deletionGracePeriodSeconds, 20);
    assert.ok(Date.parse(del.json.metadata.deletionTimestamp) > Date.now() + 10_000);
    const shown = await api.call('GET', `${base}`, undefined, { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' });
    assert.equal(shown.json.rows.find((row: { cells: string[] }) => row.cells[0] === 'graceful').cells[2], 'Terminating');
    const now = await api.call('DELETE', `${base}/graceful?gracePeriodSeconds=0`);
    assert.equal(now.status, 200);
    assert.equal((await api.call('GET', `${base}/graceful`)).status, 404);
    const immutable = await api.call('POST', base, JSON.stringify({ ...pod, metadata: { name: 'fixed' } }));
    assert.equal(immutable.status, 201);
    const change = await api.call('PATCH', `${base}/fixed`, '{"spec":{"restartPolicy":"Never"}}', { 'Content-Type': 'application/merge-patch+json' });
    assert.equal(change.status, 422);
    assert.match(change.json.message, /pod updates may not change fields other than/);
  });
});

describe('authentication, health, metrics, discovery', () => {
  const plain = (p: string, headers: Record<string, string> = {}) => fetch(`${k.url}${p}`, { headers });
  it('bearer tokens from the token file; health without credentials; anything else is 401', async () => {
    const { ca } = await k.creds();
    // fetch cannot take a CA, so talk HTTPS through node:https with the CA only (no client cert).
    const https = await import('node:https');
    const get = (p: string, headers: Record<string, string>) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port: k.port, path: p, ca, headers }, (res) => {
            let body = '';
            res.on('data', (d) => {
              body += d;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          })
          .on('error', reject);
      });
    // The token's user is known (RBAC then decides: the discovery roles let any user read /version).
    assert.equal((await get('/version', { Authorization: 'Bearer sekret-token' })).status, 200);
    const denied = await get('/api/v1/namespaces', { Authorization: 'Bearer sekret-token' });
    assert.equal(denied.status, 403);
    assert.match(JSON.parse(denied.body).message, /User "alice" cannot list resource "namespaces"/);
    assert.equal((await get('/api/v1/namespaces', { Authorization: 'Bearer wrong' })).status, 401);
    const anon = await get('/api/v1/namespaces', {});
    assert.equal(anon.status, 401);
    assert.equal(JSON.parse(anon.body).reason, 'Unauthorized');
    assert.equal((await get('/version', {})).status, 401, 'anonymous reaches the health endpoints only');
    // Probes and load balancers ask health with no credential, and read it as upstream's.
    assert.deepEqual(await get('/readyz', {}), { status: 200, body: 'ok' });
    const live = await get('/livez?verbose', {});
    assert.equal(live.status, 200);
    assert.match(live.body, /^\[\+\]ping ok\nlivez check passed\n$/);
    const ready = await get('/readyz?verbose&exclude=shutdown', {});
    assert.match(ready.body, /\[\+\]ping ok\n\[\+\]etcd ok\n\[\+\]shutdown excluded: ok\nreadyz check passed\n/);
    // One check by name is for those RBAC lets read it (system:public-info-viewer covers the three paths alone, as upstream's).
    assert.equal((await get('/readyz/etcd', {})).status, 403);
    const one = await api.call('GET', '/readyz/etcd');
    assert.deepEqual([one.status, one.text], [200, 'ok']);
    const unknown = await api.call('GET', '/readyz/nope');
    assert.equal(unknown.status, 404);
    assert.match(unknown.text, /nope is not a readyz check/);
    assert.ok(plain);
  });

  it('healthz, livez, readyz, metrics and version', async () => {
    for (const p of ['/healthz', '/livez', '/readyz']) {
      const r = await api.call('GET', p);
      assert.equal(r.status, 200, p);
      assert.equal(r.text, 'ok');
    }
    const m = await api.call('GET', '/metrics');
    assert.match(m.text, /# TYPE apiserver_request_total counter/);
    assert.match(m.text, /apiserver_request_total\{[^}]*verb="LIST"/);
    assert.match(m.text, /apiserver_request_duration_seconds_bucket/);
    const v = (await api.call('GET', '/version')).json;
    assert.match(v.gitVersion, /^v1\.\d+\.\d+/);
    assert.equal(v.major, '1');
  });

  it('legacy and aggregated discovery agree', async () => {
    const legacy = (await api.call('GET', '/apis')).json;
    assert.equal(legacy.kind, 'APIGroupList');
    const v2 = await api.call('GET', '/apis', undefined, { Accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json' });
    assert.match(String(v2.headers['content-type']), /v=v2;as=APIGroupDiscoveryList/);
    const v2beta1 = await api.call('GET', '/apis', undefined, { Accept: 'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json' });
    assert.equal(v2beta1.json.apiVersion, 'apidiscovery.k8s.io/v2beta1');
    assert.deepEqual(
      v2.json.items.map((g: { metadata: { name: string } }) => g.metadata.name),
      legacy.groups.map((g: { name: string }) => g.name),
    );
    const apps = v2.json.items.find((g: { metadata: { name: string } }) => g.metadata.name === 'apps');
    const deploy = apps.versions[0].resources.find((r: { resource: string }) => r.resource === 'deployments');
    assert.deepEqual(deploy.subresources.find((s: { subresource: string }) => s.subresource === 'scale').responseKind, { group: 'autoscaling', version: 'v1', kind: 'Scale' });
    const core = (await api.call('GET', '/api')).json;
    assert.equal(core.kind, 'APIVersions');
    const pb = await api.call('GET', '/openapi/v2', undefined, { Accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' });
    assert.equal(pb.headers['content-type'], 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf');
    const v3 = (await api.call('GET', '/openapi/v3')).json;
    const appsDoc = (await api.call('GET', v3.paths['apis/apps/v1'].serverRelativeURL)).json;
    const patch = appsDoc.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}'].patch;
    assert.deepEqual(patch['x-kubernetes-group-version-kind'], { group: 'apps', version: 'v1', kind: 'Deployment' });
    assert.ok(patch.parameters.some((p: { name: string }) => p.name === 'fieldValidation'));
  });
});
