import { KubeClient } from '../../src/client/kube-client.js';
import { parseKubeconfig } from '../../src/client/kubeconfig.js';

/**
 * A tenant cluster's client, from the kubeconfig Secret the provider writes for it (polled every
 * `pollMs` until it exists), as a tenant would fetch it.
 */
export async function tenantClient(op: KubeClient, name: string, pollMs = 5): Promise<KubeClient> {
  for (;;) {
    try {
      const s = await op.get(`/api/v1/namespaces/default/secrets/${name}-kubeconfig`);
      return new KubeClient(await parseKubeconfig(Buffer.from(s.data.value, 'base64').toString(), `secret ${name}-kubeconfig`));
    } catch {
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}
