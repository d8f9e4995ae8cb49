import type { Obj } from '../client/kube-client.js';

/**
 * The scheduling framework's plugin kinds. A filter rules a node out with an upstream-style
 * reason ("Insufficient cpu"); a score ranks the nodes left, 0 (worst) to 100 (best), weighted.
 * Plugins are pure functions of the pod, the node and the cluster view: no I/O.
 *
 * A plugin that needs the whole cluster (inter-pod affinity, topology spreading) implements
 * `prepare`, upstream's PreFilter/PreScore: it runs once per pod and scheduling cycle, and what
 * it returns is handed to every `filter` or `score` call of that cycle. It returns undefined when
 * the pod asks nothing of it, and filter/score then pass at once.
 */
export interface NodeInfo {
  node: Obj;
  /** Pods assigned to the node (bound or assumed), for resource and spreading decisions. */
  pods: Obj[];
  /** Those of the pods that carry pod affinity or anti-affinity terms (few, usually none). */
  affinityPods: Obj[];
  /** Sums of the requests of those pods: milli-CPU, memory bytes, pod count. */
  requested: { cpu: number; memory: number; pods: number };
  /** Pods on the node per controlling owner uid, for spreading. */
  owners: Map<string, number>;
  allocatable: { cpu: number; memory: number; pods: number };
}

/** Everything a cycle may look at besides the pod. */
export interface ClusterView {
  nodes: readonly NodeInfo[];
  /** A namespace's labels, for namespaceSelector in affinity terms; undefined if unknown. */
  namespaceLabels(ns: string): Record<string, string> | undefined;
  /** Claims, volumes and classes as last seen, for volume placement; absent where nobody watches them. */
  storage?: StorageView;
}

/** Lookups of storage objects by name; undefined when there is no such object. */
export interface StorageView {
  claim(namespace: string, name: string): Obj | undefined;
  volume(name: string): Obj | undefined;
  storageClass(name: string): Obj | undefined;
}

// biome-ignore lint/suspicious/noExplicitAny: each plugin types its own prepared state
export interface FilterPlugin<S = any> {
  name: string;
  prepare?(pod: Obj, cluster: ClusterView): S | undefined;
  /** undefined when the node fits, else the reason it does not. */
  filter(pod: Obj, node: NodeInfo, prepared: S | undefined): string | undefined;
  /**
   * Whether evicting lower-priority pods from the node could cure this reason (upstream's
   * Unschedulable as against UnschedulableAndUnresolvable). Absent: it could not.
   */
  resolvable?(reason: string): boolean;
}

// biome-ignore lint/suspicious/noExplicitAny: each plugin types its own prepared state
export interface ScorePlugin<S = any> {
  name: string;
  weight: number;
  prepare?(pod: Obj, cluster: ClusterView): S | undefined;
  score(pod: Obj, node: NodeInfo, prepared: S | undefined): number;
}
