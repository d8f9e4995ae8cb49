import type { KubeObject } from '../../api/object.js';
import { deepEqual } from '../../api/object.js';
import type { Registry } from '../../api/registry.js';
import { isCode } from '../../observe/errors.js';
import type { ObjectStore } from '../object-store.js';
import { mastersGroup, type PolicyRule } from './rbac-rules.js';

/**
 * Upstream's default roles and bindings, the ones users meet: cluster-admin for system:masters;
 * admin, edit and view, aggregated from the system:aggregate-to-* roles (and from any role a user
 * labels to join them); system:basic-user, system:discovery and system:public-info-viewer for
 * everyone signed in. The control plane's own components run as system:masters, so upstream's
 * per-controller roles have no one to serve here and are left out.
 */
const read = ['get', 'list', 'watch'];
const write = ['create', 'update', 'patch', 'delete', 'deletecollection'];
const readWrite = [...read, ...write];
const label = { 'kubernetes.io/bootstrapping': 'rbac-defaults' };
const autoupdate = 'rbac.authorization.kubernetes.io/autoupdate';
const aggregateTo = (role: string) => ({ [`rbac.authorization.k8s.io/aggregate-to-${role}`]: 'true' });

const rule = (verbs: string[], apiGroups: string[], resources: string[]): PolicyRule => ({ verbs, apiGroups, resources });
const urls = (verbs: string[], nonResourceURLs: string[]): PolicyRule => ({ verbs, nonResourceURLs });

interface DefaultRole {
  name: string;
  labels?: Record<string, string>;
  rules?: PolicyRule[];
  aggregateFrom?: string;
}

export const defaultClusterRoles: DefaultRole[] = [
  { name: 'cluster-admin', rules: [rule(['*'], ['*'], ['*']), urls(['*'], ['*'])] },
  { name: 'system:discovery', rules: [urls(['get'], ['/livez', '/readyz', '/healthz', '/version', '/version/', '/openapi', '/openapi/*', '/api', '/api/*', '/apis', '/apis/*'])] },
  { name: 'system:public-info-viewer', rules: [urls(['get'], ['/livez', '/readyz', '/healthz', '/version', '/version/'])] },
  {
    name: 'system:basic-user',
    rules: [rule(['create'], ['authorization.k8s.io'], ['selfsubjectaccessreviews', 'selfsubjectrulesreviews']), rule(['create'], ['authentication.k8s.io'], ['selfsubjectreviews'])],
  },
  { name: 'system:auth-delegator', rules: [rule(['create'], ['authentication.k8s.io'], ['tokenreviews']), rule(['create'], ['authorization.k8s.io'], ['subjectaccessreviews'])] },
  { name: 'admin', aggregateFrom: 'admin' },
  { name: 'edit', labels: aggregateTo('admin'), aggregateFrom: 'edit' },
  { name: 'view', labels: aggregateTo('edit'), aggregateFrom: 'view' },
  {
    name: 'system:aggregate-to-admin',
    labels: aggregateTo('admin'),
    rules: [rule(['create'], ['authorization.k8s.io'], ['localsubjectaccessreviews']), rule(readWrite, ['rbac.authorization.k8s.io'], ['roles', 'rolebindings'])],
  },
  {
    name: 'system:aggregate-to-edit',
    labels: aggregateTo('edit'),
    rules: [
      rule(read, [''], ['pods/attach', 'pods/proxy', 'pods/exec', 'pods/portforward', 'secrets', 'services/proxy']),
      rule(['impersonate'], [''], ['serviceaccounts']),
      rule(write, [''], ['pods', 'pods/attach', 'pods/proxy', 'pods/exec', 'pods/portforward']),
      rule(['create'], [''], ['pods/eviction']),
      rule(write, [''], ['replicationcontrollers', 'replicationcontrollers/scale', 'serviceaccounts', 'services', 'services/proxy', 'persistentvolumeclaims', 'configmaps', 'secrets']),
      rule(['create'], [''], ['serviceaccounts/token']),
      rule(write, ['apps'], ['statefulsets', 'statefulsets/scale', 'daemonsets', 'deployments', 'deployments/scale', 'deployments/rollback', 'replicasets', 'replicasets/scale']),
      rule(write, ['autoscaling'], ['horizontalpodautoscalers']),
      rule(write, ['batch'], ['jobs', 'cronjobs']),
      rule(write, ['policy'], ['poddisruptionbudgets']),
      rule(write, ['networking.k8s.io'], ['networkpolicies', 'ingresses']),
    ],
  },
  {
    name: 'system:aggregate-to-view',
    labels: aggregateTo('view'),
    rules: [
      rule(read, [''], ['pods', 'replicationcontrollers', 'replicationcontrollers/scale', 'serviceaccounts', 'services', 'services/status', 'endpoints', 'persistentvolumeclaims', 'persistentvolumeclaims/status', 'configmaps']),
      rule(read, [''], ['limitranges', 'resourcequotas', 'bindings', 'events', 'pods/status', 'resourcequotas/status', 'namespaces/status', 'replicationcontrollers/status', 'pods/log']),
      rule(read, [''], ['namespaces']),
      rule(read, ['discovery.k8s.io'], ['endpointslices']),
      rule(read, ['apps'], [
        'controllerrevisions',
        'statefulsets',
        'statefulsets/status',
        'statefulsets/scale',
        'daemonsets',
        'daemonsets/status',
        'deployments',
        'deployments/status',
        'deployments/scale',
        'replicasets',
        'replicasets/status',
        'replicasets/scale',
      ]),
      rule(read, ['autoscaling'], ['horizontalpodautoscalers', 'horizontalpodautoscalers/status']),
      rule(read, ['batch'], ['jobs', 'cronjobs', 'cronjobs/status', 'jobs/status']),
      rule(read, ['policy'], ['poddisruptionbudgets', 'poddisruptionbudgets/status']),
      rule(read, ['networking.k8s.io'], ['networkpolicies', 'ingresses', 'ingresses/status']),
      rule(read, ['metrics.k8s.io'], ['pods', 'nodes']),
    ],
  },
];

