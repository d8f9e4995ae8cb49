import { bytes, milliCpu } from './quantity.js';

/**
 * A pod's requests or limits as upstream's resource accounting sums them: the containers' sum,
 * at least the largest init container's, plus the pod overhead (for limits, only on resources
 * some container limits). Requests default to limits where a container states only a limit.
 * CPU is in milli-cores, everything else in base units. Shared by the scheduler and quota.
 */
// biome-ignore lint/suspicious/noExplicitAny: PodSpec is untyped JSON
type Spec = Record<string, any>;

const amount = (k: string, q: string | number) => (k === 'cpu' ? milliCpu(q) : bytes(q));

export function podResourceTotals(spec: Spec | undefined, kind: 'requests' | 'limits'): Map<string, number> {
  const sums = new Map<string, number>();
  const of = (c: Spec): Spec => (kind === 'requests' ? { ...(c.resources?.limits ?? {}), ...(c.resources?.requests ?? {}) } : (c.resources?.limits ?? {}));
  for (const c of spec?.containers ?? []) for (const [k, q] of Object.entries<string>(of(c))) sums.set(k, (sums.get(k) ?? 0) + amount(k, q));
  for (const c of spec?.initContainers ?? []) for (const [k, q] of Object.entries<string>(of(c))) sums.set(k, Math.max(sums.get(k) ?? 0, amount(k, q)));
  for (const [k, q] of Object.entries<string>(spec?.overhead ?? {})) if (kind === 'requests' || sums.has(k)) sums.set(k, (sums.get(k) ?? 0) + amount(k, q));
  return sums;
}
