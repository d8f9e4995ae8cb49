import type { FieldErrors } from '../field-errors.js';
import { dns1123LabelErrors } from '../names.js';
import type { KubeObject } from '../object.js';
import { parseQuantity } from '../quantity.js';

/** Defaults and validation of a PodSpec, shared by Pods and every pod template. */
// biome-ignore lint/suspicious/noExplicitAny: PodSpec is untyped JSON
type Spec = Record<string, any>;

function defaultContainer(c: Spec): void {
  if (!c.imagePullPolicy && typeof c.image === 'string') {
    const ref = c.image.split('@')[0];
    const tag = ref.lastIndexOf(':') > ref.lastIndexOf('/') ? ref.slice(ref.lastIndexOf(':') + 1) : '';
    c.imagePullPolicy = c.image.includes('@') ? 'IfNotPresent' : !tag || tag === 'latest' ? 'Always' : 'IfNotPresent';
  }
  c.terminationMessagePath ??= '/dev/termination-log';
  c.terminationMessagePolicy ??= 'File';
  c.resources ??= {};
  for (const p of c.ports ?? []) p.protocol ??= 'TCP';
}

export function defaultPodSpec(spec: Spec | undefined): void {
  if (!spec || typeof spec !== 'object') return;
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.securityContext ??= {};
  spec.schedulerName ??= 'default-scheduler';
  spec.enableServiceLinks ??= true;
  if (spec.serviceAccount && !spec.serviceAccountName) spec.serviceAccountName = spec.serviceAccount;
  for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) if (c && typeof c === 'object') defaultContainer(c);
}

const restartPolicies = ['Always', 'OnFailure', 'Never'];
const dnsPolicies = ['ClusterFirstWithHostNet', 'ClusterFirst', 'Default', 'None'];

function validateContainers(list: unknown, field: string, errs: FieldErrors, names: Set<string>, required: boolean): void {
  if (list === undefined || list === null || (Array.isArray(list) && list.length === 0)) {
    if (required) errs.required(field);
    return;
  }
  if (!Array.isArray(list)) {
    errs.invalid(field, list, 'must be a list');
    return;
  }
  list.forEach((c: Spec, i: number) => {
    const f = `${field}[${i}]`;
    if (!c || typeof c !== 'object') {
      errs.invalid(f, c, 'must be an object');
      return;
    }
    if (!c.name) errs.required(`${f}.name`);
    else {
      for (const e of dns1123LabelErrors(String(c.name))) errs.invalid(`${f}.name`, c.name, e);
      if (names.has(c.name)) errs.duplicate(`${f}.name`, c.name);
      names.add(c.name);
    }
    if (!c.image || (typeof c.image === 'string' && !c.image.trim())) errs.required(`${f}.image`);
    (c.ports ?? []).forEach((p: Spec, j: number) => {
      const pf = `${f}.ports[${j}]`;
      if (!Number.isInteger(p?.containerPort) || p.containerPort < 1 || p.containerPort > 65535) {
        errs.invalid(`${pf}.containerPort`, p?.containerPort, 'must be between 1 and 65535, inclusive');
      }
      if (p?.protocol && !['TCP', 'UDP', 'SCTP'].includes(p.protocol)) errs.notSupported(`${pf}.protocol`, p.protocol, ['SCTP', 'TCP', 'UDP']);
    });
    if (c.imagePullPolicy && !['Always', 'IfNotPresent', 'Never'].includes(c.imagePullPolicy)) {
      errs.notSupported(`${f}.imagePullPolicy`, c.imagePullPolicy, ['Always', 'IfNotPresent', 'Never']);
    }
    const requests = validateResourceList(c.resources?.requests, `${f}.resources.requests`, errs);
    const limits = validateResourceList(c.resources?.limits, `${f}.resources.limits`, errs);
    for (const [k, want] of requests) {
      const max = limits.get(k);
      if (max !== undefined && want > max) errs.invalid(`${f}.resources.requests`, c.resources.requests[k], `must be less than or equal to ${k} limit of ${c.resources.limits[k]}`);
    }
  });
}

const quantityPattern = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/**
 * A ResourceList (requests, limits, overhead, quota hard): every value a quantity, none negative.
 * Returns the parsed values, for callers that compare them.
 */
export function validateResourceList(list: unknown, field: string, errs: FieldErrors): Map<string, number> {
  const out = new Map<string, number>();
  if (list === undefined || list === null) return out;
  if (typeof list !== 'object' || Array.isArray(list)) {
    errs.invalid(field, list, 'must be a map of resource names to quantities');
    return out;
  }
  for (const [k, v] of Object.entries(list)) {
    let n: number;
    try {
      if (typeof v !== 'string' && typeof v !== 'number') throw new Error();
      n = parseQuantity(v);
    } catch {
      errs.invalid(`${field}[${k}]`, v, quantityPattern);
      continue;
    }
    if (!(n >= 0)) errs.invalid(`${field}[${k}]`, v, 'must be greater than or equal to 0');
    else out.set(k, n);
  }
  return out;
}

const spreadWhen = ['DoNotSchedule', 'ScheduleAnyway'];

