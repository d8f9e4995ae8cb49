import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cleanup, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/**
 * Affinity, topology spreading, priority and preemption, and RuntimeClass scheduling, with stock
 * kubectl against three simulated nodes in three zones (8 CPUs each).
 */
let k: Kubicle;
let kc: Awaited<ReturnType<typeof kubectlFor>>;
const ok = (args: string[], input?: string) => mustSucceed(kc)(args, input);
const nodeOf = async (pod: string) => ok(['get', 'pod', pod, '-o', 'jsonpath={.spec.nodeName}']);
const podsOf = async (selector: string) => JSON.parse(await ok(['get', 'pods', '-l', selector, '-o', 'json'])).items as { metadata: { name: string }; spec: { nodeName?: string } }[];

function deployment(name: string, replicas: number, spec: object, cpu = '100m'): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'nginx', resources: { requests: { cpu } } }], ...spec } },
    },
  });
}

function pod(name: string, spec: object, labels: Record<string, string> = {}, cpu = '100m'): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, labels }, spec: { containers: [{ name: 'c', image: 'nginx', resources: { requests: { cpu } } }], ...spec } });
}

/** Polls until `probe` yields a value. */
async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function failedScheduling(podName: string): Promise<string> {
  return waitFor(async () => {
    const d = await ok(['describe', 'pod', podName]);
    const m = d.match(/FailedScheduling\s+\S+\s+default-scheduler\s+(.*)/);
    return m ? m[1] : undefined;
  }, `FailedScheduling for ${podName}`);
}

before(async () => {
  k = await startKubicle({ args: ['--simulate-nodes', '3'] });
  kc = await kubectlFor(k, '1.33');
  await waitFor(async () => ((await ok(['get', 'nodes', '-o', 'name'])).trim().split('\n').filter(Boolean).length === 3 ? true : undefined), 'three nodes');
  for (let i = 0; i < 3; i++) await ok(['label', 'node', `sim-node-${i}`, `topology.kubernetes.io/zone=zone-${'abc'[i]}`]);
});
after(async () => {
  await cleanup(k);
});

describe('topology spread constraints', () => {
  it('DoNotSchedule spreads a Deployment evenly over zones', async () => {
    const tsc = [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'spread' } } }];
    await ok(['apply', '-f', '-'], deployment('spread', 6, { topologySpreadConstraints: tsc }));
    await ok(['rollout', 'status', 'deployment/spread', '--timeout=30s']);
    const perNode = new Map<string, number>();
    for (const p of await podsOf('app=spread')) perNode.set(p.spec.nodeName!, (perNode.get(p.spec.nodeName!) ?? 0) + 1);
    assert.deepEqual([...perNode.values()], [2, 2, 2], JSON.stringify([...perNode]));
    await ok(['delete', 'deployment', 'spread', '--wait=true']);
  });

  it('a constraint on a label no node has says so', async () => {
    const tsc = [{ maxSkew: 1, topologyKey: 'example.com/rack', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'racked' } } }];
    await ok(['apply', '-f', '-'], pod('racked', { topologySpreadConstraints: tsc }, { app: 'racked' }));
    assert.match(await failedScheduling('racked'), /^0\/3 nodes are available: 3 node\(s\) didn't match pod topology spread constraints \(missing required label\)\. preemption: 0\/3 nodes are available: 3 Preemption is not helpful for scheduling\./);
    await ok(['delete', 'pod', 'racked']);
  });
});

