import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import type { Kubicle } from './kubicle.js';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/kubicle.js');

/** A second host for a provider: a real `kubicle agent --provider` on this machine (ADR 0023). */
export interface JoinedAgent {
  name: string;
  /** Its Sandbox API, as the provider reaches it. */
  client: SandboxClient;
  process: ChildProcess;
  /** The last 20,000 characters it printed. */
  logs(): string;
  /** SIGCONT (in case it was stopped), then SIGTERM, and waits for its exit. */
  stop(): Promise<void>;
}

/**
 * Starts an agent that registers itself with provider `p` as Host `name` in `zone`, with its own
 * state under p's data directory, its own bridge and pod range. Resolves at once: the Host turns
 * Ready once the agent serves and the provider has heard from it.
 */
export function joinAgent(p: Kubicle, o: { name: string; zone: string; bridge: string; podCidr: string }): JoinedAgent {
  const dir = path.join(p.dataDir, o.name);
  const socket = path.join(dir, 'agent.sock');
  const args = ['agent', '--data-dir', dir, '--agent-socket', socket, '--bridge', o.bridge, '--pod-cidr', o.podCidr, '--provider', p.kubeconfig, '--node-name', o.name, '--zone', o.zone, '--log-level', 'info'];
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return {
    name: o.name,
    client: new SandboxClient({ socketPath: socket }),
    process: child,
    logs: () => out,
    stop: async () => {
      child.kill('SIGCONT');
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
