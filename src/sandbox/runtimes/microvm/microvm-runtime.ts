import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubicleError } from '../../../observe/errors.js';
import type { Logger } from '../../../observe/log.js';
import type { ContainerSpec, ContainerStatus, ExecSpec, FileSpec, LogOptions, SandboxSpec, SandboxStatus, Usage } from '../../api/types.js';
import type { Cgroups } from '../../cgroups.js';
import { etcFiles } from '../../etc-files.js';
import type { Image } from '../../images/image-store.js';
import { readLog, tailLog } from '../../log-reader.js';
import { LogWriter } from '../../log-writer.js';
import { PodNetwork } from '../../net/pod-network.js';
import type { PodNetworks } from '../../net/pod-networks.js';
import { resolveArgv, resolveEnv } from '../../process-spec.js';
import type { SandboxRuntime, StreamedProcess } from '../../runtime.js';
import { checkContainerName, type RunRecord, SandboxStore } from '../../sandbox-store.js';
import { resolveUser } from '../../user.js';
import { SandboxVolumes } from '../../volumes.js';
import { GuestChannel, type GuestCommand, type GuestProcess, type StreamOffsets } from './guest-channel.js';
import { containerCgroup, makeDirVolume, mountContainer, prepareSandbox, releaseContainer, replaceFilesVolume } from './guest-scripts.js';
import { type Accel, type GuestImage, hostTscKhz, isQemu, killQemu, probeAccel, sparseFiles, startVm, type VmSpec } from './qemu.js';
import { VmTemplates } from './vm-templates.js';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../..');

export interface MicrovmRuntimeOptions {
  /** Where sandboxes live on disk: <stateDir>/<sandbox>/… */
  stateDir: string;
  networks: PodNetworks;
  cgroups: Cgroups;
  /** Kernel and initramfs; build/guest/ (scripts/build-guest.sh) by default. */
  guest?: GuestImage;
  /** Skips the probe (tests that know the machine). */
  accel?: Accel;
  /** Guest memory when the sandbox sets no limit. */
  defaultMemoryMiB?: number;
  /** Containers a sandbox can hold over its life (one disk each; microvm has no hot-plug). */
  containerSlots?: number;
  /** Size of each container disk and of the scratch disk (sparse files). */
  diskBytes?: number;
  bootTimeoutMs?: number;
  /**
   * Saved guests to resume instead of booting (ADR 0010), kept here; default <stateDir>-templates.
   * `false` boots every guest.
   */
  templateDir?: string | false;
}

/** The end of a run nobody saw end: its guest or its stream is gone (runc says the same of a lost monitor). */
const lostRun = () => ({ exitCode: 255, finishedAt: new Date().toISOString(), reason: 'Error', message: 'the microvm agent lost this run; its exit status is unknown' });

/** How a container's run was started in its guest (guest.json beside run.json), for re-adoption. */
interface GuestRun {
  stream: number;
  as: GuestCommand;
  stdin: boolean;
  tty: boolean;
}

interface SandboxRecord {
  spec: SandboxSpec;
  createdAt: string;
  ip?: string;
  accel: Accel;
  pid: number;
  /** Container name -> disk slot. */
  slots: Record<string, number>;
}

/**
 * Sandboxes as QEMU `-M microvm` guests (ADR 0009): one VM per sandbox, its containers processes
 * in it, each in a chroot over its own disk — an ext4 image made with `mkfs.ext4 -d` from the
 * image's layers, writable, fresh for every run. The guest agent (guest/agent.c) runs them and
 * carries their streams over a virtio-serial port; their output is written here in the
 * Kubernetes log format, so logs read the same as runc's. The guest's network is a tap on the pod
 * bridge with a leased address, so Services, DNS and policies see a microvm pod like any other.
 * QEMU daemonises, so VMs outlive this process.
 */
