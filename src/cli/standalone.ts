import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Cidr, cidrsOverlap, formatIPv4, parseCidr } from '../api/ipv4.js';
import { builtinRegistry } from '../api/registry.js';
import { issueServing, type KeyPair } from '../apiserver/pki.js';
import { claimRanges } from '../network/host-claims.js';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { startAgentProcess } from './agent-process.js';
import { startApiServer } from './api-server.js';
import { runInWorker } from './component-worker.js';
import type { Config } from './config.js';
import { type Component, leaderTimings } from './control-plane.js';
import { startRegistry } from './registry.js';

/**
 * `kubicle standalone`: one cluster straight on this host, without the provider (soft tenancy,
 * DESIGN §2's path before the provider): the API server on the chosen store, the controllers and,
 * with --node local, a real node with node ports, load balancers, ingress and NetworkPolicy. In
 * the foreground until SIGINT/SIGTERM. Writes <data-dir>/kubeconfig for the admin user.
 */
export async function standalone(config: Config, log: Logger, signal: AbortSignal): Promise<void> {
  const dataDir = path.resolve(config['data-dir']);
  if (config.node === 'local') nodeNetwork(config); // refuse bad ranges before anything starts
  const leaderElection = leaderTimings(config);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const { server, backend, serving, kubeconfig } = await startApiServer(config, dataDir, builtinRegistry(), log, signal, { authorizer: 'rbac' });
  const pki = server.credentials;
  const client = { server: server.url, caPem: pki.ca.cert, token: server.loopbackToken };
  if (config.controllers !== 'all' && config.controllers !== 'none') throw new Error(`--controllers must be "all" or "none", not ${JSON.stringify(config.controllers)}`);
  const components: Component[] = [{ kind: 'controller-manager', workloads: config.controllers === 'all', nodeGracePeriodMs: Number(config['node-monitor-grace-period']) * 1000, serviceAccountKey: pki.serviceAccountKey, leaderElection }];
  if (config.controllers === 'all') components.push({ kind: 'scheduler', leaderElection });
  const simulated = Number(config['simulate-nodes']);
  if (simulated > 0) components.push({ kind: 'node-simulator', options: { count: simulated, prefix: config['node-prefix'], heartbeatMs: Number(config['node-heartbeat-interval']) * 1000 } });
  const node = config.node === 'local' ? await startNode(config, dataDir, log, signal, pki.ca, server.loopbackToken) : undefined;
  if (node) components.push(...node.components);
  const running = components.map((c) => runInWorker(c, client, log, signal));
  process.stdout.write(
    `Kubicle (standalone) is up: ${server.url} (store: ${config.store === 'sqlite' ? path.join(dataDir, 'store.db') : config.store.replace(/password=[^&]*/, 'password=***')})\n` +
      `kubeconfig: ${kubeconfig}\n` +
      (node ? `node: ${node.nodeName} (runc, pods in ${config['pod-cidr']})${node.registry ? `; image registry: ${node.registry} (kubicle/busybox:1 pushed)` : ''}\n` : '') +
      (node ? `load balancers: ${config['load-balancer-pool']}; ingress: http://${node.ingressIP}:${config['ingress-http-port']} https://${node.ingressIP}:${config['ingress-https-port']}\n` : '') +
      `\n  export KUBECONFIG=${kubeconfig}\n  kubectl get namespaces\n\nCtrl-C stops it; objects are kept.\n`,
  );
  await serving;
  await Promise.allSettled([...running, ...(node ? [node.running] : [])]);
  await backend.close();
}

/**
 * The local node: the embedded registry (with the busybox sample pushed), the host agent in a
 * process of its own (agent-process.ts), and a kubelet component that reaches it over its socket.
 */
