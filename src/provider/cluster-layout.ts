import os from 'node:os';
import path from 'node:path';
import { parseCidr, parseIPv4 } from '../api/ipv4.js';
import { providerGroup } from '../api/kinds/provider.js';
import { parseQuantity } from '../api/quantity.js';
import type { Obj } from '../client/kube-client.js';
import type { ClusterHosts, ClusterPlacement } from './cluster-placement.js';
import { controlPlaneResources } from './cluster-quota.js';
import type { Replica } from './control-plane-replicas.js';
import type { ControlPlaneLayout } from './control-plane-sandbox.js';
import { type ClusterScope, cpuLabel, memoryLabel, tenantLabel } from './sandbox-gateway.js';

// A virtual node without a quota offers its host's capacity, or this machine's until that is known (asked once: os.cpus() reads /proc).
const thisMachine = { cpu: String(os.availableParallelism()), memory: `${Math.floor(os.totalmem() / 2 ** 20)}Mi` };

/**
 * Where each part of a cluster lives, for the cluster controller: its control-plane replicas'
 * sandboxes and data directories, its pod network, its volumes, and what its virtual kubelet may
 * do through the Sandbox API — all named from the Cluster, its Tenant's quota and its placement.
 * Nothing here acts.
 */
export class ClusterLayout {
  constructor(
    private readonly opts: { clustersDir: string; endpointPort: number; home: string; hosts: ClusterHosts },
    private readonly tenant: (name: string) => Obj | undefined,
    private readonly placement: ClusterPlacement,
  ) {}

  /**
   * Replica `i` of the cluster's control plane as it runs on its host: the first beside the
   * cluster's pods, on its network; each further one on a host of its own, with a data directory
   * of its own and no network. Labelled with its tenant and size: control planes count against
   * the tenant's quota as its pods do.
   */
  replica(c: Obj, i: number): Replica {
    const quota = this.tenant(c.metadata.namespace)?.spec?.quota ?? {};
    const host = this.opts.hosts.capacity(this.hostOf(c)) ?? thisMachine;
    const resources = controlPlaneResources(c);
    const layout: ControlPlaneLayout = {
      sandboxId: this.sandboxId(c, i),
      dataDir: this.dataDir(c, i),
      endpoint: { address: endpointAddress(c) as string, port: this.opts.endpointPort },
      resources,
      network: i ? undefined : { name: networkName(c), cidr: podRange(c) ?? '' },
      replicated: replicaCount(c) > 1,
      runDir: this.runDir(c),
      node: { cpu: String(quota.cpu ?? host.cpu), memory: String(quota.memory ?? host.memory) },
    };
    const labels = {
      'kubicle.io/cluster': `${c.metadata.namespace}.${c.metadata.name}`,
      'kubicle.io/role': 'control-plane',
      'kubicle.io/replica': String(i),
      [tenantLabel]: c.metadata.namespace,
      [cpuLabel]: String(resources.cpuMillis),
      [memoryLabel]: String(resources.memoryBytes),
    };
    // A hostname each: leader election tells replicas apart by it.
    return { agent: this.opts.hosts.agent(this.placement.replicaHosts(c)?.[i] ?? this.opts.home), layout, hostname: i ? `${c.metadata.name}-${i}` : c.metadata.name, labels };
  }

  /** Replica `i`'s sandbox id on its host agent. */
  sandboxId(c: Obj, i: number): string {
    return i ? `cp-${c.metadata.uid}-${i}` : `cp-${c.metadata.uid}`;
  }

  replicas(c: Obj): Replica[] {
    return Array.from({ length: replicaCount(c) }, (_, i) => this.replica(c, i));
  }

  /** Replica `i`'s data directory: the first's holds the cluster's CA and keys, which the others copy. */
  dataDir(c: Obj, i = 0): string {
    const first = path.join(this.opts.clustersDir, c.metadata.uid);
    return i ? `${first}.replica-${i}` : first;
  }

  /** The provider's sockets for the cluster (Sandbox API, store relay), mounted read-only by its replicas. */
  runDir(c: Obj): string {
    return `${this.dataDir(c)}.run`;
  }

  /** The cluster's local volumes: beside its data directory, not in it, so its control plane's sandbox does not see its pods' data. */
  volumesDir(c: Obj): string {
    return `${this.dataDir(c)}.volumes`;
  }

  /** What the cluster's virtual kubelet may do through the provider's Sandbox API. */
  scope(c: Obj): ClusterScope {
    const tenant = c.metadata.namespace;
    return {
      uid: c.metadata.uid,
      tenant,
      name: c.metadata.name,
      network: networkName(c),
      host: this.hostOf(c),
      volumes: this.volumesDir(c),
      quota: () => {
        const q = this.tenant(tenant)?.spec?.quota ?? {};
        return {
          cpuMillis: q.cpu !== undefined ? Math.round(parseQuantity(String(q.cpu)) * 1000) : undefined,
          memoryBytes: q.memory !== undefined ? Math.round(parseQuantity(String(q.memory))) : undefined,
        };
      },
    };
  }

  private hostOf(c: Obj): string {
    return this.placement.hostOf(c) ?? this.opts.home;
  }
}

/** The name of a cluster's pod network (and its bridge), from its uid. */
export function networkName(c: Obj): string {
  return `c${c.metadata.uid.replace(/-/g, '').slice(0, 20)}`;
}

/** The cluster's pod range, once it has one. */
export function podRange(c: Obj): string | undefined {
  return parseCidr(c.status?.podCIDR)?.text;
}

/** The address of the cluster's endpoint, once it has one. */
export function endpointAddress(c: Obj): string | undefined {
  const m = /^https:\/\/([\d.]+):\d+$/.exec(c.status?.endpoint ?? '');
  return m && parseIPv4(m[1]) !== undefined ? m[1] : undefined;
}

/** How many control-plane replicas the cluster runs. */
export function replicaCount(c: Obj): number {
  return c.spec.controlPlane?.replicas ?? 1;
}

/** The Secret `<cluster>-kubeconfig` beside the Cluster (Cluster API's convention), holding its admin kubeconfig, owned by it. */
export function kubeconfigSecret(c: Obj, kubeconfig: string): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: `${c.metadata.name}-kubeconfig`,
      namespace: c.metadata.namespace,
      labels: { 'kubicle.io/cluster': c.metadata.name },
      ownerReferences: [{ apiVersion: `${providerGroup}/v1alpha1`, kind: 'Cluster', name: c.metadata.name, uid: c.metadata.uid, controller: true, blockOwnerDeletion: true }],
    },
    type: 'kubicle.io/kubeconfig',
    data: { value: Buffer.from(kubeconfig).toString('base64') },
  };
}
