import { setMaxListeners } from 'node:events';
import os from 'node:os';
import { threadId } from 'node:worker_threads';
import { TokenSigner } from '../apiserver/token-signer.js';
import { kubeVersion } from '../apiserver/version.js';
import { InformerFactory } from '../client/informer-factory.js';
import type { KubeClient } from '../client/kube-client.js';
import { LeaderElector, type LeaderTimings } from '../client/leader-election.js';
import { ClusterRoleAggregation } from '../controllers/clusterrole-aggregation.js';
import { CronJobController } from '../controllers/cronjob.js';
import { DaemonSetController } from '../controllers/daemonset.js';
import { DeploymentController } from '../controllers/deployment.js';
import { DisruptionController } from '../controllers/disruption.js';
import { EndpointsController } from '../controllers/endpoints.js';
import { EndpointSliceController } from '../controllers/endpointslice.js';
import { GarbageCollector } from '../controllers/garbage-collector.js';
import { HorizontalController } from '../controllers/horizontal.js';
import { JobController } from '../controllers/job.js';
import { LegacyTokenController } from '../controllers/legacy-token.js';
import { NamespaceController } from '../controllers/namespace.js';
import { NodeLifecycleController } from '../controllers/node-lifecycle.js';
import { PersistentVolumeController } from '../controllers/persistent-volume.js';
import { ReplicaSetController } from '../controllers/replicaset.js';
import { ResourceQuotaController } from '../controllers/resourcequota.js';
import { RootCaPublisher } from '../controllers/root-ca-publisher.js';
import { ServiceAccountController } from '../controllers/serviceaccount.js';
import { StatefulSetController } from '../controllers/statefulset.js';
import type { KubeletOptions } from '../kubelet/kubelet.js';
import type { SimulatorOptions } from '../kubelet/node-simulator.js';
import type { ClusterDnsOptions } from '../network/cluster-dns.js';
import type { IngressControllerOptions } from '../network/ingress-controller.js';
import type { LoadBalancerOptions } from '../network/load-balancer.js';
import type { PolicyRulesOptions } from '../network/policy-rules.js';
import type { ServiceProxyOptions } from '../network/service-proxy.js';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { Scheduler } from '../scheduler/scheduler.js';
import type { Config } from './config.js';

/**
 * The control plane's loops beside the API server, as components: the controller manager (the
 * namespace and service-account controllers, which are part of the API's own semantics and always
 * run, and unless the server is bare the workload controllers under one lease), the scheduler
 * (its own lease), the node simulator, a real node's kubelet, service proxy and network policy, cluster DNS, and the
 * platform's load balancer and ingress controller. Each runs in a worker thread of its own (see
 * component-worker.ts) and reaches the API server only over HTTPS.
 */
export type Component =
  | { kind: 'controller-manager'; workloads: boolean; nodeGracePeriodMs: number; serviceAccountKey: string; leaderElection: LeaderTimings }
  | { kind: 'scheduler'; leaderElection: LeaderTimings }
  | { kind: 'node-simulator'; options: SimulatorOptions }
  | { kind: 'kubelet'; options: KubeletOptions; agentSocket: string }
  | { kind: 'service-proxy'; options: ServiceProxyOptions }
  | { kind: 'cluster-dns'; options: ClusterDnsOptions }
  | { kind: 'network-policy'; options: PolicyRulesOptions }
  | { kind: 'load-balancer'; options: LoadBalancerOptions }
  | { kind: 'ingress-controller'; options: IngressControllerOptions };

/** Node-side components load on demand, so a control plane without a node never loads them. */
/** Upstream's names for the components that have one, so managedFields read as they do there. */
const userAgents: Partial<Record<Component['kind'], string>> = {
  'controller-manager': 'kube-controller-manager',
  scheduler: 'kube-scheduler',
  kubelet: 'kubelet',
  'service-proxy': 'kube-proxy',
};

