import type { FieldErrors } from '../field-errors.js';
import { parseQuantity } from '../quantity.js';
import type { ResourceType } from '../resource-type.js';
import { ageColumn, col, nameColumn } from './columns.js';

/**
 * The provider API, group kubicle.io/v1alpha1 (DESIGN §1): Tenants own Clusters; each Tenant's
 * objects live in the namespace of the Tenant's name, so "a tenant sees only its own" is a
 * namespace boundary. Hosts are registered by host agents. The cluster controller and the
 * gateway in provider/ act on them; these are the shapes, defaults and rules.
 */
export const providerGroup = 'kubicle.io';
const base = { group: providerGroup, version: 'v1alpha1', status: true, generation: true, nameRule: 'label' as const };
// biome-ignore lint/suspicious/noExplicitAny: untyped JSON
type J = Record<string, any>;

export const clusterStores = ['sqlite', 'etcd'];
/** At most this many control-plane replicas per cluster, each on a host of its own. */
export const maxControlPlaneReplicas = 5;

function validateQuantities(obj: J | undefined, field: string, errs: FieldErrors): void {
  for (const [k, v] of Object.entries(obj ?? {})) {
    try {
      parseQuantity(String(v));
    } catch {
      errs.invalid(`${field}.${k}`, v, 'must be a quantity such as 2, 500m or 4Gi');
    }
  }
}

const tenants: ResourceType = {
  ...base,
  kind: 'Tenant',
  plural: 'tenants',
  singular: 'tenant',
  namespaced: false,
  storage: 'kubicle.io/tenants',
  validate: (o, errs) => {
    validateQuantities(o.spec?.quota, 'spec.quota', errs);
  },
  columns: [
    nameColumn,
    col('CPU', (o) => o.spec?.quota?.cpu ?? '<unlimited>'),
    col('Memory', (o) => o.spec?.quota?.memory ?? '<unlimited>'),
    col('Clusters', (o) => o.spec?.quota?.clusters ?? '<unlimited>'),
    ageColumn,
  ],
};

const clusters: ResourceType = {
  ...base,
  kind: 'Cluster',
  plural: 'clusters',
  singular: 'cluster',
  namespaced: true,
  shortNames: ['kc'],
  storage: 'kubicle.io/clusters',
  defaults: (o) => {
    o.spec ??= {};
    o.spec.store ??= 'sqlite';
    o.spec.controlPlane ??= {};
    o.spec.controlPlane.runtimeClassName ??= 'runc';
    o.spec.controlPlane.replicas ??= 1;
    o.spec.stopped ??= false;
  },
  validate: (o, errs) => {
    const s = o.spec as J;
    if (!clusterStores.includes(s.store)) errs.notSupported('spec.store', s.store, clusterStores);
    if (s.controlPlane.runtimeClassName !== 'runc') errs.notSupported('spec.controlPlane.runtimeClassName', s.controlPlane.runtimeClassName, ['runc']);
    const replicas = s.controlPlane.replicas;
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > maxControlPlaneReplicas) {
      errs.invalid('spec.controlPlane.replicas', replicas, `must be a whole number from 1 to ${maxControlPlaneReplicas}`);
    } else if (replicas > 1 && s.store !== 'etcd') {
      // A SQLite file is one process's store; replicas on several hosts share an etcd prefix.
      errs.invalid('spec.controlPlane.replicas', replicas, 'more than 1 replica needs spec.store: etcd');
    }
    if (typeof s.stopped !== 'boolean') errs.invalid('spec.stopped', s.stopped, 'must be true or false');
    const idle = s.sleepAfterSeconds;
    if (idle !== undefined && (!Number.isInteger(idle) || idle < 0)) errs.invalid('spec.sleepAfterSeconds', idle, 'must be a whole number of seconds, 0 for never');
    validateQuantities(s.controlPlane.resources, 'spec.controlPlane.resources', errs);
  },
  validateUpdate: (o, old, errs) => {
    if (o.spec?.store !== old.spec?.store) errs.immutable('spec.store', o.spec?.store);
    // Placed and charged against the tenant's quota, replica by replica, when the cluster was admitted.
    if (o.spec?.controlPlane?.replicas !== old.spec?.controlPlane?.replicas) errs.immutable('spec.controlPlane.replicas', o.spec?.controlPlane?.replicas);
    // Charged against the tenant's quota when the cluster was admitted.
    if (JSON.stringify(o.spec?.controlPlane?.resources ?? {}) !== JSON.stringify(old.spec?.controlPlane?.resources ?? {})) {
      errs.immutable('spec.controlPlane.resources', o.spec?.controlPlane?.resources);
    }
  },
  columns: [
    nameColumn,
    col('Phase', (o) => o.status?.phase ?? 'Pending'),
    col('Endpoint', (o) => o.status?.endpoint ?? ''),
    col('Version', (o) => o.status?.version ?? ''),
    col('Store', (o) => o.spec?.store ?? '', { wide: true }),
    col('Host', (o) => o.status?.host ?? '', { wide: true }),
    col('Replicas', (o) => `${o.status?.readyReplicas ?? 0}/${o.spec?.controlPlane?.replicas ?? 1}`, { wide: true }),
    ageColumn,
  ],
};

