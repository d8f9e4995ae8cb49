import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cleanup, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * kubectl 1.33's typed `create <kind>` subcommands send protobuf bodies. Each object stored from
 * such a command must equal what the same kubectl prints for --dry-run=client -o json.
 */
let k: Kubicle;
before(async () => {
  k = await startKubicle();
});
after(async () => {
  await cleanup(k);
});

/** Every non-empty leaf of `expected` is in `actual` with the same value (server defaults may add more). */
function assertSubset(actual: unknown, expected: unknown, path = ''): void {
  if (expected === null || expected === undefined) return;
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: expected a list, got ${JSON.stringify(actual)}`);
    expected.forEach((e, i) => {
      assertSubset((actual as unknown[])[i], e, `${path}[${i}]`);
    });
    return;
  }
  if (typeof expected === 'object') {
    for (const [key, v] of Object.entries(expected as Record<string, unknown>)) {
      if (v === null || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0)) continue;
      assertSubset((actual as Record<string, unknown> | undefined)?.[key], v, `${path}.${key}`);
    }
    return;
  }
  assert.equal(actual, expected, path);
}

const commands: [string, string[]][] = [
  ['namespace/pb-ns', ['create', 'namespace', 'pb-ns']],
  ['configmap/pb-cm', ['create', 'configmap', 'pb-cm', '--from-literal=a=b', '--from-literal=c=d']],
  ['secret/pb-secret', ['create', 'secret', 'generic', 'pb-secret', '--from-literal=password=s3cr3t', '--type=Opaque']],
  ['serviceaccount/pb-sa', ['create', 'serviceaccount', 'pb-sa']],
  ['deployment/pb-deploy', ['create', 'deployment', 'pb-deploy', '--image=nginx:1.25', '--port=80', '--replicas=0']],
  ['service/pb-svc', ['create', 'service', 'nodeport', 'pb-svc', '--tcp=80:8080']],
  ['job/pb-job', ['create', 'job', 'pb-job', '--image=busybox', '--', 'echo', 'hi']],
  ['cronjob/pb-cron', ['create', 'cronjob', 'pb-cron', '--image=busybox', '--schedule=*/5 * * * *', '--', 'date']],
  ['resourcequota/pb-quota', ['create', 'quota', 'pb-quota', '--hard=pods=10,requests.cpu=2']],
  ['priorityclass/pb-pc', ['create', 'priorityclass', 'pb-pc', '--value=0', '--description=zero is a value']],
  ['poddisruptionbudget/pb-pdb', ['create', 'pdb', 'pb-pdb', '--selector=app=x', '--max-unavailable=25%']],
  ['horizontalpodautoscaler/pb-hpa', ['autoscale', 'deployment', 'pb-deploy', '--name=pb-hpa', '--cpu-percent=50', '--min=2', '--max=5']],
  ['ingress/pb-ing', ['create', 'ingress', 'pb-ing', '--class=default', '--rule=foo.com/bar*=svc1:80,tls=cert']],
];

describe('kubectl 1.33 typed create subcommands (protobuf bodies)', () => {
  for (const [ref, args] of commands) {
    it(`kubectl ${args.slice(0, 2).join(' ')}`, async () => {
      const kc = await kubectlFor(k, '1.33');
      // Flags go before "--": what follows it is the container's command.
      const cut = args.includes('--') ? args.indexOf('--') : args.length;
      const dry = await kc([...args.slice(0, cut), '--dry-run=client', '-o', 'json', ...args.slice(cut)]);
      assert.equal(dry.code, 0, dry.stderr);
      const made = await kc(args);
      assert.equal(made.code, 0, made.stderr);
      const got = await kc(['get', ref, '-o', 'json']);
      assert.equal(got.code, 0, got.stderr);
      const expected = JSON.parse(dry.stdout);
      delete expected.status;
      assertSubset(JSON.parse(got.stdout), expected);
    });
  }

  it('the stored objects really came as protobuf', async () => {
    const kc = await kubectlFor(k, '1.33');
    const r = await kc(['create', 'configmap', 'pb-verbose', '--from-literal=x=y', '-v=8']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Content-Type: application\/vnd.kubernetes.protobuf/);
  });
});
