import type { KubeObject } from '../../api/object.js';
import type { Registry } from '../../api/registry.js';
import type { ResourceType } from '../../api/resource-type.js';
import { isCode, KubicleError } from '../../observe/errors.js';
import type { Admission, ObjectStore } from '../object-store.js';

/**
 * NamespaceLifecycle: no new objects in a namespace that does not exist or is terminating,
 * and the system namespaces can never be deleted.
 */
export const immortalNamespaces = ['default', 'kube-system', 'kube-public'];

export class NamespaceLifecycle implements Admission {
  private store?: ObjectStore;
  private readonly namespaces: ResourceType;

  constructor(registry: Registry) {
    this.namespaces = registry.mustLookup('', 'v1', 'namespaces');
  }

  bind(store: ObjectStore): void {
    this.store = store;
  }

  async admitCreate(rt: ResourceType, obj: KubeObject): Promise<void> {
    if (!rt.namespaced || !this.store) return;
    const ns = obj.metadata.namespace!;
    let nsObj: KubeObject;
    try {
      nsObj = await this.store.get(this.namespaces, undefined, ns);
    } catch (err) {
      if (isCode(err, 'NotFound')) throw new KubicleError('NotFound', `namespaces "${ns}" not found`);
      throw err;
    }
    if (nsObj.metadata.deletionTimestamp || nsObj.status?.phase === 'Terminating') {
      throw new KubicleError('Forbidden', `${rt.plural} "${obj.metadata.name}" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`);
    }
  }

  async admitDelete(rt: ResourceType, obj: KubeObject): Promise<void> {
    if (rt === this.namespaces && immortalNamespaces.includes(obj.metadata.name ?? '')) {
      throw new KubicleError('Forbidden', `namespaces "${obj.metadata.name}" is forbidden: this namespace may not be deleted`);
    }
  }
}
