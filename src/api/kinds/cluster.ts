import type { FieldErrors } from '../field-errors.js';
import { cidrContains, parseCidr } from '../ipv4.js';
import type { KubeObject } from '../object.js';
import type { ResourceType } from '../resource-type.js';
import { labelSelectorToString } from '../selectors.js';
import { age } from '../time.js';
import { ageColumn, col, nameColumn, num, orNone } from './columns.js';
import { ingressclasses, ingresses } from './ingress.js';
import { validateResourceList } from './pod-spec.js';

/**
 * The smaller groups: coordination, discovery, storage, node, policy, networking, autoscaling,
 * scheduling, and events.k8s.io (stored as core Events and converted).
 */
const base = { status: false, generation: false, nameRule: 'subdomain' as const };
// biome-ignore lint/suspicious/noExplicitAny: untyped JSON
type J = Record<string, any>;

const leases: ResourceType = {
  ...base,
  group: 'coordination.k8s.io',
  version: 'v1',
  kind: 'Lease',
  plural: 'leases',
  singular: 'lease',
  namespaced: true,
  storage: 'coordination.k8s.io/leases',
  columns: [nameColumn, col('Holder', (o) => o.spec?.holderIdentity ?? ''), ageColumn],
};

const endpointslices: ResourceType = {
  ...base,
  group: 'discovery.k8s.io',
  version: 'v1',
  kind: 'EndpointSlice',
  plural: 'endpointslices',
  singular: 'endpointslice',
  namespaced: true,
  storage: 'discovery.k8s.io/endpointslices',
  validate: (o, errs) => {
    if (!['IPv4', 'IPv6', 'FQDN'].includes(o.addressType)) errs.notSupported('addressType', o.addressType, ['FQDN', 'IPv4', 'IPv6']);
    ((o.endpoints ?? []) as J[]).forEach((e, i) => {
      if (!e?.addresses?.length) errs.required(`endpoints[${i}].addresses`, 'must contain at least 1 address');
    });
  },
  columns: [
    nameColumn,
    col('AddressType', (o) => o.addressType ?? ''),
    col('Ports', (o) => ((o.ports ?? []) as J[]).map((p) => p.port).join(',') || '<unset>'),
    col('Endpoints', (o) => {
      const addrs = ((o.endpoints ?? []) as J[]).flatMap((e) => e.addresses ?? []);
      if (!addrs.length) return '<unset>';
      return addrs.length > 3 ? `${addrs.slice(0, 3).join(',')} + ${addrs.length - 3} more...` : addrs.join(',');
    }),
    ageColumn,
  ],
};

const storageclasses: ResourceType = {
  ...base,
  group: 'storage.k8s.io',
  version: 'v1',
  kind: 'StorageClass',
  plural: 'storageclasses',
  singular: 'storageclass',
  namespaced: false,
  shortNames: ['sc'],
  storage: 'storage.k8s.io/storageclasses',
  defaults: (o) => {
    o.reclaimPolicy ??= 'Delete';
    o.volumeBindingMode ??= 'Immediate';
  },
  validate: (o, errs) => {
    if (!o.provisioner) errs.required('provisioner');
  },
  validateUpdate: (o, old, errs) => {
    if (o.provisioner !== old.provisioner) errs.forbidden('provisioner', 'updates to provisioner are forbidden.');
  },
  columns: [
    {
      ...nameColumn,
      cell: (o) => (o.metadata.annotations?.['storageclass.kubernetes.io/is-default-class'] === 'true' ? `${o.metadata.name} (default)` : (o.metadata.name ?? '')),
    },
    col('Provisioner', (o) => o.provisioner ?? ''),
    col('ReclaimPolicy', (o) => o.reclaimPolicy ?? 'Delete'),
    col('VolumeBindingMode', (o) => o.volumeBindingMode ?? 'Immediate'),
    col('AllowVolumeExpansion', (o) => String(!!o.allowVolumeExpansion)),
    ageColumn,
  ],
};

