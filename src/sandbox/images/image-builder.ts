import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import type { ImageConfig } from './image-store.js';
import { parseReference } from './reference.js';
import { mediaTypes, type RegistryClient, type RegistryCredentials } from './registry-client.js';

/** One entry of a layer built from local files. */
export type LayerEntry =
  | { type: 'file'; path: string; data: Buffer; mode?: number }
  | { type: 'directory'; path: string; mode?: number }
  | { type: 'symlink'; path: string; target: string };

export interface BuiltImage {
  manifestDigest: string;
  configDigest: string;
  size: number;
}

/**
 * Makes small OCI images without a container engine: one gzipped layer from a list of entries
 * (owned by root, times at the epoch so the same input gives the same digest), an OCI config
 * and manifest, pushed to a registry under a tag. This is what `kubicle image build` runs.
 */
export async function buildAndPush(
  registry: RegistryClient,
  reference: string,
  entries: LayerEntry[],
  config: ImageConfig,
  creds?: RegistryCredentials,
): Promise<BuiltImage> {
  const ref = parseReference(reference);
  const tarBytes = await packLayer(entries);
  const diffId = digestOf(tarBytes);
  const layer = gzipSync(tarBytes, { level: 6 });
  const layerDigest = digestOf(layer);
  const configDoc = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: new Date(0).toISOString(),
      config,
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created: new Date(0).toISOString(), created_by: 'kubicle image build' }],
    }),
  );
  const configDigest = digestOf(configDoc);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: mediaTypes.ociConfig, digest: configDigest, size: configDoc.length },
      layers: [{ mediaType: mediaTypes.ociLayerGzip, digest: layerDigest, size: layer.length }],
    }),
  );
  await registry.pushBlob(ref, layerDigest, layer, creds);
  await registry.pushBlob(ref, configDigest, configDoc, creds);
  await registry.pushManifest(ref, ref.tag ?? 'latest', mediaTypes.ociManifest, manifest, creds);
  return { manifestDigest: digestOf(manifest), configDigest, size: layer.length + configDoc.length };
}

/** The entries for a directory tree, placed under `prefix` in the image. Symlinks are kept as links. */
export async function entriesFromDirectory(dir: string, prefix = '/'): Promise<LayerEntry[]> {
  const out: LayerEntry[] = [];
  const walk = async (abs: string, rel: string) => {
    for (const name of (await readdir(abs)).sort()) {
      const a = path.join(abs, name);
      const r = path.posix.join(rel, name);
      const st = await lstat(a);
      if (st.isSymbolicLink()) out.push({ type: 'symlink', path: r, target: await readlink(a) });
      else if (st.isDirectory()) {
        out.push({ type: 'directory', path: r, mode: st.mode & 0o7777 });
        await walk(a, r);
      } else if (st.isFile()) out.push({ type: 'file', path: r, data: await readFile(a), mode: st.mode & 0o7777 });
    }
  };
  await walk(dir, prefix);
  return out;
}

async function packLayer(entries: LayerEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  const epoch = new Date(0);
  const dirs = new Set<string>();
  const ensureDirs = (p: string) => {
    const parts = p.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        pack.entry({ name: `${d}/`, type: 'directory', mode: 0o755, mtime: epoch, uid: 0, gid: 0 });
      }
    }
  };
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    ensureDirs(name);
    if (e.type === 'directory') {
      if (dirs.has(name)) continue;
      dirs.add(name);
      pack.entry({ name: `${name}/`, type: 'directory', mode: e.mode ?? 0o755, mtime: epoch, uid: 0, gid: 0 });
    } else if (e.type === 'symlink') pack.entry({ name, type: 'symlink', linkname: e.target, mode: 0o777, mtime: epoch, uid: 0, gid: 0 });
    else pack.entry({ name, type: 'file', mode: e.mode ?? 0o644, mtime: epoch, uid: 0, gid: 0, size: e.data.length }, e.data);
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

function digestOf(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}
