import { KubeClient } from '../../src/client/kube-client.js';
import { parseKubeconfig } from '../../src/client/kubeconfig.js';

/**
 * A tenant cluster's client, from the kubeconfig Secret the provider writes for it (polled every
 * `pollMs` until it exists, for at most `deadlineMs`), as a tenant would fetch it.
 */
export async function tenantClient(op: KubeClient, name: string, pollMs = 5, deadlineMs = 300_000): Promise<KubeClient> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      const s = await op.get(`/api/v1/namespaces/default/secrets/${name}-kubeconfig`);
      return new KubeClient(await parseKubeconfig(Buffer.from(s.data.value, 'base64').toString(), `secret ${name}-kubeconfig`));
    } catch (err) {
      if (Date.now() > until) throw new Error(`cluster ${name} published no kubeconfig within ${deadlineMs / 1000} s: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}