export class MicrovmRuntime implements SandboxRuntime {
  readonly name = 'microvm';
  private readonly guest: GuestImage;
  private accel?: Promise<{ accel: Accel; reason: string }>;
  private readonly channels = new Map<string, Promise<GuestChannel>>();
  /** Running containers: the main process, and how it was started, which execs in it inherit. */
  private readonly procs = new Map<string, { proc: GuestProcess; done: Promise<void>; as: GuestCommand }>();
  private readonly store: SandboxStore<SandboxRecord>;
  private readonly templates?: VmTemplates;
  /** Sandboxes whose guest is starting: their agent's one host connection is taken. */
  private readonly creating = new Set<string>();
  /** Read once: a template's key includes it, and some hosts report a wandering rate. */
  private tscKhz?: Promise<number | undefined>;

  constructor(
    private readonly opts: MicrovmRuntimeOptions,
    private readonly log: Logger,
  ) {
    this.store = new SandboxStore(opts.stateDir);
    this.guest = opts.guest ?? { kernel: path.join(repoRoot, 'build/guest/vmlinux'), initramfs: path.join(repoRoot, 'build/guest/initramfs.cpio.gz') };
    if (opts.accel) this.accel = Promise.resolve({ accel: opts.accel, reason: 'configured' });
    if (opts.templateDir !== false) this.templates = new VmTemplates(opts.templateDir ?? `${opts.stateDir}-templates`, log, undefined, opts.bootTimeoutMs);
  }

  /** Which accelerator guests use on this machine, probed once. */
  acceleration(): Promise<{ accel: Accel; reason: string }> {
    this.accel ??= probeAccel(this.guest).then((r) => {
      this.log.info('microvm acceleration', r);
      return r;
    });
    return this.accel;
  }

  /**
   * The agent channel of a running VM, opened again on first use after this process restarted;
   * the containers an earlier process started are adopted before anyone else can use it.
   */
  private channel(id: string, timeoutMs = 5000): Promise<GuestChannel> {
    let ch = this.channels.get(id);
    if (!ch) {
      ch = GuestChannel.open(path.join(this.store.dir(id), 'agent.sock'), timeoutMs).then(async (c) => {
        try {
          await this.adoptRuns(id, c);
        } catch (err) {
          c.close();
          throw err;
        }
        return c;
      });
      this.channels.set(id, ch);
      ch.catch(() => this.channels.delete(id));
    }
    return ch.then((c) => {
      if (c.alive) return c;
      this.channels.delete(id);
      return this.channel(id, timeoutMs);
    });
  }

