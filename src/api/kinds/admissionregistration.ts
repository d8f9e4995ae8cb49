import type { FieldErrors } from '../field-errors.js';
import { dns1123SubdomainErrors } from '../names.js';
import type { KubeObject } from '../object.js';
import type { ResourceType } from '../resource-type.js';
import { ageColumn, col, nameColumn } from './columns.js';

/**
 * admissionregistration.k8s.io/v1: the configurations of validating and mutating admission
 * webhooks, with upstream's defaults and validation messages.
 */
// biome-ignore lint/suspicious/noExplicitAny: untyped JSON
type J = Record<string, any>;

export const admissionGroup = 'admissionregistration.k8s.io';
const operations = ['*', 'CONNECT', 'CREATE', 'DELETE', 'UPDATE'];

function defaultWebhook(w: J, mutating: boolean): void {
  w.failurePolicy ??= 'Fail';
  w.matchPolicy ??= 'Equivalent';
  w.namespaceSelector ??= {};
  w.objectSelector ??= {};
  w.timeoutSeconds ??= 10;
  if (mutating) w.reinvocationPolicy ??= 'Never';
  if (w.clientConfig?.service) w.clientConfig.service.port ??= 443;
  for (const r of w.rules ?? []) if (r && typeof r === 'object') r.scope ??= '*';
}

function validateWebhook(w: J, f: string, mutating: boolean, errs: FieldErrors): void {
  if (!w.name) errs.required(`${f}.name`);
  else {
    for (const e of dns1123SubdomainErrors(String(w.name))) errs.invalid(`${f}.name`, w.name, e);
    if (String(w.name).split('.').length < 3) errs.invalid(`${f}.name`, w.name, 'should be a domain with at least three segments separated by dots');
  }
  const cc = w.clientConfig ?? {};
  if (!!cc.url === !!cc.service) errs.required(`${f}.clientConfig`, 'exactly one of url or service is required');
  if (cc.url) {
    let url: URL | undefined;
    try {
      url = new URL(String(cc.url));
    } catch {
      errs.invalid(`${f}.clientConfig.url`, cc.url, 'host must be specified');
    }
    if (url && url.protocol !== 'https:') errs.invalid(`${f}.clientConfig.url`, cc.url, "'https' is the only allowed URL scheme");
    if (url && (url.hash || url.username)) errs.invalid(`${f}.clientConfig.url`, cc.url, 'fragments and user information are not permitted');
  }
  if (cc.service) {
    if (!cc.service.name) errs.required(`${f}.clientConfig.service.name`, 'service name is required');
    if (!cc.service.namespace) errs.required(`${f}.clientConfig.service.namespace`, 'service namespace is required');
    if (cc.service.path !== undefined && !String(cc.service.path).startsWith('/')) errs.invalid(`${f}.clientConfig.service.path`, cc.service.path, "must start with a '/'");
    const port = cc.service.port;
    if (!Number.isInteger(port) || port < 1 || port > 65535) errs.invalid(`${f}.clientConfig.service.port`, port, 'port is not valid: must be between 1 and 65535, inclusive');
  }
  if (cc.caBundle !== undefined && (typeof cc.caBundle !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(cc.caBundle))) {
    errs.invalid(`${f}.clientConfig.caBundle`, '<bytes>', 'must be base64-encoded PEM');
  }
  if (!['None', 'NoneOnDryRun'].includes(w.sideEffects)) {
    if (w.sideEffects === undefined) errs.required(`${f}.sideEffects`, 'must specify one of None, NoneOnDryRun');
    else errs.notSupported(`${f}.sideEffects`, w.sideEffects, ['None', 'NoneOnDryRun']);
  }
  const versions: unknown[] = Array.isArray(w.admissionReviewVersions) ? w.admissionReviewVersions : [];
  if (!versions.some((v) => v === 'v1' || v === 'v1beta1')) errs.required(`${f}.admissionReviewVersions`, 'must specify one of v1, v1beta1');
  if (!['Fail', 'Ignore'].includes(w.failurePolicy)) errs.notSupported(`${f}.failurePolicy`, w.failurePolicy, ['Fail', 'Ignore']);
  if (!['Equivalent', 'Exact'].includes(w.matchPolicy)) errs.notSupported(`${f}.matchPolicy`, w.matchPolicy, ['Equivalent', 'Exact']);
  if (mutating && !['IfNeeded', 'Never'].includes(w.reinvocationPolicy)) errs.notSupported(`${f}.reinvocationPolicy`, w.reinvocationPolicy, ['IfNeeded', 'Never']);
  if (!Number.isInteger(w.timeoutSeconds) || w.timeoutSeconds < 1 || w.timeoutSeconds > 30) {
    errs.invalid(`${f}.timeoutSeconds`, w.timeoutSeconds, 'the timeout value must be between 1 and 30 seconds');
  }
  ((w.rules ?? []) as J[]).forEach((r, i) => {
    const rf = `${f}.rules[${i}]`;
    for (const field of ['operations', 'apiGroups', 'apiVersions', 'resources'] as const) {
      if (!Array.isArray(r?.[field]) || !r[field].length) errs.required(`${rf}.${field}`);
    }
    for (const [j, op] of ((r?.operations ?? []) as unknown[]).entries()) {
      if (!operations.includes(String(op))) errs.notSupported(`${rf}.operations[${j}]`, op, operations);
    }
    if (!['*', 'Cluster', 'Namespaced'].includes(r?.scope)) errs.notSupported(`${rf}.scope`, r?.scope, ['*', 'Cluster', 'Namespaced']);
  });
}

function webhookConfiguration(kind: string, plural: string, mutating: boolean): ResourceType {
  return {
    group: admissionGroup,
    version: 'v1',
    kind,
    plural,
    singular: plural.slice(0, -1),
    namespaced: false,
    status: false,
    generation: true,
    nameRule: 'subdomain',
    storage: `${admissionGroup}/${plural}`,
    categories: ['api-extensions'],
    defaults: (o: KubeObject) => {
      for (const w of (o.webhooks ?? []) as J[]) if (w && typeof w === 'object') defaultWebhook(w, mutating);
    },
    validate: (o: KubeObject, errs: FieldErrors) => {
      const seen = new Set<string>();
      for (const [i, w] of ((o.webhooks ?? []) as J[]).entries()) {
        if (!w || typeof w !== 'object') {
          errs.invalid(`webhooks[${i}]`, w, 'must be an object');
          continue;
        }
        if (w.name && seen.has(w.name)) errs.duplicate(`webhooks[${i}].name`, w.name);
        seen.add(w.name);
        validateWebhook(w, `webhooks[${i}]`, mutating, errs);
      }
    },
    columns: [nameColumn, col('Webhooks', (o) => ((o.webhooks ?? []) as unknown[]).length, { type: 'integer' }), ageColumn],
  };
}

export const validatingwebhookconfigurations = webhookConfiguration('ValidatingWebhookConfiguration', 'validatingwebhookconfigurations', false);
export const mutatingwebhookconfigurations = webhookConfiguration('MutatingWebhookConfiguration', 'mutatingwebhookconfigurations', true);
export const admissionregistrationKinds: ResourceType[] = [mutatingwebhookconfigurations, validatingwebhookconfigurations];