const hosts: ResourceType = {
  ...base,
  kind: 'Host',
  plural: 'hosts',
  singular: 'host',
  namespaced: false,
  storage: 'kubicle.io/hosts',
  nameRule: 'subdomain',
  keepStatusOnCreate: true,
  validate: (o, errs) => {
    const s = (o.spec ?? {}) as J;
    if (s.agent !== undefined && (typeof s.agent?.socket !== 'string' || !s.agent.socket.startsWith('/'))) {
      errs.invalid('spec.agent.socket', s.agent?.socket, "must be the absolute path of the host agent's Sandbox API socket");
    }
    if (s.unschedulable !== undefined && typeof s.unschedulable !== 'boolean') errs.invalid('spec.unschedulable', s.unschedulable, 'must be true or false');
    for (const k of ['cpu', 'memory']) {
      const r = s.allocationRatio?.[k];
      if (r !== undefined && !(typeof r === 'number' && r > 0 && r <= 1000)) errs.invalid(`spec.allocationRatio.${k}`, r, 'must be a number above 0 and at most 1000');
    }
  },
  columns: [
    nameColumn,
    col('Ready', (o) => ((o.status?.conditions ?? []) as J[]).find((c) => c.type === 'Ready')?.status ?? 'Unknown'),
    col('CPU', (o) => o.status?.capacity?.cpu ?? ''),
    col('Memory', (o) => o.status?.capacity?.memory ?? ''),
    col('Zone', (o) => o.metadata.labels?.['topology.kubernetes.io/zone'] ?? ''),
    col('Schedulable', (o) => (o.spec?.unschedulable ? 'False' : 'True'), { wide: true }),
    ageColumn,
  ],
};

/** A workload placed on a host: a cluster's control plane (and, with the virtual kubelet, its pods). */
const sandboxes: ResourceType = {
  ...base,
  kind: 'Sandbox',
  plural: 'sandboxes',
  singular: 'sandbox',
  namespaced: true,
  nameRule: 'subdomain',
  storage: 'kubicle.io/sandboxes',
  // Written by the provider whole, as it places a workload; tenants only read them.
  keepStatusOnCreate: true,
  columns: [
    nameColumn,
    col('Cluster', (o) => o.spec?.cluster ?? ''),
    col('Role', (o) => o.spec?.role ?? ''),
    col('Host', (o) => o.spec?.host ?? ''),
    col('Phase', (o) => o.status?.phase ?? 'Pending'),
    ageColumn,
  ],
};

/**
 * Measured use of one cluster (named as it), kept by the provider's meter: CPU-seconds and memory
 * GiB-seconds of its pods by namespace and of its control plane, control-plane running time, and
 * their price from the provider's price list. Cumulative since `status.since`.
 */
const usages: ResourceType = {
  ...base,
  kind: 'Usage',
  plural: 'usages',
  singular: 'usage',
  namespaced: true,
  storage: 'kubicle.io/usages',
  keepStatusOnCreate: true,
  columns: [
    nameColumn,
    col('CPU-s', (o) => fixed(o.status?.total?.cpuSeconds)),
    col('Memory-GiB-s', (o) => fixed(o.status?.total?.memoryGiBSeconds)),
    col('Control-plane-s', (o) => fixed(o.status?.total?.controlPlaneSeconds)),
    col('Cost', (o) => (o.status?.cost ? `${fixed(o.status.cost.total, 4)} ${o.status.cost.currency}` : '')),
    ageColumn,
  ],
};

function fixed(n: unknown, digits = 1): string {
  return typeof n === 'number' ? n.toFixed(digits) : '';
}

export const providerKinds: ResourceType[] = [tenants, clusters, hosts, sandboxes, usages];

