import { setMaxListeners } from 'node:events';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { type ClientConfig, KubeClient } from '../client/kube-client.js';
import { createLogger, type Logger } from '../observe/log.js';
import { type Component, runComponent } from './control-plane.js';

/**
 * Runs a control-plane component in a worker thread, as upstream runs the controller manager,
 * the scheduler and kubelets as processes of their own: a component talks to the API server
 * over HTTPS only (DESIGN §3), so moving it off the API server's thread changes nothing it sees,
 * and the API server keeps a core to itself. A worker that dies is started again after a second;
 * aborting the signal stops it (terminated if it has not finished within five seconds).
 */
interface Data {
  component: Component;
  client: ClientConfig;
}

export function runInWorker(component: Component, client: ClientConfig, log: Logger, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const start = () => {
      const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { component, client } satisfies Data });
      const stop = () => {
        worker.postMessage('stop');
        setTimeout(() => void worker.terminate(), 5000).unref();
      };
      signal.addEventListener('abort', stop, { once: true });
      worker.on('error', (err) => log.error('component failed', { component: component.kind, err }));
      worker.on('exit', (code) => {
        signal.removeEventListener('abort', stop);
        if (signal.aborted) return resolve();
        log.error('component exited; restarting it', { component: component.kind, code });
        setTimeout(start, 1000).unref();
      });
    };
    start();
  });
}

if (!isMainThread && parentPort) {
  const { component, client: config } = workerData as Data;
  const ac = new AbortController();
  setMaxListeners(0, ac.signal);
  parentPort.on('message', (m) => {
    if (m === 'stop') ac.abort();
  });
  const client = new KubeClient(config);
  const log = createLogger({ pid: process.pid, thread: component.kind });
  runComponent(component, client, log, ac.signal)
    .catch((err) => {
      log.error('component stopped with an error', { err });
      process.exitCode = 1;
    })
    .finally(() => {
      client.close();
      parentPort?.close();
    });
}
