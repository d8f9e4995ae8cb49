import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * Starts a real etcd (Debian's etcd-server, 3.4) on 127.0.0.1 with a temporary data directory,
 * for tests and benchmarks. Resolves once it answers on its client port.
 */
export interface EtcdProcess {
  endpoint: string;
  url: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * Turns on etcd's auth with a root user (as an operator does before sharing it); resolves the
 * root password. Every client must then authenticate.
 */
export async function enableAuth(etcd: EtcdProcess): Promise<string> {
  const { Etcd3, EtcdRoleExistsError } = await import('etcd3');
  const password = randomBytes(12).toString('hex');
  const client = new Etcd3({ hosts: [etcd.endpoint] });
  try {
    await client
      .role('root')
      .create()
      .catch((err) => {
        if (!(err instanceof EtcdRoleExistsError)) throw err;
      });
    await client.user('root').create(password);
    await client.user('root').addRole('root');
    await client.auth.authEnable({});
  } finally {
    client.close();
  }
  return password;
}

export async function startEtcd(): Promise<EtcdProcess> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-etcd-'));
  const client = await freePort();
  const peer = await freePort();
  const endpoint = `http://127.0.0.1:${client}`;
  const proc: ChildProcess = spawn(
    'etcd',
    [
      '--data-dir',
      dir,
      '--listen-client-urls',
      endpoint,
      '--advertise-client-urls',
      endpoint,
      '--listen-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-cluster',
      `default=http://127.0.0.1:${peer}`,
      '--quota-backend-bytes',
      String(2 * 1024 ** 3),
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === 'x64' ? '' : process.arch } },
  );
  let stderr = '';
  proc.stderr?.on('data', (d) => {
    stderr += d;
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`etcd exited: ${stderr}`);
    try {
      const res = await fetch(`${endpoint}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`etcd did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    url: `etcd://127.0.0.1:${client}`,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
