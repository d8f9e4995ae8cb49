import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Obj } from '../client/kube-client.js';
import type { ClusterView, FilterPlugin, NodeInfo } from './framework.js';
import { addPod, newNodeInfo } from './node-info.js';
import { interPodAffinity } from './plugins/inter-pod-affinity.js';
import { podTopologySpread } from './plugins/topology-spread.js';
import { findCandidate } from './preemption.js';
import { defaultFilters } from './scheduler.js';

/** The scheduler's pure parts on hand-built cluster views: no API server involved. */
function node(name: string, labels: Record<string, string> = {}, cpu = '4'): NodeInfo {
  return newNodeInfo({ metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } }, status: { allocatable: { cpu, memory: '8Gi', pods: '110' } } });
}

let seq = 0;
function pod(labels: Record<string, string>, spec: Obj = {}, cpu = '1', ns = 'default'): Obj {
  return { metadata: { name: `p${seq++}`, namespace: ns, labels }, spec: { containers: [{ name: 'c', resources: { requests: { cpu } } }], ...spec } };
}

function view(nodes: NodeInfo[], nsLabels: Record<string, Record<string, string>> = {}): ClusterView {
  return { nodes, namespaceLabels: (ns) => nsLabels[ns] };
}

const check = (plugin: FilterPlugin, p: Obj, cluster: ClusterView) => {
  const prepared = plugin.prepare?.(p, cluster);
  return cluster.nodes.map((n) => plugin.filter(p, n, prepared) ?? 'ok');
};

describe('inter-pod affinity', () => {
  it('a namespaceSelector widens a term to the namespaces it selects', () => {
    const a = node('a');
    const b = node('b');
    addPod(a, pod({ app: 'db' }, {}, '1', 'prod'));
    const term = { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'db' } } };
    const cluster = view([a, b], { prod: { env: 'prod' } });
    // Own namespace only: no db pod in "default", and the pod is not one itself: nowhere fits.
    assert.deepEqual(check(interPodAffinity, pod({}, { affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] } } }), cluster), [
      "node(s) didn't match pod affinity rules",
      "node(s) didn't match pod affinity rules",
    ]);
    const wide = { ...term, namespaceSelector: { matchLabels: { env: 'prod' } } };
    assert.deepEqual(check(interPodAffinity, pod({}, { affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [wide] } } }), cluster), ['ok', "node(s) didn't match pod affinity rules"]);
  });

  it('the first pod of a group that selects itself may go anywhere', () => {
    const term = { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'web' } } };
    const p = pod({ app: 'web' }, { affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] } } });
    assert.deepEqual(check(interPodAffinity, p, view([node('a'), node('b')])), ['ok', 'ok']);
  });
});

describe('topology spread', () => {
  it('minDomains above the domains present treats the global minimum as 0', () => {
    const a = node('a', { zone: 'x' });
    const b = node('b', { zone: 'y' });
    addPod(a, pod({ app: 'w' }));
    addPod(b, pod({ app: 'w' }));
    const c = (minDomains?: number) => ({ maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'w' } }, minDomains });
    // Two domains with one each: skew after placing is 1, allowed.
    assert.deepEqual(check(podTopologySpread, pod({ app: 'w' }, { topologySpreadConstraints: [c()] }), view([a, b])), ['ok', 'ok']);
    // minDomains 3 with only two domains: the minimum counts as 0, so 1 + 1 - 0 > 1 everywhere.
    assert.deepEqual(check(podTopologySpread, pod({ app: 'w' }, { topologySpreadConstraints: [c(3)] }), view([a, b])), [
      "node(s) didn't match pod topology spread constraints",
      "node(s) didn't match pod topology spread constraints",
    ]);
  });
});

