import type { KubeObject } from '../../api/object.js';
import type { Registry } from '../../api/registry.js';
import type { ResourceType } from '../../api/resource-type.js';
import { isCode, KubicleError } from '../../observe/errors.js';
import { prefixFor } from '../object-codec.js';
import type { Admission, ObjectStore } from '../object-store.js';
import type { WatchCache } from '../watch-cache.js';

function terminating(ns: KubeObject): boolean {
  return !!ns.metadata.deletionTimestamp || ns.status?.phase === 'Terminating';
}

/**
 * NamespaceLifecycle: no new objects in a namespace that does not exist or is terminating,
 * and the system namespaces can never be deleted.
 */
export const immortalNamespaces = ['default', 'kube-system', 'kube-public'];

export class NamespaceLifecycle implements Admission {
  private store?: ObjectStore;
  private readonly namespaces: ResourceType;
  /**
   * Namespaces as the watch cache last saw them (name -> terminating), so creates need no store
   * read. A name missing here is read from the store (the cache may lag a just-created namespace).
   */
  private readonly seen = new Map<string, boolean>();

  constructor(registry: Registry) {
    this.namespaces = registry.mustLookup('', 'v1', 'namespaces');
  }

  /** Starts following namespaces through the watch cache; after a cache error it starts over. */
  async bind(store: ObjectStore, cache: WatchCache): Promise<void> {
    this.store = store;
    const follow = async (): Promise<void> => {
      this.seen.clear();
      await cache.subscribe(
        prefixFor(this.namespaces),
        cache.revision,
        (ev) => {
          const name = ev.object.metadata.name ?? '';
          if (ev.type === 'delete') this.seen.delete(name);
          else this.seen.set(name, terminating(ev.object));
        },
        () => {
          this.seen.clear();
          setImmediate(() => void follow().catch(() => this.seen.clear()));
        },
      );
    };
    await follow();
  }

  async admitCreate(rt: ResourceType, obj: KubeObject): Promise<void> {
    if (!rt.namespaced || !this.store) return;
    const ns = obj.metadata.namespace!;
    let isTerminating = this.seen.get(ns);
    if (isTerminating === undefined) {
      try {
        isTerminating = terminating(await this.store.get(this.namespaces, undefined, ns));
        this.seen.set(ns, isTerminating);
      } catch (err) {
        if (isCode(err, 'NotFound')) throw new KubicleError('NotFound', `namespaces "${ns}" not found`);
        throw err;
      }
    }
    if (isTerminating) {
      throw new KubicleError('Forbidden', `${rt.plural} "${obj.metadata.name}" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`);
    }
  }

  async admitDelete(rt: ResourceType, obj: KubeObject): Promise<void> {
    if (rt === this.namespaces && immortalNamespaces.includes(obj.metadata.name ?? '')) {
      throw new KubicleError('Forbidden', `namespaces "${obj.metadata.name}" is forbidden: this namespace may not be deleted`);
    }
  }
}
