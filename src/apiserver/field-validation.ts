import { fieldTypes, kindTypes } from '../api/generated/field-schema.js';
import { isPlainObject, type KubeObject } from '../api/object.js';
import { groupVersion, type ResourceType } from '../api/resource-type.js';

/**
 * Finds fields an object has that its kind does not (for fieldValidation Strict and Warn),
 * from the generated field schema. Paths read like upstream's: spec.containers[0].foo.
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
    const type = kindTypes[`${groupVersion(rt)}/${rt.kind}`];
    if (!type) return [];
    const out: string[] = [];
    walk(obj, type, '', out);
    return out;
  }
}

function walk(value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  if (type.startsWith('[]')) {
    if (Array.isArray(value)) {
      value.forEach((v, i) => {
        walk(v, type.slice(2), `${path}[${i}]`, out);
      });
    }
    return;
  }
  if (type.startsWith('{}')) {
    if (isPlainObject(value)) for (const [k, v] of Object.entries(value)) walk(v, type.slice(2), `${path}[${k}]`, out);
    return;
  }
  const fields = fieldTypes[type];
  if (!fields || !isPlainObject(value)) return;
  for (const [k, v] of Object.entries(value)) {
    const p = path ? `${path}.${k}` : k;
    const t = fields[k];
    if (t === undefined) {
      out.push(p);
      delete value[k];
    } else if (t) walk(v, t, p, out);
  }
}
