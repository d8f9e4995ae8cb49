import { execFile } from 'node:child_process';
import { chmod, lstat, mkdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubicleError } from '../observe/errors.js';
import type { FileSpec, MountSpec, VolumeSpec } from './api/types.js';

const run = promisify(execFile);

/**
 * A sandbox's volumes on the host, under <sandboxDir>/volumes/<name>. `files` volumes are written
 * the way the kubelet's atomic writer does: content in a fresh timestamped directory, a `..data`
 * symlink swapped to it in one rename, and each top-level name a symlink through `..data`, so a
 * reader never sees half an update.
 */
export class SandboxVolumes {
  constructor(private readonly dir: string) {}

  private volumeDir(name: string): string {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) throw new KubicleError('Invalid', `invalid volume name ${JSON.stringify(name)}`);
    return path.join(this.dir, name);
  }

  async create(v: VolumeSpec): Promise<void> {
    const dir = this.volumeDir(v.name);
    if (v.type === 'host') {
      if (!path.isAbsolute(v.path)) throw new KubicleError('Invalid', `host volume ${v.name}: path must be absolute`);
      if (v.create === 'directory') await mkdir(v.path, { recursive: true });
      return;
    }
    await mkdir(dir, { recursive: true, mode: 0o777 });
    if (v.type === 'dir' && v.medium === 'memory') {
      const size = v.sizeLimitBytes ? `,size=${v.sizeLimitBytes}` : '';
      const mounted = await isMountPoint(dir);
      if (!mounted) await run('mount', ['-t', 'tmpfs', '-o', `mode=1777${size}`, 'tmpfs', dir]);
    }
    // mkdir's mode passes through the umask; a volume any container user may write needs 0777 itself.
    if (v.type === 'dir') await chmod(dir, 0o777);
    if (v.type === 'files') await this.writeFiles(v.name, v.files);
  }

  /** The host path a mount of a container binds, checked to stay inside its volume. */
  async source(volumes: VolumeSpec[], m: MountSpec): Promise<string> {
    const v = volumes.find((x) => x.name === m.volume);
    if (!v) throw new KubicleError('Invalid', `mount of unknown volume ${JSON.stringify(m.volume)}`);
    const base = v.type === 'host' ? v.path : this.volumeDir(v.name);
    if (!m.subPath) return base;
    const sub = path.posix.normalize(m.subPath);
    if (path.isAbsolute(sub) || sub === '..' || sub.startsWith('../')) throw new KubicleError('Invalid', `subPath ${JSON.stringify(m.subPath)} must be relative and stay inside the volume`);
    // A subPath must not be a symlink out of the volume: check each component.
    let cur = base;
    for (const part of sub.split('/')) {
      cur = path.join(cur, part);
      const st = await lstat(cur).catch(() => undefined);
      if (!st) {
        await mkdir(cur, { mode: 0o777 });
        continue;
      }
      if (st.isSymbolicLink() && v.type !== 'files') throw new KubicleError('Invalid', `subPath ${JSON.stringify(m.subPath)} passes through a symlink`);
    }
    return cur;
  }

  async writeFiles(volume: string, files: FileSpec[]): Promise<void> {
    const dir = this.volumeDir(volume);
    await mkdir(dir, { recursive: true });
    const stamp = `..${new Date().toISOString().replace(/[:.]/g, '_')}.${Math.random().toString(36).slice(2, 8)}`;
    const content = path.join(dir, stamp);
    await mkdir(content, { mode: 0o755 });
    const tops = new Set<string>();
    for (const f of files) {
      const rel = path.posix.normalize(f.path);
      if (!rel || path.isAbsolute(rel) || rel === '..' || rel.startsWith('..')) throw new KubicleError('Invalid', `file path ${JSON.stringify(f.path)} must be relative and must not start with ..`);
      const target = path.join(content, rel);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, Buffer.from(f.data, 'base64'), { mode: f.mode ?? 0o644 });
      tops.add(rel.split('/')[0]);
    }
    const previous = await readLink(path.join(dir, '..data'));
    const tmpLink = path.join(dir, '..data_tmp');
    await rm(tmpLink, { force: true });
    await symlink(stamp, tmpLink);
    await rename(tmpLink, path.join(dir, '..data'));
    for (const t of tops) {
      const link = path.join(dir, t);
      const st = await lstat(link).catch(() => undefined);
      if (!st) await symlink(path.posix.join('..data', t), link);
    }
    if (previous && previous !== stamp) await rm(path.join(dir, previous), { recursive: true, force: true });
  }

  /** Unmounts memory volumes; the caller removes the directory. Idempotent. */
  async teardown(volumes: VolumeSpec[]): Promise<void> {
    for (const v of volumes) {
      if (v.type === 'dir' && v.medium === 'memory') {
        const dir = this.volumeDir(v.name);
        if (await isMountPoint(dir)) await run('umount', ['-l', dir]).catch(() => {});
      }
    }
  }
}

function readLink(p: string): Promise<string | undefined> {
  return readlink(p).catch(() => undefined);
}

/** Whether a path is a mount point, from /proc/self/mountinfo. */
export async function isMountPoint(p: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((line) => line.split(' ')[4] === p);
}
