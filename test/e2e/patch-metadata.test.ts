import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawClient } from '../support/http.js';
import { cleanup, eventually, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/**
 * Strategic-merge-patch metadata generated from upstream's Go types (ADR 0021), as stock
 * kubectl meets it: client-side apply computes its patches from the served documents (v2 on
 * 1.27, v3 on 1.33) without falling back to its compiled-in types, the server merges lists
 * by the same keys, and the v2 document kubectl parses whole holds every definition, built-in
 * and custom, for `explain --output plaintext-openapiv2`.
 */
const deployment = (name: string, containers: object[], strategy?: object) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name },
  spec: { replicas: 1, selector: { matchLabels: { app: name } }, ...(strategy ? { strategy } : {}), template: { metadata: { labels: { app: name } }, spec: { containers } } },
});

describe('patch metadata from the OpenAPI documents', () => {
  let k: Kubicle;

  before(async () => {
    k = await startKubicle();
  });

  after(async () => {
    await cleanup(k);
  });

  for (const version of ['1.27', '1.33']) {
    it(`drives client-side apply on kubectl ${version}`, async () => {
      const kc = await kubectlFor(k, version);
      const ok = mustSucceed(kc);
      const name = `csa-${version.replace('.', '')}`;
      await ok(['apply', '-f', '-'], JSON.stringify(deployment(name, [{ name: 'a', image: 'a:1', env: [{ name: 'A', value: '1' }] }, { name: 'b', image: 'b:1' }])));
      // Another writer adds an environment variable kubectl's manifest never had.
      await ok(['patch', 'deployment', name, '--type=strategic', '-p', JSON.stringify({ spec: { template: { spec: { containers: [{ name: 'a', env: [{ name: 'EXTRA', value: 'x' }] }] } } } })]);
      // The next apply changes a, drops b, switches to Recreate: kubectl must merge
      // containers and env by name and send $retainKeys for the strategy, all from the documents.
      const r = await kc(['apply', '-f', '-', '-v=6'], { input: JSON.stringify(deployment(name, [{ name: 'a', image: 'a:2', env: [{ name: 'A', value: '2' }] }], { type: 'Recreate' })) });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /error calculating patch|does not support strategic merge patch|OpenAPI V3 path does not exist/);
      if (version === '1.27') assert.match(r.stderr, /GET https:\/\/[^ ]+\/openapi\/v2\?timeout=\d+s 200 OK/);
      else assert.match(r.stderr, /url="https:\/\/[^"]+\/openapi\/v3\/apis\/apps\/v1\?hash=[0-9A-F]+&timeout=\d+s" status="200 OK"/);

      const spec = JSON.parse(await ok(['get', 'deployment', name, '-o', 'json'])).spec;
      const containers = spec.template.spec.containers as { name: string; image: string; env: object[] }[];
      assert.deepEqual(
        containers.map((c) => [c.name, c.image]),
        [['a', 'a:2']],
      );
      assert.deepEqual(containers[0].env, [
        { name: 'A', value: '2' },
        { name: 'EXTRA', value: 'x' },
      ]);
      assert.deepEqual(spec.strategy, { type: 'Recreate' }, 'rollingUpdate dropped by $retainKeys');
    });
  }

  it('merges lists on the server by the generated keys', async () => {
    const ok = mustSucceed(await kubectlFor(k, '1.33'));
    await ok(['create', 'service', 'clusterip', 'smp', '--tcp=80:8080']);
    await ok(['patch', 'service', 'smp', '--type=strategic', '-p', JSON.stringify({ spec: { ports: [{ name: 'https', port: 443, targetPort: 8443 }] } })]);
    const ports = JSON.parse(await ok(['get', 'service', 'smp', '-o', 'jsonpath={.spec.ports}'])) as { port: number }[];
    assert.deepEqual(
      ports.map((p) => p.port),
      [80, 443],
      'Service ports merge by port',
    );
    // A list upstream leaves without a merge key is replaced.
    await ok(['patch', 'service', 'smp', '--type=strategic', '-p', JSON.stringify({ spec: { ipFamilies: ['IPv4'] } })]);
    const webhook = (n: string) => ({ name: n, clientConfig: { url: `https://${n}/check` }, sideEffects: 'None', admissionReviewVersions: ['v1'], rules: [{ operations: ['CREATE'], apiGroups: ['nothing.example.com'], apiVersions: ['v1'], resources: ['none'] }] });
    await ok(['create', '-f', '-'], JSON.stringify({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name: 'smp' }, webhooks: [webhook('a.example.com')] }));
    await ok(['patch', 'validatingwebhookconfiguration', 'smp', '--type=strategic', '-p', JSON.stringify({ webhooks: [webhook('b.example.com')] })]);
    const hooks = JSON.parse(await ok(['get', 'validatingwebhookconfiguration', 'smp', '-o', 'json'])).webhooks as { name: string }[];
    assert.deepEqual(
      hooks.map((h) => h.name),
      ['a.example.com', 'b.example.com'],
      'webhooks merge by name',
    );
  });

  for (const version of ['1.27', '1.33']) {
    it(`explains built-in and custom kinds from the v2 document on kubectl ${version}`, async () => {
      const kc = await kubectlFor(k, version);
      const ok = mustSucceed(kc);
      const containers = await ok(['explain', 'pods.spec.containers', '--output', 'plaintext-openapiv2']);
      assert.match(containers, /KIND:\s+Pod\nVERSION:\s+v1\n\nRESOURCE: containers <\[\]Object>/);
      assert.match(containers, /A single application container that you want to run within a pod\./);
      assert.match(containers, /^ {3}env\t<\[\]Object>\n\s+List of environment variables to set in the container\./m);
      assert.match(containers, /^ {3}name\t<string> -required-/m);
      const recursive = await ok(['explain', 'deployments.spec.strategy', '--recursive', '--output', 'plaintext-openapiv2']);
      assert.match(recursive, /rollingUpdate\t<Object>\n\s+maxSurge\t<string>\n\s+maxUnavailable\t<string>\n\s+type\t<string>/);
    });
  }

  it('changes the v2 document as custom resources come and go', async () => {
    const api = await rawClient(k);
    const kc = await kubectlFor(k, '1.33');
    const ok = mustSucceed(kc);
    const first = await api.call('GET', '/openapi/v2', undefined, { Accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' });
    assert.equal(first.status, 200);
    assert.equal(first.headers['content-type'], 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf');
    const etag = String(first.headers.etag);
    assert.equal((await api.call('GET', '/openapi/v2', undefined, { 'If-None-Match': etag })).status, 304);

    const json = (await api.call('GET', '/openapi/v2')).json;
    const podSpec = json.definitions['io.k8s.api.core.v1.PodSpec'].properties;
    assert.equal(podSpec.containers['x-kubernetes-patch-merge-key'], 'name');
    assert.equal(podSpec.volumes['x-kubernetes-patch-strategy'], 'merge,retainKeys');
    assert.deepEqual(podSpec.containers.items, { $ref: '#/definitions/io.k8s.api.core.v1.Container' });
    const patch = json.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}'].patch;
    assert.ok(patch.consumes.includes('application/strategic-merge-patch+json'));
    assert.ok(patch.parameters.some((p: { name: string }) => p.name === 'fieldValidation'));

    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'gadgets.v2.example.com' },
      spec: {
        group: 'v2.example.com',
        scope: 'Namespaced',
        names: { plural: 'gadgets', singular: 'gadget', kind: 'Gadget' },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: {
                  spec: {
                    type: 'object',
                    description: 'What the gadget does.',
                    properties: { size: { 'x-kubernetes-int-or-string': true, description: 'How big.' }, parts: { type: 'array', items: { type: 'string' } }, extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
                  },
                },
              },
            },
          },
        ],
      },
    };
    await ok(['apply', '-f', '-'], JSON.stringify(crd));
    await ok(['wait', '--for', 'condition=established', 'crd/gadgets.v2.example.com', '--timeout=20s']);
    await eventually(async () => Boolean((await api.call('GET', '/openapi/v2')).json.definitions['com.example.v2.v1.Gadget']), 'the custom kind defined in v2');
    const custom = (await api.call('GET', '/openapi/v2')).json;
    const gadget = custom.definitions['com.example.v2.v1.Gadget'];
    assert.deepEqual(gadget['x-kubernetes-group-version-kind'], [{ group: 'v2.example.com', version: 'v1', kind: 'Gadget' }]);
    const gpatch = custom.paths['/apis/v2.example.com/v1/namespaces/{namespace}/gadgets/{name}'].patch;
    assert.ok(!gpatch.consumes.includes('application/strategic-merge-patch+json'), 'custom resources take no strategic merge patch');
    for (const v of ['1.27', '1.33']) {
      const explained = await mustSucceed(await kubectlFor(k, v))(['explain', 'gadgets.spec', '--output', 'plaintext-openapiv2']);
      assert.match(explained, /What the gadget does\./);
      assert.match(explained, /size\t<string>\n\s+How big\./);
      assert.match(explained, /parts\t<\[\]string>/);
    }
    // A custom object is created and client-side applied (JSON merge patch) through the same documents.
    const gadgetObj = (parts: string[]) => JSON.stringify({ apiVersion: 'v2.example.com/v1', kind: 'Gadget', metadata: { name: 'g' }, spec: { size: 3, parts } });
    for (const v of ['1.27', '1.33']) {
      const kv = mustSucceed(await kubectlFor(k, v));
      await kv(['apply', '-f', '-'], gadgetObj(['x', v]));
      assert.equal(await kv(['get', 'gadget', 'g', '-o', 'jsonpath={.spec.parts}']), JSON.stringify(['x', v]));
    }

    await ok(['delete', 'crd', 'gadgets.v2.example.com']);
    await eventually(async () => (await api.call('GET', '/openapi/v2')).json.definitions['com.example.v2.v1.Gadget'] === undefined, 'the custom kind gone from v2 with its CRD');
  });
});
