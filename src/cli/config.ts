import { parseArgs } from 'node:util';

/**
 * The one configuration schema: each option's flag, environment variable, default and help
 * derive from its entry here, so no flag is copied by hand.
 */
interface Option {
  type: 'string' | 'boolean';
  default: string | boolean;
  env: string;
  help: string;
}

export const schema = {
  'data-dir': { type: 'string', default: '.kubicle', env: 'KUBICLE_DATA_DIR', help: 'directory for the store, certificates and kubeconfig' },
  store: { type: 'string', default: 'sqlite', env: 'KUBICLE_STORE', help: '"sqlite" (a file in the data dir) or etcd://host:port[/prefix]' },
  host: { type: 'string', default: '127.0.0.1', env: 'KUBICLE_HOST', help: 'address the API server listens on' },
  port: { type: 'string', default: '6443', env: 'KUBICLE_PORT', help: 'port the API server listens on (0: any free port)' },
  'listen-socket': { type: 'string', default: '', env: 'KUBICLE_LISTEN_SOCKET', help: 'controlplane: serve on this unix socket; --host and --port then name the endpoint clients use' },
  'cluster-endpoint-pool': { type: 'string', default: '127.250.0.0/16', env: 'KUBICLE_CLUSTER_ENDPOINT_POOL', help: 'provider (up, server): addresses of tenant cluster endpoints, inside 127.0.0.0/8' },
  'cluster-endpoint-port': { type: 'string', default: '443', env: 'KUBICLE_CLUSTER_ENDPOINT_PORT', help: 'provider (up, server): the port of every cluster endpoint' },
  'cluster-pod-pool': { type: 'string', default: '10.224.0.0/12', env: 'KUBICLE_CLUSTER_POD_POOL', help: 'provider (up, server): tenant clusters\' pod ranges, a /24 each, each an isolated network' },
  'cluster-etcd': { type: 'string', default: '', env: 'KUBICLE_CLUSTER_ETCD', help: 'provider (up, server): etcd://host:port[/base]?user=root&password=p for clusters of spec.store etcd (auth enabled; each gets its own user and prefix)' },
  'endpoint-reconciler-type': { type: 'string', default: 'master-count', env: 'KUBICLE_ENDPOINT_RECONCILER_TYPE', help: 'controlplane: "master-count" makes this API server the kubernetes Service\'s endpoint at start; "none" leaves that to another replica (one its pods cannot reach)' },
  'sandbox-socket': { type: 'string', default: '', env: 'KUBICLE_SANDBOX_SOCKET', help: 'controlplane: the provider\'s Sandbox API for the virtual kubelet (none: no kubelet)' },
  'node-cpu': { type: 'string', default: '4', env: 'KUBICLE_NODE_CPU', help: 'controlplane: the virtual node\'s CPU capacity' },
  'node-memory': { type: 'string', default: '8Gi', env: 'KUBICLE_NODE_MEMORY', help: 'controlplane: the virtual node\'s memory capacity' },
  'host-heartbeat': { type: 'string', default: '10', env: 'KUBICLE_HOST_HEARTBEAT', help: 'provider (up, server): seconds between asking the host agent for its Host\'s status (unanswered for 4 of them: NotReady)' },
  'metering-interval': { type: 'string', default: '10', env: 'KUBICLE_METERING_INTERVAL', help: 'provider (up, server): seconds between usage samples of every sandbox' },
  'price-list': { type: 'string', default: '', env: 'KUBICLE_PRICE_LIST', help: 'provider (up, server): JSON price list {currency, cpuHour, memoryGiBHour, controlPlaneHour} (default: built in)' },
  'host-lost-after': { type: 'string', default: '60', env: 'KUBICLE_HOST_LOST_AFTER', help: 'provider (up, server): seconds a host may stay NotReady before the control-plane replicas on it (but each cluster\'s first) start on other hosts' },
  'cluster-sleep-after': { type: 'string', default: '300', env: 'KUBICLE_CLUSTER_SLEEP_AFTER', help: 'provider (up, server): idle seconds before a control plane sleeps unless its Cluster says (0: never)' },
  'token-file': { type: 'string', default: '', env: 'KUBICLE_TOKEN_FILE', help: 'static bearer tokens, one token,user,uid,"groups" per line' },
  'compact-interval': { type: 'string', default: '300', env: 'KUBICLE_COMPACT_INTERVAL', help: 'seconds between store compactions (history kept about this long)' },
  'node-monitor-grace-period': { type: 'string', default: '40', env: 'KUBICLE_NODE_MONITOR_GRACE_PERIOD', help: 'seconds without a node heartbeat before it is unreachable' },
  'leader-elect-lease-duration': { type: 'string', default: '15', env: 'KUBICLE_LEADER_ELECT_LEASE_DURATION', help: 'seconds a controller manager\'s or scheduler\'s lease lasts unrenewed before another may take it' },
  'leader-elect-renew-deadline': { type: 'string', default: '10', env: 'KUBICLE_LEADER_ELECT_RENEW_DEADLINE', help: 'seconds a leader keeps trying to renew before it steps down (less than the lease duration)' },
  'leader-elect-retry-period': { type: 'string', default: '2', env: 'KUBICLE_LEADER_ELECT_RETRY_PERIOD', help: 'seconds between a leader\'s renewals and a candidate\'s attempts (less than the renew deadline)' },
  'node-heartbeat-interval': { type: 'string', default: '10', env: 'KUBICLE_NODE_HEARTBEAT_INTERVAL', help: 'seconds between simulated nodes\' heartbeats' },
  controllers: { type: 'string', default: 'all', env: 'KUBICLE_CONTROLLERS', help: '"all": controllers and scheduler run in-process; "none": a bare API server' },
  'simulate-nodes': { type: 'string', default: '0', env: 'KUBICLE_SIMULATE_NODES', help: 'with standalone: also run this many simulated nodes (they run nothing)' },
  'node-prefix': { type: 'string', default: 'sim-node', env: 'KUBICLE_NODE_PREFIX', help: 'name prefix of simulated nodes (<prefix>-0, <prefix>-1, …)' },
  node: { type: 'string', default: 'local', env: 'KUBICLE_NODE', help: 'with standalone: "local" runs a host agent and a kubelet so pods really run here (runc); "none" runs no node' },
  'node-name': { type: 'string', default: '', env: 'KUBICLE_NODE_NAME', help: 'the local node\'s name (default: this host\'s name)' },
  zone: { type: 'string', default: 'local', env: 'KUBICLE_ZONE', help: 'agent (with --provider), up, server: the zone of this machine\'s Host (its topology.kubernetes.io/zone)' },
  'pod-cidr': { type: 'string', default: '10.244.0.0/24', env: 'KUBICLE_POD_CIDR', help: 'the local node\'s pod address range' },
  'service-cidr': { type: 'string', default: '10.96.0.0/12', env: 'KUBICLE_SERVICE_CIDR', help: 'Services\' cluster IP range (the 1st address is the kubernetes Service, the 10th cluster DNS)' },
  'service-node-port-range': { type: 'string', default: '30000-32767', env: 'KUBICLE_SERVICE_NODE_PORT_RANGE', help: 'node ports of NodePort and LoadBalancer Services' },
  'load-balancer-pool': { type: 'string', default: '127.240.0.0/24', env: 'KUBICLE_LOAD_BALANCER_POOL', help: 'addresses for LoadBalancer Services, inside 127.0.0.0/8 (the 1st is the ingress controller\'s)' },
  'ingress-http-port': { type: 'string', default: '80', env: 'KUBICLE_INGRESS_HTTP_PORT', help: 'the ingress controller\'s HTTP port on its address' },
  'ingress-https-port': { type: 'string', default: '443', env: 'KUBICLE_INGRESS_HTTPS_PORT', help: 'the ingress controller\'s HTTPS port on its address' },
  'cluster-domain': { type: 'string', default: 'cluster.local', env: 'KUBICLE_CLUSTER_DOMAIN', help: 'the cluster\'s DNS domain' },
  bridge: { type: 'string', default: 'kubicle0', env: 'KUBICLE_BRIDGE', help: 'the local node\'s pod bridge' },
  'kubelet-port': { type: 'string', default: '10250', env: 'KUBICLE_KUBELET_PORT', help: 'the local kubelet\'s HTTPS port (logs and streams for the API server)' },
  'agent-socket': { type: 'string', default: '', env: 'KUBICLE_AGENT_SOCKET', help: 'the host agent\'s Sandbox API socket (default <data-dir>/agent.sock)' },
  'registry-port': { type: 'string', default: '5000', env: 'KUBICLE_REGISTRY_PORT', help: 'port of the embedded image registry on 127.0.0.1 (0: none; standalone only)' },
  registry: { type: 'string', default: '127.0.0.1:5000', env: 'KUBICLE_REGISTRY', help: 'for image build/samples: the registry to push to' },
  'restart-backoff': { type: 'string', default: '10', env: 'KUBICLE_RESTART_BACKOFF', help: 'seconds of the first container restart back-off (doubles up to 30 times that)' },
  kubeconfig: { type: 'string', default: '', env: 'KUBECONFIG', help: 'for simulate: the cluster to join (default <data-dir>/kubeconfig)' },
  provider: { type: 'string', default: '', env: 'KUBICLE_PROVIDER', help: 'for cluster: the provider\'s kubeconfig (default <data-dir>/kubeconfig); for agent: register with that provider as Host --node-name' },
  tenant: { type: 'string', default: 'default', env: 'KUBICLE_TENANT', help: 'for cluster and usage: the tenant (its namespace on the provider); up makes its default cluster there' },
  groups: { type: 'string', default: '', env: '', help: 'for user kubeconfig: the user\'s groups, comma-separated' },
  wait: { type: 'boolean', default: false, env: '', help: 'for cluster create|start: wait until it runs' },
  'log-level': { type: 'string', default: 'info', env: 'KUBICLE_LOG_LEVEL', help: 'debug, info, warn or error' },
  help: { type: 'boolean', default: false, env: '', help: 'show this help' },
} satisfies Record<string, Option>;

