import { labelSelectorMatches } from '../../api/selectors.js';
import type { Obj } from '../../client/kube-client.js';
import type { ClusterView, FilterPlugin, NodeInfo, ScorePlugin } from '../framework.js';

/**
 * InterPodAffinity: pod affinity and anti-affinity by topology domain (the nodes sharing a
 * value of the term's topologyKey). Required terms filter, in both directions (an existing pod's
 * anti-affinity keeps the incoming pod out of its domain); preferred terms, and the existing
 * pods' terms towards the incoming pod, score.
 */
const required = (pod: Obj, kind: 'podAffinity' | 'podAntiAffinity'): Obj[] => pod.spec?.affinity?.[kind]?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
const preferred = (pod: Obj, kind: 'podAffinity' | 'podAntiAffinity'): Obj[] => pod.spec?.affinity?.[kind]?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
const domainOf = (n: NodeInfo, key: string): string | undefined => n.node.metadata?.labels?.[key];

/** Whether `owner`'s affinity term selects `target`: its namespaces, then its label selector. */
export function termSelects(owner: Obj, term: Obj, target: Obj, cluster: ClusterView): boolean {
  const ns: string = target.metadata?.namespace;
  const names: string[] = term.namespaces ?? [];
  const inNamespace =
    !names.length && !term.namespaceSelector
      ? ns === owner.metadata?.namespace
      : names.includes(ns) || (!!term.namespaceSelector && labelSelectorMatches(term.namespaceSelector, cluster.namespaceLabels(ns)));
  return inNamespace && labelSelectorMatches(term.labelSelector, target.metadata?.labels);
}

/** Pods per domain that a term of `pod` selects, over the whole cluster. */
function countSelected(pod: Obj, term: Obj, cluster: ClusterView): Map<string, number> {
  const counts = new Map<string, number>();
  for (const n of cluster.nodes) {
    const v = domainOf(n, term.topologyKey);
    if (v === undefined) continue;
    for (const p of n.pods) if (p !== pod && termSelects(pod, term, p, cluster)) counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  return counts;
}

interface FilterState {
  /** topologyKey -> domains an existing pod's required anti-affinity closes to this pod. */
  blocked: Map<string, Set<string>>;
  affinity: { term: Obj; counts: Map<string, number> }[];
  anti: { term: Obj; counts: Map<string, number> }[];
  /** No pod anywhere matches the affinity terms, but the pod matches them itself: the first of a group may go anywhere. */
  firstOfGroup: boolean;
}

const existingAnti = "node(s) didn't satisfy existing pods anti-affinity rules";
const antiRules = "node(s) didn't match pod anti-affinity rules";
const affinityRules = "node(s) didn't match pod affinity rules";

export const interPodAffinity: FilterPlugin<FilterState> = {
  name: 'InterPodAffinity',
  prepare(pod, cluster) {
    const blocked = new Map<string, Set<string>>();
    for (const n of cluster.nodes) {
      for (const p of n.affinityPods) {
        for (const t of required(p, 'podAntiAffinity')) {
          const v = domainOf(n, t.topologyKey);
          if (v === undefined || !termSelects(p, t, pod, cluster)) continue;
          if (!blocked.has(t.topologyKey)) blocked.set(t.topologyKey, new Set());
          blocked.get(t.topologyKey)!.add(v);
        }
      }
    }
    const affinityTerms = required(pod, 'podAffinity');
    const antiTerms = required(pod, 'podAntiAffinity');
    if (!blocked.size && !affinityTerms.length && !antiTerms.length) return undefined;
    const affinity = affinityTerms.map((term) => ({ term, counts: countSelected(pod, term, cluster) }));
    const anti = antiTerms.map((term) => ({ term, counts: countSelected(pod, term, cluster) }));
    const firstOfGroup = affinity.every((a) => a.counts.size === 0) && affinityTerms.every((t) => termSelects(pod, t, pod, cluster));
    return { blocked, affinity, anti, firstOfGroup };
  },
  filter(_pod, n, s) {
    if (!s) return undefined;
    // Upstream's order, which decides the reason a node gives: own affinity, own anti-affinity, others' anti-affinity.
    if (!s.firstOfGroup) {
      for (const { term, counts } of s.affinity) {
        const v = domainOf(n, term.topologyKey);
        if (v === undefined || !counts.get(v)) return affinityRules;
      }
    }
    for (const { term, counts } of s.anti) {
      const v = domainOf(n, term.topologyKey);
      if (v !== undefined && counts.get(v)) return antiRules;
    }
    for (const [key, values] of s.blocked) {
      const v = domainOf(n, key);
      if (v !== undefined && values.has(v)) return existingAnti;
    }
    return undefined;
  },
  resolvable: (reason) => reason === existingAnti || reason === antiRules,
};

interface ScoreState {
  /** topologyKey -> domain -> summed weight. */
  byDomain: Map<string, Map<string, number>>;
  min: number;
  max: number;
}

function rawScore(n: NodeInfo, byDomain: ScoreState['byDomain']): number {
  let sum = 0;
  for (const [key, domains] of byDomain) {
    const v = domainOf(n, key);
    if (v !== undefined) sum += domains.get(v) ?? 0;
  }
  return sum;
}

/** Upstream's hardPodAffinityWeight: an existing pod's required affinity also attracts, weakly. */
const hardPodAffinityWeight = 1;

export const interPodAffinityScore: ScorePlugin<ScoreState> = {
  name: 'InterPodAffinity',
  weight: 2,
  prepare(pod, cluster) {
    const byDomain = new Map<string, Map<string, number>>();
    const add = (key: string, v: string | undefined, w: number) => {
      if (v === undefined || !w) return;
      if (!byDomain.has(key)) byDomain.set(key, new Map());
      const m = byDomain.get(key)!;
      m.set(v, (m.get(v) ?? 0) + w);
    };
    const mine = [...preferred(pod, 'podAffinity').map((t) => ({ t, sign: 1 })), ...preferred(pod, 'podAntiAffinity').map((t) => ({ t, sign: -1 }))];
    for (const n of cluster.nodes) {
      if (mine.length) {
        for (const p of n.pods) {
          for (const { t, sign } of mine) if (p !== pod && termSelects(pod, t.podAffinityTerm ?? {}, p, cluster)) add(t.podAffinityTerm.topologyKey, domainOf(n, t.podAffinityTerm.topologyKey), sign * (t.weight ?? 0));
        }
      }
      for (const p of n.affinityPods) {
        for (const t of preferred(p, 'podAffinity')) if (termSelects(p, t.podAffinityTerm ?? {}, pod, cluster)) add(t.podAffinityTerm.topologyKey, domainOf(n, t.podAffinityTerm.topologyKey), t.weight ?? 0);
        for (const t of preferred(p, 'podAntiAffinity')) if (termSelects(p, t.podAffinityTerm ?? {}, pod, cluster)) add(t.podAffinityTerm.topologyKey, domainOf(n, t.podAffinityTerm.topologyKey), -(t.weight ?? 0));
        for (const t of required(p, 'podAffinity')) if (termSelects(p, t, pod, cluster)) add(t.topologyKey, domainOf(n, t.topologyKey), hardPodAffinityWeight);
      }
    }
    if (!byDomain.size) return undefined;
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const n of cluster.nodes) {
      const s = rawScore(n, byDomain);
      min = Math.min(min, s);
      max = Math.max(max, s);
    }
    return { byDomain, min, max };
  },
  score(_pod, n, s) {
    if (!s || s.max === s.min) return 0;
    return (100 * (rawScore(n, s.byDomain) - s.min)) / (s.max - s.min);
  },
};
