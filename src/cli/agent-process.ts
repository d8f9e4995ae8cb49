import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import type { Config } from './config.js';

/** What `kubicle agent` sends its parent over the IPC channel once its Sandbox API listens. */
export const agentReadyMessage = 'kubicle-agent-ready';

/**
 * Runs this host's agent as a process of its own (`kubicle agent`), as on any other host, and
 * resolves once its Sandbox API listens. Apart, because every sandbox start spawns programs (ip,
 * mount, conmon, runc) and a spawn forks the whole caller: from the server's process, with its
 * heaps and worker threads, a fork costs several times what it does from the agent's small one,
 * and it holds the API server's event loop meanwhile (docs/benchmarks.md, bench/pod-start).
 * The agent stops with the signal, and on its own when this process dies (the IPC channel
 * closes); its sandboxes keep running either way and the next agent adopts them (ADR 0005).
 */
export async function startAgentProcess(config: Config, dataDir: string, log: Logger, signal: AbortSignal): Promise<{ socketPath: string; running: Promise<void> }> {
  const socketPath = config['agent-socket'] || path.join(dataDir, 'agent.sock');
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const args = ['agent', '--data-dir', dataDir, '--agent-socket', socketPath, '--pod-cidr', config['pod-cidr'], '--bridge', config.bridge, '--log-level', config['log-level']];
  // Node's own flags (say --cpu-prof while profiling a benchmark) apply to the agent too.
  const child = spawn(process.execPath, [...process.execArgv, main, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const onAbort = () => child.kill('SIGTERM');
  signal.addEventListener('abort', onAbort, { once: true });
  const ready = new Promise<void>((resolve) => child.on('message', (m) => m === agentReadyMessage && resolve()));
  const first = await Promise.race([ready.then(() => 'ready' as const), exited]);
  if (first !== 'ready') {
    signal.removeEventListener('abort', onAbort);
    throw new KubicleError('Unavailable', `the host agent exited (code ${first}) before it was ready`);
  }
  // Only the ready message travels on the channel; it stays open so the agent sees this process go.
  child.channel?.unref();
  log.info('host agent process started', { pid: child.pid, socket: socketPath });
  const running = exited.then((code) => {
    if (!signal.aborted) log.error('host agent process exited', { code });
  });
  return { socketPath, running };
}

/**
 * `kubicle agent --provider KUBECONFIG`: this machine's agent offered to a provider as Host
 * --node-name (default: the machine's name) in --zone. The kubeconfig is read at once (a bad
 * one stops the agent before it starts anything); the returned function registers once the
 * Sandbox API listens, tried again every few seconds until the provider answers: hosts and
 * providers start in any order.
 */
export async function joinProvider(config: Config, socketPath: string, log: Logger): Promise<(signal: AbortSignal) => Promise<void>> {
  const { KubeClient } = await import('../client/kube-client.js');
  const { loadKubeconfig } = await import('../client/kubeconfig.js');
  const { registerHost } = await import('../provider/hosts.js');
  const name = config['node-name'] || os.hostname().toLowerCase();
  const provider = await loadKubeconfig(config.provider).catch((err: Error) => {
    throw new KubicleError('Invalid', `--provider ${config.provider}: ${err.message}`);
  });
  return async (signal) => {
    const client = new KubeClient(provider);
    while (!signal.aborted) {
      try {
        await registerHost(client, { name, zone: config.zone, socket: socketPath });
        log.info('registered with the provider', { host: name, zone: config.zone });
        break;
      } catch (err) {
        log.warn('not registered with the provider yet', { host: name, err });
        await delay(3000, undefined, { signal }).catch(() => {});
      }
    }
    client.close();
  };
}
