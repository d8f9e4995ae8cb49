import { createHash } from 'node:crypto';
import { definitions, kindDefinitions } from '../api/generated/schemas.js';
import type { OpenApiSchema } from '../api/openapi-schema.js';
import type { Registry } from '../api/registry.js';
import { groupVersion, type ResourceType } from '../api/resource-type.js';
import { encodeGnostic } from './gnostic.js';
import { swaggerDocument, type V3Document } from './openapi-v2.js';

/**
 * OpenAPI documents (ADR 0016, 0021). v3: one document per group-version, its paths carrying
 * x-kubernetes-group-version-kind and a fieldValidation parameter (so kubectl 1.29+ trusts
 * server-side validation), and components.schemas holding the generated schemas of its kinds
 * and everything they refer to, with descriptions, for `kubectl explain`. Built-in kinds'
 * schemas carry upstream's patch metadata, so their patch operations list strategic merge
 * patch, and kubectl computes client-side apply patches from them. v2 is the same made into one
 * Swagger document (openapi-v2.ts), served as gnostic protobuf (gnostic.ts) or JSON.
 */
export const openapiV2ContentType = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

const queryParam = (name: string, description: string) => ({ name, in: 'query', description, schema: { type: 'string' }, uniqueItems: true });
const fieldValidation = queryParam('fieldValidation', 'fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict');
const dryRun = queryParam('dryRun', 'When present, indicates that modifications should not be persisted.');
const fieldManager = queryParam('fieldManager', 'fieldManager is a name associated with the actor or entity that is making these changes.');

const patchTypes = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml'];
// Custom resources take no strategic merge patch: their schemas have no merge keys.
const customPatchTypes = patchTypes.filter((t) => !t.startsWith('application/strategic'));

function operations(rt: ResourceType, schema: string, item: boolean) {
  const gvk = { group: rt.group, version: rt.version, kind: rt.kind };
  const ref = { $ref: `#/components/schemas/${schema}` };
  const json = { 'application/json': { schema: ref } };
  const op = (action: string, id: string, extra: object = {}) => ({
    operationId: `${id}${rt.kind}`,
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk,
    responses: { '200': { description: 'OK', content: json } },
    ...extra,
  });
  if (!item) {
    if (rt.verbs && !rt.verbs.includes('list')) return { post: op('post', 'create', { parameters: [dryRun, fieldManager, fieldValidation], requestBody: { content: json, required: true } }) };
    return {
      get: op('list', 'list'),
      post: op('post', 'create', { parameters: [dryRun, fieldManager, fieldValidation], requestBody: { content: json, required: true } }),
      delete: op('deletecollection', 'deleteCollection'),
    };
  }
  return {
    get: op('get', 'read'),
    put: op('put', 'replace', { parameters: [dryRun, fieldManager, fieldValidation], requestBody: { content: json, required: true } }),
    patch: op('patch', 'patch', {
      parameters: [dryRun, fieldManager, fieldValidation, queryParam('force', 'Force is going to "force" Apply requests.')],
      requestBody: { content: Object.fromEntries((rt.custom ? customPatchTypes : patchTypes).map((t) => [t, { schema: { type: 'object' } }])), required: true },
    }),
    delete: op('delete', 'delete', { parameters: [dryRun] }),
  };
}

type Descriptions = Record<string, Record<string, string>>;

/** A document's address: the upper-case hex of its SHA-512, as upstream's ?hash= values. */
const contentHash = (json: string) => createHash('sha512').update(json).digest('hex').slice(0, 128).toUpperCase();

/** Adds the kept-apart descriptions back onto a copy of a definition. */
function described(name: string, schema: OpenApiSchema, descriptions: Descriptions): OpenApiSchema {
  const d = descriptions[name];
  if (!d) return { ...schema };
  const out: OpenApiSchema = d[''] ? { description: d[''], ...schema } : { ...schema };
  if (schema.properties) {
    out.properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, d[k] ? { description: d[k], ...v } : v]));
  }
  return out;
}

const objectMeta = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';

/** A custom resource's published schema: its own, with the standard apiVersion, kind and metadata, as upstream publishes it. */
function customSchema(schema: OpenApiSchema, descriptions: Descriptions): OpenApiSchema {
  const d = descriptions['io.k8s.api.core.v1.Pod'] ?? {};
  return {
    ...schema,
    properties: {
      apiVersion: { description: d.apiVersion, type: 'string' },
      kind: { description: d.kind, type: 'string' },
      metadata: { description: d.metadata, allOf: [{ $ref: `#/components/schemas/${objectMeta}` }] },
      ...schema.properties,
    },
  };
}

/** Every definition `root` refers to, directly or not, including itself. */
function closure(root: string, into: Set<string>): void {
  if (into.has(root) || !definitions[root]) return;
  into.add(root);
  const text = JSON.stringify(definitions[root]);
  for (const m of text.matchAll(/"#\/components\/schemas\/([^"]+)"/g)) closure(m[1], into);
}

