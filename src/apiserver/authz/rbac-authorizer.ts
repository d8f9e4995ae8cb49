import type { KubeObject } from '../../api/object.js';
import type { Registry } from '../../api/registry.js';
import { CachedObjects } from '../admission/cached-objects.js';
import type { UserInfo } from '../authn.js';
import type { ObjectStore } from '../object-store.js';
import type { WatchCache } from '../watch-cache.js';
import type { Attributes, Authorizer, Decision } from './authorizer.js';
import { mastersGroup, type PolicyRule, ruleAllows } from './rbac-rules.js';

/**
 * The RBAC authorizer: a request is allowed when a ClusterRoleBinding, or a RoleBinding in the
 * request's namespace, binds the user (by name, group or service account) to a role with a rule
 * that allows it; members of system:masters may do everything. Roles and bindings are followed
 * through the watch cache into an index by subject, rebuilt after changes on the next decision,
 * so a decision reads no store. A binding naming a missing role grants nothing.
 */
export class RbacAuthorizer implements Authorizer {
  private readonly roles: CachedObjects;
  private readonly clusterRoles: CachedObjects;
  private readonly bindings: CachedObjects;
  private readonly clusterBindings: CachedObjects;
  private index: Index = { cluster: new Map(), namespaced: new Map() };
  private dirty = true;

  constructor(registry: Registry, store: () => ObjectStore) {
    const rt = (plural: string) => registry.mustLookup('rbac.authorization.k8s.io', 'v1', plural);
    this.roles = new CachedObjects(rt('roles'), store);
    this.clusterRoles = new CachedObjects(rt('clusterroles'), store);
    this.bindings = new CachedObjects(rt('rolebindings'), store);
    this.clusterBindings = new CachedObjects(rt('clusterrolebindings'), store);
  }

  /** Follows roles and bindings; decisions before this resolves allow only system:masters. */
  async bind(cache: WatchCache): Promise<void> {
    const changed = () => {
      this.dirty = true;
    };
    await Promise.all([this.roles, this.clusterRoles, this.bindings, this.clusterBindings].map((c) => c.bind(cache, changed)));
  }

  authorize(user: UserInfo, a: Attributes): Decision {
    if (user.groups.includes(mastersGroup)) return { allowed: true };
    return { allowed: this.rulesFor(user, a.namespace).some((r) => ruleAllows(r, a)) };
  }

  /**
   * Every rule that applies to the user in `namespace` (cluster-wide ones included), or only the
   * cluster-wide ones without a namespace. Members of system:masters hold everything.
   */
  rulesFor(user: UserInfo, namespace?: string): PolicyRule[] {
    if (user.groups.includes(mastersGroup)) return fullAuthority;
    const index = this.current();
    const keys = [`u:${user.name}`, ...user.groups.map((g) => `g:${g}`)];
    const out: PolicyRule[] = [];
    const scopes = [index.cluster, ...(namespace ? [index.namespaced.get(namespace)] : [])];
    for (const scope of scopes) for (const k of keys) for (const rules of scope?.get(k) ?? []) out.push(...rules);
    return out;
  }

  /** The rules of the role a binding refers to, or undefined if that role does not exist. */
  roleRules(ref: { kind?: string; name?: string }, namespace: string | undefined): PolicyRule[] | undefined {
    const role = ref.kind === 'ClusterRole' ? this.find(this.clusterRoles, undefined, ref.name) : this.find(this.roles, namespace, ref.name);
    return role ? rulesOf(role) : undefined;
  }

  private find(c: CachedObjects, ns: string | undefined, name: string | undefined): KubeObject | undefined {
    return c.snapshot()?.find((o) => o.metadata.name === name && o.metadata.namespace === ns);
  }

  private current(): Index {
    if (!this.dirty) return this.index;
    const cr = this.clusterRoles.snapshot();
    const r = this.roles.snapshot();
    const b = this.bindings.snapshot();
    const cb = this.clusterBindings.snapshot();
    // Mid-relist a collection is absent: keep the last whole index rather than a partial one.
    if (!cr || !r || !b || !cb) return this.index;
    this.dirty = false;
    const clusterRoles = new Map(cr.map((o) => [o.metadata.name as string, rulesOf(o)]));
    const roles = new Map(r.map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, rulesOf(o)]));
    const index: Index = { cluster: new Map(), namespaced: new Map() };
    const add = (scope: Map<string, PolicyRule[][]>, binding: KubeObject, rules: PolicyRule[] | undefined) => {
      if (!rules) return;
      for (const key of subjectKeys(binding)) {
        const list = scope.get(key);
        if (list) list.push(rules);
        else scope.set(key, [rules]);
      }
    };
    for (const o of cb) if (o.roleRef?.kind === 'ClusterRole') add(index.cluster, o, clusterRoles.get(o.roleRef.name));
    for (const o of b) {
      const ns = o.metadata.namespace as string;
      let scope = index.namespaced.get(ns);
      if (!scope) index.namespaced.set(ns, (scope = new Map()));
      add(scope, o, o.roleRef?.kind === 'ClusterRole' ? clusterRoles.get(o.roleRef.name) : roles.get(`${ns}/${o.roleRef?.name}`));
    }
    this.index = index;
    return index;
  }
}

interface Index {
  /** Subject key → the rule lists of the roles bound to it cluster-wide. */
  cluster: Map<string, PolicyRule[][]>;
  /** Namespace → subject key → the rule lists bound to it in that namespace. */
  namespaced: Map<string, Map<string, PolicyRule[][]>>;
}

/** Everything: what system:masters hold, and what an aggregated ClusterRole needs its writer to hold. */
export const fullAuthority: PolicyRule[] = [
  { verbs: ['*'], apiGroups: ['*'], resources: ['*'] },
  { verbs: ['*'], nonResourceURLs: ['*'] },
];

function rulesOf(role: KubeObject): PolicyRule[] {
  return Array.isArray(role.rules) ? (role.rules as PolicyRule[]) : [];
}

/** `u:<user>` or `g:<group>` for each subject; a service account is the user upstream names it as. */
function subjectKeys(binding: KubeObject): string[] {
  const out: string[] = [];
  for (const s of (binding.subjects ?? []) as { kind?: string; name?: string; namespace?: string }[]) {
    if (!s?.name) continue;
    if (s.kind === 'User') out.push(`u:${s.name}`);
    else if (s.kind === 'Group') out.push(`g:${s.name}`);
    else if (s.kind === 'ServiceAccount') out.push(`u:system:serviceaccount:${s.namespace || binding.metadata.namespace}:${s.name}`);
  }
  return out;
}
