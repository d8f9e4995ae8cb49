import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KubeClient } from '../../src/client/kube-client.js';
import { loadKubeconfig } from '../../src/client/kubeconfig.js';
import { cm, rawClient } from '../support/http.js';
import { cleanup, type Kubicle, startKubicle } from '../support/kubicle.js';

/** API semantics over raw HTTP against `kubicle standalone`: bad input, lists, watches, deletion, subresources. */
let k: Kubicle;
let api: Awaited<ReturnType<typeof rawClient>>;
const CM = '/api/v1/namespaces/default/configmaps';

before(async () => {
  // A bare API server: these tests write status and scale by hand, as no controller may meanwhile.
  k = await startKubicle({ env: { KUBICLE_BOOKMARK_INTERVAL_MS: '300' }, args: ['--controllers', 'none'] });
  api = await rawClient(k);
});
after(async () => {
  api.close();
  await cleanup(k);
});

/** Objects at `path`, not counting kube-root-ca.crt, which the controller manager publishes whenever it gets to it. */
async function count(path = CM): Promise<number> {
  return (await api.call('GET', path)).json.items.filter((o: { metadata: { name: string } }) => o.metadata.name !== 'kube-root-ca.crt').length;
}

describe('bad input gets a Status with the right code and stores nothing', () => {
  const cases: [string, string, string, Record<string, string>, number, RegExp][] = [
    ['malformed JSON', 'POST', '{"apiVersion": "v1", "kind": ', {}, 400, /json parse error/],
    ['malformed YAML', 'POST', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x\n', { 'Content-Type': 'application/yaml' }, 400, /YAML/],
    ['not an object', 'POST', '[1,2]', {}, 400, /Kind' is missing/],
    ['missing kind', 'POST', '{"apiVersion":"v1","metadata":{"name":"x"}}', {}, 400, /Kind' is missing/],
    ['wrong kind for the URL', 'POST', '{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}', {}, 400, /cannot be handled as a ConfigMap/],
    ['unknown version in the body', 'POST', '{"apiVersion":"v9","kind":"ConfigMap","metadata":{"name":"x"}}', {}, 400, /does not match the expected API version/],
    ['namespace differs from the path', 'POST', '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"kube-system"}}', {}, 400, /does not match the namespace/],
    ['invalid name', 'POST', '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Not_Valid"}}', {}, 422, /ConfigMap "Not_Valid" is invalid: metadata.name/],
    ['unknown field under Strict', 'POST?fieldValidation=Strict', '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"dta":{}}', {}, 400, /strict decoding error: unknown field "dta"/],
    ['duplicate field under Strict', 'POST?fieldValidation=Strict', '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{},"data":{}}', {}, 400, /duplicate field "data"/],
    ['unsupported media type', 'POST', 'x', { 'Content-Type': 'text/plain' }, 415, /unknown format/],
    ['metadata not an object', 'POST', '{"apiVersion":"v1","kind":"ConfigMap","metadata":"x"}', {}, 400, /metadata must be an object/],
  ];
  for (const [name, method, body, headers, code, message] of cases) {
    it(name, async () => {
      const before = await count();
      const [m, q] = method.split('?');
      const r = await api.call(m, `${CM}${q ? `?${q}` : ''}`, body, headers);
      assert.equal(r.status, code, r.text);
      assert.equal(r.json.kind, 'Status');
      assert.equal(r.json.code, code);
      assert.match(r.json.message, message);
      assert.equal(await count(), before);
    });
  }

  it('invalid fields carry causes', async () => {
    const r = await api.call(
      'POST',
      '/api/v1/namespaces/default/pods',
      JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c' }, { name: 'c', image: 'x' }] } }),
    );
    assert.equal(r.status, 422);
    assert.equal(r.json.reason, 'Invalid');
    assert.deepEqual(
      r.json.details.causes.map((c: { field: string; reason: string }) => [c.field, c.reason]),
      [
        ['spec.containers[0].image', 'FieldValueRequired'],
        ['spec.containers[1].name', 'FieldValueDuplicate'],
      ],
    );
  });

  it('quantities, spread constraints, affinity terms and quota limits are validated; details name the object', async () => {
    const post = (path: string, body: object) => api.call('POST', path, JSON.stringify(body));
    const fields = (r: { json: { details: { causes: { field: string }[] } } }) => r.json.details.causes.map((c) => c.field);
    const pod = (spec: object) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'v' }, spec: { containers: [{ name: 'c', image: 'x' }], ...spec } });
    const res = await post('/api/v1/namespaces/default/pods', pod({ containers: [{ name: 'c', image: 'x', resources: { requests: { cpu: 'abc', memory: '-1' } } }] }));
    assert.equal(res.status, 422, res.text);
    assert.deepEqual(fields(res), ['spec.containers[0].resources.requests[cpu]', 'spec.containers[0].resources.requests[memory]']);
    assert.deepEqual({ name: res.json.details.name, kind: res.json.details.kind }, { name: 'v', kind: 'Pod' }, 'kubectl prints: The Pod "v" is invalid');
    const over = await post('/api/v1/namespaces/default/pods', pod({ containers: [{ name: 'c', image: 'x', resources: { requests: { cpu: '2' }, limits: { cpu: '1' } } }] }));
    assert.match(over.json.message, /must be less than or equal to cpu limit of 1/);
    const spread = await post('/api/v1/namespaces/default/pods', pod({ topologySpreadConstraints: [{ maxSkew: 0, whenUnsatisfiable: 'Maybe' }] }));
    assert.deepEqual(fields(spread), ['spec.topologySpreadConstraints[0].maxSkew', 'spec.topologySpreadConstraints[0].topologyKey', 'spec.topologySpreadConstraints[0].whenUnsatisfiable']);
    const anti = await post('/api/v1/namespaces/default/pods', pod({ affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: {} }] } } }));
    assert.deepEqual(fields(anti), ['spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey']);
    const quota = await post('/api/v1/namespaces/default/resourcequotas', { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'q' }, spec: { hard: { pods: 'lots' } } });
    assert.deepEqual(fields(quota), ['spec.hard[pods]']);
    const deploy = await post('/apis/apps/v1/namespaces/default/deployments', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'v' }, spec: { replicas: -1, selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } } });
    assert.deepEqual({ name: deploy.json.details.name, group: deploy.json.details.group, kind: deploy.json.details.kind }, { name: 'v', group: 'apps', kind: 'Deployment' });
    for (const path of ['/api/v1/namespaces/default/pods/v', '/api/v1/namespaces/default/resourcequotas/q', '/apis/apps/v1/namespaces/default/deployments/v']) assert.equal((await api.call('GET', path)).status, 404, `${path}: nothing stored`);
  });

  it('a body over 3 MiB is refused with 413', async () => {
    const big = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'big' }, data: { k: 'x'.repeat(3 * 1024 * 1024 + 10) } });
    const r = await api.call('POST', CM, big);
    assert.equal(r.status, 413);
    assert.equal(r.json.reason, 'RequestEntityTooLarge');
    assert.equal((await api.call('GET', `${CM}/big`)).status, 404);
  });

  it('unknown resources and versions are 404; wrong methods 405', async () => {
    assert.equal((await api.call('GET', '/apis/apps/v9/deployments')).status, 404);
    assert.equal((await api.call('GET', '/api/v1/widgets')).status, 404);
    assert.equal((await api.call('GET', '/api/v1/namespaces/default/nodes')).status, 404);
    assert.equal((await api.call('POST', `${CM}/named`, cm('named'))).status, 405);
  });

  it('unknown fields under Warn are kept out and warned about', async () => {
    const r = await api.call('POST', `${CM}?fieldValidation=Warn`, JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'warned' }, extra: 1 }));
    assert.equal(r.status, 201);
    assert.match(String(r.headers.warning), /unknown field \\"extra\\"/);
    assert.equal(r.json.extra, undefined);
    assert.equal((await api.call('GET', `${CM}/warned`)).json.extra, undefined, 'unknown fields are dropped, not stored');
    const ignored = await api.call('POST', `${CM}?fieldValidation=Ignore`, JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ignored', bogus: 1 } }));
    assert.equal(ignored.status, 201);
    assert.equal(ignored.headers.warning, undefined);
    assert.equal(ignored.json.metadata.bogus, undefined);
  });

  it('unauthenticated requests get 401 and the server stays up', async () => {
    const res = await fetch(`${k.url}/api/v1/namespaces`).catch((e) => e);
    // Without our CA the TLS handshake fails; with it but no credentials the answer is 401 (checked by the kubectl suite's kubeconfig-less call below).
    assert.ok(res instanceof Error || res.status === 401);
    assert.equal((await api.call('GET', '/readyz')).status, 200);
  });
});

