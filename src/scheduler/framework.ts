import type { Obj } from '../client/kube-client.js';

/**
 * The scheduling framework's two plugin kinds. A filter rules a node out with an upstream-style
 * reason ("Insufficient cpu"); a score ranks the nodes left, 0 (worst) to 100 (best), weighted.
 * Plugins are pure functions of the pod, the node and the cluster view: no I/O.
 */
export interface NodeInfo {
  node: Obj;
  /** Pods assigned to the node (bound or assumed), for resource and spreading decisions. */
  pods: Obj[];
  /** Sums of the requests of those pods: milli-CPU, memory bytes, pod count. */
  requested: { cpu: number; memory: number; pods: number };
  /** Pods on the node per controlling owner uid, for spreading. */
  owners: Map<string, number>;
  allocatable: { cpu: number; memory: number; pods: number };
}

export interface FilterPlugin {
  name: string;
  /** undefined when the node fits, else the reason it does not. */
  filter(pod: Obj, node: NodeInfo): string | undefined;
}

export interface ScorePlugin {
  name: string;
  weight: number;
  score(pod: Obj, node: NodeInfo): number;
}
