import type { KubeObject } from '../../api/object.js';
import type { ResourceType } from '../../api/resource-type.js';
import { prefixFor } from '../object-codec.js';
import type { ObjectStore } from '../object-store.js';
import type { WatchCache } from '../watch-cache.js';

/**
 * The objects of one resource as the watch cache last delivered them, for admission plugins
 * that consult a small collection on every request (PriorityClasses on every pod create, a
 * namespace's ResourceQuotas on every create in it). Until `bind` has run, and after a cache error until it follows again, reads go to
 * the store, so the answer is never staler than the watch cache.
 */
export class CachedObjects {
  private items?: Map<string, KubeObject>;

  constructor(
    private readonly rt: ResourceType,
    private readonly store: () => ObjectStore,
  ) {}

  /**
   * Lists once, then follows changes from that revision. Resolves when following. `onChange` is
   * told after the list and after each change (never while a relist is under way).
   */
  async bind(cache: WatchCache, onChange?: () => void): Promise<void> {
    const follow = async (): Promise<void> => {
      const listed = await this.store().list(this.rt, undefined, { labels: [], fields: [] });
      const items = new Map(listed.items.map((o) => [keyOf(o), o]));
      await cache.subscribe(
        prefixFor(this.rt),
        Number(listed.resourceVersion),
        (ev) => {
          if (ev.type === 'delete') items.delete(keyOf(ev.object));
          else items.set(keyOf(ev.object), ev.object);
          onChange?.();
        },
        () => {
          this.items = undefined;
          setImmediate(() => void follow().catch(() => undefined));
        },
      );
      this.items = items;
      onChange?.();
    };
    await follow();
  }

  /** The objects of one namespace. Callers must not change them. */
  async inNamespace(ns: string): Promise<KubeObject[]> {
    if (this.items) return [...this.items.values()].filter((o) => o.metadata.namespace === ns);
    return (await this.store().list(this.rt, ns, { labels: [], fields: [] })).items;
  }

  /** Every object as last followed, or undefined before the first list. Callers must not change them. */
  snapshot(): KubeObject[] | undefined {
    return this.items ? [...this.items.values()] : undefined;
  }

  /** One cluster-scoped object by name, or undefined. Callers must not change it. */
  async get(name: string): Promise<KubeObject | undefined> {
    if (this.items) return this.items.get(`/${name}`);
    return (await this.store().list(this.rt, undefined, { labels: [], fields: [] })).items.find((o) => o.metadata.name === name);
  }

  /** Every object. Callers must not change them. */
  async list(): Promise<KubeObject[]> {
    if (this.items) return [...this.items.values()];
    return (await this.store().list(this.rt, undefined, { labels: [], fields: [] })).items;
  }
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;
