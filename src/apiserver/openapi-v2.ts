import type { OpenApiSchema } from '../api/openapi-schema.js';

/**
 * The Swagger 2.0 document (/openapi/v2) made from the served v3 documents, as upstream
 * publishes both from one source: every definition of every group-version, and every path's
 * operations with their media types and parameters. kubectl 1.27–1.28 take from it the patch
 * metadata for client-side apply (through the patch operation's `consumes` and the definitions'
 * x-kubernetes-patch-*), whether the server validates fields (the patch operation's
 * fieldValidation parameter) and `explain --output plaintext-openapiv2`. kubectl parses every
 * definition before using any (k8s.io/kube-openapi util/proto), so each schema is brought to
 * the shapes that parser accepts: a reference carries no type or properties, an array has
 * exactly one items schema, and one type at most.
 */
export interface V3Document {
  paths: Record<string, Record<string, V3Operation>>;
  components: { schemas: Record<string, OpenApiSchema> };
}

interface V3Operation {
  operationId: string;
  parameters?: { name: string; in: string; description?: string }[];
  requestBody?: { content: Record<string, { schema: OpenApiSchema }> };
  responses?: Record<string, { description: string; content?: Record<string, { schema: OpenApiSchema }> }>;
  [extension: `x-${string}`]: unknown;
}

type Obj = Record<string, unknown>;

const v3Ref = '#/components/schemas/';

function ref(r: string): string {
  return r.startsWith(v3Ref) ? `#/definitions/${r.slice(v3Ref.length)}` : r;
}

function extensions(s: object, into: Obj): void {
  for (const [k, v] of Object.entries(s)) if (k.startsWith('x-')) into[k] = v;
}

const copied = ['format', 'description', 'default', 'enum', 'required', 'pattern', 'maxLength', 'minLength', 'maximum', 'minimum', 'exclusiveMaximum', 'exclusiveMinimum', 'multipleOf', 'maxItems', 'minItems', 'uniqueItems', 'maxProperties', 'minProperties'] as const;

/** One v3 schema as v2: references rewritten, the wrappers and keywords v2 lacks dropped. */
export function schemaV2(s: OpenApiSchema): Obj {
  const out: Obj = {};
  const target = s.$ref ?? (s.allOf?.length === 1 && !s.properties ? s.allOf[0].$ref : undefined);
  if (target) {
    // Upstream writes a described reference as $ref beside its description.
    out.$ref = ref(target);
    if (s.description) out.description = s.description;
    extensions(s, out);
    return out;
  }
  if (s['x-kubernetes-int-or-string']) {
    out.type = 'string';
    out.format = 'int-or-string';
  } else if (s.type) out.type = s.type;
  else if ([...(s.oneOf ?? []), ...(s.anyOf ?? [])].some((x) => x.type === 'string')) out.type = 'string'; // Quantity: a string or a number, published as string
  for (const k of copied) if (s[k] !== undefined && out[k] === undefined) out[k] = s[k];
  if (s.items) out.items = schemaV2(s.items);
  else if (s.type === 'array') out.items = {};
  if (s.properties) out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, schemaV2(v)]));
  if (s.additionalProperties !== undefined) out.additionalProperties = typeof s.additionalProperties === 'boolean' ? s.additionalProperties : schemaV2(s.additionalProperties);
  extensions(s, out);
  return out;
}

const produces = ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf'];

function operationV2(op: V3Operation, verb: string): Obj {
  const out: Obj = { operationId: op.operationId, produces, schemes: ['https'] };
  const params: Obj[] = [];
  const body = op.requestBody ? Object.values(op.requestBody.content)[0]?.schema : undefined;
  if (op.requestBody) {
    out.consumes = verb === 'patch' ? Object.keys(op.requestBody.content) : ['*/*'];
    params.push({ name: 'body', in: 'body', required: true, schema: body ? schemaV2(body) : {} });
  }
  for (const p of op.parameters ?? []) params.push({ name: p.name, in: p.in, description: p.description, type: 'string', uniqueItems: true });
  if (params.length) out.parameters = params;
  const ok = op.responses?.['200'];
  const schema = ok?.content ? Object.values(ok.content)[0]?.schema : undefined;
  out.responses = { '200': { description: ok?.description ?? 'OK', ...(schema ? { schema: schemaV2(schema) } : {}) } };
  extensions(op, out);
  return out;
}

/** The v2 document of every served group-version's v3 document. */
export function swaggerDocument(docs: V3Document[], title: string, version: string): Obj {
  const paths: Obj = {};
  const definitions: Obj = {};
  for (const doc of docs) {
    for (const [p, item] of Object.entries(doc.paths)) {
      paths[p] = Object.fromEntries(Object.entries(item).map(([verb, op]) => [verb, operationV2(op, verb)]));
    }
    for (const [name, s] of Object.entries(doc.components.schemas)) {
      // A definition shared by several group-versions (ObjectMeta) is the same in each.
      definitions[name] ??= schemaV2(s);
    }
  }
  const sorted = Object.fromEntries(Object.keys(definitions).sort().map((k) => [k, definitions[k]]));
  return { swagger: '2.0', info: { title, version }, paths, definitions: sorted };
}
