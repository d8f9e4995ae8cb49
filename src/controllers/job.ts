import { EventRecorder, type EventType } from '../client/event-recorder.js';
import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { controllerRef, isPodReady, ownerReferenceTo, requeueOwner } from './owner.js';

/**
 * Job controller: runs pods until `completions` succeed (NonIndexed) or every index
 * 0..completions-1 has succeeded (Indexed), at most `parallelism` at a time; recreates failed
 * pods after upstream's back-off (10 s doubling, at most 6 min); fails the Job past
 * backoffLimit, past activeDeadlineSeconds, or when a podFailurePolicy rule says FailJob;
 * honours suspend; deletes finished Jobs after ttlSecondsAfterFinished.
 */
const INDEX = 'batch.kubernetes.io/job-completion-index';
const backoffBaseMs = Number(process.env.KUBICLE_JOB_BACKOFF_MS ?? 10_000);
const stamp = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function condition(job: Obj, type: string): Obj | undefined {
  return (job.status?.conditions ?? []).find((c: Obj) => c.type === type && c.status === 'True');
}

/** "0-2,4": upstream's compact form of a set of indexes. */
function formatIndexes(set: Set<number>): string {
  const sorted = [...set].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    out.push(j > i ? `${sorted[i]}-${sorted[j]}` : String(sorted[i]));
    i = j;
  }
  return out.join(',');
}

function exitCodes(pod: Obj): { name: string; code: number }[] {
  return (pod.status?.containerStatuses ?? []).filter((c: Obj) => c.state?.terminated).map((c: Obj) => ({ name: c.name, code: c.state.terminated.exitCode }));
}

/** The first podFailurePolicy rule matching a failed pod: FailJob, Ignore, Count, or undefined. */
function failureAction(job: Obj, pod: Obj): string | undefined {
  for (const rule of job.spec?.podFailurePolicy?.rules ?? []) {
    const on = rule.onExitCodes;
    if (on) {
      const codes = exitCodes(pod).filter((c) => !on.containerName || c.name === on.containerName);
      const hit = codes.some((c) => (on.operator === 'In' ? on.values.includes(c.code) : c.code !== 0 && !on.values.includes(c.code)));
      if (hit) return rule.action;
    }
    for (const pc of rule.onPodConditions ?? []) {
      if ((pod.status?.conditions ?? []).some((c: Obj) => c.type === pc.type && c.status === (pc.status ?? 'True'))) return rule.action;
    }
  }
  return undefined;
}

