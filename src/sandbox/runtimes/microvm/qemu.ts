import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { KubicleError } from '../../../observe/errors.js';

const run = promisify(execFile);

/** How guests run here: hardware virtualisation, or QEMU's translator where KVM does not work. */
export type Accel = 'kvm' | 'tcg';

/** The guest every microvm boots (scripts/build-guest.sh makes it). */
export interface GuestImage {
  kernel: string;
  initramfs: string;
}

export interface VmSpec {
  guest: GuestImage;
  accel: Accel;
  memoryMiB: number;
  cpus: number;
  /** Extra kernel command line (the agent's network settings). */
  append: string;
  /** The agent's virtio-serial port, as a unix socket QEMU listens on. */
  agentSocket: string;
  consoleLog: string;
  pidFile: string;
  /** Block devices by serial number (what the guest finds them by), raw files. */
  disks: { serial: string; file: string }[];
  /**
   * The guest's network interface, on a tap device of the pod bridge; without a tap the interface
   * is there but unplugged (a template: its guests get their tap when restored). The interface's
   * MAC is always GUEST_MAC here: the guest sets its own (prepareSandbox), as restored guests must.
   */
  net?: { tap?: string };
  /** The TSC's rate in kHz, for TCG guests (see tscArgs). */
  tscKhz?: number;
  /** A saved guest (VmTemplates) to resume instead of booting; the rest of the spec must match its. */
  incoming?: string;
  /** A QMP control socket, for saving the guest. */
  qmpSocket?: string;
}

/** The MAC QEMU gives every guest's interface before the guest sets the sandbox's own. */
export const GUEST_MAC = '52:54:00:00:00:01';

/**
 * Under TCG the guest's TSC is the host's, but a microvm has no HPET or PM timer to calibrate it
 * against, and calibrating against the PIT fails when the host is busy: the kernel then marks
 * the TSC unstable and hangs in early boot (seen in about a third of boots here). Telling it the
 * rate skips calibration. KVM guests use kvmclock instead.
 */
function tscArgs(vm: VmSpec): string {
  return vm.accel === 'tcg' && vm.tscKhz ? `tsc_early_khz=${vm.tscKhz} tsc=reliable` : '';
}

/** The host's TSC rate in kHz, from /proc/cpuinfo; undefined when the CPU does not say. */
export async function hostTscKhz(): Promise<number | undefined> {
  const info = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(info)?.[1]);
  return Number.isFinite(mhz) && mhz > 0 ? Math.round(mhz * 1000) : undefined;
}

/** The QEMU command line for one `-M microvm` guest, detached from its caller. */
export function qemuArgs(vm: VmSpec): string[] {
  const args = [
    '-M', 'microvm,x-option-roms=off,rtc=on',
    '-accel', vm.accel,
    '-cpu', vm.accel === 'kvm' ? 'host' : 'max',
    '-m', `${vm.memoryMiB}M`,
    '-smp', String(vm.cpus),
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-serial', `file:${vm.consoleLog}`,
    '-kernel', vm.guest.kernel,
    '-initrd', vm.guest.initramfs,
    // panic=-1 and -no-reboot: a guest whose init dies ends the QEMU process, which ends the pod.
    '-append', `console=ttyS0 quiet panic=-1 reboot=t ${tscArgs(vm)} ${vm.append}`.replace(/ +/g, ' ').trim(),
    '-chardev', `socket,id=agent,path=${vm.agentSocket},server=on,wait=off`,
    '-device', 'virtio-serial-device',
    '-device', 'virtserialport,chardev=agent,name=kubicle.agent',
  ];
  vm.disks.forEach((d, i) => {
    args.push('-drive', `id=disk${i},file=${d.file},format=raw,if=none,cache=writeback,discard=unmap`, '-device', `virtio-blk-device,drive=disk${i},serial=${d.serial}`);
  });
  if (vm.net?.tap) args.push('-netdev', `tap,id=net0,ifname=${vm.net.tap},script=no,downscript=no`, '-device', `virtio-net-device,netdev=net0,mac=${GUEST_MAC}`);
  else if (vm.net) args.push('-device', `virtio-net-device,mac=${GUEST_MAC}`);
  // A saved guest resumes running (the saved run state would keep it paused), and announces no
  // MAC: the one QEMU knows is GUEST_MAC, shared by every guest, not the sandbox's.
  args.push('-global', 'migration.store-global-state=off');
  if (vm.incoming) {
    if (/'/.test(vm.incoming)) throw new KubicleError('Internal', `unusable saved guest path ${vm.incoming}`);
    args.push('-global', 'migration.announce-rounds=0', '-incoming', `exec:cat '${vm.incoming}'`);
  }
  if (vm.qmpSocket) args.push('-qmp', `unix:${vm.qmpSocket},server=on,wait=off`);
  args.push('-daemonize', '-pidfile', vm.pidFile);
  return args;
}

/** Starts the guest; QEMU daemonises, so the VM outlives this process. Returns QEMU's pid. */
export async function startVm(vm: VmSpec, qemu = 'qemu-system-x86_64'): Promise<number> {
  try {
    await run(qemu, qemuArgs({ ...vm, tscKhz: vm.tscKhz ?? (await hostTscKhz()) }), { timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new KubicleError('Internal', `qemu: ${(e.stderr || e.message).trim()}`);
  }
  return Number((await readFile(vm.pidFile, 'utf8')).trim());
}

/** Whether a pid is a live QEMU (not a reused pid). */
export async function isQemu(pid: number): Promise<boolean> {
  const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmd.startsWith('qemu-system');
}

/** Makes (or resets to zeros) disk images of `bytes`, sparse: they take space only as written. */
export async function sparseFiles(files: string[], bytes: number): Promise<void> {
  for (const f of files) {
    const fh = await open(f, 'w');
    try {
      await fh.truncate(bytes);
    } finally {
      await fh.close();
    }
  }
}

/** Kills a QEMU (only if the pid still is one) and waits up to 2 s for it to be gone. */
export async function killQemu(pid: number): Promise<void> {
  if (pid <= 0 || !(await isQemu(pid))) return;
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 20));
}

/**
 * Which accelerator works: boots the guest kernel under KVM with an init that prints a mark and
 * ends, and falls back to TCG when the mark does not come within `timeoutMs` (a nested guest can
 * hang instead of failing). The answer is the machine's, so callers keep it.
 */
export async function probeAccel(guest: GuestImage, timeoutMs = 8000, qemu = 'qemu-system-x86_64'): Promise<{ accel: Accel; reason: string }> {
  const mark = 'kubicle-accel-ok';
  try {
    await readFile('/dev/kvm').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new Error('no /dev/kvm');
    });
  } catch (err) {
    return { accel: 'tcg', reason: (err as Error).message };
  }
  const child = spawn(
    qemu,
    // biome-ignore format: one flag and its value per line
    ['-M', 'microvm', '-accel', 'kvm', '-cpu', 'host', '-m', '128M', '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
     '-serial', 'stdio', '-kernel', guest.kernel, '-initrd', guest.initramfs, '-append', `console=ttyS0 quiet panic=-1 rdinit=/bin/echo -- ${mark}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const ok = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.stdout.on('data', () => {
      if (out.includes(mark)) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    child.once('close', () => {
      clearTimeout(timer);
      resolve(out.includes(mark));
    });
  });
  child.kill('SIGKILL');
  if (ok) return { accel: 'kvm', reason: 'a KVM guest booted' };
  const why = out.match(/qemu-system[^\n]*/)?.[0] ?? `no KVM guest booted within ${timeoutMs} ms`;
  return { accel: 'tcg', reason: why };
}
