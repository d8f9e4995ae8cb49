import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type { Logger } from '../../observe/log.js';

export interface RegistryServerOptions {
  dataDir: string;
  host?: string;
  port: number;
  /** htpasswd file (bcrypt) to require Basic auth; none by default on loopback. */
  htpasswd?: string;
  binary?: string;
}

/**
 * The embedded image registry: Debian's docker-registry (CNCF Distribution) as a child process
 * on a loopback address, storing under <dataDir>. `ready` resolves once /v2/ answers;
 * `run(signal)` ends when the signal aborts (the process is stopped) or the process dies.
 */
export class RegistryServer {
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(
    private readonly opts: RegistryServerOptions,
    private readonly log: Logger,
  ) {
    this.ready = new Promise((r) => {
      this.markReady = r;
    });
  }

  get address(): string {
    return `${this.opts.host ?? '127.0.0.1'}:${this.opts.port}`;
  }

  async run(signal: AbortSignal): Promise<void> {
    await mkdir(path.join(this.opts.dataDir, 'storage'), { recursive: true });
    const config = path.join(this.opts.dataDir, 'config.yml');
    const auth = this.opts.htpasswd ? `auth:\n  htpasswd:\n    realm: kubicle-registry\n    path: ${this.opts.htpasswd}\n` : '';
    await writeFile(
      config,
      `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(this.opts.dataDir, 'storage')}\n  delete:\n    enabled: true\nhttp:\n  addr: ${this.address}\n${auth}`,
    );
    const pidFile = path.join(this.opts.dataDir, 'registry.pid');
    await stopStale(pidFile);
    const child = spawn(this.opts.binary ?? 'docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'], signal, killSignal: 'SIGTERM' });
    if (child.pid) await writeFile(pidFile, String(child.pid));
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const exited = new Promise<void>((resolve, reject) => {
      child.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
      child.on('exit', (code) => (signal.aborted ? resolve() : reject(new Error(`docker-registry exited with ${code}: ${stderr.trim().split('\n').pop()}`))));
    });
    const probe = async () => {
      for (let i = 0; i < 200 && !signal.aborted && child.exitCode === null; i++) {
        if (await answers(this.address)) {
          this.log.info('registry ready', { address: this.address });
          this.markReady();
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await Promise.all([exited, probe()]);
  }
}

/**
 * A registry left running by a predecessor that was killed (SIGKILL leaves children behind)
 * holds the port and the storage: stop it before starting anew.
 */
async function stopStale(pidFile: string): Promise<void> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!(pid > 0)) return;
  const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmd.includes('docker-registry')) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 20));
  if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
}

function answers(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(`http://${address}/v2/`, (res) => {
      res.resume();
      resolve(res.statusCode === 200 || res.statusCode === 401);
    });
    req.on('error', () => resolve(false));
    req.setTimeout(1000, () => req.destroy());
  });
}
