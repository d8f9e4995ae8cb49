import type { KubeObject } from '../../api/object.js';
import type { Registry } from '../../api/registry.js';
import type { ResourceType } from '../../api/resource-type.js';
import { KubicleError } from '../../observe/errors.js';
import type { Admission, ObjectStore } from '../object-store.js';
import type { WatchCache } from '../watch-cache.js';
import { CachedObjects } from './cached-objects.js';

/**
 * Priority, as upstream's admission plugin of that name: a pod's priorityClassName is resolved to
 * spec.priority and spec.preemptionPolicy at creation (a pod naming no class gets the global
 * default class, else priority 0); a pod may not state a priority of its own that differs. At most
 * one PriorityClass is the global default, and the system classes cannot be deleted.
 */
export const systemPriorityClasses = [
  { name: 'system-node-critical', value: 2_000_001_000, description: 'Used for system critical pods that must not be moved from their current node.' },
  { name: 'system-cluster-critical', value: 2_000_000_000, description: 'Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.' },
];

export class Priority implements Admission {
  private readonly classes: ResourceType;
  private readonly cached: CachedObjects;

  constructor(registry: Registry, store: () => ObjectStore) {
    this.classes = registry.mustLookup('scheduling.k8s.io', 'v1', 'priorityclasses');
    this.cached = new CachedObjects(this.classes, store);
  }

  /** Follows PriorityClasses through the watch cache, so pod creates read no store. */
  bind(cache: WatchCache): Promise<void> {
    return this.cached.bind(cache);
  }

  private list(): Promise<KubeObject[]> {
    return this.cached.list();
  }

  async admitCreate(rt: ResourceType, obj: KubeObject): Promise<void> {
    if (rt === this.classes) {
      if (!obj.globalDefault) return;
      const other = (await this.list()).find((c) => c.globalDefault);
      if (other) throw new KubicleError('Forbidden', `priorityclasses.scheduling.k8s.io "${obj.metadata.name}" is forbidden: PriorityClass ${other.metadata.name} is already marked as default. Only one default can exist`);
      return;
    }
    if (rt.plural !== 'pods' || rt.group !== '') return;
    const spec = obj.spec;
    const wanted: string | undefined = spec.priorityClassName || undefined;
    const classes = await this.list();
    const pc = wanted ? classes.find((c) => c.metadata.name === wanted) : classes.find((c) => c.globalDefault);
    if (wanted && !pc) throw new KubicleError('Forbidden', `pods "${obj.metadata.name}" is forbidden: no PriorityClass with name ${wanted} was found`);
    const value: number = pc?.value ?? 0;
    if (spec.priority !== undefined && spec.priority !== null && spec.priority !== value) {
      throw new KubicleError(
        'Forbidden',
        `pods "${obj.metadata.name}" is forbidden: the integer value of priority (${spec.priority}) must not be provided in pod spec; priority admission controller computed ${value} from the given PriorityClass name`,
      );
    }
    spec.priority = value;
    if (pc) spec.priorityClassName = pc.metadata.name;
    spec.preemptionPolicy ??= pc?.preemptionPolicy ?? 'PreemptLowerPriority';
  }

  async admitDelete(rt: ResourceType, obj: KubeObject): Promise<void> {
    if (rt === this.classes && systemPriorityClasses.some((c) => c.name === obj.metadata.name)) {
      throw new KubicleError('Forbidden', `priorityclasses.scheduling.k8s.io "${obj.metadata.name}" is forbidden: deleting system priority class ${obj.metadata.name} is not allowed`);
    }
  }
}
