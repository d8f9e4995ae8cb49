import { KubicleError } from '../../observe/errors.js';
import { definitions } from '../generated/schemas.js';
import { isPlainObject } from '../object.js';
import { type OpenApiSchema, resolveSchema } from '../openapi-schema.js';
import { type ListStrategy, listStrategy } from './merge-keys.js';

/**
 * Strategic merge patch for built-in kinds: like a JSON merge patch, but lists whose schema
 * carries patch metadata (merge-keys.ts) merge element by element, and the directives $patch
 * (replace|merge|delete), $retainKeys, $setElementOrder/<field> and
 * $deleteFromPrimitiveList/<field> are honoured. `definition` names the generated schema of the
 * patched object (io.k8s.api.apps.v1.Deployment); without one every list is replaced.
 */
export function strategicMergePatch(original: unknown, patch: unknown, definition?: string): unknown {
  if (!isPlainObject(patch)) return patch;
  return mergeObject(isPlainObject(original) ? original : {}, patch, definition ? definitions[definition] : undefined);
}

type Obj = Record<string, unknown>;

/** The (unresolved) schema of field `k` of an object whose resolved schema is `schema`. */
function fieldSchema(schema: OpenApiSchema | undefined, k: string): OpenApiSchema | undefined {
  const prop = schema?.properties?.[k];
  if (prop) return prop;
  return typeof schema?.additionalProperties === 'object' ? schema.additionalProperties : undefined;
}

const resolve = (s: OpenApiSchema | undefined) => resolveSchema(s, definitions);

function mergeObject(original: Obj, patch: Obj, schema: OpenApiSchema | undefined): Obj | undefined {
  const directive = patch.$patch;
  if (directive === 'delete') return undefined;
  if (directive === 'replace') {
    const { $patch: _, ...rest } = patch;
    return stripDirectives(rest) as Obj;
  }
  if (directive !== undefined && directive !== 'merge') throw new KubicleError('BadRequest', `unknown patch type: ${String(directive)} in map: ${JSON.stringify(patch)}`);
  const out: Obj = { ...original };
  const orders: Record<string, unknown[]> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys') continue;
    if (k.startsWith('$setElementOrder/')) {
      orders[k.slice('$setElementOrder/'.length)] = v as unknown[];
      continue;
    }
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const drop = new Set(((v as unknown[]) ?? []).map((x) => JSON.stringify(x)));
      if (Array.isArray(out[field])) out[field] = (out[field] as unknown[]).filter((x) => !drop.has(JSON.stringify(x)));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const prop = fieldSchema(schema, k);
    if (Array.isArray(v)) out[k] = mergeList(out[k], v, prop);
    else if (isPlainObject(v)) {
      const merged = mergeObject(isPlainObject(out[k]) ? (out[k] as Obj) : {}, v, resolve(prop));
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else out[k] = v;
  }
  for (const [field, order] of Object.entries(orders)) {
    if (Array.isArray(out[field])) out[field] = applyOrder(out[field] as unknown[], order, listStrategy(fieldSchema(schema, field)));
  }
  if (Array.isArray(patch.$retainKeys)) {
    const keep = new Set(patch.$retainKeys as string[]);
    for (const k of Object.keys(out)) if (!keep.has(k)) delete out[k];
  }
  return out;
}

function mergeList(original: unknown, patch: unknown[], prop: OpenApiSchema | undefined): unknown[] {
  const strategy = listStrategy(prop);
  const items = resolve(resolve(prop)?.items);
  if (patch.some((e) => isPlainObject(e) && e.$patch === 'replace')) {
    return patch.filter((e) => !(isPlainObject(e) && e.$patch === 'replace')).map(stripDirectives);
  }
  const base = Array.isArray(original) ? [...original] : [];
  if (strategy.kind === 'set') {
    const out = [...base];
    for (const e of patch) if (!out.some((x) => JSON.stringify(x) === JSON.stringify(e))) out.push(e);
    return out;
  }
  if (strategy.kind === 'replace') return patch.map(stripDirectives);
  const key = strategy.key;
  const out = [...base];
  for (const e of patch) {
    if (!isPlainObject(e)) {
      out.push(e);
      continue;
    }
    const idx = out.findIndex((x) => isPlainObject(x) && x[key] === e[key]);
    if (e.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = mergeObject(out[idx] as Obj, e, items);
    else out.push(stripDirectives(mergeObject({}, e, items)));
  }
  return out;
}

/** Reorders a merged list as $setElementOrder says; elements it does not name keep their relative order, after. */
function applyOrder(list: unknown[], order: unknown[], strategy: ListStrategy): unknown[] {
  const id = (x: unknown) => (strategy.kind === 'merge' && isPlainObject(x) ? JSON.stringify(x[strategy.key]) : JSON.stringify(x));
  const pos = new Map(order.map((o, i) => [id(o), i]));
  return [...list].sort((a, b) => (pos.get(id(a)) ?? Number.MAX_SAFE_INTEGER) - (pos.get(id(b)) ?? Number.MAX_SAFE_INTEGER));
}

function stripDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isPlainObject(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
  return out;
}