describe('lists', () => {
  it('paginates consistently with limit and continue', async () => {
    for (let i = 0; i < 25; i++) assert.equal((await api.call('POST', '/api/v1/namespaces/kube-public/configmaps', cm(`page-${String(i).padStart(2, '0')}`, 'kube-public'))).status, 201);
    const first = await api.call('GET', '/api/v1/namespaces/kube-public/configmaps?limit=10');
    assert.equal(first.json.items.length, 10);
    assert.ok(first.json.metadata.continue);
    // A change between pages does not show in later pages.
    await api.call('DELETE', '/api/v1/namespaces/kube-public/configmaps/page-15');
    let names = first.json.items.map((i: { metadata: { name: string } }) => i.metadata.name);
    let token = first.json.metadata.continue;
    while (token) {
      const page = await api.call('GET', `/api/v1/namespaces/kube-public/configmaps?limit=10&continue=${encodeURIComponent(token)}`);
      assert.equal(page.status, 200, page.text);
      assert.equal(page.json.metadata.resourceVersion, first.json.metadata.resourceVersion);
      names = names.concat(page.json.items.map((i: { metadata: { name: string } }) => i.metadata.name));
      token = page.json.metadata.continue;
    }
    assert.equal(names.filter((n: string) => n.startsWith('page-')).length, 25);
    assert.ok(names.includes('page-15'));
    const bad = await api.call('GET', '/api/v1/namespaces/kube-public/configmaps?limit=10&continue=garbage');
    assert.equal(bad.status, 400);
  });

  it('label and field selectors; unsupported field labels are 400', async () => {
    await api.call('POST', CM, cm('sel-a', 'default', { metadata: { labels: { team: 'a' } } }));
    await api.call('POST', CM, cm('sel-b', 'default', { metadata: { labels: { team: 'b' } } }));
    const byLabel = await api.call('GET', `${CM}?labelSelector=${encodeURIComponent('team in (a)')}`);
    assert.deepEqual(
      byLabel.json.items.map((i: { metadata: { name: string } }) => i.metadata.name),
      ['sel-a'],
    );
    const byField = await api.call('GET', `/api/v1/configmaps?fieldSelector=${encodeURIComponent('metadata.name=sel-b,metadata.namespace=default')}`);
    assert.deepEqual(
      byField.json.items.map((i: { metadata: { name: string } }) => i.metadata.name),
      ['sel-b'],
    );
    const bad = await api.call('GET', `${CM}?fieldSelector=spec.nodeName%3Dx`);
    assert.equal(bad.status, 400);
    assert.match(bad.json.message, /field label not supported: spec.nodeName/);
  });

  it('a resourceVersion newer than the store is 504 with ResourceVersionTooLarge', async () => {
    const rv = Number((await api.call('GET', CM)).json.metadata.resourceVersion);
    const r = await api.call('GET', `${CM}?resourceVersion=${rv + 1000}`);
    assert.equal(r.status, 504);
    assert.equal(r.json.details.causes[0].reason, 'ResourceVersionTooLarge');
  });

  it('serves Tables with the kind columns', async () => {
    const r = await api.call('GET', CM, undefined, { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' });
    assert.match(String(r.headers['content-type']), /as=Table/);
    assert.deepEqual(
      r.json.columnDefinitions.map((c: { name: string }) => c.name),
      ['Name', 'Data', 'Age'],
    );
    assert.equal(r.json.rows[0].object.kind, 'PartialObjectMetadata');
  });
});

describe('watch', () => {
  it('from a resourceVersion: ADDED, MODIFIED, DELETED, selector transitions, bookmarks', async () => {
    const rv = (await api.call('GET', CM)).json.metadata.resourceVersion;
    const all = api.watch(`${CM}?watch=true&resourceVersion=${rv}&allowWatchBookmarks=true`);
    const sel = api.watch(`${CM}?watch=true&resourceVersion=${rv}&labelSelector=w%3Dyes`);
    await Promise.all([all.opened, sel.opened]);
    const created = (await api.call('POST', CM, cm('w1'))).json;
    await api.call('PATCH', `${CM}/w1`, JSON.stringify({ metadata: { labels: { w: 'yes' } } }), { 'Content-Type': 'application/merge-patch+json' });
    await api.call('PATCH', `${CM}/w1`, JSON.stringify({ metadata: { labels: { w: 'no' } } }), { 'Content-Type': 'application/merge-patch+json' });
    await api.call('DELETE', `${CM}/w1`);
    await all.until(() => all.events.filter((e) => e.object?.metadata?.name === 'w1').length >= 4);
    assert.deepEqual(
      all.events.filter((e) => e.object?.metadata?.name === 'w1').map((e) => e.type),
      ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED'],
    );
    assert.equal(all.events.find((e) => e.type === 'ADDED').object.metadata.resourceVersion, created.metadata.resourceVersion);
    await sel.until(() => sel.events.length >= 2);
    assert.deepEqual(
      sel.events.map((e) => e.type),
      ['ADDED', 'DELETED'],
      'entering the selection is ADDED, leaving it DELETED',
    );
    await all.until(() => all.events.some((e) => e.type === 'BOOKMARK'));
    const bm = all.events.find((e) => e.type === 'BOOKMARK');
    assert.equal(bm.object.kind, 'ConfigMap');
    assert.ok(Number(bm.object.metadata.resourceVersion) > 0);
    all.stop();
    sel.stop();
  });

  it('without a resourceVersion starts with ADDED for current objects; timeoutSeconds ends the stream', async () => {
    const w = api.watch(`${CM}?watch=1&fieldSelector=metadata.name%3Dsel-a&timeoutSeconds=1`);
    await w.opened;
    await w.until(() => w.events.length >= 1);
    assert.equal(w.events[0].type, 'ADDED');
    assert.equal(w.events[0].object.metadata.name, 'sel-a');
  });
});

describe('writes', () => {
  it('dryRun=All validates but stores nothing', async () => {
    const r = await api.call('POST', `${CM}?dryRun=All`, cm('dry'));
    assert.equal(r.status, 201);
    assert.equal((await api.call('GET', `${CM}/dry`)).status, 404);
    assert.equal((await api.call('POST', `${CM}?dryRun=Maybe`, cm('dry'))).status, 400);
  });

  it('finalizers hold deletion; removing the last one deletes', async () => {
    await api.call('POST', CM, cm('fin', 'default', { metadata: { finalizers: ['example.com/hold'] } }));
    const del = await api.call('DELETE', `${CM}/fin`);
    assert.equal(del.status, 202);
    assert.ok(del.json.metadata.deletionTimestamp);
    const held = await api.call('GET', `${CM}/fin`);
    assert.equal(held.status, 200);
    const add = await api.call('PATCH', `${CM}/fin`, JSON.stringify({ metadata: { finalizers: ['example.com/hold', 'example.com/more'] } }), { 'Content-Type': 'application/merge-patch+json' });
    assert.equal(add.status, 422, 'no new finalizers on an object being deleted');
    const rm = await api.call('PATCH', `${CM}/fin`, JSON.stringify({ metadata: { finalizers: null } }), { 'Content-Type': 'application/merge-patch+json' });
    assert.equal(rm.status, 200);
    assert.equal((await api.call('GET', `${CM}/fin`)).status, 404);
  });

  it('concurrent patches all land; a PUT with a stale resourceVersion is a 409', async () => {
    const c = (await api.call('POST', CM, cm('racy'))).json;
    // Issued together, these share commit groups and race for the same revision: each must be
    // retried on the newer object, as upstream's GuaranteedUpdate does, never answered 409.
    const patches = await Promise.all(
      Array.from({ length: 24 }, (_, i) => api.call('PATCH', `${CM}/racy`, JSON.stringify({ metadata: { labels: { [`l${i}`]: 'x' } } }), { 'Content-Type': 'application/merge-patch+json' })),
    );
    assert.deepEqual(patches.map((p) => p.status), Array(24).fill(200), patches.find((p) => p.status !== 200)?.text);
    const now = (await api.call('GET', `${CM}/racy`)).json;
    assert.equal(Object.keys(now.metadata.labels).length, 24);
    const stale = await api.call('PUT', `${CM}/racy`, JSON.stringify({ ...c, data: { k: 'v' } }));
    assert.equal(stale.status, 409, stale.text);
  });

  it('delete preconditions and propagation policy', async () => {
    const c = (await api.call('POST', CM, cm('pre'))).json;
    const wrong = await api.call('DELETE', `${CM}/pre`, JSON.stringify({ preconditions: { uid: 'nope' } }));
    assert.equal(wrong.status, 409, wrong.text);
    const orphan = await api.call('DELETE', `${CM}/pre`, JSON.stringify({ propagationPolicy: 'Orphan', preconditions: { uid: c.metadata.uid } }));
    assert.equal(orphan.status, 202);
    assert.deepEqual(orphan.json.metadata.finalizers, ['orphan'], 'kept for the garbage collector');
  });

  it('generation follows spec; status and scale subresources', async () => {
    const body = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'gen' },
      spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i' }] } } },
      status: { replicas: 42 },
    };
    const D = '/apis/apps/v1/namespaces/default/deployments';
    const created = (await api.call('POST', D, JSON.stringify(body))).json;
    assert.equal(created.metadata.generation, 1);
    assert.equal(created.status, undefined, 'status is not set on create');
    assert.equal(created.spec.replicas, 1, 'defaulted');
    const labelled = (await api.call('PATCH', `${D}/gen`, '{"metadata":{"labels":{"x":"y"}}}', { 'Content-Type': 'application/merge-patch+json' })).json;
    assert.equal(labelled.metadata.generation, 1, 'metadata changes keep the generation');
    const st = (await api.call('PATCH', `${D}/gen/status`, '{"status":{"replicas":3},"spec":{"replicas":9}}', { 'Content-Type': 'application/merge-patch+json' })).json;
    assert.equal(st.status.replicas, 3);
    assert.equal(st.spec.replicas, 1, '/status ignores spec');
    const main = (await api.call('PATCH', `${D}/gen`, '{"status":{"replicas":7},"spec":{"replicas":2}}', { 'Content-Type': 'application/merge-patch+json' })).json;
    assert.equal(main.status.replicas, 3, 'main writes ignore status');
    assert.equal(main.metadata.generation, 2);
    const scale = (await api.call('GET', `${D}/gen/scale`)).json;
    assert.deepEqual([scale.kind, scale.apiVersion, scale.spec.replicas, scale.status.selector], ['Scale', 'autoscaling/v1', 2, 'a=b']);
    const scaled = await api.call('PUT', `${D}/gen/scale`, JSON.stringify({ ...scale, spec: { replicas: 5 } }));
    assert.equal(scaled.status, 200);
    assert.equal((await api.call('GET', `${D}/gen`)).json.spec.replicas, 5);
    const stale = await api.call('PUT', `${D}/gen/scale`, JSON.stringify({ ...scale, spec: { replicas: 6 } }));
    assert.equal(stale.status, 409, 'a scale with an old resourceVersion conflicts');
    const immut = await api.call('PATCH', `${D}/gen`, '{"spec":{"selector":{"matchLabels":{"a":"c"}},"template":{"metadata":{"labels":{"a":"c"}}}}}', { 'Content-Type': 'application/merge-patch+json' });
    assert.equal(immut.status, 422);
    assert.match(immut.json.message, /spec.selector: Invalid value.*field is immutable/);
  });

  it('autoscaling v1 and v2 are one resource', async () => {
    const v2 = {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'h' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'gen' }, minReplicas: 1, maxReplicas: 5, metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } } }] },
    };
    assert.equal((await api.call('POST', '/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers', JSON.stringify(v2))).status, 201);
    const v1 = (await api.call('GET', '/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/h')).json;
    assert.equal(v1.apiVersion, 'autoscaling/v1');
    assert.equal(v1.spec.targetCPUUtilizationPercentage, 60);
  });
});

