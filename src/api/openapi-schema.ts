/**
 * The subset of OpenAPI v3 schema objects Kubicle produces and reads: built-in kinds' generated
 * schemas (api/generated/schemas.ts) and, later, CustomResourceDefinitions' structural schemas.
 */
export interface OpenApiSchema {
  type?: string;
  format?: string;
  description?: string;
  enum?: unknown[];
  properties?: Record<string, OpenApiSchema>;
  required?: string[];
  items?: OpenApiSchema;
  additionalProperties?: OpenApiSchema | boolean;
  allOf?: OpenApiSchema[];
  oneOf?: OpenApiSchema[];
  anyOf?: OpenApiSchema[];
  $ref?: string;
  default?: unknown;
  nullable?: boolean;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  multipleOf?: number;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  minProperties?: number;
  maxProperties?: number;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-group-version-kind'?: { group: string; version: string; kind: string }[];
  [extension: `x-${string}`]: unknown;
}

/**
 * The schema a property's schema stands for: `$ref`s and the single-element `allOf` upstream
 * wraps described references in are followed through `definitions`; anything else is itself.
 * An unknown reference gives undefined.
 */
export function resolveSchema(s: OpenApiSchema | undefined, definitions: Record<string, OpenApiSchema>): OpenApiSchema | undefined {
  let cur = s;
  for (let hops = 0; cur && hops < 8; hops++) {
    if (cur.allOf?.length === 1 && !cur.properties) cur = cur.allOf[0];
    else if (cur.$ref) cur = definitions[cur.$ref.slice(cur.$ref.lastIndexOf('/') + 1)];
    else return cur;
  }
  return cur;
}
