import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createCa, issueServing } from '../../src/apiserver/pki.js';
import { rawClient } from '../support/http.js';
import { cleanup, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * Admission webhooks over real HTTPS: a webhook server run by the test, with a certificate from
 * its own CA handed to the API server as caBundle. One webhook mutates (adds a label, warns),
 * one denies by content, one is unreachable (failurePolicy Fail and Ignore), one is too slow
 * for its timeout, one breaks the object; selectors pick what each sees.
 */
// biome-ignore lint/suspicious/noExplicitAny: AdmissionReview JSON
type Review = Record<string, any>;

describe('admission webhooks', () => {
  let k: Kubicle;
  let server: https.Server;
  let port: number;
  let caBundle: string;
  const seen: { path: string; request: Review }[] = [];

  before(async () => {
    k = await startKubicle();
    const ca = createCa('webhook-test-ca');
    const serving = issueServing(ca, ['127.0.0.1']);
    caBundle = Buffer.from(ca.cert).toString('base64');
    server = https.createServer({ cert: serving.cert, key: serving.key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', async () => {
        const review = JSON.parse(Buffer.concat(chunks).toString()) as Review;
        const request = review.request;
        seen.push({ path: req.url ?? '', request });
        const response: Review = { uid: request.uid, allowed: true };
        if (req.url === '/mutate') {
          const labels = request.object?.metadata?.labels;
          const op = labels ? { op: 'add', path: '/metadata/labels/mutated', value: 'yes' } : { op: 'add', path: '/metadata/labels', value: { mutated: 'yes' } };
          response.patchType = 'JSONPatch';
          response.patch = Buffer.from(JSON.stringify([op])).toString('base64');
          response.warnings = ['mutated by the test webhook'];
        } else if (req.url === '/deny') {
          const obj = request.object ?? request.oldObject;
          if (obj?.data?.forbidden !== undefined || obj?.metadata?.labels?.locked === 'yes') {
            response.allowed = false;
            response.status = { code: 403, message: 'the key "forbidden" is not allowed' };
          }
        } else if (req.url === '/slow') {
          await new Promise((r) => setTimeout(r, 3000));
        } else if (req.url === '/garbage') {
          res.end('this is not an AdmissionReview');
          return;
        } else if (req.url === '/break') {
          response.patchType = 'JSONPatch';
          response.patch = Buffer.from(JSON.stringify([{ op: 'add', path: '/metadata/labels/broken', value: 'not a valid label value!' }])).toString('base64');
        }
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;

    const kc = await kubectlFor(k, '1.33');
    const hook = (name: string, path: string, extra: Record<string, unknown>, resources = ['configmaps']) => ({
      name,
      clientConfig: { url: `https://127.0.0.1:${port}${path}`, caBundle },
      rules: [{ operations: ['CREATE', 'UPDATE', 'DELETE'], apiGroups: [''], apiVersions: ['v1'], resources }],
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
      ...extra,
    });
    const closed = 'https://127.0.0.1:1/down';
    const configs = [
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name: 'test-mutator' },
        webhooks: [
          hook('mutate.kubicle.test', '/mutate', { objectSelector: { matchLabels: { webhook: 'on' } } }),
          hook('break.kubicle.test', '/break', { objectSelector: { matchLabels: { break: 'yes' } } }),
        ],
      },
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingWebhookConfiguration',
        metadata: { name: 'test-validator' },
        webhooks: [
          hook('deny.kubicle.test', '/deny', { namespaceSelector: { matchLabels: { guarded: 'yes' } } }),
          hook('slow.kubicle.test', '/slow', { timeoutSeconds: 1, objectSelector: { matchLabels: { slow: 'yes' } } }),
          hook('garbage.kubicle.test', '/garbage', { objectSelector: { matchLabels: { garbage: 'yes' } } }),
          { ...hook('down.kubicle.test', '/down', { namespaceSelector: { matchLabels: { broken: 'fail' } } }, ['secrets']), clientConfig: { url: closed, caBundle } },
          { ...hook('down-ignored.kubicle.test', '/down', { failurePolicy: 'Ignore', namespaceSelector: { matchLabels: { broken: 'ignore' } } }, ['secrets']), clientConfig: { url: closed, caBundle } },
        ],
      },
    ];
    for (const c of configs) {
      const r = await kc(['apply', '-f', '-'], { input: JSON.stringify(c) });
      assert.equal(r.code, 0, r.stderr);
    }
    for (const [ns, labels] of [
      ['guarded', ['guarded=yes']],
      ['broken-fail', ['broken=fail']],
      ['broken-ignore', ['broken=ignore']],
    ] as const) {
      assert.equal((await kc(['create', 'namespace', ns])).code, 0);
      assert.equal((await kc(['label', 'namespace', ns, ...labels])).code, 0);
    }
  });

  after(async () => {
    server?.close();
    await cleanup(k);
  });

  for (const version of ['1.27', '1.33']) {
    it(`a mutating webhook changes the object and warns (kubectl ${version})`, async () => {
      const kc = await kubectlFor(k, version);
      const name = `mutated-${version.replace('.', '')}`;
      const created = await kc(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels: { webhook: 'on' } }, data: { a: '1' } }) });
      assert.equal(created.code, 0, created.stderr);
      assert.match(created.stderr, /Warning: mutated by the test webhook/);
      const got = JSON.parse((await kc(['get', 'cm', name, '-o', 'json'])).stdout);
      assert.deepEqual(got.metadata.labels, { webhook: 'on', mutated: 'yes' });
      const review = seen.find((s) => s.path === '/mutate' && s.request.name === name)?.request;
      assert.equal(review?.operation, 'CREATE');
      assert.equal(review?.namespace, 'default');
      assert.deepEqual(review?.kind, { group: '', version: 'v1', kind: 'ConfigMap' });
      assert.deepEqual(review?.resource, { group: '', version: 'v1', resource: 'configmaps' });
      assert.ok(review?.userInfo?.username, 'the review names the user');
      assert.equal(review?.dryRun, false);
    });
  }

  it('a validating webhook denies by content, in namespaces its selector picks, on create, update and delete', async () => {
    const kc = await kubectlFor(k, '1.33');
    const denied = await kc(['create', 'configmap', 'bad', '-n', 'guarded', '--from-literal=forbidden=1']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /admission webhook "deny.kubicle.test" denied the request: the key "forbidden" is not allowed/);
    assert.equal((await kc(['get', 'cm', 'bad', '-n', 'guarded'])).code, 1, 'nothing was written');
    // Outside the selected namespace the same object is fine.
    assert.equal((await kc(['create', 'configmap', 'bad', '-n', 'default', '--from-literal=forbidden=1'])).code, 0);
    // Allowed objects pass; deleting a locked one is refused, with the old object in the review.
    assert.equal((await kc(['create', 'configmap', 'fine', '-n', 'guarded', '--from-literal=ok=1'])).code, 0);
    assert.equal((await kc(['label', 'cm', 'fine', '-n', 'guarded', 'locked=yes'])).code, 1, 'the update is refused too');
    const dry = await kc(['create', 'configmap', 'dry', '-n', 'guarded', '--from-literal=ok=1', '--dry-run=server']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(seen.find((s) => s.path === '/deny' && s.request.name === 'dry')?.request.dryRun, true);
    assert.equal((await kc(['delete', 'cm', 'fine', '-n', 'guarded'])).code, 0);
    const del = seen.find((s) => s.path === '/deny' && s.request.operation === 'DELETE' && s.request.name === 'fine')?.request;
    assert.equal(del?.oldObject?.metadata?.name, 'fine');
    assert.equal(del?.object, null);
  });

  it('applies failurePolicy to an unreachable webhook and timeoutSeconds to a slow one', async () => {
    const kc = await kubectlFor(k, '1.33');
    const fail = await kc(['create', 'secret', 'generic', 's', '-n', 'broken-fail', '--from-literal=a=1']);
    assert.notEqual(fail.code, 0);
    assert.match(fail.stderr, /Internal error occurred: failed calling webhook "down.kubicle.test": failed to call webhook: Post "https:\/\/127.0.0.1:1\/down"/);
    assert.equal((await kc(['create', 'secret', 'generic', 's', '-n', 'broken-ignore', '--from-literal=a=1'])).code, 0);

    const started = Date.now();
    const slow = await kc(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'slow', labels: { slow: 'yes' } } }) });
    assert.notEqual(slow.code, 0);
    assert.match(slow.stderr, /failed calling webhook "slow.kubicle.test".*deadline exceeded/);
    assert.ok(Date.now() - started < 2900, 'the call was cut at its timeout, not at the webhook’s answer');

    const garbage = await kc(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'garbage', labels: { garbage: 'yes' } } }) });
    assert.notEqual(garbage.code, 0);
    assert.match(garbage.stderr, /failed calling webhook "garbage.kubicle.test": received invalid webhook response/);
  });

  it('validates what a mutating webhook returns, and refuses bad configurations', async () => {
    const kc = await kubectlFor(k, '1.33');
    const broken = await kc(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'broken', labels: { break: 'yes' } } }) });
    assert.notEqual(broken.code, 0);
    assert.match(broken.stderr, /The ConfigMap "broken" is invalid: metadata.labels[.a-z]*: Invalid value: "not a valid label value!"/);

    const http = await rawClient(k);
    const bad = (webhook: Record<string, unknown>) =>
      http.call(
        'POST',
        '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations',
        JSON.stringify({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name: 'bad' }, webhooks: [webhook] }),
        { 'content-type': 'application/json' },
      );
    const base = { name: 'ok.kubicle.test', clientConfig: { url: 'https://127.0.0.1:9/x' }, sideEffects: 'None', admissionReviewVersions: ['v1'] };
    const plain = await bad({ ...base, clientConfig: { url: 'http://127.0.0.1:9/x' } });
    assert.equal(plain.status, 422);
    assert.match(plain.json.message, /'https' is the only allowed URL scheme/);
    const short = await bad({ ...base, name: 'deny' });
    assert.match(short.json.message, /should be a domain with at least three segments separated by dots/);
    const effects = await bad({ ...base, sideEffects: 'Some' });
    assert.match(effects.json.message, /sideEffects: Unsupported value: "Some"/);
    const timeout = await bad({ ...base, timeoutSeconds: 31 });
    assert.match(timeout.json.message, /the timeout value must be between 1 and 30 seconds/);
    const both = await bad({ ...base, clientConfig: { url: 'https://x.example/', service: { name: 's', namespace: 'n' } } });
    assert.match(both.json.message, /exactly one of url or service is required/);

    const listed = await kc(['get', 'validatingwebhookconfigurations']);
    assert.match(listed.stdout, /NAME\s+WEBHOOKS\s+AGE\ntest-validator\s+5\s+/);
  });
});
