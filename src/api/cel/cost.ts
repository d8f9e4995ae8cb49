import type { OpenApiSchema } from '../openapi-schema.js';
import type { Expr } from './environment.js';
import { unescapeProperty } from './values.js';

/**
 * A static upper bound on what a rule costs, in the spirit of cel-go's estimator that upstream
 * uses to refuse CRDs: every node costs 1, string work costs a tenth of a unit per character, and
 * a comprehension costs its body times the most elements its range can hold. Sizes come from the
 * schema's maxLength, maxItems and maxProperties; where none is set, from what fits in one request
 * (which is why upstream asks CRD authors for those bounds, and so do we). The bound is what keeps
 * a hostile rule from pinning the API server: rules are evaluated synchronously.
 */

/** What a value may be at most: its schema where known, and its size (characters, elements or entries). */
export interface Bound {
  cost: number;
  size: number;
  schema?: OpenApiSchema;
}

const tenth = (n: number) => Math.ceil(0.1 * n);

/** Functions that walk a string (or two) once. */
const stringWalks = new Set(['lowerAscii', 'upperAscii', 'trim', 'reverse', 'quote', 'substring', 'charAt', 'format', 'join', 'string', 'bytes']);
/** Functions that compare or search one string against another: cel-go charges the product. */
const stringSearches = new Set(['matches', 'contains', 'startsWith', 'endsWith', 'find', 'findAll', 'replace', 'split']);
/** List functions that walk the list once. */
const listWalks = new Set(['isSorted', 'sum', 'min', 'max', '@in']);

export class CostEstimator {
  constructor(private readonly maxBytes: number) {}

  /** The most elements, characters or entries a value under `s` can have in one request. */
  maxSize(s: OpenApiSchema | undefined): number {
    if (!s) return this.maxBytes;
    if (s.type === 'string') return s.maxLength ?? this.maxBytes;
    if (s.type === 'array') return s.maxItems ?? Math.floor(this.maxBytes / this.minSize(s.items));
    if (s.properties && !s.additionalProperties) return Object.keys(s.properties).length;
    if (typeof s.additionalProperties === 'object') return s.maxProperties ?? Math.floor(this.maxBytes / (this.minSize(s.additionalProperties) + 4));
    return this.maxBytes;
  }

  /** The fewest bytes a value under `s` takes in a JSON list, with its comma. */
  minSize(s: OpenApiSchema | undefined): number {
    switch (s?.type) {
      case 'string':
      case 'object':
      case 'array':
        return 3;
      case 'boolean':
        return 5;
      default:
        return 2;
    }
  }

  /** The bound of `e`, with the variables in `scope`. */
  estimate(e: Expr, scope: Map<string, Bound>): Bound {
    const k = e.exprKind;
    switch (k.case) {
      case 'constExpr': {
        const c = k.value.constantKind;
        return { cost: 0, size: c.case === 'stringValue' ? c.value.length : c.case === 'bytesValue' ? c.value.length : 0 };
      }
      case 'identExpr': {
        const v = scope.get(k.value.name);
        return { cost: 1, size: v?.size ?? this.maxBytes, schema: v?.schema };
      }
      case 'selectExpr': {
        const op = k.value.operand ? this.estimate(k.value.operand, scope) : { cost: 0, size: 0 };
        const child = childSchema(op.schema, k.value.field);
        return { cost: op.cost + 1, size: this.maxSize(child), schema: child };
      }
      case 'callExpr': {
        const parts = [...(k.value.target ? [k.value.target] : []), ...k.value.args].map((x) => this.estimate(x, scope));
        const base = parts.reduce((n, p) => n + p.cost, 1);
        const [a = 0, b = 0] = parts.map((p) => p.size);
        const fn = k.value.function;
        if (stringSearches.has(fn)) return { cost: base + tenth(a) * Math.max(1, tenth(b)), size: a };
        if (stringWalks.has(fn)) return { cost: base + tenth(a + b), size: a + b };
        if (listWalks.has(fn)) return { cost: base + (fn === '@in' ? b : a), size: 1 };
        if (fn === 'indexOf' || fn === 'lastIndexOf') return { cost: base + a, size: 1 };
        if (fn === '_+_') return { cost: base + tenth(a + b), size: a + b };
        if (['_==_', '_!=_', '_<_', '_<=_', '_>_', '_>=_'].includes(fn)) return { cost: base + tenth(Math.min(a, b)), size: 1 };
        return { cost: base, size: 1 };
      }
      case 'listExpr': {
        const parts = k.value.elements.map((x) => this.estimate(x, scope));
        return { cost: parts.reduce((n, p) => n + p.cost, 1), size: parts.length };
      }
      case 'structExpr': {
        const parts = k.value.entries.flatMap((x) => [x.keyKind.case === 'mapKey' ? x.keyKind.value : undefined, x.value]).filter((x): x is Expr => !!x);
        return { cost: parts.reduce((n, p) => n + this.estimate(p, scope).cost, 1), size: k.value.entries.length };
      }
      case 'comprehensionExpr': {
        const c = k.value;
        const range = c.iterRange ? this.estimate(c.iterRange, scope) : { cost: 0, size: 0 };
        const element = elementSchema(range.schema);
        const inner = new Map(scope);
        inner.set(c.iterVar, { cost: 0, size: this.maxSize(element), schema: element });
        const init = c.accuInit ? this.estimate(c.accuInit, scope) : { cost: 0, size: 0 };
        // A macro that builds a list (map, filter) grows its accumulator by one element per step.
        const accu: Bound = { cost: 0, size: Math.max(init.size, init.size === 0 ? range.size : 0) };
        inner.set(c.accuVar, accu);
        const body = (c.loopCondition ? this.estimate(c.loopCondition, inner).cost : 0) + (c.loopStep ? this.estimate(c.loopStep, inner).cost : 0);
        const result = c.result ? this.estimate(c.result, inner) : { cost: 0, size: 0 };
        return { cost: range.cost + init.cost + range.size * body + result.cost, size: result.size };
      }
      default:
        return { cost: 1, size: this.maxBytes };
    }
  }
}

