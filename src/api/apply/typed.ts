import { deepEqual, isPlainObject } from '../object.js';
import { type FieldSet, isEmpty, isMember } from './field-set.js';
import type { Shape } from './shape.js';

/**
 * The walks server-side apply makes over objects, guided by their Shape: the set of fields a
 * value sets, what changed between two values, the merge of an applied configuration into a live
 * object, and the removal of fields. Lists whose items cannot be told apart (an item without its
 * key, or two with the same key) are handled as atomic, so odd data never breaks a write.
 */

type Obj = Record<string, unknown>;

/** The path element of a list item (`k:{...}` or `v:...`); undefined if it has none. */
function itemElement(shape: Shape, item: unknown): string | undefined {
  if (shape.set) return item === null || typeof item !== 'object' ? `v:${JSON.stringify(item)}` : undefined;
  if (!shape.keys?.length || !isPlainObject(item)) return undefined;
  const key: Obj = {};
  for (const k of shape.keys) {
    const v = item[k] ?? shape.keyDefaults?.[k];
    if (v === undefined || v === null || typeof v === 'object') return undefined;
    key[k] = v;
  }
  return `k:${JSON.stringify(key)}`;
}

/** A keyed list's items by element, in order; undefined when the list cannot be keyed. */
function indexList(shape: Shape, list: unknown[]): Map<string, unknown> | undefined {
  // One walk asks several times for the same list (is it a leaf? then its items).
  const cached = indices?.get(list);
  if (cached?.shape === shape) return cached.index;
  let index: Map<string, unknown> | undefined = new Map<string, unknown>();
  for (const item of list) {
    const el = itemElement(shape, item);
    if (el === undefined || index.has(el)) {
      index = undefined;
      break;
    }
    index.set(el, item);
  }
  indices?.set(list, { shape, index });
  return index;
}

/** List indices of the walk under way: its values do not change while it runs, later ones may. */
let indices: WeakMap<unknown[], { shape: Shape; index: Map<string, unknown> | undefined }> | undefined;

function walk<T>(fn: () => T): T {
  if (indices) return fn();
  indices = new WeakMap();
  try {
    return fn();
  } finally {
    indices = undefined;
  }
}

function isContainer(v: unknown): v is Obj | unknown[] {
  return v !== null && typeof v === 'object';
}

function emptyContainer(v: unknown): boolean {
  return v === undefined || (Array.isArray(v) ? v.length === 0 : isPlainObject(v) && Object.keys(v).length === 0);
}

/**
 * Whether l and r (either may be undefined: absent) are compared, merged and owned as one leaf:
 * scalars, atomic shapes, mismatched kinds, both empty, or lists that cannot be keyed.
 */
function isLeaf(l: unknown, r: unknown, shape: Shape): boolean {
  if ((l !== undefined && !isContainer(l)) || (r !== undefined && !isContainer(r))) return true;
  if (l !== undefined && r !== undefined && Array.isArray(l) !== Array.isArray(r)) return true;
  if (shape.kind === 'scalar' || shape.atomic) return true;
  if (emptyContainer(l) && emptyContainer(r)) return true;
  const list = Array.isArray(l) ? l : r;
  if (Array.isArray(list)) {
    if (shape.kind !== 'list' || (!shape.set && !shape.keys?.length)) return true;
    if ((Array.isArray(l) && !indexList(shape, l)) || (Array.isArray(r) && !indexList(shape, r))) return true;
  }
  return false;
}

/** Adds `path` to a mutable set as a member. */
function insert(set: FieldSet, path: string[]): void {
  let node = set;
  for (let i = 0; i < path.length; i++) {
    let next = node[path[i]];
    if (!next) {
      next = {};
      node[path[i]] = next;
    } else if (i === path.length - 1 ? !isEmpty(next) : isEmpty(next)) next['.'] = {};
    node = next;
  }
}

/** The fields a value sets (upstream's ToFieldSet): leaves, and the items of keyed lists and maps. */
export function fieldSetOf(value: unknown, shape: Shape): FieldSet {
  const out: FieldSet = {};
  walk(() => collect(value, shape, [], out));
  return out;
}

function collect(v: unknown, shape: Shape, path: string[], out: FieldSet): void {
  if (path.length && isLeaf(v, v, shape)) {
    insert(out, path);
    return;
  }
  if (Array.isArray(v)) {
    const item = shape.item();
    for (const [el, x] of indexList(shape, v) ?? []) {
      insert(out, [...path, el]);
      collect(x, item, [...path, el], out);
    }
    return;
  }
  for (const [k, x] of Object.entries(v as Obj)) {
    if (x === undefined) continue;
    const p = [...path, `f:${k}`];
    if (shape.isMap) insert(out, p);
    collect(x, shape.field(k), p, out);
  }
}

