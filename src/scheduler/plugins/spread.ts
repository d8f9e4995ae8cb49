import type { Obj } from '../../client/kube-client.js';
import type { ScorePlugin } from '../framework.js';

/**
 * Default spreading (upstream's system-default topology spread by hostname): prefer the node
 * with the fewest pods of the same controller, so replicas do not pile up on one node.
 */
export function ownerUid(pod: Obj): string | undefined {
  return (pod.metadata?.ownerReferences ?? []).find((r: Obj) => r.controller)?.uid;
}

export const defaultSpread: ScorePlugin = {
  name: 'DefaultPodTopologySpread',
  weight: 2,
  score(pod, n) {
    const uid = ownerUid(pod);
    // Upstream applies its system default only to pods that state no constraints of their own.
    if (!uid || pod.spec?.topologySpreadConstraints?.length) return 0;
    const same = n.owners.get(uid) ?? 0;
    return 100 / (1 + same);
  },
};
