import { FieldErrors } from '../../api/field-errors.js';
import type { KubeObject } from '../../api/object.js';
import { groupVersion, qualifiedKind, type ResourceType } from '../../api/resource-type.js';
import { KubicleError } from '../../observe/errors.js';
import type { Authenticator, UserInfo } from '../authn.js';
import type { Attributes, Authorizer } from './authorizer.js';
import type { RbacAuthorizer } from './rbac-authorizer.js';

// biome-ignore lint/suspicious/noExplicitAny: untyped JSON
type J = Record<string, any>;

/**
 * The review kinds, answered and never stored: access reviews (`kubectl auth can-i`), rules
 * reviews (`can-i --list`), SelfSubjectReview (`kubectl auth whoami`) and TokenReview. Each
 * returns the request with its status filled in.
 */
export class Reviews {
  constructor(
    private readonly authorizer: Authorizer | undefined,
    private readonly rbac: RbacAuthorizer | undefined,
    private readonly authn: Authenticator,
  ) {}

  async create(rt: ResourceType, ns: string | undefined, body: KubeObject, user: UserInfo): Promise<KubeObject> {
    if (body?.kind !== rt.kind) throw new KubicleError('BadRequest', `the object provided is unrecognized (must be of type ${rt.kind}): ${String(body?.kind)}`);
    const out: KubeObject = { kind: rt.kind, apiVersion: groupVersion(rt), metadata: { creationTimestamp: null as unknown as string }, spec: body.spec ?? {} };
    if (ns) out.metadata.namespace = ns;
    const spec = body.spec ?? {};
    switch (rt.kind) {
      case 'SelfSubjectAccessReview':
        out.status = this.access(rt, user, spec, undefined);
        return out;
      case 'LocalSubjectAccessReview':
      case 'SubjectAccessReview': {
        if (!spec.user && !spec.groups?.length && !spec.uid) this.invalid(rt, 'spec.user', spec.user, 'at least one of user or group must be specified');
        const subject: UserInfo = { name: String(spec.user ?? ''), uid: spec.uid, groups: Array.isArray(spec.groups) ? spec.groups.map(String) : [], extra: spec.extra };
        out.status = this.access(rt, subject, spec, rt.kind === 'LocalSubjectAccessReview' ? ns : undefined);
        return out;
      }
      case 'SelfSubjectRulesReview':
        if (!spec.namespace) this.invalid(rt, 'spec.namespace', '', 'Required value');
        out.status = this.rules(user, spec.namespace);
        return out;
      case 'SelfSubjectReview':
        out.status = { userInfo: userInfo(user) };
        delete out.spec;
        return out;
      case 'TokenReview': {
        if (typeof spec.token !== 'string' || !spec.token) this.invalid(rt, 'spec.token', '', 'Required value');
        try {
          const u = await this.authn.authenticateToken(spec.token);
          out.status = u ? { authenticated: true, user: userInfo(u), audiences: (u as { audiences?: string[] }).audiences ?? spec.audiences ?? [] } : { authenticated: false, user: {}, error: 'invalid bearer token' };
        } catch {
          out.status = { authenticated: false, user: {}, error: 'invalid bearer token' };
        }
        const { token: _, ...rest } = spec;
        out.spec = rest;
        return out;
      }
    }
    throw new KubicleError('NotFound', 'the server could not find the requested resource');
  }

  private access(rt: ResourceType, user: UserInfo, spec: J, localNamespace: string | undefined): J {
    const res = spec.resourceAttributes;
    const non = spec.nonResourceAttributes;
    if (!!res === !!non) this.invalid(rt, 'spec.resourceAttributes', res ?? null, 'exactly one of nonResourceAttributes or resourceAttributes must be specified');
    let attrs: Attributes;
    if (res) {
      if (localNamespace !== undefined && (res.namespace ?? '') !== localNamespace) this.invalid(rt, 'spec.resourceAttributes.namespace', res.namespace ?? '', 'must match metadata.namespace');
      attrs = {
        verb: String(res.verb ?? ''),
        group: String(res.group ?? ''),
        resource: String(res.resource ?? ''),
        subresource: res.subresource || undefined,
        namespace: res.namespace || undefined,
        name: res.name || undefined,
        path: '',
      };
    } else attrs = { verb: String(non.verb ?? ''), path: String(non.path ?? '') };
    if (!this.authorizer) return { allowed: true };
    const d = this.authorizer.authorize(user, attrs);
    return d.allowed ? { allowed: true } : { allowed: false, ...(d.reason ? { reason: d.reason } : {}) };
  }

  private rules(user: UserInfo, namespace: string): J {
    if (!this.rbac) return { resourceRules: [], nonResourceRules: [], incomplete: true, evaluationError: 'this server does not list rules: it does not use RBAC' };
    const resourceRules = [];
    const nonResourceRules = [];
    for (const r of this.rbac.rulesFor(user, namespace)) {
      if (r.nonResourceURLs?.length) nonResourceRules.push({ verbs: r.verbs, nonResourceURLs: r.nonResourceURLs });
      else resourceRules.push({ verbs: r.verbs, apiGroups: r.apiGroups ?? [], resources: r.resources ?? [], ...(r.resourceNames?.length ? { resourceNames: r.resourceNames } : {}) });
    }
    return { resourceRules, nonResourceRules, incomplete: false };
  }

  private invalid(rt: ResourceType, field: string, value: unknown, detail: string): never {
    const errs = new FieldErrors();
    errs.invalid(field, value, detail);
    throw errs.toError(qualifiedKind(rt), '');
  }
}

function userInfo(u: UserInfo): J {
  return { username: u.name, ...(u.uid ? { uid: u.uid } : {}), groups: u.groups, ...(u.extra ? { extra: u.extra } : {}) };
}
