import { realpathSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Cidr, cidrsOverlap, parseCidr } from '../api/ipv4.js';
import { providerGroup } from '../api/kinds/provider.js';
import { providerRegistry } from '../api/registry.js';
import { TenantAuthorizer } from '../apiserver/authz/tenant-authorizer.js';
import { InformerFactory } from '../client/informer-factory.js';
import { KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { builtinKinds, GarbageCollector } from '../controllers/garbage-collector.js';
import { NamespaceController } from '../controllers/namespace.js';
import { ServiceProxy } from '../network/service-proxy.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { ClusterController } from '../provider/cluster-controller.js';
import type { ClusterDatapath } from '../provider/cluster-datapath.js';
import { EndpointGateway } from '../provider/endpoint-gateway.js';
import { Hosts, registerHost } from '../provider/hosts.js';
import { defaultPrices, Meter, type PriceList } from '../provider/meter.js';
import { SandboxGateway } from '../provider/sandbox-gateway.js';
import { TenantController } from '../provider/tenant-controller.js';
import { startAgentProcess } from './agent-process.js';
import { startApiServer } from './api-server.js';
import { clusterKubeconfig, waitRunning } from './cluster-commands.js';
import type { Config } from './config.js';
import { startRegistry } from './registry.js';
import { virtualNodeName } from './tenant-control-plane.js';

export const tenantGroupPrefix = 'kubicle:tenant:';
export const operatorGroup = 'kubicle:operators';

/**
 * `kubicle server`: the provider (DESIGN §1) on this machine: its API (kubicle.io/v1alpha1 beside
 * the built-in kinds its machinery uses) on its own store and CA, the tenant and cluster
 * controllers, the endpoint gateway, the embedded registry, and this host's agent, registered as
 * a Host. Writes the operator's kubeconfig to <data-dir>/kubeconfig. With `defaultCluster` it is
 * `kubicle up`: the --tenant's Cluster `default` is made too and its kubeconfig written to
 * <data-dir>/default.kubeconfig once it runs.
 */
export async function providerServer(config: Config, log: Logger, signal: AbortSignal, opts: { defaultCluster?: boolean } = {}): Promise<void> {
  const dataDir = path.resolve(config['data-dir']);
  const pool = endpointPool(config);
  const prices = await priceList(config);
  const heartbeat = Number(config['host-heartbeat']);
  if (!(heartbeat > 0 && heartbeat <= 300)) throw new KubicleError('Invalid', `--host-heartbeat ${JSON.stringify(config['host-heartbeat'])} must be a number of seconds above 0 and at most 300`);
  const hostLostAfter = Number(config['host-lost-after']);
  if (!(hostLostAfter >= 0 && hostLostAfter <= 86_400)) throw new KubicleError('Invalid', `--host-lost-after ${JSON.stringify(config['host-lost-after'])} must be a number of seconds from 0 to 86400`);
  const podPool = parseCidr(config['cluster-pod-pool']);
  if (!podPool || podPool.bits > 24) throw new KubicleError('Invalid', `--cluster-pod-pool ${JSON.stringify(config['cluster-pod-pool'])} must be an IPv4 network of at least one /24, such as 10.224.0.0/12`);
  // Loaded only when asked for: the etcd client costs start-up time and memory (see store.ts).
  const etcd = config['cluster-etcd'] ? new (await import('../storage/etcd/etcd-tenancy.js')).EtcdTenancy(config['cluster-etcd']) : undefined;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const waits: Promise<unknown>[] = [];
  const registry = await startRegistry(config, dataDir, log, signal, waits);
  if (!registry) throw new KubicleError('Invalid', 'the provider needs its image registry: --registry-port must not be 0');
  const { socketPath, running: agentRunning } = await startAgentProcess(config, dataDir, log, signal);
  waits.push(agentRunning);
  const authorizer = new TenantAuthorizer({
    operatorGroups: ['system:masters', operatorGroup],
    tenantGroupPrefix,
    tenantResource: { group: providerGroup, resource: 'tenants' },
    rules: [
      { group: providerGroup, resources: ['clusters'], verbs: '*' },
      { group: providerGroup, resources: ['clusters/status', 'sandboxes', 'usages'], verbs: ['get', 'list', 'watch'] },
      { group: '', resources: ['secrets', 'events'], verbs: ['get', 'list', 'watch'] },
    ],
  });
  const { server, backend, serving, kubeconfig } = await startApiServer(config, dataDir, providerRegistry(), log, signal, { authorizer });
  const client = new KubeClient({ server: server.url, caPem: server.credentials.ca.cert, token: server.loopbackToken });
  const hostName = config['node-name'] || os.hostname().toLowerCase();
  // This machine's agent is a Host as any other's (`kubicle agent --provider`) is.
  await registerHost(client, { name: hostName, zone: config.zone, socket: socketPath });
  const hosts = new Hosts(client, { intervalMs: heartbeat * 1000, graceMs: heartbeat * 4000 }, log.with({ component: 'hosts' }));
  const hostsRunning = hosts.run(signal);
  // Every host asked once before any cluster starts: those that answer are Ready when their clusters are.
  await hosts.started();
  const gateway = new EndpointGateway(log.with({ component: 'gateway' }));
  const installDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  // Control-plane sandboxes see the host's /usr only: the runtime must be there.
  const nodeBinary = realpathSync(process.execPath);
  if (!nodeBinary.startsWith('/usr/')) throw new KubicleError('Invalid', `the provider runs control planes with this Node.js, which must be under /usr, not ${nodeBinary}`);
  const clusters = new ClusterController(
    client,
    gateway,
    {
      hosts,
      home: hostName,
      clustersDir: path.join(dataDir, 'clusters'),
      endpointPool: pool,
      endpointPort: Number(config['cluster-endpoint-port']),
      podPool,
      sandboxes: new SandboxGateway(hosts, client, log.with({ component: 'sandbox-gateway' })),
      image: { image: `${registry}/kubicle/busybox:1`, installDir, nodeBinary, logLevel: config['log-level'] },
      defaultSleepAfterSeconds: Number(config['cluster-sleep-after']),
      hostLostAfterMs: hostLostAfter * 1000,
      datapath: serviceDatapath(log),
      stores: etcd,
    },
    log.with({ component: 'cluster-controller' }),
  );
  const meter = new Meter(hosts, client, prices, Number(config['metering-interval']) * 1000, log.with({ component: 'meter' }));
  const running = [
    hostsRunning,
    meter.run(signal),
    runCollectors(client, log, signal),
    new TenantController(client, log.with({ component: 'tenant-controller' })).run(signal),
    clusters.run(signal),
  ];
  const summary =
    `provider: ${server.url}\nkubeconfig (operator): ${kubeconfig}\n` +
    `host: ${hostName}; cluster endpoints from ${pool.text}, pod networks from ${podPool.text}; registry ${registry}\n`;
  if (!opts.defaultCluster) {
    process.stdout.write(`Kubicle provider is up\n${summary}\n  ./kubicle cluster create NAME      # then: ./kubicle cluster kubeconfig NAME > NAME.kubeconfig\n`);
  } else {
    // `up`: the operator's first cluster, made (or found) and waited for, its kubeconfig beside the provider's.
    const made = await defaultCluster(client, config.tenant, path.join(dataDir, 'default.kubeconfig')).catch((err: Error) => err);
    if (made instanceof Error) {
      log.error('the default cluster did not start', { err: made });
      process.stdout.write(`Kubicle provider is up, but the default cluster did not start: ${made.message}\n${summary}`);
    } else {
      process.stdout.write(
        `Kubicle is up: cluster ${config.tenant}/default at ${made.endpoint}\n${summary}kubeconfig (cluster): ${made.kubeconfig}\n\n` +
          `  export KUBECONFIG=${made.kubeconfig}\n  kubectl get namespaces\n\n` +
          `More clusters: ./kubicle cluster create NAME. Ctrl-C stops the provider; clusters and pods keep running and are adopted by the next start.\n`,
      );
    }
  }
  await serving;
  await Promise.allSettled([...running, ...waits]);
  client.close();
  etcd?.close();
  await backend.close();
}

/**
 * The Tenant `tenant` and its Cluster `default`, made unless they exist; resolves once the cluster
 * runs, with its endpoint and its admin kubeconfig written to `file`.
 */
async function defaultCluster(client: KubeClient, tenant: string, file: string): Promise<{ endpoint: string; kubeconfig: string }> {
  const v = `${providerGroup}/v1alpha1`;
  const clusterPath = resourcePath({ group: providerGroup, version: 'v1alpha1', plural: 'clusters', namespace: tenant, name: 'default' });
  await createIfAbsent(client, resourcePath({ group: providerGroup, version: 'v1alpha1', plural: 'tenants' }), { apiVersion: v, kind: 'Tenant', metadata: { name: tenant }, spec: {} });
  await createIfAbsent(client, resourcePath({ group: providerGroup, version: 'v1alpha1', plural: 'clusters', namespace: tenant }), { apiVersion: v, kind: 'Cluster', metadata: { name: 'default', namespace: tenant }, spec: {} });
  // Stopped by an operator earlier: `up` means it should run.
  if ((await client.get(clusterPath)).spec?.stopped) await client.patch(clusterPath, { spec: { stopped: false } });
  const c = await waitRunning(client, clusterPath);
  await writeFile(`${file}.tmp`, await clusterKubeconfig(client, tenant, 'default'), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
  return { endpoint: c.status.endpoint, kubeconfig: file };
}

/** Each tenant cluster's Services on its own bridge (ADR 0013): the host's service proxy, held to that network. */
function serviceDatapath(log: Logger): ClusterDatapath {
  return {
    run: ({ cluster, client, network }, signal) =>
      new ServiceProxy(
        client,
        { table: `${network.bridge}-services`, bridge: network.bridge, podCidr: network.cidr, gateway: network.gateway, nodeName: virtualNodeName, isolated: true },
        log.with({ component: 'service-proxy', cluster }),
      ).run(signal),
  };
}

/** Creates the object unless one of its name exists (which is kept as it is). */
async function createIfAbsent(client: KubeClient, at: string, obj: Obj): Promise<void> {
  try {
    await client.create(at, obj);
  } catch (err) {
    if (!isCode(err, 'AlreadyExists')) throw err;
  }
}

/** The operator's price list (--price-list, a JSON file of PriceList's fields), over the defaults. */
async function priceList(config: Config): Promise<PriceList> {
  const file = config['price-list'];
  if (!file) return defaultPrices;
  let given: Partial<PriceList>;
  try {
    given = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new KubicleError('Invalid', `--price-list ${file}: ${(err as Error).message}`);
  }
  const prices = { ...defaultPrices, ...given };
  for (const k of ['cpuHour', 'memoryGiBHour', 'controlPlaneHour'] as const) {
    if (typeof prices[k] !== 'number' || !(prices[k] >= 0)) throw new KubicleError('Invalid', `--price-list ${file}: ${k} must be a number of at least 0`);
  }
  if (typeof prices.currency !== 'string' || !/^[A-Z]{3}$/.test(prices.currency)) throw new KubicleError('Invalid', `--price-list ${file}: currency must be a three-letter code such as EUR`);
  return prices;
}

/** The cluster endpoint pool: inside 127.0.0.0/8 (this machine only, DESIGN §5) and outside 127.0.0.0/24. */
function endpointPool(config: Config): Cidr {
  const pool = parseCidr(config['cluster-endpoint-pool']);
  const hostLoopback = parseCidr('127.0.0.0/24') as Cidr;
  if (!pool || pool.bits < 8 || pool.bits > 30 || !cidrsOverlap(pool, parseCidr('127.0.0.0/8') as Cidr) || cidrsOverlap(pool, hostLoopback)) {
    throw new KubicleError('Invalid', `--cluster-endpoint-pool ${JSON.stringify(config['cluster-endpoint-pool'])} must be a network of at least 4 addresses inside 127.0.0.0/8 and outside 127.0.0.0/24, such as 127.250.0.0/16`);
  }
  return pool;
}

/**
 * The provider's share of a controller manager: namespaces empty before they go (a deleted
 * Tenant's namespace takes its Clusters with it), and ownership — a Tenant owns its Namespace, a
 * Cluster its kubeconfig Secret — collected as in any cluster.
 */
async function runCollectors(client: KubeClient, log: Logger, signal: AbortSignal): Promise<void> {
  const informers = new InformerFactory(client, log);
  const v = `${providerGroup}/v1alpha1`;
  const kinds = [
    ...builtinKinds.filter((k) => k.kind === 'Secret' || k.kind === 'ConfigMap'),
    { apiVersion: 'v1', kind: 'Namespace', path: '/api/v1/namespaces', namespaced: false },
    { apiVersion: v, kind: 'Tenant', path: `/apis/${v}/tenants`, namespaced: false },
    { apiVersion: v, kind: 'Cluster', path: `/apis/${v}/clusters`, namespaced: true },
  ];
  const running = [
    new NamespaceController(client, log.with({ component: 'namespace-controller' })).run(signal),
    new GarbageCollector(client, informers, log.with({ component: 'garbage-collector' }), { kinds, customResources: false }).run(signal),
  ];
  informers.start(signal);
  await Promise.all([...running, informers.stopped()]);
}
