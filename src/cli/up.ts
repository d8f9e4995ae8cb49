import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { builtinRegistry } from '../api/registry.js';
import { renderKubeconfig } from '../apiserver/kubeconfig.js';
import { ApiServer } from '../apiserver/server.js';
import type { Logger } from '../observe/log.js';
import type { Config } from './config.js';
import { runInWorker } from './component-worker.js';
import type { Component } from './control-plane.js';
import { openStore } from './store.js';

/**
 * `kubicle up`: the API server on the chosen store, with the controllers this stage has, in the
 * foreground until SIGINT/SIGTERM. Writes <data-dir>/kubeconfig for the admin user.
 */
export async function up(config: Config, log: Logger, signal: AbortSignal): Promise<void> {
  const dataDir = path.resolve(config['data-dir']);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const backend = openStore(config.store, dataDir);
  const server = new ApiServer({
    backend,
    registry: builtinRegistry(),
    pkiDir: path.join(dataDir, 'pki'),
    host: config.host,
    port: Number(config.port),
    log: log.with({ component: 'apiserver' }),
    tokenFile: config['token-file'] ? await readFile(config['token-file'], 'utf8') : undefined,
    compactIntervalMs: Number(config['compact-interval']) * 1000,
  });
  const serving = server.run(signal);
  await Promise.race([server.ready, serving]);
  const pki = server.credentials;
  const kubeconfig = path.join(dataDir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    renderKubeconfig({ cluster: 'kubicle', server: server.url, caPem: pki.ca.cert, user: 'kubicle-admin', certPem: pki.admin.cert, keyPem: pki.admin.key }),
    { mode: 0o600 },
  );
  const client = { server: server.url, caPem: pki.ca.cert, token: server.loopbackToken };
  if (config.controllers !== 'all' && config.controllers !== 'none') throw new Error(`--controllers must be "all" or "none", not ${JSON.stringify(config.controllers)}`);
  const components: Component[] = [{ kind: 'controller-manager', workloads: config.controllers === 'all', nodeGracePeriodMs: Number(config['node-monitor-grace-period']) * 1000 }];
  if (config.controllers === 'all') components.push({ kind: 'scheduler' });
  const simulated = Number(config['simulate-nodes']);
  if (simulated > 0) components.push({ kind: 'node-simulator', options: { count: simulated, prefix: config['node-prefix'], heartbeatMs: Number(config['node-heartbeat-interval']) * 1000 } });
  const running = components.map((c) => runInWorker(c, client, log, signal));
  process.stdout.write(
    `Kubicle is up: ${server.url} (store: ${config.store === 'sqlite' ? path.join(dataDir, 'store.db') : config.store.replace(/password=[^&]*/, 'password=***')})\n` +
      `kubeconfig: ${kubeconfig}\n\n  export KUBECONFIG=${kubeconfig}\n  kubectl get namespaces\n\nCtrl-C stops it; objects are kept.\n`,
  );
  await serving;
  await Promise.allSettled(running);
  await backend.close();
}