describe('preemption', () => {
  it('takes the fewest, lowest-priority victims and spares pods a budget protects', () => {
    const a = node('a', {}, '4');
    const b = node('b', {}, '4');
    const guarded = pod({ app: 'guarded' }, { priority: 10 }, '2');
    addPod(a, guarded);
    addPod(a, pod({ app: 'x' }, { priority: 10 }, '2'));
    const cheap = pod({ app: 'y' }, { priority: 5 }, '3');
    addPod(b, cheap);
    addPod(b, pod({ app: 'y' }, { priority: 20 }, '1'));
    const pdb = { metadata: { namespace: 'default' }, spec: { selector: { matchLabels: { app: 'guarded' } } }, status: { disruptionsAllowed: 0 } };
    const incoming = pod({}, { priority: 100 }, '2');
    const cluster = view([a, b]);
    const c = findCandidate(incoming, cluster, defaultFilters, [a, b], [pdb]);
    // On a, one priority-10 victim would do; on b, the priority-5 pod. The lower highest victim wins.
    assert.equal(c?.node, b);
    assert.deepEqual(c?.victims, [cheap]);
    // Without b, the victim on a is the unguarded pod, not the one the budget protects.
    const onA = findCandidate(incoming, view([a]), defaultFilters, [a], [pdb]);
    assert.equal(onA?.victims.length, 1);
    assert.equal(onA?.victims[0].metadata.labels.app, 'x');
    assert.equal(onA?.pdbViolations, 0);
  });

  it('finds nothing when only equal or higher priorities are in the way', () => {
    const a = node('a', {}, '2');
    addPod(a, pod({}, { priority: 100 }, '2'));
    assert.equal(findCandidate(pod({}, { priority: 100 }, '1'), view([a]), defaultFilters, [a], []), undefined);
  });
});

describe('volume binding', () => {
  const storage = (objs: { claims?: Obj[]; volumes?: Obj[]; classes?: Obj[] }): ClusterView['storage'] => ({
    claim: (ns, name) => objs.claims?.find((c) => c.metadata.namespace === ns && c.metadata.name === name),
    volume: (name) => objs.volumes?.find((v) => v.metadata.name === name),
    storageClass: (name) => objs.classes?.find((c) => c.metadata.name === name),
  });
  const claim = (name: string, extra: Obj = {}, annotations: Record<string, string> = {}) => ({ metadata: { name, namespace: 'default', annotations }, spec: { storageClassName: 'local', ...extra } });
  const using = (...claims: string[]) => pod({}, { volumes: claims.map((c) => ({ name: c, persistentVolumeClaim: { claimName: c } })) });
  const wffc = { metadata: { name: 'local' }, volumeBindingMode: 'WaitForFirstConsumer' };
  const now = { metadata: { name: 'now' }, volumeBindingMode: 'Immediate' };
  const pinned = { metadata: { name: 'pv-b' }, spec: { nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['b'] }] }] } } } };
  const plugin = defaultFilters.find((f) => f.name === 'VolumeBinding') as FilterPlugin;
  const nodes = [node('a'), node('b')];

  it('a bound claim allows only the nodes its volume is pinned to', () => {
    const cluster = { ...view(nodes), storage: storage({ claims: [claim('data', { volumeName: 'pv-b' })], volumes: [pinned], classes: [wffc] }) };
    assert.deepEqual(check(plugin, using('data'), cluster), ['node(s) had volume node affinity conflict', 'ok']);
  });

  it('an unbound WaitForFirstConsumer claim allows any node, or the one already selected for it', () => {
    assert.deepEqual(check(plugin, using('data'), { ...view(nodes), storage: storage({ claims: [claim('data')], classes: [wffc] }) }), ['ok', 'ok']);
    const chosen = storage({ claims: [claim('data', {}, { 'volume.kubernetes.io/selected-node': 'a' })], classes: [wffc] });
    assert.deepEqual(check(plugin, using('data'), { ...view(nodes), storage: chosen }), ['ok', 'node(s) had volume node affinity conflict']);
  });

  it('a missing claim or an unbound Immediate one allows no node, with upstream’s reason', () => {
    assert.deepEqual(check(plugin, using('ghost'), { ...view(nodes), storage: storage({}) }), ['persistentvolumeclaim "ghost" not found', 'persistentvolumeclaim "ghost" not found']);
    const cluster = { ...view(nodes), storage: storage({ claims: [claim('data', { storageClassName: 'now' })], classes: [now] }) };
    assert.deepEqual(check(plugin, using('data'), cluster), ['pod has unbound immediate PersistentVolumeClaims', 'pod has unbound immediate PersistentVolumeClaims']);
  });

  it('a pod without claims is not looked at', () => {
    assert.equal(plugin.prepare?.(pod({}), { ...view(nodes), storage: storage({}) }), undefined);
  });
});
