import { setMaxListeners } from 'node:events';
import path from 'node:path';
import { LOCAL_PATH_ROOT } from '../api/local-path.js';
import { versionInfo } from '../apiserver/version.js';
import { KubicleError } from '../observe/errors.js';
import { createLogger } from '../observe/log.js';
import { agentReadyMessage, joinProvider } from './agent-process.js';
import { parseConfig, usage } from './config.js';
import { openStore } from './store.js';

/** The `kubicle` command: parses the configuration and runs one role or tool. */
async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseConfig>;
  try {
    // Words after `--` belong to the command being described (image build's cmd), not to kubicle.
    parsed = parseConfig(argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${usage()}`);
    return 2;
  }
  const { config, positionals } = parsed;
  if (config.help || positionals.length === 0) {
    process.stdout.write(usage());
    return config.help ? 0 : 2;
  }
  process.env.KUBICLE_LOG_LEVEL = config['log-level'];
  const log = createLogger({ pid: process.pid });
  const ac = new AbortController();
  // Every informer, queue and timer of every component listens on this one signal.
  setMaxListeners(0, ac.signal);
  const stop = (signal: string) => {
    if (ac.signal.aborted) return;
    log.info('shutting down', { signal });
    ac.abort();
    // A clean stop takes milliseconds; never hang on a stuck connection.
    setTimeout(() => {
      log.error('shutdown took over 10 s, exiting');
      process.exit(1);
    }, 10_000).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  switch (positionals.join(' ')) {
    case 'up':
      await (await import('./provider-server.js')).providerServer(config, log, ac.signal, { defaultCluster: true });
      return 0;
    case 'standalone':
      await (await import('./standalone.js')).standalone(config, log, ac.signal);
      return 0;
    case 'server':
      await (await import('./provider-server.js')).providerServer(config, log, ac.signal);
      return 0;
    case 'usage':
      return (await import('./cluster-commands.js')).usageCommand(config, (s) => process.stdout.write(s));
    case `cluster ${positionals[1]}`:
    case `cluster ${positionals[1]} ${positionals[2]}`:
      return (await import('./cluster-commands.js')).clusterCommand(positionals[1], positionals[2], config, (s) => process.stdout.write(s));
    case `user kubeconfig ${positionals[2]}`:
      return (await import('./user-commands.js')).userKubeconfig(positionals[2], config, (s) => process.stdout.write(s));
    case 'controlplane':
      await (await import('./tenant-control-plane.js')).tenantControlPlane(config, log, ac.signal);
      return 0;
    case 'store compact': {
      const backend = await openStore(config.store, path.resolve(config['data-dir']));
      const rev = await backend.currentRevision();
      await backend.compact(rev);
      await backend.close();
      process.stdout.write(`compacted to revision ${rev}\n`);
      return 0;
    }
    case `simulate nodes ${positionals[2]}`: {
      const count = Number(positionals[2]);
      if (!Number.isInteger(count) || count < 1) throw new Error('simulate nodes N: N must be a positive integer');
      const file = config.kubeconfig || path.join(path.resolve(config['data-dir']), 'kubeconfig');
      const { KubeClient } = await import('../client/kube-client.js');
      const { loadKubeconfig } = await import('../client/kubeconfig.js');
      const { NodeSimulator } = await import('../kubelet/node-simulator.js');
      const client = new KubeClient(await loadKubeconfig(file));
      process.stdout.write(`simulating ${count} nodes in the cluster of ${file} (they run nothing); Ctrl-C stops\n`);
      await new NodeSimulator(client, { count, prefix: config['node-prefix'], heartbeatMs: Number(config['node-heartbeat-interval']) * 1000 }, log.with({ component: 'node-simulator' })).run(ac.signal);
      client.close();
      return 0;
    }
    case 'agent': {
      const { HostAgent } = await import('../sandbox/agent.js');
      const dataDir = path.resolve(config['data-dir']);
      const socketPath = path.resolve(config['agent-socket'] || path.join(dataDir, 'agent.sock'));
      const agent = new HostAgent({ stateDir: path.join(dataDir, 'agent'), socketPath, podCidr: config['pod-cidr'], bridge: config.bridge, removableDirRoots: [LOCAL_PATH_ROOT] }, log.with({ component: 'agent' }));
      // A bad --provider is refused before anything starts.
      const join = config.provider ? await joinProvider(config, socketPath, log) : undefined;
      const running = agent.run(ac.signal);
      if (join) void agent.ready.then(() => join(ac.signal));
      if (process.send) {
        // Started by `kubicle standalone` or `server` (agent-process.ts): tell it when the API
        // listens, and stop when it is gone, however it went.
        process.on('disconnect', () => stop('parent exited'));
        void agent.ready.then(() => process.send?.(agentReadyMessage));
      }
      await running;
      return 0;
    }
    case 'image samples': {
      const { buildAndPush, RegistryClient, busyboxImage, nodeWebImage } = await imageTools();
      const client = new RegistryClient();
      for (const img of [await busyboxImage(), await nodeWebImage()]) {
        const ref = `${config.registry}/kubicle/${img.name}:1`;
        const built = await buildAndPush(client, ref, img.entries, img.config);
        process.stdout.write(`${ref}@${built.manifestDigest}\n`);
      }
      return 0;
    }
    case `image build ${positionals[2]} ${positionals[3]}`: {
      const [, , dir, ref] = positionals;
      const { buildAndPush, RegistryClient, entriesFromDirectory } = await imageTools();
      const cmd = argv.includes('--') ? argv.slice(argv.indexOf('--') + 1) : undefined;
      const built = await buildAndPush(new RegistryClient(), ref, await entriesFromDirectory(path.resolve(dir)), { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...(cmd?.length ? { Cmd: cmd } : {}) });
      process.stdout.write(`${ref}@${built.manifestDigest}\n`);
      return 0;
    }
    case 'version':
      process.stdout.write(`${JSON.stringify(versionInfo(), null, 2)}\n`);
      return 0;
    default:
      process.stderr.write(`unknown command: ${positionals.join(' ')}\n\n${usage()}`);
      return 2;
  }
}

/** Each command loads only what it runs: a tenant control plane starts faster and smaller (DESIGN §7). */
async function imageTools() {
  return { ...(await import('../sandbox/images/image-builder.js')), ...(await import('../sandbox/images/registry-client.js')), ...(await import('../sandbox/images/sample-images.js')) };
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    // Our own errors (bad flags, refusals) say what is wrong; a stack is for the unexpected.
    const own = err instanceof KubicleError;
    process.stderr.write(`kubicle: ${err instanceof Error ? (own ? err.message : (err.stack ?? err.message)) : String(err)}\n`);
    process.exit(1);
  },
);
