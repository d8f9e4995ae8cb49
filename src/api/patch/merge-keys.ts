/**
 * Strategic-merge-patch metadata of the built-in kinds: which lists merge, and by which key.
 * Keyed by the path of field names from the object root (array positions left out). These are
 * the patchMergeKey/patchStrategy tags of the Kubernetes API types for the lists kubectl edits.
 */
export type ListStrategy = { kind: 'merge'; key: string } | { kind: 'set' } | { kind: 'replace' };

const containerLists = new Set(['containers', 'initContainers', 'ephemeralContainers']);

const byFieldName: Record<string, ListStrategy> = {
  containers: { kind: 'merge', key: 'name' },
  initContainers: { kind: 'merge', key: 'name' },
  ephemeralContainers: { kind: 'merge', key: 'name' },
  env: { kind: 'merge', key: 'name' },
  volumes: { kind: 'merge', key: 'name' },
  volumeMounts: { kind: 'merge', key: 'mountPath' },
  volumeDevices: { kind: 'merge', key: 'devicePath' },
  imagePullSecrets: { kind: 'merge', key: 'name' },
  hostAliases: { kind: 'merge', key: 'ip' },
  conditions: { kind: 'merge', key: 'type' },
  ownerReferences: { kind: 'merge', key: 'uid' },
  finalizers: { kind: 'set' },
  topologySpreadConstraints: { kind: 'merge', key: 'topologyKey' },
  resourceClaims: { kind: 'merge', key: 'name' },
  schedulingGates: { kind: 'merge', key: 'name' },
  podIPs: { kind: 'merge', key: 'ip' },
  hostIPs: { kind: 'merge', key: 'ip' },
  addresses: { kind: 'merge', key: 'type' },
  secrets: { kind: 'merge', key: 'name' },
};

export function listStrategy(path: string[]): ListStrategy {
  const last = path[path.length - 1];
  if (last === 'ports') {
    if (path.some((p) => containerLists.has(p))) return { kind: 'merge', key: 'containerPort' };
    // Service spec.ports merge by port.
    if (path.length === 2 && path[0] === 'spec') return { kind: 'merge', key: 'port' };
    return { kind: 'replace' };
  }
  // Endpoints subsets' addresses are atomic; only node status addresses merge by type.
  if (last === 'addresses' && !(path.length === 2 && path[0] === 'status')) return { kind: 'replace' };
  if (last === 'secrets' && path.length !== 1) return { kind: 'replace' };
  return byFieldName[last] ?? { kind: 'replace' };
}