const runtimeclasses: ResourceType = {
  ...base,
  group: 'node.k8s.io',
  version: 'v1',
  kind: 'RuntimeClass',
  plural: 'runtimeclasses',
  singular: 'runtimeclass',
  namespaced: false,
  storage: 'node.k8s.io/runtimeclasses',
  validate: (o, errs) => {
    if (!o.handler) errs.required('handler');
    else if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.handler)) errs.invalid('handler', o.handler, 'a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\'');
    validateResourceList(o.overhead?.podFixed, 'overhead.podFixed', errs);
  },
  validateUpdate: (o, old, errs) => {
    if (o.handler !== old.handler) errs.immutable('handler', o.handler);
  },
  columns: [nameColumn, col('Handler', (o) => o.handler ?? ''), ageColumn],
};

const poddisruptionbudgets: ResourceType = {
  ...base,
  group: 'policy',
  version: 'v1',
  kind: 'PodDisruptionBudget',
  plural: 'poddisruptionbudgets',
  singular: 'poddisruptionbudget',
  namespaced: true,
  shortNames: ['pdb'],
  storage: 'policy/poddisruptionbudgets',
  status: true,
  generation: true,
  validate: (o, errs) => {
    if (o.spec?.minAvailable !== undefined && o.spec?.maxUnavailable !== undefined) {
      errs.invalid('spec', o.spec, 'minAvailable and maxUnavailable cannot be both set');
    }
  },
  columns: [
    nameColumn,
    col('Min Available', (o) => orNone(o.spec?.minAvailable ?? 'N/A')),
    col('Max Unavailable', (o) => orNone(o.spec?.maxUnavailable ?? 'N/A')),
    col('Allowed Disruptions', (o) => num(o.status?.disruptionsAllowed), { type: 'integer' }),
    ageColumn,
  ],
};

function validatePeer(peer: J, f: string, errs: FieldErrors): void {
  const set = ['podSelector', 'namespaceSelector', 'ipBlock'].filter((k) => peer?.[k] !== undefined);
  if (!set.length) errs.required(f, 'must specify a peer');
  if (peer?.ipBlock && set.length > 1) errs.forbidden(f, 'may not specify more than 1 peer type');
  if (!peer?.ipBlock) return;
  const cidr = parseCidr(peer.ipBlock.cidr, true);
  if (!cidr) errs.invalid(`${f}.ipBlock.cidr`, peer.ipBlock.cidr, 'must be a valid CIDR, (e.g. 10.9.8.0/24 or 2001:db8::/64)');
  ((peer.ipBlock.except ?? []) as unknown[]).forEach((e, k) => {
    const ex = parseCidr(e, true);
    if (!ex) errs.invalid(`${f}.ipBlock.except[${k}]`, e, 'must be a valid CIDR, (e.g. 10.9.8.0/24 or 2001:db8::/64)');
    else if (cidr && (ex.bits <= cidr.bits || !cidrContains(cidr, ex.base))) errs.invalid(`${f}.ipBlock.except[${k}]`, e, 'must be a strict subset of `cidr`');
  });
}

function validatePolicyPort(p: J, f: string, errs: FieldErrors): void {
  if (p?.protocol !== undefined && !['TCP', 'UDP', 'SCTP'].includes(p.protocol)) errs.notSupported(`${f}.protocol`, p.protocol, ['SCTP', 'TCP', 'UDP']);
  const port = p?.port;
  if (typeof port === 'number' && !(Number.isInteger(port) && port >= 1 && port <= 65535)) errs.invalid(`${f}.port`, port, 'must be between 1 and 65535, inclusive');
  if (typeof port === 'string' && !/^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/.test(port)) errs.invalid(`${f}.port`, port, 'must be a valid port name (at most 15 lowercase letters, digits and dashes)');
  if (p?.endPort !== undefined) {
    if (typeof port !== 'number') errs.required(`${f}.port`, 'must be specified when endPort is specified, and be a number');
    else if (!(Number.isInteger(p.endPort) && p.endPort >= port && p.endPort <= 65535)) errs.invalid(`${f}.endPort`, p.endPort, 'must be greater than or equal to `port`');
  }
}

