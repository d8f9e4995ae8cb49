import { labelSelectorMatches } from '../api/selectors.js';
import type { Obj } from '../client/kube-client.js';
import type { ClusterView, FilterPlugin, NodeInfo } from './framework.js';
import { addPod, cloneNodeInfo, removePod } from './node-info.js';

/**
 * Preemption (upstream's DefaultPreemption PostFilter), as a pure function of the cluster view:
 * on each node where evicting pods could help, take out every pod of lower priority; if the pod
 * then fits, give back as many of them as still leave room (those whose eviction would break a
 * PodDisruptionBudget first, then by descending priority). The victims left are the price of the
 * node. The cheapest node wins: fewest budget violations, then the lowest highest-priority
 * victim, the lowest sum of priorities, the fewest victims.
 */
export interface Candidate {
  node: NodeInfo;
  /** Highest priority first. */
  victims: Obj[];
  pdbViolations: number;
}

export const priorityOf = (pod: Obj): number => pod.spec?.priority ?? 0;

/** Whether a pod may preempt at all: its policy allows it. */
export function mayPreempt(pod: Obj): boolean {
  return pod.spec?.preemptionPolicy !== 'Never';
}

export function findCandidate(pod: Obj, cluster: ClusterView, filters: FilterPlugin[], nodes: NodeInfo[], pdbs: Obj[]): Candidate | undefined {
  const prio = priorityOf(pod);
  // Plugins that look at the whole cluster must see the trial node in place of the real one.
  const cycleWide = filters.some((f) => f.prepare?.(pod, cluster) !== undefined);
  const fits = (trial: NodeInfo): boolean => {
    const view = cycleWide ? { ...cluster, nodes: cluster.nodes.map((n) => (n.node === trial.node ? trial : n)) } : cluster;
    return filters.every((f) => !f.filter(pod, trial, cycleWide ? f.prepare?.(pod, view) : undefined));
  };
  const candidates: Candidate[] = [];
  for (const n of nodes) {
    const lower = n.pods.filter((p) => priorityOf(p) < prio);
    if (!lower.length) continue;
    const trial = cloneNodeInfo(n);
    for (const p of lower) removePod(trial, p);
    if (!fits(trial)) continue;
    lower.sort((a, b) => priorityOf(b) - priorityOf(a) || String(a.status?.startTime ?? '').localeCompare(String(b.status?.startTime ?? '')));
    const violating = budgetViolations(lower, pdbs);
    const order = [...lower.filter((p) => violating.has(p)), ...lower.filter((p) => !violating.has(p))];
    const victims: Obj[] = [];
    let pdbViolations = 0;
    for (const p of order) {
      addPod(trial, p);
      if (fits(trial)) continue;
      removePod(trial, p);
      victims.push(p);
      if (violating.has(p)) pdbViolations++;
    }
    victims.sort((a, b) => priorityOf(b) - priorityOf(a));
    candidates.push({ node: n, victims, pdbViolations });
  }
  const sum = (c: Candidate) => c.victims.reduce((s, p) => s + priorityOf(p), 0);
  candidates.sort(
    (a, b) =>
      a.pdbViolations - b.pdbViolations ||
      priorityOf(a.victims[0] ?? {}) - priorityOf(b.victims[0] ?? {}) ||
      sum(a) - sum(b) ||
      a.victims.length - b.victims.length,
  );
  return candidates[0];
}

/** The pods whose eviction, in this order, would take some budget below zero disruptions allowed. */
function budgetViolations(pods: Obj[], pdbs: Obj[]): Set<Obj> {
  const allowed = new Map(pdbs.map((b) => [b, b.status?.disruptionsAllowed ?? 0]));
  const out = new Set<Obj>();
  for (const p of pods) {
    for (const b of pdbs) {
      if (b.metadata?.namespace !== p.metadata?.namespace || !labelSelectorMatches(b.spec?.selector, p.metadata?.labels)) continue;
      const left = allowed.get(b)! - 1;
      allowed.set(b, left);
      if (left < 0) out.add(p);
    }
  }
  return out;
}
