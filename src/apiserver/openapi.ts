import { createHash } from 'node:crypto';
import type { Registry } from '../api/registry.js';
import { groupVersion, type ResourceType } from '../api/resource-type.js';

/**
 * OpenAPI documents. v2 is served as gnostic protobuf holding only the header: with no
 * definitions kubectl skips client-side validation, which the server does instead (see
 * KUBECTL-COMPAT §1). v3 lists every path per group-version with its operations carrying
 * x-kubernetes-group-version-kind and a fieldValidation parameter, so kubectl 1.29+ trusts
 * server-side validation. Strategic merge patch is not advertised in v3: there are no merge
 * keys in these documents yet, so kubectl uses its compiled-in types for built-in kinds.
 */
function protoString(field: number, s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([(field << 3) | 2, b.length]), b]);
}

export function openapiV2Protobuf(title: string, version: string): Buffer {
  const info = Buffer.concat([protoString(1, title), protoString(2, version)]);
  return Buffer.concat([protoString(1, '2.0'), Buffer.from([(2 << 3) | 2, info.length]), info]);
}

export const openapiV2ContentType = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

const queryParam = (name: string, description: string) => ({ name, in: 'query', description, schema: { type: 'string' }, uniqueItems: true });
const fieldValidation = queryParam('fieldValidation', 'fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict');
const dryRun = queryParam('dryRun', 'When present, indicates that modifications should not be persisted.');
const fieldManager = queryParam('fieldManager', 'fieldManager is a name associated with the actor or entity that is making these changes.');

function operations(rt: ResourceType, item: boolean) {
  const gvk = { group: rt.group, version: rt.version, kind: rt.kind };
  const ref = { $ref: `#/components/schemas/${schemaName(rt)}` };
  const json = { 'application/json': { schema: ref } };
  const op = (action: string, id: string, extra: object = {}) => ({
    operationId: `${id}${rt.kind}`,
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk,
    responses: { '200': { description: 'OK', content: json } },
    ...extra,
  });
  if (!item) {
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
      requestBody: {
        content: {
          'application/json-patch+json': { schema: { type: 'object' } },
          'application/merge-patch+json': { schema: { type: 'object' } },
          'application/apply-patch+yaml': { schema: { type: 'object' } },
        },
        required: true,
      },
    }),
    delete: op('delete', 'delete', { parameters: [dryRun] }),
  };
}

function schemaName(rt: ResourceType): string {
  const g = rt.group ? rt.group.split('.').reverse().join('.') : 'core';
  return `io.k8s.api.${g}.${rt.version}.${rt.kind}`;
}

export function openapiV3Document(registry: Registry, group: string, version: string, buildVersion: string): object | undefined {
  const rts = registry.resources(group, version);
  if (!rts.length) return undefined;
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const paths: Record<string, object> = {};
  const schemas: Record<string, object> = {};
  for (const rt of rts) {
    const coll = rt.namespaced ? `${base}/namespaces/{namespace}/${rt.plural}` : `${base}/${rt.plural}`;
    paths[coll] = operations(rt, false);
    paths[`${coll}/{name}`] = operations(rt, true);
    if (rt.status) paths[`${coll}/{name}/status`] = operations(rt, true);
    // A minimal object schema until generated schemas land: kind and version for explain's lookup.
    schemas[schemaName(rt)] = {
      type: 'object',
      description: `${rt.kind} (${groupVersion(rt)})`,
      'x-kubernetes-group-version-kind': [{ group: rt.group, version: rt.version, kind: rt.kind }],
    };
  }
  return { openapi: '3.0.0', info: { title: 'Kubicle', version: buildVersion }, paths, components: { schemas } };
}

export function openapiV3Index(registry: Registry, buildVersion: string): { paths: Record<string, { serverRelativeURL: string }> } {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const g of registry.groups()) {
    for (const v of g.versions) {
      const key = g.name ? `apis/${g.name}/${v}` : `api/${v}`;
      const doc = JSON.stringify(openapiV3Document(registry, g.name, v, buildVersion));
      const hash = createHash('sha512').update(doc).digest('hex').slice(0, 128).toUpperCase();
      paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${hash}` };
    }
  }
  return { paths };
}
