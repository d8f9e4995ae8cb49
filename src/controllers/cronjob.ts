import { lastScheduleBetween, nextSchedule, parseSchedule } from '../api/cron.js';
import { EventRecorder } from '../client/event-recorder.js';
import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { controllerRef, ownerReferenceTo, requeueOwner } from './owner.js';

/**
 * CronJob controller: at each scheduled minute (in spec.timeZone) creates a Job named
 * <cronjob>-<minutes since epoch>, unless suspended, too late for startingDeadlineSeconds, or
 * held back by concurrencyPolicy (Forbid skips while one runs, Replace deletes the running one).
 * Keeps successful and failed Job history to their limits and reports active Jobs and the last
 * schedule and success times.
 */
const stamp = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const finished = (job: Obj, type: string) => (job.status?.conditions ?? []).some((c: Obj) => c.type === type && c.status === 'True');

export class CronJobController {
  private readonly queue = new WorkQueue();
  private readonly cronjobs: Informer;
  private readonly jobs: Informer;

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.events = new EventRecorder(client, 'cronjob-controller', log);
    this.cronjobs = informers.for('/apis/batch/v1/cronjobs');
    this.jobs = informers.for('/apis/batch/v1/jobs');
    this.cronjobs.on({ add: (c) => this.queue.add(objectKey(c)), update: (_, c) => this.queue.add(objectKey(c)) });
    this.jobs.on(requeueOwner('CronJob', this.queue));
  }

  private jobsPath(ns: string, name?: string): string {
    return resourcePath({ group: 'batch', version: 'v1', plural: 'jobs', namespace: ns, name });
  }

  private async sync(key: string): Promise<void> {
    const cj = this.cronjobs.get(key);
    if (!cj || cj.metadata.deletionTimestamp) return;
    const ns = cj.metadata.namespace;
    const tz = cj.spec?.timeZone || 'UTC';
    const schedule = parseSchedule(cj.spec.schedule);
    let jobs = this.jobs.listNamespace(ns).filter((j) => controllerRef(j)?.uid === cj.metadata.uid);
    const running = () => jobs.filter((j) => !finished(j, 'Complete') && !finished(j, 'Failed'));
    const status: Obj = { ...(cj.status ?? {}) };
    const now = Date.now();
    if (!cj.spec?.suspend) {
      const since = Date.parse(status.lastScheduleTime ?? cj.metadata.creationTimestamp);
      const due = lastScheduleBetween(schedule, since, now, tz);
      const late = due !== undefined && cj.spec?.startingDeadlineSeconds != null && now - due > cj.spec.startingDeadlineSeconds * 1000;
      if (due !== undefined && late) {
        this.events.record(cj, 'batch/v1', 'CronJob', 'Warning', 'MissSchedule', `Missed scheduled time to start a job: ${stamp(due)}`);
        status.lastScheduleTime = stamp(due);
      } else if (due !== undefined) {
        const policy = cj.spec?.concurrencyPolicy ?? 'Allow';
        if (policy === 'Forbid' && running().length) {
          // Skipped this time; the next schedule is looked at when the running job ends or the time comes.
        } else {
          if (policy === 'Replace') {
            for (const j of running()) {
              await this.client.delete(this.jobsPath(ns, j.metadata.name), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' }).catch((err) => {
                if (!isCode(err, 'NotFound')) throw err;
              });
            }
            jobs = jobs.filter((j) => !running().includes(j));
          }
          const tpl = cj.spec.jobTemplate ?? {};
          const name = `${cj.metadata.name}-${Math.floor(due / 60_000)}`;
          try {
            const job = await this.client.create(this.jobsPath(ns), {
              apiVersion: 'batch/v1',
              kind: 'Job',
              metadata: {
                name,
                namespace: ns,
                labels: tpl.metadata?.labels,
                annotations: { ...(tpl.metadata?.annotations ?? {}), 'batch.kubernetes.io/cronjob-scheduled-timestamp': new Date(due).toISOString() },
                ownerReferences: [ownerReferenceTo(cj, 'batch/v1', 'CronJob')],
              },
              spec: tpl.spec,
            });
            jobs.push(job);
            this.events.record(cj, 'batch/v1', 'CronJob', 'Normal', 'SuccessfulCreate', `Created job ${name}`);
          } catch (err) {
            if (!isCode(err, 'AlreadyExists')) throw err;
          }
          status.lastScheduleTime = stamp(due);
        }
      }
      const next = nextSchedule(schedule, now, tz);
      if (next !== undefined) this.queue.addAfter(key, next - now + 100);
    }
    await this.trimHistory(cj, jobs);
    const active = running().map((j) => ({ kind: 'Job', namespace: ns, name: j.metadata.name, uid: j.metadata.uid, apiVersion: 'batch/v1', resourceVersion: j.metadata.resourceVersion }));
    status.active = active.length ? active : undefined;
    const lastSuccess = jobs.filter((j) => finished(j, 'Complete')).map((j) => j.status?.completionTime).sort().pop();
    if (lastSuccess) status.lastSuccessfulTime = lastSuccess;
    if (JSON.stringify(status) !== JSON.stringify(cj.status ?? {})) {
      await this.client.update(resourcePath({ group: 'batch', version: 'v1', plural: 'cronjobs', namespace: ns, name: cj.metadata.name, subresource: 'status' }), { ...cj, status }).catch((err) => {
        if (!isCode(err, 'Conflict') && !isCode(err, 'NotFound')) throw err;
        this.queue.addAfter(key, 100);
      });
    }
  }

  private async trimHistory(cj: Obj, jobs: Obj[]): Promise<void> {
    const byAge = (a: Obj, b: Obj) => Date.parse(a.metadata.creationTimestamp) - Date.parse(b.metadata.creationTimestamp);
    const keep = [
      [jobs.filter((j) => finished(j, 'Complete')).sort(byAge), cj.spec?.successfulJobsHistoryLimit ?? 3],
      [jobs.filter((j) => finished(j, 'Failed')).sort(byAge), cj.spec?.failedJobsHistoryLimit ?? 1],
    ] as const;
    for (const [list, limit] of keep) {
      for (const j of list.slice(0, Math.max(0, list.length - limit))) {
        await this.client.delete(this.jobsPath(cj.metadata.namespace, j.metadata.name), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' }).catch((err) => {
          if (!isCode(err, 'NotFound')) throw err;
        });
      }
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.cronjobs.synced, this.jobs.synced]);
    await this.queue.run(2, (key) => this.sync(key), signal, (key, err) => this.log.warn('cronjob sync failed', { cronjob: key, err }));
  }
}
