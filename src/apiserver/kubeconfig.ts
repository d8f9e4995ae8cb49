import { stringify } from 'yaml';

/** A kubeconfig for one cluster and one user (client certificate or token). */
export function renderKubeconfig(opts: { cluster: string; server: string; caPem: string; user: string; certPem?: string; keyPem?: string; token?: string; namespace?: string }): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const user: Record<string, string> = {};
  if (opts.certPem && opts.keyPem) {
    user['client-certificate-data'] = b64(opts.certPem);
    user['client-key-data'] = b64(opts.keyPem);
  }
  if (opts.token) user.token = opts.token;
  const context = `${opts.user}@${opts.cluster}`;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: opts.cluster, cluster: { server: opts.server, 'certificate-authority-data': b64(opts.caPem) } }],
    users: [{ name: opts.user, user }],
    contexts: [{ name: context, context: { cluster: opts.cluster, user: opts.user, ...(opts.namespace ? { namespace: opts.namespace } : {}) } }],
    'current-context': context,
    preferences: {},
  });
}
