import type { KubeObject } from '../object.js';
import type { ResourceType } from '../resource-type.js';
import { ageColumn, col, nameColumn, num, workloadWideColumns } from './columns.js';
import { defaultPodSpec, validateTemplate } from './pod-spec.js';
import { immutableSelector, validateReplicas, validateSelector } from './workload-rules.js';

/** apps/v1: Deployments, ReplicaSets, StatefulSets, DaemonSets, ControllerRevisions. */
const apps = { group: 'apps', version: 'v1', namespaced: true, status: true, generation: true, nameRule: 'subdomain' as const, categories: ['all'] };
const scale = { specReplicas: 'spec.replicas', statusReplicas: 'status.replicas', selector: 'spec.selector' };
const tpl = (o: KubeObject) => o.spec?.template?.spec;

const validateWorkload = (o: KubeObject, errs: Parameters<NonNullable<ResourceType['validate']>>[1]) => {
  validateReplicas(o, errs);
  validateSelector(o, errs);
  validateTemplate(o, 'spec.template', errs, ['Always']);
};

const deployments: ResourceType = {
  ...apps,
  kind: 'Deployment',
  plural: 'deployments',
  singular: 'deployment',
  shortNames: ['deploy'],
  storage: 'apps/deployments',
  scale,
  defaults: (o) => {
    o.spec ??= {};
    const s = o.spec;
    s.replicas ??= 1;
    s.strategy ??= { type: 'RollingUpdate' };
    s.strategy.type ??= 'RollingUpdate';
    if (s.strategy.type === 'RollingUpdate') {
      s.strategy.rollingUpdate ??= {};
      s.strategy.rollingUpdate.maxUnavailable ??= '25%';
      s.strategy.rollingUpdate.maxSurge ??= '25%';
    }
    s.revisionHistoryLimit ??= 10;
    s.progressDeadlineSeconds ??= 600;
    defaultPodSpec(tpl(o));
  },
  validate: (o, errs) => {
    validateWorkload(o, errs);
    const t = o.spec?.strategy?.type;
    if (t && !['RollingUpdate', 'Recreate'].includes(t)) errs.notSupported('spec.strategy.type', t, ['Recreate', 'RollingUpdate']);
    if (t === 'Recreate' && o.spec?.strategy?.rollingUpdate) errs.forbidden('spec.strategy.rollingUpdate', 'may not be specified when strategy `type` is \'Recreate\'');
  },
  validateUpdate: immutableSelector,
  columns: [
    nameColumn,
    col('Ready', (o) => `${num(o.status?.readyReplicas)}/${num(o.spec?.replicas)}`),
    col('Up-to-date', (o) => num(o.status?.updatedReplicas), { type: 'integer' }),
    col('Available', (o) => num(o.status?.availableReplicas), { type: 'integer' }),
    ageColumn,
    ...workloadWideColumns(tpl),
  ],
};

const replicasets: ResourceType = {
  ...apps,
  kind: 'ReplicaSet',
  plural: 'replicasets',
  singular: 'replicaset',
  shortNames: ['rs'],
  storage: 'apps/replicasets',
  scale,
  defaults: (o) => {
    o.spec ??= {};
    o.spec.replicas ??= 1;
    defaultPodSpec(tpl(o));
  },
  validate: validateWorkload,
  validateUpdate: immutableSelector,
  fields: { 'status.replicas': (o) => String(num(o.status?.replicas)) },
  columns: [
    nameColumn,
    col('Desired', (o) => num(o.spec?.replicas), { type: 'integer' }),
    col('Current', (o) => num(o.status?.replicas), { type: 'integer' }),
    col('Ready', (o) => num(o.status?.readyReplicas), { type: 'integer' }),
    ageColumn,
    ...workloadWideColumns(tpl),
  ],
};

