import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { KubicleError } from '../../../observe/errors.js';
import type { Logger } from '../../../observe/log.js';
import type { ContainerSpec, ContainerStatus, ExecSpec, FileSpec, LogOptions, SandboxSpec, SandboxStatus, Usage } from '../../api/types.js';
import type { Cgroups } from '../../cgroups.js';
import { etcFiles } from '../../etc-files.js';
import type { Image } from '../../images/image-store.js';
import { readLog, tailLog } from '../../log-reader.js';
import { PodNetwork } from '../../net/pod-network.js';
import type { PodNetworks } from '../../net/pod-networks.js';
import type { SandboxRuntime, StreamedProcess } from '../../runtime.js';
import { checkContainerName, type RunRecord, SandboxStore } from '../../sandbox-store.js';
import { fromChild } from '../../streamed-process.js';
import { resolveUser } from '../../user.js';
import { isMountPoint, SandboxVolumes } from '../../volumes.js';
import { attachToConmon } from './attach.js';
import { runcExec } from './exec.js';
import { ociSpec } from './oci-spec.js';

const run = promisify(execFile);

export interface RuncRuntimeOptions {
  /** Where sandboxes live on disk: <stateDir>/<sandbox>/… */
  stateDir: string;
  /** runc's own state root (`runc --root`). */
  runcRoot?: string;
  runc?: string;
  conmon?: string;
  /** A static busybox on the host, whose nc carries port-forward connections. */
  busybox?: string;
  networks: PodNetworks;
  cgroups: Cgroups;
  /** Largest log file per container run before conmon truncates it. */
  logSizeMax?: number;
}

interface SandboxRecord {
  spec: SandboxSpec;
  createdAt: string;
  ip?: string;
}

/**
 * Sandboxes as runc containers. Each container run is a runc container over an overlayfs root
 * (image layers below, a writable layer of its own above), watched by conmon — the monitor CRI-O
 * uses — which holds its stdio, writes its log in the Kubernetes log format with timestamps, and
 * records its exit code. conmon and the containers do not depend on this process, so an agent
 * that restarts finds everything on disk and carries on (see ADR 0005). Containers of a sandbox
 * share its network namespace and sit under its cgroup.
 */
export class RuncRuntime implements SandboxRuntime {
  readonly name = 'runc';
  private readonly runcRoot: string;
  private readonly runc: string;
  private readonly conmon: string;
  private readonly busybox: string;
  private readonly store: SandboxStore<SandboxRecord>;
  /**
   * The run directories of containers being started now. A status asked meanwhile (it does not
   * wait for the sandbox's lock) finds neither process nor monitor yet; that is a start under way,
   * not a run the host lost.
   */
  private readonly starting = new Set<string>();

  constructor(
    private readonly opts: RuncRuntimeOptions,
    private readonly log: Logger,
  ) {
    this.store = new SandboxStore(opts.stateDir);
    this.runcRoot = opts.runcRoot ?? '/run/kubicle/runc';
    // conmon execs the runtime by path, not through PATH.
    this.runc = opts.runc ?? lookPath('runc');
    this.conmon = opts.conmon ?? lookPath('conmon');
    this.busybox = opts.busybox ?? '/bin/busybox';
  }




  createSandbox(spec: SandboxSpec): Promise<SandboxStatus> {
    return this.store.serial(spec.id, async () => {
      const dir = this.store.dir(spec.id);
      if (existsSync(path.join(dir, 'sandbox.json'))) return this.status(spec.id);
      if (!spec.hostname || spec.hostname.length > 63) throw new KubicleError('Invalid', 'hostname must be 1 to 63 characters');
      const started = Date.now();
      await mkdir(path.join(dir, 'etc'), { recursive: true, mode: 0o711 });
      try {
        const volumes = new SandboxVolumes(path.join(dir, 'volumes'));
        for (const v of spec.volumes ?? []) await volumes.create(v);
        await this.opts.cgroups.createSandbox(spec.id, spec.resources);
        let ip: string | undefined;
        if (spec.network === 'none') await this.opts.networks.host.attachIsolated(spec.id);
        else if (spec.network !== 'host') ip = await this.opts.networks.of(spec.podNetwork).attach(spec.id);
        await this.writeEtc(dir, spec, ip);
        await this.store.save(spec.id, { spec, createdAt: new Date().toISOString(), ip });
        this.log.info('sandbox created', { sandbox: spec.id, ip, ms: Date.now() - started });
      } catch (err) {
        await this.teardown(spec.id, spec).catch(() => {});
        throw err;
      }
      return this.status(spec.id);
    });
  }

