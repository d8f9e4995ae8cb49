import type { FieldErrors } from '../field-errors.js';
import type { KubeObject } from '../object.js';
import type { Column, ResourceType } from '../resource-type.js';
import { ageColumn, col, nameColumn } from './columns.js';

/**
 * rbac.authorization.k8s.io/v1 (Role, ClusterRole, RoleBinding, ClusterRoleBinding) and the
 * review kinds of authorization.k8s.io and authentication.k8s.io, which are asked, never stored.
 * Shapes and rules only: the authorizer lives in apiserver/authz.
 */
export const rbacGroup = 'rbac.authorization.k8s.io';
// biome-ignore lint/suspicious/noExplicitAny: untyped JSON
type J = Record<string, any>;

const base = { group: rbacGroup, version: 'v1', status: false, generation: false, nameRule: 'path' as const };

/** Upstream shows when a role was made as a timestamp, not an age. */
const createdAt: Column = { ...col('Created At', (o: KubeObject) => o.metadata.creationTimestamp ?? ''), type: 'date' };

function validateRules(rules: unknown, namespaced: boolean, errs: FieldErrors): void {
  if (rules === undefined || rules === null) return;
  if (!Array.isArray(rules)) {
      errs.invalid('rules', rules, 'must be a list of policy rules');
      return;
    }
  rules.forEach((r: J, i) => {
    const f = `rules[${i}]`;
    if (!r || typeof r !== 'object') {
      errs.invalid(f, r, 'must be a policy rule');
      return;
    }
    for (const k of ['verbs', 'apiGroups', 'resources', 'resourceNames', 'nonResourceURLs']) {
      if (r[k] !== undefined && !(Array.isArray(r[k]) && r[k].every((s: unknown) => typeof s === 'string'))) errs.invalid(`${f}.${k}`, r[k], 'must be a list of strings');
    }
    if (!r.verbs?.length) errs.required(`${f}.verbs`, 'verbs must contain at least one value');
    const urls = r.nonResourceURLs?.length > 0;
    const resources = r.resources?.length > 0;
    if (urls) {
      if (namespaced) errs.invalid(`${f}.nonResourceURLs`, r.nonResourceURLs, 'namespaced rules cannot apply to non-resource URLs');
      if (r.apiGroups?.length || resources) errs.invalid(`${f}.nonResourceURLs`, r.nonResourceURLs, 'rules cannot apply to both regular resources and non-resource URLs');
      return;
    }
    if (!resources) errs.required(`${f}.resources`, 'resource rules must supply at least one resource');
    if (!r.apiGroups?.length) errs.required(`${f}.apiGroups`, 'resource rules must supply at least one api group');
  });
}

function validateRoleRef(o: J, namespaced: boolean, errs: FieldErrors): void {
  const ref = o.roleRef;
  if (!ref || typeof ref !== 'object') {
      errs.required('roleRef');
      return;
    }
  if (ref.apiGroup !== rbacGroup) errs.notSupported('roleRef.apiGroup', ref.apiGroup ?? '', [rbacGroup]);
  const kinds = namespaced ? ['Role', 'ClusterRole'] : ['ClusterRole'];
  if (!kinds.includes(ref.kind)) errs.notSupported('roleRef.kind', ref.kind ?? '', kinds);
  if (!ref.name) errs.required('roleRef.name');
  else if (typeof ref.name !== 'string' || ref.name.includes('/') || ref.name.includes('%') || ref.name === '.' || ref.name === '..') errs.invalid('roleRef.name', ref.name, 'may not contain "/" or "%" and may not be "." or ".."');
}

function validateSubjects(o: J, namespaced: boolean, errs: FieldErrors): void {
  if (o.subjects === undefined || o.subjects === null) return;
  if (!Array.isArray(o.subjects)) {
      errs.invalid('subjects', o.subjects, 'must be a list of subjects');
      return;
    }
  o.subjects.forEach((s: J, i: number) => {
    const f = `subjects[${i}]`;
    if (!s || typeof s !== 'object') {
      errs.invalid(f, s, 'must be a subject');
      return;
    }
    if (!s.name || typeof s.name !== 'string') errs.required(`${f}.name`);
    switch (s.kind) {
      case 'ServiceAccount':
        if ((s.apiGroup ?? '') !== '') errs.notSupported(`${f}.apiGroup`, s.apiGroup, ['']);
        if (!namespaced && !s.namespace) errs.required(`${f}.namespace`);
        break;
      case 'User':
      case 'Group':
        if (s.apiGroup !== rbacGroup) errs.notSupported(`${f}.apiGroup`, s.apiGroup ?? '', [rbacGroup]);
        break;
      default:
        errs.notSupported(`${f}.kind`, s.kind ?? '', ['ServiceAccount', 'User', 'Group']);
    }
  });
}

