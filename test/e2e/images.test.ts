import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { isCode } from '../../src/observe/errors.js';
import { silentLogger } from '../../src/observe/log.js';
import { buildAndPush } from '../../src/sandbox/images/image-builder.js';
import { ImageStore } from '../../src/sandbox/images/image-store.js';
import { parseReference } from '../../src/sandbox/images/reference.js';
import { mediaTypes, RegistryClient } from '../../src/sandbox/images/registry-client.js';
import { RegistryServer } from '../../src/sandbox/images/registry-server.js';
import { busyboxImage } from '../../src/sandbox/images/sample-images.js';
import { freePort } from '../support/etcd.js';

/** The image path against a real CNCF Distribution registry: build, push, pull, unpack, GC, hostile layers. */

type RawEntry = { name: string; type: 'file' | 'directory' | 'symlink' | 'link'; data?: string; linkname?: string };

async function rawLayer(entries: RawEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const header = { name: e.name, type: e.type, linkname: e.linkname, mode: e.type === 'directory' ? 0o755 : 0o644, size: e.type === 'file' ? data.length : 0 };
    if (e.type === 'file') pack.entry(header, data);
    else pack.entry(header);
  }
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

const digest = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Pushes an image made of raw (possibly hostile) layers. */
async function pushRaw(client: RegistryClient, reference: string, layers: Buffer[]): Promise<void> {
  const ref = parseReference(reference);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'], Labels: { ref: reference } }, rootfs: { type: 'layers', diff_ids: [] } }));
  for (const l of layers) await client.pushBlob(ref, digest(l), l);
  await client.pushBlob(ref, digest(config), config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: mediaTypes.ociConfig, digest: digest(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: mediaTypes.ociLayerGzip, digest: digest(l), size: l.length })),
    }),
  );
  await client.pushManifest(ref, ref.tag ?? 'latest', mediaTypes.ociManifest, manifest);
}

