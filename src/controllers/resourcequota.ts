import { bytes, formatQuantity, isBinarySI, milliCpu, parseQuantity } from '../api/quantity.js';
import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * ResourceQuota controller: keeps each quota's status.hard (a copy of spec.hard) and status.used,
 * recounted whenever an object it counts changes in its namespace. It counts what upstream's
 * quota evaluators count: pods and their compute requests and limits (of pods not finished, and
 * only those matching the quota's scopes), services by type and node ports, claims and their
 * storage (also per StorageClass), config maps, secrets, quotas, and `count/<resource>.<group>`
 * for any other kind. Denying a create that would exceed a quota is admission's work, not this.
 */
const storageClassSuffix = '.storageclass.storage.k8s.io/';

/** API paths of the kinds `count/<plural>.<group>` may name beyond the ones counted natively. */
const groupVersions: Record<string, string> = {
  '': 'v1',
  apps: 'v1',
  batch: 'v1',
  autoscaling: 'v2',
  policy: 'v1',
  'networking.k8s.io': 'v1',
  'discovery.k8s.io': 'v1',
  'rbac.authorization.k8s.io': 'v1',
  'storage.k8s.io': 'v1',
  'coordination.k8s.io': 'v1',
  'events.k8s.io': 'v1',
};

function collectionPath(resource: string): string | undefined {
  const dot = resource.indexOf('.');
  const plural = dot < 0 ? resource : resource.slice(0, dot);
  const group = dot < 0 ? '' : resource.slice(dot + 1);
  const version = groupVersions[group];
  if (!version) return undefined;
  return resourcePath({ group, version, plural });
}

type Sums = Map<string, number>;

/** A pod still holds its quota until it finishes or its grace period after deletion runs out. */
function holdsQuota(pod: Obj, now: number): boolean {
  if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return false;
  const deleted = pod.metadata?.deletionTimestamp;
  if (!deleted) return true;
  return Date.parse(deleted) + (pod.metadata.deletionGracePeriodSeconds ?? 0) * 1000 > now;
}

function isBestEffort(pod: Obj): boolean {
  return [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].every((c: Obj) => {
    const r = c.resources ?? {};
    return !['cpu', 'memory'].some((k) => r.requests?.[k] !== undefined || r.limits?.[k] !== undefined);
  });
}

function scopeMatches(scope: Obj, pod: Obj): boolean {
  const holds = (() => {
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
        const inValues = !!name && (scope.values ?? []).includes(name);
        return scope.operator === 'NotIn' ? !inValues : inValues;
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
  })();
  // Exists (the form of spec.scopes) and In mean "holds"; DoesNotExist and NotIn negate.
  return scope.scopeName === 'PriorityClass' ? holds : scope.operator === 'DoesNotExist' || scope.operator === 'NotIn' ? !holds : holds;
}

function scopesOf(quota: Obj): Obj[] {
  return [...(quota.spec?.scopes ?? []).map((scopeName: string) => ({ scopeName, operator: 'Exists' })), ...(quota.spec?.scopeSelector?.matchExpressions ?? [])];
}

/** requests or limits of a pod: the containers' sum, at least the largest init container's, plus overhead. */
function podResources(pod: Obj, kind: 'requests' | 'limits'): Sums {
  const sums: Sums = new Map();
  const value = (k: string, q: string | number) => (k === 'cpu' ? milliCpu(q) / 1000 : bytes(q));
  const of = (c: Obj): Obj => (kind === 'requests' ? { ...(c.resources?.limits ?? {}), ...(c.resources?.requests ?? {}) } : (c.resources?.limits ?? {}));
  for (const c of pod.spec?.containers ?? []) for (const [k, q] of Object.entries<string>(of(c))) sums.set(k, (sums.get(k) ?? 0) + value(k, q));
  for (const c of pod.spec?.initContainers ?? []) for (const [k, q] of Object.entries<string>(of(c))) sums.set(k, Math.max(sums.get(k) ?? 0, value(k, q)));
  for (const [k, q] of Object.entries<string>(pod.spec?.overhead ?? {})) if (sums.has(k) || kind === 'requests') sums.set(k, (sums.get(k) ?? 0) + value(k, q));
  return sums;
}

export class ResourceQuotaController {
  private readonly queue = new WorkQueue();
  private readonly quotas: Informer;
  private readonly pods: Informer;
  private readonly services: Informer;
  private readonly claims: Informer;
  private readonly configMaps: Informer;
  private readonly secrets: Informer;
  /** Informers for `count/…` resources, made when a quota first names them. */
  private readonly counted = new Map<string, Informer>();

  constructor(
    private readonly client: KubeClient,
    private readonly informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.quotas = informers.for('/api/v1/resourcequotas');
    this.pods = informers.for('/api/v1/pods');
    this.services = informers.for('/api/v1/services');
    this.claims = informers.for('/api/v1/persistentvolumeclaims');
    this.configMaps = informers.for('/api/v1/configmaps');
    this.secrets = informers.for('/api/v1/secrets');
    this.quotas.on({ add: (q) => this.queue.add(objectKey(q)), update: (_, q) => this.queue.add(objectKey(q)), delete: (q) => this.requeueNamespace(q) });
    for (const inf of [this.pods, this.services, this.claims, this.configMaps, this.secrets]) this.follow(inf);
  }

  private follow(inf: Informer): void {
    const changed = (o: Obj) => this.requeueNamespace(o);
    inf.on({ add: changed, update: (_, o) => changed(o), delete: changed });
  }

  private requeueNamespace(obj: Obj): void {
    for (const q of this.quotas.listNamespace(obj.metadata?.namespace ?? '')) this.queue.add(objectKey(q));
  }

  private async countOf(resource: string, ns: string): Promise<number | undefined> {
    const known: Record<string, Informer> = { pods: this.pods, services: this.services, persistentvolumeclaims: this.claims, configmaps: this.configMaps, secrets: this.secrets, resourcequotas: this.quotas };
    if (known[resource]) return known[resource].listNamespace(ns).filter((o) => resource !== 'pods' || holdsQuota(o, Date.now())).length;
    let inf = this.counted.get(resource);
    if (!inf) {
      const path = collectionPath(resource);
      if (!path) return undefined;
      inf = this.informers.for(path);
      this.counted.set(resource, inf);
      this.follow(inf);
    }
    await inf.synced;
    return inf.listNamespace(ns).length;
  }

  private async usage(quota: Obj): Promise<Record<string, string>> {
    const ns = quota.metadata.namespace;
    const hard: Record<string, string> = quota.spec?.hard ?? {};
    const scopes = scopesOf(quota);
    const now = Date.now();
    const pods = this.pods.listNamespace(ns).filter((p) => holdsQuota(p, now) && scopes.every((s) => scopeMatches(s, p)));
    const requests: Sums = new Map();
    const limits: Sums = new Map();
    for (const p of pods) {
      for (const [k, v] of podResources(p, 'requests')) requests.set(k, (requests.get(k) ?? 0) + v);
      for (const [k, v] of podResources(p, 'limits')) limits.set(k, (limits.get(k) ?? 0) + v);
    }
    const services = this.services.listNamespace(ns);
    const claims = this.claims.listNamespace(ns);
    const storage = (list: Obj[]) => list.reduce((s, c) => s + bytes(c.spec?.resources?.requests?.storage ?? 0), 0);
    const used: Record<string, string> = {};
    for (const key of Object.keys(hard)) {
      const binarySI = isBinarySI(hard[key]);
      let value: number | undefined;
      if (key === 'pods' || key === 'count/pods') value = pods.length;
      else if (['cpu', 'memory', 'ephemeral-storage'].includes(key)) value = requests.get(key) ?? 0;
      else if (key.startsWith('requests.') && !key.endsWith('storage')) value = requests.get(key.slice('requests.'.length)) ?? 0;
      else if (key === 'requests.ephemeral-storage') value = requests.get('ephemeral-storage') ?? 0;
      else if (key.startsWith('limits.')) value = limits.get(key.slice('limits.'.length)) ?? 0;
      else if (scopes.length) continue; // a scoped quota tracks pods only, as upstream
      else if (key === 'services' || key === 'count/services') value = services.length;
      else if (key === 'services.loadbalancers') value = services.filter((s) => s.spec?.type === 'LoadBalancer').length;
      else if (key === 'services.nodeports') value = services.filter((s) => s.spec?.type === 'NodePort' || s.spec?.type === 'LoadBalancer').reduce((n, s) => n + (s.spec?.ports?.length ?? 0), 0);
      else if (key === 'persistentvolumeclaims') value = claims.length;
      else if (key === 'requests.storage') value = storage(claims);
      else if (key.includes(storageClassSuffix)) {
        const [cls, what] = key.split(storageClassSuffix);
        const ofClass = claims.filter((c) => c.spec?.storageClassName === cls);
        value = what === 'persistentvolumeclaims' ? ofClass.length : what === 'requests.storage' ? storage(ofClass) : undefined;
      } else if (['configmaps', 'secrets', 'resourcequotas', 'replicationcontrollers'].includes(key)) value = await this.countOf(key, ns);
      else if (key.startsWith('count/')) value = await this.countOf(key.slice('count/'.length), ns);
      if (value !== undefined) used[key] = formatQuantity(value, binarySI);
    }
    return used;
  }

  private async sync(key: string): Promise<void> {
    const quota = this.quotas.get(key);
    if (!quota || quota.metadata.deletionTimestamp) return;
    const used = await this.usage(quota);
    const hard = quota.spec?.hard ?? {};
    if (sameQuantities(quota.status?.hard, hard) && sameQuantities(quota.status?.used, used)) return;
    const { namespace, name } = quota.metadata;
    try {
      await this.client.update(resourcePath({ version: 'v1', plural: 'resourcequotas', namespace, name, subresource: 'status' }), { ...quota, status: { hard, used } });
    } catch (err) {
      if (!isCode(err, 'NotFound')) throw err;
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    await this.informers.synced();
    await this.queue.run(2, (key) => this.sync(key), signal, (key, err) => this.log.warn('resource quota sync failed', { quota: key, err }));
  }
}

/** Equal as quantities ("1" and "1000m" are the same), over the same keys. */
function sameQuantities(a: Record<string, string> | undefined, b: Record<string, string>): boolean {
  if (!a || Object.keys(a).length !== Object.keys(b).length) return false;
  return Object.entries(b).every(([k, v]) => a[k] !== undefined && safeParse(a[k]) === safeParse(v));
}

function safeParse(q: string): number | string {
  try {
    return parseQuantity(q);
  } catch {
    return q;
  }
}