const networkpolicies: ResourceType = {
  ...base,
  group: 'networking.k8s.io',
  version: 'v1',
  kind: 'NetworkPolicy',
  plural: 'networkpolicies',
  singular: 'networkpolicy',
  namespaced: true,
  shortNames: ['netpol'],
  storage: 'networking.k8s.io/networkpolicies',
  generation: true,
  defaults: (o) => {
    o.spec ??= {};
    o.spec.podSelector ??= {};
    if (!o.spec.policyTypes) o.spec.policyTypes = o.spec.egress ? ['Ingress', 'Egress'] : ['Ingress'];
  },
  validate: (o, errs) => {
    for (const t of (o.spec?.policyTypes ?? []) as string[]) if (!['Ingress', 'Egress'].includes(t)) errs.notSupported('spec.policyTypes', t, ['Ingress', 'Egress']);
    for (const dir of ['ingress', 'egress'] as const) {
      ((o.spec?.[dir] ?? []) as J[]).forEach((rule, i) => {
        const f = `spec.${dir}[${i}]`;
        const peers = dir === 'ingress' ? 'from' : 'to';
        for (const [j, peer] of ((rule?.[peers] ?? []) as J[]).entries()) validatePeer(peer, `${f}.${peers}[${j}]`, errs);
        for (const [j, p] of ((rule?.ports ?? []) as J[]).entries()) validatePolicyPort(p, `${f}.ports[${j}]`, errs);
      });
    }
  },
  columns: [nameColumn, col('Pod-Selector', (o) => labelSelectorToString(o.spec?.podSelector) || '<none>'), ageColumn],
};

function hpaTargets(o: KubeObject): string {
  const metrics = (o.spec?.metrics ?? []) as J[];
  const current = (o.status?.currentMetrics ?? []) as J[];
  if (!metrics.length) return '<none>';
  return metrics
    .map((m, i) => {
      if (m.type === 'Resource') {
        const t = m.resource?.target ?? {};
        const cur = current[i]?.resource?.current;
        if (t.type === 'Utilization') return `${m.resource.name}: ${cur?.averageUtilization !== undefined ? `${cur.averageUtilization}%` : '<unknown>'}/${t.averageUtilization}%`;
        return `${m.resource.name}: ${cur?.averageValue ?? '<unknown>'}/${t.averageValue ?? t.value}`;
      }
      return `<${m.type}>`;
    })
    .join(', ');
}

const hpaColumns = [
  nameColumn,
  col('Reference', (o: KubeObject) => `${o.spec?.scaleTargetRef?.kind}/${o.spec?.scaleTargetRef?.name}`),
  col('Targets', hpaTargets),
  col('MinPods', (o: KubeObject) => o.spec?.minReplicas ?? 1, { type: 'integer' }),
  col('MaxPods', (o: KubeObject) => num(o.spec?.maxReplicas), { type: 'integer' }),
  col('Replicas', (o: KubeObject) => num(o.status?.currentReplicas), { type: 'integer' }),
  ageColumn,
];

const hpaBase = {
  ...base,
  group: 'autoscaling',
  kind: 'HorizontalPodAutoscaler',
  plural: 'horizontalpodautoscalers',
  singular: 'horizontalpodautoscaler',
  namespaced: true,
  shortNames: ['hpa'],
  categories: ['all'],
  storage: 'autoscaling/horizontalpodautoscalers',
  status: true,
  generation: true,
  columns: hpaColumns,
};

const hpaV2: ResourceType = {
  ...hpaBase,
  version: 'v2',
  defaults: (o) => {
    o.spec ??= {};
    o.spec.minReplicas ??= 1;
    if (!o.spec.metrics) o.spec.metrics = [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } }];
  },
  validate: (o, errs) => {
    const s = o.spec ?? {};
    if (!s.scaleTargetRef?.kind) errs.required('spec.scaleTargetRef.kind');
    if (!s.scaleTargetRef?.name) errs.required('spec.scaleTargetRef.name');
    if (!Number.isInteger(s.maxReplicas) || s.maxReplicas < 1) errs.invalid('spec.maxReplicas', s.maxReplicas, 'must be greater than 0');
    if (s.minReplicas !== undefined && (!Number.isInteger(s.minReplicas) || s.minReplicas < 1)) errs.invalid('spec.minReplicas', s.minReplicas, 'must be greater than or equal to 1');
    if (Number.isInteger(s.minReplicas) && Number.isInteger(s.maxReplicas) && s.minReplicas > s.maxReplicas) {
      errs.invalid('spec.maxReplicas', s.maxReplicas, 'must be greater than or equal to `minReplicas`');
    }
  },
};

