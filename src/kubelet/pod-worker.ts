import { podResourceTotals } from '../api/pod-resources.js';
import { EventRecorder, type EventType } from '../client/event-recorder.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import type { SandboxClient } from '../sandbox/api/client.js';
import type { ContainerStatus, RegistryAuth, SandboxStatus } from '../sandbox/api/types.js';
import { runAction } from './container-actions.js';
import { containerSpec } from './container-spec.js';
import { type ClusterDnsSettings, podResolver, type ResolverSettings } from './pod-dns.js';
import { type ContainerMemo, podStatus, terminatedOf } from './pod-status.js';
import { sandboxVolumes } from './pod-volumes.js';
import { Prober } from './prober.js';

export interface PodWorkerOptions {
  nodeName: string;
  hostIP: string;
  /** Restart back-off: first delay and ceiling (upstream: 10 s doubling to 300 s). */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** The cluster DNS pods resolve through, and the host's resolver for dnsPolicy Default. */
  dns: ClusterDnsSettings;
  hostResolver: ResolverSettings;
  /** Asks for the pod to be synced again soon (a probe changed something). */
  wake(pod: Obj): void;
}

interface Backoff {
  delayMs: number;
  /** When the back-off window ends. */
  until: number;
}

/** What the kubelet remembers of one pod between syncs (lost on restart, as upstream's). */
interface PodMemory {
  memos: Map<string, ContainerMemo>;
  backoff: Map<string, Backoff>;
  lastReported?: string;
  startTime: string;
}

const component = 'kubelet';

/**
 * Drives one pod at a time toward its spec on the Sandbox API: sandbox, image pulls, init
 * containers in order, app containers with restartPolicy and exponential back-off, and the pod
 * status upstream reports (waiting reasons ContainerCreating, PodInitializing, ErrImagePull,
 * ImagePullBackOff, CrashLoopBackOff, CreateContainerConfigError; terminated with StartError,
 * OOMKilled, Error, Completed), probes (prober.ts) and lifecycle hooks. `sync` returns when it
 * next wants to look at the pod.
 */
