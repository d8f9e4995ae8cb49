import type { KubeObject } from '../../api/object.js';
import type { Registry } from '../../api/registry.js';
import type { ResourceType } from '../../api/resource-type.js';
import type { Admission, ObjectStore } from '../object-store.js';

/**
 * DefaultStorageClass: a PersistentVolumeClaim that names no class gets the class annotated
 * storageclass.kubernetes.io/is-default-class=true (the newest, if several are). A claim with
 * storageClassName "" asks for no class and is left alone.
 */
export class DefaultStorageClass implements Admission {
  private readonly classes: ResourceType;

  constructor(
    registry: Registry,
    private readonly store: () => ObjectStore,
  ) {
    this.classes = registry.mustLookup('storage.k8s.io', 'v1', 'storageclasses');
  }

  async admitCreate(rt: ResourceType, obj: KubeObject): Promise<void> {
    if (rt.plural !== 'persistentvolumeclaims' || rt.group !== '') return;
    if (obj.spec?.storageClassName !== undefined && obj.spec?.storageClassName !== null) return;
    const defaults = (await this.store().list(this.classes, undefined, { labels: [], fields: [] })).items
      .filter((c) => c.metadata.annotations?.['storageclass.kubernetes.io/is-default-class'] === 'true')
      .sort((a, b) => String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp)));
    if (defaults.length) obj.spec.storageClassName = defaults[0].metadata.name;
  }

  async admitDelete(): Promise<void> {}
}
