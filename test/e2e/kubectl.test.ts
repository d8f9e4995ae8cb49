import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanup, type Kubicle, kubectlFor, kubectlPath, kubectlVersions, startKubicle } from '../support/kubicle.js';

/** Stock kubectl against `kubicle standalone`: the daily commands, on the oldest and newest supported clients. */
let k: Kubicle;
let tmp: string;
before(async () => {
  // Simulated nodes: the Deployment used below really rolls out and becomes Available.
  k = await startKubicle({ args: ['--simulate-nodes', '2'] });
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kubectl-e2e-'));
});
after(async () => {
  await cleanup(k);
});

const deployment = (ns: string, replicas: number, image = 'nginx:1.25') => `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: ${ns}
  labels: {app: web}
spec:
  replicas: ${replicas}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: ${image}
        env: [{name: A, value: "1"}]
`;

const configmap = (ns: string, value: string) => `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: ${ns}}
data: {mode: "${value}"}
`;

for (const version of ['1.27', '1.33']) {
  describe(`kubectl ${version}`, () => {
    const ns = `v${version.replace('.', '')}`;
    let kc: Awaited<ReturnType<typeof kubectlFor>>;
    const ok = async (args: string[], opts?: Parameters<typeof kc>[1]) => {
      const r = await kc(args, opts);
      assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed: ${r.stderr}`);
      return r.stdout;
    };
    before(async () => {
      kc = await kubectlFor(k, version);
      await ok(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }) });
    });

    it('create -f and apply -f (new, unchanged, changed)', async () => {
      const f = path.join(tmp, `${ns}-deploy.yaml`);
      await writeFile(f, deployment(ns, 2));
      assert.match(await ok(['create', '-f', f]), /deployment.apps\/web created/);
      const again = await kc(['create', '-f', f]);
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /AlreadyExists|already exists/);
      const cm = path.join(tmp, `${ns}-cm.yaml`);
      await writeFile(cm, configmap(ns, 'one'));
      assert.match(await ok(['apply', '-f', cm]), /configmap\/settings created/);
      assert.match(await ok(['apply', '-f', cm]), /configmap\/settings unchanged/);
      await writeFile(cm, configmap(ns, 'two'));
      assert.match(await ok(['apply', '-f', cm]), /configmap\/settings configured/);
      assert.equal(await ok(['get', 'cm', 'settings', '-n', ns, '-o', 'jsonpath={.data.mode}']), 'two');
      await writeFile(f, deployment(ns, 3, 'nginx:1.26'));
      assert.match(await ok(['apply', '-f', f]), /deployment.apps\/web configured/);
      const d = JSON.parse(await ok(['get', 'deploy', 'web', '-n', ns, '-o', 'json']));
      assert.equal(d.spec.replicas, 3);
      assert.equal(d.spec.template.spec.containers[0].image, 'nginx:1.26');
      assert.deepEqual(d.spec.template.spec.containers[0].env, [{ name: 'A', value: '1' }]);
      assert.equal(d.metadata.generation, 2);
    });

    it('get in every output format', async () => {
      const wide = await ok(['get', 'deploy', '-n', ns, '-o', 'wide']);
      assert.match(wide, /NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\s+CONTAINERS\s+IMAGES\s+SELECTOR/);
      assert.match(wide, /web\s+\d\/3\s+\d\s+\d\s+\S+\s+web\s+nginx:1.26\s+app=web/);
      assert.match(await ok(['get', 'deploy', 'web', '-n', ns, '-o', 'yaml']), /kind: Deployment[\s\S]*replicas: 3/);
      assert.equal(await ok(['get', 'deploy', '-n', ns, '-o', 'name']), 'deployment.apps/web\n');
      assert.equal(await ok(['get', 'deploy', 'web', '-n', ns, '-o', 'jsonpath={.metadata.labels.app}']), 'web');
      assert.match(await ok(['get', 'deploy', '-A']), new RegExp(`NAMESPACE\\s+NAME[\\s\\S]*${ns}\\s+web`));
      assert.match(await ok(['get', 'deploy', '-n', ns, '--show-labels']), /LABELS[\s\S]*app=web/);
      assert.match(await ok(['get', 'deploy', '-n', ns, '-l', 'app=web']), /web/);
      assert.match(await ok(['get', 'deploy', '-n', ns, '-l', 'app=other']), /^$/);
      for (const name of ['b-cm', 'a-cm']) await ok(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data: { k: 'v' } }) });
      const sorted = await ok(['get', 'cm', '-n', ns, '--sort-by=.metadata.name', '-o', 'name']);
      const names = sorted.trim().split('\n');
      assert.deepEqual(names, [...names].sort());
      assert.ok(names.includes('configmap/a-cm'));
    });

    it('get -w streams changes', async () => {
      const child = spawn(kubectlPath(version), ['--cache-dir', path.join(tmp, `${ns}-wcache`), 'get', 'cm', '-n', ns, '-w'], { env: { ...process.env, KUBECONFIG: k.kubeconfig } });
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      try {
        const deadline = Date.now() + 20_000;
        while (!out.includes('settings')) {
          assert.ok(Date.now() < deadline, `no initial list in watch output: ${out}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        await ok(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'watched', namespace: ns } }) });
        while (!out.includes('watched')) {
          assert.ok(Date.now() < deadline, `watch did not show the new object: ${out}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        child.kill();
      }
    });

    it('describe shows the object and its events', async () => {
      await ok(['create', '-n', ns, '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name: 'web.1', namespace: ns },
          involvedObject: { kind: 'Deployment', name: 'web', namespace: ns, apiVersion: 'apps/v1' },
          reason: 'ScalingReplicaSet',
          message: 'Scaled up replica set web-1 to 3',
          type: 'Normal',
          source: { component: 'deployment-controller' },
          count: 1,
        }),
      });
      const uid = await ok(['get', 'deploy', 'web', '-n', ns, '-o', 'jsonpath={.metadata.uid}']);
      await ok(['patch', 'event', 'web.1', '-n', ns, '--type=merge', '-p', JSON.stringify({ involvedObject: { uid } })]);
      const d = await ok(['describe', 'deploy', 'web', '-n', ns]);
      assert.match(d, /Name:\s+web/);
      assert.match(d, /Replicas:\s+3 desired/);
      assert.match(d, /ScalingReplicaSet\s+.*Scaled up replica set web-1 to 3/);
    });

    it('edit with KUBE_EDITOR', async () => {
      const editor = path.join(tmp, 'editor.sh');
      await writeFile(editor, '#!/bin/sh\nsed -i "s/mode: two/mode: edited/" "$1"\n');
      await chmod(editor, 0o755);
      assert.match(await ok(['edit', 'cm', 'settings', '-n', ns], { env: { KUBE_EDITOR: editor } }), /configmap\/settings edited/);
      assert.equal(await ok(['get', 'cm', 'settings', '-n', ns, '-o', 'jsonpath={.data.mode}']), 'edited');
    });

    it('patch json, merge and strategic; label; annotate; scale', async () => {
      await ok(['patch', 'deploy', 'web', '-n', ns, '--type=json', '-p', '[{"op":"replace","path":"/spec/replicas","value":1}]']);
      await ok(['patch', 'deploy', 'web', '-n', ns, '--type=merge', '-p', '{"metadata":{"labels":{"merged":"yes"}}}']);
      await ok(['patch', 'deploy', 'web', '-n', ns, '--type=strategic', '-p', '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"B","value":"2"}]}]}}}}']);
      const d = JSON.parse(await ok(['get', 'deploy', 'web', '-n', ns, '-o', 'json']));
      assert.equal(d.spec.replicas, 1);
      assert.equal(d.metadata.labels.merged, 'yes');
      assert.deepEqual(
        d.spec.template.spec.containers[0].env.map((e: { name: string }) => e.name),
        ['A', 'B'],
        'strategic merge keeps A and adds B by name',
      );
      await ok(['label', 'deploy', 'web', '-n', ns, 'tier=frontend']);
      await ok(['annotate', 'deploy', 'web', '-n', ns, 'note=hello']);
      assert.match(await ok(['scale', 'deploy', 'web', '-n', ns, '--replicas=4']), /scaled/);
      const after = JSON.parse(await ok(['get', 'deploy', 'web', '-n', ns, '-o', 'json']));
      assert.equal(after.metadata.labels.tier, 'frontend');
      assert.equal(after.metadata.annotations.note, 'hello');
      assert.equal(after.spec.replicas, 4);
    });

    it('wait --for=condition and --for=delete; delete waits', async () => {
      // The deployment controller sets Available once the pods on the simulated nodes are ready.
      const w = await kc(['wait', '--for=condition=Available', 'deploy/web', '-n', ns, '--timeout=30s']);
      assert.equal(w.code, 0, w.stderr);
      assert.match(w.stdout, /condition met/);
      const del = kc(['wait', '--for=delete', 'cm/a-cm', '-n', ns, '--timeout=20s']);
      await new Promise((r) => setTimeout(r, 500));
      assert.match(await ok(['delete', 'cm', 'a-cm', '-n', ns]), /configmap "a-cm" deleted/);
      assert.equal((await del).code, 0);
      const gone = await kc(['get', 'cm', 'a-cm', '-n', ns]);
      assert.notEqual(gone.code, 0);
      assert.match(gone.stderr, /NotFound.*configmaps "a-cm" not found/);
    });

    it('a stale write gets 409 Conflict', async () => {
      const cm = JSON.parse(await ok(['get', 'cm', 'settings', '-n', ns, '-o', 'json']));
      await ok(['patch', 'cm', 'settings', '-n', ns, '--type=merge', '-p', '{"data":{"mode":"newer"}}']);
      cm.data.mode = 'stale';
      const r = await kc(['replace', '-f', '-'], { input: JSON.stringify(cm) });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Conflict.*the object has been modified/);
      assert.equal(await ok(['get', 'cm', 'settings', '-n', ns, '-o', 'jsonpath={.data.mode}']), 'newer');
    });

    it('api-resources, api-versions, version, cluster-info', async () => {
      const res = await ok(['api-resources']);
      for (const r of ['deployments\\s+deploy\\s+apps/v1\\s+true\\s+Deployment', 'namespaces\\s+ns\\s+v1\\s+false\\s+Namespace', 'horizontalpodautoscalers\\s+hpa\\s+autoscaling/v2', 'leases\\s+coordination.k8s.io/v1']) {
        assert.match(res, new RegExp(r));
      }
      const vers = await ok(['api-versions']);
      for (const v of ['apps/v1', 'batch/v1', 'autoscaling/v1', 'autoscaling/v2', 'v1', 'networking.k8s.io/v1', 'events.k8s.io/v1']) assert.ok(vers.split('\n').includes(v), v);
      assert.match(await ok(['version']), /Server Version: v?1\.30|GitVersion:"v1.30/);
      assert.match(await ok(['cluster-info']), /is running at.*https:\/\/127\.0\.0\.1/);
    });
  });
}

describe('every kubectl version from 1.27 to 1.33', () => {
  for (const version of kubectlVersions) {
    it(`kubectl ${version}: create -f, apply -f, get`, async () => {
      const kc = await kubectlFor(k, version);
      const ns = `smoke-${version.replace('.', '')}`;
      const made = await kc(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }) });
      assert.equal(made.code, 0, made.stderr);
      const f = path.join(tmp, `${ns}.yaml`);
      await writeFile(f, configmap(ns, 'one'));
      const c = await kc(['create', '-f', f]);
      assert.equal(c.code, 0, c.stderr);
      await writeFile(f, configmap(ns, 'two'));
      const a = await kc(['apply', '-f', f]);
      assert.equal(a.code, 0, a.stderr);
      const g = await kc(['get', 'cm', 'settings', '-n', ns, '-o', 'jsonpath={.data.mode}']);
      assert.equal(g.stdout, 'two');
      const bad = await kc(['create', '-f', '-'], { input: `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: ${ns}}\nbogus: 1\n` });
      assert.notEqual(bad.code, 0, 'unknown fields are refused under default (Strict) validation');
      assert.match(bad.stderr, /unknown field "bogus"/);
    });
  }
});
