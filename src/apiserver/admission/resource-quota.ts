import type { KubeObject } from '../../api/object.js';
import { formatQuantity, isBinarySI, parseQuantity } from '../../api/quantity.js';
import { inScopes, resourceOfKey, scopesOf, usageOf } from '../../api/quota.js';
import type { Registry } from '../../api/registry.js';
import type { ResourceType } from '../../api/resource-type.js';
import { isCode, KubicleError } from '../../observe/errors.js';
import type { Admission, ObjectStore, WriteOptions } from '../object-store.js';
import type { WatchCache } from '../watch-cache.js';
import { CachedObjects } from './cached-objects.js';

/**
 * ResourceQuota admission, as upstream's: a create that would take any quota of its namespace
 * past a hard limit is refused ("exceeded quota: …" with what was requested, used and allowed);
 * a pod under a quota on compute resources must state them; a quota whose status the controller
 * has not yet filled in refuses what it tracks ("status unknown"). An admitted create is charged
 * to each quota's status.used at once, under optimistic concurrency, so concurrent creates cannot
 * both slip under a limit; the quota controller later recounts from the objects themselves (and so
 * gives back a charge whose create failed after admission). Updates are not re-evaluated.
 */
const computeKeys = ['cpu', 'memory', 'requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory'];

export class ResourceQuotaAdmission implements Admission {
  private readonly quotas: ResourceType;
  private readonly cached: CachedObjects;

  constructor(
    registry: Registry,
    private readonly store: () => ObjectStore,
  ) {
    this.quotas = registry.mustLookup('', 'v1', 'resourcequotas');
    this.cached = new CachedObjects(this.quotas, store);
  }

  bind(cache: WatchCache): Promise<void> {
    return this.cached.bind(cache);
  }

  async admitCreate(rt: ResourceType, obj: KubeObject, opts: WriteOptions): Promise<void> {
    if (!rt.namespaced) return;
    const ns = obj.metadata.namespace!;
    const quotas = await this.cached.inNamespace(ns);
    if (!quotas.length) return;
    const resource = rt.group ? `${rt.plural}.${rt.group}` : rt.plural;
    const usage = usageOf(resource, obj);
    const forbidden = (why: string) => new KubicleError('Forbidden', `${rt.plural} "${obj.metadata.name}" is forbidden: ${why}`);
    const charged: KubeObject[] = [];
    for (const q of quotas) {
      const scopes = scopesOf(q);
      if (scopes.length && (resource !== 'pods' || !inScopes(scopes, obj))) continue;
      const hard: Record<string, string> = q.spec?.hard ?? {};
      const tracked = Object.keys(hard).filter((k) => resourceOfKey(k) === resource || k === `count/${resource}`);
      if (!tracked.length) continue;
      if (resource === 'pods') {
        const missing = tracked.filter((k) => computeKeys.includes(k) && !usage.has(k));
        if (missing.length) throw forbidden(`failed quota: ${q.metadata.name}: must specify ${missing.sort().join(',')}`);
      }
      const requested = tracked.filter((k) => (usage.get(k) ?? 0) > 0);
      if (!requested.length) continue;
      if (!q.status?.hard) throw forbidden(`status unknown for quota: ${q.metadata.name}, resources: ${requested.sort().join(',')}`);
      charged.push(q);
    }
    // Check against the freshest status and charge in one write per quota, so the check holds.
    for (const q of charged) {
      const check = (current: KubeObject): KubeObject => {
        const hard: Record<string, string> = current.spec?.hard ?? {};
        const used: Record<string, string> = { ...(current.status?.used ?? {}) };
        const keys = Object.keys(hard).filter((k) => (usage.get(k) ?? 0) > 0);
        const exceeded = keys.filter((k) => parseQuantity(used[k] ?? '0') + usage.get(k)! > parseQuantity(hard[k]) + 1e-9);
        if (exceeded.length) {
          const show = (src: (k: string) => string) => exceeded.sort().map((k) => `${k}=${src(k)}`).join(',');
          throw forbidden(
            `exceeded quota: ${current.metadata.name}, requested: ${show((k) => formatQuantity(usage.get(k)!, isBinarySI(hard[k])))}, used: ${show((k) => used[k] ?? '0')}, limited: ${show((k) => hard[k])}`,
          );
        }
        for (const k of keys) used[k] = formatQuantity(parseQuantity(used[k] ?? '0') + usage.get(k)!, isBinarySI(hard[k]));
        return { ...current, status: { ...current.status, used } };
      };
      if (opts.dryRun) {
        check(q);
        continue;
      }
      try {
        await this.store().update(this.quotas, ns, q.metadata.name!, check, { subresource: 'status' });
      } catch (err) {
        if (!isCode(err, 'NotFound')) throw err;
      }
    }
  }

  async admitDelete(): Promise<void> {}
}
