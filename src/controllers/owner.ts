import { labelSelectorMatches } from '../api/selectors.js';
import type { InformerHandlers } from '../client/informer.js';
import type { Obj } from '../client/kube-client.js';

/** Owner references as the workload controllers use them. */
export function controllerRef(obj: Obj): Obj | undefined {
  return (obj.metadata?.ownerReferences ?? []).find((r: Obj) => r.controller);
}

export function ownerReferenceTo(owner: Obj, apiVersion: string, kind: string): Obj {
  return { apiVersion, kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true };
}

export function isPodReady(pod: Obj): boolean {
  return (pod.status?.conditions ?? []).some((c: Obj) => c.type === 'Ready' && c.status === 'True');
}

/** Ready for at least minReadySeconds. */
export function isPodAvailable(pod: Obj, minReadySeconds: number, now = Date.now()): boolean {
  const ready = (pod.status?.conditions ?? []).find((c: Obj) => c.type === 'Ready' && c.status === 'True');
  if (!ready) return false;
  if (!minReadySeconds) return true;
  return Date.parse(ready.lastTransitionTime ?? '') + minReadySeconds * 1000 <= now;
}

export function isActivePod(pod: Obj): boolean {
  return !pod.metadata?.deletionTimestamp && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';
}

/**
 * Whether a controller's metav1.LabelSelector selects these labels. Unlike a bare label
 * selector, an empty one selects nothing here: a controller never adopts every pod.
 */
export function selectorMatches(selector: Obj | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || (!Object.keys(selector.matchLabels ?? {}).length && !(selector.matchExpressions ?? []).length)) return false;
  return labelSelectorMatches(selector, labels);
}

/** Informer handlers that queue the namespace/name of an object's controlling owner of `kind`. */
export function requeueOwner(kind: string, queue: { add(key: string): void }): InformerHandlers {
  const changed = (obj: Obj) => {
    const ref = controllerRef(obj);
    if (ref?.kind === kind) queue.add(`${obj.metadata.namespace}/${ref.name}`);
  };
  return { add: changed, update: (_, obj) => changed(obj), delete: changed };
}
