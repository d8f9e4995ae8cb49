import { parseQuantity } from '../api/quantity.js';
import type { Obj } from '../client/kube-client.js';
import type { ControlPlaneLayout } from './control-plane-sandbox.js';

const defaultResources = { cpu: '1', memory: '512Mi' };

/** The resources a cluster's control plane may use: its spec's, over the defaults. */
export function controlPlaneResources(c: Obj): ControlPlaneLayout['resources'] {
  const r = { ...defaultResources, ...(c.spec.controlPlane?.resources ?? {}) };
  return { cpuMillis: Math.round(parseQuantity(r.cpu) * 1000), memoryBytes: Math.round(parseQuantity(r.memory)), pids: 1024 };
}

/**
 * What placement weighs a control plane at: what one holds idle with room to work (~80 MiB and a
 * few millicores measured, docs/benchmarks.md), within its limits — as kubeadm's control-plane
 * pods request a fraction of a CPU, not their ceiling. Weighed at its limits (a CPU each by
 * default), a two-core host would take 32 clusters even overcommitted sixteen times; idle, as
 * most are, a hundred use a tenth of one core.
 */
export function controlPlaneRequests(c: Obj): { cpuMillis: number; memoryBytes: number } {
  const limits = controlPlaneResources(c);
  return { cpuMillis: Math.min(100, limits.cpuMillis), memoryBytes: Math.min(128 * 2 ** 20, limits.memoryBytes) };
}

/**
 * Why a tenant's quota leaves no room for cluster `c` beside those already `admitted`, if it
 * does not: their count, and the CPU and memory their control planes may use together, every
 * replica counted (so a tenant cannot take the host by asking for a huge control plane or many
 * replicas; both are immutable once created).
 */
export function clusterQuotaRefusal(tenant: string, quota: Obj, admitted: Obj[], c: Obj): string | undefined {
  if (quota.clusters !== undefined && admitted.length >= Number(quota.clusters)) return `tenant ${tenant} has reached its quota of ${quota.clusters} clusters`;
  const use = [...admitted, c].flatMap((x) => Array<ReturnType<typeof controlPlaneResources>>(x.spec.controlPlane?.replicas ?? 1).fill(controlPlaneResources(x)));
  for (const [what, limit, total] of [
    ['cpu', quota.cpu, use.reduce((n, r) => n + r.cpuMillis / 1000, 0)],
    ['memory', quota.memory, use.reduce((n, r) => n + r.memoryBytes, 0)],
  ] as const) {
    if (limit !== undefined && total > parseQuantity(String(limit))) {
      return `tenant ${tenant}'s quota of ${what} ${limit} would be exceeded: its control planes would use ${what === 'cpu' ? total : `${Math.ceil(total / 1048576)}Mi`}`;
    }
  }
  return undefined;
}
