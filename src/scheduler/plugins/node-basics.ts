import { tolerates } from '../../api/node-match.js';
import type { FilterPlugin } from '../framework.js';

/** NodeUnschedulable (cordoned nodes) and NodeName (a pod naming its node). */
export const nodeUnschedulable: FilterPlugin = {
  name: 'NodeUnschedulable',
  filter(pod, n) {
    if (!n.node.spec?.unschedulable) return undefined;
    const ok = tolerates(pod.spec?.tolerations ?? [], { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' });
    return ok ? undefined : 'node(s) were unschedulable';
  },
};

export const nodeName: FilterPlugin = {
  name: 'NodeName',
  filter(pod, n) {
    const want = pod.spec?.nodeName;
    return want && want !== n.node.metadata?.name ? "node(s) didn't match the requested node name" : undefined;
  },
};