  private async writeEtc(dir: string, spec: SandboxSpec, ip?: string): Promise<void> {
    for (const [name, text] of Object.entries(etcFiles(spec, ip))) await writeFile(path.join(dir, 'etc', name), text, { mode: 0o644 });
  }

  startContainer(sandboxId: string, spec: ContainerSpec, image: Image): Promise<ContainerStatus> {
    return this.store.serial(sandboxId, async () => {
      checkContainerName(spec.name);
      const sb = await this.store.record(sandboxId);
      const dir = this.store.dir(sandboxId);
      const attempts = await this.store.attempts(sandboxId, spec.name);
      const last = attempts.at(-1);
      if (last !== undefined) {
        const st = await this.runStatus(sandboxId, spec.name, last);
        if (st.state === 'running' || st.state === 'created') throw new KubicleError('Conflict', `container ${spec.name} is still running`);
      }
      // Keep the run before this one for `logs --previous`; older runs go.
      for (const old of attempts.slice(0, -1)) await this.removeRun(sandboxId, spec.name, old);
      if (last !== undefined) await this.releaseRun(sandboxId, spec.name, last);
      const attempt = last === undefined ? 0 : last + 1;
      const runDir = path.join(dir, 'containers', spec.name, String(attempt));
      const id = `${sandboxId}_${spec.name}_${attempt}`;
      const rec: RunRecord = { name: spec.name, attempt, id, image: spec.image, imageId: image.id, createdAt: new Date().toISOString(), stdin: !!spec.stdin };
      for (const d of ['rootfs', 'upper', 'work', 'exits', 'persist', 'sock']) await mkdir(path.join(runDir, d), { recursive: true });
      this.starting.add(runDir);
      try {
        await this.startRun(sandboxId, sb, dir, runDir, rec, spec, image);
      } finally {
        this.starting.delete(runDir);
      }
      return this.runStatus(sandboxId, spec.name, attempt);
    });
  }