const subjectsOf = (o: KubeObject, kind: string) =>
  ((o.subjects ?? []) as J[])
    .filter((s) => s.kind === kind)
    .map((s) => (kind === 'ServiceAccount' ? `${s.namespace ?? o.metadata.namespace ?? ''}/${s.name}` : s.name))
    .join(', ');

const bindingColumns: Column[] = [
  nameColumn,
  col('Role', (o) => `${o.roleRef?.kind ?? ''}/${o.roleRef?.name ?? ''}`),
  ageColumn,
  col('Users', (o) => subjectsOf(o, 'User'), { wide: true }),
  col('Groups', (o) => subjectsOf(o, 'Group'), { wide: true }),
  col('ServiceAccounts', (o) => subjectsOf(o, 'ServiceAccount'), { wide: true }),
];

export const roles: ResourceType = {
  ...base,
  kind: 'Role',
  plural: 'roles',
  singular: 'role',
  namespaced: true,
  storage: 'rbac.authorization.k8s.io/roles',
  validate: (o, errs) => validateRules(o.rules, true, errs),
  columns: [nameColumn, createdAt],
};

export const clusterroles: ResourceType = {
  ...base,
  kind: 'ClusterRole',
  plural: 'clusterroles',
  singular: 'clusterrole',
  namespaced: false,
  storage: 'rbac.authorization.k8s.io/clusterroles',
  validate: (o, errs) => {
    validateRules(o.rules, false, errs);
    const agg = o.aggregationRule;
    if (agg !== undefined && agg !== null && !Array.isArray(agg.clusterRoleSelectors)) errs.required('aggregationRule.clusterRoleSelectors');
  },
  columns: [nameColumn, createdAt],
};

/** RoleBinding and ClusterRoleBinding differ only in scope, and so in the roles they may name. */
function binding(kind: string, namespaced: boolean): ResourceType {
  const plural = `${kind.toLowerCase()}s`;
  return {
    ...base,
    kind,
    plural,
    singular: kind.toLowerCase(),
    namespaced,
    storage: `${rbacGroup}/${plural}`,
    validate: (o, errs) => {
      validateRoleRef(o, namespaced, errs);
      validateSubjects(o, namespaced, errs);
    },
    validateUpdate: (o, old, errs) => {
      if (JSON.stringify(o.roleRef) !== JSON.stringify(old.roleRef)) errs.invalid('roleRef', o.roleRef, 'cannot change roleRef');
    },
    columns: bindingColumns,
  };
}

export const rolebindings = binding('RoleBinding', true);
export const clusterrolebindings = binding('ClusterRoleBinding', false);

/** A kind that is only ever created and answered: nothing is stored, nothing can be read back. */
function review(group: string, version: string, kind: string, namespaced = false): ResourceType {
  const plural = `${kind.toLowerCase()}s`;
  return {
    group,
    version,
    kind,
    plural,
    singular: kind.toLowerCase(),
    namespaced,
    nameRule: 'subdomain',
    storage: `${group}/${plural}`,
    status: false,
    generation: false,
    verbs: ['create'],
    columns: [],
  };
}

export const authorizationGroup = 'authorization.k8s.io';
export const authenticationGroup = 'authentication.k8s.io';

export const rbacKinds: ResourceType[] = [
  clusterrolebindings,
  clusterroles,
  rolebindings,
  roles,
  review(authorizationGroup, 'v1', 'LocalSubjectAccessReview', true),
  review(authorizationGroup, 'v1', 'SelfSubjectAccessReview'),
  review(authorizationGroup, 'v1', 'SelfSubjectRulesReview'),
  review(authorizationGroup, 'v1', 'SubjectAccessReview'),
  review(authenticationGroup, 'v1', 'SelfSubjectReview'),
  review(authenticationGroup, 'v1', 'TokenReview'),
  // kubectl 1.27's `auth whoami` asks v1beta1 (v1 arrived in 1.28).
  review(authenticationGroup, 'v1beta1', 'SelfSubjectReview'),
];