/** topologySpreadConstraints and the pod (anti-)affinity terms: what the scheduler needs to act on them. */
function validateScheduling(spec: Spec, field: string, errs: FieldErrors): void {
  (Array.isArray(spec.topologySpreadConstraints) ? spec.topologySpreadConstraints : []).forEach((c: Spec, i: number) => {
    const f = `${field}.topologySpreadConstraints[${i}]`;
    if (!(Number.isInteger(c?.maxSkew) && c.maxSkew > 0)) errs.invalid(`${f}.maxSkew`, c?.maxSkew, 'must be greater than zero');
    if (!c?.topologyKey) errs.required(`${f}.topologyKey`, 'can not be empty');
    if (!spreadWhen.includes(c?.whenUnsatisfiable)) errs.notSupported(`${f}.whenUnsatisfiable`, c?.whenUnsatisfiable, spreadWhen);
    if (c?.minDomains !== undefined && c?.minDomains !== null && !(Number.isInteger(c.minDomains) && c.minDomains > 0)) errs.invalid(`${f}.minDomains`, c.minDomains, 'must be greater than zero');
  });
  for (const kind of ['podAffinity', 'podAntiAffinity']) {
    const a = spec.affinity?.[kind];
    const f = `${field}.affinity.${kind}`;
    (a?.requiredDuringSchedulingIgnoredDuringExecution ?? []).forEach((t: Spec, i: number) => {
      if (!t?.topologyKey) errs.required(`${f}.requiredDuringSchedulingIgnoredDuringExecution[${i}].topologyKey`, 'can not be empty');
    });
    (a?.preferredDuringSchedulingIgnoredDuringExecution ?? []).forEach((t: Spec, i: number) => {
      const pf = `${f}.preferredDuringSchedulingIgnoredDuringExecution[${i}]`;
      if (!(Number.isInteger(t?.weight) && t.weight >= 1 && t.weight <= 100)) errs.invalid(`${pf}.weight`, t?.weight, 'must be in the range 1-100');
      if (!t?.podAffinityTerm?.topologyKey) errs.required(`${pf}.podAffinityTerm.topologyKey`, 'can not be empty');
    });
  }
}

export function validatePodSpec(spec: Spec | undefined, field: string, errs: FieldErrors, allowedRestart = restartPolicies): void {
  if (!spec || typeof spec !== 'object') {
    errs.required(field);
    return;
  }
  const names = new Set<string>();
  validateContainers(spec.containers, `${field}.containers`, errs, names, true);
  validateContainers(spec.initContainers, `${field}.initContainers`, errs, names, false);
  if (spec.restartPolicy !== undefined && !allowedRestart.includes(spec.restartPolicy)) {
    errs.notSupported(`${field}.restartPolicy`, spec.restartPolicy, allowedRestart);
  }
  if (spec.dnsPolicy !== undefined && !dnsPolicies.includes(spec.dnsPolicy)) errs.notSupported(`${field}.dnsPolicy`, spec.dnsPolicy, dnsPolicies);
  if (spec.terminationGracePeriodSeconds !== undefined && !(Number.isInteger(spec.terminationGracePeriodSeconds) && spec.terminationGracePeriodSeconds >= 0)) {
    errs.invalid(`${field}.terminationGracePeriodSeconds`, spec.terminationGracePeriodSeconds, 'must be greater than or equal to 0');
  }
  if (spec.activeDeadlineSeconds !== undefined && !(Number.isInteger(spec.activeDeadlineSeconds) && spec.activeDeadlineSeconds > 0)) {
    errs.invalid(`${field}.activeDeadlineSeconds`, spec.activeDeadlineSeconds, 'must be greater than 0');
  }
  validateResourceList(spec.overhead, `${field}.overhead`, errs);
  validateScheduling(spec, field, errs);
  const vols = new Set<string>();
  (spec.volumes ?? []).forEach((v: Spec, i: number) => {
    if (!v?.name) errs.required(`${field}.volumes[${i}].name`);
    else if (vols.has(v.name)) errs.duplicate(`${field}.volumes[${i}].name`, v.name);
    else vols.add(v.name);
  });
}

/** A pod template (Deployment, ReplicaSet, …): labels must be selected by the owner's selector. */
export function validateTemplate(obj: KubeObject, field: string, errs: FieldErrors, allowedRestart?: string[]): void {
  const tpl = obj.spec?.template;
  if (!tpl || typeof tpl !== 'object') {
    errs.required(field);
    return;
  }
  validatePodSpec(tpl.spec, `${field}.spec`, errs, allowedRestart);
}

/** The QoS class of a pod from its containers' requests and limits. */
export function qosClass(spec: Spec | undefined): string {
  const cs: Spec[] = [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])];
  let any = false;
  let guaranteed = cs.length > 0;
  for (const c of cs) {
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    if (Object.keys(req).length || Object.keys(lim).length) any = true;
    for (const r of ['cpu', 'memory']) {
      if (lim[r] === undefined) guaranteed = false;
      else if (req[r] !== undefined && String(req[r]) !== String(lim[r])) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}