  /** startContainer's work once the run has its directory: its rootfs, config, monitor and start. */
  private async startRun(sandboxId: string, sb: SandboxRecord, dir: string, runDir: string, rec: RunRecord, spec: ContainerSpec, image: Image): Promise<void> {
    const id = rec.id;
    await this.store.saveRun(runDir, rec);
    try {
      const lower = [...image.layerDirs].reverse().join(':');
      await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${path.join(runDir, 'upper')},workdir=${path.join(runDir, 'work')}`, path.join(runDir, 'rootfs')]);
      const volumes = new SandboxVolumes(path.join(dir, 'volumes'));
      const mounts = [];
      for (const m of spec.mounts ?? []) mounts.push({ source: await volumes.source(sb.spec.volumes ?? [], m), destination: m.containerPath, readOnly: !!m.readOnly });
      const user = await resolveUser(path.join(runDir, 'rootfs'), image.config.User, spec.user);
      const config = ociSpec({
        container: spec,
        image: image.config,
        hostname: sb.spec.hostname,
        rootfs: path.join(runDir, 'rootfs'),
        cgroupsPath: this.opts.cgroups.containerPath(sandboxId, id),
        netns: sb.spec.network === 'host' ? undefined : PodNetwork.namespacePath(sandboxId),
        etc: { hosts: path.join(dir, 'etc/hosts'), resolvConf: path.join(dir, 'etc/resolv.conf'), hostname: path.join(dir, 'etc/hostname') },
        mounts,
        user,
      });
      await writeFile(path.join(runDir, 'config.json'), JSON.stringify(config));
    } catch (err) {
      if (!(err instanceof KubicleError) || err.code !== 'Invalid') throw err;
      return this.failRun(sandboxId, runDir, rec, err.message);
    }
    try {
      await this.spawnMonitor(runDir, id, spec);
      await run(this.runc, ['--root', this.runcRoot, 'start', id]);
    } catch (err) {
      return this.failRun(sandboxId, runDir, rec, cleanRuntimeMessage((err as Error).message));
    }
    rec.startedAt = new Date().toISOString();
    await this.store.saveRun(runDir, rec);
    this.log.info('container started', { sandbox: sandboxId, container: spec.name, attempt: rec.attempt });
  }

  /** Records a run that could not start (StartError, exit code 128 as containerd reports it). */
  private async failRun(sandboxId: string, runDir: string, rec: RunRecord, message: string): Promise<void> {
    await run(this.runc, ['--root', this.runcRoot, 'delete', '--force', rec.id]).catch(() => {});
    const rootfs = path.join(runDir, 'rootfs');
    if (await isMountPoint(rootfs)) await run('umount', ['-l', rootfs]).catch(() => {});
    const now = new Date().toISOString();
    rec.startedAt ??= now;
    rec.final = { exitCode: 128, finishedAt: now, reason: 'StartError', message };
    await this.store.saveRun(runDir, rec);
    this.log.info('container failed to start', { sandbox: sandboxId, container: rec.name, message });
  }

  /** Starts conmon, which runs `runc create` and stays as the container's monitor; resolves once the container exists. */
  private spawnMonitor(runDir: string, id: string, spec: ContainerSpec): Promise<void> {
    const args = [
      '--api-version',
      '1',
      '-b',
      runDir,
      '-c',
      id,
      '-n',
      id,
      '-u',
      id,
      '-r',
      this.runc,
      '--runtime-arg',
      `--root=${this.runcRoot}`,
      '-p',
      path.join(runDir, 'pid'),
      '-P',
      path.join(runDir, 'conmon.pid'),
      '-l',
      `k8s-file:${path.join(runDir, 'log')}`,
      '--log-size-max',
      String(this.opts.logSizeMax ?? 16 << 20),
      '--exit-dir',
      path.join(runDir, 'exits'),
      '--persist-dir',
      path.join(runDir, 'persist'),
      '--socket-dir-path',
      path.join(runDir, 'sock'),
      '--full-attach',
      '--log-level',
      'error',
      ...(spec.stdin ? ['-i'] : []),
      // Kubernetes' stdinOnce: false keeps the input open after the first attach ends.
      ...(spec.stdin && !spec.stdinOnce ? ['--leave-stdin-open'] : []),
      ...(spec.tty ? ['-t'] : []),
    ];
    return new Promise((resolve, reject) => {
      const child = spawn(this.conmon, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], env: { ...process.env, _OCI_SYNCPIPE: '3' }, detached: true });
      let err = '';
      let sync = '';
      child.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
      });
      const pipe = child.stdio[3] as Readable;
      pipe.on('data', (d: Buffer) => {
        sync += d.toString();
      });
      let settled = false;
      const finish = () => {
        if (settled) return;
        const m = /\{[^}]*"data"\s*:\s*(-?\d+)[^}]*\}/.exec(sync);
        if (!m) return;
        settled = true;
        const msg = JSON.parse(m[0]) as { data: number; message?: string };
        if (msg.data > 0) resolve();
        else reject(new Error(msg.message ?? 'container create failed'));
      };
      pipe.on('data', finish);
      child.on('error', (e) => {
        settled = true;
        reject(e);
      });
      // conmon's first process exits at once; the monitor it forks writes the sync message, and
      // the pipe closes only when both are done with it.
      pipe.on('close', () => {
        finish();
        if (!settled) {
          settled = true;
          reject(new Error(`conmon: ${err.replace(/\[conmon:d\][^\n]*\n?/g, '').trim() || sync.trim() || 'no sync message'}`));
        }
      });
    });
  }



  /** The state of one run, finalizing it (exit code, OOM) the first time it is seen over. */
  private async runStatus(sandboxId: string, name: string, attempt: number): Promise<ContainerStatus> {
    const runDir = this.store.runDir(sandboxId, name, attempt);
    const rec = await this.store.run(sandboxId, name, attempt);
    const base: ContainerStatus = { name, id: rec.id, attempt, image: rec.image, imageId: rec.imageId, state: 'created', createdAt: rec.createdAt, startedAt: rec.startedAt };
    if (rec.final) return { ...base, state: 'exited', exitCode: rec.final.exitCode, finishedAt: rec.final.finishedAt, reason: rec.final.reason, message: rec.final.message };
    const exitFile = path.join(runDir, 'exits', rec.id);
    // conmon writes the file in place: until it holds a number, the exit is not recorded yet.
    const readExit = async () => {
      const text = await readFile(exitFile, 'utf8').catch(() => undefined);
      const code = Number.parseInt(text?.trim() ?? '', 10);
      return Number.isFinite(code) ? code : undefined;
    };
    let code = await readExit();
    const pid = Number((await readFile(path.join(runDir, 'pid'), 'utf8').catch(() => '0')).trim());
    if (code === undefined) {
      if (pid > 0 && existsSync(`/proc/${pid}`)) return { ...base, state: rec.startedAt ? 'running' : 'created', pid };
      if (await this.monitorAlive(runDir)) return { ...base, state: rec.startedAt ? 'running' : 'created', pid };
      if (this.starting.has(runDir)) return base;
      // Both gone: conmon may have recorded the exit between our first look and its own exit.
      code = await readExit();
    }
    if (code === undefined) {
      // Neither the process nor its monitor is there and no exit was recorded: the host lost it (reboot, kill -9 of conmon).
      rec.final = { exitCode: 255, finishedAt: new Date().toISOString(), reason: 'Error', message: 'the container and its monitor are gone; its exit status was lost' };
    } else {
      const finishedAt = (await stat(exitFile)).mtime.toISOString();
      const oom = existsSync(path.join(runDir, 'persist', 'oom')) || existsSync(path.join(runDir, 'oom')) || (await this.opts.cgroups.oomKills(sandboxId, rec.id)) > 0;
      rec.final = { exitCode: code, finishedAt, reason: oom ? 'OOMKilled' : code === 0 ? 'Completed' : 'Error' };
    }
    await this.store.saveRun(runDir, rec);
    return { ...base, state: 'exited', exitCode: rec.final.exitCode, finishedAt: rec.final.finishedAt, reason: rec.final.reason, message: rec.final.message };
  }

  /** Whether a run's conmon still runs. */
  private async monitorAlive(runDir: string): Promise<boolean> {
    const monitor = Number((await readFile(path.join(runDir, 'conmon.pid'), 'utf8').catch(() => '0')).trim());
    return monitor > 0 && existsSync(`/proc/${monitor}`);
  }

  async status(sandboxId: string): Promise<SandboxStatus> {
    const sb = await this.store.record(sandboxId);
    const containers: ContainerStatus[] = [];
    const names = await this.store.containerNames(sandboxId);
    for (const name of names.sort()) {
      const attempts = await this.store.attempts(sandboxId, name);
      const last = attempts.at(-1);
      if (last !== undefined) containers.push(await this.runStatus(sandboxId, name, last).catch(() => undefined as never));
    }
    return { id: sandboxId, state: 'ready', labels: sb.spec.labels ?? {}, createdAt: sb.createdAt, ip: sb.ip, containers: containers.filter(Boolean) };
  }

  list(labels?: Record<string, string>): Promise<SandboxStatus[]> {
    return this.store.each((id) => this.status(id), labels);
  }

  stopContainer(sandboxId: string, name: string, graceSeconds: number): Promise<void> {
    return this.store.serial(sandboxId, async () => {
      const last = (await this.store.attempts(sandboxId, name)).at(-1);
      if (last === undefined) throw new KubicleError('NotFound', `container ${name} not found in sandbox ${sandboxId}`);
      await this.stopRun(sandboxId, name, last, graceSeconds);
    });
  }

  private async stopRun(sandboxId: string, name: string, attempt: number, graceSeconds: number): Promise<void> {
    let st = await this.runStatus(sandboxId, name, attempt);
    if (st.state === 'exited') return;
    // As upstream runtimes do, TERM goes to the container's init only (which, as PID 1, gets it
    // only if it handles it); after the grace period KILL takes every process.
    const kill = (sig: string) => run(this.runc, ['--root', this.runcRoot, 'kill', ...(sig === 'KILL' ? ['--all'] : []), st.id, sig]).catch(() => {});
    await kill('TERM');
    const deadline = Date.now() + Math.max(0, graceSeconds) * 1000;
    while (Date.now() < deadline) {
      st = await this.runStatus(sandboxId, name, attempt);
      if (st.state === 'exited') return;
      await sleep(50);
    }
    await kill('KILL');
    for (let i = 0; i < 200; i++) {
      st = await this.runStatus(sandboxId, name, attempt);
      if (st.state === 'exited') return;
      await sleep(50);
    }
    throw new KubicleError('Internal', `container ${name} did not stop after SIGKILL`);
  }

  /** Deletes a finished run's runc container and rootfs mount, keeping its log and record. */
  private async releaseRun(sandboxId: string, name: string, attempt: number): Promise<void> {
    const runDir = this.store.runDir(sandboxId, name, attempt);
    const rec = await this.store.run(sandboxId, name, attempt).catch(() => undefined);
    if (rec) {
      await this.runStatus(sandboxId, name, attempt).catch(() => {});
      await run(this.runc, ['--root', this.runcRoot, 'delete', '--force', rec.id]).catch(() => {});
    }
    const rootfs = path.join(runDir, 'rootfs');
    if (await isMountPoint(rootfs)) await run('umount', ['-l', rootfs]).catch(() => {});
  }

  private async removeRun(sandboxId: string, name: string, attempt: number): Promise<void> {
    await this.releaseRun(sandboxId, name, attempt);
    await this.store.removeRun(sandboxId, name, attempt);
  }

  removeSandbox(sandboxId: string, graceSeconds: number): Promise<void> {
    return this.store.serial(sandboxId, async () => {
      const rec = await this.store.record(sandboxId).catch(() => undefined);
      const names = await this.store.containerNames(sandboxId);
      await Promise.all(
        names.map(async (name) => {
          for (const a of await this.store.attempts(sandboxId, name)) {
            await this.stopRun(sandboxId, name, a, graceSeconds).catch((err) => this.log.warn('stop failed', { sandbox: sandboxId, container: name, err }));
            await this.releaseRun(sandboxId, name, a);
          }
        }),
      );
      await this.teardown(sandboxId, rec?.spec);
      this.log.info('sandbox removed', { sandbox: sandboxId });
    });
  }

  private async teardown(sandboxId: string, spec?: SandboxSpec): Promise<void> {
    const dir = this.store.dir(sandboxId);
    await new SandboxVolumes(path.join(dir, 'volumes')).teardown(spec?.volumes ?? []);
    await this.opts.networks.detach(sandboxId);
    await this.opts.cgroups.removeSandbox(sandboxId);
    // Whatever is still mounted under the sandbox (a run that was never released) must go before
    // the directory does, or rm stops half way on EBUSY with sandbox.json already deleted.
    const left = await mountsUnder(`${dir}/`);
    if (left.length) this.log.warn('sandbox mounts left at removal', { sandbox: sandboxId, mounts: left });
    for (const m of left) await run('umount', ['-l', m]).catch(() => {});
    await this.store.remove(sandboxId);
  }

  async updateFiles(sandboxId: string, volume: string, files: FileSpec[]): Promise<void> {
    const sb = await this.store.record(sandboxId);
    const v = sb.spec.volumes?.find((x) => x.name === volume);
    if (v?.type !== 'files') throw new KubicleError('NotFound', `sandbox ${sandboxId} has no files volume ${volume}`);
    await new SandboxVolumes(path.join(this.store.dir(sandboxId), 'volumes')).writeFiles(volume, files);
  }

  async logs(sandboxId: string, name: string, opts: LogOptions, signal: AbortSignal): Promise<Readable> {
    const attempts = await this.store.attempts(sandboxId, name);
    if (!attempts.length) throw new KubicleError('NotFound', `container ${name} not found in sandbox ${sandboxId}`);
    const attempt = opts.previous ? attempts.at(-2) : attempts.at(-1);
    if (attempt === undefined) throw new KubicleError('BadRequest', `previous terminated container "${name}" not found`);
    const runDir = this.store.runDir(sandboxId, name, attempt);
    return readLog(path.join(runDir, 'log'), { ...opts, follow: !!opts.follow && !opts.previous }, () => this.logComplete(sandboxId, name, attempt), signal);
  }

  /**
   * Whether a run's log has all it will ever have. conmon records the exit as soon as the process
   * is reaped and drains its output after: the log is complete only once conmon itself is gone.
   */
  private async logComplete(sandboxId: string, name: string, attempt: number): Promise<boolean> {
    return (await this.runStatus(sandboxId, name, attempt)).state === 'exited' && !(await this.monitorAlive(this.store.runDir(sandboxId, name, attempt)));
  }

  /** The runc id of a container's current run, which must be running. */
  private async runningId(sandboxId: string, name: string): Promise<string> {
    return (await this.runningRun(sandboxId, name)).id;
  }

  private async runningRun(sandboxId: string, name: string): Promise<{ id: string; runDir: string }> {
    const last = (await this.store.attempts(sandboxId, name)).at(-1);
    if (last === undefined) throw new KubicleError('NotFound', `container ${name} not found in sandbox ${sandboxId}`);
    const st = await this.runStatus(sandboxId, name, last);
    if (st.state !== 'running') throw new KubicleError('Conflict', `container ${name} is not running`);
    return { id: st.id, runDir: this.store.runDir(sandboxId, name, last) };
  }

  async execStream(sandboxId: string, name: string, spec: ExecSpec): Promise<StreamedProcess> {
    if (!spec.command?.length) throw new KubicleError('Invalid', 'command is required');
    const { id, runDir } = await this.runningRun(sandboxId, name);
    if (spec.tty) {
      // In the foreground, runc makes the container's terminal itself and copies it to and from
      // its own stdio, which is a pty we own: so no console socket (whose fd passing Node cannot
      // receive), and a resize of our pty reaches the container's through runc's SIGWINCH
      // handler. runc sizes that terminal from its stdin only after the process has started, so
      // the process spec carries the size too (consoleSize): a first `stty size` sees it.
      const size = spec.size ?? { cols: 80, rows: 24 };
      const config = JSON.parse(await readFile(path.join(runDir, 'config.json'), 'utf8'));
      const env = [...(config.process.env as string[]).filter((e) => !e.startsWith('TERM=')), 'TERM=xterm'];
      const processFile = path.join(runDir, `exec-${randomUUID()}.json`);
      await writeFile(processFile, JSON.stringify({ ...config.process, args: spec.command, env, terminal: true, consoleSize: { width: size.cols, height: size.rows } }));
      return runcExec({ runc: this.runc, root: this.runcRoot, runDir, id, command: spec.command, stdin: true, tty: { processFile, ...size } });
    }
    return runcExec({ runc: this.runc, root: this.runcRoot, runDir, id, command: spec.command, stdin: !!spec.stdin });
  }

  async attach(sandboxId: string, name: string, stdin: boolean): Promise<StreamedProcess> {
    await this.runningId(sandboxId, name);
    const attempt = (await this.store.attempts(sandboxId, name)).at(-1) as number;
    const runDir = this.store.runDir(sandboxId, name, attempt);
    const rec = JSON.parse(await readFile(path.join(runDir, 'run.json'), 'utf8')) as RunRecord;
    if (stdin && !rec.stdin) throw new KubicleError('BadRequest', `container ${name} was not started with stdin open (stdin: true); its input cannot be attached`);
    const abort = new AbortController();
    const output = await tailLog(path.join(runDir, 'log'), () => this.logComplete(sandboxId, name, attempt), abort.signal);
    return attachToConmon({
      runDir,
      output,
      stopOutput: () => abort.abort(),
      stdin,
      exitCode: async () => (await this.runStatus(sandboxId, name, attempt)).exitCode ?? 0,
    });
  }

  async portForward(sandboxId: string, port: number): Promise<StreamedProcess> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new KubicleError('Invalid', `invalid port ${port}`);
    await this.store.record(sandboxId);
    // One helper per connection inside the sandbox's namespace, so ports bound to its loopback
    // are reachable too; busybox's nc half-closes when its input ends.
    const child = spawn('ip', ['netns', 'exec', PodNetwork.namespaceOf(sandboxId), this.busybox, 'nc', '127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
    return fromChild(child, { stderr: false, failure: (_code, err) => err.replace(/^nc: /, '') || 'the connection failed' });
  }

  async exec(sandboxId: string, name: string, command: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    const id = await this.runningId(sandboxId, name);
    return new Promise((resolve) => {
      const child = spawn(this.runc, ['--root', this.runcRoot, 'exec', id, ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      const take = (d: Buffer) => {
        if (output.length < 64 << 10) output += d.toString();
      };
      child.stdout.on('data', take);
      child.stderr.on('data', take);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('exit', (code, sig) => {
        clearTimeout(timer);
        resolve({ exitCode: code ?? (sig ? 137 : 255), output: sig === 'SIGKILL' && code === null ? `${output}command timed out` : output });
      });
      child.on('error', (err) => {
        clearTimeout(timer);
        resolve({ exitCode: 255, output: err.message });
      });
    });
  }

  async usage(sandboxId: string, name?: string): Promise<Usage> {
    await this.store.record(sandboxId);
    if (!name) return this.opts.cgroups.usage(sandboxId);
    const last = (await this.store.attempts(sandboxId, name)).at(-1);
    if (last === undefined) throw new KubicleError('NotFound', `container ${name} not found in sandbox ${sandboxId}`);
    const rec = await this.store.run(sandboxId, name, last);
    return this.opts.cgroups.usage(sandboxId, rec.id);
  }

  async leftovers(sandboxId: string): Promise<string[]> {
    const found: string[] = [];
    if (existsSync(this.store.dir(sandboxId))) found.push(`directory ${this.store.dir(sandboxId)}`);
    found.push(...this.opts.cgroups.leftovers(sandboxId).map((d) => `cgroup ${d}`));
    if (existsSync(PodNetwork.namespacePath(sandboxId))) found.push(`netns ${PodNetwork.namespacePath(sandboxId)}`);
    for (const m of await mountsUnder(`${this.store.dir(sandboxId)}/`)) found.push(`mount ${m}`);
    const { stdout } = await run(this.runc, ['--root', this.runcRoot, 'list', '-q']).catch(() => ({ stdout: '' }));
    for (const id of stdout.split('\n')) if (id.startsWith(`${sandboxId}_`)) found.push(`runc container ${id}`);
    return found;
  }
}

/** runc's errors arrive wrapped in conmon's and logrus's framing, quotes escaped; keep the part a user can act on. */
function cleanRuntimeMessage(msg: string): string {
  const text = msg.replace(/\\"/g, '"');
  const m = /(runc (?:create|start) failed: .*?)(?:"?\s*$|: unknown)/m.exec(text) ?? /msg="([^"]+)"/.exec(text);
  return (m ? m[1] : text).trim().slice(0, 1000);
}

/** Mount points below a directory, deepest first. */
async function mountsUnder(prefix: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((m) => m?.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

/** The absolute path of a program on PATH (or the name itself when not found, to fail later with ENOENT). */
function lookPath(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin'])) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return name;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