export type Config = { [K in keyof typeof schema]: (typeof schema)[K]['default'] extends boolean ? boolean : string };

export function parseConfig(argv: string[]): { config: Config; positionals: string[] } {
  const options = Object.fromEntries(Object.entries(schema).map(([k, o]) => [k, { type: o.type }])) as NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  const config = {} as Record<string, string | boolean>;
  for (const [k, o] of Object.entries(schema) as [string, Option][]) {
    const fromFlag = (values as Record<string, string | boolean | undefined>)[k];
    const fromEnv = o.env ? process.env[o.env] : undefined;
    config[k] = fromFlag ?? (fromEnv !== undefined ? (o.type === 'boolean' ? fromEnv === 'true' : fromEnv) : o.default);
  }
  return { config: config as Config, positionals };
}

export function usage(): string {
  const lines = Object.entries(schema as Record<string, Option>).map(
    ([k, o]) => `  --${k.padEnd(12)} ${o.help}${o.default !== '' && o.type !== 'boolean' ? ` (default ${o.default})` : ''}${o.env ? ` [$${o.env}]` : ''}`,
  );
  return `usage: kubicle <command> [flags]

commands:
  up                 run the platform here: the provider, this host's agent and a default cluster (its kubeconfig written)
  standalone         run one cluster straight on this host, without the provider (API server, controllers, scheduler, a local node)
  simulate nodes N   register N simulated nodes (they run nothing) and play their kubelets
  store compact      compact the store's history to its current revision (server stopped)
  server             run the provider: tenants, clusters (each control plane in its own sandbox), this host's agent
  cluster create|list|delete|start|stop|kubeconfig NAME   manage clusters through the provider (--tenant)
  usage              the measured use of --tenant's clusters and its price
  user kubeconfig NAME  print a kubeconfig for user NAME (--groups), its certificate signed by --data-dir's cluster CA
  controlplane       run one tenant cluster's control plane (as the provider does in its sandbox)
  agent              run the host agent alone (Sandbox API on --agent-socket)
  image samples      build the busybox and node-web images from this host's files and push them to --registry
  image build DIR REF  make a one-layer image of DIR and push it as REF (command after --)
  version            print the version

flags:
${lines.join('\n')}
`;
}