/**
 * The served v3 documents of one registry, built on first request and kept (the registry's
 * kinds do not change while a server runs). Descriptions are loaded only then, so a control
 * plane nobody asks for documents does not hold them.
 */
export class OpenApiDocuments {
  private readonly docs = new Map<string, { json: string; hash: string } | null>();
  private swagger?: { protobuf: Buffer; json: string; hash: string };
  private descriptions?: Promise<Descriptions>;
  /** The registry generation the kept documents were built from. */
  private generation = -1;

  constructor(
    private readonly registry: Registry,
    private readonly buildVersion: string,
  ) {}

  /** The index at /openapi/v3: each group-version's document path with its content hash. */
  async index(): Promise<{ paths: Record<string, { serverRelativeURL: string }> }> {
    const paths: Record<string, { serverRelativeURL: string }> = {};
    for (const g of this.registry.groups()) {
      for (const v of g.versions) {
        const key = g.name ? `apis/${g.name}/${v}` : `api/${v}`;
        const doc = await this.document(g.name, v);
        if (doc) paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${doc.hash}` };
      }
    }
    return { paths };
  }

  /** A group-version's document as JSON text, or undefined if the group-version is not served. */
  async document(group: string, version: string): Promise<{ json: string; hash: string } | undefined> {
    const key = `${group}/${version}`;
    this.forgetIfChanged();
    if (!this.docs.has(key)) {
      const doc = await this.build(group, version);
      if (!doc) this.docs.set(key, null);
      else {
        const json = JSON.stringify(doc);
        this.docs.set(key, { json, hash: contentHash(json) });
      }
    }
    return this.docs.get(key) ?? undefined;
  }

  /** The v2 document of every served group-version, as gnostic protobuf and as JSON, with its hash. */
  async v2(): Promise<{ protobuf: Buffer; json: string; hash: string }> {
    this.forgetIfChanged();
    if (!this.swagger) {
      const docs: V3Document[] = [];
      for (const g of this.registry.groups()) {
        for (const v of g.versions) {
          const doc = await this.document(g.name, v);
          if (doc) docs.push(JSON.parse(doc.json) as V3Document);
        }
      }
      const swagger = swaggerDocument(docs, 'Kubicle', this.buildVersion);
      const json = JSON.stringify(swagger);
      this.swagger = { protobuf: encodeGnostic(swagger), json, hash: contentHash(json) };
    }
    return this.swagger;
  }

  /** Custom resources came or went: every kept document may have changed. */
  private forgetIfChanged(): void {
    if (this.generation === this.registry.generation) return;
    this.docs.clear();
    this.swagger = undefined;
    this.generation = this.registry.generation;
  }

  private async build(group: string, version: string): Promise<object | undefined> {
    const rts = this.registry.resources(group, version);
    if (!rts.length) return undefined;
    this.descriptions ??= import('../api/generated/descriptions.js').then((m) => JSON.parse(m.descriptionsJson) as Descriptions);
    const descriptions = await this.descriptions;
    const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
    const paths: Record<string, object> = {};
    const schemas: Record<string, OpenApiSchema> = {};
    const names = new Set<string>();
    const kindsOf = new Map<string, ResourceType[]>();
    for (const rt of rts) {
      const def = kindDefinitions[`${groupVersion(rt)}/${rt.kind}`];
      const schema = def ?? `${rt.group.split('.').reverse().join('.') || 'core'}.${rt.version}.${rt.kind}`;
      if (def) closure(def, names);
      else if (rt.schema) {
        schemas[schema] = customSchema(rt.schema, descriptions);
        closure(objectMeta, names);
      } else schemas[schema] = { type: 'object', description: `${rt.kind} (${groupVersion(rt)})`, 'x-kubernetes-preserve-unknown-fields': true };
      kindsOf.set(schema, [...(kindsOf.get(schema) ?? []), rt]);
      const coll = rt.namespaced ? `${base}/namespaces/{namespace}/${rt.plural}` : `${base}/${rt.plural}`;
      paths[coll] = operations(rt, schema, false);
      if (rt.verbs && !rt.verbs.includes('get')) continue;
      paths[`${coll}/{name}`] = operations(rt, schema, true);
      if (rt.status) paths[`${coll}/{name}/status`] = operations(rt, schema, true);
    }
    for (const name of [...names].sort()) schemas[name] = described(name, definitions[name], descriptions);
    for (const [name, kinds] of kindsOf) {
      // Several resources can share a kind's schema (the same kind under two plurals).
      const gvks = [...new Map(kinds.map((rt) => [rt.kind, { group: rt.group, version: rt.version, kind: rt.kind }])).values()];
      schemas[name] = { ...schemas[name], 'x-kubernetes-group-version-kind': gvks };
    }
    return { openapi: '3.0.0', info: { title: 'Kubicle', version: this.buildVersion }, paths, components: { schemas } };
  }
}
