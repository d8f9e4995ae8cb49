import { bytes, milliCpu } from '../../api/quantity.js';
import type { Obj } from '../../client/kube-client.js';

/**
 * What a pod asks of a node: the sum of its containers' requests, at least the largest init
 * container's, plus the pod overhead (as upstream's resource accounting).
 */
const cache = new WeakMap<Obj, { cpu: number; memory: number }>();

/** Memoised per pod object: a scheduling cycle asks once per node. */
export function podRequests(pod: Obj): { cpu: number; memory: number } {
  let known = cache.get(pod);
  if (!known) {
    known = compute(pod);
    cache.set(pod, known);
  }
  return known;
}

function compute(pod: Obj): { cpu: number; memory: number } {
  const sum = { cpu: 0, memory: 0 };
  for (const c of pod.spec?.containers ?? []) {
    sum.cpu += milliCpu(c.resources?.requests?.cpu);
    sum.memory += bytes(c.resources?.requests?.memory);
  }
  for (const c of pod.spec?.initContainers ?? []) {
    sum.cpu = Math.max(sum.cpu, milliCpu(c.resources?.requests?.cpu));
    sum.memory = Math.max(sum.memory, bytes(c.resources?.requests?.memory));
  }
  sum.cpu += milliCpu(pod.spec?.overhead?.cpu);
  sum.memory += bytes(pod.spec?.overhead?.memory);
  return sum;
}
