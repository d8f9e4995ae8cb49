import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { builtinRegistry } from '../api/registry.js';
import { KubeClient } from '../client/kube-client.js';
import type { Logger } from '../observe/log.js';
import { startApiServer } from './api-server.js';
import type { Config } from './config.js';
import { runComponent } from './control-plane.js';

/**
 * `kubicle controlplane`: one tenant cluster's control plane, as the provider runs it inside the
 * cluster's sandbox (DESIGN §1): the API server on a unix socket in its data volume (the
 * provider's gateway carries the cluster endpoint's connections to it, TLS end to end), the
 * controller manager and the scheduler. Components run on this thread rather than in workers: a
 * tenant control plane is mostly idle, and every worker would cost its own heap (DESIGN §7:
 * idle ≤ 80 MiB). Its store and CA live in the data volume and nowhere else.
 */
export async function tenantControlPlane(config: Config, log: Logger, signal: AbortSignal): Promise<void> {
  const dataDir = path.resolve(config['data-dir']);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const socketPath = config['listen-socket'] || undefined;
  const { server, backend, serving } = await startApiServer(config, dataDir, builtinRegistry(), log, signal, { socketPath });
  const client = new KubeClient({ server: server.url, caPem: server.credentials.ca.cert, token: server.loopbackToken, socketPath });
  const nodeGracePeriodMs = Number(config['node-monitor-grace-period']) * 1000;
  const components = [runComponent({ kind: 'controller-manager', workloads: true, nodeGracePeriodMs }, client, log, signal), runComponent({ kind: 'scheduler' }, client, log, signal)];
  log.info('control plane ready', { endpoint: server.url, socket: socketPath });
  await serving;
  await Promise.allSettled(components);
  client.close();
  await backend.close();
}
