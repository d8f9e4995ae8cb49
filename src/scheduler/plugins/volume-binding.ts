import { SELECTED_NODE_ANNOTATION } from '../../api/local-path.js';
import { volumeAdmits } from '../../api/node-match.js';
import type { Obj } from '../../client/kube-client.js';
import type { FilterPlugin } from '../framework.js';

interface Claims {
  /** Why no node can take the pod, whichever it is (a missing or unbound Immediate claim). */
  unresolvable?: string;
  /** Volumes the pod's claims are bound to that only some nodes reach. */
  pinned: Obj[];
  /** Nodes already chosen for the pod's unbound WaitForFirstConsumer claims. */
  selected: Set<string>;
}

const conflict = 'node(s) had volume node affinity conflict';

/**
 * VolumeBinding: a pod goes only where its claims' volumes are. A claim bound to a volume with
 * node affinity allows the nodes that affinity admits; an unbound claim of a WaitForFirstConsumer
 * class allows any node (the scheduler then selects it for the claim, and the volume is
 * provisioned there), unless an earlier pod already selected one; an unbound claim of any other
 * class, or a missing one, allows none. Upstream's reasons.
 */
export const volumeBinding: FilterPlugin<Claims> = {
  name: 'VolumeBinding',
  prepare(pod, cluster) {
    const names: string[] = (pod.spec?.volumes ?? []).map((v: Obj) => v.persistentVolumeClaim?.claimName).filter(Boolean);
    if (!names.length || !cluster.storage) return undefined;
    const out: Claims = { pinned: [], selected: new Set() };
    for (const name of names) {
      const pvc = cluster.storage.claim(pod.metadata.namespace, name);
      if (!pvc) return { ...out, unresolvable: `persistentvolumeclaim "${name}" not found` };
      if (pvc.metadata.deletionTimestamp) return { ...out, unresolvable: `persistentvolumeclaim "${name}" is being deleted` };
      if (pvc.spec?.volumeName) {
        const pv = cluster.storage.volume(pvc.spec.volumeName);
        if (!pv) return { ...out, unresolvable: 'pvc(s) bound to non-existent pv(s)' };
        if (pv.spec?.nodeAffinity?.required) out.pinned.push(pv);
        continue;
      }
      const cls = cluster.storage.storageClass(pvc.spec?.storageClassName ?? '');
      if (cls?.volumeBindingMode !== 'WaitForFirstConsumer') return { ...out, unresolvable: 'pod has unbound immediate PersistentVolumeClaims' };
      const chosen = pvc.metadata.annotations?.[SELECTED_NODE_ANNOTATION];
      if (chosen) out.selected.add(chosen);
    }
    return out;
  },
  filter(_pod, n, claims) {
    if (!claims) return undefined;
    if (claims.unresolvable) return claims.unresolvable;
    if (claims.selected.size && !claims.selected.has(n.node.metadata.name)) return conflict;
    return claims.pinned.every((pv) => volumeAdmits(pv, n.node)) ? undefined : conflict;
  },
};
