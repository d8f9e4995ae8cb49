import type { FieldErrors } from './field-errors.js';

/** Name rules of Kubernetes' apimachinery validation, with its messages. */
const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const qualifiedNamePart = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export type NameRule = 'label' | 'subdomain' | 'path';

export function dns1123LabelErrors(v: string): string[] {
  const out: string[] = [];
  if (v.length > 63) out.push('must be no more than 63 characters');
  if (!label.test(v)) {
    out.push(
      "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    );
  }
  return out;
}

export function dns1123SubdomainErrors(v: string): string[] {
  const out: string[] = [];
  if (v.length > 253) out.push('must be no more than 253 characters');
  if (!subdomain.test(v)) {
    out.push(
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    );
  }
  return out;
}

export function pathSegmentErrors(v: string): string[] {
  if (v === '.' || v === '..') return [`may not be '${v}'`];
  if (v.includes('/')) return ["may not contain '/'"];
  if (v.includes('%')) return ["may not contain '%'"];
  return [];
}

export function nameErrors(rule: NameRule, v: string): string[] {
  if (rule === 'label') return dns1123LabelErrors(v);
  if (rule === 'subdomain') return dns1123SubdomainErrors(v);
  return pathSegmentErrors(v);
}

/** Label and annotation keys: an optional DNS subdomain prefix and a name part. */
export function qualifiedNameErrors(key: string): string[] {
  const parts = key.split('/');
  let name = key;
  const out: string[] = [];
  if (parts.length > 2) return ["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"];
  if (parts.length === 2) {
    const [prefix, n] = parts;
    name = n;
    if (!prefix) out.push('prefix part must be non-empty');
    else out.push(...dns1123SubdomainErrors(prefix).map((e) => `prefix part ${e}`));
  }
  if (!name) out.push('name part must be non-empty');
  else if (name.length > 63) out.push('name part must be no more than 63 characters');
  else if (!qualifiedNamePart.test(name)) {
    out.push(
      "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    );
  }
  return out;
}

export function labelValueErrors(v: string): string[] {
  const out: string[] = [];
  if (v.length > 63) out.push('must be no more than 63 characters');
  if (!labelValue.test(v)) {
    out.push(
      "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    );
  }
  return out;
}

export function validateLabels(labels: unknown, field: string, errs: FieldErrors): void {
  if (labels === undefined || labels === null) return;
  if (typeof labels !== 'object' || Array.isArray(labels)) {
    errs.invalid(field, labels, 'must be a map of strings');
    return;
  }
  for (const [k, v] of Object.entries(labels as Record<string, unknown>)) {
    for (const e of qualifiedNameErrors(k)) errs.invalid(field, k, e);
    if (typeof v !== 'string') errs.invalid(`${field}.${k}`, v, 'must be a string');
    else for (const e of labelValueErrors(v)) errs.invalid(`${field}.${k}`, v, e);
  }
}

export function validateAnnotations(ann: unknown, field: string, errs: FieldErrors): void {
  if (ann === undefined || ann === null) return;
  if (typeof ann !== 'object' || Array.isArray(ann)) {
    errs.invalid(field, ann, 'must be a map of strings');
    return;
  }
  let total = 0;
  for (const [k, v] of Object.entries(ann as Record<string, unknown>)) {
    for (const e of qualifiedNameErrors(k.toLowerCase())) errs.invalid(field, k, e);
    if (typeof v !== 'string') errs.invalid(`${field}.${k}`, v, 'must be a string');
    else total += k.length + v.length;
  }
  if (total > 256 * 1024) errs.tooLong(field, 256 * 1024);
}
