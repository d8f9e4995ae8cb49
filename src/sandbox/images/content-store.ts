import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KubicleError } from '../../observe/errors.js';

const digestPattern = /^sha256:([a-f0-9]{64})$/;

/**
 * Blobs by digest under <root>/sha256/<hex>. A blob is written to a temporary file, its digest
 * checked, and only then renamed into place, so a present blob is always whole and correct.
 */
export class ContentStore {
  constructor(private readonly root: string) {}

  path(digest: string): string {
    const m = digestPattern.exec(digest);
    if (!m) throw new KubicleError('Invalid', `unsupported digest ${JSON.stringify(digest)}`);
    return path.join(this.root, 'sha256', m[1]);
  }

  /** Whether the blob is present. Never throws for a missing blob. */
  async has(digest: string): Promise<boolean> {
    try {
      await stat(this.path(digest));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stores a stream under its expected digest. Idempotent. Throws Invalid (and stores nothing)
   * when the content does not hash to `digest` or exceeds `maxBytes`.
   */
  async write(digest: string, body: Readable, maxBytes = Number.POSITIVE_INFINITY): Promise<void> {
    const final = this.path(digest);
    await mkdir(path.dirname(final), { recursive: true });
    const tmp = `${final}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    const hash = createHash('sha256');
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) body.destroy(new KubicleError('TooLarge', `blob ${digest} is larger than ${maxBytes} bytes`));
      hash.update(chunk);
    });
    try {
      await pipeline(body, createWriteStream(tmp, { mode: 0o600 }));
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== digest) throw new KubicleError('Invalid', `blob digest mismatch: expected ${digest}, got ${got}`);
      await rename(tmp, final);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  read(digest: string): Readable {
    return createReadStream(this.path(digest));
  }

  /** Every stored digest. */
  async list(): Promise<string[]> {
    const names = await readdir(path.join(this.root, 'sha256')).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /** Removes a blob; missing is fine. */
  async remove(digest: string): Promise<void> {
    await rm(this.path(digest), { force: true });
  }
}