const statefulsets: ResourceType = {
  ...apps,
  kind: 'StatefulSet',
  plural: 'statefulsets',
  singular: 'statefulset',
  shortNames: ['sts'],
  storage: 'apps/statefulsets',
  scale,
  defaults: (o) => {
    o.spec ??= {};
    const s = o.spec;
    s.replicas ??= 1;
    s.podManagementPolicy ??= 'OrderedReady';
    s.updateStrategy ??= { type: 'RollingUpdate' };
    if (s.updateStrategy.type === 'RollingUpdate') s.updateStrategy.rollingUpdate ??= { partition: 0 };
    s.revisionHistoryLimit ??= 10;
    s.persistentVolumeClaimRetentionPolicy ??= { whenDeleted: 'Retain', whenScaled: 'Retain' };
    defaultPodSpec(tpl(o));
  },
  validate: (o, errs) => {
    validateWorkload(o, errs);
    const p = o.spec?.podManagementPolicy;
    if (p && !['OrderedReady', 'Parallel'].includes(p)) errs.notSupported('spec.podManagementPolicy', p, ['OrderedReady', 'Parallel']);
  },
  validateUpdate: (o, old, errs) => {
    immutableSelector(o, old, errs);
    for (const f of ['serviceName', 'podManagementPolicy', 'volumeClaimTemplates'] as const) {
      if (JSON.stringify(o.spec?.[f]) !== JSON.stringify(old.spec?.[f])) {
        errs.forbidden(
          'spec',
          "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        );
        break;
      }
    }
  },
  columns: [nameColumn, col('Ready', (o) => `${num(o.status?.readyReplicas)}/${num(o.spec?.replicas)}`), ageColumn, ...workloadWideColumns(tpl).slice(0, 2)],
};

const daemonsets: ResourceType = {
  ...apps,
  kind: 'DaemonSet',
  plural: 'daemonsets',
  singular: 'daemonset',
  shortNames: ['ds'],
  storage: 'apps/daemonsets',
  defaults: (o) => {
    o.spec ??= {};
    const s = o.spec;
    s.updateStrategy ??= { type: 'RollingUpdate' };
    if (s.updateStrategy.type === 'RollingUpdate') {
      s.updateStrategy.rollingUpdate ??= {};
      s.updateStrategy.rollingUpdate.maxUnavailable ??= 1;
      s.updateStrategy.rollingUpdate.maxSurge ??= 0;
    }
    s.revisionHistoryLimit ??= 10;
    defaultPodSpec(tpl(o));
  },
  validate: (o, errs) => {
    validateSelector(o, errs);
    validateTemplate(o, 'spec.template', errs, ['Always']);
  },
  validateUpdate: immutableSelector,
  columns: [
    nameColumn,
    col('Desired', (o) => num(o.status?.desiredNumberScheduled), { type: 'integer' }),
    col('Current', (o) => num(o.status?.currentNumberScheduled), { type: 'integer' }),
    col('Ready', (o) => num(o.status?.numberReady), { type: 'integer' }),
    col('Up-to-date', (o) => num(o.status?.updatedNumberScheduled), { type: 'integer' }),
    col('Available', (o) => num(o.status?.numberAvailable), { type: 'integer' }),
    col('Node Selector', (o) => Object.entries(o.spec?.template?.spec?.nodeSelector ?? {}).map(([k, v]) => `${k}=${v}`).join(',') || '<none>'),
    ageColumn,
    ...workloadWideColumns(tpl),
  ],
};

const controllerrevisions: ResourceType = {
  ...apps,
  categories: [],
  status: false,
  generation: false,
  kind: 'ControllerRevision',
  plural: 'controllerrevisions',
  singular: 'controllerrevision',
  storage: 'apps/controllerrevisions',
  validate: (o, errs) => {
    if (!Number.isInteger(o.revision) || o.revision < 0) errs.invalid('revision', o.revision, 'must be greater than or equal to 0');
  },
  validateUpdate: (o, old, errs) => {
    if (JSON.stringify(o.data) !== JSON.stringify(old.data)) errs.immutable('data', '');
  },
  columns: [
    nameColumn,
    col('Controller', (o) => {
      const ref = (o.metadata.ownerReferences ?? []).find((r) => r.controller);
      return ref ? `${ref.kind.toLowerCase()}.${ref.apiVersion.split('/')[0]}/${ref.name}` : '<none>';
    }),
    col('Revision', (o) => num(o.revision), { type: 'integer' }),
    ageColumn,
  ],
};

export const appsKinds: ResourceType[] = [deployments, replicasets, statefulsets, daemonsets, controllerrevisions];
