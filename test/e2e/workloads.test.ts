import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cleanup, eventually, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/** Deployments, ReplicaSets and the garbage collector on simulated nodes, driven by stock kubectl. */
let k: Kubicle;
before(async () => {
  k = await startKubicle({ args: ['--simulate-nodes', '3'] });
});
after(async () => {
  await cleanup(k);
});


for (const version of ['1.27', '1.33']) {
  describe(`kubectl ${version}: deployments`, () => {
    const ns = `wl${version.replace('.', '')}`;
    let kc: Awaited<ReturnType<typeof kubectlFor>>;
    const ok = async (args: string[], input?: string) => {
      const r = await kc([...args, '-n', ns], input === undefined ? undefined : { input });
      assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const pods = async (selector: string) => (await ok(['get', 'pods', '-l', selector, '-o', 'name'])).trim().split('\n').filter(Boolean);
    before(async () => {
      kc = await kubectlFor(k, version);
      const r = await kc(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }) });
      assert.equal(r.code, 0, r.stderr);
    });

    it('rollout status, set image, history, undo, pause, resume, restart, scale', async () => {
      const deploy = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: ns }, spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'nginx', image: 'nginx:1.25' }] } } } };
      await ok(['apply', '-f', '-'], JSON.stringify(deploy));
      assert.match(await ok(['rollout', 'status', 'deploy/web', '--timeout=30s']), /successfully rolled out/);
      assert.equal((await pods('app=web')).length, 3);
      const rs1 = JSON.parse(await ok(['get', 'rs', '-l', 'app=web', '-o', 'json'])).items;
      assert.equal(rs1.length, 1);
      assert.match(rs1[0].metadata.labels['pod-template-hash'], /^[bcdfghjklmnpqrstvwxz2456789]+$/);
      assert.equal(rs1[0].metadata.annotations['deployment.kubernetes.io/revision'], '1');

      await ok(['set', 'image', 'deploy/web', 'nginx=nginx:1.26']);
      assert.match(await ok(['rollout', 'status', 'deploy/web', '--timeout=30s']), /successfully rolled out/);
      const history = await ok(['rollout', 'history', 'deploy/web']);
      assert.match(history, /1\s+<none>[\s\S]*2\s+<none>/);
      assert.match(await ok(['rollout', 'history', 'deploy/web', '--revision=2']), /nginx:1\.26/);
      const d = JSON.parse(await ok(['get', 'deploy', 'web', '-o', 'json']));
      assert.equal(d.status.updatedReplicas, 3);
      assert.equal(d.status.availableReplicas, 3);
      assert.equal(d.status.observedGeneration, d.metadata.generation);
      assert.ok(d.status.conditions.some((c: { type: string; reason: string }) => c.type === 'Progressing' && c.reason === 'NewReplicaSetAvailable'));
      assert.ok(d.status.conditions.some((c: { type: string; status: string }) => c.type === 'Available' && c.status === 'True'));
      for (const p of JSON.parse(await ok(['get', 'pods', '-l', 'app=web', '-o', 'json'])).items) assert.equal(p.spec.containers[0].image, 'nginx:1.26');

      await ok(['rollout', 'undo', 'deploy/web']);
      assert.match(await ok(['rollout', 'status', 'deploy/web', '--timeout=30s']), /successfully rolled out/);
      assert.equal(await ok(['get', 'deploy', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0].image}']), 'nginx:1.25');
      assert.match(await ok(['rollout', 'history', 'deploy/web']), /2\s+<none>\s+3\s+<none>/, 'the rolled-back revision is renumbered as the newest');

      await ok(['rollout', 'pause', 'deploy/web']);
      await ok(['set', 'image', 'deploy/web', 'nginx=nginx:1.27']);
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(!(await ok(['get', 'rs', '-l', 'app=web', '-o', 'jsonpath={.items[*].spec.template.spec.containers[0].image}'])).includes('1.27'), 'paused: no new ReplicaSet');
      await ok(['rollout', 'resume', 'deploy/web']);
      assert.match(await ok(['rollout', 'status', 'deploy/web', '--timeout=30s']), /successfully rolled out/);
      assert.match(await ok(['get', 'rs', '-l', 'app=web', '-o', 'jsonpath={.items[*].spec.template.spec.containers[0].image}']), /1\.27/);

      await ok(['rollout', 'restart', 'deploy/web']);
      assert.match(await ok(['rollout', 'status', 'deploy/web', '--timeout=30s']), /successfully rolled out/);
      await ok(['scale', 'deploy/web', '--replicas=5']);
      assert.match(await ok(['rollout', 'status', 'deploy/web', '--timeout=30s']), /successfully rolled out/);
      await eventually(async () => (await pods('app=web')).length === 5, '5 pods');
      await ok(['scale', 'deploy/web', '--replicas=2']);
      await eventually(async () => (await pods('app=web')).length === 2, 'scaled down to 2 pods');
    });

    it('scaling in mid-rollout shares the new replicas among the ReplicaSets in proportion', async () => {
      const deploy = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'prop', namespace: ns },
        spec: { replicas: 10, strategy: { rollingUpdate: { maxSurge: 3, maxUnavailable: 2 } }, selector: { matchLabels: { app: 'prop' } }, template: { metadata: { labels: { app: 'prop' } }, spec: { containers: [{ name: 'c', image: 'nginx:1' }] } } },
      };
      await ok(['apply', '-f', '-'], JSON.stringify(deploy));
      assert.match(await ok(['rollout', 'status', 'deploy/prop', '--timeout=30s']), /successfully rolled out/);
      // A new template whose pods can never be placed: the rollout stops at 8 old + 5 new (10 + 3 surge, 2 unavailable).
      await ok(['patch', 'deploy/prop', '--type=merge', '-p', '{"spec":{"template":{"spec":{"nodeSelector":{"example.com/nowhere":"true"}}}}}']);
      const sizes = async () => {
        const sets = JSON.parse(await ok(['get', 'rs', '-l', 'app=prop', '-o', 'json'])).items;
        return sets.map((rs: { spec: { replicas: number; template: { spec: { nodeSelector?: object } } } }) => `${rs.spec.template.spec.nodeSelector ? 'new' : 'old'}=${rs.spec.replicas}`).sort().join(' ');
      };
      await eventually(async () => (await sizes()) === 'new=5 old=8', 'rollout stuck at old=8 new=5');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await sizes(), 'new=5 old=8');
      // 15 replicas: 18 allowed, 5 more to share, 8:5 -> old 11, new 7 (upstream's documented example).
      await ok(['scale', 'deploy/prop', '--replicas=15']);
      await eventually(async () => (await sizes()) === 'new=7 old=11', 'proportional scale-up to old=11 new=7');
      await ok(['scale', 'deploy/prop', '--replicas=5']);
      // 5 replicas: 8 allowed, 10 to remove from 18: old round(11*8/18)-11 = -6, new round(7*8/18)-7 = -4,
      // so old 5 + new 3; then the rollout goes on within 2 unavailable: old 3, new 5.
      await eventually(async () => (await sizes()) === 'new=5 old=3', 'proportional scale-down, then the rollout, to old=3 new=5');
      await ok(['delete', 'deploy/prop']);
    });

    it('Recreate replaces all pods at once', async () => {
      const deploy = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'rec', namespace: ns }, spec: { replicas: 2, strategy: { type: 'Recreate' }, selector: { matchLabels: { app: 'rec' } }, template: { metadata: { labels: { app: 'rec' } }, spec: { containers: [{ name: 'c', image: 'busybox:1' }] } } } };
      await ok(['apply', '-f', '-'], JSON.stringify(deploy));
      assert.match(await ok(['rollout', 'status', 'deploy/rec', '--timeout=30s']), /successfully rolled out/);
      await ok(['set', 'image', 'deploy/rec', 'c=busybox:2']);
      assert.match(await ok(['rollout', 'status', 'deploy/rec', '--timeout=30s']), /successfully rolled out/);
      const images = await ok(['get', 'pods', '-l', 'app=rec', '-o', 'jsonpath={.items[*].spec.containers[0].image}']);
      assert.equal(images.trim(), 'busybox:2 busybox:2');
    });

    it('a ReplicaSet replaces deleted pods and adopts orphans', async () => {
      const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'plain', namespace: ns }, spec: { replicas: 2, selector: { matchLabels: { app: 'plain' } }, template: { metadata: { labels: { app: 'plain' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } } };
      await ok(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'orphan', namespace: ns, labels: { app: 'plain' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } }));
      await ok(['apply', '-f', '-'], JSON.stringify(rs));
      await eventually(async () => (await ok(['get', 'rs', 'plain', '-o', 'jsonpath={.status.readyReplicas}'])) === '2', 'rs ready');
      const owned = await ok(['get', 'pod', 'orphan', '-o', 'jsonpath={.metadata.ownerReferences[0].name}']);
      assert.equal(owned, 'plain', 'the matching orphan was adopted');
      assert.equal((await pods('app=plain')).length, 2);
      await ok(['delete', 'pod', 'orphan']);
      await eventually(async () => (await pods('app=plain')).length === 2 && !(await pods('app=plain')).includes('pod/orphan'), 'replacement');
    });

    it('cascading deletion: background, foreground and orphan', async () => {
      const make = async (name: string) => {
        await ok(['create', 'deployment', name, '--image=busybox', '--replicas=2']);
        await ok(['rollout', 'status', `deploy/${name}`, '--timeout=30s']);
      };
      await make('bg');
      await ok(['delete', 'deploy/bg', '--cascade=background']);
      await eventually(async () => (await pods('app=bg')).length === 0 && !(await ok(['get', 'rs', '-l', 'app=bg', '-o', 'name'])).trim(), 'background cascade');

      await make('fg');
      const fg = await kc(['delete', 'deploy/fg', '--cascade=foreground', '-n', ns, '--timeout=30s']);
      assert.equal(fg.code, 0, fg.stderr);
      assert.equal((await pods('app=fg')).length, 0, 'foreground: dependents are gone before the owner');
      assert.equal((await ok(['get', 'rs', '-l', 'app=fg', '-o', 'name'])).trim(), '');

      await make('orph');
      await ok(['delete', 'deploy/orph', '--cascade=orphan']);
      await eventually(async () => (await kc(['get', 'deploy', 'orph', '-n', ns])).code !== 0, 'owner gone');
      const rs = JSON.parse(await ok(['get', 'rs', '-l', 'app=orph', '-o', 'json'])).items;
      assert.equal(rs.length, 1);
      assert.equal(rs[0].metadata.ownerReferences, undefined, 'orphaned ReplicaSet kept, without its owner reference');
      assert.equal((await pods('app=orph')).length, 2);
    });
  });
}
