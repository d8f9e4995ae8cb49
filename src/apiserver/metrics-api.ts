import type { ServerResponse } from 'node:http';
import type { KubeObject } from '../api/object.js';
import type { Registry } from '../api/registry.js';
import { type LabelSelector, matchesLabels, parseLabelSelector } from '../api/selectors.js';
import { KubicleError } from '../observe/errors.js';
import type { KubeletConnector } from './kubelet-connector.js';
import type { ObjectStore } from './object-store.js';
import { sendJson } from './respond.js';

const group = 'metrics.k8s.io';
const version = 'v1beta1';
const apiVersion = `${group}/${version}`;
const prefix = `/apis/${apiVersion}`;

/** What the kubelet's /stats/summary answers (kubelet/stats.ts), as far as metrics read it. */
interface Summary {
  node: { nodeName: string; cpu: { time: string; usageNanoCores: number }; memory: { workingSetBytes: number } };
  pods: { podRef: { name: string; namespace: string }; containers: { name: string; cpu: { time: string; usageNanoCores: number }; memory: { workingSetBytes: number } }[] }[];
}

/**
 * Reads of metrics.k8s.io/v1beta1 (kubectl top, the HPA), answered the way metrics-server answers
 * through aggregation: NodeMetrics and PodMetrics computed at request time from the summaries of
 * the kubelets concerned (CPU as a rate, memory as working set). Samples stored in the resource by
 * whoever plays a kubelet without an endpoint (the node simulator) are served alongside; a live
 * figure wins over a stored one. Writes, watches and Tables go to the stored resource as before.
 */
export class MetricsApi {
  constructor(
    private readonly registry: Registry,
    private readonly store: ObjectStore,
    private readonly kubelets: KubeletConnector,
  ) {}

  /**
   * Serves a GET of metrics (answered in JSON, like every response here); false when the request
   * is not one (other paths, watches, Tables, which the stored resource answers).
   */
  async serve(res: ServerResponse, p: string, q: URLSearchParams, accept: string): Promise<boolean> {
    if (!p.startsWith(`${prefix}/`) || q.get('watch') === 'true' || q.get('watch') === '1') return false;
    if (accept.includes('as=Table')) return false;
    const parts = p.slice(prefix.length).split('/').filter(Boolean);
    const selector = parseLabelSelector(q.get('labelSelector'));
    if (parts[0] === 'nodes' && parts.length <= 2) {
      const items = await this.nodeMetrics(parts[1], selector);
      return this.answer(res, 'NodeMetrics', 'nodemetrics', parts[1], items);
    }
    const ns = parts[0] === 'namespaces' ? parts[1] : undefined;
    const rest = ns ? parts.slice(2) : parts;
    if (rest[0] === 'pods' && rest.length <= 2 && (ns || rest.length === 1)) {
      const items = await this.podMetrics(ns, rest[1], selector);
      return this.answer(res, 'PodMetrics', 'podmetrics', rest[1], items);
    }
    return false;
  }

  private answer(res: ServerResponse, kind: string, resource: string, name: string | undefined, items: KubeObject[]): true {
    if (!name) {
      sendJson(res, 200, { kind: `${kind}List`, apiVersion, metadata: {}, items });
      return true;
    }
    if (!items.length) throw new KubicleError('NotFound', `${resource}.metrics.k8s.io "${name}" not found`);
    sendJson(res, 200, items[0]);
    return true;
  }

  /** Stored samples, keyed by namespace/name. */
  private async stored(plural: string, ns: string | undefined, name: string | undefined, selector: LabelSelector): Promise<Map<string, KubeObject>> {
    const rt = this.registry.mustLookup(group, version, plural);
    const items = (await this.store.list(rt, ns, { labels: selector, fields: [] })).items.filter((o) => !name || o.metadata.name === name);
    return new Map(items.map((o) => [`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]));
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

  private async nodeMetrics(name: string | undefined, selector: LabelSelector): Promise<KubeObject[]> {
    const out = await this.stored('nodes', undefined, name, selector);
    const nodes = (await this.list('nodes', undefined)).filter((n) => (!name || n.metadata.name === name) && matchesLabels(selector, n.metadata.labels) && !isSimulated(n));
    for (const [nodeName, s] of await this.summaries(nodes)) {
      const n = nodes.find((x) => x.metadata.name === nodeName) as KubeObject;
      out.set(`/${nodeName}`, { kind: 'NodeMetrics', apiVersion, metadata: { name: nodeName, creationTimestamp: now(), labels: n.metadata.labels ?? {} }, timestamp: stamp(s.node.cpu.time), window: '1s', usage: usage(s.node) });
    }
    return [...out.values()];
  }

  private async podMetrics(ns: string | undefined, name: string | undefined, selector: LabelSelector): Promise<KubeObject[]> {
    const out = await this.stored('pods', ns, name, selector);
    const pods = (await this.list('pods', ns)).filter((p) => (!name || p.metadata.name === name) && matchesLabels(selector, p.metadata.labels));
    const wanted = new Map(pods.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));
    const nodeNames = new Set(pods.map((p) => p.spec?.nodeName).filter(Boolean));
    const nodes = (await this.list('nodes', undefined)).filter((n) => nodeNames.has(n.metadata.name) && !isSimulated(n));
    for (const s of (await this.summaries(nodes)).values()) {
      for (const ps of s.pods) {
        const pod = wanted.get(`${ps.podRef.namespace}/${ps.podRef.name}`);
        if (!pod || !ps.containers.length) continue;
        out.set(`${pod.metadata.namespace}/${pod.metadata.name}`, {
          kind: 'PodMetrics',
          apiVersion,
          metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace, creationTimestamp: now(), labels: pod.metadata.labels ?? {} },
          timestamp: stamp(ps.containers[0].cpu.time),
          window: '1s',
          containers: ps.containers.map((c) => ({ name: c.name, usage: usage(c) })),
        });
      }
    }
    return [...out.values()];
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

/** Simulated nodes have no kubelet to ask; their usage is whatever was stored. */
function isSimulated(n: KubeObject): boolean {
  return !n.status?.daemonEndpoints?.kubeletEndpoint?.Port || n.metadata.labels?.['kubicle.io/simulated'] === 'true';
}