export interface Comparison {
  added: FieldSet;
  modified: FieldSet;
  removed: FieldSet;
}

/** What changed from `lhs` to `rhs`: fields added, modified and removed (upstream's Compare). */
export function compare(lhs: unknown, rhs: unknown, shape: Shape): Comparison {
  const out: Comparison = { added: {}, modified: {}, removed: {} };
  walk(() => diff(lhs, rhs, shape, [], out));
  return out;
}

function diff(l: unknown, r: unknown, shape: Shape, path: string[], out: Comparison): void {
  if (l === r) return;
  if (path.length && isLeaf(l, r, shape)) {
    if (l === undefined) insert(out.added, path);
    else if (r === undefined) insert(out.removed, path);
    else if (!deepEqual(l, r)) insert(out.modified, path);
    return;
  }
  // Most of an object is unchanged by most writes: skip equal subtrees without walking them.
  if (l !== undefined && r !== undefined && deepEqual(l, r)) return;
  const at = (el: string, x: unknown, y: unknown, s: Shape) => {
    path.push(el);
    diff(x, y, s, path, out);
    path.pop();
  };
  if (Array.isArray(l) || Array.isArray(r)) {
    const li = Array.isArray(l) ? (indexList(shape, l) as Map<string, unknown>) : new Map<string, unknown>();
    const ri = Array.isArray(r) ? (indexList(shape, r) as Map<string, unknown>) : new Map<string, unknown>();
    const item = shape.item();
    for (const [el, x] of li) at(el, x, ri.get(el), item);
    for (const [el, x] of ri) if (!li.has(el)) at(el, undefined, x, item);
  } else {
    const lo = (l ?? {}) as Obj;
    const ro = (r ?? {}) as Obj;
    for (const k of Object.keys(lo)) at(`f:${k}`, lo[k], ro[k], shape.field(k));
    for (const k of Object.keys(ro)) if (!(k in lo)) at(`f:${k}`, undefined, ro[k], shape.field(k));
  }
  // A list, map or item that appears or disappears is itself added or removed, besides its
  // fields. Structs are not: upstream's Go structs are never absent unless pointers, which the
  // schemas do not tell apart, and its managedFields show `spec` and `template` without a `.`.
  const last = path[path.length - 1];
  if (!last || (shape.kind === 'object' && !shape.isMap && last.startsWith('f:'))) return;
  if (l === undefined) insert(out.added, path);
  else if (r === undefined) insert(out.removed, path);
}

/**
 * An applied configuration merged into a live value: the configuration's leaves win, maps merge
 * key by key, keyed lists item by item (live order, new items after), atomic values are replaced.
 * A null in the configuration removes the field. Returns a new value; neither input changes.
 */
export function merge(live: unknown, config: unknown, shape: Shape): unknown {
  return walk(() => mergeValue(live, config, shape));
}

function mergeValue(live: unknown, config: unknown, shape: Shape): unknown {
  if (config === undefined) return live;
  if (live === undefined || isLeaf(live, config, shape)) return structuredClone(config);
  if (Array.isArray(config)) {
    const li = indexList(shape, live as unknown[]) as Map<string, unknown>;
    const ci = indexList(shape, config) as Map<string, unknown>;
    const item = shape.item();
    const out: unknown[] = [];
    for (const [el, x] of li) out.push(ci.has(el) ? mergeValue(x, ci.get(el), item) : x);
    for (const [el, x] of ci) if (!li.has(el)) out.push(structuredClone(x));
    return out;
  }
  const out: Obj = { ...(live as Obj) };
  for (const [k, v] of Object.entries(config as Obj)) {
    if (v === null) delete out[k];
    else if (v !== undefined) out[k] = mergeValue(out[k], v, shape.field(k));
  }
  return out;
}

/** `value` without the members of `set` (fields, and keyed items, with all below them). */
export function removeItems(value: unknown, set: FieldSet | undefined, shape: Shape): unknown {
  return walk(() => remove(value, set, shape));
}

function remove(value: unknown, set: FieldSet | undefined, shape: Shape): unknown {
  if (!set || !isContainer(value)) return value;
  if (Array.isArray(value)) {
    if (shape.kind !== 'list' || !indexList(shape, value)) return value;
    const item = shape.item();
    const out: unknown[] = [];
    for (const x of value) {
      const sub = set[itemElement(shape, x) as string];
      if (!sub) out.push(x);
      else if (!isMember(sub)) out.push(remove(x, sub, item));
    }
    return out;
  }
  const out: Obj = { ...value };
  for (const [el, sub] of Object.entries(set)) {
    if (!el.startsWith('f:')) continue;
    const k = el.slice(2);
    if (!(k in out)) continue;
    if (isMember(sub)) delete out[k];
    else out[k] = remove(out[k], sub, shape.field(k));
  }
  return out;
}