/** autoscaling/v1 is stored as v2: the CPU utilisation target maps onto one Resource metric. */
const hpaV1: ResourceType = {
  ...hpaBase,
  version: 'v1',
  toStorage: (o) => {
    const out: KubeObject = structuredClone(o);
    out.apiVersion = 'autoscaling/v2';
    const s = out.spec ?? {};
    const pct = s.targetCPUUtilizationPercentage;
    delete s.targetCPUUtilizationPercentage;
    if (pct !== undefined) s.metrics = [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: pct } } }];
    if (out.status) {
      const cur = out.status.currentCPUUtilizationPercentage;
      delete out.status.currentCPUUtilizationPercentage;
      if (cur !== undefined) out.status.currentMetrics = [{ type: 'Resource', resource: { name: 'cpu', current: { averageUtilization: cur } } }];
    }
    return out;
  },
  fromStorage: (o) => {
    const out: KubeObject = structuredClone(o);
    out.apiVersion = 'autoscaling/v1';
    const s = out.spec ?? {};
    const cpu = ((s.metrics ?? []) as J[]).find((m) => m.type === 'Resource' && m.resource?.name === 'cpu' && m.resource?.target?.type === 'Utilization');
    delete s.metrics;
    delete s.behavior;
    if (cpu) s.targetCPUUtilizationPercentage = cpu.resource.target.averageUtilization;
    if (out.status) {
      const cur = ((out.status.currentMetrics ?? []) as J[]).find((m) => m.type === 'Resource' && m.resource?.name === 'cpu');
      delete out.status.currentMetrics;
      delete out.status.conditions;
      if (cur?.resource?.current?.averageUtilization !== undefined) out.status.currentCPUUtilizationPercentage = cur.resource.current.averageUtilization;
    }
    return out;
  },
  columns: [
    ...hpaColumns.slice(0, 2),
    col('Targets', (o: KubeObject) => `${o.status?.currentCPUUtilizationPercentage ?? '<unknown>'}%/${o.spec?.targetCPUUtilizationPercentage ?? 80}%`),
    ...hpaColumns.slice(3),
  ],
};

const priorityclasses: ResourceType = {
  ...base,
  group: 'scheduling.k8s.io',
  version: 'v1',
  kind: 'PriorityClass',
  plural: 'priorityclasses',
  singular: 'priorityclass',
  namespaced: false,
  shortNames: ['pc'],
  storage: 'scheduling.k8s.io/priorityclasses',
  defaults: (o) => {
    o.preemptionPolicy ??= 'PreemptLowerPriority';
  },
  validate: (o, errs) => {
    if (!Number.isInteger(o.value)) errs.required('value');
    else if (o.value > 1_000_000_000 && !String(o.metadata.name).startsWith('system-')) errs.forbidden('value', 'maximum allowed value of a user defined priority is 1000000000');
  },
  validateUpdate: (o, old, errs) => {
    if (o.value !== old.value) errs.forbidden('value', 'may not be changed in an update.');
  },
  columns: [nameColumn, col('Value', (o) => num(o.value), { type: 'integer' }), col('Global-Default', (o) => String(!!o.globalDefault)), ageColumn, col('PreemptionPolicy', (o) => o.preemptionPolicy ?? '')],
};

