import type { FieldErrors } from './field-errors.js';
import { deepClone, deepEqual, isPlainObject } from './object.js';
import type { OpenApiSchema } from './openapi-schema.js';
import { re2 } from './re2.js';

/**
 * CustomResourceDefinition schemas: checking that a schema is structural and safe to use
 * (when a CRD is written), then validating, defaulting and pruning custom objects with it.
 * Patterns are RE2, as upstream's, and matched in linear time, so no schema can make a match
 * take long. Limits keep a hostile schema from costing the server more than its size.
 */
export const schemaLimits = { depth: 64, enumValues: 2000, nodes: 50_000 };

const types = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);
const allowedKeys = new Set([
  'type',
  'format',
  'title',
  'description',
  'default',
  'nullable',
  'enum',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minProperties',
  'maxProperties',
  'required',
  'properties',
  'additionalProperties',
  'items',
  'allOf',
  'anyOf',
  'oneOf',
  'not',
  'example',
  'externalDocs',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-validations',
]);

/**
 * Checks a CRD version's openAPIV3Schema at `path`: structural (every node typed, object at
 * the root, no $ref), within the limits, patterns valid RE2, defaults valid for their schema.
 */
export function checkSchema(schema: unknown, path: string, errs: FieldErrors): void {
  if (!isPlainObject(schema)) {
    errs.required(path, 'schemas are required');
    return;
  }
  const s = schema as OpenApiSchema;
  if (s.type !== 'object') errs.add('FieldValueInvalid', `${path}.type`, s.type ? `Invalid value: "${s.type}": must be object at the root` : 'Required value: must not be empty at the root');
  const budget = { nodes: 0 };
  checkNode(s, path, 0, errs, budget);
}

function checkNode(s: OpenApiSchema, path: string, depth: number, errs: FieldErrors, budget: { nodes: number }): void {
  if (++budget.nodes > schemaLimits.nodes) {
    if (budget.nodes === schemaLimits.nodes + 1) errs.forbidden(path, `the schema has more than ${schemaLimits.nodes} nodes`);
    return;
  }
  if (depth > schemaLimits.depth) {
    errs.forbidden(path, `must not be nested deeper than ${schemaLimits.depth} levels`);
    return;
  }
  for (const k of Object.keys(s)) {
    if (k === '$ref') errs.forbidden(`${path}.$ref`, '$ref is not supported');
    else if (!allowedKeys.has(k)) errs.forbidden(`${path}.${k}`, `${k} is not supported`);
  }
  const open = s['x-kubernetes-preserve-unknown-fields'] === true || s['x-kubernetes-int-or-string'] === true;
  if (s.type === undefined && !open) errs.required(`${path}.type`, 'must not be empty for specified object fields');
  else if (s.type !== undefined && !types.has(s.type)) errs.notSupported(`${path}.type`, s.type, [...types]);
  if (s['x-kubernetes-int-or-string'] && s.type !== undefined) errs.forbidden(`${path}.type`, 'must be empty to be int-or-string');
  if (s.properties !== undefined && s.additionalProperties !== undefined && s.additionalProperties !== false) {
    errs.forbidden(`${path}.additionalProperties`, 'additionalProperties and properties are mutual exclusive');
  }
  if (s.properties !== undefined && s.type !== undefined && s.type !== 'object') errs.forbidden(`${path}.properties`, 'must only be used with type object');
  if (s.items !== undefined && s.type !== 'array') errs.forbidden(`${path}.items`, 'must only be used with type array');
  if (s.type === 'array' && s.items === undefined) errs.required(`${path}.items`, 'must be specified');
  if (s.enum !== undefined) {
    if (!Array.isArray(s.enum)) errs.invalid(`${path}.enum`, s.enum, 'must be a list');
    else if (s.enum.length > schemaLimits.enumValues) errs.tooMany(`${path}.enum`, s.enum.length, schemaLimits.enumValues);
  }
  checkPattern(s.pattern, path, errs);
  if (s.required !== undefined && !(Array.isArray(s.required) && s.required.every((r) => typeof r === 'string'))) errs.invalid(`${path}.required`, s.required, 'must be a list of strings');
  const lt = s['x-kubernetes-list-type'];
  if (lt !== undefined && !['atomic', 'set', 'map'].includes(String(lt))) errs.notSupported(`${path}.x-kubernetes-list-type`, lt, ['atomic', 'set', 'map']);
  if (lt === 'map' && !(Array.isArray(s['x-kubernetes-list-map-keys']) && (s['x-kubernetes-list-map-keys'] as unknown[]).length)) {
    errs.required(`${path}.x-kubernetes-list-map-keys`, 'must not be empty if x-kubernetes-list-type is map');
  }
  if (isPlainObject(s.properties)) {
    for (const [k, v] of Object.entries(s.properties)) {
      if (isPlainObject(v)) checkNode(v, `${path}.properties[${k}]`, depth + 1, errs, budget);
      else errs.invalid(`${path}.properties[${k}]`, v, 'must be a schema');
    }
  } else if (s.properties !== undefined) errs.invalid(`${path}.properties`, s.properties, 'must be an object');
  if (isPlainObject(s.items)) checkNode(s.items, `${path}.items`, depth + 1, errs, budget);
  else if (s.items !== undefined) errs.forbidden(`${path}.items`, 'items must be a schema object and not an array');
  if (isPlainObject(s.additionalProperties)) checkNode(s.additionalProperties, `${path}.additionalProperties`, depth + 1, errs, budget);
  for (const key of ['allOf', 'anyOf', 'oneOf'] as const) {
    const list = s[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) errs.invalid(`${path}.${key}`, list, 'must be a list');
    // Value validations only (structural rule): these may not declare types of their own, but
    // for the integer and string alternatives of an int-or-string (as controller-gen writes them).
    else for (const [i, sub] of list.entries()) checkJunctor(sub, `${path}.${key}[${i}]`, depth + 1, errs, budget, s['x-kubernetes-int-or-string'] === true);
  }
  if (s.default !== undefined) {
    if (depth === 0) errs.forbidden(`${path}.default`, 'must not be set at the root');
    else {
      const d = new FieldFailures();
      validateValue(s, deepClone(s.default), `${path}.default`, d);
      for (const c of d.list) errs.invalid(`${path}.default`, s.default, c.message);
    }
  }
}

