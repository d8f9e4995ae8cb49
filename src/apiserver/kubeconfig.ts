/**
 * A kubeconfig for one cluster and one user (client certificate or token), as YAML. The
 * document's shape is fixed and every value is a string, written as a double-quoted scalar
 * (JSON's quoting is YAML's), so no YAML library is needed: a control plane writes this on
 * every start, including a wake, where loading one would cost ~30 ms.
 */
export function renderKubeconfig(opts: { cluster: string; server: string; caPem: string; user: string; certPem?: string; keyPem?: string; token?: string; namespace?: string }): string {
  const q = (s: string) => JSON.stringify(s);
  const b64 = (s: string) => q(Buffer.from(s).toString('base64'));
  const user: string[] = [];
  if (opts.certPem && opts.keyPem) user.push(`    client-certificate-data: ${b64(opts.certPem)}`, `    client-key-data: ${b64(opts.keyPem)}`);
  if (opts.token) user.push(`    token: ${q(opts.token)}`);
  const context = `${opts.user}@${opts.cluster}`;
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${q(opts.cluster)}`,
    '  cluster:',
    `    server: ${q(opts.server)}`,
    `    certificate-authority-data: ${b64(opts.caPem)}`,
    'users:',
    `- name: ${q(opts.user)}`,
    ...(user.length ? ['  user:', ...user] : ['  user: {}']),
    'contexts:',
    `- name: ${q(context)}`,
    '  context:',
    `    cluster: ${q(opts.cluster)}`,
    `    user: ${q(opts.user)}`,
    ...(opts.namespace ? [`    namespace: ${q(opts.namespace)}`] : []),
    `current-context: ${q(context)}`,
    'preferences: {}',
    '',
  ].join('\n');
}
