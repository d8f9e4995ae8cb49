import { getPath, type KubeObject, setPath } from '../api/object.js';
import type { ResourceType } from '../api/resource-type.js';
import { labelSelectorToString } from '../api/selectors.js';
import { KubicleError } from '../observe/errors.js';

/** The autoscaling/v1 Scale view of a scalable object, and writing one back. */
export function toScale(rt: ResourceType, obj: KubeObject): KubeObject {
  const s = rt.scale!;
  const m = obj.metadata;
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, creationTimestamp: m.creationTimestamp },
    spec: { replicas: (getPath(obj, s.specReplicas) as number) ?? 0 },
    status: {
      replicas: (getPath(obj, s.statusReplicas) as number) ?? 0,
      selector: s.selectorIsString ? String(getPath(obj, s.selector) ?? '') : labelSelectorToString(getPath(obj, s.selector) as Parameters<typeof labelSelectorToString>[0]),
    },
  };
}

export function applyScale(rt: ResourceType, obj: KubeObject, scale: KubeObject): KubeObject {
  const replicas = scale?.spec?.replicas;
  if (!Number.isInteger(replicas) || replicas < 0) {
    throw new KubicleError('Invalid', `Scale.autoscaling "${obj.metadata.name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`, {
      causes: [{ reason: 'FieldValueInvalid', field: 'spec.replicas', message: 'Invalid value: must be greater than or equal to 0' }],
    });
  }
  if (scale.metadata?.resourceVersion) obj.metadata.resourceVersion = scale.metadata.resourceVersion;
  setPath(obj, rt.scale!.specReplicas, replicas);
  return obj;
}