/** A schema's pattern, if any, must be a string that compiles as RE2. */
function checkPattern(pattern: unknown, path: string, errs: FieldErrors): void {
  if (pattern === undefined) return;
  if (typeof pattern !== 'string') {
    errs.invalid(`${path}.pattern`, pattern, 'must be a string');
    return;
  }
  try {
    re2(pattern);
  } catch (e) {
    errs.invalid(`${path}.pattern`, pattern, `must be a valid regular expression, but isn't: ${(e as Error).message}`);
  }
}

function checkJunctor(s: unknown, path: string, depth: number, errs: FieldErrors, budget: { nodes: number }, intOrString = false): void {
  if (!isPlainObject(s)) {
    errs.invalid(path, s, 'must be a schema');
    return;
  }
  if (depth > schemaLimits.depth || ++budget.nodes > schemaLimits.nodes) {
    errs.forbidden(path, `must not be nested deeper than ${schemaLimits.depth} levels`);
    return;
  }
  for (const k of ['type', 'additionalProperties', 'default', 'nullable', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource', 'x-kubernetes-int-or-string']) {
    if (!(k in s)) continue;
    if (k === 'type' && intOrString && (s.type === 'integer' || s.type === 'string')) continue;
    errs.forbidden(`${path}.${k}`, 'must be empty to be structural');
  }
  const sub = s as OpenApiSchema;
  if (isPlainObject(sub.properties)) for (const [k, v] of Object.entries(sub.properties)) checkJunctor(v, `${path}.properties[${k}]`, depth + 1, errs, budget);
  if (isPlainObject(sub.items)) checkJunctor(sub.items, `${path}.items`, depth + 1, errs, budget);
  checkPattern(sub.pattern, path, errs);
}

/** Failures of one value against a schema, before they are given to a FieldErrors. */
class FieldFailures {
  readonly list: { reason: string; field: string; message: string }[] = [];
  add(reason: string, field: string, message: string): void {
    this.list.push({ reason, field, message });
  }
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function typeMatches(type: string, v: unknown): boolean {
  const t = typeOf(v);
  return t === type || (type === 'number' && t === 'integer');
}

function validateValue(s: OpenApiSchema, v: unknown, path: string, out: FieldFailures): void {
  const body = (msg: string) => `${path} in body ${msg}`;
  if (v === null) {
    if (!s.nullable && s.type !== undefined) out.add('FieldValueInvalid', path, `Invalid value: "null": ${body(`must be of type ${s.type}: "null"`)}`);
    return;
  }
  if (s['x-kubernetes-int-or-string']) {
    if (!(typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v)))) {
      out.add('FieldValueInvalid', path, `Invalid value: "${typeOf(v)}": ${body(`must be of type integer or string: "${typeOf(v)}"`)}`);
      return;
    }
  } else if (s.type !== undefined && !typeMatches(s.type, v)) {
    out.add('FieldValueInvalid', path, `Invalid value: "${typeOf(v)}": ${body(`must be of type ${s.type}: "${typeOf(v)}"`)}`);
    return;
  }
  if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, v))) {
    out.add('FieldValueNotSupported', path, `Unsupported value: ${JSON.stringify(v)}: supported values: ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`);
  }
  if (typeof v === 'string') {
    const len = [...v].length;
    if (typeof s.maxLength === 'number' && len > s.maxLength) out.add('FieldValueTooLong', path, `Too long: may not be more than ${s.maxLength} bytes`);
    if (typeof s.minLength === 'number' && len < s.minLength) out.add('FieldValueInvalid', path, `Invalid value: ${JSON.stringify(v)}: ${body(`should be at least ${s.minLength} chars long`)}`);
    if (typeof s.pattern === 'string' && !re2(s.pattern).matcher(v).find()) out.add('FieldValueInvalid', path, `Invalid value: ${JSON.stringify(v)}: ${body(`should match '${s.pattern}'`)}`);
  }
  if (typeof v === 'number') {
    const num = (cmp: string, n: unknown) => out.add('FieldValueInvalid', path, `Invalid value: ${v}: ${body(`should be ${cmp} ${n}`)}`);
    if (typeof s.maximum === 'number' && (s.exclusiveMaximum ? v >= s.maximum : v > s.maximum)) num(s.exclusiveMaximum ? 'less than' : 'less than or equal to', s.maximum);
    if (typeof s.minimum === 'number' && (s.exclusiveMinimum ? v <= s.minimum : v < s.minimum)) num(s.exclusiveMinimum ? 'greater than' : 'greater than or equal to', s.minimum);
    if (typeof s.multipleOf === 'number' && s.multipleOf > 0 && !Number.isInteger(v / s.multipleOf)) num('a multiple of', s.multipleOf);
  }
  if (Array.isArray(v)) {
    if (typeof s.maxItems === 'number' && v.length > s.maxItems) out.add('FieldValueTooMany', path, `Too many: ${v.length}: must have at most ${s.maxItems} items`);
    if (typeof s.minItems === 'number' && v.length < s.minItems) out.add('FieldValueInvalid', path, `Invalid value: ${v.length}: ${body(`should have at least ${s.minItems} items`)}`);
    if (s.uniqueItems || s['x-kubernetes-list-type'] === 'set') {
      const seen = new Set<string>();
      v.forEach((x, i) => {
        const key = JSON.stringify(x);
        if (seen.has(key)) out.add('FieldValueDuplicate', `${path}[${i}]`, `Duplicate value: ${key}`);
        seen.add(key);
      });
    }
    if (s['x-kubernetes-list-type'] === 'map' && Array.isArray(s['x-kubernetes-list-map-keys'])) {
      const keys = s['x-kubernetes-list-map-keys'] as string[];
      const seen = new Set<string>();
      v.forEach((x, i) => {
        const key = JSON.stringify(keys.map((k) => (isPlainObject(x) ? x[k] : undefined)));
        if (seen.has(key)) out.add('FieldValueDuplicate', `${path}[${i}]`, `Duplicate value: ${JSON.stringify(Object.fromEntries(keys.map((k) => [k, isPlainObject(x) ? x[k] : undefined])))}`);
        seen.add(key);
      });
    }
    if (s.items) for (const [i, x] of v.entries()) validateValue(s.items, x, `${path}[${i}]`, out);
  }
  if (isPlainObject(v)) {
    const n = Object.keys(v).length;
    if (typeof s.maxProperties === 'number' && n > s.maxProperties) out.add('FieldValueTooMany', path, `Too many: ${n}: must have at most ${s.maxProperties} items`);
    if (typeof s.minProperties === 'number' && n < s.minProperties) out.add('FieldValueInvalid', path, `Invalid value: ${n}: ${body(`should have at least ${s.minProperties} properties`)}`);
    for (const r of s.required ?? []) if (v[r] === undefined) out.add('FieldValueRequired', path ? `${path}.${r}` : r, 'Required value');
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      const p = path ? `${path}.${k}` : k;
      const sub = s.properties?.[k] ?? (isPlainObject(s.additionalProperties) ? (s.additionalProperties as OpenApiSchema) : undefined);
      if (sub) validateValue(sub, x, p, out);
    }
  }
  for (const sub of s.allOf ?? []) validateValue(sub, v, path, out);
  if (s.anyOf?.length) {
    const tries = s.anyOf.map((sub) => {
      const f = new FieldFailures();
      validateValue(sub, v, path, f);
      return f.list.length;
    });
    if (!tries.includes(0)) out.add('FieldValueInvalid', path, `Invalid value: ${JSON.stringify(v)}: ${body('must validate at least one schema (anyOf)')}`);
  }
  if (s.oneOf?.length) {
    const passed = s.oneOf.filter((sub) => {
      const f = new FieldFailures();
      validateValue(sub, v, path, f);
      return f.list.length === 0;
    }).length;
    if (passed !== 1) out.add('FieldValueInvalid', path, `Invalid value: ${JSON.stringify(v)}: ${body('must validate one and only one schema (oneOf)')}`);
  }
}

