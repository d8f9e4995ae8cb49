import type { KubeObject } from '../../api/object.js';
import { qualifiedResource, type ResourceType } from '../../api/resource-type.js';
import { KubicleError } from '../../observe/errors.js';
import type { UserInfo } from '../authn.js';
import { fullAuthority, type RbacAuthorizer } from '../authz/rbac-authorizer.js';
import { compactRule, compactRules, mastersGroup, type PolicyRule, uncovered } from '../authz/rbac-rules.js';
import type { Admission, WriteOptions } from '../object-store.js';

/**
 * RBAC's escalation prevention, as upstream: nobody writes a role with rights they do not hold
 * (unless allowed the `escalate` verb on it), and nobody binds a role whose rights they do not
 * hold (unless allowed `bind` on it). An aggregated ClusterRole gathers rights from others, so
 * only someone holding every right may write one. The server's own writes carry no user and
 * pass; so do members of system:masters.
 */
export class RbacEscalation implements Admission {
  constructor(private readonly rbac: RbacAuthorizer) {}

  async admitCreate(rt: ResourceType, obj: KubeObject, opts: WriteOptions): Promise<void> {
    this.check(rt, obj, opts.user);
  }

  async admitUpdate(rt: ResourceType, obj: KubeObject, _old: KubeObject, opts: WriteOptions): Promise<void> {
    this.check(rt, obj, opts.user);
  }

  async admitDelete(): Promise<void> {}

  private check(rt: ResourceType, obj: KubeObject, user: UserInfo | undefined): void {
    if (!user || rt.group !== 'rbac.authorization.k8s.io' || user.groups.includes(mastersGroup)) return;
    const ns: string | undefined = obj.metadata.namespace;
    const name = obj.metadata.name as string;
    const allowed = (verb: string, resource: string, resourceName: string) =>
      this.rbac.authorize(user, { verb, group: rt.group, resource, namespace: ns, name: resourceName, path: '' }).allowed;
    const refuse = (missing: PolicyRule[]) => {
      const groups = `[${user.groups.map((g) => JSON.stringify(g)).join(' ')}]`;
      throw new KubicleError(
        'Forbidden',
        `${qualifiedResource(rt)} "${name}" is forbidden: user ${JSON.stringify(user.name)} (groups=${groups}) is attempting to grant RBAC permissions not currently held:\n${compactRules(missing).map(compactRule).join('\n')}`,
      );
    };
    if (rt.plural === 'roles' || rt.plural === 'clusterroles') {
      if (allowed('escalate', rt.plural, name)) return;
      const wanted = rt.plural === 'clusterroles' && obj.aggregationRule ? fullAuthority : ((obj.rules ?? []) as PolicyRule[]);
      const missing = uncovered(this.rbac.rulesFor(user, ns), wanted);
      if (missing.length) refuse(missing);
      return;
    }
    if (rt.plural !== 'rolebindings' && rt.plural !== 'clusterrolebindings') return;
    const ref = obj.roleRef ?? {};
    if (allowed('bind', ref.kind === 'ClusterRole' ? 'clusterroles' : 'roles', ref.name)) return;
    const rules = this.rbac.roleRules(ref, ns);
    if (!rules) {
      const refType = ref.kind === 'ClusterRole' ? 'clusterroles' : 'roles';
      throw new KubicleError('Forbidden', `${qualifiedResource(rt)} "${name}" is forbidden: ${refType}.rbac.authorization.k8s.io ${JSON.stringify(ref.name)} not found`);
    }
    const missing = uncovered(this.rbac.rulesFor(user, ns), rules);
    if (missing.length) refuse(missing);
  }
}
