import { createRequire } from 'node:module';
import type { FieldErrors } from '../field-errors.js';
import type { OpenApiSchema } from '../openapi-schema.js';
import type * as Rules from './rules.js';

/**
 * CRD validation rules with CEL loaded on first need: importing the CEL library costs a control
 * plane's start ~150-200 ms, and a cluster needs it only once a CRD has x-kubernetes-validations.
 * Same contract as rules.ts. Loaded with require (Node ≥ 20.19 loads ES modules so) because
 * validation is synchronous.
 */
const load = createRequire(import.meta.url);
let rules: typeof Rules | undefined;
const celRules = (): typeof Rules => (rules ??= load('./rules.js') as typeof Rules);

const hasRulesCache = new WeakMap<object, boolean>();

/** Whether any node of the schema declares x-kubernetes-validations. */
function hasRules(schema: unknown): boolean {
  if (schema === null || typeof schema !== 'object') return false;
  const known = hasRulesCache.get(schema);
  if (known !== undefined) return known;
  const found = Array.isArray(schema) ? schema.some(hasRules) : 'x-kubernetes-validations' in schema || Object.values(schema).some(hasRules);
  hasRulesCache.set(schema, found);
  return found;
}

export type RuleNode = Rules.RuleNode;

export function compileRules(schema: OpenApiSchema, path = '', errs?: FieldErrors): RuleNode | undefined {
  return hasRules(schema) ? celRules().compileRules(schema, path, errs) : undefined;
}

export function evaluateRules(node: RuleNode, obj: unknown, old: unknown, errs: FieldErrors): void {
  celRules().evaluateRules(node, obj, old, errs);
}