/** Validates a custom object (apiVersion, kind and metadata are the store's) against its schema. */
export function validateObject(schema: OpenApiSchema, obj: Record<string, unknown>, errs: FieldErrors): void {
  const out = new FieldFailures();
  const { apiVersion: _a, kind: _k, metadata: _m, ...rest } = obj;
  const root: OpenApiSchema = { ...schema, properties: { ...schema.properties } };
  for (const k of ['apiVersion', 'kind', 'metadata']) delete root.properties![k];
  root.required = (schema.required ?? []).filter((r) => r !== 'apiVersion' && r !== 'kind' && r !== 'metadata');
  validateValue(root, rest, '', out);
  for (const f of out.list) errs.add(f.reason, f.field, f.message);
}

/**
 * Fills `default`s in place, as upstream does after pruning: a property absent from an object
 * gets its schema's default; nested objects and list items are filled too.
 */
export function applyDefaults(s: OpenApiSchema | undefined, v: unknown): void {
  if (!s) return;
  if (isPlainObject(v)) {
    for (const [k, sub] of Object.entries(s.properties ?? {})) {
      if (v[k] === undefined && sub.default !== undefined) v[k] = deepClone(sub.default);
      if (v[k] !== undefined) applyDefaults(sub, v[k]);
    }
    if (isPlainObject(s.additionalProperties)) for (const x of Object.values(v)) applyDefaults(s.additionalProperties as OpenApiSchema, x);
  } else if (Array.isArray(v) && s.items) for (const x of v) applyDefaults(s.items, x);
}

