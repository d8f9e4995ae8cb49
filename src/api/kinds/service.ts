import { parseIPv4 } from '../ipv4.js';
import type { KubeObject } from '../object.js';
import type { ResourceType } from '../resource-type.js';
import { ageColumn, col, nameColumn, orNone } from './columns.js';

// biome-ignore lint/suspicious/noExplicitAny: objects are JSON of any shape
type J = Record<string, any>;

function servicePorts(o: KubeObject): string {
  const ports = (o.spec?.ports ?? []) as J[];
  if (!ports.length) return '<none>';
  return ports.map((p) => (p.nodePort ? `${p.port}:${p.nodePort}/${p.protocol ?? 'TCP'}` : `${p.port}/${p.protocol ?? 'TCP'}`)).join(',');
}

function externalIp(o: KubeObject): string {
  const t = o.spec?.type ?? 'ClusterIP';
  const ext = (o.spec?.externalIPs ?? []) as string[];
  if (t === 'ExternalName') return o.spec?.externalName ?? '<none>';
  if (t === 'LoadBalancer') {
    const ing = ((o.status?.loadBalancer?.ingress ?? []) as J[]).map((i) => i.ip || i.hostname);
    const all = [...ing, ...ext];
    return all.length ? all.join(',') : '<pending>';
  }
  return ext.length ? ext.join(',') : '<none>';
}

const serviceTypes = ['ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort'];

/**
 * Service (core/v1): defaults, validation and columns; cluster IPs and node ports are allocated by
 * the API server's ServiceAllocation admission.
 */
export const services: ResourceType = {
  group: '',
  version: 'v1',
  generation: false,
  kind: 'Service',
  plural: 'services',
  singular: 'service',
  namespaced: true,
  shortNames: ['svc'],
  categories: ['all'],
  storage: 'core/services',
  status: true,
  nameRule: 'label',
  defaults: (o) => {
    o.spec ??= {};
    const s = o.spec;
    s.type ??= 'ClusterIP';
    s.sessionAffinity ??= 'None';
    if (s.clusterIP && !s.clusterIPs?.length) s.clusterIPs = [s.clusterIP];
    else if (!s.clusterIP && Array.isArray(s.clusterIPs) && s.clusterIPs.length) s.clusterIP = s.clusterIPs[0];
    if (s.type !== 'ExternalName') {
      s.internalTrafficPolicy ??= 'Cluster';
      s.ipFamilyPolicy ??= 'SingleStack';
      s.ipFamilies ??= ['IPv4'];
    }
    if ((s.type === 'NodePort' || s.type === 'LoadBalancer') && !s.externalTrafficPolicy) s.externalTrafficPolicy = 'Cluster';
    for (const p of (s.ports ?? []) as J[]) {
      if (!p || typeof p !== 'object') continue;
      p.protocol ??= 'TCP';
      p.targetPort ??= p.port;
    }
  },
  prepareForCreate: (o) => {
    o.status = { loadBalancer: {} };
  },
  prepareForUpdate: (o, old) => keepAllocations(o, old),
  validate: (o, errs) => {
    const s = o.spec ?? {};
    if (!serviceTypes.includes(s.type)) errs.notSupported('spec.type', s.type, serviceTypes);
    const ports = (s.ports ?? []) as J[];
    if (s.type === 'ExternalName') {
      if (!s.externalName) errs.required('spec.externalName');
      if (s.clusterIP && s.clusterIP !== '') errs.invalid('spec.clusterIPs', s.clusterIPs ?? [s.clusterIP], 'may not be set for ExternalName services');
    } else if (!ports.length && s.clusterIP !== 'None') errs.required('spec.ports');
    if (s.clusterIP && s.clusterIP !== 'None' && parseIPv4(s.clusterIP) === undefined) {
      errs.invalid('spec.clusterIPs[0]', s.clusterIP, 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)');
    }
    if (s.clusterIPs !== undefined && (!Array.isArray(s.clusterIPs) || s.clusterIPs.length > 1 || (s.clusterIPs.length && s.clusterIPs[0] !== s.clusterIP))) {
      errs.invalid('spec.clusterIPs', s.clusterIPs, 'one IPv4 address, the same as spec.clusterIP (this cluster is single-stack IPv4)');
    }
    if (s.clusterIP === 'None' && (s.type === 'NodePort' || s.type === 'LoadBalancer')) errs.invalid('spec.clusterIPs[0]', 'None', `may not be set to 'None' for ${s.type} services`);
    if (!['None', 'ClientIP'].includes(s.sessionAffinity)) errs.notSupported('spec.sessionAffinity', s.sessionAffinity, ['ClientIP', 'None']);
    if (s.externalTrafficPolicy !== undefined && !['Cluster', 'Local'].includes(s.externalTrafficPolicy)) {
      errs.notSupported('spec.externalTrafficPolicy', s.externalTrafficPolicy, ['Cluster', 'Local']);
    }
    const names = new Set<string>();
    ports.forEach((p, i) => {
      const f = `spec.ports[${i}]`;
      if (!Number.isInteger(p?.port) || p.port < 1 || p.port > 65535) errs.invalid(`${f}.port`, p?.port, 'must be between 1 and 65535, inclusive');
      if (ports.length > 1 && !p?.name) errs.required(`${f}.name`);
      if (p?.name) {
        if (names.has(p.name)) errs.duplicate(`${f}.name`, p.name);
        names.add(p.name);
      }
      if (p?.protocol && !['TCP', 'UDP', 'SCTP'].includes(p.protocol)) errs.notSupported(`${f}.protocol`, p.protocol, ['SCTP', 'TCP', 'UDP']);
      if (typeof p?.targetPort === 'number' && (p.targetPort < 1 || p.targetPort > 65535)) {
        errs.invalid(`${f}.targetPort`, p.targetPort, 'must be between 1 and 65535, inclusive');
      }
      if (p?.nodePort !== undefined && (!Number.isInteger(p.nodePort) || p.nodePort < 1 || p.nodePort > 65535)) {
        errs.invalid(`${f}.nodePort`, p.nodePort, 'must be between 1 and 65535, inclusive');
      } else if (p?.nodePort !== undefined && (s.type === 'ClusterIP' || s.type === 'ExternalName')) {
        errs.forbidden(`${f}.nodePort`, `may not be used when \`type\` is '${s.type}'`);
      }
    });
    if (s.selector !== undefined && (typeof s.selector !== 'object' || Array.isArray(s.selector))) errs.invalid('spec.selector', s.selector, 'must be a map');
  },
  validateUpdate: (o, old, errs) => {
    const was = old.spec?.clusterIP;
    if (was && was !== '' && o.spec?.clusterIP !== was && old.spec?.type !== 'ExternalName' && o.spec?.type !== 'ExternalName') {
      errs.immutable('spec.clusterIP', o.spec?.clusterIP ?? '');
    }
  },
  columns: [
    nameColumn,
    col('Type', (o) => o.spec?.type ?? 'ClusterIP'),
    col('Cluster-IP', (o) => orNone(o.spec?.clusterIP)),
    col('External-IP', externalIp),
    col('Port(s)', servicePorts),
    ageColumn,
    col('Selector', (o) => (o.spec?.selector ? Object.entries(o.spec.selector).map(([k, v]) => `${k}=${v}`).join(',') || '<none>' : '<none>'), { wide: true }),
  ],
};