describe('namespaces', () => {
  it('Active, Terminating, contents deleted, gone; the default service account appears', async () => {
    // The namespace and service-account controllers run even with --controllers none.
    assert.equal((await api.call('POST', '/api/v1/namespaces', JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'doomed' } }))).status, 201);
    const deadline = Date.now() + 10_000;
    while ((await api.call('GET', '/api/v1/namespaces/doomed/serviceaccounts/default')).status !== 200) {
      assert.ok(Date.now() < deadline, 'default service account not created');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await api.call('POST', '/api/v1/namespaces/doomed/configmaps', cm('inside', 'doomed'))).status, 201);
    const del = await api.call('DELETE', '/api/v1/namespaces/doomed');
    assert.equal(del.status, 202);
    assert.equal(del.json.status.phase, 'Terminating');
    const refused = await api.call('POST', '/api/v1/namespaces/doomed/configmaps', cm('late', 'doomed'));
    if (refused.status !== 404) {
      assert.equal(refused.status, 403);
      assert.match(refused.json.message, /because it is being terminated/);
    }
    while ((await api.call('GET', '/api/v1/namespaces/doomed')).status !== 404) {
      assert.ok(Date.now() < deadline + 10_000, 'namespace never went away');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await count('/api/v1/namespaces/doomed/configmaps'), 0);
    assert.equal((await api.call('POST', '/api/v1/namespaces/nowhere/configmaps', cm('x', 'nowhere'))).status, 404);
    const keep = await api.call('DELETE', '/api/v1/namespaces/default');
    assert.equal(keep.status, 403);
  });
});

describe('--port 0', () => {
  it('serves on a free port that the kubeconfig, the kubernetes Service and its Endpoints all name', async () => {
    const free = await startKubicle({ args: ['--controllers', 'none', '--port', '0'] });
    try {
      const server = (await loadKubeconfig(free.kubeconfig)).server;
      const port = Number(new URL(server).port);
      assert.ok(port > 0, `the kubeconfig names the bound port: ${server}`);
      const client = new KubeClient(await loadKubeconfig(free.kubeconfig));
      try {
        const svc = await client.get('/api/v1/namespaces/default/services/kubernetes');
        assert.equal(svc.spec.ports[0].targetPort, port);
        const ep = await client.get('/api/v1/namespaces/default/endpoints/kubernetes');
        assert.equal(ep.subsets[0].ports[0].port, port);
      } finally {
        client.close();
      }
    } finally {
      await cleanup(free);
    }
  });
});
