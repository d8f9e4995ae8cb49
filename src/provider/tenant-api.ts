import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { KubeClient, type Obj } from '../client/kube-client.js';
import { KubicleError } from '../observe/errors.js';

/**
 * What the provider asks of a tenant cluster's own API server, as that cluster's admin (its
 * client certificate, from the cluster's data volume), over the control plane's unix socket.
 * Each question opens a client and closes it: the provider holds no tenant's credentials or
 * connections between them.
 */

/** The label the virtual kubelet puts on its node (the virtual-kubelet project's convention). */
const virtualNodeSelector = 'type=virtual-kubelet';

/** The admin's answer to `ask`, through a client that exists only for it. */
export async function askTenant<T>(pki: string, endpoint: string, socketPath: string, ask: (admin: KubeClient) => Promise<T>): Promise<T> {
  const read = (f: string) => readFileSync(path.join(pki, f), 'utf8');
  const admin = new KubeClient({ server: endpoint, caPem: read('ca.crt'), certPem: read('admin.crt'), keyPem: read('admin.key'), socketPath });
  try {
    return await ask(admin);
  } finally {
    // Each client holds its own keep-alive agent: left open, one socket per question would pile up.
    admin.close();
  }
}

/** The Kubernetes version the cluster serves, if it answers. */
export function servedVersion(admin: KubeClient): Promise<string | undefined> {
  return admin
    .get('/version')
    .then((v) => v.gitVersion as string)
    .catch(() => undefined);
}

/**
 * Waits until the cluster's virtual node is Ready: a Running cluster is one that takes pods, so
 * `kubectl get nodes` right after a create shows it. A fresh control plane registers its node
 * shortly after it first serves (its components start after the first answer, for the sake of wake
 * latency); a woken one finds it registered.
 */
export async function virtualNodeReady(admin: KubeClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const nodes = `/api/v1/nodes?labelSelector=${encodeURIComponent(virtualNodeSelector)}`;
  const ready = (n: Obj) => (n.status?.conditions ?? []).some((x: { type: string; status: string }) => x.type === 'Ready' && x.status === 'True');
  for (;;) {
    const list = await admin.get(nodes).catch(() => undefined);
    if (((list?.items ?? []) as Obj[]).some(ready)) return;
    if (Date.now() > deadline) throw new KubicleError('Timeout', `the cluster's virtual node was not Ready within ${timeoutMs / 1000} s`);
    // Watched rather than polled: a control plane starts its components once its requests pause,
    // and a poll would keep it from pausing.
    if (list) {
      const stop = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
      const found = new AbortController();
      await admin
        .watch(`${nodes}&watch=1&resourceVersion=${list.metadata.resourceVersion}`, (ev) => {
          if (ev.type !== 'ERROR' && ready(ev.object as Obj)) found.abort();
        }, AbortSignal.any([stop, found.signal]))
        .catch(() => {});
      if (found.signal.aborted) return;
    }
    await delay(100);
  }
}

/** Whether a CronJob that is not suspended waits to fire: such a cluster must stay awake. */
export async function hasPendingCronJobs(admin: KubeClient): Promise<boolean> {
  const list = await admin.get('/apis/batch/v1/cronjobs');
  return ((list.items ?? []) as Obj[]).some((cj) => !cj.spec?.suspend);
}
