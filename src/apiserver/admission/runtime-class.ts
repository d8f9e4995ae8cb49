import type { KubeObject } from '../../api/object.js';
import type { Registry } from '../../api/registry.js';
import type { ResourceType } from '../../api/resource-type.js';
import { isCode, KubicleError } from '../../observe/errors.js';
import type { Admission, ObjectStore } from '../object-store.js';

/**
 * The namespace label by which cluster policy decides the sandbox of every pod in a namespace,
 * in the manner of PodSecurity's `pod-security.kubernetes.io/enforce`: with
 * `runtime.kubicle.io/enforce: microvm` each pod there runs in its own VM.
 */
export const enforceRuntimeLabel = 'runtime.kubicle.io/enforce';

/**
 * RuntimeClass, as upstream's admission plugin: a pod naming a RuntimeClass must name one that
 * exists; it gets the class's pod overhead, and the class's scheduling constraints (nodeSelector
 * merged in, tolerations added), so the scheduler places it only where that runtime is. Before
 * that, a namespace's enforced class (enforceRuntimeLabel) is given to pods that name none, and
 * pods that name another are refused.
 */
export class RuntimeClassAdmission implements Admission {
  private readonly classes: ResourceType;
  private readonly namespaces: ResourceType;

  constructor(
    registry: Registry,
    private readonly store: () => ObjectStore,
  ) {
    this.classes = registry.mustLookup('node.k8s.io', 'v1', 'runtimeclasses');
    this.namespaces = registry.mustLookup('', 'v1', 'namespaces');
  }

  async admitCreate(rt: ResourceType, obj: KubeObject): Promise<void> {
    if (rt.plural !== 'pods' || rt.group !== '') return;
    const refuse = (why: string) => new KubicleError('Forbidden', `pods "${obj.metadata.name}" is forbidden: pod rejected: ${why}`);
    // Read from the store, not a cache: a label set a moment ago must already hold. A missing
    // namespace is NamespaceLifecycle's to refuse; any other failure refuses the pod (fail closed).
    const ns = await this.store()
      .get(this.namespaces, undefined, obj.metadata.namespace ?? '')
      .catch((err) => {
        if (isCode(err, 'NotFound')) return undefined;
        throw err;
      });
    const enforced = ns?.metadata.labels?.[enforceRuntimeLabel];
    if (enforced) {
      obj.spec ??= {};
      const asked = obj.spec.runtimeClassName;
      if (asked && asked !== enforced) throw refuse(`namespace "${obj.metadata.namespace}" requires RuntimeClass "${enforced}" (label ${enforceRuntimeLabel}), not "${asked}"`);
      obj.spec.runtimeClassName = enforced;
    }
    if (!obj.spec?.runtimeClassName) return;
    const spec = obj.spec;
    let rc: KubeObject;
    try {
      rc = await this.store().get(this.classes, undefined, spec.runtimeClassName);
    } catch (err) {
      if (isCode(err, 'NotFound')) throw refuse(`RuntimeClass "${spec.runtimeClassName}" not found`);
      throw err;
    }
    const fixed = rc.overhead?.podFixed;
    if (fixed) {
      if (spec.overhead && JSON.stringify(spec.overhead) !== JSON.stringify(fixed)) throw refuse("Pod's Overhead doesn't match RuntimeClass's defined Overhead");
      spec.overhead = { ...fixed };
    } else if (spec.overhead) {
      throw refuse('Pod Overhead set without corresponding RuntimeClass defined Overhead');
    }
    const scheduling = rc.scheduling ?? {};
    for (const [k, v] of Object.entries<string>(scheduling.nodeSelector ?? {})) {
      const have = spec.nodeSelector?.[k];
      if (have !== undefined && have !== v) throw refuse(`conflict: nodeSelector ${k}=${have} of the pod conflicts with ${k}=${v} of RuntimeClass ${rc.metadata.name}`);
      spec.nodeSelector = { ...(spec.nodeSelector ?? {}), [k]: v };
    }
    const tolerations: KubeObject[] = spec.tolerations ?? [];
    for (const t of scheduling.tolerations ?? []) {
      if (!tolerations.some((have) => JSON.stringify(have) === JSON.stringify(t))) tolerations.push(t);
    }
    if (tolerations.length) spec.tolerations = tolerations;
  }

  async admitDelete(): Promise<void> {}
}
