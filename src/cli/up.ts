import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { setMaxListeners } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { builtinRegistry } from '../api/registry.js';
import { renderKubeconfig } from '../apiserver/kubeconfig.js';
import { ApiServer } from '../apiserver/server.js';
import { KubeClient } from '../client/kube-client.js';
import { InformerFactory } from '../client/informer-factory.js';
import { LeaderElector } from '../client/leader-election.js';
import { CronJobController } from '../controllers/cronjob.js';
import { DaemonSetController } from '../controllers/daemonset.js';
import { DeploymentController } from '../controllers/deployment.js';
import { DisruptionController } from '../controllers/disruption.js';
import { EndpointsController } from '../controllers/endpoints.js';
import { EndpointSliceController } from '../controllers/endpointslice.js';
import { JobController } from '../controllers/job.js';
import { GarbageCollector } from '../controllers/garbage-collector.js';
import { NodeLifecycleController } from '../controllers/node-lifecycle.js';
import { ReplicaSetController } from '../controllers/replicaset.js';
import { StatefulSetController } from '../controllers/statefulset.js';
import { NamespaceController } from '../controllers/namespace.js';
import { ServiceAccountController } from '../controllers/serviceaccount.js';
import { NodeSimulator } from '../kubelet/node-simulator.js';
import { Scheduler } from '../scheduler/scheduler.js';
import type { Logger } from '../observe/log.js';
import type { Config } from './config.js';
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
  const client = new KubeClient({ server: server.url, caPem: pki.ca.cert, token: server.loopbackToken });
  const identity = `${os.hostname()}_${process.pid}`;
  const controllerLog = log.with({ component: 'controller-manager' });
  const controllers = [
    // Like upstream's controller manager: the workload controllers run while holding their lease.
    new LeaderElector(client, { namespace: 'kube-system', name: 'kube-controller-manager', identity }, log.with({ component: 'leader-election' })).run(signal, async (leading) => {
      setMaxListeners(0, leading);
      const informers = new InformerFactory(client, controllerLog);
      const running = [
        new ReplicaSetController(client, informers, controllerLog.with({ controller: 'replicaset' })).run(leading),
        new DeploymentController(client, informers, controllerLog.with({ controller: 'deployment' })).run(leading),
        new GarbageCollector(client, informers, controllerLog.with({ controller: 'garbage-collector' })).run(leading),
        new JobController(client, informers, controllerLog.with({ controller: 'job' })).run(leading),
        new DaemonSetController(client, informers, controllerLog.with({ controller: 'daemonset' })).run(leading),
        new StatefulSetController(client, informers, controllerLog.with({ controller: 'statefulset' })).run(leading),
        new DisruptionController(client, informers, controllerLog.with({ controller: 'disruption' })).run(leading),
        new EndpointsController(client, informers, controllerLog.with({ controller: 'endpoints' })).run(leading),
        new EndpointSliceController(client, informers, controllerLog.with({ controller: 'endpointslice' })).run(leading),
        new NodeLifecycleController(client, informers, controllerLog.with({ controller: 'node-lifecycle' }), { gracePeriodMs: Number(config['node-monitor-grace-period']) * 1000 }).run(leading),
        new CronJobController(client, informers, controllerLog.with({ controller: 'cronjob' })).run(leading),
      ];
      informers.start(leading);
      await Promise.all([...running, informers.stopped()]);
    }),
    new NamespaceController(client, log.with({ component: 'namespace-controller' })).run(signal),
    new ServiceAccountController(client, log.with({ component: 'serviceaccount-controller' })).run(signal),
    // Like upstream, the scheduler runs only while it holds its lease, so replicas can stand by.
    new LeaderElector(client, { namespace: 'kube-system', name: 'kube-scheduler', identity }, log.with({ component: 'leader-election' })).run(signal, (leading) =>
      new Scheduler(client, log.with({ component: 'scheduler' })).run(leading),
    ),
  ];
  const simulated = Number(config['simulate-nodes']);
  if (simulated > 0) controllers.push(new NodeSimulator(client, { count: simulated, prefix: config['node-prefix'], heartbeatMs: Number(config['node-heartbeat-interval']) * 1000 }, log.with({ component: 'node-simulator' })).run(signal));
  process.stdout.write(
    `Kubicle is up: ${server.url} (store: ${config.store === 'sqlite' ? path.join(dataDir, 'store.db') : config.store.replace(/password=[^&]*/, 'password=***')})\n` +
      `kubeconfig: ${kubeconfig}\n\n  export KUBECONFIG=${kubeconfig}\n  kubectl get namespaces\n\nCtrl-C stops it; objects are kept.\n`,
  );
  await serving;
  await Promise.allSettled(controllers);
  client.close();
  await backend.close();
}
