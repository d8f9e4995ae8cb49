import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Registry } from '../api/registry.js';
import { renderKubeconfig } from '../apiserver/kubeconfig.js';
import { ApiServer, type ApiServerOptions } from '../apiserver/server.js';
import type { Logger } from '../observe/log.js';
import type { Backend } from '../storage/backend.js';
import type { Config } from './config.js';
import { openStore } from './store.js';

/**
 * An API server on the configured store, started and ready, with the admin kubeconfig written
 * to <data-dir>/kubeconfig (atomically: its appearance means "serving"). Shared by `up`,
 * `server` (the provider) and `controlplane` (a tenant cluster).
 */
export interface StartedApiServer {
  server: ApiServer;
  backend: Backend;
  serving: Promise<void>;
  kubeconfig: string;
}

export async function startApiServer(
  config: Config,
  dataDir: string,
  registry: Registry,
  log: Logger,
  signal: AbortSignal,
  extra: Partial<ApiServerOptions> = {},
): Promise<StartedApiServer> {
  const backend = await openStore(config.store, dataDir);
  const server = new ApiServer({
    backend,
    registry,
    pkiDir: path.join(dataDir, 'pki'),
    host: config.host,
    port: Number(config.port),
    log: log.with({ component: 'apiserver' }),
    tokenFile: config['token-file'] ? await readFile(config['token-file'], 'utf8') : undefined,
    compactIntervalMs: Number(config['compact-interval']) * 1000,
    serviceCidr: config['service-cidr'],
    nodePortRange: config['service-node-port-range'],
    ...extra,
  });
  const serving = server.run(signal);
  await Promise.race([server.ready, serving]);
  const pki = server.credentials;
  const kubeconfig = path.join(dataDir, 'kubeconfig');
  await writeFile(
    `${kubeconfig}.tmp`,
    renderKubeconfig({ cluster: 'kubicle', server: server.url, caPem: pki.ca.cert, user: 'kubicle-admin', certPem: pki.admin.cert, keyPem: pki.admin.key }),
    { mode: 0o600 },
  );
  await rename(`${kubeconfig}.tmp`, kubeconfig);
  return { server, backend, serving, kubeconfig };
}
