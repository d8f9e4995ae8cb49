import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawClient } from '../support/http.js';
import { cleanup, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * `kubectl explain` from the served OpenAPI v3 documents, with stock kubectl 1.27 and 1.33:
 * descriptions, types, required fields and enums from the generated schemas, nested and
 * recursive, for every served resource.
 */
describe('kubectl explain', () => {
  let k: Kubicle;

  before(async () => {
    k = await startKubicle();
  });

  after(async () => {
    await cleanup(k);
  });

  for (const version of ['1.27', '1.33']) {
    it(`explains kinds and nested fields on kubectl ${version}`, async () => {
      const kc = await kubectlFor(k, version);
      const pods = await kc(['explain', 'pods']);
      assert.equal(pods.code, 0, pods.stderr);
      assert.match(pods.stdout, /KIND:\s+Pod\nVERSION:\s+v1\n/);
      assert.match(pods.stdout, /Pod is a collection of containers that can run on a host/);
      assert.match(pods.stdout, /spec\t<PodSpec>\n\s+Specification of the desired behavior of the pod/);

      const ports = await kc(['explain', 'pods.spec.containers.ports']);
      assert.equal(ports.code, 0, ports.stderr);
      assert.match(ports.stdout, /FIELD: ports <\[\]ContainerPort>/);
      assert.match(ports.stdout, /containerPort\t<integer> -required-\n\s+Number of port to expose/);
      assert.match(ports.stdout, /protocol\t<string>/);

      const strategy = await kc(['explain', 'deployments.spec.strategy', '--recursive']);
      assert.equal(strategy.code, 0, strategy.stderr);
      assert.match(strategy.stdout, /GROUP:\s+apps\nKIND:\s+Deployment/);
      assert.match(strategy.stdout, /rollingUpdate\t<RollingUpdateDeployment>\n\s+maxSurge\t<IntOrString>\n\s+maxUnavailable\t<IntOrString>\n\s+type\t<string>/);

      const labels = await kc(['explain', 'configmaps.metadata.labels']);
      assert.match(labels.stdout, /FIELD: labels <map\[string\]string>/);
      const limits = await kc(['explain', 'pods.spec.containers.resources.limits']);
      assert.match(limits.stdout, /FIELD: limits <map\[string\]Quantity>/);

      const missing = await kc(['explain', 'pods.spec.nosuchfield']);
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /field "nosuchfield" does not exist/);
    });
  }

  it('shows enums (kubectl 1.33) and explains every served resource', async () => {
    const kc = await kubectlFor(k, '1.33');
    const ports = await kc(['explain', 'pods.spec.containers.ports']);
    assert.match(ports.stdout, /protocol\t<string>\n\s+enum: SCTP, TCP, UDP/);
    const resources = await kc(['api-resources', '--no-headers', '-o', 'wide']);
    assert.equal(resources.code, 0, resources.stderr);
    const lines = resources.stdout.trim().split('\n');
    assert.ok(lines.length > 40, 'discovery lists the resources');
    for (const line of lines) {
      const cols = line.trim().split(/\s+/);
      // NAME [SHORTNAMES] APIVERSION NAMESPACED KIND VERBS…: the api version is the column
      // before true/false.
      const at = cols.findIndex((c) => c === 'true' || c === 'false');
      const [name, apiVersion, kind] = [cols[0], cols[at - 1], cols[at + 1]];
      const r = await kc(['explain', name, `--api-version=${apiVersion}`]);
      assert.equal(r.code, 0, `${name} ${apiVersion}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`KIND:\\s+${kind}\\n`), `${name} ${apiVersion}`);
      if (!apiVersion.startsWith('metrics.k8s.io/')) assert.match(r.stdout, /FIELDS:\n[\s\S]*^ {2}apiVersion\t<string>/m, `${name} ${apiVersion} has a generated schema`);
    }
  });

  it('serves documents by content hash, immutable', async () => {
    const api = await rawClient(k);
    const url: string = (await api.call('GET', '/openapi/v3')).json.paths['apis/apps/v1'].serverRelativeURL;
    assert.match(url, /^\/openapi\/v3\/apis\/apps\/v1\?hash=[0-9A-F]{128}$/);
    const res = await api.call('GET', url);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['cache-control']), /immutable/);
    const doc = res.json;
    assert.deepEqual(doc.components.schemas['io.k8s.api.apps.v1.Deployment']['x-kubernetes-group-version-kind'], [{ group: 'apps', version: 'v1', kind: 'Deployment' }]);
    assert.ok(doc.components.schemas['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta'], 'referenced definitions are included');
  });
});
