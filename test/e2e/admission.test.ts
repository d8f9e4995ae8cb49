import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cleanup, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/**
 * The LimitRanger and PodSecurity admission plugins with stock kubectl 1.27 and 1.33:
 * defaults and bounds from a namespace's LimitRanges, and the Pod Security Standards from its
 * labels (enforce refuses, warn answers with a warning), with upstream's messages.
 */
const compliant = (name: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name },
  spec: {
    securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [{ name: 'c', image: 'busybox', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
  },
});

describe('admission: LimitRanger and PodSecurity', () => {
  let k: Kubicle;

  before(async () => {
    k = await startKubicle();
  });

  after(async () => {
    await cleanup(k);
  });

  for (const version of ['1.27', '1.33']) {
    it(`LimitRanger fills defaults and enforces bounds (kubectl ${version})`, async () => {
      const kc = await kubectlFor(k, version);
      const ok = mustSucceed(kc);
      const ns = `limits-${version.replace('.', '')}`;
      await ok(['create', 'namespace', ns]);
      await ok(
        ['apply', '-n', ns, '-f', '-'],
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'LimitRange',
          metadata: { name: 'bounds' },
          spec: {
            limits: [
              { type: 'Container', default: { cpu: '500m', memory: '256Mi' }, defaultRequest: { cpu: '100m' }, max: { cpu: '1', memory: '1Gi' }, min: { cpu: '50m' }, maxLimitRequestRatio: { cpu: '10' } },
              { type: 'Pod', max: { cpu: '2' } },
              { type: 'PersistentVolumeClaim', min: { storage: '1Gi' } },
            ],
          },
        }),
      );
      // Upstream's LimitRangeItem defaults: the default request falls back to the default limit.
      const item = JSON.parse(await ok(['get', 'limits', 'bounds', '-n', ns, '-o', 'json'])).spec.limits[0];
      assert.deepEqual(item.defaultRequest, { cpu: '100m', memory: '256Mi' });

      await ok(['run', 'plain', '-n', ns, '--image=busybox']);
      const pod = JSON.parse(await ok(['get', 'pod', 'plain', '-n', ns, '-o', 'json']));
      assert.deepEqual(pod.spec.containers[0].resources, { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '256Mi' } });
      assert.equal(pod.metadata.annotations['kubernetes.io/limit-ranger'], 'LimitRanger plugin set: cpu, memory request for container plain; cpu, memory limit for container plain');

      const over = await kc(['run', 'big', '-n', ns, '--image=busybox', '--overrides', JSON.stringify({ spec: { containers: [{ name: 'big', image: 'busybox', resources: { limits: { cpu: '2' } } }] } })]);
      assert.notEqual(over.code, 0);
      assert.match(over.stderr, /pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2/);
      const ratio = await kc(['run', 'skewed', '-n', ns, '--image=busybox', '--overrides', JSON.stringify({ spec: { containers: [{ name: 'skewed', image: 'busybox', resources: { requests: { cpu: '10m' }, limits: { cpu: '800m' } } }] } })]);
      assert.match(ratio.stderr, /\[minimum cpu usage per Container is 50m, but request is 10m, cpu max limit to request ratio per Container is 10, but provided ratio is 80.000000\]/);
      const claim = await kc(['create', '-n', ns, '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'small' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '100Mi' } } } }),
      });
      assert.match(claim.stderr, /persistentvolumeclaims "small" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 100Mi/);
      const pods = JSON.parse(await ok(['get', 'pods', '-n', ns, '-o', 'json'])).items.map((p: { metadata: { name: string } }) => p.metadata.name);
      assert.deepEqual(pods, ['plain'], 'refused pods were not written');

      const bad = await kc(['apply', '-n', ns, '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'LimitRange', metadata: { name: 'bad' }, spec: { limits: [{ type: 'Container', min: { cpu: '2' }, max: { cpu: '1' } }] } }),
      });
      assert.match(bad.stderr, /spec.limits\[0\].min\[cpu\]: Invalid value: "2": min value 2 is greater than max value 1/);
    });

    it(`PodSecurity enforces and warns by namespace labels (kubectl ${version})`, async () => {
      const kc = await kubectlFor(k, version);
      const ok = mustSucceed(kc);
      const ns = `pss-${version.replace('.', '')}`;
      await ok(['create', 'namespace', ns]);
      await ok(['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted', 'pod-security.kubernetes.io/warn=restricted']);
      const refused = await kc(['run', 'loose', '-n', ns, '--image=busybox']);
      assert.notEqual(refused.code, 0);
      assert.match(
        refused.stderr,
        /pods "loose" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false \(container "loose" must set securityContext.allowPrivilegeEscalation=false\), unrestricted capabilities \(container "loose" must set securityContext.capabilities.drop=\["ALL"\]\), runAsNonRoot != true \(pod or container "loose" must set securityContext.runAsNonRoot=true\), seccompProfile \(pod or container "loose" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"\)/,
      );
      await ok(['apply', '-n', ns, '-f', '-'], JSON.stringify(compliant('tight')));
      // Workloads are not refused; their pod templates are warned about.
      const deploy = await kc(['create', 'deployment', 'web', '-n', ns, '--image=busybox']);
      assert.equal(deploy.code, 0, deploy.stderr);
      assert.match(deploy.stderr, /Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false \(container "busybox"/);

      const base = `${ns}-base`;
      await ok(['create', 'namespace', base]);
      await ok(['label', 'namespace', base, 'pod-security.kubernetes.io/enforce=baseline', 'pod-security.kubernetes.io/warn=restricted']);
      const priv = await kc(['run', 'priv', '-n', base, '--image=busybox', '--privileged']);
      assert.match(priv.stderr, /violates PodSecurity "baseline:latest": privileged \(container "priv" must not set securityContext.privileged=true\)/);
      const host = await kc([
        'run',
        'host',
        '-n',
        base,
        '--image=busybox',
        '--overrides',
        JSON.stringify({ spec: { hostNetwork: true, volumes: [{ name: 'root', hostPath: { path: '/' } }], containers: [{ name: 'host', image: 'busybox', ports: [{ containerPort: 80, hostPort: 8080 }] }] } }),
      ]);
      assert.match(host.stderr, /host namespaces \(hostNetwork=true\), hostPath volumes \(volume "root"\), hostPort \(container "host" uses hostPort 8080\)/);
      // Baseline passes while the restricted warning still speaks.
      const plain = await kc(['run', 'plain', '-n', base, '--image=busybox']);
      assert.equal(plain.code, 0, plain.stderr);
      assert.match(plain.stderr, /Warning: would violate PodSecurity "restricted:latest"/);
    });
  }

  it('raising a namespace\'s enforce level warns of the pods already there; bad labels are refused', async () => {
    const kc = await kubectlFor(k, '1.33');
    const ok = mustSucceed(kc);
    const ns = 'relabel';
    await ok(['create', 'namespace', ns]);
    for (const name of ['b-plain', 'a-plain', 'c-plain']) await ok(['run', name, '-n', ns, '--image=busybox']);
    await ok(['run', 'priv', '-n', ns, '--image=busybox', '--privileged']);
    await ok(['apply', '-n', ns, '-f', '-'], JSON.stringify(compliant('tight')));
    const label = (args: string[]) => kc(['label', '--overwrite', 'namespace', ns, ...args]);

    const dry = await label(['pod-security.kubernetes.io/enforce=baseline', '--dry-run=server']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /Warning: existing pods in namespace "relabel" violate the new PodSecurity enforce level "baseline:latest"\nWarning: priv: privileged\n/);
    assert.match(dry.stdout, /labeled \(server dry run\)/);
    assert.equal(await ok(['get', 'namespace', ns, '-o', 'jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}']), '', 'a dry run stores nothing');

    const strict = await label(['pod-security.kubernetes.io/enforce=restricted', 'pod-security.kubernetes.io/enforce-version=v1.30']);
    assert.equal(strict.code, 0, strict.stderr);
    const warnings = strict.stderr.split('\n').filter((l) => l.startsWith('Warning: '));
    assert.equal(warnings[0], 'Warning: existing pods in namespace "relabel" violate the new PodSecurity enforce level "restricted:v1.30"');
    assert.equal(warnings[1], 'Warning: a-plain (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile');
    assert.match(warnings[2], /^Warning: priv: .*privileged/);
    assert.equal(warnings.length, 3, 'the compliant pod is not named');
    // The pods keep running; a new one is judged by the new level.
    assert.match(await ok(['get', 'pods', '-n', ns, '-o', 'name']), /pod\/priv/);
    assert.match((await kc(['run', 'late', '-n', ns, '--image=busybox'])).stderr, /violates PodSecurity "restricted:v1.30"/);

    // Relaxing, or relabelling without changing the level, says nothing.
    const relaxed = await label(['pod-security.kubernetes.io/enforce=baseline', 'pod-security.kubernetes.io/enforce-version=v1.30']);
    assert.equal(relaxed.code, 0, relaxed.stderr);
    assert.doesNotMatch(relaxed.stderr, /Warning/);

    for (const [args, message] of [
      [['pod-security.kubernetes.io/enforce=strict'], /metadata.labels\[pod-security.kubernetes.io\/enforce\]: Invalid value: "strict": must be one of privileged, baseline, restricted/],
      [['pod-security.kubernetes.io/warn-version=1.30'], /metadata.labels\[pod-security.kubernetes.io\/warn-version\]: Invalid value: "1.30": must be "latest" or "v1.x"/],
    ] as const) {
      const bad = await label([...args]);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, message);
    }
    const created = await kc(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'badlabel', labels: { 'pod-security.kubernetes.io/audit': 'loose' } } }) });
    assert.match(created.stderr, /Namespace "badlabel" is invalid: metadata.labels\[pod-security.kubernetes.io\/audit\]: Invalid value: "loose"/);
    assert.equal(await ok(['get', 'namespace', ns, '-o', 'jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}']), 'baseline', 'refused labels stored nothing');
  });
});
