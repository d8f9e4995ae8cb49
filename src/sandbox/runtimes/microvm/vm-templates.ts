import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubicleError } from '../../../observe/errors.js';
import type { Logger } from '../../../observe/log.js';
import { GuestChannel } from './guest-channel.js';
import { killQemu, sparseFiles, startVm, type VmSpec } from './qemu.js';
import { Qmp } from './qmp.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * What a template is made for: everything in a VmSpec but the sandbox's own files and tap. A
 * guest resumes only on the machine it was saved from (QEMU checks devices and RAM sizes), so
 * every part of the shape is in the template's key.
 */
export interface VmShape extends Pick<VmSpec, 'guest' | 'accel' | 'memoryMiB' | 'cpus' | 'append' | 'tscKhz'> {
  /** Serials of the block devices, in order, and their common size: the guest probed them. */
  diskSerials: string[];
  diskBytes: number;
  /** Whether the guest has a network interface. */
  net: boolean;
}

/**
 * Saved guests to resume instead of booting (ADR 0010). A template is a guest of one shape
 * booted until its agent answered, paused and saved with QEMU's migration to a file. A sandbox's
 * QEMU resumes it with `-incoming` and its own disks, tap and sockets; the guest then still holds
 * nothing of any sandbox, and the runtime makes it the sandbox's (seed, prepareSandbox). Built on
 * first use of a shape and kept on disk under `dir`, keyed by the shape, the kernel, the
 * initramfs and the QEMU version, so a change of any of them builds a new one.
 */
export class VmTemplates {
  private readonly building = new Map<string, Promise<string>>();
  private qemuVersion?: Promise<string>;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    private readonly qemu = 'qemu-system-x86_64',
    private readonly bootTimeoutMs = 60_000,
  ) {}

  /** The saved guest for a shape; the first call for a shape builds it (one boot and a save). */
  async template(shape: VmShape): Promise<string> {
    const key = await this.key(shape);
    const file = path.join(this.dir, `${key}.vmstate`);
    if (existsSync(file)) return file;
    let building = this.building.get(key);
    if (!building) {
      building = this.build(shape, file).finally(() => this.building.delete(key));
      this.building.set(key, building);
    }
    return building;
  }

  /** Drops a template that did not resume, so that the next sandbox of its shape builds it anew. */
  async forget(file: string): Promise<void> {
    await rm(file, { force: true });
  }

  private async key(shape: VmShape): Promise<string> {
    const file = async (f: string) => {
      const s = await stat(f);
      return `${f}:${s.size}:${s.mtimeMs}`;
    };
    this.qemuVersion ??= run(this.qemu, ['--version']).then((r) => r.stdout.split('\n')[0]);
    const parts = { ...shape, guest: [await file(shape.guest.kernel), await file(shape.guest.initramfs)], qemu: await this.qemuVersion };
    return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
  }

  private async build(shape: VmShape, file: string): Promise<string> {
    if (this.dir.includes("'")) throw new KubicleError('Internal', `unusable template directory ${this.dir}`);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const work = await mkdtemp(path.join(this.dir, '.build-'));
    const tmp = `${file}.${path.basename(work)}`;
    const started = Date.now();
    let pid = 0;
    try {
      const disks = shape.diskSerials.map((serial) => ({ serial, file: path.join(work, `${serial}.img`) }));
      await sparseFiles(disks.map((d) => d.file), shape.diskBytes);
      const { diskSerials: _s, diskBytes: _b, net, ...vm } = shape;
      const spec: VmSpec = {
        ...vm,
        disks,
        net: net ? {} : undefined,
        agentSocket: path.join(work, 'agent.sock'),
        consoleLog: path.join(work, 'console.log'),
        pidFile: path.join(work, 'qemu.pid'),
        qmpSocket: path.join(work, 'qmp.sock'),
      };
      pid = await startVm(spec, this.qemu);
      const ch = await GuestChannel.open(spec.agentSocket, this.bootTimeoutMs);
      ch.close();
      // Let the agent see its host go before the guest is frozen, so a resumed one waits for the next.
      await sleep(100);
      const qmp = await Qmp.connect(spec.qmpSocket as string);
      try {
        await qmp.command('stop');
        await qmp.command('migrate', { uri: `exec:cat > '${tmp}'` });
        for (;;) {
          const st = await qmp.command<{ status?: string; 'error-desc'?: string }>('query-migrate');
          if (st.status === 'completed') break;
          if (st.status === 'failed' || st.status === 'cancelled') throw new KubicleError('Internal', `saving a microvm template: ${st['error-desc'] ?? st.status}`);
          await sleep(20);
        }
      } finally {
        qmp.close();
      }
      await rename(tmp, file);
      this.log.info('microvm template saved', { file, memoryMiB: shape.memoryMiB, cpus: shape.cpus, bytes: (await stat(file)).size, ms: Date.now() - started });
      return file;
    } finally {
      await killQemu(pid);
      await rm(tmp, { force: true });
      await rm(work, { recursive: true, force: true });
    }
  }
}
