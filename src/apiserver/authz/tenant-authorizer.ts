import type { UserInfo } from '../authn.js';
import type { Attributes, Authorizer, Decision } from './authorizer.js';

/**
 * The provider API's fixed policy (DESIGN §6): operators may do everything; a tenant's users
 * (group `kubicle:tenant:<tenant>`) may work only inside their tenant's namespace, on the
 * resources the rules list, and read their own Tenant object and Namespace. Every authenticated
 * user may read discovery and OpenAPI. RBAC objects (issue 3) can later express the same; until
 * then this keeps a tenant from seeing another's clusters, usage or credentials.
 */
export interface TenantRule {
  group: string;
  resources: string[];
  verbs: string[] | '*';
}

export interface TenantPolicy {
  operatorGroups: string[];
  /** Groups naming a tenant: prefix + tenant name. */
  tenantGroupPrefix: string;
  /** What a tenant's users may do in their own namespace. */
  rules: TenantRule[];
  /** The cluster-scoped kind holding tenants, readable by its own users: group and plural. */
  tenantResource: { group: string; resource: string };
}

const readVerbs = new Set(['get', 'list', 'watch']);

export class TenantAuthorizer implements Authorizer {
  constructor(private readonly policy: TenantPolicy) {}

  authorize(user: UserInfo, a: Attributes): Decision {
    if (user.groups.some((g) => this.policy.operatorGroups.includes(g))) return { allowed: true };
    if (!a.resource) return { allowed: a.verb === 'get' || a.verb === 'head' };
    const tenants = new Set(user.groups.filter((g) => g.startsWith(this.policy.tenantGroupPrefix)).map((g) => g.slice(this.policy.tenantGroupPrefix.length)));
    if (!tenants.size) return { allowed: false };
    const own = this.policy.tenantResource;
    // Its own Tenant and Namespace, read-only: what `kubectl get tenant/x` and `get ns x` need.
    if (!a.subresource && a.name && tenants.has(a.name) && readVerbs.has(a.verb)) {
      if ((a.group === own.group && a.resource === own.resource) || (a.group === '' && a.resource === 'namespaces')) return { allowed: true };
    }
    if (!a.namespace || !tenants.has(a.namespace) || (a.group === '' && a.resource === 'namespaces')) return { allowed: false };
    const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
    const allowed = this.policy.rules.some((r) => r.group === (a.group ?? '') && r.resources.includes(resource) && (r.verbs === '*' || r.verbs.includes(a.verb)));
    return { allowed };
  }
}
