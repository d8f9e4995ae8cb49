import { parseSchedule } from '../cron.js';
import type { KubeObject } from '../object.js';
import type { ResourceType } from '../resource-type.js';
import { age, humanDuration } from '../time.js';
import { ageColumn, col, nameColumn, num, workloadWideColumns } from './columns.js';
import { defaultPodSpec, validatePodSpec } from './pod-spec.js';
import { immutableSelector, validateSelector } from './workload-rules.js';

/** batch/v1: Jobs and CronJobs. */
const batch = { group: 'batch', version: 'v1', namespaced: true, status: true, generation: true, nameRule: 'subdomain' as const, categories: ['all'] };

// biome-ignore lint/suspicious/noExplicitAny: untyped JSON
type J = Record<string, any>;

function defaultJobSpec(s: J | undefined): void {
  if (!s) return;
  if (s.completions === undefined && s.parallelism === undefined) {
    s.completions = 1;
    s.parallelism = 1;
  }
  s.parallelism ??= 1;
  s.backoffLimit ??= 6;
  s.completionMode ??= 'NonIndexed';
  s.suspend ??= false;
  if (s.podReplacementPolicy === undefined) s.podReplacementPolicy = 'TerminatingOrFailed';
  defaultPodSpec(s.template?.spec);
}

function validateJobSpec(s: J | undefined, field: string, errs: Parameters<NonNullable<ResourceType['validate']>>[1]): void {
  if (!s) {
    errs.required(field);
    return;
  }
  for (const f of ['parallelism', 'completions', 'backoffLimit', 'activeDeadlineSeconds', 'ttlSecondsAfterFinished'] as const) {
    if (s[f] !== undefined && s[f] !== null && !(Number.isInteger(s[f]) && s[f] >= 0)) errs.invalid(`${field}.${f}`, s[f], 'must be greater than or equal to 0');
  }
  if (s.completionMode === 'Indexed' && s.completions === undefined) errs.required(`${field}.completions`, 'when completion mode is Indexed');
  const rp = s.template?.spec?.restartPolicy;
  if (rp !== 'OnFailure' && rp !== 'Never') {
    if (!s.template) errs.required(`${field}.template`);
    else errs.notSupported(`${field}.template.spec.restartPolicy`, rp ?? '', ['OnFailure', 'Never']);
  }
  if (s.template) validatePodSpec(s.template.spec, `${field}.template.spec`, errs, ['OnFailure', 'Never']);
}

function jobStatus(o: KubeObject): string {
  const conds = (o.status?.conditions ?? []) as J[];
  const has = (t: string) => conds.some((c) => c.type === t && c.status === 'True');
  if (has('Complete')) return 'Complete';
  if (has('Failed')) return 'Failed';
  if (o.metadata.deletionTimestamp) return 'Terminating';
  if (has('Suspended')) return 'Suspended';
  if (has('FailureTarget')) return 'FailureTarget';
  if (has('SuccessCriteriaMet')) return 'SuccessCriteriaMet';
  return 'Running';
}

function jobDuration(o: KubeObject): string {
  const start = o.status?.startTime;
  if (!start) return '';
  const end = o.status?.completionTime ? Date.parse(o.status.completionTime) : Date.now();
  return humanDuration(end - Date.parse(start));
}

