import type { FieldErrors } from '../field-errors.js';
import { deepEqual, type KubeObject } from '../object.js';
import type { ResourceType } from '../resource-type.js';
import { age, humanDuration } from '../time.js';
import { ageColumn, col, nameColumn, orNone } from './columns.js';
import { defaultPodSpec, qosClass, validatePodSpec, validateResourceList } from './pod-spec.js';
import { services } from './service.js';

/** The core ("" group, v1) kinds. */
const core = { group: '', version: 'v1', status: false, generation: false, nameRule: 'subdomain' as const };

// biome-ignore lint/suspicious/noExplicitAny: untyped status JSON
type J = Record<string, any>;

/** READY, STATUS and RESTARTS of a pod as kubectl prints them (printers.go printPod). */
export function podSummary(p: KubeObject): { ready: string; status: string; restarts: string } {
  const st: J = p.status ?? {};
  const containers = (p.spec?.containers ?? []) as J[];
  let reason: string = st.reason || st.phase || 'Pending';
  let restarts = 0;
  let lastRestart = 0;
  let readyCount = 0;
  let initializing = false;
  const inits = (st.initContainerStatuses ?? []) as J[];
  const nInit = (p.spec?.initContainers ?? []).length;
  for (let i = 0; i < inits.length; i++) {
    const c = inits[i];
    restarts += c.restartCount ?? 0;
    const t = c.state?.terminated;
    const w = c.state?.waiting;
    if (t && t.exitCode === 0) continue;
    if (c.started && c.state?.running) continue;
    if (t) reason = t.reason ? `Init:${t.reason}` : t.signal ? `Init:Signal:${t.signal}` : `Init:ExitCode:${t.exitCode}`;
    else if (w?.reason && w.reason !== 'PodInitializing') reason = `Init:${w.reason}`;
    else reason = `Init:${i}/${nInit}`;
    initializing = true;
    break;
  }
  const statuses = (st.containerStatuses ?? []) as J[];
  if (!initializing) {
    let hasRunning = false;
    for (let i = statuses.length - 1; i >= 0; i--) {
      const c = statuses[i];
      restarts += c.restartCount ?? 0;
      const lt = c.lastState?.terminated?.finishedAt;
      if (lt) lastRestart = Math.max(lastRestart, Date.parse(lt));
      const w = c.state?.waiting;
      const t = c.state?.terminated;
      if (w?.reason) reason = w.reason;
      else if (t?.reason) reason = t.reason;
      else if (t) reason = t.signal ? `Signal:${t.signal}` : `ExitCode:${t.exitCode}`;
      else if (c.ready && c.state?.running) {
        hasRunning = true;
        readyCount++;
      }
    }
    if (reason === 'Completed' && hasRunning) reason = st.conditions?.some((c: J) => c.type === 'Ready' && c.status === 'True') ? 'Running' : 'NotReady';
  }
  if (p.metadata.deletionTimestamp) reason = st.reason === 'NodeLost' ? 'Unknown' : 'Terminating';
  const restartText = lastRestart ? `${restarts} (${humanDuration(Date.now() - lastRestart)} ago)` : String(restarts);
  return { ready: `${readyCount}/${containers.length}`, status: reason, restarts: restartText };
}

