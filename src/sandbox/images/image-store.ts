import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { KubicleError } from '../../observe/errors.js';
import type { Logger } from '../../observe/log.js';
import { ContentStore } from './content-store.js';
import { formatReference, parseReference } from './reference.js';
import { type Manifest, mediaTypes, type RegistryClient, type RegistryCredentials } from './registry-client.js';
import { unpackLayer } from './unpack.js';

/** What a container needs of an image's config (OCI image config `config` section). */
export interface ImageConfig {
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, unknown>;
}

export interface Image {
  /** The image ID: its config digest. */
  id: string;
  /** The manifest digest the reference resolved to (`repo@digest`). */
  digest: string;
  /** Canonical references that point at this image. */
  references: string[];
  /** Unpacked layer directories, lowest first, ready for overlayfs. */
  layerDirs: string[];
  config: ImageConfig;
  /** Compressed size in bytes. */
  size: number;
  lastUsed: number;
}

interface Record_ {
  id: string;
  digest: string;
  references: string[];
  layers: string[];
  config: ImageConfig;
  size: number;
  lastUsed: number;
}

const maxConfigBytes = 4 << 20;
const layerTypes = new Set<string>([mediaTypes.ociLayer, mediaTypes.ociLayerGzip, mediaTypes.dockerLayerGzip, 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip']);

/**
 * The host's images: blobs kept by digest (ContentStore), layers unpacked once each under
 * layers/<digest> and shared by every image that has them, and an index of images by
 * reference in images.json. A pull fetches only what is missing; concurrent pulls of one layer
 * share the work. Nothing in this class knows about pods.
 */
export class ImageStore {
  private readonly blobs: ContentStore;
  private images = new Map<string, Record_>();
  private readonly inflight = new Map<string, Promise<void>>();
  private loaded?: Promise<void>;

  constructor(
    private readonly root: string,
    private readonly registry: RegistryClient,
    private readonly log: Logger,
  ) {
    this.blobs = new ContentStore(path.join(root, 'blobs'));
  }

  private load(): Promise<void> {
    this.loaded ??= (async () => {
      await mkdir(path.join(this.root, 'layers'), { recursive: true });
      const text = await readFile(path.join(this.root, 'images.json'), 'utf8').catch(() => '[]');
      for (const r of JSON.parse(text) as Record_[]) this.images.set(r.id, r);
    })();
    return this.loaded;
  }

  private async save(): Promise<void> {
    const tmp = path.join(this.root, `images.json.${randomBytes(4).toString('hex')}`);
    await writeFile(tmp, JSON.stringify([...this.images.values()]));
    await rename(tmp, path.join(this.root, 'images.json'));
  }

  /** The local image a reference names, or undefined. Never contacts a registry. */
  async find(reference: string): Promise<Image | undefined> {
    await this.load();
    const canonical = formatReference(parseReference(reference));
    const byDigest = parseReference(reference).digest;
    for (const r of this.images.values()) {
      if (r.references.includes(canonical) || (byDigest && r.digest === byDigest) || r.id === reference) return this.view(r);
    }
    return undefined;
  }

  /**
   * Pulls an image: resolves the reference at the registry, fetches missing blobs, unpacks missing
   * layers, and records the reference. Errors: NotFound (no such image), Unauthorized / Forbidden
   * (credentials), Unavailable (registry unreachable), Invalid (corrupt or hostile content).
   */
  async pull(reference: string, creds?: RegistryCredentials): Promise<Image> {
    await this.load();
    const ref = parseReference(reference);
    const canonical = formatReference(ref);
    const started = Date.now();
    const { digest, manifest } = await this.registry.resolve(ref, creds);
    for (const l of manifest.layers) {
      if (!layerTypes.has(l.mediaType)) throw new KubicleError('Unsupported', `layer media type ${l.mediaType} is not supported`);
    }
    await this.fetchBlob(ref, manifest.config.digest, creds, maxConfigBytes);
    const configDoc = JSON.parse(await readFile(this.blobs.path(manifest.config.digest), 'utf8')) as { config?: ImageConfig; os?: string };
    await Promise.all(manifest.layers.map((l) => this.ensureLayer(ref, l.digest, creds)));
    const id = manifest.config.digest;
    const prev = this.images.get(id);
    for (const other of this.images.values()) {
      if (other.id !== id && other.references.includes(canonical)) other.references = other.references.filter((x) => x !== canonical);
    }
    const record: Record_ = {
      id,
      digest,
      references: [...new Set([...(prev?.references ?? []), canonical])],
      layers: manifest.layers.map((l) => l.digest),
      config: configDoc.config ?? {},
      size: sizeOf(manifest),
      lastUsed: Date.now(),
    };
    this.images.set(id, record);
    await this.save();
    this.log.info('image pulled', { image: canonical, digest, ms: Date.now() - started, layers: manifest.layers.length });
    return this.view(record);
  }

  /** Every local image. */
  async list(): Promise<Image[]> {
    await this.load();
    return [...this.images.values()].map((r) => this.view(r));
  }

  /** Marks an image used now, so garbage collection keeps it longest. */
  async touch(id: string): Promise<void> {
    const r = this.images.get(id);
    if (r) r.lastUsed = Date.now();
  }

  /** Removes an image and every layer and blob no other image needs. NotFound when absent. */
  async remove(id: string): Promise<void> {
    await this.load();
    if (!this.images.delete(id)) throw new KubicleError('NotFound', `image ${id} not found`);
    await this.save();
    await this.sweep();
  }

  /**
   * Garbage collection: removes images not in `inUse`, least recently used first, until the
   * store is at most `targetBytes` (0 removes every unused image). Returns the removed IDs.
   */
  async prune(inUse: Set<string>, targetBytes = 0): Promise<string[]> {
    await this.load();
    let total = [...this.images.values()].reduce((s, r) => s + r.size, 0);
    const removed: string[] = [];
    for (const r of [...this.images.values()].sort((a, b) => a.lastUsed - b.lastUsed)) {
      if (total <= targetBytes) break;
      if (inUse.has(r.id)) continue;
      this.images.delete(r.id);
      total -= r.size;
      removed.push(r.id);
    }
    if (removed.length) {
      await this.save();
      await this.sweep();
      this.log.info('images pruned', { removed });
    }
    return removed;
  }

  /** Deletes blobs and unpacked layers no image refers to. */
  private async sweep(): Promise<void> {
    const wanted = new Set<string>();
    for (const r of this.images.values()) {
      wanted.add(r.id);
      for (const l of r.layers) wanted.add(l);
    }
    for (const d of await this.blobs.list()) if (!wanted.has(d) && !this.inflight.has(d)) await this.blobs.remove(d);
    for (const name of await readdir(path.join(this.root, 'layers'))) {
      const d = `sha256:${name}`;
      if (/^[a-f0-9]{64}$/.test(name) && !wanted.has(d) && !this.inflight.has(d)) await rm(path.join(this.root, 'layers', name), { recursive: true, force: true });
    }
  }

  private layerDir(digest: string): string {
    return path.join(this.root, 'layers', digest.slice('sha256:'.length));
  }

  private view(r: Record_): Image {
    return { id: r.id, digest: r.digest, references: [...r.references], layerDirs: r.layers.map((l) => this.layerDir(l)), config: r.config, size: r.size, lastUsed: r.lastUsed };
  }

  private async fetchBlob(ref: ReturnType<typeof parseReference>, digest: string, creds?: RegistryCredentials, max?: number): Promise<void> {
    if (await this.blobs.has(digest)) return;
    await this.once(`blob:${digest}`, async () => {
      if (await this.blobs.has(digest)) return;
      await this.blobs.write(digest, await this.registry.blob(ref, digest, creds), max);
    });
  }

  private async ensureLayer(ref: ReturnType<typeof parseReference>, digest: string, creds?: RegistryCredentials): Promise<void> {
    const dir = this.layerDir(digest);
    if (await exists(dir)) return;
    await this.once(digest, async () => {
      if (await exists(dir)) return;
      await this.fetchBlob(ref, digest, creds);
      const tmp = `${dir}.unpack-${randomBytes(4).toString('hex')}`;
      try {
        await unpackLayer(this.blobs.read(digest), tmp);
        await rename(tmp, dir);
      } catch (err) {
        await rm(tmp, { recursive: true, force: true });
        // A layer that cannot be unpacked is not kept either: the next pull fetches it afresh.
        await this.blobs.remove(digest);
        throw err;
      }
    });
  }

  private once(key: string, work: () => Promise<void>): Promise<void> {
    const running = this.inflight.get(key);
    if (running) return running;
    const p = work().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}

function sizeOf(m: Manifest): number {
  return m.config.size + m.layers.reduce((s, l) => s + l.size, 0);
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}