async function startNode(config: Config, dataDir: string, log: Logger, signal: AbortSignal, ca: KeyPair, apiToken: string) {
  if (config.node !== 'local') throw new Error(`--node must be "local" or "none", not ${JSON.stringify(config.node)}`);
  const waits: Promise<unknown>[] = [];
  const registry = await startRegistry(config, dataDir, log, signal, waits);
  const { pods, services, clusterDnsIP, pool, ingressIP } = nodeNetwork(config);
  const release = await claimRanges(config.bridge, [
    { what: 'service range', flag: '--service-cidr', cidr: services },
    { what: 'load balancer pool', flag: '--load-balancer-pool', cidr: pool },
  ]);
  waits.push(new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })).then(release));
  const { socketPath, running: agentRunning } = await startAgentProcess(config, dataDir, log, signal);
  waits.push(agentRunning);
  const backoff = Number(config['restart-backoff']) * 1000;
  const nodeName = config['node-name'] || os.hostname().toLowerCase();
  const serving = issueServing(ca, ['127.0.0.1', nodeName]);
  const kubelet: Component & { kind: 'kubelet' } = {
    kind: 'kubelet',
    agentSocket: socketPath,
    options: {
      nodeName,
      hostIP: '127.0.0.1',
      podCidr: config['pod-cidr'],
      clusterDNS: [clusterDnsIP],
      clusterDomain: config['cluster-domain'],
      heartbeatMs: Number(config['node-heartbeat-interval']) * 1000,
      backoffBaseMs: backoff,
      backoffMaxMs: backoff * 30,
      server: { port: Number(config['kubelet-port']), certPem: serving.cert, keyPem: serving.key, token: apiToken },
    },
  };
  const dns: Component = {
    kind: 'cluster-dns',
    options: { listen: pods.gateway, port: 53, domain: config['cluster-domain'], serviceIP: clusterDnsIP, nodeName },
  };
  const proxy: Component = {
    kind: 'service-proxy',
    options: { table: `${config.bridge}-services`, bridge: config.bridge, podCidr: config['pod-cidr'], gateway: pods.gateway, nodeName, serviceCidr: config['service-cidr'], loadBalancerPool: pool.text },
  };
  const policy: Component = { kind: 'network-policy', options: { table: `${config.bridge}-policy`, bridge: config.bridge, dnsEndpoint: pods.gateway } };
  const loadBalancer: Component = { kind: 'load-balancer', options: { pool: pool.text, reserved: [ingressIP], nodeName } };
  const ingressCert = issueServing(ca, [ingressIP]);
  const ingress: Component = {
    kind: 'ingress-controller',
    options: {
      address: ingressIP,
      httpPort: Number(config['ingress-http-port']),
      httpsPort: Number(config['ingress-https-port']),
      defaultCert: { certPem: ingressCert.cert, keyPem: ingressCert.key },
      className: 'kubicle',
      nodeName,
    },
  };
  return { nodeName, ingressIP, components: [kubelet, proxy, dns, policy, loadBalancer, ingress], registry, running: Promise.all(waits) };
}

/**
 * The local node's addresses from the config: the pod range (its first address is the bridge's,
 * where cluster DNS answers), the cluster DNS Service's address (the service range's tenth, as
 * upstream's convention), and the load balancer pool (its first address the ingress
 * controller's). Overlapping ranges are refused.
 */
function nodeNetwork(config: Config): { pods: { cidr: Cidr; gateway: string }; services: Cidr; clusterDnsIP: string; pool: Cidr; ingressIP: string } {
  const cidr = parseCidr(config['pod-cidr']);
  if (!cidr) throw new KubicleError('Invalid', `--pod-cidr ${JSON.stringify(config['pod-cidr'])} is not an IPv4 network such as 10.244.0.0/24`);
  const services = parseCidr(config['service-cidr']);
  if (!services) throw new KubicleError('Invalid', `--service-cidr ${JSON.stringify(config['service-cidr'])} is not an IPv4 network such as 10.96.0.0/12`);
  if (cidrsOverlap(cidr, services)) throw new KubicleError('Invalid', `--pod-cidr ${cidr.text} overlaps --service-cidr ${services.text}`);
  const pool = parseCidr(config['load-balancer-pool']);
  const loopback = parseCidr('127.0.0.0/8') as Cidr;
  const hostLoopback = parseCidr('127.0.0.0/24') as Cidr;
  if (!pool || pool.bits < 8 || pool.bits > 30 || !cidrsOverlap(pool, loopback) || cidrsOverlap(pool, hostLoopback)) {
    throw new KubicleError(
      'Invalid',
      `--load-balancer-pool ${JSON.stringify(config['load-balancer-pool'])} must be a network of at least 4 addresses inside 127.0.0.0/8 and outside 127.0.0.0/24 (the host's own loopback services), such as 127.240.0.0/24`,
    );
  }
  return { pods: { cidr, gateway: formatIPv4(cidr.base + 1) }, services, clusterDnsIP: formatIPv4(services.base + 10), pool, ingressIP: formatIPv4(pool.base + 1) };
}
