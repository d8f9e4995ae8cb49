import path from 'node:path';
import { providerGroup } from '../api/kinds/provider.js';
import { KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { loadKubeconfig } from '../client/kubeconfig.js';
import { KubicleError } from '../observe/errors.js';
import type { Config } from './config.js';

/**
 * `kubicle cluster create|list|delete|start|stop|kubeconfig NAME`: the provider API's Cluster
 * objects, in the namespace of --tenant, through the provider's kubeconfig. The same can be done
 * with kubectl against the provider (`kubectl get clusters.kubicle.io`).
 */
export async function clusterCommand(verb: string, name: string | undefined, config: Config, out: (s: string) => void): Promise<number> {
  const file = config.provider || path.join(path.resolve(config['data-dir']), 'kubeconfig');
  const client = new KubeClient(await loadKubeconfig(file));
  const ns = config.tenant;
  const at = (n?: string, subresource?: string) => resourcePath({ group: providerGroup, version: 'v1alpha1', plural: 'clusters', namespace: ns, name: n, subresource });
  try {
    if (verb === 'list') {
      const list = await client.get(at());
      out(table([['NAME', 'PHASE', 'ENDPOINT', 'VERSION'], ...((list.items ?? []) as Obj[]).map((c) => [c.metadata.name, c.status?.phase ?? 'Pending', c.status?.endpoint ?? '', c.status?.version ?? ''])]));
      return 0;
    }
    if (!name) throw new KubicleError('BadRequest', `cluster ${verb} needs a NAME`);
    switch (verb) {
      case 'create':
        await client.create(at(), { apiVersion: `${providerGroup}/v1alpha1`, kind: 'Cluster', metadata: { name, namespace: ns }, spec: {} });
        out(`cluster ${ns}/${name} created\n`);
        if (config.wait) out(`running at ${(await waitRunning(client, at(name))).status.endpoint}\n`);
        return 0;
      case 'delete':
        await client.delete(at(name));
        out(`cluster ${ns}/${name} deleted\n`);
        return 0;
      case 'start':
      case 'stop':
        await client.patch(at(name), { spec: { stopped: verb === 'stop' } });
        out(`cluster ${ns}/${name} ${verb === 'stop' ? 'stopping' : 'starting'}\n`);
        if (config.wait && verb === 'start') out(`running at ${(await waitRunning(client, at(name))).status.endpoint}\n`);
        return 0;
      case 'kubeconfig':
        out(await clusterKubeconfig(client, ns, name));
        return 0;
      default:
        throw new KubicleError('BadRequest', `unknown cluster command ${JSON.stringify(verb)}: create, list, delete, start, stop or kubeconfig`);
    }
  } finally {
    client.close();
  }
}

/**
 * `kubicle usage`: the measured use of --tenant's clusters (the provider's Usage objects), each
 * cluster's total with its price, then by namespace in the cluster and its control plane.
 */
export async function usageCommand(config: Config, out: (s: string) => void): Promise<number> {
  const file = config.provider || path.join(path.resolve(config['data-dir']), 'kubeconfig');
  const client = new KubeClient(await loadKubeconfig(file));
  try {
    const list = await client.get(resourcePath({ group: providerGroup, version: 'v1alpha1', plural: 'usages', namespace: config.tenant }));
    const n = (x: unknown) => (typeof x === 'number' ? x.toFixed(1) : '');
    const rows = [['CLUSTER', 'PART', 'CPU-SECONDS', 'MEMORY-GIB-SECONDS', 'CONTROL-PLANE-SECONDS', 'COST']];
    for (const u of (list.items ?? []) as Obj[]) {
      const s = u.status ?? {};
      rows.push([u.metadata.name, 'total', n(s.total?.cpuSeconds), n(s.total?.memoryGiBSeconds), n(s.total?.controlPlaneSeconds), s.cost ? `${s.cost.total.toFixed(6)} ${s.cost.currency}` : '']);
      rows.push([u.metadata.name, 'control plane', n(s.controlPlane?.cpuSeconds), n(s.controlPlane?.memoryGiBSeconds), '', '']);
      for (const [ns, a] of Object.entries((s.namespaces ?? {}) as Record<string, Obj>)) rows.push([u.metadata.name, `namespace ${ns}`, n(a.cpuSeconds), n(a.memoryGiBSeconds), '', '']);
    }
    out(table(rows));
    return 0;
  } finally {
    client.close();
  }
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => `${r.map((v, i) => v.padEnd(widths[i])).join('   ').trimEnd()}\n`).join('');
}

/** A cluster's admin kubeconfig, from the Secret the provider keeps beside its Cluster. */
export async function clusterKubeconfig(client: KubeClient, ns: string, name: string): Promise<string> {
  const secret = await client.get(resourcePath({ version: 'v1', plural: 'secrets', namespace: ns, name: `${name}-kubeconfig` }));
  return Buffer.from(secret.data?.value ?? '', 'base64').toString();
}

/** Polls the Cluster at `at` until Running (resolves it) or Failed (its message, as an error). */
export async function waitRunning(client: KubeClient, at: string): Promise<Obj> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const c = await client.get(at);
    if (c.status?.phase === 'Running') return c;
    if (c.status?.phase === 'Failed') throw new KubicleError('Unavailable', `cluster failed: ${c.status.message ?? ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new KubicleError('Timeout', 'the cluster did not run within 120 s');
}
