import { bytes, milliCpu } from '../api/quantity.js';
import { EventRecorder } from '../client/event-recorder.js';
import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * HorizontalPodAutoscaler controller (autoscaling/v2): every sync period reads the target's
 * /scale and its pods' usage from metrics.k8s.io, computes the replicas each Resource metric asks
 * for (Utilization of requests, or AverageValue) with upstream's 10% tolerance, takes the largest,
 * bounds it by min/maxReplicas, holds scale-downs for the stabilization window (300 s unless
 * behavior says otherwise), and writes the new size through /scale.
 */
const tolerance = 0.1;
const scaleTargets: Record<string, { group: string; plural: string }> = {
  Deployment: { group: 'apps', plural: 'deployments' },
  ReplicaSet: { group: 'apps', plural: 'replicasets' },
  StatefulSet: { group: 'apps', plural: 'statefulsets' },
};
const stamp = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const parse = (resource: string, q: string | undefined) => (resource === 'cpu' ? milliCpu(q ?? '0') : bytes(q ?? '0'));

export class HorizontalController {
  private readonly queue = new WorkQueue();
  private readonly hpas: Informer;
  private readonly pods: Informer;
  /** HPA key -> recent recommendations, for the stabilization windows. */
  private readonly recommendations = new Map<string, { at: number; replicas: number }[]>();

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
    private readonly syncPeriodMs = Number(process.env.KUBICLE_HPA_SYNC_PERIOD_MS ?? 15_000),
  ) {
    this.events = new EventRecorder(client, 'horizontal-pod-autoscaler', log);
    this.hpas = informers.for('/apis/autoscaling/v2/horizontalpodautoscalers');
    this.pods = informers.for('/api/v1/pods');
    this.hpas.on({ add: (h) => this.queue.add(objectKey(h)), update: (_, h) => this.queue.add(objectKey(h)), delete: (h) => this.recommendations.delete(objectKey(h)) });
  }

  private async sync(key: string): Promise<void> {
    const hpa = this.hpas.get(key);
    if (!hpa || hpa.metadata.deletionTimestamp) return;
    this.queue.addAfter(key, this.syncPeriodMs);
    const ns = hpa.metadata.namespace;
    const ref = hpa.spec.scaleTargetRef ?? {};
    const target = scaleTargets[ref.kind];
    const conditions: Obj[] = [];
    const cond = (type: string, status: string, reason: string, message: string) => {
      const prev = (hpa.status?.conditions ?? []).find((c: Obj) => c.type === type);
      conditions.push({ type, status, reason, message, lastTransitionTime: prev?.status === status ? prev.lastTransitionTime : stamp() });
    };
    const writeStatus = async (status: Obj) => {
      status.conditions = conditions;
      if (JSON.stringify(status) === JSON.stringify(hpa.status ?? {})) return;
      await this.client.update(resourcePath({ group: 'autoscaling', version: 'v2', plural: 'horizontalpodautoscalers', namespace: ns, name: hpa.metadata.name, subresource: 'status' }), { ...hpa, status }).catch((err) => {
        if (!isCode(err, 'Conflict') && !isCode(err, 'NotFound')) throw err;
      });
    };
    if (!target) {
      cond('AbleToScale', 'False', 'FailedGetScale', `the HPA controller was unable to get the target's current scale: no scale subresource for ${ref.kind}`);
      return writeStatus({ ...(hpa.status ?? {}), currentReplicas: 0, desiredReplicas: 0 });
    }
    const scalePath = `${resourcePath({ group: target.group, version: 'v1', plural: target.plural, namespace: ns, name: ref.name })}/scale`;
    let scale: Obj;
    try {
      scale = await this.client.get(scalePath);
    } catch (err) {
      cond('AbleToScale', 'False', 'FailedGetScale', `the HPA controller was unable to get the target's current scale: ${(err as Error).message}`);
      return writeStatus({ ...(hpa.status ?? {}), desiredReplicas: hpa.status?.desiredReplicas ?? 0, currentReplicas: hpa.status?.currentReplicas ?? 0 });
    }
    const current: number = scale.spec?.replicas ?? 0;
    const status: Obj = { ...(hpa.status ?? {}), currentReplicas: current, observedGeneration: hpa.metadata.generation };
    if (current === 0) {
      cond('AbleToScale', 'True', 'SucceededGetScale', 'the HPA controller was able to get the target\'s current scale');
      cond('ScalingActive', 'False', 'ScalingDisabled', 'scaling is disabled since the replica count of the target is zero');
      return writeStatus({ ...status, desiredReplicas: 0 });
    }
    const selector: string = scale.status?.selector ?? '';
    const wanted = new Map(
      selector
        .split(',')
        .filter(Boolean)
        .map((kv) => kv.split('=') as [string, string]),
    );
    const pods = this.pods.listNamespace(ns).filter((p) => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp && [...wanted].every(([k, v]) => p.metadata.labels?.[k] === v));
    let usage: Map<string, Obj>;
    try {
      const list = await this.client.get(`/apis/metrics.k8s.io/v1beta1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`);
      usage = new Map((list.items ?? []).map((m: Obj) => [m.metadata.name, m]));
    } catch (err) {
      cond('ScalingActive', 'False', 'FailedGetResourceMetric', `the HPA was unable to compute the replica count: ${(err as Error).message}`);
      return writeStatus({ ...status, desiredReplicas: current });
    }
    let desired = 0;
    const currentMetrics: Obj[] = [];
    for (const metric of hpa.spec.metrics ?? []) {
      if (metric.type !== 'Resource') continue;
      const name: string = metric.resource?.name;
      const t = metric.resource?.target ?? {};
      let used = 0;
      let requested = 0;
      let counted = 0;
      for (const p of pods) {
        const m = usage.get(p.metadata.name);
        if (!m) continue;
        counted++;
        for (const c of m.containers ?? []) used += parse(name, c.usage?.[name]);
        for (const c of p.spec?.containers ?? []) requested += parse(name, c.resources?.requests?.[name]);
      }
      if (!counted) {
        cond('ScalingActive', 'False', 'FailedGetResourceMetric', `the HPA was unable to compute the replica count: unable to get metrics for resource ${name}: no metrics returned from resource metrics API`);
        return writeStatus({ ...status, desiredReplicas: current });
      }
      if (t.type === 'Utilization') {
        if (!requested) {
          cond('ScalingActive', 'False', 'FailedGetResourceMetric', `the HPA was unable to compute the replica count: missing request for ${name}`);
          return writeStatus({ ...status, desiredReplicas: current });
        }
        const utilization = Math.round((used * 100) / requested);
        const ratio = utilization / t.averageUtilization;
        desired = Math.max(desired, Math.abs(ratio - 1) <= tolerance ? current : Math.ceil(ratio * counted));
        currentMetrics.push({ type: 'Resource', resource: { name, current: { averageUtilization: utilization, averageValue: name === 'cpu' ? `${Math.round(used / counted)}m` : String(Math.round(used / counted)) } } });
      } else {
        const per = parse(name, t.averageValue ?? t.value);
        const ratio = used / counted / per;
        desired = Math.max(desired, Math.abs(ratio - 1) <= tolerance ? current : Math.ceil(used / per));
        currentMetrics.push({ type: 'Resource', resource: { name, current: { averageValue: name === 'cpu' ? `${Math.round(used / counted)}m` : String(Math.round(used / counted)) } } });
      }
    }
    cond('AbleToScale', 'True', 'SucceededGetScale', 'the HPA controller was able to get the target\'s current scale');
    cond('ScalingActive', 'True', 'ValidMetricFound', 'the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)');
    const min = hpa.spec.minReplicas ?? 1;
    const max = hpa.spec.maxReplicas;
    const bounded = Math.min(max, Math.max(min, desired || current));
    if (bounded !== desired && desired) cond('ScalingLimited', 'True', bounded === max ? 'TooManyReplicas' : 'TooFewReplicas', `the desired replica count is ${bounded === max ? 'more' : 'less'} than the ${bounded === max ? 'maximum' : 'minimum'} replica count`);
    else cond('ScalingLimited', 'False', 'DesiredWithinRange', 'the desired count is within the acceptable range');
    // Stabilization: a scale-down takes the highest recommendation of the window.
    const now = Date.now();
    const windowMs = (hpa.spec.behavior?.scaleDown?.stabilizationWindowSeconds ?? 300) * 1000;
    const upWindowMs = (hpa.spec.behavior?.scaleUp?.stabilizationWindowSeconds ?? 0) * 1000;
    const history = (this.recommendations.get(key) ?? []).filter((r) => now - r.at <= Math.max(windowMs, upWindowMs));
    history.push({ at: now, replicas: bounded });
    this.recommendations.set(key, history);
    let next = bounded;
    if (bounded < current) next = Math.max(...history.filter((r) => now - r.at <= windowMs).map((r) => r.replicas));
    else if (bounded > current) next = Math.min(...history.filter((r) => now - r.at <= upWindowMs).map((r) => r.replicas));
    next = Math.min(next, max);
    status.desiredReplicas = next;
    status.currentMetrics = currentMetrics;
    if (next !== current) {
      await this.client.update(scalePath, { ...scale, spec: { replicas: next } });
      status.lastScaleTime = stamp();
      const m = currentMetrics[0]?.resource;
      this.events.record(hpa, 'autoscaling/v2', 'HorizontalPodAutoscaler', 'Normal', 'SuccessfulRescale', `New size: ${next}; reason: ${m?.name ?? 'cpu'} resource utilization (percentage of request) ${next > current ? 'above' : 'below'} target`);
    }
    await writeStatus(status);
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.hpas.synced, this.pods.synced]);
    await this.queue.run(2, (key) => this.sync(key), signal, (key, err) => this.log.warn('hpa sync failed', { hpa: key, err }));
  }
}
