import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { KubeObject } from '../api/object.js';
import type { Registry } from '../api/registry.js';
import { KubicleError } from '../observe/errors.js';
import type { KubeletConnector } from './kubelet-connector.js';
import type { ObjectStore } from './object-store.js';

const passThrough = ['follow', 'previous', 'timestamps', 'tailLines', 'sinceSeconds', 'sinceTime', 'limitBytes'];

/**
 * pods/log: checks the request as upstream's REST storage does (which container, whether it has
 * run), then streams the log from the kubelet of the pod's node, chunk by chunk so
 * `kubectl logs -f` sees lines as they come.
 */
export class PodLogs {
  constructor(
    private readonly registry: Registry,
    private readonly store: ObjectStore,
    private readonly kubelet: KubeletConnector,
  ) {}

  async serve(req: IncomingMessage, res: ServerResponse, ns: string, name: string, q: URLSearchParams): Promise<void> {
    const pods = this.registry.lookup('', 'v1', 'pods');
    if (!pods) throw new KubicleError('NotFound', 'the server could not find the requested resource');
    for (const k of ['tailLines', 'sinceSeconds', 'limitBytes']) {
      if (q.has(k) && !/^\d+$/.test(q.get(k) ?? '')) throw new KubicleError('BadRequest', `${k}: must be a non-negative integer`);
    }
    if (q.has('sinceSeconds') && q.has('sinceTime')) throw new KubicleError('BadRequest', 'at most one of sinceTime or sinceSeconds may be specified');
    const pod = await this.store.get(pods, ns, name);
    const container = containerOf(pod, q.get('container'));
    const all = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])] as KubeObject[];
    const st = all.find((s) => s.name === container);
    const previous = q.get('previous') === 'true';
    if (!previous && (!st || (!st.containerID && st.state?.waiting))) {
      throw new KubicleError('BadRequest', `container "${container}" in pod "${name}" is waiting to start: ${st?.state?.waiting?.reason ?? 'ContainerCreating'}`);
    }
    if (previous && !st?.lastState?.terminated) throw new KubicleError('BadRequest', `previous terminated container "${container}" in pod "${name}" not found`);
    const out = new URLSearchParams();
    for (const k of passThrough) if (q.has(k)) out.set(k, q.get(k) as string);
    const upstream = await this.kubelet.get(pod, `/containerLogs/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/${encodeURIComponent(container)}?${out}`, req);
    res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    await pipeline(upstream, res).catch(() => {});
  }
}

/** The container a pods/log, exec or attach request means: the one named, or the only one (or the default-container annotation's), else upstream's error. */
export function containerOf(pod: KubeObject, asked: string | null): string {
  const names = ((pod.spec?.containers ?? []) as { name: string }[]).map((c) => c.name);
  const inits = ((pod.spec?.initContainers ?? []) as { name: string }[]).map((c) => c.name);
  if (asked) {
    if (![...names, ...inits].includes(asked)) throw new KubicleError('BadRequest', `container ${asked} is not valid for pod ${pod.metadata.name}`);
    return asked;
  }
  if (names.length === 1) return names[0];
  const defaulted = pod.metadata.annotations?.['kubectl.kubernetes.io/default-container'];
  if (defaulted && names.includes(defaulted)) return defaulted;
  throw new KubicleError('BadRequest', `a container name must be specified for pod ${pod.metadata.name}, choose one of: [${names.join(' ')}]${inits.length ? ` or one of the init containers: [${inits.join(' ')}]` : ''}`);
}