const jobs: ResourceType = {
  ...batch,
  kind: 'Job',
  plural: 'jobs',
  singular: 'job',
  storage: 'batch/jobs',
  defaults: (o) => defaultJobSpec(o.spec),
  prepareForCreate: (o) => {
    // Like upstream: unless manualSelector, select the job's own pods by its uid.
    const s = o.spec;
    if (!s || s.manualSelector) return;
    const uid = o.metadata.uid ?? '';
    const name = o.metadata.name ?? '';
    const labels = { 'batch.kubernetes.io/controller-uid': uid, 'batch.kubernetes.io/job-name': name, 'controller-uid': uid, 'job-name': name };
    s.selector = { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } };
    s.template ??= {};
    s.template.metadata ??= {};
    s.template.metadata.labels = { ...(s.template.metadata.labels ?? {}), ...labels };
    o.status = {};
  },
  validate: (o, errs) => {
    validateJobSpec(o.spec, 'spec', errs);
    if (o.spec?.manualSelector) validateSelector(o, errs);
  },
  validateUpdate: (o, old, errs) => {
    immutableSelector(o, old, errs);
    if (JSON.stringify(o.spec?.completions) !== JSON.stringify(old.spec?.completions) && old.spec?.completionMode !== 'Indexed') {
      errs.immutable('spec.completions', o.spec?.completions);
    }
    if (JSON.stringify(o.spec?.template?.spec?.containers) !== JSON.stringify(old.spec?.template?.spec?.containers) && !o.spec?.suspend) {
      errs.immutable('spec.template', '');
    }
  },
  fields: { 'status.successful': (o) => String(num(o.status?.succeeded)) },
  columns: [
    nameColumn,
    col('Status', jobStatus),
    col('Completions', (o) => (o.spec?.completions !== undefined && o.spec?.completions !== null ? `${num(o.status?.succeeded)}/${o.spec.completions}` : `${num(o.status?.succeeded)}/1 of ${num(o.spec?.parallelism)}`)),
    col('Duration', jobDuration),
    ageColumn,
    ...workloadWideColumns((o) => o.spec?.template?.spec),
  ],
};

export function validCronSchedule(s: unknown): boolean {
  if (typeof s !== 'string') return false;
  // Upstream forbids TZ in the schedule; spec.timeZone says it.
  if (/^(CRON_TZ|TZ)=/.test(s.trim())) return false;
  try {
    parseSchedule(s);
    return true;
  } catch {
    return false;
  }
}

const cronjobs: ResourceType = {
  ...batch,
  kind: 'CronJob',
  plural: 'cronjobs',
  singular: 'cronjob',
  shortNames: ['cj'],
  storage: 'batch/cronjobs',
  defaults: (o) => {
    o.spec ??= {};
    const s = o.spec;
    s.concurrencyPolicy ??= 'Allow';
    s.suspend ??= false;
    s.successfulJobsHistoryLimit ??= 3;
    s.failedJobsHistoryLimit ??= 1;
    defaultJobSpec(s.jobTemplate?.spec);
  },
  prepareForCreate: (o) => {
    o.status = {};
  },
  validate: (o, errs) => {
    const s = o.spec ?? {};
    if (!s.schedule) errs.required('spec.schedule');
    else if (!validCronSchedule(s.schedule)) errs.invalid('spec.schedule', s.schedule, 'unparseable schedule');
    if (s.timeZone !== undefined && s.timeZone !== null) {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: s.timeZone });
      } catch {
        errs.invalid('spec.timeZone', s.timeZone, 'unknown time zone');
      }
    }
    if (!['Allow', 'Forbid', 'Replace'].includes(s.concurrencyPolicy)) errs.notSupported('spec.concurrencyPolicy', s.concurrencyPolicy, ['Allow', 'Forbid', 'Replace']);
    validateJobSpec(s.jobTemplate?.spec, 'spec.jobTemplate.spec', errs);
    if ((o.metadata.name ?? '').length > 52) errs.invalid('metadata.name', o.metadata.name, 'must be no more than 52 characters');
  },
  columns: [
    nameColumn,
    col('Schedule', (o) => o.spec?.schedule ?? ''),
    col('Timezone', (o) => o.spec?.timeZone ?? '<none>'),
    col('Suspend', (o) => (o.spec?.suspend ? 'True' : 'False')),
    col('Active', (o) => (o.status?.active ?? []).length, { type: 'integer' }),
    col('Last Schedule', (o) => (o.status?.lastScheduleTime ? age(o.status.lastScheduleTime) : '<none>')),
    ageColumn,
    ...workloadWideColumns((o) => o.spec?.jobTemplate?.spec?.template?.spec),
  ],
};

export const batchKinds: ResourceType[] = [jobs, cronjobs];
