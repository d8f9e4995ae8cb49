import { bytes, milliCpu } from '../api/quantity.js';
import type { Obj } from '../client/kube-client.js';
import type { NodeInfo } from './framework.js';
import { podRequests } from './plugins/pod-requests.js';
import { ownerUid } from './plugins/spread.js';

/**
 * Building and updating a NodeInfo incrementally: the scheduler's cluster view is never rebuilt
 * per pod, and preemption works on copies with victims taken out.
 */
export function newNodeInfo(node: Obj): NodeInfo {
  return { node, pods: [], affinityPods: [], requested: { cpu: 0, memory: 0, pods: 0 }, owners: new Map(), allocatable: allocatableOf(node) };
}

export function allocatableOf(node: Obj): NodeInfo['allocatable'] {
  const a = node.status?.allocatable ?? node.status?.capacity ?? {};
  return { cpu: milliCpu(a.cpu ?? 0), memory: bytes(a.memory ?? 0), pods: Number(a.pods ?? 110) };
}

export function hasPodAffinity(pod: Obj): boolean {
  const a = pod.spec?.affinity;
  return !!(a?.podAffinity || a?.podAntiAffinity);
}

export function addPod(info: NodeInfo, pod: Obj): void {
  info.pods.push(pod);
  if (hasPodAffinity(pod)) info.affinityPods.push(pod);
  account(info, pod, 1);
}

export function removePod(info: NodeInfo, pod: Obj): void {
  const i = info.pods.indexOf(pod);
  if (i < 0) return;
  info.pods.splice(i, 1);
  const j = info.affinityPods.indexOf(pod);
  if (j >= 0) info.affinityPods.splice(j, 1);
  account(info, pod, -1);
}

/** A copy that can be changed without touching the original (the node object is shared). */
export function cloneNodeInfo(info: NodeInfo): NodeInfo {
  return { node: info.node, pods: [...info.pods], affinityPods: [...info.affinityPods], requested: { ...info.requested }, owners: new Map(info.owners), allocatable: info.allocatable };
}

function account(info: NodeInfo, pod: Obj, sign: 1 | -1): void {
  const r = podRequests(pod);
  info.requested.cpu += sign * r.cpu;
  info.requested.memory += sign * r.memory;
  info.requested.pods += sign;
  const owner = ownerUid(pod);
  if (owner) {
    const n = (info.owners.get(owner) ?? 0) + sign;
    if (n > 0) info.owners.set(owner, n);
    else info.owners.delete(owner);
  }
}
