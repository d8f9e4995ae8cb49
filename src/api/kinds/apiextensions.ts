import { compileRules } from '../cel/lazy.js';
import type { FieldErrors } from '../field-errors.js';
import { parseJsonPath } from '../jsonpath.js';
import { dns1123LabelErrors, dns1123SubdomainErrors } from '../names.js';
import type { KubeObject } from '../object.js';
import type { Column, ResourceType } from '../resource-type.js';
import { checkSchema } from '../structural-schema.js';
import { col, nameColumn } from './columns.js';

/**
 * apiextensions.k8s.io/v1 CustomResourceDefinition: its shape, defaults and rules. What a CRD
 * serves is built by custom-resource.ts; serving it is the API server's CRD registrar.
 */
export const crdCleanupFinalizer = 'customresourcecleanup.apiextensions.k8s.io';
// biome-ignore lint/suspicious/noExplicitAny: untyped JSON
type J = Record<string, any>;

const columnTypes = ['boolean', 'date', 'integer', 'number', 'string'];
const kindPattern = /^[A-Za-z][A-Za-z0-9]*$/;

function validateNames(n: J | undefined, path: string, errs: FieldErrors): void {
  if (!n || typeof n !== 'object') {
    errs.required(path);
    return;
  }
  const label = (field: string, v: unknown, required: boolean) => {
    if (v === undefined || v === '') {
      if (required) errs.required(`${path}.${field}`);
      return;
    }
    for (const e of typeof v === 'string' ? dns1123LabelErrors(v) : ['must be a string']) errs.invalid(`${path}.${field}`, v, e);
  };
  label('plural', n.plural, true);
  label('singular', n.singular, false);
  for (const [field, required] of [['kind', true], ['listKind', false]] as const) {
    const v = n[field];
    if (v === undefined || v === '') {
      if (required) errs.required(`${path}.${field}`);
    } else if (typeof v !== 'string' || !kindPattern.test(v)) errs.invalid(`${path}.${field}`, v, 'may have mixed case, but should otherwise match: ^[a-z][-a-z0-9]*$');
  }
  if (n.kind && n.kind === n.listKind) errs.invalid(`${path}.listKind`, n.listKind, 'kind and listKind may not be the same');
  for (const field of ['shortNames', 'categories']) {
    const list = n[field];
    if (list === undefined) continue;
    if (!Array.isArray(list)) errs.invalid(`${path}.${field}`, list, 'must be a list of strings');
    else for (const [i, v] of list.entries()) label(`${field}[${i}]`, v, true);
  }
}

