import { compileRules, evaluateRules } from '../cel/lazy.js';
import { evaluateJsonPath, parseJsonPath } from '../jsonpath.js';
import type { KubeObject } from '../object.js';
import type { OpenApiSchema } from '../openapi-schema.js';
import type { Column, ResourceType } from '../resource-type.js';
import { applyDefaults, validateObject } from '../structural-schema.js';
import { age } from '../time.js';
import { nameColumn } from './columns.js';

// biome-ignore lint/suspicious/noExplicitAny: CRD specs are untyped JSON, validated before use
type J = Record<string, any>;

/** A printer column's cell from the first value its path reaches, typed as upstream's table convertor does. */
function cellOf(type: string, value: unknown): string | number | boolean | null {
  if (value === undefined || value === null) return null;
  switch (type) {
    case 'integer':
      return typeof value === 'number' ? Math.trunc(value) : null;
    case 'number':
      return typeof value === 'number' ? value : null;
    case 'boolean':
      return typeof value === 'boolean' ? value : null;
    case 'date':
      return typeof value === 'string' ? (Number.isNaN(Date.parse(value)) ? '<invalid>' : age(value)) : null;
    default:
      return typeof value === 'string' ? value : JSON.stringify(value);
  }
}

const defaultAgeColumn: J = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

function printerColumns(defs: J[] | undefined): Column[] {
  return (defs?.length ? defs : [defaultAgeColumn]).map((c) => {
    const steps = parseJsonPath(c.jsonPath);
    return {
      name: c.name,
      type: c.type,
      format: c.format ?? '',
      description: c.description || `Custom resource definition column (in JSONPath format): ${c.jsonPath}`,
      priority: c.priority ? 1 : 0,
      cell: (o: KubeObject) => cellOf(c.type, evaluateJsonPath(steps, o)[0]),
    } as Column;
  });
}

/** ".spec.replicas" → "spec.replicas" (scale paths are simple paths of fields). */
const dotted = (p: string) => p.replace(/^\./, '');

/**
 * The resources a CustomResourceDefinition serves: one per served version, all stored in the
 * storage version (conversion strategy None: only apiVersion changes). The CRD must be valid.
 */
export function customResourceTypes(crd: KubeObject): ResourceType[] {
  const spec = crd.spec as J;
  const names = spec.names as J;
  const storage = (spec.versions as J[]).find((v) => v.storage)?.name as string;
  return (spec.versions as J[])
    .filter((v) => v.served)
    .map((v) => {
      const schema = v.schema?.openAPIV3Schema as OpenApiSchema;
      const scale = v.subresources?.scale as J | undefined;
      return {
        group: spec.group,
        version: v.name,
        kind: names.kind,
        plural: names.plural,
        singular: names.singular || String(names.kind).toLowerCase(),
        namespaced: spec.scope === 'Namespaced',
        shortNames: names.shortNames,
        categories: names.categories,
        nameRule: 'subdomain',
        storage: `${spec.group}/${names.plural}`,
        toStorage: (o: KubeObject) => ({ ...o, apiVersion: `${spec.group}/${storage}`, kind: names.kind }),
        status: v.subresources?.status !== undefined,
        scale: scale && { specReplicas: dotted(scale.specReplicasPath), statusReplicas: dotted(scale.statusReplicasPath), selector: dotted(scale.labelSelectorPath ?? ''), selectorIsString: true },
        generation: true,
        defaults: (o: KubeObject) => applyDefaults(schema, o),
        validate: (o: KubeObject, errs, old) => {
          validateObject(schema, o, errs);
          // Rules see only values the schema admits: they run once the object passes it.
          const rules = errs.empty ? compileRules(schema) : undefined;
          if (rules) evaluateRules(rules, o, old, errs);
        },
        columns: [nameColumn, ...printerColumns(v.additionalPrinterColumns)],
        schema,
        custom: true,
      } satisfies ResourceType;
    });
}