  createSandbox(spec: SandboxSpec): Promise<SandboxStatus> {
    return this.store.serial(spec.id, async () => {
      const dir = this.store.dir(spec.id);
      if (existsSync(path.join(dir, 'sandbox.json'))) return this.status(spec.id);
      if (!spec.hostname || spec.hostname.length > 63) throw new KubicleError('Invalid', 'hostname must be 1 to 63 characters');
      if (spec.network === 'host') throw new KubicleError('Invalid', 'a microvm sandbox has its own kernel and cannot share the host network');
      if (spec.network === 'none') throw new KubicleError('Invalid', 'network "none" is not supported by microvm sandboxes (use runc)');
      const host = spec.volumes?.find((v) => v.type === 'host');
      if (host) throw new KubicleError('Invalid', `volume ${host.name}: host paths cannot be mounted into a microvm`);
      const started = Date.now();
      await mkdir(path.join(dir, 'disks'), { recursive: true, mode: 0o700 });
      this.creating.add(spec.id);
      try {
        const { accel } = await this.acceleration();
        const slots = this.opts.containerSlots ?? 8;
        const size = this.opts.diskBytes ?? 2 * 2 ** 30;
        const disks = [{ serial: 'scratch', file: path.join(dir, 'disks/scratch.img') }];
        for (let i = 0; i < slots; i++) disks.push({ serial: `c${i}`, file: path.join(dir, `disks/c${i}.img`) });
        await sparseFiles(disks.map((d) => d.file), size);
        await run('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', disks[0].file]);
        await this.opts.cgroups.createSandbox(spec.id, spec.resources);
        const net = await this.opts.networks.of(spec.podNetwork).attachTap(spec.id);
        const memoryMiB = spec.resources?.memoryBytes ? Math.max(128, Math.floor(spec.resources.memoryBytes / 2 ** 20)) : (this.opts.defaultMemoryMiB ?? 256);
        const cpus = Math.max(1, Math.ceil((spec.resources?.cpuMillis ?? 1000) / 1000));
        const mac = `52:54:00:${createHash('sha1').update(spec.id).digest('hex').slice(0, 6).match(/../g)?.join(':')}`;
        this.tscKhz ??= hostTscKhz();
        const vm: VmSpec = {
          guest: this.guest,
          accel,
          memoryMiB,
          cpus,
          // Freed guest pages zeroed: a template's saved file and its resumed guests stay small
          // (ADR 0010). A booted guest would keep every page it ever touched resident instead.
          append: this.templates ? 'init_on_free=1' : '',
          tscKhz: await this.tscKhz,
          agentSocket: path.join(dir, 'agent.sock'),
          consoleLog: path.join(dir, 'console.log'),
          pidFile: path.join(dir, 'qemu.pid'),
          disks,
          net: { tap: net.tap },
        };
        const rec: SandboxRecord = { spec, createdAt: new Date().toISOString(), ip: net.ip, accel, pid: 0, slots: {} };
        const { ch, from } = await this.startGuest(spec.id, vm, rec, size);
        const booted = Date.now() - started;
        ch.seed();
        const etc = Object.entries(etcFiles(spec, net.ip)).flat();
        await this.guestRun(ch, prepareSandbox, ['scratch', spec.hostname, mac, `${net.ip}/${net.prefix}`, net.gateway, ...etc]);
        const volumes = new SandboxVolumes(path.join(dir, 'volumes'));
        for (const v of spec.volumes ?? []) {
          if (v.type === 'dir') await this.guestRun(ch, makeDirVolume, [v.name, v.medium ?? 'disk', String(v.sizeLimitBytes ?? 0)]);
          if (v.type === 'files') {
            await volumes.create(v);
            await this.syncFiles(ch, dir, v.name);
          }
        }
        this.log.info('sandbox created', { sandbox: spec.id, ip: net.ip, accel, guest: from, bootMs: booted, ms: Date.now() - started });
      } catch (err) {
        await this.teardown(spec.id).catch(() => {});
        throw err;
      } finally {
        this.creating.delete(spec.id);
      }
      return this.status(spec.id);
    });
  }

  /**
   * Starts a sandbox's guest and waits for its agent: resumed from the template of its shape
   * (about 0.2 s under TCG here, against 3 s or more for a boot), or booted when templates are
   * off or this shape's cannot be had. A template that does not resume is dropped and the guest
   * boots, so a bad template costs one sandbox some seconds, never its creation.
   */
  private async startGuest(id: string, vm: VmSpec, rec: SandboxRecord, diskBytes: number): Promise<{ ch: GuestChannel; from: 'template' | 'boot' }> {
    const bootTimeout = this.opts.bootTimeoutMs ?? 60_000;
    const start = async (incoming: string | undefined, timeoutMs: number) => {
      rec.pid = await startVm({ ...vm, incoming });
      await this.opts.cgroups.addProcess(id, rec.pid);
      await this.store.save(id, rec);
      return this.answer(id, rec.pid, vm.consoleLog, timeoutMs);
    };
    const template = await this.templates
      ?.template({ guest: vm.guest, accel: vm.accel, memoryMiB: vm.memoryMiB, cpus: vm.cpus, append: vm.append, tscKhz: vm.tscKhz, diskSerials: vm.disks.map((d) => d.serial), diskBytes, net: true })
      .catch((err: Error) => {
        this.log.warn('no microvm template; booting', { sandbox: id, error: err.message });
        return undefined;
      });
    if (template) {
      try {
        return { ch: await start(template, Math.min(15_000, bootTimeout)), from: 'template' };
      } catch (err) {
        this.log.warn('microvm template did not resume; dropping it and booting', { sandbox: id, template, error: (err as Error).message });
        await this.templates?.forget(template);
        await killQemu(rec.pid);
      }
    }
    return { ch: await start(undefined, bootTimeout), from: 'boot' };
  }

  /** A new guest's agent channel once it answers; fails at once if its QEMU exits first, with the console's end. */
  private async answer(id: string, pid: number, consoleLog: string, timeoutMs: number): Promise<GuestChannel> {
    const ac = new AbortController();
    const watch = setInterval(() => void isQemu(pid).then((alive) => alive || ac.abort(new Error('QEMU exited'))), 100);
    try {
      const ch = await GuestChannel.open(path.join(this.store.dir(id), 'agent.sock'), timeoutMs, ac.signal);
      this.channels.set(id, Promise.resolve(ch));
      return ch;
    } catch (err) {
      const tail = (await readFile(consoleLog, 'utf8').catch(() => '')).trim().slice(-400);
      throw new KubicleError('Unavailable', `${(err as Error).message}${tail ? `; console: ${tail}` : ''}`);
    } finally {
      clearInterval(watch);
    }
  }

  /** Runs one of guest-scripts.ts's scripts with its arguments; Internal with its output when it fails. */
  private async guestRun(ch: GuestChannel, script: string, args: string[], input?: Buffer): Promise<void> {
    const r = await ch.run({ argv: ['/bin/sh', '-c', script, 'kubicle', ...args] }, input);
    if (r.exitCode !== 0) throw new KubicleError('Internal', `in the microvm: ${r.output.trim() || `exit ${r.exitCode}`}`);
  }

  /** Copies a files volume from its host copy (written by SandboxVolumes) into the guest. */
  private async syncFiles(ch: GuestChannel, dir: string, volume: string): Promise<void> {
    const { stdout } = await run('tar', ['-c', '-C', path.join(dir, 'volumes', volume), '.'], { encoding: 'buffer', maxBuffer: 64 << 20 });
    await this.guestRun(ch, replaceFilesVolume, [volume], stdout);
  }

  async updateFiles(sandboxId: string, volume: string, files: FileSpec[]): Promise<void> {
    return this.store.serial(sandboxId, async () => {
      const rec = await this.store.record(sandboxId);
      const v = rec.spec.volumes?.find((x) => x.name === volume);
      if (v?.type !== 'files') throw new KubicleError('NotFound', `no files volume ${volume} in sandbox ${sandboxId}`);
      const dir = this.store.dir(sandboxId);
      await new SandboxVolumes(path.join(dir, 'volumes')).writeFiles(volume, files);
      await this.syncFiles(await this.channel(sandboxId), dir, volume);
    });
  }

  startContainer(sandboxId: string, spec: ContainerSpec, image: Image): Promise<ContainerStatus> {
    return this.store.serial(sandboxId, async () => {
      checkContainerName(spec.name);
      const sb = await this.store.record(sandboxId);
      const dir = this.store.dir(sandboxId);
      const attempts = await this.store.attempts(sandboxId, spec.name);
      const last = attempts.at(-1);
      if (last !== undefined && (await this.runStatus(sandboxId, spec.name, last)).state === 'running') throw new KubicleError('Conflict', `container ${spec.name} is still running`);
      for (const old of attempts.slice(0, -1)) await this.store.removeRun(sandboxId, spec.name, old);
      const attempt = last === undefined ? 0 : last + 1;
      const runDir = path.join(dir, 'containers', spec.name, String(attempt));
      const id = `${sandboxId}_${spec.name}_${attempt}`;
      const rec: RunRecord = { name: spec.name, attempt, id, image: spec.image, imageId: image.id, createdAt: new Date().toISOString(), stdin: !!spec.stdin };
      await mkdir(runDir, { recursive: true });
      await this.store.saveRun(runDir, rec);
      let slot = sb.slots[spec.name];
      if (slot === undefined) {
        const used = new Set(Object.values(sb.slots));
        slot = [...Array(this.opts.containerSlots ?? 8).keys()].find((i) => !used.has(i)) ?? -1;
        if (slot < 0) return this.failRun(runDir, rec, `a microvm sandbox holds at most ${this.opts.containerSlots ?? 8} containers`);
        sb.slots[spec.name] = slot;
        await this.store.save(sandboxId, sb);
      }
      const ch = await this.channel(sandboxId);
      await this.guestRun(ch, releaseContainer, [spec.name]);
      let user: { uid: number; gid: number; additionalGids: number[] };
      const mounts: string[] = [];
      try {
        user = await this.writeRootDisk(path.join(dir, `disks/c${slot}.img`), image, spec);
        for (const m of spec.mounts ?? []) {
          const v = sb.spec.volumes?.find((x) => x.name === m.volume);
          if (!v) throw new KubicleError('Invalid', `mount of unknown volume ${JSON.stringify(m.volume)}`);
          const sub = m.subPath ? path.posix.normalize(m.subPath) : '';
          if (sub && (path.isAbsolute(sub) || sub === '..' || sub.startsWith('../'))) throw new KubicleError('Invalid', `subPath ${JSON.stringify(m.subPath)} must be relative and stay inside the volume`);
          if (!path.posix.isAbsolute(m.containerPath)) throw new KubicleError('Invalid', `mount path ${JSON.stringify(m.containerPath)} must be absolute`);
          mounts.push(path.posix.join('/run/kubicle/volumes', m.volume, sub), m.containerPath, m.readOnly ? 'ro' : 'rw');
        }
      } catch (err) {
        if (!(err instanceof KubicleError) || err.code !== 'Invalid') throw err;
        return this.failRun(runDir, rec, err.message);
      }
      const memoryMax = spec.resources?.memoryLimitBytes ? String(spec.resources.memoryLimitBytes) : 'max';
      const cpuMax = spec.resources?.cpuLimitMillis ? `${Math.max(1000, spec.resources.cpuLimitMillis * 100)} 100000` : 'max 100000';
      await this.guestRun(ch, mountContainer, [spec.name, `c${slot}`, memoryMax, cpuMax, ...mounts]);
      let proc: GuestProcess;
      const as: GuestCommand = {
        argv: resolveArgv(spec, image.config),
        env: resolveEnv(spec, image.config, sb.spec.hostname),
        root: `/run/kubicle/c/${spec.name}`,
        cgroup: containerCgroup(spec.name),
        cwd: spec.workingDir || image.config.WorkingDir || '/',
        uid: user.uid,
        gid: user.gid,
        groups: user.additionalGids,
      };
      try {
        proc = ch.spawn({ ...as, tty: !!spec.tty, stdin: !!spec.stdin, init: true, keep: true });
      } catch (err) {
        // A command the agent cannot take (no command at all, too large): StartError, as runc reports it.
        if (!(err instanceof KubicleError) || err.code !== 'Invalid') throw err;
        await this.guestRun(ch, releaseContainer, [spec.name]);
        return this.failRun(runDir, rec, err.message);
      }
      const { done } = this.watch(sandboxId, runDir, rec, proc, as);
      await writeFile(path.join(runDir, 'guest.json'), JSON.stringify({ stream: proc.id, as, stdin: !!spec.stdin, tty: !!spec.tty } satisfies GuestRun));
      try {
        await proc.started;
        rec.startedAt = new Date().toISOString();
        await this.store.saveRun(runDir, rec);
        this.log.info('container started', { sandbox: sandboxId, container: spec.name, attempt });
      } catch {
        await done;
      }
      return this.runStatus(sandboxId, spec.name, attempt);
    });
  }

  /**
   * Keeps a running container's output in its log and records its end. Returns when that is
   * recorded (`done`), for a run started here or adopted from an earlier host agent process.
   */
  private watch(sandboxId: string, runDir: string, rec: RunRecord, proc: GuestProcess, as: GuestCommand): { done: Promise<void> } {
    const logs = new LogWriter(path.join(runDir, 'log'));
    proc.stdout.on('data', (d: Buffer) => logs.write('stdout', d));
    proc.stderr?.on('data', (d: Buffer) => logs.write('stderr', d));
    const key = `${sandboxId}/${rec.name}`;
    const done = proc.done.then(async (r) => {
      await logs.close();
      const started = await proc.started.then(
        () => true,
        () => false,
      );
      // Killed, and its cgroup counted an OOM kill: the guest kernel ended it for its memory limit.
      const oom = started && r.exitCode === 128 + 9 && (await this.oomKilled(sandboxId, rec.name));
      rec.startedAt ??= new Date().toISOString();
      rec.final = {
        exitCode: started ? r.exitCode : 128,
        finishedAt: new Date().toISOString(),
        reason: !started ? 'StartError' : oom ? 'OOMKilled' : r.exitCode === 0 ? 'Completed' : 'Error',
        ...(r.message ? { message: r.message } : {}),
      };
      await this.store.saveRun(runDir, rec).catch(() => {});
      // Recorded: the guest may forget the stream it kept for a host that restarts.
      (await this.channels.get(sandboxId)?.catch(() => undefined))?.release(proc.id);
      if (this.procs.get(key)?.proc === proc) this.procs.delete(key);
    });
    this.procs.set(key, { proc, done, as });
    return { done };
  }

  /** Whether the guest's OOM killer ended a process of the container's current run (its cgroup's count). */
  private async oomKilled(sandboxId: string, name: string): Promise<boolean> {
    const ch = await this.channels.get(sandboxId)?.catch(() => undefined);
    if (!ch?.alive) return false;
    const r = await ch.run({ argv: ['cat', `${containerCgroup(name)}/memory.events`] }, undefined, 5000).catch(() => undefined);
    return Number(/^oom_kill (\d+)/m.exec(r?.output ?? '')?.[1] ?? 0) > 0;
  }

  /**
   * Takes over the containers that an earlier host agent process started in this guest (the
   * contract's re-adoption): each run's stream id was recorded beside it (guest.json), and the
   * agent still has the stream and its recent output. The log says how much of it was recorded;
   * the guest sends the rest, so output on its way to the host that went is not lost. A run
   * whose stream the guest no longer has ended unseen: exit 255, as runc reports a lost monitor.
   */
  private async adoptRuns(sandboxId: string, ch: GuestChannel): Promise<void> {
    const live = new Map((await ch.streams()).map((x) => [x.id, x]));
    const claims: { runDir: string; rec: RunRecord; guest: GuestRun; pid: number; from: StreamOffsets }[] = [];
    for (const name of await this.store.containerNames(sandboxId)) {
      const attempt = (await this.store.attempts(sandboxId, name)).at(-1);
      if (attempt === undefined || this.procs.has(`${sandboxId}/${name}`)) continue;
      const runDir = this.store.runDir(sandboxId, name, attempt);
      const rec = await this.store.run(sandboxId, name, attempt);
      if (rec.final) continue;
      const guest = JSON.parse(await readFile(path.join(runDir, 'guest.json'), 'utf8').catch(() => 'null')) as GuestRun | null;
      const stream = guest ? live.get(guest.stream) : undefined;
      if (guest && stream?.pid) claims.push({ runDir, rec, guest, pid: stream.pid, from: await LogWriter.measure(path.join(runDir, 'log')) });
      else {
        rec.final = lostRun();
        await this.store.saveRun(runDir, rec);
      }
    }
    const procs = ch.adopt(claims.map((c) => ({ id: c.guest.stream, pid: c.pid, stdin: c.guest.stdin, tty: c.guest.tty, from: c.from })));
    for (const c of claims) {
      const proc = procs.get(c.guest.stream);
      if (!proc) continue;
      this.watch(sandboxId, c.runDir, c.rec, proc, c.guest.as);
      void proc.resumed?.then((lost) => {
        if (lost.stdout || lost.stderr) this.log.warn('container output lost while the host agent was down', { sandbox: sandboxId, container: c.rec.name, stdoutBytes: lost.stdout, stderrBytes: lost.stderr });
      });
    }
    if (claims.length) this.log.info('containers re-adopted', { sandbox: sandboxId, containers: claims.map((c) => c.rec.name) });
  }

  /** Makes the container's root disk from the image's layers (merged by a read-only overlay) and resolves its user. */
  private async writeRootDisk(file: string, image: Image, spec: ContainerSpec): Promise<{ uid: number; gid: number; additionalGids: number[] }> {
    const layers = [...image.layerDirs].reverse();
    let merged = layers[0];
    let mountDir: string | undefined;
    if (layers.length > 1) {
      mountDir = await mkdtemp(path.join(this.opts.stateDir, '.merge-'));
      await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${layers.join(':')}`, mountDir]);
      merged = mountDir;
    }
    try {
      const user = await resolveUser(merged, image.config.User, spec.user);
      await run('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', '-d', merged, file]);
      return user;
    } finally {
      if (mountDir) {
        await run('umount', [mountDir]).catch(() => {});
        await rm(mountDir, { recursive: true, force: true });
      }
    }
  }

  private async failRun(runDir: string, rec: RunRecord, message: string): Promise<ContainerStatus> {
    const now = new Date().toISOString();
    rec.startedAt ??= now;
    rec.final = { exitCode: 128, finishedAt: now, reason: 'StartError', message };
    await this.store.saveRun(runDir, rec);
    return this.runStatus(rec.id.split('_')[0], rec.name, rec.attempt);
  }

  private async runStatus(sandboxId: string, name: string, attempt: number): Promise<ContainerStatus> {
    const rec = await this.store.run(sandboxId, name, attempt);
    const base: ContainerStatus = { name, id: rec.id, attempt, image: rec.image, imageId: rec.imageId, state: 'created', createdAt: rec.createdAt, startedAt: rec.startedAt };
    if (rec.final) return { ...base, state: 'exited', exitCode: rec.final.exitCode, finishedAt: rec.final.finishedAt, reason: rec.final.reason, message: rec.final.message };
    if (this.procs.has(`${sandboxId}/${name}`)) return { ...base, state: rec.startedAt ? 'running' : 'created' };
    // Nobody here watches the run (this process restarted, or the VM died): its end was not seen.
    return { ...base, state: 'exited', ...lostRun() };
  }

  async status(sandboxId: string): Promise<SandboxStatus> {
    const sb = await this.store.record(sandboxId);
    const alive = await isQemu(sb.pid);
    // A guest this process has not talked to yet may run containers an earlier one started.
    if (alive && !this.channels.has(sandboxId) && !this.creating.has(sandboxId)) await this.channel(sandboxId).catch((err: Error) => this.log.warn('microvm agent unreachable', { sandbox: sandboxId, error: err.message }));
    const containers: ContainerStatus[] = [];
    const names = await this.store.containerNames(sandboxId);
    for (const name of names.sort()) {
      const last = (await this.store.attempts(sandboxId, name)).at(-1);
      if (last !== undefined) containers.push(await this.runStatus(sandboxId, name, last));
    }
    return { id: sandboxId, state: alive ? 'ready' : 'stopped', labels: sb.spec.labels ?? {}, createdAt: sb.createdAt, ip: sb.ip, containers };
  }

  list(labels?: Record<string, string>): Promise<SandboxStatus[]> {
    return this.store.each((id) => this.status(id), labels);
  }

  stopContainer(sandboxId: string, name: string, graceSeconds: number): Promise<void> {
    return this.stopProcess(sandboxId, name, graceSeconds);
  }

  private async stopProcess(sandboxId: string, name: string, graceSeconds: number): Promise<void> {
    const p = this.procs.get(`${sandboxId}/${name}`);
    if (!p) return;
    p.proc.signal(15);
    const timer = setTimeout(() => p.proc.signal(9), Math.max(0, graceSeconds) * 1000);
    await p.done;
    clearTimeout(timer);
  }

  removeSandbox(sandboxId: string, graceSeconds: number): Promise<void> {
    return this.store.serial(sandboxId, async () => {
      const names = await this.store.containerNames(sandboxId);
      await Promise.all(names.map((n) => this.stopProcess(sandboxId, n, graceSeconds)));
      await this.teardown(sandboxId);
    });
  }

  private async teardown(sandboxId: string): Promise<void> {
    const dir = this.store.dir(sandboxId);
    const ch = this.channels.get(sandboxId);
    this.channels.delete(sandboxId);
    void ch?.then((c) => c.close()).catch(() => {});
    const pid = Number((await readFile(path.join(dir, 'qemu.pid'), 'utf8').catch(() => '0')).trim());
    await killQemu(pid);
    await this.opts.networks.detach(sandboxId);
    await this.opts.cgroups.removeSandbox(sandboxId);
    await this.store.remove(sandboxId);
    this.log.info('sandbox removed', { sandbox: sandboxId });
  }

  async logs(sandboxId: string, name: string, opts: LogOptions, signal: AbortSignal): Promise<Readable> {
    const attempts = await this.store.attempts(sandboxId, name);
    const attempt = opts.previous ? attempts.at(-2) : attempts.at(-1);
    if (attempt === undefined) throw new KubicleError('NotFound', opts.previous ? `previous terminated container ${name} not found` : `container ${name} not found in sandbox ${sandboxId}`);
    const file = path.join(this.store.runDir(sandboxId, name, attempt), 'log');
    return readLog(file, opts, async () => (await this.runStatus(sandboxId, name, attempt)).state === 'exited', signal);
  }

  /**
   * The channel to a running container's guest, and how its main process runs: an exec gets the
   * same root, user, working directory and environment, as `runc exec` does.
   */
  private async inContainer(sandboxId: string, name: string): Promise<{ ch: GuestChannel; as: GuestCommand }> {
    const p = this.procs.get(`${sandboxId}/${name}`);
    if (!p) {
      await this.store.record(sandboxId);
      throw new KubicleError('Conflict', `container ${name} is not running`);
    }
    return { ch: await this.channel(sandboxId), as: p.as };
  }

  async execStream(sandboxId: string, name: string, spec: ExecSpec): Promise<StreamedProcess> {
    const { ch, as } = await this.inContainer(sandboxId, name);
    const env = spec.tty ? [...(as.env ?? []).filter((e) => !e.startsWith('TERM=')), 'TERM=xterm'] : as.env;
    return ch.spawn({ ...as, argv: spec.command, env, tty: spec.tty, stdin: spec.stdin, cols: spec.size?.cols, rows: spec.size?.rows });
  }

  async exec(sandboxId: string, name: string, command: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    const { ch, as } = await this.inContainer(sandboxId, name);
    return ch.run({ ...as, argv: command }, undefined, timeoutMs);
  }

  async attach(sandboxId: string, name: string, stdin: boolean): Promise<StreamedProcess> {
    const p = this.procs.get(`${sandboxId}/${name}`);
    if (!p) throw new KubicleError('Conflict', `container ${name} is not running`);
    if (stdin && !p.proc.stdin) throw new KubicleError('BadRequest', `container ${name} was not started with stdin`);
    const ac = new AbortController();
    const attempt = (await this.store.attempts(sandboxId, name)).at(-1) ?? 0;
    const out = await tailLog(path.join(this.store.runDir(sandboxId, name, attempt), 'log'), async () => !this.procs.has(`${sandboxId}/${name}`), ac.signal);
    return {
      stdin: stdin ? new Writable({ write: (chunk, _e, cb) => (p.proc.stdin?.write(chunk) ? cb() : p.proc.stdin?.once('drain', () => cb())) }) : undefined,
      stdout: out,
      resize: (cols, rows) => p.proc.resize(cols, rows),
      kill: () => ac.abort(),
      done: p.proc.done.then((r) => ({ exitCode: r.exitCode })),
    };
  }

  async portForward(sandboxId: string, port: number): Promise<StreamedProcess> {
    await this.store.record(sandboxId);
    const ch = await this.channel(sandboxId);
    return ch.connect(port);
  }

  async usage(sandboxId: string, name?: string): Promise<Usage> {
    await this.store.record(sandboxId);
    // The guest is one process to the host: a container's share is not visible from here.
    void name;
    return this.opts.cgroups.usage(sandboxId);
  }

  async leftovers(sandboxId: string): Promise<string[]> {
    const out: string[] = [];
    const dir = path.join(this.opts.stateDir, sandboxId);
    if (existsSync(dir)) out.push(dir);
    const { stdout } = await run('ip', ['-o', 'link', 'show']).catch(() => ({ stdout: '' }));
    const tap = PodNetwork.tapOf(sandboxId);
    if (stdout.includes(`${tap}:`)) out.push(`tap ${tap}`);
    out.push(...this.opts.cgroups.leftovers(sandboxId));
    return out;
  }
}
