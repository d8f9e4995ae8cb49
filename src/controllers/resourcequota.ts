import { formatQuantity, isBinarySI, parseQuantity } from '../api/quantity.js';
import { inScopes, resourceOfKey, scopesOf, usageOf } from '../api/quota.js';
import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/** API versions of the groups `count/<plural>.<group>` may name. */
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

/**
 * ResourceQuota controller: keeps each quota's status.hard (a copy of spec.hard) and status.used,
 * recounted whenever an object it counts changes in its namespace. It counts what upstream's
 * quota evaluators count (api/quota.ts), only pods for a quota with scopes. Denying a create that would exceed a quota is admission's work, not this.
 */
export class ResourceQuotaController {
  private readonly queue = new WorkQueue();
  private readonly quotas: Informer;
  /** Informers by quota resource ("pods", "deployments.apps"); made when a quota first names one. */
  private readonly counted = new Map<string, Informer>();

  constructor(
    private readonly client: KubeClient,
    private readonly informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.quotas = informers.for('/api/v1/resourcequotas');
    this.counted.set('resourcequotas', this.quotas);
    this.quotas.on({ add: (q) => this.queue.add(objectKey(q)), update: (_, q) => this.queue.add(objectKey(q)), delete: (q) => this.requeueNamespace(q) });
    // The kinds most quotas name are followed from the start.
    for (const r of ['pods', 'services', 'persistentvolumeclaims', 'configmaps', 'secrets']) this.informerFor(r);
  }

  private informerFor(resource: string): Informer | undefined {
    let inf = this.counted.get(resource);
    if (inf) return inf;
    const path = collectionPath(resource);
    if (!path) return undefined;
    inf = this.informers.for(path);
    this.counted.set(resource, inf);
    const changed = (o: Obj) => this.requeueNamespace(o);
    inf.on({ add: changed, update: (_, o) => changed(o), delete: changed });
    return inf;
  }

  private requeueNamespace(obj: Obj): void {
    for (const q of this.quotas.listNamespace(obj.metadata?.namespace ?? '')) this.queue.add(objectKey(q));
  }

  /** Sums, per hard key, what the namespace's objects count against it. Keys of unknown kinds are left out. */
  private async usage(quota: Obj): Promise<Record<string, string>> {
    const ns = quota.metadata.namespace;
    const hard: Record<string, string> = quota.spec?.hard ?? {};
    const scopes = scopesOf(quota);
    const sums = new Map<string, number>();
    const resources = new Set<string>();
    for (const key of Object.keys(hard)) {
      const r = resourceOfKey(key);
      // A scoped quota tracks pods only, as upstream.
      if (r && (!scopes.length || r === 'pods')) resources.add(r);
    }
    for (const r of resources) {
      const inf = this.informerFor(r);
      if (!inf) continue;
      await inf.synced;
      for (const o of inf.listNamespace(ns)) {
        if (r === 'pods' && !inScopes(scopes, o)) continue;
        for (const [k, v] of usageOf(r, o)) sums.set(k, (sums.get(k) ?? 0) + v);
      }
    }
    const used: Record<string, string> = {};
    for (const key of Object.keys(hard)) {
      const r = resourceOfKey(key);
      if (r && resources.has(r) && this.counted.has(r)) used[key] = formatQuantity(sums.get(key) ?? 0, isBinarySI(hard[key]));
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
