import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { isCode, KubicleError } from '../observe/errors.js';
import type { Phases } from '../observe/phases.js';
import type { SandboxClient } from '../sandbox/api/client.js';
import type { SandboxStatus } from '../sandbox/api/types.js';
import { apiSocketPath, type ControlPlaneImage, type ControlPlaneLayout, controlPlaneContainer, controlPlaneSandbox } from './control-plane-sandbox.js';

const readyTimeoutMs = 60_000;

/** One control-plane replica as its sandbox is made: where and how it runs, and what it is called and labelled. */
export interface Replica {
  agent: SandboxClient;
  layout: ControlPlaneLayout;
  hostname: string;
  labels: Record<string, string>;
}

/**
 * Runs a control-plane replica's sandbox on its host agent, for the cluster controller: starts it
 * (adopting one that already serves), stops it for a sleep, removes it. A replica listens on its
 * socket only once ready, so "serves" means its socket accepts a connection.
 */
export class ControlPlaneReplicas {
  constructor(private readonly image: ControlPlaneImage) {}

  /**
   * Starts `r` unless it serves already, and resolves once it serves: true if it was adopted.
   * With `replace` a running process is never adopted but replaced: it was found hung (a stopped
   * process's socket still accepts connections). `prepare` readies its data directory and says
   * its --store; it runs only for a real start. Rejects with Unavailable if it exits, Timeout if
   * it does not serve within a minute.
   */
  async start(r: Replica, prepare: () => Promise<string | undefined>, phases?: Phases, replace = false): Promise<boolean> {
    const { agent, layout } = r;
    const socket = apiSocketPath(layout.dataDir);
    const existing = await agent.getSandbox(layout.sandboxId).catch((err) => (isCode(err, 'NotFound') ? undefined : Promise.reject(err)));
    // A control plane still serving from before the provider restarted is adopted, not restarted.
    if (!replace && runsControlPlane(existing) && (await serves(socket))) return true;
    const store = await prepare();
    // Both reappear when the control plane serves: the kubeconfig is written once it is ready.
    await rm(socket, { force: true });
    await rm(path.join(layout.dataDir, 'kubeconfig'), { force: true });
    phases?.mark('data');
    // One that runs but does not serve is hung: replace its process.
    if (existing?.containers.some((x) => x.state === 'running')) await agent.stopContainer(layout.sandboxId, 'control-plane', 0);
    // A sleeping replica kept its sandbox (namespace, cgroup, mounts): waking starts only the process.
    if (!existing) {
      await agent.pullImage(this.image.image);
      await agent.createSandbox(controlPlaneSandbox(layout, this.image, r.hostname, r.labels));
      phases?.mark('sandbox');
    }
    const status = await agent.startContainer(layout.sandboxId, controlPlaneContainer(layout, this.image, store));
    if (status.state === 'exited') throw new KubicleError('Unavailable', `control plane did not start: ${status.message ?? status.reason ?? `exit ${status.exitCode}`}`);
    phases?.mark('container');
    await this.waitServing(r, socket);
    phases?.mark('serving');
    return false;
  }

  /** Stops the replica's process; its sandbox stays for a quick wake. */
  sleep(r: Replica): Promise<unknown> {
    return r.agent.stopContainer(r.layout.sandboxId, 'control-plane', 5);
  }

  /** Removes the replica's sandbox; gone already is done. */
  async remove(r: Replica): Promise<void> {
    await r.agent.removeSandbox(r.layout.sandboxId, 5).catch((err) => {
      if (!isCode(err, 'NotFound')) throw err;
    });
  }

  /** Waits until the replica accepts connections on its socket (it listens only once ready). */
  private async waitServing(r: Replica, socket: string): Promise<void> {
    const deadline = Date.now() + readyTimeoutMs;
    for (let i = 0; ; i++) {
      if (existsSync(path.join(path.dirname(socket), 'kubeconfig')) && (await serves(socket))) return;
      if (Date.now() > deadline) throw new KubicleError('Timeout', `control plane did not serve within ${readyTimeoutMs / 1000} s`);
      // Every half second, see whether it died rather than waiting out the deadline.
      if (i % 25 === 24) {
        const sb = await r.agent.getSandbox(r.layout.sandboxId);
        const cp = sb.containers.find((x) => x.name === 'control-plane');
        if (cp?.state === 'exited') throw new KubicleError('Unavailable', `control plane exited with ${cp.exitCode} before serving${cp.message ? `: ${cp.message}` : ''}`);
      }
      await delay(20);
    }
  }
}

/** Whether a replica's sandbox, as its host agent reports it, has its control-plane process running. */
export function runsControlPlane(sb: SandboxStatus | undefined): boolean {
  return !!sb?.containers.some((x) => x.name === 'control-plane' && x.state === 'running');
}

/** Whether a control plane accepts connections on `socketPath`. */
export function serves(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
