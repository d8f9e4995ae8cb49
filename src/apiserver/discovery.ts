import type { Registry } from '../api/registry.js';
import { groupVersion, type ResourceType } from '../api/resource-type.js';

/**
 * Discovery documents: aggregated (apidiscovery.k8s.io v2 and v2beta1, same JSON) and legacy
 * (APIVersions, APIGroupList, APIResourceList), all derived from the registry.
 */
const allVerbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function subresources(rt: ResourceType): { name: string; kind: string; group: string; version: string; verbs: string[] }[] {
  const out = [];
  if (rt.status) out.push({ name: 'status', kind: rt.kind, group: rt.group, version: rt.version, verbs: ['get', 'patch', 'update'] });
  if (rt.scale) out.push({ name: 'scale', kind: 'Scale', group: 'autoscaling', version: 'v1', verbs: ['get', 'patch', 'update'] });
  if (rt.plural === 'namespaces' && rt.group === '') out.push({ name: 'finalize', kind: 'Namespace', group: '', version: 'v1', verbs: ['update'] });
  if (rt.plural === 'serviceaccounts' && rt.group === '') out.push({ name: 'token', kind: 'TokenRequest', group: 'authentication.k8s.io', version: 'v1', verbs: ['create'] });
  if (rt.plural === 'pods' && rt.group === '') {
    out.push({ name: 'attach', kind: 'PodAttachOptions', group: '', version: 'v1', verbs: ['create', 'get'] });
    out.push({ name: 'binding', kind: 'Binding', group: '', version: 'v1', verbs: ['create'] });
    out.push({ name: 'eviction', kind: 'Eviction', group: 'policy', version: 'v1', verbs: ['create'] });
    out.push({ name: 'exec', kind: 'PodExecOptions', group: '', version: 'v1', verbs: ['create', 'get'] });
    out.push({ name: 'log', kind: 'Pod', group: '', version: 'v1', verbs: ['get'] });
    out.push({ name: 'portforward', kind: 'PodPortForwardOptions', group: '', version: 'v1', verbs: ['create', 'get'] });
  }
  return out;
}

function aggregatedResource(rt: ResourceType) {
  return {
    resource: rt.plural,
    responseKind: { group: rt.group, version: rt.version, kind: rt.kind },
    scope: rt.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: rt.singular,
    verbs: rt.verbs ?? allVerbs,
    ...(rt.shortNames?.length ? { shortNames: rt.shortNames } : {}),
    ...(rt.categories?.length ? { categories: rt.categories } : {}),
    subresources: subresources(rt).map((s) => ({ subresource: s.name, responseKind: { group: s.group, version: s.version, kind: s.kind }, verbs: s.verbs })),
  };
}

export function aggregated(registry: Registry, legacy: boolean, version: 'v2' | 'v2beta1') {
  const groups = registry.groups().filter((g) => (legacy ? g.name === '' : g.name !== ''));
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: `apidiscovery.k8s.io/${version}`,
    metadata: {},
    items: groups.map((g) => ({
      metadata: { name: g.name, creationTimestamp: null },
      versions: g.versions.map((v) => ({
        version: v,
        resources: registry.resources(g.name, v).map(aggregatedResource),
        freshness: 'Current',
      })),
    })),
  };
}

export function aggregatedContentType(version: string): string {
  return `application/json;g=apidiscovery.k8s.io;v=${version};as=APIGroupDiscoveryList`;
}

export function apiVersions(serverAddress: string) {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groupEntry(g: { name: string; versions: string[] }) {
  const versions = g.versions.map((v) => ({ groupVersion: `${g.name}/${v}`, version: v }));
  return { name: g.name, versions, preferredVersion: versions[0] };
}

export function apiGroupList(registry: Registry) {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: registry.groups().filter((g) => g.name !== '').map(groupEntry) };
}

export function apiGroup(registry: Registry, name: string) {
  const g = registry.groups().find((x) => x.name === name);
  return g ? { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(g) } : undefined;
}

export function apiResourceList(registry: Registry, group: string, version: string) {
  const rts = registry.resources(group, version);
  if (!rts.length) return undefined;
  const resources = [];
  for (const rt of rts) {
    resources.push({
      name: rt.plural,
      singularName: rt.singular,
      namespaced: rt.namespaced,
      kind: rt.kind,
      verbs: rt.verbs ?? allVerbs,
      ...(rt.shortNames?.length ? { shortNames: rt.shortNames } : {}),
      ...(rt.categories?.length ? { categories: rt.categories } : {}),
      storageVersionHash: Buffer.from(rt.storage).toString('base64').slice(0, 11),
    });
    for (const s of subresources(rt)) {
      resources.push({
        name: `${rt.plural}/${s.name}`,
        singularName: '',
        namespaced: rt.namespaced,
        ...(s.group !== rt.group ? { group: s.group, version: s.version } : {}),
        kind: s.kind,
        verbs: s.verbs,
      });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: groupVersion({ group, version }), resources };
}