/** events.k8s.io/v1 field names onto core/v1 Event field names (the storage form). */
const eventRenames: [string, string][] = [
  ['regarding', 'involvedObject'],
  ['note', 'message'],
  ['deprecatedSource', 'source'],
  ['deprecatedFirstTimestamp', 'firstTimestamp'],
  ['deprecatedLastTimestamp', 'lastTimestamp'],
  ['deprecatedCount', 'count'],
  ['reportingController', 'reportingComponent'],
];

function renameFields(o: KubeObject, pairs: [string, string][], apiVersion: string): KubeObject {
  const out: KubeObject = structuredClone(o);
  out.apiVersion = apiVersion;
  for (const [from, to] of pairs) {
    if (from in out) {
      out[to] = out[from];
      delete out[from];
    }
  }
  return out;
}

const eventsV1: ResourceType = {
  ...base,
  group: 'events.k8s.io',
  version: 'v1',
  kind: 'Event',
  plural: 'events',
  singular: 'event',
  namespaced: true,
  shortNames: ['ev'],
  storage: 'core/events',
  toStorage: (o) => renameFields(o, eventRenames, 'v1'),
  fromStorage: (o) =>
    renameFields(
      o,
      eventRenames.map(([a, b]) => [b, a]),
      'events.k8s.io/v1',
    ),
  validate: (o, errs) => {
    if (!o.eventTime) errs.required('eventTime');
    if (!o.reportingController) errs.required('reportingController');
    if (!o.reportingInstance) errs.required('reportingInstance');
  },
  fields: {
    'regarding.kind': (o) => o.regarding?.kind ?? '',
    'regarding.name': (o) => o.regarding?.name ?? '',
    'regarding.namespace': (o) => o.regarding?.namespace ?? '',
    'regarding.uid': (o) => o.regarding?.uid ?? '',
    reason: (o) => o.reason ?? '',
    type: (o) => o.type ?? '',
    reportingController: (o) => o.reportingController ?? '',
  },
  columns: [
    col('Last Seen', (o) => age(o.series?.lastObservedTime ?? o.deprecatedLastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp)),
    col('Type', (o) => o.type ?? ''),
    col('Reason', (o) => o.reason ?? ''),
    col('Object', (o) => `${String(o.regarding?.kind ?? '').toLowerCase()}/${o.regarding?.name ?? ''}`),
    col('Message', (o) => String(o.note ?? '').trim()),
  ],
};

/**
 * metrics.k8s.io/v1beta1 (what kubectl top and the HPA read): usage samples written by whoever
 * plays a kubelet without an endpoint (the node simulator) and stored like any object; reads
 * also compute live figures from real kubelets (apiserver/metrics-api.ts).
 */
const usageCells = (o: KubeObject) => {
  const sum = { cpu: 0, memory: 0 };
  for (const c of (o.containers ?? []) as J[]) {
    sum.cpu += Number.parseFloat(String(c.usage?.cpu ?? '0')) || 0;
    sum.memory += Number.parseFloat(String(c.usage?.memory ?? '0')) || 0;
  }
  return sum;
};

const podMetrics: ResourceType = {
  ...base,
  group: 'metrics.k8s.io',
  version: 'v1beta1',
  kind: 'PodMetrics',
  plural: 'pods',
  singular: '',
  namespaced: true,
  storage: 'metrics.k8s.io/pods',
  columns: [nameColumn, col('CPU', (o) => usageCells(o).cpu), ageColumn],
};

const nodeMetrics: ResourceType = {
  ...base,
  group: 'metrics.k8s.io',
  version: 'v1beta1',
  kind: 'NodeMetrics',
  plural: 'nodes',
  singular: '',
  namespaced: false,
  storage: 'metrics.k8s.io/nodes',
  columns: [nameColumn, col('CPU', (o) => String(o.usage?.cpu ?? '')), col('Memory', (o) => String(o.usage?.memory ?? '')), ageColumn],
};

export const clusterKinds: ResourceType[] = [
  leases,
  endpointslices,
  storageclasses,
  runtimeclasses,
  poddisruptionbudgets,
  networkpolicies,
  ingresses,
  ingressclasses,
  hpaV2,
  hpaV1,
  priorityclasses,
  eventsV1,
  podMetrics,
  nodeMetrics,
];

