import { LOCAL_PATH_PROVISIONER } from '../api/local-path.js';
import type { KubeObject } from '../api/object.js';
import type { Registry } from '../api/registry.js';
import type { ResourceType } from '../api/resource-type.js';
import { isCode } from '../observe/errors.js';
import { immortalNamespaces } from './admission/namespace-lifecycle.js';
import { systemPriorityClasses } from './admission/priority.js';
import type { ObjectStore } from './object-store.js';

/**
 * Objects every cluster has from its first start: the system namespaces, the default StorageClass,
 * the system PriorityClasses and, given `self`, the `kubernetes` Service with Endpoints pointing at
 * this API server. Idempotent.
 */
/**
 * Measured by bench/microvm (docs/benchmarks.md): QEMU's RSS beyond the guest's own use for a guest
 * resumed from a template (105 MiB; the default since ADR 0010), and its CPU while idle.
 */
export const microvmOverhead = { cpu: '100m', memory: '120Mi' };

export async function bootstrap(registry: Registry, store: ObjectStore, self: { host: string; port: number } | undefined, kubernetesIP: string): Promise<void> {
  const ensure = async (group: string, plural: string, ns: string | undefined, obj: KubeObject) => {
    const rt = registry.mustLookup(group, 'v1', plural);
    // A read first: on a restart everything exists, and a create that fails costs its validation and field tracking.
    if (await exists(rt, ns, obj.metadata.name as string)) return;
    try {
      await store.create(rt, ns, obj);
    } catch (err) {
      if (!isCode(err, 'AlreadyExists')) throw err;
    }
  };
  for (const name of [...immortalNamespaces, 'kube-node-lease']) await ensure('', 'namespaces', undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  // The default StorageClass: volumes provisioned as directories on the host (DESIGN §5).
  await ensure('storage.k8s.io', 'storageclasses', undefined, {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: { name: 'local-path', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
    provisioner: LOCAL_PATH_PROVISIONER,
    reclaimPolicy: 'Delete',
    // A directory lives on one node: provision it where the claim's first pod is scheduled.
    volumeBindingMode: 'WaitForFirstConsumer',
  });
  // The sandboxes this platform runs pods in (DESIGN §1). microvm's overhead is what a guest costs
  // beyond its pod's own use: QEMU and the guest kernel (bench/microvm measures it).
  await ensure('node.k8s.io', 'runtimeclasses', undefined, { apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass', metadata: { name: 'runc' }, handler: 'runc' });
  await ensure('node.k8s.io', 'runtimeclasses', undefined, {
    apiVersion: 'node.k8s.io/v1',
    kind: 'RuntimeClass',
    metadata: { name: 'microvm' },
    handler: 'microvm',
    overhead: { podFixed: microvmOverhead },
  });
  for (const pc of systemPriorityClasses) {
    await ensure('scheduling.k8s.io', 'priorityclasses', undefined, { apiVersion: 'scheduling.k8s.io/v1', kind: 'PriorityClass', metadata: { name: pc.name }, value: pc.value, description: pc.description });
  }
  if (!self) return;
  await ensure('', 'services', 'default', {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { component: 'apiserver', provider: 'kubernetes' } },
    spec: { type: 'ClusterIP', clusterIP: kubernetesIP, clusterIPs: [kubernetesIP], ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: self.port }] },
  });
  // The endpoints follow this server's address at every start (a tenant control plane's may change
  // between runs), as upstream's endpoint reconciler keeps them: Endpoints and the EndpointSlice.
  const endpoints: KubeObject = {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: 'kubernetes', namespace: 'default' },
    subsets: [{ addresses: [{ ip: self.host }], ports: [{ name: 'https', port: self.port, protocol: 'TCP' }] }],
  };
  const slice: KubeObject = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [self.host], conditions: { ready: true } }],
    ports: [{ name: 'https', port: self.port, protocol: 'TCP' }],
  };
  await reconcile(registry.mustLookup('', 'v1', 'endpoints'), endpoints, ['subsets']);
  await reconcile(registry.mustLookup('discovery.k8s.io', 'v1', 'endpointslices'), slice, ['endpoints', 'ports']);

  async function exists(rt: ResourceType, ns: string | undefined, name: string): Promise<boolean> {
    return store.get(rt, ns, name).then(
      () => true,
      (err) => (isCode(err, 'NotFound') ? false : Promise.reject(err)),
    );
  }

  async function reconcile(rt: ResourceType, obj: KubeObject, fields: string[]): Promise<void> {
    try {
      await store.create(rt, 'default', obj);
    } catch (err) {
      if (!isCode(err, 'AlreadyExists')) throw err;
      await store.update(rt, 'default', 'kubernetes', (current) => ({ ...current, ...Object.fromEntries(fields.map((f) => [f, obj[f]])) }));
    }
  }
}