/**
 * An update that leaves out what the server allocated (a `kubectl replace` of the original
 * manifest) keeps the old cluster IP and node ports, as upstream does; a type change that no longer
 * needs them lets them go.
 */
function keepAllocations(o: KubeObject, old: KubeObject): void {
  const s = (o.spec ??= {});
  const was = old.spec ?? {};
  const type = s.type ?? 'ClusterIP';
  if (type !== 'ExternalName' && was.type !== 'ExternalName' && !s.clusterIP && !s.clusterIPs?.length && was.clusterIP) {
    s.clusterIP = was.clusterIP;
    s.clusterIPs = was.clusterIPs ?? [was.clusterIP];
  }
  const withNodePorts = (t: unknown) => t === 'NodePort' || t === 'LoadBalancer';
  if (withNodePorts(type) && withNodePorts(was.type)) {
    const oldPorts = (was.ports ?? []) as J[];
    for (const p of (s.ports ?? []) as J[]) {
      if (!p || typeof p !== 'object' || p.nodePort !== undefined) continue;
      const same = oldPorts.find((q) => q.port === p.port && (q.protocol ?? 'TCP') === (p.protocol ?? 'TCP')) ?? (oldPorts.length === 1 && (s.ports as J[]).length === 1 ? oldPorts[0] : undefined);
      if (same?.nodePort) p.nodePort = same.nodePort;
    }
  }
  // Leaving NodePort or LoadBalancer: the fields only those types have go with the type unless the
  // update itself changed them (upstream's dropTypeDependentFields), so `kubectl patch` of the type
  // alone succeeds.
  if (withNodePorts(was.type) && !withNodePorts(type)) {
    const oldPorts = (was.ports ?? []) as J[];
    for (const p of (s.ports ?? []) as J[]) {
      if (p && typeof p === 'object' && p.nodePort !== undefined && oldPorts.some((q) => q.nodePort === p.nodePort)) delete p.nodePort;
    }
    for (const f of ['externalTrafficPolicy', 'healthCheckNodePort']) if (s[f] === was[f]) delete s[f];
  }
  if (was.type === 'LoadBalancer' && type !== 'LoadBalancer') {
    for (const f of ['allocateLoadBalancerNodePorts', 'loadBalancerClass']) if (s[f] === was[f]) delete s[f];
  }
}
