import { readFile } from 'node:fs/promises';
import { KubicleError } from '../observe/errors.js';
import type { ClientConfig } from './kube-client.js';

/** The current context of a kubeconfig file as a client configuration (inline data only). */
export async function loadKubeconfig(file: string): Promise<ClientConfig> {
  return parseKubeconfig(await readFile(file, 'utf8'), file);
}

/** The current context of a kubeconfig's text; `source` names it in errors. */
export async function parseKubeconfig(text: string, source: string): Promise<ClientConfig> {
  const { parse } = await import('yaml');
  // biome-ignore lint/suspicious/noExplicitAny: kubeconfig is untyped YAML
  const doc: any = parse(text);
  const ctx = (doc?.contexts ?? []).find((c: { name: string }) => c.name === doc['current-context'])?.context;
  const cluster = (doc?.clusters ?? []).find((c: { name: string }) => c.name === ctx?.cluster)?.cluster;
  const user = (doc?.users ?? []).find((u: { name: string }) => u.name === ctx?.user)?.user ?? {};
  if (!cluster?.server) throw new KubicleError('BadRequest', `kubeconfig ${source}: no cluster for the current context`);
  const b64 = (s?: string) => (s ? Buffer.from(s, 'base64').toString() : undefined);
  return {
    server: cluster.server,
    caPem: b64(cluster['certificate-authority-data']) ?? '',
    certPem: b64(user['client-certificate-data']),
    keyPem: b64(user['client-key-data']),
    token: user.token,
  };
}
