import { KubicleError } from '../observe/errors.js';
import { admissionregistrationKinds } from './kinds/admissionregistration.js';
import { apiextensionsKinds } from './kinds/apiextensions.js';
import { appsKinds } from './kinds/apps.js';
import { batchKinds } from './kinds/batch.js';
import { clusterKinds } from './kinds/cluster.js';
import { coreKinds } from './kinds/core.js';
import { providerKinds } from './kinds/provider.js';
import { rbacKinds } from './kinds/rbac.js';
import { groupVersion, type ResourceType } from './resource-type.js';

/**
 * The kinds registry: every served resource, looked up by group/version/plural (routing) or
 * by apiVersion/kind (decoding bodies). Groups keep the order discovery lists them in; the
 * first version of a group is its preferred version.
 */
export class Registry {
  private readonly byPath = new Map<string, ResourceType>();
  private readonly byKind = new Map<string, ResourceType>();
  all: ResourceType[];
  /** Counts changes (custom resources served or withdrawn), so derived documents know to rebuild. */
  generation = 0;

  constructor(types: ResourceType[]) {
    this.all = [];
    this.add(types);
  }

  /** Serves more resources (a CustomResourceDefinition's versions). */
  add(types: ResourceType[]): void {
    this.all = [...this.all, ...types];
    for (const rt of types) {
      this.byPath.set(`${groupVersion(rt)}/${rt.plural}`, rt);
      this.byKind.set(`${groupVersion(rt)}/${rt.kind}`, rt);
    }
    this.generation++;
  }

  /** Stops serving the resources of one storage identity (every version of a custom resource). */
  remove(storage: string): void {
    const gone = this.all.filter((rt) => rt.storage === storage);
    if (!gone.length) return;
    this.all = this.all.filter((rt) => rt.storage !== storage);
    for (const rt of gone) {
      this.byPath.delete(`${groupVersion(rt)}/${rt.plural}`);
      this.byKind.delete(`${groupVersion(rt)}/${rt.kind}`);
    }
    this.generation++;
  }

  /** The resource at /api/v1/{plural} or /apis/{group}/{version}/{plural}; undefined if none. */
  lookup(group: string, version: string, plural: string): ResourceType | undefined {
    return this.byPath.get(`${group ? `${group}/${version}` : version}/${plural}`);
  }

  byApiVersionKind(apiVersion: string, kind: string): ResourceType | undefined {
    return this.byKind.get(`${apiVersion}/${kind}`);
  }

  /** Groups with their versions, preferred first; the core group is "". */
  groups(): { name: string; versions: string[] }[] {
    const out: { name: string; versions: string[] }[] = [];
    for (const rt of this.all) {
      let g = out.find((x) => x.name === rt.group);
      if (!g) out.push((g = { name: rt.group, versions: [] }));
      if (!g.versions.includes(rt.version)) g.versions.push(rt.version);
    }
    // Within a group, the higher stable version is preferred (autoscaling/v2 over v1).
    for (const g of out) g.versions.sort((a, b) => versionPriority(b) - versionPriority(a));
    return out;
  }

  resources(group: string, version: string): ResourceType[] {
    return this.all.filter((rt) => rt.group === group && rt.version === version);
  }

  mustLookup(group: string, version: string, plural: string): ResourceType {
    const rt = this.lookup(group, version, plural);
    if (!rt) throw new KubicleError('NotFound', 'the server could not find the requested resource');
    return rt;
  }
}

/** Kubernetes' version ordering: GA > beta > alpha, higher numbers first. */
export function versionPriority(v: string): number {
  const m = v.match(/^v(\d+)(?:(alpha|beta)(\d+))?$/);
  if (!m) return 0;
  const major = Number(m[1]);
  const stage = m[2] === 'alpha' ? 0 : m[2] === 'beta' ? 1 : 2;
  return stage * 1_000_000 + major * 1000 + Number(m[3] ?? 0);
}

export function builtinRegistry(): Registry {
  return new Registry([...coreKinds, ...appsKinds, ...batchKinds, ...clusterKinds, ...rbacKinds, ...apiextensionsKinds, ...admissionregistrationKinds]);
}

/** The provider's API (`kubicle server`): the built-in kinds its machinery relies on, and kubicle.io. */
export function providerRegistry(): Registry {
  return new Registry([...coreKinds, ...appsKinds, ...batchKinds, ...clusterKinds, ...providerKinds]);
}
