import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawClient } from '../support/http.js';
import { cleanup, eventually, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * Server-side apply with stock kubectl 1.27 and 1.33: managedFields per manager, the move from
 * client-side apply (last-applied annotation, kubectl's managedFields migration), pruning of
 * fields a manifest stops setting, conflicts with another manager and --force-conflicts,
 * --field-manager, controllers' status writes under their own manager, and bad requests.
 */
interface Entry {
  manager: string;
  operation: string;
  subresource?: string;
  fieldsV1: Record<string, Record<string, Record<string, unknown>>>;
}

function deployment(name: string, replicas: number, labels: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image: 'nginx:1' }] } },
    },
  });
}

describe('server-side apply', () => {
  let k: Kubicle;

  before(async () => {
    k = await startKubicle();
  });

  after(async () => {
    await cleanup(k);
  });

  for (const version of ['1.27', '1.33']) {
    it(`moves from client-side apply, prunes, conflicts and forces on kubectl ${version}`, async () => {
      const kc = await kubectlFor(k, version);
      const name = `web${version.replace('.', '')}`;
      const managed = async () => {
        const got = await kc(['get', 'deploy', name, '-o', 'json', '--show-managed-fields']);
        assert.equal(got.code, 0, got.stderr);
        return JSON.parse(got.stdout) as { spec: { replicas: number }; metadata: { labels: Record<string, string>; managedFields: Entry[] } };
      };

      // Client-side apply first: kubectl-client-side-apply owns everything, defaults included.
      const csa = await kc(['apply', '-f', '-'], { input: deployment(name, 2, { app: name, tier: 'front' }) });
      assert.equal(csa.code, 0, csa.stderr);
      let d = await managed();
      const csaEntry = d.metadata.managedFields.find((e) => e.manager === 'kubectl-client-side-apply');
      assert.equal(csaEntry?.operation, 'Update');
      assert.ok(csaEntry?.fieldsV1['f:spec']['f:progressDeadlineSeconds'], 'defaulted fields are owned by the creator');

      // The same manifest server-side: no conflict, and kubectl migrates ownership to its Apply entry.
      const ssa = await kc(['apply', '--server-side', '-f', '-'], { input: deployment(name, 2, { app: name, tier: 'front' }) });
      assert.equal(ssa.code, 0, ssa.stderr);
      assert.match(ssa.stdout, /serverside-applied/);
      d = await managed();
      assert.ok(
        d.metadata.managedFields.some((e) => e.manager === 'kubectl' && e.operation === 'Apply'),
        JSON.stringify(d.metadata.managedFields.map((e) => [e.manager, e.operation])),
      );
      assert.ok(!d.metadata.managedFields.some((e) => e.manager === 'kubectl-client-side-apply'), 'the client-side entry was migrated away');

      // A label the manifest no longer sets is removed; a changed field is applied.
      const pruned = await kc(['apply', '--server-side', '-f', '-'], { input: deployment(name, 3, { app: name }) });
      assert.equal(pruned.code, 0, pruned.stderr);
      d = await managed();
      assert.deepEqual(d.metadata.labels, { app: name });
      assert.equal(d.spec.replicas, 3);

      // Another manager takes replicas; applying a different value conflicts, naming both.
      const scaled = await kc(['scale', 'deploy', name, '--replicas=5']);
      assert.equal(scaled.code, 0, scaled.stderr);
      const conflict = await kc(['apply', '--server-side', '-f', '-'], { input: deployment(name, 4, { app: name }) });
      assert.notEqual(conflict.code, 0);
      assert.match(conflict.stderr, /Apply failed with 1 conflict: conflict with "kubectl[^"]*"( with subresource "scale")? using apps\/v1: \.spec\.replicas/);
      assert.equal((await managed()).spec.replicas, 5, 'a refused apply changes nothing');

      const forced = await kc(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: deployment(name, 4, { app: name }) });
      assert.equal(forced.code, 0, forced.stderr);
      d = await managed();
      assert.equal(d.spec.replicas, 4);
      const owners = d.metadata.managedFields.filter((e) => e.fieldsV1['f:spec']?.['f:replicas']).map((e) => e.manager);
      assert.deepEqual(owners, ['kubectl'], 'forcing took replicas from the scaler');

      // Controllers' status writes are recorded as their own manager on the status subresource.
      await eventually(async () => (await managed()).metadata.managedFields.some((e) => e.manager === 'kube-controller-manager' && e.subresource === 'status'), 'controller status entry');
      assert.equal((await kc(['delete', 'deploy', name])).code, 0);
    });
  }

  it('applies with --field-manager, creating the object, and shares fields applied with equal values', async () => {
    const kc = await kubectlFor(k, '1.33');
    const cm = (data: Record<string, string>) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' }, data });
    const first = await kc(['apply', '--server-side', '--field-manager=ci', '-f', '-'], { input: cm({ mode: 'fast', level: '1' }) });
    assert.equal(first.code, 0, first.stderr);
    const second = await kc(['apply', '--server-side', '--field-manager=ops', '-f', '-'], { input: cm({ mode: 'fast' }) });
    assert.equal(second.code, 0, second.stderr);
    const conflict = await kc(['apply', '--server-side', '--field-manager=ops', '-f', '-'], { input: cm({ mode: 'slow' }) });
    assert.notEqual(conflict.code, 0);
    assert.match(conflict.stderr, /conflict with "ci": \.data\.mode/);
    // ci stops setting mode: ops still owns it, so it stays; level is ci's alone and goes.
    const dropped = await kc(['apply', '--server-side', '--field-manager=ci', '-f', '-'], { input: cm({}) });
    assert.equal(dropped.code, 0, dropped.stderr);
    const got = JSON.parse((await kc(['get', 'cm', 'settings', '-o', 'json'])).stdout);
    assert.deepEqual(got.data, { mode: 'fast' });
    const dry = await kc(['apply', '--server-side', '--field-manager=ci', '--dry-run=server', '-f', '-'], { input: cm({ extra: 'x' }) });
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(JSON.parse((await kc(['get', 'cm', 'settings', '-o', 'json'])).stdout).data, { mode: 'fast' }, 'a dry run writes nothing');
  });

  it('refuses bad apply requests with a Status and writes nothing', async () => {
    const http = await rawClient(k);
    const path = '/api/v1/namespaces/default/configmaps/bad';
    const apply = (body: string, query = '?fieldManager=t') => http.call('PATCH', `${path}${query}`, body, { 'content-type': 'application/apply-patch+yaml' });
    const noManager = await apply('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bad"}}', '');
    assert.equal(noManager.status, 422);
    assert.equal(noManager.json.message, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
    const withFields = await apply('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bad","managedFields":[{"manager":"x","operation":"Apply"}]}}');
    assert.equal(withFields.status, 400);
    assert.match(withFields.json.message, /managedFields must be nil/);
    const wrongKind = await apply('{"apiVersion":"v1","kind":"Secret","metadata":{"name":"bad"}}');
    assert.equal(wrongKind.status, 400);
    const badYaml = await apply('kind: [unclosed');
    assert.equal(badYaml.status, 400);
    const otherName = await apply('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}');
    assert.equal(otherName.status, 400);
    const badForce = await apply('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bad"}}', '?fieldManager=t&force=maybe');
    assert.equal(badForce.status, 400);
    const forceOnMerge = await http.call('PATCH', `${path}?force=true`, '{}', { 'content-type': 'application/merge-patch+json' });
    assert.equal(forceOnMerge.status, 422);
    assert.match(forceOnMerge.json.message, /force: Forbidden: may not be specified for non-apply patch/);
    assert.equal((await http.call('GET', path)).status, 404, 'nothing was created');

    // A status-only apply of an object that does not exist is a 404, not a create.
    const status = await http.call('PATCH', '/apis/apps/v1/namespaces/default/deployments/nope/status?fieldManager=t', '{"apiVersion":"apps/v1","kind":"Deployment","status":{}}', {
      'content-type': 'application/apply-patch+yaml',
    });
    assert.equal(status.status, 404);
  });
});
