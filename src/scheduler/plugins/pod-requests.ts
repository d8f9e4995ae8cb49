import { podResourceTotals } from '../../api/pod-resources.js';
import type { Obj } from '../../client/kube-client.js';

/** What a pod asks of a node (api/pod-resources.ts): milli-CPU and memory bytes. */
const cache = new WeakMap<Obj, { cpu: number; memory: number }>();

/** Memoised per pod object: a scheduling cycle asks once per node. */
export function podRequests(pod: Obj): { cpu: number; memory: number } {
  let known = cache.get(pod);
  if (!known) {
    const totals = podResourceTotals(pod.spec, 'requests');
    known = { cpu: totals.get('cpu') ?? 0, memory: totals.get('memory') ?? 0 };
    cache.set(pod, known);
  }
  return known;
}
