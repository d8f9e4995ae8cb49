import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { type KubeClient, type Obj, resourcePath } from './kube-client.js';

/** The two kinds of Event upstream has. */
export type EventType = 'Normal' | 'Warning';

interface Recorded {
  obj: Obj;
  apiVersion: string;
  kind: string;
  type: string;
  reason: string;
  message: string;
}

/** An event already written, to count its repeats on. */
interface Written {
  name: string;
  namespace: string;
  count: number;
}

/** Events waiting beyond this are dropped (upstream's broadcaster queue holds as many). */
const maxQueued = 1000;
/** Events remembered for counting repeats (upstream's correlator cache holds as many). */
const maxRemembered = 4096;

/**
 * Records core/v1 Events about objects for one component, as controllers and the scheduler
 * report what they did ("Scheduled", "SuccessfulCreate") or could not do ("FailedScheduling").
 *
 * Events are best-effort, as upstream's broadcaster makes them: `record` queues the event and
 * returns; they go out one at a time, in order, so a burst of them never competes with the
 * writes they describe (a scheduler binding a thousand pods a second writes a thousand events,
 * at whatever pace the API server has left). At most `maxQueued` wait; beyond that new ones are
 * dropped and counted. An event equal to one recorded before (same object, type, reason,
 * message) raises that event's `count` and `lastTimestamp` instead of making another, which
 * `kubectl describe` shows as "(x5 over 2m)".
 */
export class EventRecorder {
  private readonly queue: Recorded[] = [];
  private readonly written = new Map<string, Written>();
  private draining?: Promise<void>;
  /** Events dropped because the queue was full. */
  dropped = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly log: Logger,
  ) {}

  /** Queues an event about `obj` (of `apiVersion` and `kind`); those of cluster-scoped objects go to `default`. */
  record(obj: Obj, apiVersion: string, kind: string, type: EventType, reason: string, message: string): void {
    if (this.queue.length >= maxQueued) {
      if (this.dropped++ % maxQueued === 0) this.log.warn('event queue full: dropping events', { reason, dropped: this.dropped });
      return;
    }
    this.queue.push({ obj, apiVersion, kind, type, reason, message });
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  /** Resolves once every event recorded so far has been written or given up on. */
  sent(): Promise<void> {
    return this.draining ?? Promise.resolve();
  }

  private async drain(): Promise<void> {
    for (let e = this.queue.shift(); e; e = this.queue.shift()) {
      await this.write(e).catch((err) => this.log.warn('could not record event', { reason: e?.reason, object: e?.obj.metadata.name, err }));
    }
  }

  private async write(e: Recorded): Promise<void> {
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const namespace = e.obj.metadata.namespace || 'default';
    const involvedObject = { apiVersion: e.apiVersion, kind: e.kind, name: e.obj.metadata.name, namespace: e.obj.metadata.namespace, uid: e.obj.metadata.uid };
    const key = JSON.stringify([involvedObject, e.type, e.reason, e.message]);
    const before = this.written.get(key);
    if (before) {
      try {
        await this.client.patch(resourcePath({ version: 'v1', plural: 'events', namespace: before.namespace, name: before.name }), { count: before.count + 1, lastTimestamp: now });
        this.remember(key, { ...before, count: before.count + 1 });
        return;
      } catch (err) {
        // Gone (its TTL ran out, or someone deleted it): start a new one.
        if (!isCode(err, 'NotFound')) throw err;
      }
    }
    const created = await this.client.create(resourcePath({ version: 'v1', plural: 'events', namespace }), {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${e.obj.metadata.name}.`, namespace },
      involvedObject: { ...involvedObject, resourceVersion: e.obj.metadata.resourceVersion },
      reason: e.reason,
      message: e.message,
      type: e.type,
      source: { component: this.component },
      reportingComponent: this.component,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
    this.remember(key, { name: created.metadata.name, namespace, count: 1 });
  }

  private remember(key: string, w: Written): void {
    // A Map iterates in insertion order: re-inserting makes an entry the newest, the first is the oldest.
    this.written.delete(key);
    this.written.set(key, w);
    if (this.written.size > maxRemembered) this.written.delete(this.written.keys().next().value as string);
  }
}