describe('pod affinity and anti-affinity', () => {
  it('required anti-affinity puts one replica per node and leaves the fourth pending with the reason', async () => {
    const anti = { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'solo' } } }] } };
    await ok(['apply', '-f', '-'], deployment('solo', 3, { affinity: anti }));
    await ok(['rollout', 'status', 'deployment/solo', '--timeout=30s']);
    assert.equal(new Set((await podsOf('app=solo')).map((p) => p.spec.nodeName)).size, 3);
    await ok(['scale', 'deployment/solo', '--replicas=4']);
    const pending = await waitFor(async () => (await podsOf('app=solo')).find((p) => !p.spec.nodeName)?.metadata.name, 'a pending pod');
    assert.match(
      await failedScheduling(pending),
      /^0\/3 nodes are available: 3 node\(s\) didn't match pod anti-affinity rules\. preemption: 0\/3 nodes are available: 3 No preemption victims found for incoming pod\./,
    );
    // The other direction: an existing pod's anti-affinity keeps a newcomer it selects away.
    await ok(['apply', '-f', '-'], pod('intruder', {}, { app: 'solo' }));
    assert.match(await failedScheduling('intruder'), /3 node\(s\) didn't satisfy existing pods anti-affinity rules/);
    await ok(['delete', 'pod', 'intruder']);
    await ok(['delete', 'deployment', 'solo', '--wait=true']);
  });

  it('required affinity follows the selected pod; with none to follow the pod waits, and is placed once one appears', async () => {
    await ok(['apply', '-f', '-'], pod('cache', { nodeSelector: { 'topology.kubernetes.io/zone': 'zone-b' } }, { app: 'cache' }));
    const follow = { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'topology.kubernetes.io/zone', labelSelector: { matchLabels: { app: 'cache' } } }] } };
    for (let i = 0; i < 3; i++) await ok(['apply', '-f', '-'], pod(`follower-${i}`, { affinity: follow }));
    await ok(['wait', '--for=condition=PodScheduled', 'pod/follower-0', 'pod/follower-1', 'pod/follower-2', '--timeout=20s']);
    for (let i = 0; i < 3; i++) assert.equal(await nodeOf(`follower-${i}`), 'sim-node-1');
    const lonely = { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'db' } } }] } };
    await ok(['apply', '-f', '-'], pod('lonely', { affinity: lonely }));
    assert.match(await failedScheduling('lonely'), /^0\/3 nodes are available: 3 node\(s\) didn't match pod affinity rules\. preemption: 0\/3 nodes are available: 3 Preemption is not helpful for scheduling\./);
    await ok(['apply', '-f', '-'], pod('db', { nodeSelector: { 'kubernetes.io/hostname': 'sim-node-2' } }, { app: 'db' }));
    await ok(['wait', '--for=condition=PodScheduled', 'pod/lonely', '--timeout=20s']);
    assert.equal(await nodeOf('lonely'), 'sim-node-2');
    await ok(['delete', 'pod', 'cache', 'db', 'lonely', 'follower-0', 'follower-1', 'follower-2']);
  });

  it('preferred anti-affinity steers away from the selected pods without refusing', async () => {
    await ok(['apply', '-f', '-'], pod('noisy', { nodeSelector: { 'kubernetes.io/hostname': 'sim-node-0' } }, { app: 'noisy' }));
    await ok(['wait', '--for=condition=PodScheduled', 'pod/noisy', '--timeout=20s']);
    const avoid = { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'noisy' } } } }] } };
    for (let i = 0; i < 4; i++) await ok(['apply', '-f', '-'], pod(`quiet-${i}`, { affinity: avoid }));
    await ok(['wait', '--for=condition=PodScheduled', 'pod/quiet-0', 'pod/quiet-1', 'pod/quiet-2', 'pod/quiet-3', '--timeout=20s']);
    for (let i = 0; i < 4; i++) assert.notEqual(await nodeOf(`quiet-${i}`), 'sim-node-0');
    await ok(['delete', 'pod', 'noisy', 'quiet-0', 'quiet-1', 'quiet-2', 'quiet-3']);
  });
});