export class PodWorker {
  private readonly pods = new Map<string, PodMemory>();
  private readonly prober: Prober;

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    private readonly agent: SandboxClient,
    private readonly opts: PodWorkerOptions,
    private readonly log: Logger,
  ) {
    this.events = new EventRecorder(client, component, log);
    this.prober = new Prober(
      agent,
      {
        memo: (pod, name) => {
          const memos = this.memory(pod).memos;
          const m = memos.get(name) ?? {};
          memos.set(name, m);
          return m;
        },
        wake: (pod) => opts.wake(pod),
        kill: (pod, c, grace) => this.kill(pod, c, grace),
        event: (pod, type, reason, message) => this.event(pod, type, reason, message),
      },
      log,
    );
  }

  private memory(pod: Obj): PodMemory {
    let m = this.pods.get(pod.metadata.uid);
    if (!m) {
      m = { memos: new Map(), backoff: new Map(), startTime: pod.status?.startTime ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
      this.pods.set(pod.metadata.uid, m);
    }
    return m;
  }

  private event(pod: Obj, type: EventType, reason: string, message: string): void {
    this.events.record(pod, 'v1', 'Pod', type, reason, message);
  }

  /** Brings a live pod one step closer to its spec and reports its status. Returns ms until the next look (undefined: on change only). */
  async sync(pod: Obj, sandbox: SandboxStatus | undefined): Promise<number | undefined> {
    const mem = this.memory(pod);
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') {
      this.prober.stopPod(pod.metadata.uid);
      if (sandbox?.containers.some((c) => c.state === 'running')) await this.agent.removeSandbox(pod.metadata.uid, graceOf(pod));
      return undefined;
    }
    let sb = sandbox;
    let next: number | undefined;
    try {
      if (!sb) {
        const handler = await this.runtimeHandler(pod);
        sb = await this.agent.createSandbox(
          {
          id: pod.metadata.uid,
          hostname: (pod.spec.hostname ?? pod.metadata.name).slice(0, 63),
          labels: { 'kubicle.io/namespace': pod.metadata.namespace, 'kubicle.io/pod': pod.metadata.name, 'kubicle.io/node': this.opts.nodeName },
          network: pod.spec.hostNetwork ? 'host' : 'pod',
          hostAliases: pod.spec.hostAliases,
          dns: podResolver(pod, this.opts.dns, this.opts.hostResolver),
          volumes: await sandboxVolumes(this.client, pod),
          // A microvm is sized by the pod: its memory and vCPUs are the pod's limits (overhead included).
          resources: handler === 'microvm' ? sandboxResources(pod) : undefined,
          },
          handler,
        );
      }
      next = await this.containers(pod, sb, mem);
      sb = await this.agent.getSandbox(pod.metadata.uid);
      this.prober.sync(pod, sb);
    } catch (err) {
      if (!sb && err instanceof KubicleError && (err.code === 'Forbidden' || err.code === 'Unavailable')) {
        // The provider refused the sandbox (a tenant beyond its quota, a host path) or cannot make
        // it now (its host without room, or not answering): said on the pod as upstream says a
        // runtime's refusal, and tried again later.
        this.event(pod, 'Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${err.message}`);
        return 10_000;
      }
      if (!(err instanceof KubicleError) || !['Invalid', 'Unsupported'].includes(err.code)) throw err;
      // A configuration the pod cannot run with (missing configMap key, unsupported volume): upstream's CreateContainerConfigError.
      for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) mem.memos.set(c.name, { ...mem.memos.get(c.name), waiting: { reason: 'CreateContainerConfigError', message: err.message } });
      this.event(pod, 'Warning', 'Failed', `Error: ${err.message}`);
      next = 5_000;
    }
    await this.report(pod, sb, mem);
    return next;
  }

  /** The runtime a pod's sandbox runs in: its RuntimeClass's handler, runc without one. */
  private async runtimeHandler(pod: Obj): Promise<string> {
    const name = pod.spec.runtimeClassName;
    if (!name) return 'runc';
    const rc = await this.client.get(`/apis/node.k8s.io/v1/runtimeclasses/${encodeURIComponent(name)}`).catch((err) => {
      throw isCode(err, 'NotFound') ? new KubicleError('Invalid', `RuntimeClass "${name}" not found`) : err;
    });
    return rc.handler as string;
  }

  /** Init containers in order, then app containers; returns ms until a back-off ends or a run needs watching. */
  private async containers(pod: Obj, sb: SandboxStatus, mem: PodMemory): Promise<number | undefined> {
    const runs = new Map(sb.containers.map((c) => [c.name, c]));
    const policy = pod.spec.restartPolicy ?? 'Always';
    let wake: number | undefined;
    const soonest = (ms: number) => {
      wake = wake === undefined ? ms : Math.min(wake, ms);
    };
    for (const c of pod.spec.initContainers ?? []) {
      const run = runs.get(c.name);
      if (!run) {
        await this.start(pod, c, mem, undefined);
        return this.pullWait(c, mem) ?? 200;
      }
      if (run.state !== 'exited') return 500;
      if (run.exitCode === 0) continue;
      if (policy === 'Never') return undefined; // the pod fails: report() sees it
      const wait = await this.restart(pod, c, run, mem);
      return wait ?? 200;
    }
    for (const c of pod.spec.containers) {
      const run = runs.get(c.name);
      if (!run) {
        await this.start(pod, c, mem, undefined);
        soonest(this.pullWait(c, mem) ?? 500);
        continue;
      }
      if (run.state !== 'exited') {
        soonest(1000);
        continue;
      }
      if (policy === 'Always' || (policy === 'OnFailure' && run.exitCode !== 0)) {
        const wait = await this.restart(pod, c, run, mem);
        soonest(wait ?? 500);
      }
    }
    return wake;
  }

  /**
   * After a failed pull: ErrImagePull stands for the first half of the back-off and
   * ImagePullBackOff for the rest, as upstream's periodic syncs show them; then the pull is retried.
   */
  private pullWait(c: Obj, mem: PodMemory): number | undefined {
    const reason = mem.memos.get(c.name)?.waiting?.reason;
    const b = mem.backoff.get(`pull:${c.name}`);
    if (!b || (reason !== 'ErrImagePull' && reason !== 'ImagePullBackOff')) return undefined;
    const left = Math.max(0, b.until - Date.now());
    return reason === 'ErrImagePull' ? Math.max(50, left - b.delayMs / 2) : left + 10;
  }

  /** Restarts an exited container unless it is in back-off; returns ms left of the back-off. */
  private async restart(pod: Obj, c: Obj, run: ContainerStatus, mem: PodMemory): Promise<number | undefined> {
    const key = c.name;
    const b = mem.backoff.get(key);
    const now = Date.now();
    const finished = Date.parse(run.finishedAt ?? '') || now;
    if (b && now < finished + b.delayMs) {
      const left = finished + b.delayMs - now;
      mem.memos.set(c.name, { ...mem.memos.get(c.name), waiting: { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(b.delayMs / 1000)}s restarting failed container=${c.name} pod=${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})` } });
      if (!b.until || b.until !== finished + b.delayMs) {
        b.until = finished + b.delayMs;
        this.event(pod, 'Warning', 'BackOff', 'Back-off restarting failed container');
      }
      return left;
    }
    const delayMs = b ? Math.min(b.delayMs * 2, this.opts.backoffMaxMs) : this.opts.backoffBaseMs;
    mem.backoff.set(key, { delayMs, until: 0 });
    await this.start(pod, c, mem, terminatedOf(run));
    return undefined;
  }

  private async start(pod: Obj, c: Obj, mem: PodMemory, last: Obj | undefined): Promise<void> {
    const memo: ContainerMemo = { ...mem.memos.get(c.name), last: last ?? mem.memos.get(c.name)?.last };
    mem.memos.set(c.name, memo);
    if (!(await this.ensureImage(pod, c, mem))) return;
    const spec = await containerSpec(this.client, pod, c);
    const st = await this.agent.startContainer(pod.metadata.uid, spec);
    memo.waiting = undefined;
    memo.ready = !c.readinessProbe;
    memo.started = !c.startupProbe;
    if (st.state === 'exited' && st.reason === 'StartError') {
      this.event(pod, 'Warning', 'Failed', `Error: ${st.message}`);
      return;
    }
    this.event(pod, 'Normal', 'Created', `Created container ${c.name}`);
    this.event(pod, 'Normal', 'Started', `Started container ${c.name}`);
    const postStart = c.lifecycle?.postStart;
    if (postStart) {
      // Upstream holds the container out of Running until postStart returns; a failure kills it.
      const podIP = (await this.agent.getSandbox(pod.metadata.uid).catch(() => undefined))?.ip;
      const r = await runAction(this.agent, postStart, { sandbox: pod.metadata.uid, container: c, podIP }, graceOf(pod) * 1000);
      if (!r.ok) {
        this.event(pod, 'Warning', 'FailedPostStartHook', `PostStartHook failed: ${r.message ?? ''}`.trim());
        await this.agent.stopContainer(pod.metadata.uid, c.name, graceOf(pod));
      }
    }
  }

  /** Runs a container's preStop hook, if it has one, within the grace period; returns the seconds of grace left. */
  private async preStop(pod: Obj, c: Obj, graceSeconds: number): Promise<number> {
    const hook = c.lifecycle?.preStop;
    if (!hook) return graceSeconds;
    const started = Date.now();
    const podIP = pod.status?.podIP as string | undefined;
    const r = await Promise.race([
      runAction(this.agent, hook, { sandbox: pod.metadata.uid, container: c, podIP }, graceSeconds * 1000),
      new Promise<{ ok: true }>((resolve) => setTimeout(() => resolve({ ok: true }), graceSeconds * 1000)),
    ]);
    if (!r.ok) this.event(pod, 'Warning', 'FailedPreStopHook', `PreStopHook failed: ${r.message ?? ''}`.trim());
    // Upstream gives SIGTERM a last 2 seconds when the hook used the whole grace period.
    return Math.max(2, graceSeconds - Math.ceil((Date.now() - started) / 1000));
  }

  /** A container a probe gave up on: preStop, then SIGTERM and SIGKILL after the grace left. */
  private async kill(pod: Obj, c: Obj, graceSeconds: number): Promise<void> {
    const left = await this.preStop(pod, c, graceSeconds);
    await this.agent.stopContainer(pod.metadata.uid, c.name, left);
  }

  /** Pulls the container's image by its pull policy; false (with the waiting reason set) when it is not there. */
  private async ensureImage(pod: Obj, c: Obj, mem: PodMemory): Promise<boolean> {
    const policy = c.imagePullPolicy ?? 'IfNotPresent';
    const memo = mem.memos.get(c.name) ?? {};
    if (policy !== 'Always') {
      const present = await this.agent.getImage(c.image).then(
        () => true,
        (err) => (isCode(err, 'NotFound') ? false : Promise.reject(err)),
      );
      if (present) {
        if (memo.waiting?.reason !== 'CrashLoopBackOff') this.event(pod, 'Normal', 'Pulled', `Container image "${c.image}" already present on machine`);
        return true;
      }
      if (policy === 'Never') {
        memo.waiting = { reason: 'ErrImageNeverPull', message: `Container image "${c.image}" is not present with pull policy of Never` };
        mem.memos.set(c.name, memo);
        return false;
      }
    }
    const key = `pull:${c.name}`;
    const b = mem.backoff.get(key);
    if (b && Date.now() < b.until) {
      if (memo.waiting?.reason !== 'ImagePullBackOff') {
        this.event(pod, 'Normal', 'BackOff', `Back-off pulling image "${c.image}"`);
        this.event(pod, 'Warning', 'Failed', 'Error: ImagePullBackOff');
      }
      memo.waiting = { reason: 'ImagePullBackOff', message: `Back-off pulling image "${c.image}"` };
      mem.memos.set(c.name, memo);
      return false;
    }
    this.event(pod, 'Normal', 'Pulling', `Pulling image "${c.image}"`);
    const started = Date.now();
    try {
      await this.agent.pullImage(c.image, await this.pullSecrets(pod));
    } catch (err) {
      const message = `failed to pull and unpack image "${c.image}": ${(err as Error).message}`;
      const delayMs = b ? Math.min(b.delayMs * 2, this.opts.backoffMaxMs) : this.opts.backoffBaseMs;
      mem.backoff.set(key, { delayMs, until: Date.now() + delayMs });
      memo.waiting = { reason: 'ErrImagePull', message };
      mem.memos.set(c.name, memo);
      this.event(pod, 'Warning', 'Failed', `Failed to pull image "${c.image}": ${(err as Error).message}`);
      this.event(pod, 'Warning', 'Failed', 'Error: ErrImagePull');
      return false;
    }
    mem.backoff.delete(key);
    this.event(pod, 'Normal', 'Pulled', `Successfully pulled image "${c.image}" in ${Date.now() - started}ms`);
    return true;
  }

  /** Registry credentials from the pod's imagePullSecrets (kubernetes.io/dockerconfigjson and dockercfg). */
  private async pullSecrets(pod: Obj): Promise<RegistryAuth[]> {
    const out: RegistryAuth[] = [];
    for (const ref of pod.spec.imagePullSecrets ?? []) {
      const s = await this.client.get(resourcePath({ version: 'v1', plural: 'secrets', namespace: pod.metadata.namespace, name: ref.name })).catch(() => undefined);
      const raw = s?.data?.['.dockerconfigjson'] ?? s?.data?.['.dockercfg'];
      if (!raw) continue;
      try {
        const doc = JSON.parse(Buffer.from(raw, 'base64').toString());
        const auths = (doc.auths ?? doc) as Record<string, { username?: string; password?: string; auth?: string; identitytoken?: string; registrytoken?: string }>;
        for (const [server, a] of Object.entries(auths)) {
          const [user, ...pass] = a.auth ? Buffer.from(a.auth, 'base64').toString().split(':') : [];
          const registry = server.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
          out.push({ registry: registry === 'index.docker.io' ? 'docker.io' : registry, username: a.username ?? user, password: a.password ?? pass.join(':'), token: a.identitytoken ?? a.registrytoken });
        }
      } catch {
        this.log.warn('unreadable image pull secret', { secret: ref.name });
      }
    }
    return out;
  }

  /** Computes and writes the pod status when it changed since the last report. */
  private async report(pod: Obj, sb: SandboxStatus | undefined, mem: PodMemory): Promise<void> {
    const runs = new Map((sb?.containers ?? []).map((c) => [c.name, c]));
    const policy = pod.spec.restartPolicy ?? 'Always';
    const inits = pod.spec.initContainers ?? [];
    const initDone = inits.every((c: Obj) => runs.get(c.name)?.state === 'exited' && runs.get(c.name)?.exitCode === 0);
    const initFailed = policy === 'Never' && inits.some((c: Obj) => runs.get(c.name)?.state === 'exited' && runs.get(c.name)?.exitCode !== 0);
    for (const c of pod.spec.containers) {
      const run = runs.get(c.name);
      const memo = mem.memos.get(c.name);
      if (memo && run && run.state !== 'exited' && memo.waiting?.reason === 'CrashLoopBackOff') memo.waiting = undefined;
      if (memo && run?.state === 'exited' && !(policy === 'Always' || (policy === 'OnFailure' && run.exitCode !== 0)) && memo.waiting?.reason === 'CrashLoopBackOff') memo.waiting = undefined;
    }
    const apps = pod.spec.containers.map((c: Obj) => runs.get(c.name));
    const finished = apps.every((r: ContainerStatus | undefined) => r?.state === 'exited') && !apps.some((_: ContainerStatus | undefined, i: number) => mem.memos.get(pod.spec.containers[i].name)?.waiting);
    let phase = 'Pending';
    if (initFailed) phase = 'Failed';
    else if (initDone && apps.some((r: ContainerStatus | undefined) => r)) {
      if (finished && policy !== 'Always') phase = apps.every((r: ContainerStatus | undefined) => r?.exitCode === 0) ? 'Succeeded' : 'Failed';
      else phase = 'Running';
    }
    const status = podStatus({ pod, sandbox: sb, memos: mem.memos, hostIP: this.opts.hostIP, initDone, phase, startTime: mem.startTime });
    const text = JSON.stringify(status, (k, v) => (k === 'lastTransitionTime' ? undefined : v));
    if (text === mem.lastReported) return;
    try {
      await this.client.patch(resourcePath({ version: 'v1', plural: 'pods', namespace: pod.metadata.namespace, name: pod.metadata.name, subresource: 'status' }), { status });
    } catch (err) {
      // Deleted while this sync ran: nobody is left to read the status, and the deletion's own
      // event removes the sandbox (upstream's status manager drops it the same way).
      if (isCode(err, 'NotFound')) return;
      throw err;
    }
    mem.lastReported = text;
  }

  /** A pod being deleted: stop its containers within its grace period, remove the sandbox, finish the deletion. */
  async terminate(pod: Obj): Promise<void> {
    const grace = graceOf(pod);
    this.prober.stopPod(pod.metadata.uid);
    this.event(pod, 'Normal', 'Killing', `Stopping container ${pod.spec.containers.map((c: Obj) => c.name).join(', ')}`);
    const running = new Set(((await this.agent.getSandbox(pod.metadata.uid).catch(() => undefined))?.containers ?? []).filter((r) => r.state === 'running').map((r) => r.name));
    const hooked = (pod.spec.containers as Obj[]).filter((c) => c.lifecycle?.preStop && running.has(c.name));
    // Hooks run side by side, each within the pod's grace period; what they leave is the SIGTERM's.
    const left = hooked.length ? Math.min(...(await Promise.all(hooked.map((c) => this.preStop(pod, c, grace))))) : grace;
    await this.agent.removeSandbox(pod.metadata.uid, left);
    this.pods.delete(pod.metadata.uid);
    await this.client
      .delete(`${resourcePath({ version: 'v1', plural: 'pods', namespace: pod.metadata.namespace, name: pod.metadata.name })}?gracePeriodSeconds=0`, { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } })
      .catch((err) => {
        if (!isCode(err, 'NotFound') && !isCode(err, 'Conflict')) throw err;
      });
  }

  /** A sandbox whose pod is gone from the API: remove it. */
  async removeOrphan(uid: string): Promise<void> {
    this.prober.stopPod(uid);
    this.pods.delete(uid);
    await this.agent.removeSandbox(uid, 2);
  }
}

function graceOf(pod: Obj): number {
  return pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
}

/** The pod-level limits, as upstream sets the pod cgroup: memory only when every container limits it. */
function sandboxResources(pod: Obj): { memoryBytes?: number; cpuMillis?: number } {
  const limits = podResourceTotals(pod.spec, 'limits');
  const all = (k: string) => [...(pod.spec.containers ?? []), ...(pod.spec.initContainers ?? [])].every((c: Obj) => c.resources?.limits?.[k] !== undefined);
  return { memoryBytes: all('memory') ? limits.get('memory') : undefined, cpuMillis: all('cpu') ? limits.get('cpu') : undefined };
}
