import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { renderKubeconfig } from '../apiserver/kubeconfig.js';
import { issueClient } from '../apiserver/pki.js';
import { loadKubeconfig } from '../client/kubeconfig.js';
import { KubicleError } from '../observe/errors.js';
import type { Config } from './config.js';

/**
 * `kubicle user kubeconfig NAME --groups a,b`: a kubeconfig for the user NAME in the given groups,
 * with a client certificate signed by the CA of the cluster in --data-dir, for the same server
 * the admin kubeconfig there names. What the user may do is then up to RBAC. Needs the CA's key,
 * so it runs where the cluster's data lives.
 */
export async function userKubeconfig(name: string | undefined, config: Config, out: (s: string) => void): Promise<number> {
  if (!name || /[\s,/]/.test(name) || name.length > 253) throw new KubicleError('Invalid', 'user kubeconfig NAME: NAME must be non-empty, at most 253 characters, without spaces, commas or slashes');
  const groups = config.groups
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean);
  const dataDir = path.resolve(config['data-dir']);
  const pki = path.join(dataDir, 'pki');
  const read = (f: string) =>
    readFile(path.join(pki, f), 'utf8').catch(() => {
      throw new KubicleError('NotFound', `no cluster CA in ${pki} (${f}): run this where the cluster's --data-dir is`);
    });
  const ca = { cert: await read('ca.crt'), key: await read('ca.key') };
  const admin = await loadKubeconfig(path.join(dataDir, 'kubeconfig'));
  const issued = issueClient(ca, name, groups);
  out(renderKubeconfig({ cluster: 'kubicle', server: admin.server, caPem: ca.cert, user: name, certPem: issued.cert, keyPem: issued.key }));
  return 0;
}
