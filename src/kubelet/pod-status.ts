import type { Obj } from '../client/kube-client.js';
import type { ContainerStatus, SandboxStatus } from '../sandbox/api/types.js';

/** What the kubelet knows of a container beyond the agent's view: why it waits, its probes, its last run. */
export interface ContainerMemo {
  waiting?: { reason: string; message?: string };
  /** The run before the current one, as `lastState.terminated`. */
  last?: Obj;
  ready?: boolean;
  started?: boolean;
}

const stamp = (iso?: string) => (iso ? iso.replace(/\.\d+Z$/, 'Z') : undefined);

/** A run's terminated state in Kubernetes' words. */
export function terminatedOf(st: ContainerStatus): Obj {
  return {
    exitCode: st.exitCode ?? 0,
    reason: st.reason ?? (st.exitCode === 0 ? 'Completed' : 'Error'),
    ...(st.message ? { message: st.message } : {}),
    startedAt: stamp(st.startedAt) ?? null,
    finishedAt: stamp(st.finishedAt) ?? null,
    containerID: `runc://${st.id}`,
  };
}

export function containerStatusOf(c: Obj, st: ContainerStatus | undefined, memo: ContainerMemo, defaultWaiting: string): Obj {
  const base = { name: c.name, image: c.image, imageID: st?.imageId ?? '', restartCount: st?.attempt ?? 0, ...(memo.last ? { lastState: { terminated: memo.last } } : { lastState: {} }) };
  if (!st) return { ...base, ready: false, started: false, state: { waiting: { reason: memo.waiting?.reason ?? defaultWaiting, ...(memo.waiting?.message ? { message: memo.waiting.message } : {}) } } };
  const containerID = `runc://${st.id}`;
  if (st.state === 'running' || st.state === 'created') {
    // Readiness counts only once the startup probe (if any) has passed, as upstream.
    const started = memo.started ?? true;
    return { ...base, containerID, ready: started && (memo.ready ?? true), started, state: { running: { startedAt: stamp(st.startedAt ?? st.createdAt) } } };
  }
  if (memo.waiting) {
    // Exited and waiting to be restarted: the run just ended is the last state.
    return { ...base, containerID, ready: false, started: false, lastState: { terminated: terminatedOf(st) }, state: { waiting: memo.waiting } };
  }
  return { ...base, containerID, ready: false, started: false, state: { terminated: terminatedOf(st) } };
}

export interface StatusInputs {
  pod: Obj;
  sandbox?: SandboxStatus;
  memos: Map<string, ContainerMemo>;
  hostIP: string;
  /** Whether each init container has completed, in order. */
  initDone: boolean;
  phase: string;
  startTime: string;
}

/** The pod status the kubelet reports: phase, conditions, container statuses, addresses. */
export function podStatus(i: StatusInputs): Obj {
  const { pod, sandbox, memos } = i;
  const runs = new Map((sandbox?.containers ?? []).map((c) => [c.name, c]));
  const memo = (name: string) => memos.get(name) ?? {};
  const initStatuses = (pod.spec.initContainers ?? []).map((c: Obj) => {
    const s = containerStatusOf(c, runs.get(c.name), memo(c.name), 'PodInitializing');
    return s;
  });
  const statuses = (pod.spec.containers ?? []).map((c: Obj) => containerStatusOf(c, runs.get(c.name), memo(c.name), i.initDone ? 'ContainerCreating' : 'PodInitializing'));
  const terminal = i.phase === 'Succeeded' || i.phase === 'Failed';
  const allReady = !terminal && statuses.length > 0 && statuses.every((s: Obj) => s.ready);
  const gates = (pod.spec.readinessGates ?? []).every((g: Obj) => (pod.status?.conditions ?? []).some((c: Obj) => c.type === g.conditionType && c.status === 'True'));
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const previous = new Map<string, Obj>((pod.status?.conditions ?? []).map((c: Obj) => [c.type, c]));
  const cond = (type: string, ok: boolean, reason?: string) => {
    const status = ok ? 'True' : 'False';
    const prev = previous.get(type);
    return { type, status, lastProbeTime: null, lastTransitionTime: prev?.status === status ? prev.lastTransitionTime : now, ...(reason && !ok ? { reason } : {}) };
  };
  const notReadyReason = terminal ? 'PodCompleted' : 'ContainersNotReady';
  const mine = ['PodReadyToStartContainers', 'Initialized', 'ContainersReady', 'Ready'];
  const conditions = [
    cond('PodReadyToStartContainers', !!sandbox && !terminal),
    cond('Initialized', i.initDone, 'ContainersNotInitialized'),
    cond('ContainersReady', allReady, notReadyReason),
    cond('Ready', allReady && gates, notReadyReason),
    ...(pod.status?.conditions ?? []).filter((c: Obj) => !mine.includes(c.type)),
  ];
  const ip = sandbox?.ip ?? (pod.spec.hostNetwork ? i.hostIP : undefined);
  return {
    phase: i.phase,
    conditions,
    hostIP: i.hostIP,
    hostIPs: [{ ip: i.hostIP }],
    ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}),
    startTime: i.startTime,
    ...(initStatuses.length ? { initContainerStatuses: initStatuses } : {}),
    containerStatuses: statuses,
    qosClass: pod.status?.qosClass,
  };
}
