import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { formatIPv4, parseCidr } from '../api/ipv4.js';
import { builtinRegistry } from '../api/registry.js';
import { ensureServing, type KeyPair } from '../apiserver/pki.js';
import { KubeClient } from '../client/kube-client.js';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { startApiServer } from './api-server.js';
import type { Config } from './config.js';
import { type Component, leaderTimings, runComponent } from './control-plane.js';

/**
 * The cluster's virtual kubelet (DESIGN §2.1): the kubelet, run against the provider's Sandbox API
 * (which places its pods on a host, on the cluster's own network), as one node standing for the
 * capacity the tenant may use. Its HTTPS API, for logs and streams, listens on the control
 * plane's address on the cluster network. Its certificate is kept in the PKI directory and made
 * for the API server's serving key: both serve from this one process in one sandbox, so a key of
 * its own would guard nothing, and making one took ~0.27 s of this thread at every start.
 */
async function virtualKubelet(config: Config, pki: { dir: string; ca: KeyPair; servingKey: string }, token: string, hostIP: string): Promise<Component> {
  const serving = await ensureServing(pki.dir, 'kubelet', pki.ca, [hostIP, '127.0.0.1'], pki.servingKey);
  return {
    kind: 'kubelet',
    agentSocket: config['sandbox-socket'],
    options: {
      nodeName: virtualNodeName,
      hostIP,
      podCidr: config['pod-cidr'],
      capacity: { cpu: config['node-cpu'], memory: config['node-memory'] },
      labels: { 'type': 'virtual-kubelet', 'node.kubernetes.io/instance-type': 'kubicle-virtual' },
      clusterDNS: [clusterDnsAddress(config)],
      clusterDomain: config['cluster-domain'],
      backoffBaseMs: Number(config['restart-backoff']) * 1000,
      backoffMaxMs: Number(config['restart-backoff']) * 30_000,
      server: { port: Number(config['kubelet-port']), certPem: serving.cert, keyPem: serving.key, token },
    },
  };
}

export const virtualNodeName = 'kubicle-virtual';
/** How long the components wait for the first request to be answered before they start anyway. */
const componentsDelayMs = 1000;
/** ...and how long no request must come after it: a client's next request follows within milliseconds. */
const componentsQuietMs = 100;
/** Where the cluster's pods reach its API server (the `kubernetes` Service's endpoint) and its DNS: unprivileged ports, as the control plane holds no capability. */
const inClusterApiPort = 6443;
const dnsPort = 10053;

/** The kube-dns Service's address: the service range's tenth, as upstream's convention. */
function clusterDnsAddress(config: Config): string {
  const range = parseCidr(config['service-cidr']);
  if (!range) throw new KubicleError('Invalid', `--service-cidr ${JSON.stringify(config['service-cidr'])} is not an IPv4 network such as 10.96.0.0/12`);
  return formatIPv4(range.base + 10);
}

/** This sandbox's address on its cluster network (eth0), or loopback when it has none. */
function clusterAddress(): string {
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (name === 'lo') continue;
    const v4 = addrs?.find((a) => a.family === 'IPv4' && !a.internal);
    if (v4) return v4.address;
  }
  return '127.0.0.1';
}

/**
 * `kubicle controlplane`: one tenant cluster's control plane, as the provider runs it inside the
 * cluster's sandbox (DESIGN §1): the API server on a unix socket in its data volume (the
 * provider's gateway carries the cluster endpoint's connections to it, TLS end to end), the
 * controller manager, the scheduler, cluster DNS and, given the provider's Sandbox API, the
 * virtual kubelet. Its Services' datapath is the provider's, on the host. Components run on this thread rather than in workers: a
 * tenant control plane is mostly idle, and every worker would cost its own heap (DESIGN §7:
 * idle ≤ 80 MiB). Its store and CA live in the data volume and nowhere else.
 */
export async function tenantControlPlane(config: Config, log: Logger, signal: AbortSignal): Promise<void> {
  const dataDir = path.resolve(config['data-dir']);
  const leaderElection = leaderTimings(config);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const socketPath = config['listen-socket'] || undefined;
  // On its cluster network (as the provider runs it), its pods reach it there: the API server
  // (the `kubernetes` Service) and cluster DNS (kube-dns) listen on that address too.
  const address = clusterAddress();
  const inCluster = address !== '127.0.0.1' ? { host: address, port: inClusterApiPort } : undefined;
  const endpointReconciler = config['endpoint-reconciler-type'];
  if (endpointReconciler !== 'master-count' && endpointReconciler !== 'none') throw new KubicleError('Invalid', `--endpoint-reconciler-type ${JSON.stringify(endpointReconciler)} must be "master-count" or "none"`);
  const { server, backend, serving } = await startApiServer(config, dataDir, builtinRegistry(), log, signal, { socketPath, inCluster, authorizer: 'rbac', endpointReconciler });
  const client = new KubeClient({ server: server.url, caPem: server.credentials.ca.cert, token: server.loopbackToken, socketPath });
  // Woken by a connection, the control plane answers it, and the requests that follow it, before
  // anything else: loading and starting the components takes this thread ~0.4 s, which those
  // requests would otherwise wait out (DESIGN §7: wake ≤ 500 ms, create ≤ 1 s). With nobody
  // asking, they start after componentsDelayMs anyway.
  await Promise.race([server.answeredThenQuiet(componentsQuietMs), new Promise((r) => setTimeout(r, componentsDelayMs).unref()), new Promise((r) => signal.addEventListener('abort', r, { once: true }))]);
  const nodeGracePeriodMs = Number(config['node-monitor-grace-period']) * 1000;
  const components = [
    runComponent({ kind: 'controller-manager', workloads: true, nodeGracePeriodMs, serviceAccountKey: server.credentials.serviceAccountKey, leaderElection }, client, log, signal),
    runComponent({ kind: 'scheduler', leaderElection }, client, log, signal),
  ];
  if (inCluster) {
    const dns: Component = { kind: 'cluster-dns', options: { listen: address, port: dnsPort, domain: config['cluster-domain'], serviceIP: clusterDnsAddress(config), nodeName: virtualNodeName } };
    components.push(runComponent(dns, client, log, signal));
  }
  if (config['sandbox-socket']) {
    const pki = { dir: path.join(dataDir, 'pki'), ca: server.credentials.ca, servingKey: server.credentials.serving.key };
    components.push(runComponent(await virtualKubelet(config, pki, server.loopbackToken, address), client, log, signal));
  }
  log.info('control plane ready', { endpoint: server.url, socket: socketPath });
  await serving;
  await Promise.allSettled(components);
  client.close();
  await backend.close();
}
