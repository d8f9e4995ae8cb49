import { execFile } from 'node:child_process';
import { constants, createWriteStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import tar, { type Header } from 'tar-stream';
import { KubicleError } from '../../observe/errors.js';

const run = promisify(execFile);

export interface UnpackLimits {
  /** Largest total of file bytes a layer may unpack to. */
  maxBytes: number;
  maxEntries: number;
}

const defaults: UnpackLimits = { maxBytes: 16 * 2 ** 30, maxEntries: 1_000_000 };

/**
 * Unpacks one image layer (a tar, gzipped or not) into `dir`, in the form overlayfs stacks:
 * a whiteout `.wh.x` becomes a 0/0 character device `x`, and `.wh..wh..opq` marks its directory
 * opaque. Nothing is ever written outside `dir`: entry names are cleaned (a leading `/` is
 * dropped; a name that climbs out with `..` fails the layer), no entry is written through a
 * symlink or over a path whose parent is a symlink, and hard links must point at a file of the
 * same layer. Symlinks themselves are stored as given: only the container, inside its own root,
 * ever follows them. Device nodes in layers are skipped (a sandbox gets its devices from the
 * runtime). Throws Invalid for a hostile or corrupt layer; the caller discards `dir` then.
 */
export async function unpackLayer(layer: Readable, dir: string, limits: UnpackLimits = defaults): Promise<void> {
  await mkdir(dir, { recursive: true });
  const extract = tar.extract();
  let bytes = 0;
  let entries = 0;
  const dirTimes: { p: string; mtime: Date }[] = [];

  extract.on('entry', (header, stream, next) => {
    entries++;
    const done = (err?: unknown) => {
      stream.resume();
      if (err) {
        extract.destroy(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      next();
    };
    if (entries > limits.maxEntries) return done(new KubicleError('Invalid', `layer has more than ${limits.maxEntries} entries`));
    if (header.type === 'file' || header.type === 'contiguous-file') {
      bytes += header.size ?? 0;
      if (bytes > limits.maxBytes) return done(new KubicleError('Invalid', `layer unpacks to more than ${limits.maxBytes} bytes`));
    }
    writeEntry(dir, header, stream, dirTimes).then(() => done(), done);
  });

  const first = await peekTwo(layer);
  if (first[0] === 0x28 && first[1] === 0xb5) throw new KubicleError('Unsupported', 'zstd-compressed layers are not supported; push gzip layers');
  const gzip = first[0] === 0x1f && first[1] === 0x8b;
  try {
    if (gzip) await pipeline(layer, createGunzip(), extract);
    else await pipeline(layer, extract);
  } catch (err) {
    if (err instanceof KubicleError) throw err;
    throw new KubicleError('Invalid', `corrupt layer: ${(err as Error).message}`, { cause: err });
  }
  // Directory times last: writing into a directory moves its mtime.
  for (const d of dirTimes.reverse()) await lutimes(d.p, d.mtime, d.mtime).catch(() => {});
}

/** The layer-relative path of an entry name ('' for the root), or Invalid when it climbs out of the root. */
export function cleanEntryName(name: string): string {
  const norm = path.posix.normalize(name.replace(/^\/+/, '') || '.');
  if (norm === '..' || norm.startsWith('../')) throw new KubicleError('Invalid', `layer entry ${JSON.stringify(name)} escapes the image root`);
  return norm === '.' ? '' : norm.replace(/\/$/, '');
}

/** The first two bytes of a stream (fewer at its end), left in the stream. */
function peekTwo(s: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onReadable = () => {
      const chunk = s.read(2) as Buffer | null;
      if (chunk === null && !s.readableEnded) return;
      cleanup();
      if (chunk) s.unshift(chunk);
      resolve(chunk ?? Buffer.alloc(0));
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.alloc(0));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      s.off('readable', onReadable);
      s.off('end', onEnd);
      s.off('error', onError);
    };
    s.on('readable', onReadable);
    s.on('end', onEnd);
    s.on('error', onError);
  });
}

async function writeEntry(dir: string, header: Header, stream: AsyncIterable<unknown>, dirTimes: { p: string; mtime: Date }[]): Promise<void> {
  const rel = cleanEntryName(header.name);
  const base = path.posix.basename(rel);
  const parentRel = path.posix.dirname(rel);
  const parent = await safeParent(dir, parentRel === '.' ? '' : parentRel);
  if (rel === '') {
    if (header.mode !== undefined) await chmod(dir, header.mode & 0o7777);
    return;
  }
  if (base === '.wh..wh..opq') {
    await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', parent]);
    return;
  }
  if (base.startsWith('.wh.')) {
    const target = path.join(parent, base.slice(4));
    await rm(target, { recursive: true, force: true });
    await run('mknod', [target, 'c', '0', '0']);
    return;
  }
  const target = path.join(parent, base);
  const existing = await lstat(target).catch(() => undefined);
  if (existing && !(existing.isDirectory() && header.type === 'directory')) await rm(target, { recursive: true, force: true });
  const mode = (header.mode ?? 0o644) & 0o7777;
  const uid = header.uid ?? 0;
  const gid = header.gid ?? 0;
  const mtime = header.mtime ?? new Date(0);
  switch (header.type) {
    case 'file':
    case 'contiguous-file': {
      // O_NOFOLLOW|O_EXCL: the path was just cleared, so anything there now is a race; refuse it.
      const fh = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      await pipeline(stream, createWriteStream('', { fd: fh.fd, autoClose: false }));
      await fh.chown(uid, gid);
      await fh.chmod(mode);
      await fh.utimes(mtime, mtime);
      await fh.close();
      return;
    }
    case 'directory':
      if (!existing) await mkdir(target);
      await lchown(target, uid, gid);
      await chmod(target, mode);
      dirTimes.push({ p: target, mtime });
      return;
    case 'symlink':
      await symlink(header.linkname ?? '', target);
      await lchown(target, uid, gid);
      await lutimes(target, mtime, mtime).catch(() => {});
      return;
    case 'link': {
      const srcRel = cleanEntryName(header.linkname ?? '');
      const srcParent = await safeParent(dir, path.posix.dirname(srcRel) === '.' ? '' : path.posix.dirname(srcRel));
      const src = path.join(srcParent, path.posix.basename(srcRel));
      const st = await lstat(src).catch(() => undefined);
      if (!st?.isFile()) throw new KubicleError('Invalid', `layer hard link ${JSON.stringify(header.name)} points at ${JSON.stringify(header.linkname)}, which is not a file of this layer`);
      await link(src, target);
      return;
    }
    default:
      // Devices, FIFOs and unknown types are not unpacked.
      return;
  }
}

/**
 * The absolute path of a directory inside `root`, created as needed, refusing to pass through a
 * symlink or a non-directory so nothing can be redirected outside the root.
 */
async function safeParent(root: string, rel: string): Promise<string> {
  let cur = root;
  if (!rel) return cur;
  for (const part of rel.split('/')) {
    cur = path.join(cur, part);
    const st = await lstat(cur).catch(() => undefined);
    if (!st) {
      await mkdir(cur, { mode: 0o755 });
      continue;
    }
    if (st.isSymbolicLink()) throw new KubicleError('Invalid', `layer entry under ${JSON.stringify(rel)} would be written through a symlink`);
    if (!st.isDirectory()) throw new KubicleError('Invalid', `layer entry under ${JSON.stringify(rel)} has a non-directory parent`);
  }
  return cur;
}
