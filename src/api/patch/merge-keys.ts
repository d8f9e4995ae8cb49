import type { OpenApiSchema } from '../openapi-schema.js';

/**
 * How strategic merge patch treats a list: merged element by element on a key, merged as a
 * set of scalars, or replaced. Built-in kinds' list properties carry upstream's
 * x-kubernetes-patch-strategy/-merge-key, generated from the patchStrategy/patchMergeKey tags of
 * the Kubernetes API's Go types (ADR 0021); a list without them is replaced.
 */
export type ListStrategy = { kind: 'merge'; key: string } | { kind: 'set' } | { kind: 'replace' };

const replace: ListStrategy = { kind: 'replace' };
const set: ListStrategy = { kind: 'set' };

/** The strategy of the list whose property schema (before resolving references) is `prop`. */
export function listStrategy(prop: OpenApiSchema | undefined): ListStrategy {
  const strategy = prop?.['x-kubernetes-patch-strategy'];
  if (typeof strategy !== 'string' || !strategy.split(',').includes('merge')) return replace;
  const key = prop?.['x-kubernetes-patch-merge-key'];
  return typeof key === 'string' ? { kind: 'merge', key } : set;
}