export const defaultClusterRoleBindings: { name: string; role: string; groups: string[] }[] = [
  { name: 'cluster-admin', role: 'cluster-admin', groups: [mastersGroup] },
  { name: 'system:discovery', role: 'system:discovery', groups: ['system:authenticated'] },
  { name: 'system:basic-user', role: 'system:basic-user', groups: ['system:authenticated'] },
  { name: 'system:public-info-viewer', role: 'system:public-info-viewer', groups: ['system:authenticated', 'system:unauthenticated'] },
];

/**
 * Makes the default roles and bindings, as upstream's RBAC bootstrap does at each start: missing
 * ones are created, and ones still marked for auto-update get back any default rule or subject
 * they lost (what a user added stays). Aggregated roles' rules are the aggregation controller's.
 */
export async function bootstrapRbac(registry: Registry, store: ObjectStore): Promise<void> {
  const roles = registry.mustLookup('rbac.authorization.k8s.io', 'v1', 'clusterroles');
  const bindings = registry.mustLookup('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings');
  const meta = (name: string, labels?: Record<string, string>) => ({ name, labels: { ...label, ...labels }, annotations: { [autoupdate]: 'true' } });
  const reconcile = async (rt: typeof roles, desired: KubeObject, merge: (cur: KubeObject) => boolean) => {
    const name = desired.metadata.name as string;
    // A read first: on a restart every default exists, and a create that fails costs its validation and field tracking.
    let cur = await store.get(rt, undefined, name).catch((err) => (isCode(err, 'NotFound') ? undefined : Promise.reject(err)));
    if (!cur) {
      try {
        await store.create(rt, undefined, desired);
        return;
      } catch (err) {
        if (!isCode(err, 'AlreadyExists')) throw err;
        cur = await store.get(rt, undefined, name);
      }
    }
    const live = cur;
    if (live.metadata.annotations?.[autoupdate] !== 'true') return;
    if (merge(live)) await store.update(rt, undefined, name, () => live);
  };
  for (const r of defaultClusterRoles) {
    const desired: KubeObject = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: meta(r.name, r.labels), rules: r.rules ?? [] };
    if (r.aggregateFrom) desired.aggregationRule = { clusterRoleSelectors: [{ matchLabels: aggregateTo(r.aggregateFrom) }] };
    await reconcile(roles, desired, (cur) => {
      if (r.aggregateFrom) return false;
      const have = (cur.rules ?? []) as PolicyRule[];
      const lost = (r.rules ?? []).filter((d) => !have.some((h) => deepEqual(h, d)));
      cur.rules = [...have, ...lost];
      return lost.length > 0;
    });
  }
  for (const b of defaultClusterRoleBindings) {
    const subjects = b.groups.map((name) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name }));
    const desired: KubeObject = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: meta(b.name),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: b.role },
      subjects,
    };
    await reconcile(bindings, desired, (cur) => {
      const have = (cur.subjects ?? []) as KubeObject[];
      const lost = subjects.filter((d) => !have.some((h) => deepEqual(h, d)));
      cur.subjects = [...have, ...lost];
      return lost.length > 0;
    });
  }
}
