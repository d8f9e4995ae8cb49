import type { KubeObject } from '../../api/object.js';
import { formatQuantity, parseQuantity } from '../../api/quantity.js';
import type { Registry } from '../../api/registry.js';
import type { ResourceType } from '../../api/resource-type.js';
import { KubicleError } from '../../observe/errors.js';
import type { Admission, ObjectStore } from '../object-store.js';
import type { WatchCache } from '../watch-cache.js';
import { CachedObjects } from './cached-objects.js';

// biome-ignore lint/suspicious/noExplicitAny: LimitRange and pod specs are untyped JSON
type J = Record<string, any>;
type Resources = Record<string, string | number>;

/**
 * LimitRanger: the LimitRanges of a pod's or claim's namespace, applied when it is created.
 * Containers without a request or limit get the Container item's defaultRequest and default
 * (noted in the kubernetes.io/limit-ranger annotation); then min, max and maxLimitRequestRatio
 * are enforced per Container, per Pod (sums) and per PersistentVolumeClaim (storage), with
 * upstream's 403 messages.
 */
export class LimitRanger implements Admission {
  private readonly cached: CachedObjects;

  constructor(registry: Registry, store: () => ObjectStore) {
    this.cached = new CachedObjects(registry.mustLookup('', 'v1', 'limitranges'), store);
  }

  bind(cache: WatchCache): Promise<void> {
    return this.cached.bind(cache);
  }

  async admitCreate(rt: ResourceType, obj: KubeObject): Promise<void> {
    if (rt.group !== '' || (rt.plural !== 'pods' && rt.plural !== 'persistentvolumeclaims')) return;
    const ranges = await this.cached.inNamespace(obj.metadata.namespace as string);
    if (!ranges.length) return;
    const items: J[] = ranges.flatMap((r) => (Array.isArray(r.spec?.limits) ? r.spec.limits : []));
    const problems: string[] = [];
    if (rt.plural === 'pods') {
      const notes: string[] = [];
      const containers: [J, string][] = [
        ...((obj.spec?.initContainers ?? []) as J[]).map((c): [J, string] => [c, 'init container']),
        ...((obj.spec?.containers ?? []) as J[]).map((c): [J, string] => [c, 'container']),
      ];
      for (const item of items.filter((i) => i.type === 'Container')) {
        for (const [c, word] of containers) for (const what of applyDefaults(c, item)) notes.push(`${what} for ${word} ${c.name}`);
      }
      if (notes.length) obj.metadata.annotations = { ...(obj.metadata.annotations ?? {}), 'kubernetes.io/limit-ranger': `LimitRanger plugin set: ${notes.join('; ')}` };
      for (const item of items) {
        // A limit without a request counts as the request too, as API defaulting makes it upstream.
        if (item.type === 'Container') for (const [c] of containers) check('Container', item, { ...(c.resources?.limits ?? {}), ...(c.resources?.requests ?? {}) }, c.resources?.limits ?? {}, problems);
        else if (item.type === 'Pod') check('Pod', item, sum(obj, 'requests'), sum(obj, 'limits'), problems);
      }
    } else {
      for (const item of items.filter((i) => i.type === 'PersistentVolumeClaim')) {
        check('PersistentVolumeClaim', item, obj.spec?.resources?.requests ?? {}, obj.spec?.resources?.limits ?? {}, problems);
      }
    }
    if (problems.length) {
      throw new KubicleError('Forbidden', `${rt.plural} "${obj.metadata.name ?? ''}" is forbidden: ${problems.length === 1 ? problems[0] : `[${problems.join(', ')}]`}`);
    }
  }

  async admitDelete(): Promise<void> {}
}

/** Fills a container's missing requests and limits from a Container item; returns what it set, as upstream's annotation words it. */
function applyDefaults(c: J, item: J): string[] {
  const set: string[] = [];
  const res = (c.resources ??= {});
  const fill = (kind: 'requests' | 'limits', from: Resources | undefined, word: string) => {
    const names: string[] = [];
    for (const [r, q] of Object.entries(from ?? {})) {
      if (res[kind]?.[r] !== undefined) continue;
      res[kind] = { ...(res[kind] ?? {}), [r]: q };
      names.push(r);
    }
    if (names.length) set.push(`${names.sort().join(', ')} ${word}`);
  };
  // A resource with a limit but no request keeps that: its request is the limit.
  fill('requests', Object.fromEntries(Object.entries<string | number>(item.defaultRequest ?? {}).filter(([r]) => res.limits?.[r] === undefined)), 'request');
  fill('limits', item.default, 'limit');
  if (!Object.keys(res).length) delete c.resources;
  return set;
}

/** A pod's requests or limits summed over its containers (init containers count at their largest). */
function sum(pod: KubeObject, kind: 'requests' | 'limits'): Resources {
  const out: Record<string, number> = {};
  const of = (c: J) => (kind === 'requests' ? { ...(c.resources?.limits ?? {}), ...(c.resources?.requests ?? {}) } : (c.resources?.limits ?? {}));
  for (const c of (pod.spec?.containers ?? []) as J[]) for (const [r, q] of Object.entries<string>(of(c))) out[r] = (out[r] ?? 0) + parseQuantity(q);
  for (const c of (pod.spec?.initContainers ?? []) as J[]) for (const [r, q] of Object.entries<string>(of(c))) out[r] = Math.max(out[r] ?? 0, parseQuantity(q));
  return out;
}

/** A quantity as given, or a computed sum in upstream's canonical form. */
function show(q: string | number): string {
  return typeof q === 'number' ? formatQuantity(q) : q;
}

/** One resource gets at most one message per constraint, the first upstream's checks would give. */
function check(type: string, item: J, requests: Resources, limits: Resources, problems: string[]): void {
  for (const [r, min] of Object.entries<string>(item.min ?? {})) {
    const req = requests[r];
    const lim = limits[r];
    if (req === undefined) problems.push(`minimum ${r} usage per ${type} is ${min}.  No request is specified`);
    else if (parseQuantity(req) < parseQuantity(min)) problems.push(`minimum ${r} usage per ${type} is ${min}, but request is ${show(req)}`);
    else if (lim !== undefined && parseQuantity(lim) < parseQuantity(min)) problems.push(`minimum ${r} usage per ${type} is ${min}, but limit is ${show(lim)}`);
  }
  for (const [r, max] of Object.entries<string>(item.max ?? {})) {
    const req = requests[r];
    const lim = limits[r];
    if (lim === undefined) problems.push(`maximum ${r} usage per ${type} is ${max}.  No limit is specified`);
    else if (parseQuantity(lim) > parseQuantity(max)) problems.push(`maximum ${r} usage per ${type} is ${max}, but limit is ${show(lim)}`);
    else if (req !== undefined && parseQuantity(req) > parseQuantity(max)) problems.push(`maximum ${r} usage per ${type} is ${max}, but request is ${show(req)}`);
  }
  for (const [r, ratio] of Object.entries<string>(item.maxLimitRequestRatio ?? {})) {
    const req = requests[r];
    const lim = limits[r];
    if (lim === undefined) problems.push(`${r} max limit to request ratio per ${type} is ${ratio}, but no limit is specified`);
    else if (req === undefined || parseQuantity(req) === 0) problems.push(`${r} max limit to request ratio per ${type} is ${ratio}, but no request is specified or request is 0`);
    else {
      const actual = parseQuantity(lim) / parseQuantity(req);
      if (actual > parseQuantity(ratio)) problems.push(`${r} max limit to request ratio per ${type} is ${ratio}, but provided ratio is ${actual.toFixed(6)}`);
    }
  }
}