function validateVersions(spec: J, errs: FieldErrors): void {
  const versions = spec.versions;
  if (!Array.isArray(versions) || versions.length === 0) {
    errs.required('spec.versions', 'must have exactly one version marked as storage version');
    return;
  }
  const seen = new Set<string>();
  let storage = 0;
  let served = 0;
  versions.forEach((v: J, i) => {
    const p = `spec.versions[${i}]`;
    if (!v || typeof v !== 'object') {
      errs.invalid(p, v, 'must be a version');
      return;
    }
    if (!v.name) errs.required(`${p}.name`);
    else if (typeof v.name !== 'string' || dns1123LabelErrors(v.name).length) errs.invalid(`${p}.name`, v.name, dns1123LabelErrors(String(v.name))[0] ?? 'must be a string');
    else if (seen.has(v.name)) errs.duplicate(`${p}.name`, v.name);
    else seen.add(v.name);
    if (typeof v.served !== 'boolean') errs.required(`${p}.served`);
    if (typeof v.storage !== 'boolean') errs.required(`${p}.storage`);
    if (v.storage) storage++;
    if (v.served) served++;
    const before = errs.causes.length;
    checkSchema(v.schema?.openAPIV3Schema, `${p}.schema.openAPIV3Schema`, errs);
    // Rules are compiled against a structural schema only: their fields and costs come from it.
    if (errs.causes.length === before) compileRules(v.schema.openAPIV3Schema, `${p}.schema.openAPIV3Schema`, errs);
    const sub = v.subresources;
    if (sub !== undefined && (sub === null || typeof sub !== 'object')) errs.invalid(`${p}.subresources`, sub, 'must be an object');
    const scale = sub?.scale;
    if (scale !== undefined) {
      for (const f of ['specReplicasPath', 'statusReplicasPath']) {
        if (!scale?.[f]) errs.required(`${p}.subresources.scale.${f}`);
        else if (!/^\.[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/.test(scale[f])) errs.invalid(`${p}.subresources.scale.${f}`, scale[f], 'should be a json path under of the form .a.b, with no array indexing');
      }
      if (scale?.specReplicasPath && !String(scale.specReplicasPath).startsWith('.spec.')) errs.invalid(`${p}.subresources.scale.specReplicasPath`, scale.specReplicasPath, 'should be a json path under .spec');
      if (scale?.statusReplicasPath && !String(scale.statusReplicasPath).startsWith('.status.')) errs.invalid(`${p}.subresources.scale.statusReplicasPath`, scale.statusReplicasPath, 'should be a json path under .status');
    }
    const cols = v.additionalPrinterColumns;
    if (cols !== undefined && !Array.isArray(cols)) errs.invalid(`${p}.additionalPrinterColumns`, cols, 'must be a list');
    else
      (cols ?? []).forEach((c: J, j: number) => {
        const cp = `${p}.additionalPrinterColumns[${j}]`;
        if (!c?.name) errs.required(`${cp}.name`);
        if (!columnTypes.includes(c?.type)) errs.notSupported(`${cp}.type`, c?.type ?? '', columnTypes);
        if (!c?.jsonPath) errs.required(`${cp}.jsonPath`);
        else {
          try {
            parseJsonPath(String(c.jsonPath));
          } catch (e) {
            errs.invalid(`${cp}.jsonPath`, c.jsonPath, `must be a simple json path: ${(e as Error).message}`);
          }
        }
      });
  });
  if (storage !== 1) errs.invalid('spec.versions', versions.map((v: J) => v?.name), 'must have exactly one version marked as storage version');
  if (!served) errs.invalid('spec.versions', versions.map((v: J) => v?.name), 'must have at least one served version');
}

const crdColumns: Column[] = [nameColumn, { ...col('Created At', (o: KubeObject) => o.metadata.creationTimestamp ?? ''), type: 'date' }];

export const customresourcedefinitions: ResourceType = {
  group: 'apiextensions.k8s.io',
  version: 'v1',
  kind: 'CustomResourceDefinition',
  plural: 'customresourcedefinitions',
  singular: 'customresourcedefinition',
  namespaced: false,
  shortNames: ['crd', 'crds'],
  categories: ['api-extensions'],
  nameRule: 'subdomain',
  storage: 'apiextensions.k8s.io/customresourcedefinitions',
  status: true,
  generation: true,
  defaults: (o) => {
    const spec = o.spec as J | undefined;
    if (!spec || typeof spec !== 'object') return;
    const n = spec.names;
    if (n && typeof n === 'object') {
      if (!n.singular && typeof n.kind === 'string') n.singular = n.kind.toLowerCase();
      if (!n.listKind && typeof n.kind === 'string') n.listKind = `${n.kind}List`;
    }
    spec.conversion ??= { strategy: 'None' };
  },
  prepareForCreate: (o) => {
    // Deleting a CRD first deletes its objects; the registrar removes this when they are gone.
    const f = o.metadata.finalizers ?? [];
    if (!f.includes(crdCleanupFinalizer)) o.metadata.finalizers = [...f, crdCleanupFinalizer];
  },
  validate: (o, errs) => {
    const spec = o.spec as J;
    if (!spec || typeof spec !== 'object') {
      errs.required('spec');
      return;
    }
    if (!spec.group) errs.required('spec.group');
    else if (typeof spec.group !== 'string' || dns1123SubdomainErrors(spec.group).length) errs.invalid('spec.group', spec.group, dns1123SubdomainErrors(String(spec.group))[0] ?? 'must be a string');
    else if (!spec.group.includes('.')) errs.invalid('spec.group', spec.group, 'should be a domain with at least one dot');
    validateNames(spec.names, 'spec.names', errs);
    if (spec.names?.plural && spec.group && o.metadata.name !== `${spec.names.plural}.${spec.group}`) {
      errs.invalid('metadata.name', o.metadata.name, 'must be spec.names.plural+"."+spec.group');
    }
    if (spec.scope !== 'Cluster' && spec.scope !== 'Namespaced') errs.notSupported('spec.scope', spec.scope ?? '', ['Cluster', 'Namespaced']);
    if (spec.conversion?.strategy !== 'None') errs.notSupported('spec.conversion.strategy', spec.conversion?.strategy ?? '', ['None']);
    validateVersions(spec, errs);
  },
  validateUpdate: (o, old, errs) => {
    if (o.spec?.scope !== old.spec?.scope) errs.immutable('spec.scope', o.spec?.scope);
    if (o.spec?.group !== old.spec?.group) errs.immutable('spec.group', o.spec?.group);
    if (o.spec?.names?.plural !== old.spec?.names?.plural) errs.immutable('spec.names.plural', o.spec?.names?.plural);
  },
  columns: crdColumns,
};

export const apiextensionsKinds: ResourceType[] = [customresourcedefinitions];