describe('priority and preemption', () => {
  it('the Priority admission resolves classes and refuses unknown ones and a second default', async () => {
    assert.match(await ok(['get', 'priorityclass']), /system-cluster-critical\s+2000000000\s+false/);
    await ok(['apply', '-f', '-'], pod('critical', { priorityClassName: 'system-cluster-critical' }));
    assert.equal(await ok(['get', 'pod', 'critical', '-o', 'jsonpath={.spec.priority} {.spec.preemptionPolicy}']), '2000000000 PreemptLowerPriority');
    const r = await kc(['apply', '-f', '-'], { input: pod('nameless', { priorityClassName: 'no-such-class' }) });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /pods "nameless" is forbidden: no PriorityClass with name no-such-class was found/);
    await ok(['create', 'priorityclass', 'everyday', '--value=10', '--global-default']);
    const again = await kc(['create', 'priorityclass', 'another', '--value=20', '--global-default']);
    assert.match(again.stderr, /PriorityClass everyday is already marked as default\. Only one default can exist/);
    await ok(['run', 'plain', '--image=nginx']);
    assert.equal(await ok(['get', 'pod', 'plain', '-o', 'jsonpath={.spec.priority} {.spec.priorityClassName}']), '10 everyday');
    assert.match((await kc(['delete', 'priorityclass', 'system-node-critical'])).stderr, /deleting system priority class system-node-critical is not allowed/);
    await ok(['delete', 'priorityclass', 'everyday']);
    await ok(['delete', 'pod', 'critical', 'plain']);
  });

  it('a high-priority pod preempts a low-priority one; the victim is told, its replacement waits', async () => {
    await ok(['create', 'priorityclass', 'low', '--value=100']);
    await ok(['create', 'priorityclass', 'high', '--value=1000']);
    await ok(['create', 'priorityclass', 'polite', '--value=1000', '--preemption-policy=Never']);
    await ok(['apply', '-f', '-'], deployment('batch', 3, { priorityClassName: 'low' }, '6'));
    await ok(['rollout', 'status', 'deployment/batch', '--timeout=30s']);
    // Polite: high priority, but never preempts.
    await ok(['apply', '-f', '-'], pod('polite', { priorityClassName: 'polite' }, {}, '4'));
    assert.match(await failedScheduling('polite'), /^0\/3 nodes are available: 3 Insufficient cpu\.$/);
    await ok(['delete', 'pod', 'polite']);
    const before = new Map((await podsOf('app=batch')).map((p) => [p.metadata.name, p.spec.nodeName]));
    await ok(['apply', '-f', '-'], pod('urgent', { priorityClassName: 'high' }, {}, '4'));
    await ok(['wait', '--for=condition=PodScheduled', 'pod/urgent', '--timeout=30s']);
    const node = await nodeOf('urgent');
    const victim = [...before].find(([, n]) => n === node)![0];
    const uid = await ok(['get', 'pod', 'urgent', '-o', 'jsonpath={.metadata.uid}']);
    const events = await ok(['get', 'events', '--field-selector', `involvedObject.name=${victim}`, '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']);
    assert.match(events, new RegExp(`Preempted: Preempted by pod ${uid} on node ${node}`));
    const replacement = await waitFor(async () => (await podsOf('app=batch')).find((p) => !before.has(p.metadata.name))?.metadata.name, 'a pending pod');
    assert.match(await failedScheduling(replacement), /^0\/3 nodes are available: 3 Insufficient cpu\. preemption: 0\/3 nodes are available: 3 No preemption victims found for incoming pod\./);
    assert.equal(await ok(['get', 'pod', replacement, '-o', 'jsonpath={.spec.nodeName}']), '');
    await ok(['delete', 'deployment', 'batch', '--wait=true']);
    await ok(['delete', 'pod', 'urgent']);
  });
});

describe('RuntimeClass scheduling', () => {
  it('a pod gets the class overhead and is placed only where the runtime is', async () => {
    const rc = { apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass', metadata: { name: 'sandboxed' }, handler: 'microvm', overhead: { podFixed: { cpu: '250m', memory: '64Mi' } }, scheduling: { nodeSelector: { 'example.com/microvm': 'true' }, tolerations: [{ key: 'example.com/microvm', operator: 'Exists', effect: 'NoSchedule' }] } };
    await ok(['apply', '-f', '-'], JSON.stringify(rc));
    await ok(['taint', 'node', 'sim-node-2', 'example.com/microvm=only:NoSchedule']);
    await ok(['apply', '-f', '-'], pod('vm', { runtimeClassName: 'sandboxed' }));
    const spec = JSON.parse(await ok(['get', 'pod', 'vm', '-o', 'jsonpath={.spec}']));
    assert.deepEqual(spec.overhead, { cpu: '250m', memory: '64Mi' });
    assert.equal(spec.nodeSelector['example.com/microvm'], 'true');
    assert.match(await failedScheduling('vm'), /3 node\(s\) didn't match Pod's node affinity\/selector/);
    await ok(['label', 'node', 'sim-node-2', 'example.com/microvm=true']);
    await ok(['wait', '--for=condition=PodScheduled', 'pod/vm', '--timeout=20s']);
    assert.equal(await nodeOf('vm'), 'sim-node-2');
    const r = await kc(['apply', '-f', '-'], { input: pod('ghost', { runtimeClassName: 'no-such-runtime' }) });
    assert.match(r.stderr, /pods "ghost" is forbidden: pod rejected: RuntimeClass "no-such-runtime" not found/);
    await ok(['delete', 'pod', 'vm']);
  });
});