describe('images', () => {
  let dir: string;
  let registry: string;
  const abort = new AbortController();
  const client = new RegistryClient();
  let store: ImageStore;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-images-'));
    const server = new RegistryServer({ dataDir: path.join(dir, 'registry'), port: await freePort() }, silentLogger);
    const running = server.run(abort.signal);
    await Promise.race([server.ready, running]);
    registry = server.address;
    store = new ImageStore(path.join(dir, 'images'), client, silentLogger);
  });
  after(async () => {
    abort.abort();
    await rm(dir, { recursive: true, force: true });
  });

  it('builds busybox, pushes it, pulls and unpacks it; a second pull fetches nothing new', async () => {
    const img = await busyboxImage();
    const built = await buildAndPush(client, `${registry}/kubicle/busybox:1`, img.entries, img.config);
    const pulled = await store.pull(`${registry}/kubicle/busybox:1`);
    assert.equal(pulled.id, built.configDigest);
    assert.equal(pulled.digest, built.manifestDigest);
    assert.deepEqual(pulled.config.Cmd, ['sh']);
    const [layer] = pulled.layerDirs;
    assert.equal((await lstat(path.join(layer, 'bin/busybox'))).mode & 0o777, 0o755);
    assert.equal(await readlink(path.join(layer, 'bin/sh')), '/bin/busybox');
    assert.equal((await lstat(path.join(layer, 'tmp'))).mode & 0o7777, 0o1777);
    const again = await store.pull(`${registry}/kubicle/busybox:1`);
    assert.equal(again.id, pulled.id);
    const byDigest = await store.find(`${registry}/kubicle/busybox@${built.manifestDigest}`);
    assert.equal(byDigest?.id, pulled.id);
  });

  it('reports an image that does not exist as NotFound with the registry message', async () => {
    await assert.rejects(store.pull(`${registry}/kubicle/nope:1`), (err: Error) => {
      assert.ok(isCode(err, 'NotFound'), String(err));
      assert.match(err.message, /kubicle\/nope.*(MANIFEST_UNKNOWN|NAME_UNKNOWN)/);
      return true;
    });
  });

  it('turns whiteouts into overlay whiteouts and opaque directories', async () => {
    const base = await rawLayer([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/gone', type: 'file', data: 'x' },
      { name: 'data/', type: 'directory' },
      { name: 'data/old', type: 'file', data: 'old' },
    ]);
    const top = await rawLayer([
      { name: 'etc/.wh.gone', type: 'file' },
      { name: 'data/.wh..wh..opq', type: 'file' },
      { name: 'data/new', type: 'file', data: 'new' },
    ]);
    await pushRaw(client, `${registry}/kubicle/whiteout:1`, [base, top]);
    const img = await store.pull(`${registry}/kubicle/whiteout:1`);
    const st = await lstat(path.join(img.layerDirs[1], 'etc/gone'));
    assert.ok(st.isCharacterDevice() && st.rdev === 0, 'a whiteout is a 0/0 character device');
    assert.deepEqual(await readdir(path.join(img.layerDirs[1], 'data')), ['new']);
    const { execFileSync } = await import('node:child_process');
    assert.match(execFileSync('getfattr', ['-n', 'trusted.overlay.opaque', '--only-values', path.join(img.layerDirs[1], 'data')]).toString(), /^y/);
  });

  for (const [what, entries] of [
    ['a name with ../', [{ name: '../../escaped-dotdot', type: 'file', data: 'pwned' }]],
    [
      'a file written through a symlink that points out',
      [
        { name: 'esc', type: 'symlink', linkname: '/tmp' },
        { name: 'esc/escaped-symlink', type: 'file', data: 'pwned' },
      ],
    ],
    [
      'a relative symlink climbing out',
      [
        { name: 'up', type: 'symlink', linkname: '../../../../../../tmp' },
        { name: 'up/escaped-relative', type: 'file', data: 'pwned' },
      ],
    ],
    ['a hard link to a host file', [{ name: 'pw', type: 'link', linkname: '../../../../../../etc/passwd' }]],
    ['a hard link to a file outside the layer', [{ name: 'pw', type: 'link', linkname: 'etc/shadow' }]],
  ] as [string, RawEntry[]][]) {
    it(`refuses a hostile layer: ${what}, writing nothing outside`, async () => {
      const name = `kubicle/hostile-${createHash('sha1').update(what).digest('hex').slice(0, 8)}:1`;
      await pushRaw(client, `${registry}/${name}`, [await rawLayer(entries)]);
      await assert.rejects(store.pull(`${registry}/${name}`), (err: Error) => {
        assert.ok(isCode(err, 'Invalid'), `${err}`);
        return true;
      });
      for (const f of ['/tmp/escaped-dotdot', '/tmp/escaped-symlink', '/tmp/escaped-relative', path.join(dir, 'escaped-dotdot'), path.join(dir, 'images/escaped-dotdot')])
        assert.ok(!existsSync(f), `${f} must not exist`);
      assert.equal(await store.find(`${registry}/${name}`), undefined);
      const passwd = await readFile('/etc/passwd', 'utf8');
      assert.ok(passwd.length > 0);
    });
  }

  it('a symlink to an absolute path is stored as a link, not followed', async () => {
    await pushRaw(client, `${registry}/kubicle/abs-link:1`, [await rawLayer([{ name: 'hostroot', type: 'symlink', linkname: '/' }])]);
    const img = await store.pull(`${registry}/kubicle/abs-link:1`);
    assert.equal(await readlink(path.join(img.layerDirs[0], 'hostroot')), '/');
  });

  it('prunes unused images and the layers only they had', async () => {
    const before = await store.list();
    const keep = before.find((i) => i.references.some((r) => r.includes('busybox')));
    assert.ok(keep);
    const removed = await store.prune(new Set([keep.id]));
    assert.ok(removed.length >= 2);
    const left = await store.list();
    assert.deepEqual(
      left.map((i) => i.id),
      [keep.id],
    );
    const layers = await readdir(path.join(dir, 'images/layers'));
    assert.deepEqual(layers, keep.layerDirs.map((d) => path.basename(d)));
  });
});
