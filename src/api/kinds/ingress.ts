import type { FieldErrors } from '../field-errors.js';
import { parseIPv4 } from '../ipv4.js';
import { dns1123SubdomainErrors } from '../names.js';
import type { KubeObject } from '../object.js';
import type { ResourceType } from '../resource-type.js';
import { ageColumn, col, nameColumn } from './columns.js';

// biome-ignore lint/suspicious/noExplicitAny: untyped JSON
type J = Record<string, any>;
const base = { status: false, generation: false, nameRule: 'subdomain' as const };

/**
 * Ingress and IngressClass (networking.k8s.io/v1), validated as upstream does: hosts are DNS
 * names (a leading `*.` wildcard allowed), never IP addresses; Exact and Prefix paths are clean
 * absolute paths; each backend is a Service (name and exactly one of port name or number) or a
 * resource, not both. The routing itself is the ingress controller's (network/ingress-routes.ts).
 */
export const ingresses: ResourceType = {
  ...base,
  group: 'networking.k8s.io',
  version: 'v1',
  kind: 'Ingress',
  plural: 'ingresses',
  singular: 'ingress',
  namespaced: true,
  shortNames: ['ing'],
  storage: 'networking.k8s.io/ingresses',
  status: true,
  generation: true,
  validate: validateIngress,
  columns: [
    nameColumn,
    col('Class', (o) => o.spec?.ingressClassName ?? '<none>'),
    col('Hosts', (o) => ((o.spec?.rules ?? []) as J[]).map((r) => r.host ?? '*').join(',') || '*'),
    col('Address', (o) => ((o.status?.loadBalancer?.ingress ?? []) as J[]).map((i) => i.ip || i.hostname).join(',')),
    col('Ports', (o) => (o.spec?.tls?.length ? '80, 443' : '80')),
    ageColumn,
  ],
};

export const ingressclasses: ResourceType = {
  ...base,
  group: 'networking.k8s.io',
  version: 'v1',
  kind: 'IngressClass',
  plural: 'ingressclasses',
  singular: 'ingressclass',
  namespaced: false,
  storage: 'networking.k8s.io/ingressclasses',
  validate: (o, errs) => {
    if (!o.spec?.controller) errs.required('spec.controller');
  },
  columns: [
    nameColumn,
    col('Controller', (o) => o.spec?.controller ?? ''),
    col('Parameters', (o) => (o.spec?.parameters ? `${o.spec.parameters.kind}/${o.spec.parameters.name}` : '<none>')),
    ageColumn,
  ],
};

const invalidPathSequences = ['//', '/./', '/../', '%2f', '%2F'];
const invalidPathSuffixes = ['/..', '/.'];

function validateIngress(o: KubeObject, errs: FieldErrors): void {
  const spec = o.spec ?? {};
  if (!spec.rules?.length && !spec.defaultBackend) errs.invalid('spec', spec, 'either `defaultBackend` or `rules` must be specified');
  if (spec.defaultBackend) validateBackend(spec.defaultBackend, 'spec.defaultBackend', errs);
  ((spec.tls ?? []) as J[]).forEach((t, i) => {
    for (const [j, h] of ((t?.hosts ?? []) as unknown[]).entries()) validateHost(h, `spec.tls[${i}].hosts[${j}]`, errs);
  });
  ((spec.rules ?? []) as J[]).forEach((r, i) => {
    if (r?.host !== undefined && r.host !== '') validateHost(r.host, `spec.rules[${i}].host`, errs);
    if (r?.http && !r.http.paths?.length) errs.required(`spec.rules[${i}].http.paths`);
    ((r?.http?.paths ?? []) as J[]).forEach((p, j) => {
      const f = `spec.rules[${i}].http.paths[${j}]`;
      if (!['Exact', 'Prefix', 'ImplementationSpecific'].includes(p.pathType)) {
        if (p.pathType === undefined) errs.required(`${f}.pathType`, 'pathType must be specified');
        else errs.notSupported(`${f}.pathType`, p.pathType, ['Exact', 'ImplementationSpecific', 'Prefix']);
      }
      if (p.path !== undefined && !String(p.path).startsWith('/')) errs.invalid(`${f}.path`, p.path, 'must be an absolute path');
      else if (p.path !== undefined && (p.pathType === 'Exact' || p.pathType === 'Prefix')) {
        const seq = invalidPathSequences.find((x) => String(p.path).includes(x));
        const suffix = invalidPathSuffixes.find((x) => String(p.path).endsWith(x));
        if (seq) errs.invalid(`${f}.path`, p.path, `must not contain '${seq}'`);
        else if (suffix) errs.invalid(`${f}.path`, p.path, `cannot end with '${suffix}'`);
      }
      if (!p.backend) errs.required(`${f}.backend`);
      else validateBackend(p.backend, `${f}.backend`, errs);
    });
  });
}

function validateHost(host: unknown, f: string, errs: FieldErrors): void {
  const h = String(host);
  if (parseIPv4(h) !== undefined || h.includes(':')) {
    errs.invalid(f, host, 'must be a DNS name, not an IP address');
    return;
  }
  const wildcard = h.startsWith('*.');
  const problems = dns1123SubdomainErrors(wildcard ? h.slice(2) : h);
  if (h.slice(wildcard ? 2 : 0).includes('*')) errs.invalid(f, host, "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain");
  else for (const m of problems) errs.invalid(f, host, m);
}

function validateBackend(b: J, f: string, errs: FieldErrors): void {
  if (b.service && b.resource) errs.invalid(f, '', 'cannot set both resource and service backends');
  else if (!b.service && !b.resource) errs.invalid(f, '', 'resource or service backend is required');
  if (!b.service) return;
  if (!b.service.name) errs.required(`${f}.service.name`);
  else for (const m of dns1123SubdomainErrors(String(b.service.name))) errs.invalid(`${f}.service.name`, b.service.name, m);
  const port = b.service.port ?? {};
  if (port.name && port.number) errs.invalid(`${f}.service.port`, port.name, 'cannot specify both port name and port number');
  else if (port.number !== undefined && (!Number.isInteger(port.number) || port.number < 1 || port.number > 65535)) errs.invalid(`${f}.service.port.number`, port.number, 'must be between 1 and 65535, inclusive');
  else if (!port.name && !port.number) errs.required(`${f}.service.port`, 'port name or number is required');
}