/**
 * Removes fields the schema does not know, in place, and returns their paths (for strict field
 * validation). x-kubernetes-preserve-unknown-fields keeps a subtree; an embedded resource keeps
 * its apiVersion, kind and metadata. The object root's apiVersion, kind and metadata are kept.
 */
export function pruneUnknown(s: OpenApiSchema, obj: Record<string, unknown>): string[] {
  const out: string[] = [];
  pruneNode(s, obj, '', out, true);
  return out;
}

function pruneNode(s: OpenApiSchema | undefined, v: unknown, path: string, out: string[], embedded: boolean): void {
  if (!s) return;
  if (Array.isArray(v)) {
    if (s.items) for (const [i, x] of v.entries()) pruneNode(s.items, x, `${path}[${i}]`, out, s.items['x-kubernetes-embedded-resource'] === true);
    return;
  }
  if (!isPlainObject(v)) return;
  if (isPlainObject(s.additionalProperties)) {
    const sub = s.additionalProperties as OpenApiSchema;
    for (const [k, x] of Object.entries(v)) pruneNode(sub, x, `${path}[${k}]`, out, sub['x-kubernetes-embedded-resource'] === true);
    return;
  }
  const keepUnknown = s['x-kubernetes-preserve-unknown-fields'] === true || s.additionalProperties === true;
  for (const [k, x] of Object.entries(v)) {
    const p = path ? `${path}.${k}` : k;
    // An object's own apiVersion, kind and metadata are the API's to check, whatever the schema says of them.
    if (embedded && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) continue;
    const sub = s.properties?.[k];
    if (sub) pruneNode(sub, x, p, out, sub['x-kubernetes-embedded-resource'] === true);
    else if (!keepUnknown) {
      out.push(p);
      delete v[k];
    }
  }
}
