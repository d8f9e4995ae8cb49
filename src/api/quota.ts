import { podResourceTotals } from './pod-resources.js';
import { bytes } from './quantity.js';

/**
 * What an object counts against a ResourceQuota, as upstream's quota evaluators count it: pods
 * (while not finished) with their compute requests and limits, services by type and node ports,
 * claims and their storage (also per StorageClass), and one of its kind for `count/<resource>`.
 * Pure functions, shared by the quota controller (which sums them) and quota admission (which
 * checks one new object against what is used).
 */
// biome-ignore lint/suspicious/noExplicitAny: API objects are untyped JSON
type Obj = Record<string, any>;

const storageClassSuffix = '.storageclass.storage.k8s.io/';

/** A pod holds its quota until it finishes or its grace period after deletion runs out. */
export function holdsQuota(pod: Obj, now = Date.now()): boolean {
  if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return false;
  const deleted = pod.metadata?.deletionTimestamp;
  if (!deleted) return true;
  return Date.parse(deleted) + (pod.metadata.deletionGracePeriodSeconds ?? 0) * 1000 > now;
}

export function isBestEffort(pod: Obj): boolean {
  return [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].every((c: Obj) => {
    const r = c.resources ?? {};
    return !['cpu', 'memory'].some((k) => r.requests?.[k] !== undefined || r.limits?.[k] !== undefined);
  });
}

/** The quota's scopes, spec.scopes and scopeSelector alike, as scope selector requirements. */
export function scopesOf(quota: Obj): Obj[] {
  return [...(quota.spec?.scopes ?? []).map((scopeName: string) => ({ scopeName, operator: 'Exists' })), ...(quota.spec?.scopeSelector?.matchExpressions ?? [])];
}

function scopeHolds(scope: Obj, pod: Obj): boolean {
  switch (scope.scopeName) {
    case 'Terminating':
      return pod.spec?.activeDeadlineSeconds !== undefined && pod.spec?.activeDeadlineSeconds !== null;
    case 'NotTerminating':
      return pod.spec?.activeDeadlineSeconds === undefined || pod.spec?.activeDeadlineSeconds === null;
    case 'BestEffort':
      return isBestEffort(pod);
    case 'NotBestEffort':
      return !isBestEffort(pod);
    case 'PriorityClass': {
      const name: string | undefined = pod.spec?.priorityClassName || undefined;
      if (scope.operator === 'Exists') return !!name;
      if (scope.operator === 'DoesNotExist') return !name;
      const listed = !!name && (scope.values ?? []).includes(name);
      return scope.operator === 'NotIn' ? !listed : listed;
    }
    case 'CrossNamespacePodAffinity': {
      const terms: Obj[] = [
        ...(pod.spec?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []),
        ...(pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []),
      ];
      return terms.some((t) => t.namespaces?.length || t.namespaceSelector);
    }
    default:
      return false;
  }
}

/** Whether a pod is in every scope of the quota (PriorityClass carries its own operator). */
export function inScopes(scopes: Obj[], pod: Obj): boolean {
  return scopes.every((s) => {
    const holds = scopeHolds(s, pod);
    return s.scopeName !== 'PriorityClass' && s.operator === 'DoesNotExist' ? !holds : holds;
  });
}

/**
 * What one object adds to each quota resource name. `resource` is "<plural>" for the core group,
 * else "<plural>.<group>". A finished pod adds nothing.
 */
export function usageOf(resource: string, obj: Obj): Map<string, number> {
  const out = new Map<string, number>([[`count/${resource}`, 1]]);
  switch (resource) {
    case 'pods': {
      if (!holdsQuota(obj)) return new Map();
      out.set('pods', 1);
      // Quota counts CPU in cores.
      const value = (k: string, v: number) => (k === 'cpu' ? v / 1000 : v);
      for (const [k, v] of podResourceTotals(obj.spec, 'requests')) {
        out.set(`requests.${k}`, value(k, v));
        if (['cpu', 'memory', 'ephemeral-storage'].includes(k)) out.set(k, value(k, v));
      }
      for (const [k, v] of podResourceTotals(obj.spec, 'limits')) out.set(`limits.${k}`, value(k, v));
      break;
    }
    case 'services': {
      out.set('services', 1);
      const type = obj.spec?.type;
      if (type === 'LoadBalancer') out.set('services.loadbalancers', 1);
      if (type === 'NodePort' || type === 'LoadBalancer') out.set('services.nodeports', obj.spec?.ports?.length ?? 0);
      break;
    }
    case 'persistentvolumeclaims': {
      const storage = bytes(obj.spec?.resources?.requests?.storage ?? 0);
      out.set('persistentvolumeclaims', 1);
      out.set('requests.storage', storage);
      const cls = obj.spec?.storageClassName;
      if (cls) {
        out.set(`${cls}${storageClassSuffix}persistentvolumeclaims`, 1);
        out.set(`${cls}${storageClassSuffix}requests.storage`, storage);
      }
      break;
    }
    case 'configmaps':
    case 'secrets':
    case 'resourcequotas':
    case 'replicationcontrollers':
      out.set(resource, 1);
      break;
  }
  return out;
}

/** The quota resource names that a resource's objects can count against ("count/…" aside). */
export function resourceOfKey(key: string): string | undefined {
  if (key.startsWith('count/')) return key.slice('count/'.length);
  if (key === 'pods' || key === 'cpu' || key === 'memory' || key === 'ephemeral-storage' || key.startsWith('limits.') || (key.startsWith('requests.') && key !== 'requests.storage')) return 'pods';
  if (key.startsWith('services')) return 'services';
  if (key === 'persistentvolumeclaims' || key === 'requests.storage' || key.includes(storageClassSuffix)) return 'persistentvolumeclaims';
  if (['configmaps', 'secrets', 'resourcequotas', 'replicationcontrollers'].includes(key)) return key;
  return undefined;
}
