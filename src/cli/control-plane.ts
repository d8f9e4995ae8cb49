import { setMaxListeners } from 'node:events';
import os from 'node:os';
import { InformerFactory } from '../client/informer-factory.js';
import type { KubeClient } from '../client/kube-client.js';
import { LeaderElector } from '../client/leader-election.js';
import { CronJobController } from '../controllers/cronjob.js';
import { DaemonSetController } from '../controllers/daemonset.js';
import { DeploymentController } from '../controllers/deployment.js';
import { DisruptionController } from '../controllers/disruption.js';
import { EndpointsController } from '../controllers/endpoints.js';
import { EndpointSliceController } from '../controllers/endpointslice.js';
import { GarbageCollector } from '../controllers/garbage-collector.js';
import { HorizontalController } from '../controllers/horizontal.js';
import { JobController } from '../controllers/job.js';
import { NamespaceController } from '../controllers/namespace.js';
import { NodeLifecycleController } from '../controllers/node-lifecycle.js';
import { PersistentVolumeController } from '../controllers/persistent-volume.js';
import { ReplicaSetController } from '../controllers/replicaset.js';
import { ResourceQuotaController } from '../controllers/resourcequota.js';
import { ServiceAccountController } from '../controllers/serviceaccount.js';
import { StatefulSetController } from '../controllers/statefulset.js';
import type { Logger } from '../observe/log.js';
import { Scheduler } from '../scheduler/scheduler.js';

/**
 * The control plane's loops beside the API server. The namespace and service-account
 * controllers are part of the API's own semantics and always run; the workload controllers
 * (one lease, like upstream's controller manager) and the scheduler (its own lease) run unless
 * the server is asked to be bare.
 */
export function runCoreControllers(client: KubeClient, log: Logger, signal: AbortSignal): Promise<unknown>[] {
  return [
    new NamespaceController(client, log.with({ component: 'namespace-controller' })).run(signal),
    new ServiceAccountController(client, log.with({ component: 'serviceaccount-controller' })).run(signal),
  ];
}

export function runWorkloadControllers(client: KubeClient, log: Logger, signal: AbortSignal, opts: { nodeGracePeriodMs: number }): Promise<unknown>[] {
  const identity = `${os.hostname()}_${process.pid}`;
  const elections = log.with({ component: 'leader-election' });
  const cm = log.with({ component: 'controller-manager' });
  return [
    new LeaderElector(client, { namespace: 'kube-system', name: 'kube-controller-manager', identity }, elections).run(signal, async (leading) => {
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
        new NodeLifecycleController(client, informers, of('node-lifecycle'), { gracePeriodMs: opts.nodeGracePeriodMs }).run(leading),
      ];
      informers.start(leading);
      await Promise.all([...running, informers.stopped()]);
    }),
    new LeaderElector(client, { namespace: 'kube-system', name: 'kube-scheduler', identity }, elections).run(signal, (leading) => new Scheduler(client, log.with({ component: 'scheduler' })).run(leading)),
  ];
}
