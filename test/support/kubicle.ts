import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type IPty, spawn as spawnPty } from 'node-pty';
import { freePort } from './etcd.js';

/**
 * Runs the real `kubicle standalone` as a child process for end-to-end tests, and stock kubectl
 * binaries against it (each with a fresh discovery cache directory).
 */
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(repo, 'bin/kubicle.js');

export interface Kubicle {
  dataDir: string;
  kubeconfig: string;
  url: string;
  port: number;
  /** Admin client credentials (PEM). */
  creds(): Promise<{ ca: string; cert: string; key: string }>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Starts again on the same data dir, store and port. */
  start(): Promise<void>;
  logs(): string;
}

/**
 * Runs `kubicle standalone` (one cluster on this host, no node unless args ask) by default;
 * `command` 'server' runs the provider and 'up' the provider with its default cluster, each with
 * its own registry on a free port. The kubeconfig is the admin's (the operator's, for the provider).
 */
export async function startKubicle(opts: { store?: string; env?: Record<string, string>; args?: string[]; command?: 'standalone' | 'up' | 'server' } = {}): Promise<Kubicle> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-e2e-'));
  const port = await freePort();
  let proc: ChildProcess | undefined;
  let out = '';
  const command = opts.command ?? 'standalone';
  const provider = command !== 'standalone';
  const args = provider
    ? [command, '--data-dir', dataDir, '--port', String(port), '--log-level', 'warn', '--registry-port', String(await freePort()), ...(opts.args ?? [])]
    : ['standalone', '--data-dir', dataDir, '--port', String(port), '--store', opts.store ?? 'sqlite', '--log-level', 'warn', '--node', 'none', '--registry-port', '0', ...(opts.args ?? [])];
  const readyLine = { standalone: 'Kubicle (standalone) is up', server: 'Kubicle provider is up', up: 'Kubicle is up' }[command];
  const k: Kubicle = {
    dataDir,
    kubeconfig: path.join(dataDir, 'kubeconfig'),
    url: `https://127.0.0.1:${port}`,
    port,
    async creds() {
      const pki = path.join(dataDir, 'pki');
      return { ca: await readFile(path.join(pki, 'ca.crt'), 'utf8'), cert: await readFile(path.join(pki, 'admin.crt'), 'utf8'), key: await readFile(path.join(pki, 'admin.key'), 'utf8') };
    },
    async start() {
      out = '';
      // KUBICLE_NODE_ARGS: flags for the server's Node (say --cpu-prof), for profiling a benchmark.
      const nodeArgs = process.env.KUBICLE_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
      proc = spawn(process.execPath, [...nodeArgs, bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
      proc.stdout?.on('data', (d) => {
        out += d;
      });
      proc.stderr?.on('data', (d) => {
        out += d;
      });
      // `up` waits for its default cluster's control plane, which may pull its image first.
      const deadline = Date.now() + (command === 'up' ? 150_000 : 30_000);
      while (!out.includes(readyLine)) {
        if (proc.exitCode !== null) throw new Error(`kubicle exited ${proc.exitCode}: ${out}`);
        if (Date.now() > deadline) throw new Error(`kubicle did not start: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (!proc || proc.exitCode !== null) return;
      const p = proc;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      const t = setTimeout(() => {
        out += '\n[harness] no exit 10 s after SIGTERM: SIGKILL\n';
        p.kill('SIGKILL');
      }, 10_000);
      await exited;
      clearTimeout(t);
    },
    async kill() {
      if (!proc || proc.exitCode !== null) return;
      const p = proc;
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
    },
    logs: () => out,
  };
  await k.start();
  return k;
}

export async function cleanup(k: Kubicle): Promise<void> {
  await k.stop();
  await rm(k.dataDir, { recursive: true, force: true });
}

export const kubectlVersions = ['1.27', '1.28', '1.29', '1.30', '1.31', '1.32', '1.33'];

/**
 * Stock kubectl on a pseudo-terminal of the given size, as a user at a terminal runs it: the
 * terminal (to type, resize), everything printed so far, and the exit code.
 */
export function kubectlOnTerminal(k: Kubicle, version: string, args: string[], size: { cols: number; rows: number }): { term: IPty; screen: () => string; exited: Promise<number> } {
  const term = spawnPty(kubectlPath(version), ['--kubeconfig', k.kubeconfig, ...args], { ...size, env: process.env as Record<string, string> });
  let screen = '';
  term.onData((d) => {
    screen += d;
  });
  const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
  return { term, screen: () => screen, exited };
}

export function kubectlPath(version: string): string {
  const p = `/usr/lib/google-cloud-sdk/bin/kubectl.${version}`;
  return existsSync(p) ? p : 'kubectl';
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** A kubectl of one version bound to a cluster, with its own fresh discovery cache. */
export async function kubectlFor(k: Kubicle, version: string): Promise<(args: string[], opts?: { input?: string; env?: Record<string, string>; timeoutMs?: number }) => Promise<Result>> {
  const cache = await mkdtemp(path.join(os.tmpdir(), `kubectl-cache-${version}-`));
  const exe = kubectlPath(version);
  return (args, opts = {}) =>
    new Promise((resolve) => {
      const child = execFile(
        exe,
        [`--cache-dir=${cache}`, ...args],
        { env: { ...process.env, KUBECONFIG: k.kubeconfig, ...opts.env }, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code as number) : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
      if (opts.input !== undefined) {
        child.stdin?.end(opts.input);
      }
    });
}

/** Polls `check` until it holds, or fails naming `what`. */
export async function eventually(check: () => Promise<boolean>, what: string | (() => string), ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    // A function says what was seen last, for a failure that can be understood from CI's output.
    if (Date.now() > deadline) throw new Error(`timed out: ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A kubectl that must succeed: resolves its stdout, fails the test with its stderr otherwise. */
export function mustSucceed(kc: Awaited<ReturnType<typeof kubectlFor>>, extra: string[] = []) {
  return async (args: string[], input?: string): Promise<string> => {
    const r = await kc([...args, ...extra], input === undefined ? undefined : { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
}
