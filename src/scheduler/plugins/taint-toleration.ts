import type { Obj } from '../../client/kube-client.js';
import type { FilterPlugin } from '../framework.js';

/** TaintToleration: a pod lands only where it tolerates every NoSchedule/NoExecute taint. */
export function tolerates(tolerations: Obj[], taint: Obj): boolean {
  return tolerations.some((t) => {
    if (t.effect && t.effect !== taint.effect) return false;
    if (t.operator === 'Exists') return !t.key || t.key === taint.key;
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
  });
}

export const taintToleration: FilterPlugin = {
  name: 'TaintToleration',
  filter(pod, n) {
    const tolerations: Obj[] = pod.spec?.tolerations ?? [];
    for (const taint of (n.node.spec?.taints ?? []) as Obj[]) {
      if (taint.effect === 'PreferNoSchedule') continue;
      if (!tolerates(tolerations, taint)) return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`;
    }
    return undefined;
  },
};
