import type { EventType } from '../client/event-recorder.js';
import type { Obj } from '../client/kube-client.js';
import type { Logger } from '../observe/log.js';
import type { SandboxClient } from '../sandbox/api/client.js';
import type { SandboxStatus } from '../sandbox/api/types.js';
import { runAction } from './container-actions.js';
import type { ContainerMemo } from './pod-status.js';

type ProbeKind = 'startup' | 'liveness' | 'readiness';
const kinds: ProbeKind[] = ['startup', 'liveness', 'readiness'];
const title: Record<ProbeKind, string> = { startup: 'Startup', liveness: 'Liveness', readiness: 'Readiness' };

/** What the prober needs from the pod worker. */
export interface ProbeHost {
  /** The container's memo, whose `started` and `ready` the probes set. */
  memo(pod: Obj, container: string): ContainerMemo;
  /** A probe changed what the pod's status should say, or killed a container: sync the pod again. */
  wake(pod: Obj): void;
  /** Stops a container a liveness or startup probe gave up on (preStop first); the pod worker restarts it by its policy. */
  kill(pod: Obj, container: Obj, graceSeconds: number): Promise<void>;
  event(pod: Obj, type: EventType, reason: string, message: string): void;
}

interface Worker {
  timer?: NodeJS.Timeout;
  stopped: boolean;
}

/**
 * Startup, liveness and readiness probes, one timer per probe of each running container run,
 * with upstream's semantics: nothing before initialDelaySeconds, then every periodSeconds with
 * timeoutSeconds; successThreshold and failureThreshold count consecutive results; liveness and
 * readiness wait for startup to succeed; a failing startup or liveness probe kills the container;
 * readiness flips the container's `ready`. Each failure is an `Unhealthy` event.
 */
export class Prober {
  private readonly workers = new Map<string, Worker>();

  constructor(
    private readonly agent: SandboxClient,
    private readonly host: ProbeHost,
    private readonly log: Logger,
  ) {}

  /** Keeps a worker for every probe of every running container of the pod; stops the others of the pod. */
  sync(pod: Obj, sb: SandboxStatus): void {
    const uid = pod.metadata.uid as string;
    const want = new Set<string>();
    for (const c of pod.spec.containers as Obj[]) {
      const run = sb.containers.find((r) => r.name === c.name);
      if (run?.state !== 'running') continue;
      for (const kind of kinds) {
        const probe = c[`${kind}Probe`] as Obj | undefined;
        if (!probe) continue;
        const key = `${uid}/${c.name}/${kind}/${run.id}`;
        want.add(key);
        if (this.workers.has(key)) continue;
        const memo = this.host.memo(pod, c.name);
        // A run first seen now (a restarted kubelet included) is neither started nor ready until its probes say so.
        if (kind === 'startup') memo.started ??= false;
        if (kind === 'readiness') memo.ready ??= false;
        this.start(key, kind, probe, pod, c, sb.ip, Date.parse(run.startedAt ?? '') || Date.now());
      }
    }
    for (const [key, w] of this.workers) {
      if (key.startsWith(`${uid}/`) && !want.has(key)) {
        retire(w);
        this.workers.delete(key);
      }
    }
  }

  stopPod(uid: string): void {
    for (const [key, w] of this.workers) {
      if (key.startsWith(`${uid}/`)) {
        retire(w);
        this.workers.delete(key);
      }
    }
  }

  private start(key: string, kind: ProbeKind, probe: Obj, pod: Obj, c: Obj, podIP: string | undefined, startedAt: number): void {
    const w: Worker = { stopped: false };
    this.workers.set(key, w);
    const periodMs = Math.max(1, probe.periodSeconds ?? 10) * 1000;
    const timeoutMs = Math.max(1, probe.timeoutSeconds ?? 1) * 1000;
    const successThreshold = Math.max(1, probe.successThreshold ?? 1);
    const failureThreshold = Math.max(1, probe.failureThreshold ?? 3);
    let successes = 0;
    let failures = 0;
    const memo = () => this.host.memo(pod, c.name);
    const schedule = (ms: number) => {
      if (!w.stopped) w.timer = setTimeout(() => void tick(), ms);
    };
    const tick = async () => {
      if (kind !== 'startup' && memo().started === false) return schedule(periodMs);
      const result = await runAction(this.agent, probe, { sandbox: pod.metadata.uid, container: c, podIP }, timeoutMs);
      if (w.stopped) return;
      if (result.ok) {
        successes++;
        failures = 0;
      } else {
        failures++;
        successes = 0;
        this.host.event(pod, 'Warning', 'Unhealthy', `${title[kind]} probe failed: ${result.message ?? ''}`.trim());
      }
      if (kind === 'readiness') {
        const m = memo();
        if (result.ok && successes >= successThreshold && m.ready !== true) {
          m.ready = true;
          this.host.wake(pod);
        } else if (!result.ok && failures >= failureThreshold && m.ready !== false) {
          m.ready = false;
          this.host.wake(pod);
        }
        return schedule(periodMs);
      }
      // A worker that is done stays in the map, retired, so the same run is not probed again.
      if (kind === 'startup' && result.ok) {
        memo().started = true;
        retire(w);
        this.host.wake(pod);
        return;
      }
      if (!result.ok && failures >= failureThreshold) {
        retire(w);
        this.host.event(pod, 'Normal', 'Killing', `Container ${c.name} failed ${kind} probe, will be restarted`);
        const grace = probe.terminationGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
        await this.host.kill(pod, c, grace).catch((err) => this.log.warn('probe kill failed', { pod: pod.metadata.name, container: c.name, err }));
        this.host.wake(pod);
        return;
      }
      schedule(periodMs);
    };
    schedule(Math.max(0, startedAt + (probe.initialDelaySeconds ?? 0) * 1000 - Date.now()));
  }
}

function retire(w: Worker): void {
  w.stopped = true;
  clearTimeout(w.timer);
}