const pods: ResourceType = {
  ...core,
  kind: 'Pod',
  plural: 'pods',
  singular: 'pod',
  namespaced: true,
  shortNames: ['po'],
  categories: ['all'],
  storage: 'core/pods',
  status: true,
  defaults: (o) => defaultPodSpec(o.spec),
  prepareForCreate: (o) => {
    o.status = { phase: 'Pending', qosClass: qosClass(o.spec) };
  },
  validate: (o, errs) => validatePodSpec(o.spec, 'spec', errs),
  validateUpdate: (o, old, errs) => {
    // Only images, activeDeadlineSeconds and added tolerations may change on a pod's spec.
    const strip = (s: J | undefined) => {
      const c: J = structuredClone(s ?? {});
      for (const x of [...(c.containers ?? []), ...(c.initContainers ?? [])]) delete x.image;
      delete c.activeDeadlineSeconds;
      delete c.tolerations;
      delete c.terminationGracePeriodSeconds;
      return c;
    };
    if (!deepEqual(strip(o.spec), strip(old.spec))) {
      errs.forbidden(
        'spec',
        'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
      );
    }
  },
  gracePeriod: (o, requested) => {
    if (!o.spec?.nodeName) return 0;
    if (o.status?.phase === 'Succeeded' || o.status?.phase === 'Failed') return 0;
    return requested ?? o.spec?.terminationGracePeriodSeconds ?? 30;
  },
  fields: {
    'spec.nodeName': (o) => o.spec?.nodeName ?? '',
    'spec.restartPolicy': (o) => o.spec?.restartPolicy ?? '',
    'spec.schedulerName': (o) => o.spec?.schedulerName ?? '',
    'spec.serviceAccountName': (o) => o.spec?.serviceAccountName ?? '',
    'spec.hostNetwork': (o) => String(!!o.spec?.hostNetwork),
    'status.phase': (o) => o.status?.phase ?? '',
    'status.podIP': (o) => o.status?.podIP ?? '',
    'status.nominatedNodeName': (o) => o.status?.nominatedNodeName ?? '',
  },
  columns: [
    nameColumn,
    col('Ready', (o) => podSummary(o).ready, { description: 'The aggregate readiness state of this pod for accepting traffic.' }),
    col('Status', (o) => podSummary(o).status, { description: 'The aggregate status of the containers in this pod.' }),
    col('Restarts', (o) => podSummary(o).restarts, { description: 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.' }),
    ageColumn,
    col('IP', (o) => orNone(o.status?.podIP), { wide: true }),
    col('Node', (o) => orNone(o.spec?.nodeName), { wide: true }),
    col('Nominated Node', (o) => orNone(o.status?.nominatedNodeName), { wide: true }),
    col('Readiness Gates', (o) => (o.spec?.readinessGates?.length ? `${o.spec.readinessGates.length}` : '<none>'), { wide: true }),
  ],
};


function formatEndpoints(o: KubeObject): string {
  const out: string[] = [];
  let total = 0;
  for (const s of (o.subsets ?? []) as J[]) {
    for (const a of (s.addresses ?? []) as J[]) {
      for (const p of (s.ports?.length ? s.ports : [{}]) as J[]) {
        total++;
        if (out.length < 3) out.push(p.port ? `${a.ip}:${p.port}` : a.ip);
      }
    }
  }
  if (!total) return '<none>';
  return total > 3 ? `${out.join(',')} + ${total - 3} more...` : out.join(',');
}

const endpoints: ResourceType = {
  ...core,
  kind: 'Endpoints',
  plural: 'endpoints',
  singular: 'endpoints',
  namespaced: true,
  shortNames: ['ep'],
  storage: 'core/endpoints',
  columns: [nameColumn, col('Endpoints', formatEndpoints), ageColumn],
};

const dataKey = /^[-._a-zA-Z0-9]+$/;
function validateDataKeys(o: KubeObject, errs: FieldErrors): void {
  for (const field of ['data', 'binaryData', 'stringData']) {
    const d = o[field];
    if (d === undefined || d === null) continue;
    if (typeof d !== 'object' || Array.isArray(d)) {
      errs.invalid(field, d, 'must be a map');
      continue;
    }
    for (const k of Object.keys(d)) {
      if (!dataKey.test(k) || k.length > 253) {
        errs.invalid(`${field}[${k}]`, k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')");
      }
    }
  }
}

function immutableData(o: KubeObject, old: KubeObject, errs: FieldErrors): void {
  if (old.immutable === true) {
    if (!deepEqual(o.data, old.data)) errs.forbidden('data', 'field is immutable when `immutable` is set');
    if (!deepEqual(o.binaryData, old.binaryData)) errs.forbidden('binaryData', 'field is immutable when `immutable` is set');
    if (o.immutable !== true) errs.forbidden('immutable', 'field is immutable when `immutable` is set');
  }
}

const configmaps: ResourceType = {
  ...core,
  kind: 'ConfigMap',
  plural: 'configmaps',
  singular: 'configmap',
  namespaced: true,
  shortNames: ['cm'],
  storage: 'core/configmaps',
  validate: (o, errs) => {
    validateDataKeys(o, errs);
    for (const [k, v] of Object.entries((o.data ?? {}) as J)) if (typeof v !== 'string') errs.invalid(`data[${k}]`, v, 'must be a string');
  },
  validateUpdate: immutableData,
  columns: [nameColumn, col('Data', (o) => Object.keys(o.data ?? {}).length + Object.keys(o.binaryData ?? {}).length, { type: 'integer' }), ageColumn],
};

/** What each well-known Secret type requires of its keys, in upstream's wording. */
function validateSecretType(o: J, errs: FieldErrors): void {
  const data: J = o.data ?? {};
  const has = (k: string) => typeof data[k] === 'string';
  const json = (k: string) => {
    if (!has(k)) return errs.required(`data[${k}]`);
    try {
      JSON.parse(Buffer.from(data[k], 'base64').toString());
    } catch (err) {
      errs.invalid(`data[${k}]`, '<secret contents redacted>', (err as Error).message);
    }
  };
  switch (o.type) {
    case 'kubernetes.io/service-account-token':
      if (!o.metadata?.annotations?.['kubernetes.io/service-account.name']) errs.required('metadata.annotations[kubernetes.io/service-account.name]');
      break;
    case 'kubernetes.io/dockercfg':
      json('.dockercfg');
      break;
    case 'kubernetes.io/dockerconfigjson':
      json('.dockerconfigjson');
      break;
    case 'kubernetes.io/basic-auth':
      if (!has('username') && !has('password')) {
        errs.required('data[username]');
        errs.required('data[password]');
      }
      break;
    case 'kubernetes.io/ssh-auth':
      if (!data['ssh-privatekey']) errs.required('data[ssh-privatekey]');
      break;
    case 'kubernetes.io/tls':
      if (!has('tls.crt')) errs.required('data[tls.crt]');
      if (!has('tls.key')) errs.required('data[tls.key]');
      break;
  }
}

const secrets: ResourceType = {
  ...core,
  kind: 'Secret',
  plural: 'secrets',
  singular: 'secret',
  namespaced: true,
  storage: 'core/secrets',
  defaults: (o) => {
    o.type ??= 'Opaque';
    // stringData is write-only: merged into data, never stored.
    if (o.stringData && typeof o.stringData === 'object') {
      o.data ??= {};
      for (const [k, v] of Object.entries(o.stringData as J)) o.data[k] = Buffer.from(String(v)).toString('base64');
      delete o.stringData;
    }
  },
  validate: (o, errs) => {
    validateDataKeys(o, errs);
    for (const [k, v] of Object.entries((o.data ?? {}) as J)) {
      if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) errs.invalid(`data[${k}]`, '<secret contents redacted>', 'must be base64-encoded');
    }
    validateSecretType(o, errs);
  },
  validateUpdate: (o, old, errs) => {
    immutableData(o, old, errs);
    if (o.type !== old.type) errs.immutable('type', o.type);
  },
  fields: { type: (o) => o.type ?? '' },
  columns: [nameColumn, col('Type', (o) => o.type ?? ''), col('Data', (o) => Object.keys(o.data ?? {}).length, { type: 'integer' }), ageColumn],
};

const serviceaccounts: ResourceType = {
  ...core,
  kind: 'ServiceAccount',
  plural: 'serviceaccounts',
  singular: 'serviceaccount',
  namespaced: true,
  shortNames: ['sa'],
  storage: 'core/serviceaccounts',
  columns: [nameColumn, col('Secrets', (o) => (o.secrets ?? []).length, { type: 'integer' }), ageColumn],
};

function eventObject(o: KubeObject): string {
  const io = o.involvedObject ?? {};
  return `${String(io.kind ?? '').toLowerCase()}/${io.name ?? ''}`;
}
function lastSeen(o: KubeObject): string {
  const t = o.series?.lastObservedTime ?? o.lastTimestamp ?? o.eventTime ?? o.firstTimestamp ?? o.metadata.creationTimestamp;
  return age(t);
}

const events: ResourceType = {
  ...core,
  kind: 'Event',
  plural: 'events',
  singular: 'event',
  namespaced: true,
  shortNames: ['ev'],
  storage: 'core/events',
  validate: (o, errs) => {
    const ns = o.involvedObject?.namespace;
    if (ns && o.metadata.namespace && ns !== o.metadata.namespace) errs.invalid('involvedObject.namespace', ns, 'does not match event.namespace');
  },
  fields: {
    'involvedObject.kind': (o) => o.involvedObject?.kind ?? '',
    'involvedObject.namespace': (o) => o.involvedObject?.namespace ?? '',
    'involvedObject.name': (o) => o.involvedObject?.name ?? '',
    'involvedObject.uid': (o) => o.involvedObject?.uid ?? '',
    'involvedObject.apiVersion': (o) => o.involvedObject?.apiVersion ?? '',
    'involvedObject.resourceVersion': (o) => o.involvedObject?.resourceVersion ?? '',
    'involvedObject.fieldPath': (o) => o.involvedObject?.fieldPath ?? '',
    reason: (o) => o.reason ?? '',
    reportingComponent: (o) => o.reportingComponent ?? '',
    source: (o) => o.source?.component ?? '',
    type: (o) => o.type ?? '',
  },
  columns: [
    col('Last Seen', lastSeen),
    col('Type', (o) => o.type ?? ''),
    col('Reason', (o) => o.reason ?? ''),
    col('Object', eventObject),
    col('Subobject', (o) => o.involvedObject?.fieldPath ?? '', { wide: true }),
    col('Source', (o) => [o.source?.component ?? o.reportingComponent, o.source?.host].filter(Boolean).join(', '), { wide: true }),
    col('Message', (o) => String(o.message ?? '').trim()),
    col('First Seen', (o) => age(o.firstTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp), { wide: true }),
    col('Count', (o) => o.series?.count ?? o.count ?? 1, { wide: true, type: 'integer' }),
    { ...nameColumn, priority: 1 },
  ],
};

function nodeStatus(o: KubeObject): string {
  const ready = ((o.status?.conditions ?? []) as J[]).find((c) => c.type === 'Ready');
  const parts = [ready?.status === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown'];
  if (o.spec?.unschedulable) parts.push('SchedulingDisabled');
  return parts.join(',');
}
function nodeAddress(o: KubeObject, type: string): string {
  return ((o.status?.addresses ?? []) as J[]).find((a) => a.type === type)?.address ?? '<none>';
}

const nodes: ResourceType = {
  ...core,
  kind: 'Node',
  plural: 'nodes',
  singular: 'node',
  namespaced: false,
  shortNames: ['no'],
  storage: 'core/nodes',
  status: true,
  keepStatusOnCreate: true,
  fields: { 'spec.unschedulable': (o) => String(!!o.spec?.unschedulable) },
  columns: [
    nameColumn,
    col('Status', nodeStatus),
    col('Roles', (o) => Object.keys(o.metadata.labels ?? {}).filter((k) => k.startsWith('node-role.kubernetes.io/')).map((k) => k.slice(24)).join(',') || '<none>'),
    ageColumn,
    col('Version', (o) => o.status?.nodeInfo?.kubeletVersion ?? ''),
    col('Internal-IP', (o) => nodeAddress(o, 'InternalIP'), { wide: true }),
    col('External-IP', (o) => nodeAddress(o, 'ExternalIP'), { wide: true }),
    col('OS-Image', (o) => o.status?.nodeInfo?.osImage ?? '<unknown>', { wide: true }),
    col('Kernel-Version', (o) => o.status?.nodeInfo?.kernelVersion ?? '<unknown>', { wide: true }),
    col('Container-Runtime', (o) => o.status?.nodeInfo?.containerRuntimeVersion ?? '<unknown>', { wide: true }),
  ],
};

const namespaces: ResourceType = {
  ...core,
  kind: 'Namespace',
  plural: 'namespaces',
  singular: 'namespace',
  namespaced: false,
  shortNames: ['ns'],
  storage: 'core/namespaces',
  status: true,
  nameRule: 'label',
  defaults: (o) => {
    o.metadata.labels = { ...(o.metadata.labels ?? {}), 'kubernetes.io/metadata.name': o.metadata.name ?? '' };
  },
  prepareForCreate: (o) => {
    o.spec = { finalizers: ['kubernetes'] };
    o.status = { phase: 'Active' };
  },
  systemFinalizers: (o) => o.spec?.finalizers ?? [],
  markDeleting: (o) => {
    o.status = { ...(o.status ?? {}), phase: 'Terminating' };
  },
  fields: { 'status.phase': (o) => o.status?.phase ?? '' },
  columns: [nameColumn, col('Status', (o) => o.status?.phase ?? ''), ageColumn],
};

const accessModes: Record<string, string> = { ReadWriteOnce: 'RWO', ReadOnlyMany: 'ROX', ReadWriteMany: 'RWX', ReadWriteOncePod: 'RWOP' };
const modes = (o: KubeObject, path: 'spec' | 'status') => ((o[path]?.accessModes ?? []) as string[]).map((m) => accessModes[m] ?? m).join(',');

const persistentvolumes: ResourceType = {
  ...core,
  kind: 'PersistentVolume',
  plural: 'persistentvolumes',
  singular: 'persistentvolume',
  namespaced: false,
  shortNames: ['pv'],
  storage: 'core/persistentvolumes',
  status: true,
  defaults: (o) => {
    o.spec ??= {};
    o.spec.persistentVolumeReclaimPolicy ??= 'Retain';
    o.spec.volumeMode ??= 'Filesystem';
  },
  prepareForCreate: (o) => {
    o.status = { phase: 'Pending' };
  },
  validate: (o, errs) => {
    if (!o.spec?.capacity?.storage) errs.required('spec.capacity.storage');
    if (!o.spec?.accessModes?.length) errs.required('spec.accessModes');
  },
  columns: [
    nameColumn,
    col('Capacity', (o) => o.spec?.capacity?.storage ?? ''),
    col('Access Modes', (o) => modes(o, 'spec')),
    col('Reclaim Policy', (o) => o.spec?.persistentVolumeReclaimPolicy ?? ''),
    col('Status', (o) => o.status?.phase ?? ''),
    col('Claim', (o) => (o.spec?.claimRef ? `${o.spec.claimRef.namespace}/${o.spec.claimRef.name}` : '')),
    col('StorageClass', (o) => o.spec?.storageClassName ?? ''),
    col('VolumeAttributesClass', (o) => orNone(o.spec?.volumeAttributesClassName)),
    col('Reason', (o) => o.status?.reason ?? ''),
    ageColumn,
    col('VolumeMode', (o) => o.spec?.volumeMode ?? 'Filesystem', { wide: true }),
  ],
};

const persistentvolumeclaims: ResourceType = {
  ...core,
  kind: 'PersistentVolumeClaim',
  plural: 'persistentvolumeclaims',
  singular: 'persistentvolumeclaim',
  namespaced: true,
  shortNames: ['pvc'],
  storage: 'core/persistentvolumeclaims',
  status: true,
  defaults: (o) => {
    o.spec ??= {};
    o.spec.volumeMode ??= 'Filesystem';
  },
  prepareForCreate: (o) => {
    o.status = { phase: 'Pending' };
  },
  validate: (o, errs) => {
    if (!o.spec?.accessModes?.length) errs.required('spec.accessModes', 'at least 1 access mode is required');
    if (!o.spec?.resources?.requests?.storage) errs.required('spec.resources[storage]');
  },
  columns: [
    nameColumn,
    col('Status', (o) => o.status?.phase ?? ''),
    col('Volume', (o) => o.spec?.volumeName ?? ''),
    col('Capacity', (o) => o.status?.capacity?.storage ?? ''),
    col('Access Modes', (o) => modes(o, 'status')),
    col('StorageClass', (o) => o.spec?.storageClassName ?? ''),
    col('VolumeAttributesClass', (o) => orNone(o.spec?.volumeAttributesClassName)),
    ageColumn,
    col('VolumeMode', (o) => o.spec?.volumeMode ?? 'Filesystem', { wide: true }),
  ],
};

/** "pods: 1/10, requests.cpu: 0/2": used over hard, for either the limits.* entries or the others. */
function quotaUsage(o: KubeObject, limits: boolean): string {
  const hard: Record<string, string> = o.spec?.hard ?? {};
  return Object.keys(hard)
    .filter((k) => k.startsWith('limits.') === limits)
    .map((k) => `${k}: ${o.status?.used?.[k] ?? 0}/${hard[k]}`)
    .join(', ');
}

const resourcequotas: ResourceType = {
  ...core,
  kind: 'ResourceQuota',
  plural: 'resourcequotas',
  singular: 'resourcequota',
  namespaced: true,
  shortNames: ['quota'],
  storage: 'core/resourcequotas',
  status: true,
  validate: (o, errs) => {
    validateResourceList(o.spec?.hard, 'spec.hard', errs);
  },
  columns: [
    nameColumn,
    ageColumn,
    col('Request', (o) => quotaUsage(o, false)),
    col('Limit', (o) => quotaUsage(o, true)),
  ],
};

const limitranges: ResourceType = {
  ...core,
  kind: 'LimitRange',
  plural: 'limitranges',
  singular: 'limitrange',
  namespaced: true,
  shortNames: ['limits'],
  storage: 'core/limitranges',
  defaults: (o) => {
    // Upstream's LimitRangeItem defaults: a Container item's default limit falls back to max,
    // its default request to the default limit, then to min.
    for (const item of Array.isArray(o.spec?.limits) ? o.spec.limits : []) {
      if (item?.type !== 'Container') continue;
      const d = { ...(item.max ?? {}), ...(item.default ?? {}) };
      if (Object.keys(d).length) item.default = d;
      const dr = { ...(item.min ?? {}), ...d, ...(item.defaultRequest ?? {}) };
      if (Object.keys(dr).length) item.defaultRequest = dr;
    }
  },
  validate: (o, errs) => {
    const types = ['Container', 'PersistentVolumeClaim', 'Pod'];
    const limits = o.spec?.limits;
    if (!Array.isArray(limits)) {
      errs.required('spec.limits');
      return;
    }
    limits.forEach((item, i) => {
      const p = `spec.limits[${i}]`;
      if (!types.includes(item?.type)) errs.notSupported(`${p}.type`, item?.type ?? '', types);
      const lists: Record<string, Map<string, number>> = {};
      for (const k of ['min', 'max', 'default', 'defaultRequest', 'maxLimitRequestRatio']) lists[k] = validateResourceList(item?.[k], `${p}.${k}`, errs);
      for (const [r, min] of lists.min) {
        const max = lists.max.get(r);
        if (max !== undefined && min > max) errs.invalid(`${p}.min[${r}]`, item.min[r], `min value ${item.min[r]} is greater than max value ${item.max[r]}`);
      }
      for (const k of ['default', 'defaultRequest']) {
        if (item?.type !== 'Container' && lists[k].size) errs.forbidden(`${p}.${k}`, 'may not be specified when `type` is not \'Container\'');
        for (const [r, v] of lists[k]) {
          const max = lists.max.get(r);
          const min = lists.min.get(r);
          if (max !== undefined && v > max) errs.invalid(`${p}.${k}[${r}]`, item[k][r], `${k === 'default' ? 'default' : 'default request'} value ${item[k][r]} is greater than max value ${item.max[r]}`);
          if (min !== undefined && v < min) errs.invalid(`${p}.${k}[${r}]`, item[k][r], `min value ${item.min[r]} is greater than ${k === 'default' ? 'default' : 'default request'} value ${item[k][r]}`);
        }
      }
      for (const [r, v] of lists.defaultRequest) {
        const d = lists.default.get(r);
        if (d !== undefined && v > d) errs.invalid(`${p}.defaultRequest[${r}]`, item.defaultRequest[r], `default request value ${item.defaultRequest[r]} is greater than default limit value ${item.default[r]}`);
      }
    });
  },
  columns: [nameColumn, col('Created At', (o) => o.metadata.creationTimestamp ?? '')],
};

export const coreKinds: ResourceType[] = [
  pods,
  services,
  endpoints,
  configmaps,
  secrets,
  serviceaccounts,
  events,
  nodes,
  namespaces,
  persistentvolumes,
  persistentvolumeclaims,
  resourcequotas,
  limitranges,
];

