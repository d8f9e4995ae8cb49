import { nodeMatchesPod, untoleratedTaint } from '../../api/node-match.js';
import { labelSelectorMatches } from '../../api/selectors.js';
import type { Obj } from '../../client/kube-client.js';
import type { ClusterView, FilterPlugin, NodeInfo, ScorePlugin } from '../framework.js';

/**
 * PodTopologySpread: spec.topologySpreadConstraints. For each constraint, the pods its selector
 * picks (in the pod's namespace) are counted per domain over the nodes the pod could use (node
 * affinity honoured, taints ignored unless nodeTaintsPolicy says Honor); a node is refused when
 * placing the pod there would make its domain exceed the least-loaded domain by more than maxSkew
 * (DoNotSchedule), or ranked lower the fuller its domain is (ScheduleAnyway).
 */
interface Counted {
  constraint: Obj;
  counts: Map<string, number>;
  /** Fewest matching pods in any domain (0 while there are fewer domains than minDomains). */
  min: number;
  /** 1 when the pod's own labels match, so placing it adds to the count. */
  self: number;
}

/** The constraint's selector with matchLabelKeys folded in as `key In (pod's value)`. */
function selectorOf(pod: Obj, c: Obj): Obj {
  const keys: string[] = c.matchLabelKeys ?? [];
  if (!keys.length) return c.labelSelector;
  const labels = pod.metadata?.labels ?? {};
  const extra = keys.filter((k) => Object.hasOwn(labels, k)).map((k) => ({ key: k, operator: 'In', values: [labels[k]] }));
  return { matchLabels: c.labelSelector?.matchLabels, matchExpressions: [...(c.labelSelector?.matchExpressions ?? []), ...extra] };
}

function eligible(pod: Obj, n: NodeInfo, constraints: Obj[]): boolean {
  const labels = n.node.metadata?.labels ?? {};
  if (!constraints.every((c) => Object.hasOwn(labels, c.topologyKey))) return false;
  if (constraints.some((c) => (c.nodeAffinityPolicy ?? 'Honor') === 'Honor') && !nodeMatchesPod(pod.spec, n.node)) return false;
  if (constraints.some((c) => c.nodeTaintsPolicy === 'Honor') && untoleratedTaint(pod.spec, n.node)) return false;
  return true;
}

function count(pod: Obj, constraints: Obj[], cluster: ClusterView): Counted[] {
  const nodes = cluster.nodes.filter((n) => eligible(pod, n, constraints));
  return constraints.map((constraint) => {
    const selector = selectorOf(pod, constraint);
    const counts = new Map<string, number>();
    for (const n of nodes) {
      const v = n.node.metadata.labels[constraint.topologyKey];
      let c = counts.get(v) ?? 0;
      for (const p of n.pods) if (p.metadata?.namespace === pod.metadata?.namespace && labelSelectorMatches(selector, p.metadata?.labels)) c++;
      counts.set(v, c);
    }
    const min = counts.size < (constraint.minDomains ?? 1) ? 0 : counts.size ? Math.min(...counts.values()) : 0;
    return { constraint, counts, min, self: labelSelectorMatches(selector, pod.metadata?.labels) ? 1 : 0 };
  });
}

const constraintsOf = (pod: Obj, when: string): Obj[] => (pod.spec?.topologySpreadConstraints ?? []).filter((c: Obj) => c.whenUnsatisfiable === when);

const missingLabel = "node(s) didn't match pod topology spread constraints (missing required label)";
const skewed = "node(s) didn't match pod topology spread constraints";

export const podTopologySpread: FilterPlugin<Counted[]> = {
  name: 'PodTopologySpread',
  prepare(pod, cluster) {
    const hard = constraintsOf(pod, 'DoNotSchedule');
    return hard.length ? count(pod, hard, cluster) : undefined;
  },
  filter(_pod, n, counted) {
    for (const { constraint, counts, min, self } of counted ?? []) {
      const v = n.node.metadata?.labels?.[constraint.topologyKey];
      if (v === undefined) return missingLabel;
      if ((counts.get(v) ?? 0) + self - min > (constraint.maxSkew ?? 1)) return skewed;
    }
    return undefined;
  },
  resolvable: (reason) => reason === skewed,
};

interface SoftState {
  counted: Counted[];
  /** Upstream weighs each constraint by log(domains + 2), so a many-domain key is not drowned out. */
  weights: number[];
  min: number;
  max: number;
}

function raw(n: NodeInfo, s: SoftState): number | undefined {
  let sum = 0;
  for (let i = 0; i < s.counted.length; i++) {
    const v = n.node.metadata?.labels?.[s.counted[i].constraint.topologyKey];
    if (v === undefined) return undefined;
    sum += (s.counted[i].counts.get(v) ?? 0) * s.weights[i];
  }
  return sum;
}

export const podTopologySpreadScore: ScorePlugin<SoftState> = {
  name: 'PodTopologySpread',
  weight: 2,
  prepare(pod, cluster) {
    const soft = constraintsOf(pod, 'ScheduleAnyway');
    if (!soft.length) return undefined;
    const counted = count(pod, soft, cluster);
    const s: SoftState = { counted, weights: counted.map((c) => Math.log(c.counts.size + 2)), min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY };
    for (const n of cluster.nodes) {
      const r = raw(n, s);
      if (r === undefined) continue;
      s.min = Math.min(s.min, r);
      s.max = Math.max(s.max, r);
    }
    return s;
  },
  score(_pod, n, s) {
    if (!s) return 0;
    const r = raw(n, s);
    if (r === undefined) return 0;
    return s.max === s.min ? 100 : (100 * (s.max - r)) / (s.max - s.min);
  },
};
