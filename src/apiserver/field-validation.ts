import { definitions, kindDefinitions } from '../api/generated/schemas.js';
import { isPlainObject, type KubeObject } from '../api/object.js';
import { type OpenApiSchema, resolveSchema } from '../api/openapi-schema.js';
import { groupVersion, type ResourceType } from '../api/resource-type.js';
import { pruneUnknown as pruneCustom } from '../api/structural-schema.js';

/**
 * Finds fields an object has that its kind does not (for fieldValidation Strict and Warn),
 * from the generated schemas. Paths read like upstream's: spec.containers[0].foo.
 */
export interface FieldChecker {
  /**
   * Removes the fields the kind does not have from `obj` (upstream drops them when decoding
   * built-in kinds) and returns their paths, so the caller can refuse (Strict) or warn.
   */
  pruneUnknown(rt: ResourceType, obj: KubeObject): string[];
}

export class SchemaFieldChecker implements FieldChecker {
  pruneUnknown(rt: ResourceType, obj: KubeObject): string[] {
    if (rt.schema) return pruneCustom(rt.schema, obj);
    const def = kindDefinitions[`${groupVersion(rt)}/${rt.kind}`];
    if (!def) return [];
    const out: string[] = [];
    walk(obj, definitions[def], '', out);
    return out;
  }
}

function walk(value: unknown, schema: OpenApiSchema | undefined, path: string, out: string[]): void {
  const s = resolveSchema(schema, definitions);
  if (value === null || value === undefined || !s || s['x-kubernetes-preserve-unknown-fields']) return;
  if (s.items) {
    if (Array.isArray(value)) for (const [i, v] of value.entries()) walk(v, s.items, `${path}[${i}]`, out);
    return;
  }
  if (typeof s.additionalProperties === 'object') {
    if (isPlainObject(value)) for (const [k, v] of Object.entries(value)) walk(v, s.additionalProperties, `${path}[${k}]`, out);
    return;
  }
  if (!s.properties || !isPlainObject(value)) return;
  for (const [k, v] of Object.entries(value)) {
    const p = path ? `${path}.${k}` : k;
    const field = s.properties[k];
    if (field === undefined) {
      out.push(p);
      delete value[k];
    } else walk(v, field, p, out);
  }
}
