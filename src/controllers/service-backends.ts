import { type LabelSelector, matchesLabels } from '../api/selectors.js';
import { type Informer, type InformerHandlers, objectKey } from '../client/informer.js';
import type { Obj } from '../client/kube-client.js';
import { isPodReady } from './owner.js';

/**
 * The pods behind a Service and the ports they serve it on, shared by the Endpoints and
 * EndpointSlice controllers: selected pods with an IP that have not finished; a named targetPort
 * resolves per pod through its containers' ports.
 */
export interface Backend {
  pod: Obj;
  ip: string;
  ready: boolean;
  terminating: boolean;
  ports: { name?: string; port: number; protocol: string }[];
}

export function serviceSelector(svc: Obj): LabelSelector | undefined {
  const sel = svc.spec?.selector as Record<string, string> | undefined;
  if (!sel || !Object.keys(sel).length) return undefined;
  return Object.entries(sel).map(([key, value]) => ({ key, op: '=' as const, value }));
}

function resolvePort(pod: Obj, target: unknown): number | undefined {
  if (typeof target === 'number') return target;
  if (typeof target === 'string' && /^\d+$/.test(target)) return Number(target);
  for (const c of pod.spec?.containers ?? []) for (const p of c.ports ?? []) if (p.name === target) return p.containerPort;
  return undefined;
}

export function backendsOf(svc: Obj, pods: Obj[]): Backend[] {
  const selector = serviceSelector(svc);
  if (!selector) return [];
  const out: Backend[] = [];
  for (const pod of pods) {
    if (pod.metadata.namespace !== svc.metadata.namespace || !matchesLabels(selector, pod.metadata.labels ?? {})) continue;
    const ip = pod.status?.podIP;
    if (!ip || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
    const ports = [];
    for (const sp of svc.spec?.ports ?? []) {
      const port = resolvePort(pod, sp.targetPort ?? sp.port);
      if (port !== undefined) ports.push({ name: sp.name, port, protocol: sp.protocol ?? 'TCP' });
    }
    out.push({ pod, ip, ready: isPodReady(pod) && !pod.metadata.deletionTimestamp, terminating: !!pod.metadata.deletionTimestamp, ports });
  }
  return out.sort((a, b) => a.ip.localeCompare(b.ip));
}

/**
 * Informer handlers for pods that queue every Service with a selector in the pod's namespace
 * (the Services whose backends may have changed). Reads the namespace index, not the cluster.
 */
export function requeueServicesOf(services: Informer, queue: { add(key: string): void }): InformerHandlers {
  const changed = (pod: Obj) => {
    for (const svc of services.listNamespace(pod.metadata.namespace)) if (serviceSelector(svc)) queue.add(objectKey(svc));
  };
  return { add: changed, update: (_, pod) => changed(pod), delete: changed };
}