export class JobController {
  private readonly queue = new WorkQueue();
  private readonly jobs: Informer;
  private readonly pods: Informer;
  /**
   * Job key -> pods it created and has not yet seen in its informer. Until it sees them it
   * creates no more: a sync in between (the Job's own status write brings one) would count them
   * missing and create them twice, as upstream's expectations prevent.
   */
  private readonly expecting = new Map<string, { names: Set<string>; at: number }>();

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.events = new EventRecorder(client, 'job-controller', log);
    this.jobs = informers.for('/apis/batch/v1/jobs');
    this.pods = informers.for('/api/v1/pods');
    this.jobs.on({ add: (j) => this.queue.add(objectKey(j)), update: (_, j) => this.queue.add(objectKey(j)), delete: (j) => this.expecting.delete(objectKey(j)) });
    this.pods.on(requeueOwner('Job', this.queue));
  }

  private podsPath(ns: string, name?: string): string {
    return resourcePath({ version: 'v1', plural: 'pods', namespace: ns, name });
  }

  private async event(job: Obj, type: EventType, reason: string, message: string): Promise<void> {
    this.events.record(job, 'batch/v1', 'Job', type, reason, message);
  }

  private async deletePods(pods: Obj[]): Promise<void> {
    await Promise.all(
      pods.map((p) =>
        this.client.delete(this.podsPath(p.metadata.namespace, p.metadata.name)).catch((err) => {
          if (!isCode(err, 'NotFound')) throw err;
        }),
      ),
    );
  }

  private async sync(key: string): Promise<void> {
    const job = this.jobs.get(key);
    if (!job || job.metadata.deletionTimestamp) return;
    const ns = job.metadata.namespace;
    const finished = condition(job, 'Complete') ?? condition(job, 'Failed');
    if (finished) return this.expire(job, finished);
    const mine = this.pods.listNamespace(ns).filter((p) => controllerRef(p)?.uid === job.metadata.uid);
    const active = mine.filter((p) => !p.metadata.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
    const succeededPods = mine.filter((p) => p.status?.phase === 'Succeeded');
    const failedPods = mine.filter((p) => p.status?.phase === 'Failed');
    const spec = job.spec ?? {};
    const status: Obj = { ...(job.status ?? {}) };
    const conditions: Obj[] = [...(status.conditions ?? [])];
    const setCondition = (type: string, reason: string, message: string, st = 'True') => {
      const i = conditions.findIndex((c) => c.type === type);
      if (i >= 0 && conditions[i].status === st && conditions[i].reason === reason && conditions[i].message === message) return;
      const c = { type, status: st, reason, message, lastProbeTime: stamp(), lastTransitionTime: i >= 0 && conditions[i].status === st ? conditions[i].lastTransitionTime : stamp() };
      if (i >= 0) conditions[i] = c;
      else conditions.push(c);
    };
    const indexed = spec.completionMode === 'Indexed';
    const completed = new Set<number>(succeededPods.map((p) => Number(p.metadata.annotations?.[INDEX])).filter((i) => Number.isInteger(i)));
    // Counts never go down when finished pods are removed.
    const failedCounted = failedPods.filter((p) => failureAction(job, p) !== 'Ignore');
    status.succeeded = Math.max(status.succeeded ?? 0, indexed ? completed.size : succeededPods.length);
    status.failed = Math.max(status.failed ?? 0, failedCounted.length);
    status.ready = active.filter(isPodReady).length;

    const fail = async (reason: string, message: string) => {
      await this.deletePods(active);
      setCondition('FailureTarget', reason, message);
      setCondition('Failed', reason, message);
      status.active = 0;
      await this.event(job, 'Warning', reason, message);
    };

    if (spec.suspend) {
      if (active.length) await this.deletePods(active);
      status.active = 0;
      setCondition('Suspended', 'JobSuspended', 'Job suspended');
      delete status.startTime;
    } else {
      if (condition(job, 'Suspended')) setCondition('Suspended', 'JobResumed', 'Job resumed', 'False');
      status.startTime ??= stamp();
      const deadline = spec.activeDeadlineSeconds ? Date.parse(status.startTime) + spec.activeDeadlineSeconds * 1000 : undefined;
      const policyFailure = failedPods.find((p) => failureAction(job, p) === 'FailJob');
      const completions: number | undefined = spec.completions ?? undefined;
      const done = indexed ? completed.size >= (completions ?? 0) : completions === undefined ? status.succeeded > 0 && active.length === 0 : status.succeeded >= completions;
      if (policyFailure) {
        const c = exitCodes(policyFailure).find((x) => x.code !== 0);
        await fail('PodFailurePolicy', `Container ${c?.name ?? ''} for pod ${ns}/${policyFailure.metadata.name} failed with exit code ${c?.code ?? ''} matching FailJob rule at index 0`);
      } else if (status.failed > (spec.backoffLimit ?? 6)) {
        await fail('BackoffLimitExceeded', 'Job has reached the specified backoff limit');
      } else if (deadline !== undefined && Date.now() >= deadline) {
        await fail('DeadlineExceeded', 'Job was active longer than specified deadline');
      } else if (done) {
        await this.deletePods(active);
        status.active = 0;
        status.completionTime = stamp();
        if (indexed) status.completedIndexes = formatIndexes(completed);
        setCondition('SuccessCriteriaMet', 'CompletionsReached', 'Reached expected number of succeeded pods');
        setCondition('Complete', 'CompletionsReached', 'Reached expected number of succeeded pods');
        await this.event(job, 'Normal', 'Completed', 'Job completed');
      } else {
        if (deadline !== undefined) this.queue.addAfter(key, deadline - Date.now() + 50);
        status.active = active.length + (await this.createPods(job, key, active, completed, status));
        if (indexed) status.completedIndexes = formatIndexes(completed) || undefined;
      }
    }
    status.conditions = conditions.length ? conditions : undefined;
    if (JSON.stringify(status) !== JSON.stringify(job.status ?? {})) {
      await this.client.update(resourcePath({ group: 'batch', version: 'v1', plural: 'jobs', namespace: ns, name: job.metadata.name, subresource: 'status' }), { ...job, status }).catch((err) => {
        if (!isCode(err, 'Conflict') && !isCode(err, 'NotFound')) throw err;
        this.queue.addAfter(key, 100);
      });
    }
  }

  /** Starts pods up to parallelism, after the failure back-off. Resolves how many it created. */
  private async createPods(job: Obj, key: string, active: Obj[], completed: Set<number>, status: Obj): Promise<number> {
    const spec = job.spec ?? {};
    const indexed = spec.completionMode === 'Indexed';
    const parallelism = spec.parallelism ?? 1;
    const completions = spec.completions;
    let want: number;
    let indexes: number[] = [];
    if (indexed) {
      const running = new Set(active.map((p) => Number(p.metadata.annotations?.[INDEX])));
      indexes = Array.from({ length: completions }, (_, i) => i).filter((i) => !completed.has(i) && !running.has(i));
      want = Math.min(parallelism - active.length, indexes.length);
    } else {
      const remaining = completions === undefined ? (status.succeeded > 0 ? 0 : parallelism) : completions - status.succeeded;
      want = Math.min(parallelism, remaining) - active.length;
    }
    if (want <= 0 || !this.seenAll(key, job.metadata.namespace)) return 0;
    if (status.failed > 0) {
      // Upstream's back-off between replacements of failed pods: base × 2^(failures-1), at most 6 min.
      const delay = Math.min(backoffBaseMs * 2 ** (status.failed - 1), 360_000);
      const lastFailure = Math.max(0, ...this.pods.listNamespace(job.metadata.namespace).filter((p) => controllerRef(p)?.uid === job.metadata.uid && p.status?.phase === 'Failed').map((p) => Date.parse(p.status?.containerStatuses?.[0]?.state?.terminated?.finishedAt ?? p.metadata.creationTimestamp)));
      const wait = lastFailure + delay - Date.now();
      if (wait > 0) {
        this.queue.addAfter(key, wait);
        return 0;
      }
    }
    const tpl = spec.template ?? {};
    const ns = job.metadata.namespace;
    const make = (index?: number) => {
      const annotations = { ...(tpl.metadata?.annotations ?? {}), ...(index !== undefined ? { [INDEX]: String(index) } : {}) };
      const labels = { ...(tpl.metadata?.labels ?? {}), ...(index !== undefined ? { [INDEX]: String(index) } : {}) };
      const podSpec = structuredClone(tpl.spec ?? {});
      if (index !== undefined) {
        for (const c of podSpec.containers ?? []) c.env = [...(c.env ?? []), { name: 'JOB_COMPLETION_INDEX', value: String(index) }];
        podSpec.hostname ??= `${job.metadata.name}-${index}`;
      }
      return this.client.create(this.podsPath(ns), {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: index !== undefined ? `${job.metadata.name}-${index}-` : `${job.metadata.name}-`, namespace: ns, labels, annotations, ownerReferences: [ownerReferenceTo(job, 'batch/v1', 'Job')] },
        spec: podSpec,
      });
    };
    const created = await Promise.allSettled(Array.from({ length: want }, (_, i) => make(indexed ? indexes[i] : undefined)));
    const names = created.flatMap((r) => (r.status === 'fulfilled' ? [r.value.metadata.name as string] : []));
    if (names.length) this.expecting.set(key, { names: new Set(names), at: Date.now() });
    for (const r of created) {
      if (r.status === 'fulfilled') await this.event(job, 'Normal', 'SuccessfulCreate', `Created pod: ${r.value.metadata.name}`);
      else await this.event(job, 'Warning', 'FailedCreate', `Error creating: ${r.reason?.message}`);
    }
    return created.filter((r) => r.status === 'fulfilled').length;
  }

  /** Whether the informer shows every pod this Job created last (or the wait is over: upstream gives up after 5 min). */
  private seenAll(key: string, ns: string): boolean {
    const e = this.expecting.get(key);
    if (!e) return true;
    for (const name of e.names) if (this.pods.get(`${ns}/${name}`)) e.names.delete(name);
    if (e.names.size && Date.now() - e.at < 5 * 60_000) return false;
    this.expecting.delete(key);
    return true;
  }

  /** ttlSecondsAfterFinished: delete the finished Job (and, in background, its pods). */
  private async expire(job: Obj, finished: Obj): Promise<void> {
    const ttl = job.spec?.ttlSecondsAfterFinished;
    if (ttl === undefined || ttl === null) return;
    const at = Date.parse(job.status?.completionTime ?? finished.lastTransitionTime) + ttl * 1000;
    if (Date.now() < at) {
      this.queue.addAfter(objectKey(job), at - Date.now() + 50);
      return;
    }
    await this.client
      .delete(resourcePath({ group: 'batch', version: 'v1', plural: 'jobs', namespace: job.metadata.namespace, name: job.metadata.name }), {
        kind: 'DeleteOptions',
        apiVersion: 'v1',
        propagationPolicy: 'Background',
        preconditions: { uid: job.metadata.uid },
      })
      .catch((err) => {
        if (!isCode(err, 'NotFound') && !isCode(err, 'Conflict')) throw err;
      });
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.jobs.synced, this.pods.synced]);
    await this.queue.run(4, (key) => this.sync(key), signal, (key, err) => this.log.warn('job sync failed', { job: key, err }));
  }
}