/** The schema of field `field` (a CEL name) of a value under `s`, if the schema says. */
export function childSchema(s: OpenApiSchema | undefined, field: string): OpenApiSchema | undefined {
  if (!s) return undefined;
  const prop = s.properties?.[unescapeProperty(field)];
  if (prop) return prop;
  return typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
}

/** What a comprehension over a value under `s` walks: a list's items, or a map's keys. */
function elementSchema(s: OpenApiSchema | undefined): OpenApiSchema | undefined {
  if (s?.type === 'array') return s.items;
  if (s?.type === 'object') return { type: 'string' };
  return undefined;
}

/**
 * `s` narrowed to the value `v` it describes: every string, list and map bounded by its actual
 * size (the widest of a list's items or a map's values). Estimating a rule against it gives its
 * cost on this value, which is how rules too costly in the worst case are held to the per-call
 * limit at run time.
 */
export function sizedSchema(s: OpenApiSchema | undefined, v: unknown): OpenApiSchema {
  const base: OpenApiSchema = { ...s };
  if (typeof v === 'string') return { ...base, type: base.type ?? 'string', maxLength: v.length };
  if (Array.isArray(v)) {
    let items: OpenApiSchema | undefined;
    // Strings and scalars are sized in one pass: lists of them are the long ones.
    let longest = -1;
    for (const x of v) {
      if (typeof x === 'string') longest = Math.max(longest, x.length);
      else if (x !== null && typeof x === 'object') items = widest(items, sizedSchema(s?.items, x));
    }
    if (longest >= 0) items = widest(items, { ...s?.items, type: s?.items?.type ?? 'string', maxLength: longest });
    return { ...base, type: 'array', maxItems: v.length, items: items ?? s?.items };
  }
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v);
    const properties: Record<string, OpenApiSchema> = {};
    let additional: OpenApiSchema | undefined;
    const ap = typeof s?.additionalProperties === 'object' ? s.additionalProperties : undefined;
    for (const [k, x] of entries) {
      if (s?.properties?.[k]) properties[k] = sizedSchema(s.properties[k], x);
      else additional = widest(additional, sizedSchema(ap, x));
    }
    return { ...base, type: 'object', properties: s?.properties ? properties : undefined, additionalProperties: additional ?? false, maxProperties: entries.length };
  }
  return base;
}

/** The schema bounding both `a` and `b` (of one shape): the larger of each size, property by property. */
function widest(a: OpenApiSchema | undefined, b: OpenApiSchema): OpenApiSchema {
  if (!a) return b;
  const max = (x?: number, y?: number) => (x === undefined || y === undefined ? undefined : Math.max(x, y));
  const out: OpenApiSchema = { ...a, maxLength: max(a.maxLength, b.maxLength), maxItems: max(a.maxItems, b.maxItems), maxProperties: max(a.maxProperties, b.maxProperties) };
  if (a.items && b.items) out.items = widest(a.items, b.items);
  if (a.properties || b.properties) {
    out.properties = { ...a.properties };
    for (const [k, x] of Object.entries(b.properties ?? {})) out.properties[k] = widest(a.properties?.[k], x);
  }
  if (typeof a.additionalProperties === 'object' && typeof b.additionalProperties === 'object') out.additionalProperties = widest(a.additionalProperties, b.additionalProperties);
  else if (typeof b.additionalProperties === 'object') out.additionalProperties = b.additionalProperties;
  return out;
}
