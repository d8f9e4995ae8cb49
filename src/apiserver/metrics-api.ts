import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KubeObject } from '../api/object.js';
import type { Registry } from '../api/registry.js';
import { matchesLabels, parseLabelSelector } from '../api/selectors.js';
import { KubicleError } from '../observe/errors.js';
import type { KubeletConnector } from './kubelet-connector.js';
import type { ObjectStore } from './object-store.js';
import { sendJson } from './respond.js';

const group = 'metrics.k8s.io';
const version = 'v1beta1';
const apiVersion = `${group}/${version}`;
const prefix = `/apis/${apiVersion}`;
const resources = [
  { name: 'nodes', singularName: '', namespaced: false, kind: 'NodeMetrics', verbs: ['get', 'list'] },
  { name: 'pods', singularName: '', namespaced: true, kind: 'PodMetrics', verbs: ['get', 'list'] },
];

/** What the kubelet's /stats/summary answers (kubelet/stats.ts), as far as metrics read it. */
interface Summary {
  node: { nodeName: string; cpu: { time: string; usageNanoCores: number }; memory: { workingSetBytes: number } };
  pods: { podRef: { name: string; namespace: string }; containers: { name: string; cpu: { time: string; usageNanoCores: number }; memory: { workingSetBytes: number } }[] }[];
}

/**
 * metrics.k8s.io/v1beta1, served in process the way metrics-server serves it through
 * aggregation: NodeMetrics and PodMetrics computed at request time from the summaries of the
 * kubelets concerned (CPU as a rate, memory as working set). Read-only; nodes without a kubelet
 * endpoint (simulated ones) have no metrics, as upstream's unreachable nodes.
 */
export class MetricsApi {
  constructor(
    private readonly registry: Registry,
    private readonly store: ObjectStore,
    private readonly kubelets: KubeletConnector,
  ) {}

  /** The group as /apis lists it. */
  static groupEntry() {
    const v = { groupVersion: apiVersion, version };
    return { name: group, versions: [v], preferredVersion: v };
  }

  /** The group as aggregated discovery (apidiscovery.k8s.io) lists it. */
  static aggregatedEntry() {
    return {
      metadata: { name: group, creationTimestamp: null },
      versions: [
        {
          version,
          freshness: 'Current',
          resources: resources.map((r) => ({ resource: r.name, responseKind: { group, version, kind: r.kind }, scope: r.namespaced ? 'Namespaced' : 'Cluster', singularResource: r.kind.toLowerCase(), verbs: r.verbs })),
        },
      ],
    };
  }

  /** Serves a request under /apis/metrics.k8s.io; false when the path is not the group's. */
  async serve(req: IncomingMessage, res: ServerResponse, p: string, q: URLSearchParams): Promise<boolean> {
    if (p !== `/apis/${group}` && !p.startsWith(`/apis/${group}/`)) return false;
    if (req.method !== 'GET') throw new KubicleError('MethodNotAllowed', 'the server does not allow this method on the requested resource');
    if (p === `/apis/${group}` || p === prefix) {
      sendJson(res, 200, p === prefix ? { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersion, resources } : { kind: 'APIGroup', apiVersion: 'v1', ...MetricsApi.groupEntry() });
      return true;
    }
    const parts = p.slice(prefix.length).split('/').filter(Boolean);
    const selector = parseLabelSelector(q.get('labelSelector'));
    if (parts[0] === 'nodes' && parts.length <= 2) {
      const items = await this.nodeMetrics(parts[1], selector);
      if (parts[1]) {
        if (!items.length) throw new KubicleError('NotFound', `nodemetrics.metrics.k8s.io "${parts[1]}" not found`);
        sendJson(res, 200, items[0]);
      } else sendJson(res, 200, { kind: 'NodeMetricsList', apiVersion, metadata: {}, items });
      return true;
    }
    const ns = parts[0] === 'namespaces' ? parts[1] : undefined;
    const rest = ns ? parts.slice(2) : parts;
    if (rest[0] === 'pods' && rest.length <= 2 && (ns || rest.length === 1)) {
      const items = await this.podMetrics(ns, rest[1], selector);
      if (rest[1]) {
        if (!items.length) throw new KubicleError('NotFound', `podmetrics.metrics.k8s.io "${rest[1]}" not found`);
        sendJson(res, 200, items[0]);
      } else sendJson(res, 200, { kind: 'PodMetricsList', apiVersion, metadata: {}, items });
      return true;
    }
    throw new KubicleError('NotFound', 'the server could not find the requested resource');
  }

  private async summaries(nodes: KubeObject[]): Promise<Map<string, Summary>> {
    const out = new Map<string, Summary>();
    await Promise.all(
      nodes.map(async (n) => {
        const s = await this.kubelets.getJson<Summary>(n.metadata.name as string, '/stats/summary').catch(() => undefined);
        if (s) out.set(n.metadata.name as string, s);
      }),
    );
    return out;
  }

  private async nodeMetrics(name: string | undefined, selector: ReturnType<typeof parseLabelSelector>): Promise<object[]> {
    const nodes = (await this.list('nodes', undefined)).filter((n) => (!name || n.metadata.name === name) && matchesLabels(selector, n.metadata.labels));
    const summaries = await this.summaries(nodes);
    return nodes.flatMap((n) => {
      const s = summaries.get(n.metadata.name as string);
      if (!s) return [];
      return [{ kind: 'NodeMetrics', apiVersion, metadata: { name: n.metadata.name, creationTimestamp: now(), labels: n.metadata.labels ?? {} }, timestamp: stamp(s.node.cpu.time), window: '1s', usage: usage(s.node) }];
    });
  }

  private async podMetrics(ns: string | undefined, name: string | undefined, selector: ReturnType<typeof parseLabelSelector>): Promise<object[]> {
    const pods = (await this.list('pods', ns)).filter((p) => (!name || p.metadata.name === name) && matchesLabels(selector, p.metadata.labels));
    const wanted = new Map(pods.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));
    const nodeNames = new Set(pods.map((p) => p.spec?.nodeName).filter(Boolean));
    const nodes = (await this.list('nodes', undefined)).filter((n) => nodeNames.has(n.metadata.name));
    const out: object[] = [];
    for (const s of (await this.summaries(nodes)).values()) {
      for (const ps of s.pods) {
        const pod = wanted.get(`${ps.podRef.namespace}/${ps.podRef.name}`);
        if (!pod || !ps.containers.length) continue;
        out.push({
          kind: 'PodMetrics',
          apiVersion,
          metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace, creationTimestamp: now(), labels: pod.metadata.labels ?? {} },
          timestamp: stamp(ps.containers[0].cpu.time),
          window: '1s',
          containers: ps.containers.map((c) => ({ name: c.name, usage: usage(c) })),
        });
      }
    }
    return out;
  }

  private async list(plural: string, ns: string | undefined): Promise<KubeObject[]> {
    const rt = this.registry.mustLookup('', 'v1', plural);
    return (await this.store.list(rt, ns, { labels: [], fields: [] })).items;
  }
}

function usage(x: { cpu: { usageNanoCores: number }; memory: { workingSetBytes: number } }) {
  return { cpu: `${Math.round(x.cpu.usageNanoCores)}n`, memory: `${Math.round(x.memory.workingSetBytes / 1024)}Ki` };
}

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const stamp = (iso: string) => iso.replace(/\.\d+Z$/, 'Z');
