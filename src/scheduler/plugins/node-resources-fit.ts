import type { FilterPlugin, ScorePlugin } from '../framework.js';
import { podRequests } from './pod-requests.js';

/** NodeResourcesFit: requests must fit in allocatable minus what is already requested. */
export const nodeResourcesFit: FilterPlugin = {
  name: 'NodeResourcesFit',
  filter(pod, n) {
    const want = podRequests(pod);
    if (n.requested.pods + 1 > n.allocatable.pods) return 'Too many pods';
    if (want.cpu > 0 && n.requested.cpu + want.cpu > n.allocatable.cpu) return 'Insufficient cpu';
    if (want.memory > 0 && n.requested.memory + want.memory > n.allocatable.memory) return 'Insufficient memory';
    return undefined;
  },
  resolvable: () => true,
};

/** LeastAllocated: prefer the node with the most free CPU and memory after placing the pod. */
export const leastAllocated: ScorePlugin = {
  name: 'NodeResourcesLeastAllocated',
  weight: 1,
  score(pod, n) {
    const want = podRequests(pod);
    const free = (req: number, alloc: number) => (alloc <= 0 ? 0 : Math.max(0, (alloc - req) / alloc));
    return ((free(n.requested.cpu + want.cpu, n.allocatable.cpu) + free(n.requested.memory + want.memory, n.allocatable.memory)) / 2) * 100;
  },
};
