import type { KubeObject } from '../../api/object.js';
import type { ResourceType } from '../../api/resource-type.js';
import { prefixFor } from '../object-codec.js';
import type { ObjectStore } from '../object-store.js';
import type { WatchCache } from '../watch-cache.js';

/**
 * The objects of one cluster-scoped resource as the watch cache last delivered them, for
 * admission plugins that consult a small collection on every request (PriorityClasses on every
 * pod create). Until `bind` has run, and after a cache error until it follows again, reads go to
 * the store, so the answer is never staler than the watch cache.
 */
export class CachedObjects {
  private items?: Map<string, KubeObject>;

  constructor(
    private readonly rt: ResourceType,
    private readonly store: () => ObjectStore,
  ) {}

  /** Lists once, then follows changes from that revision. Resolves when following. */
  async bind(cache: WatchCache): Promise<void> {
    const follow = async (): Promise<void> => {
      const listed = await this.store().list(this.rt, undefined, { labels: [], fields: [] });
      const items = new Map(listed.items.map((o) => [o.metadata.name ?? '', o]));
      await cache.subscribe(
        prefixFor(this.rt),
        Number(listed.resourceVersion),
        (ev) => {
          if (ev.type === 'delete') items.delete(ev.object.metadata.name ?? '');
          else items.set(ev.object.metadata.name ?? '', ev.object);
        },
        () => {
          this.items = undefined;
          setImmediate(() => void follow().catch(() => undefined));
        },
      );
      this.items = items;
    };
    await follow();
  }

  /** Every object. Callers must not change them. */
  async list(): Promise<KubeObject[]> {
    if (this.items) return [...this.items.values()];
    return (await this.store().list(this.rt, undefined, { labels: [], fields: [] })).items;
  }
}