export async function runComponent(c: Component, shared: KubeClient, log: Logger, signal: AbortSignal): Promise<unknown> {
  const client = shared.withUserAgent(`${userAgents[c.kind] ?? `kubicle-${c.kind}`}/${kubeVersion.gitVersion}`);
  switch (c.kind) {
    case 'controller-manager':
      return Promise.all([
        new NamespaceController(client, log.with({ component: 'namespace-controller' })).run(signal),
        new ServiceAccountController(client, log.with({ component: 'serviceaccount-controller' })).run(signal),
        new RootCaPublisher(client, client.caPem, log.with({ component: 'root-ca-cert-publisher' })).run(signal),
        new ClusterRoleAggregation(client, log.with({ component: 'clusterrole-aggregation-controller' })).run(signal),
        new LegacyTokenController(client, new TokenSigner(c.serviceAccountKey), client.caPem, log.with({ component: 'tokens-controller' })).run(signal),
        ...(c.workloads ? [runWorkloadControllers(client, log, signal, c.nodeGracePeriodMs, c.leaderElection)] : []),
      ]);
    case 'scheduler':
      return new LeaderElector(client, { ...c.leaderElection, namespace: 'kube-system', name: 'kube-scheduler', identity: identity() }, log.with({ component: 'leader-election' })).run(signal, (leading) =>
        new Scheduler(client, log.with({ component: 'scheduler' })).run(leading),
      );
    case 'node-simulator': {
      const { NodeSimulator } = await import('../kubelet/node-simulator.js');
      return new NodeSimulator(client, c.options, log.with({ component: 'node-simulator' })).run(signal);
    }
    case 'kubelet': {
      const [{ Kubelet }, { SandboxClient }] = await Promise.all([import('../kubelet/kubelet.js'), import('../sandbox/api/client.js')]);
      return new Kubelet(client, new SandboxClient({ socketPath: c.agentSocket }), c.options, log.with({ component: 'kubelet' })).run(signal);
    }
    case 'service-proxy': {
      const { ServiceProxy } = await import('../network/service-proxy.js');
      return new ServiceProxy(client, c.options, log.with({ component: 'service-proxy' })).run(signal);
    }
    case 'cluster-dns': {
      const { ClusterDns } = await import('../network/cluster-dns.js');
      return new ClusterDns(client, c.options, log.with({ component: 'cluster-dns' })).run(signal);
    }
    case 'network-policy': {
      const { PolicyEnforcer } = await import('../network/policy-enforcer.js');
      return new PolicyEnforcer(client, c.options, log.with({ component: 'network-policy' })).run(signal);
    }
    case 'load-balancer': {
      const { LoadBalancer } = await import('../network/load-balancer.js');
      return new LoadBalancer(client, c.options, log.with({ component: 'load-balancer' })).run(signal);
    }
    case 'ingress-controller': {
      const { IngressController } = await import('../network/ingress-controller.js');
      return new IngressController(client, c.options, log.with({ component: 'ingress-controller' })).run(signal);
    }
  }
}

/** The --leader-elect-* flags, checked: each a positive number of seconds, retry < renew deadline < lease duration. */
export function leaderTimings(config: Config): Required<LeaderTimings> {
  const [lease, renew, retry] = (['leader-elect-lease-duration', 'leader-elect-renew-deadline', 'leader-elect-retry-period'] as const).map((flag) => {
    const n = Number(config[flag]);
    if (!Number.isFinite(n) || n <= 0) throw new KubicleError('Invalid', `--${flag} ${JSON.stringify(config[flag])} must be a positive number of seconds`);
    return n * 1000;
  });
  if (!(retry < renew && renew < lease)) throw new KubicleError('Invalid', `--leader-elect-retry-period (${retry / 1000}) must be less than --leader-elect-renew-deadline (${renew / 1000}), and that less than --leader-elect-lease-duration (${lease / 1000})`);
  return { leaseDurationMs: lease, renewDeadlineMs: renew, retryPeriodMs: retry };
}

const identity = () => `${os.hostname()}_${process.pid}_${threadId}`;

function runWorkloadControllers(client: KubeClient, log: Logger, signal: AbortSignal, nodeGracePeriodMs: number, timings: LeaderTimings): Promise<unknown> {
  const cm = log.with({ component: 'controller-manager' });
  return new LeaderElector(client, { ...timings, namespace: 'kube-system', name: 'kube-controller-manager', identity: identity() }, log.with({ component: 'leader-election' })).run(signal, async (leading) => {
    setMaxListeners(0, leading);
    const informers = new InformerFactory(client, cm);
    const of = (controller: string) => cm.with({ controller });
    const running = [
      new ReplicaSetController(client, informers, of('replicaset')).run(leading),
      new DeploymentController(client, informers, of('deployment')).run(leading),
      new StatefulSetController(client, informers, of('statefulset')).run(leading),
      new DaemonSetController(client, informers, of('daemonset')).run(leading),
      new JobController(client, informers, of('job')).run(leading),
      new CronJobController(client, informers, of('cronjob')).run(leading),
      new GarbageCollector(client, informers, of('garbage-collector')).run(leading),
      new DisruptionController(client, informers, of('disruption')).run(leading),
      new EndpointsController(client, informers, of('endpoints')).run(leading),
      new EndpointSliceController(client, informers, of('endpointslice')).run(leading),
      new HorizontalController(client, informers, of('horizontal-pod-autoscaler')).run(leading),
      new PersistentVolumeController(client, informers, of('persistentvolume')).run(leading),
      new ResourceQuotaController(client, informers, of('resourcequota')).run(leading),
      new NodeLifecycleController(client, informers, of('node-lifecycle'), { gracePeriodMs: nodeGracePeriodMs }).run(leading),
    ];
    informers.start(leading);
    await Promise.all([...running, informers.stopped()]);
  });
}
