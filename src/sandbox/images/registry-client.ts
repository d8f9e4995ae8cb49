import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { KubicleError } from '../../observe/errors.js';
import type { ImageReference } from './reference.js';

/** Credentials for one registry, as a pull secret gives them. */
export interface RegistryCredentials {
  username?: string;
  password?: string;
  /** A registry token given directly (identitytoken / registrytoken). */
  token?: string;
}

/** How to reach a registry host. Loopback hosts default to plain HTTP, everything else to HTTPS. */
export interface RegistryEndpoint {
  insecureHttp?: boolean;
  /** Extra CA certificates (PEM) to trust for this registry. */
  caPem?: string;
}

export const mediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

const manifestAccept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerList, mediaTypes.dockerManifest].join(', ');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  urls?: string[];
}

export interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Readable;
}

const maxManifestBytes = 4 << 20;
const maxRedirects = 5;

/**
 * A client of the OCI distribution API (the protocol of Docker Hub, CNCF Distribution, Harbor,
 * ghcr …): resolve a reference to a platform manifest, fetch blobs, and push (for
 * `kubicle image push`). Authentication follows the registry's challenge: Basic, or Bearer with a
 * token from the realm it names; tokens are cached per registry and scope until they expire.
 * Registry errors become KubicleErrors whose message quotes the registry's own.
 */
export class RegistryClient {
  private readonly tokens = new Map<string, { token: string; until: number }>();

  constructor(
    private readonly endpoints: (registry: string) => RegistryEndpoint = () => ({}),
    private readonly platform = { os: 'linux', architecture: 'amd64' },
  ) {}

  /**
   * Resolves a reference to the digest and manifest for this platform. An index is followed to
   * its platform entry. NotFound when the registry does not know the name, tag or digest.
   */
  async resolve(ref: ImageReference, creds?: RegistryCredentials): Promise<{ digest: string; manifest: Manifest }> {
    let target = ref.digest ?? ref.tag ?? 'latest';
    for (let depth = 0; depth < 2; depth++) {
      const res = await this.request(ref, 'GET', `/manifests/${target}`, creds, { accept: manifestAccept }, 'pull');
      const raw = await readAll(res.body, maxManifestBytes);
      const digest = (res.headers['docker-content-digest'] as string | undefined) ?? `sha256:${sha256(raw)}`;
      if (target.startsWith('sha256:') && `sha256:${sha256(raw)}` !== target) throw new KubicleError('Invalid', `manifest ${target} does not match its digest`);
      let doc: Record<string, unknown>;
      try {
        doc = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new KubicleError('Invalid', `registry sent a manifest that is not JSON for ${target}`);
      }
      const type = (doc.mediaType as string | undefined) ?? String(res.headers['content-type'] ?? '').split(';')[0];
      if (type === mediaTypes.ociIndex || type === mediaTypes.dockerList || (Array.isArray(doc.manifests) && !doc.layers)) {
        const entries = (doc.manifests as Descriptor[] | undefined) ?? [];
        const pick = entries.find((m) => m.platform?.os === this.platform.os && m.platform?.architecture === this.platform.architecture);
        if (!pick) throw new KubicleError('NotFound', `no image for platform ${this.platform.os}/${this.platform.architecture} in ${target}`);
        target = pick.digest;
        continue;
      }
      if (type === 'application/vnd.docker.distribution.manifest.v1+prettyjws' || doc.schemaVersion === 1)
        throw new KubicleError('Unsupported', 'Docker schema 1 manifests are not supported; push the image again with a current client');
      const manifest = doc as unknown as Manifest;
      if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new KubicleError('Invalid', `manifest ${target} has no config or layers`);
      return { digest, manifest };
    }
    throw new KubicleError('Invalid', 'image index nests another index');
  }

  /** A blob's bytes as a stream (the caller checks its digest). NotFound for an unknown blob. */
  async blob(ref: ImageReference, digest: string, creds?: RegistryCredentials): Promise<Readable> {
    return (await this.request(ref, 'GET', `/blobs/${digest}`, creds, {}, 'pull')).body;
  }

  /** Whether the registry has a blob already (push skips it then). */
  async hasBlob(ref: ImageReference, digest: string, creds?: RegistryCredentials): Promise<boolean> {
    try {
      const res = await this.request(ref, 'HEAD', `/blobs/${digest}`, creds, {}, 'pull,push');
      res.body.resume();
      return true;
    } catch (err) {
      if (err instanceof KubicleError && err.code === 'NotFound') return false;
      throw err;
    }
  }

  /** Uploads one blob in a single request (monolithic upload). Idempotent. */
  async pushBlob(ref: ImageReference, digest: string, data: Buffer, creds?: RegistryCredentials): Promise<void> {
    if (await this.hasBlob(ref, digest, creds)) return;
    const start = await this.request(ref, 'POST', '/blobs/uploads/', creds, { 'content-length': '0' }, 'pull,push');
    start.body.resume();
    const location = start.headers.location;
    if (!location) throw new KubicleError('Invalid', 'registry gave no upload location');
    const base = this.baseUrl(ref.registry);
    const url = new URL(location, base);
    url.searchParams.set('digest', digest);
    const put = await this.request(ref, 'PUT', url.toString(), creds, { 'content-type': 'application/octet-stream', 'content-length': String(data.length) }, 'pull,push', data);
    put.body.resume();
  }

  /** Puts a manifest under a tag or digest. */
  async pushManifest(ref: ImageReference, target: string, mediaType: string, data: Buffer, creds?: RegistryCredentials): Promise<void> {
    const res = await this.request(ref, 'PUT', `/manifests/${target}`, creds, { 'content-type': mediaType, 'content-length': String(data.length) }, 'pull,push', data);
    res.body.resume();
  }

  private baseUrl(registry: string): string {
    const ep = this.endpoints(registry);
    const host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
    const loopback = /^(localhost|127\.[0-9.]+|\[::1\])(:\d+)?$/.test(host);
    return `${ep.insecureHttp ?? loopback ? 'http' : 'https'}://${host}`;
  }

  private async request(
    ref: ImageReference,
    method: string,
    pathOrUrl: string,
    creds: RegistryCredentials | undefined,
    headers: Record<string, string>,
    actions: string,
    body?: Buffer,
  ): Promise<Response> {
    const url = pathOrUrl.startsWith('http') ? pathOrUrl : `${this.baseUrl(ref.registry)}/v2/${ref.repository}${pathOrUrl}`;
    const scope = `repository:${ref.repository}:${actions}`;
    const cacheKey = `${ref.registry}|${scope}`;
    const cached = this.tokens.get(cacheKey);
    const auth = cached && cached.until > Date.now() ? `Bearer ${cached.token}` : creds?.username ? basic(creds) : undefined;
    let res = await this.send(ref.registry, method, url, { ...headers, ...(auth ? { authorization: auth } : {}) }, body);
    if (res.status === 401) {
      res.body.resume();
      const challenge = String(res.headers['www-authenticate'] ?? '');
      const retryAuth = await this.answer(ref.registry, challenge, creds, scope, cacheKey);
      if (retryAuth) res = await this.send(ref.registry, method, url, { ...headers, authorization: retryAuth }, body);
    }
    if (res.status >= 200 && res.status < 300) return res;
    const text = method === 'HEAD' ? '' : (await readAll(res.body, 64 << 10).catch(() => Buffer.alloc(0))).toString('utf8');
    throw registryError(res.status, text, `${ref.registry}/${ref.repository}`);
  }

  /** Answers a 401 challenge with credentials or a fetched token; undefined when it cannot. */
  private async answer(registry: string, challenge: string, creds: RegistryCredentials | undefined, scope: string, cacheKey: string): Promise<string | undefined> {
    const [scheme] = challenge.split(' ', 1);
    if (/^basic$/i.test(scheme)) return creds?.username ? basic(creds) : undefined;
    if (!/^bearer$/i.test(scheme)) return undefined;
    const params: Record<string, string> = {};
    for (const m of challenge.slice(scheme.length).matchAll(/([a-zA-Z]+)="([^"]*)"/g)) params[m[1].toLowerCase()] = m[2];
    if (!params.realm) return undefined;
    const tokenUrl = new URL(params.realm);
    if (params.service) tokenUrl.searchParams.set('service', params.service);
    tokenUrl.searchParams.set('scope', params.scope ?? scope);
    const headers: Record<string, string> = creds?.username ? { authorization: basic(creds) } : {};
    const res = await this.send(registry, 'GET', tokenUrl.toString(), headers);
    const raw = await readAll(res.body, 1 << 20);
    if (res.status !== 200) throw new KubicleError('Unauthorized', `registry token service refused (${res.status}): ${raw.toString('utf8').slice(0, 300)}`);
    const doc = JSON.parse(raw.toString('utf8')) as { token?: string; access_token?: string; expires_in?: number };
    const token = doc.token ?? doc.access_token;
    if (!token) throw new KubicleError('Unauthorized', 'registry token service returned no token');
    this.tokens.set(cacheKey, { token, until: Date.now() + Math.max(30, (doc.expires_in ?? 60) - 10) * 1000 });
    return `Bearer ${token}`;
  }

  private send(registry: string, method: string, url: string, headers: Record<string, string>, body?: Buffer, redirects = 0): Promise<Response> {
    const ep = this.endpoints(registry);
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(u, { method, headers: { 'user-agent': 'kubicle', ...headers }, ca: ep.caPem, timeout: 30_000 }, (res) => {
        const status = res.statusCode ?? 0;
        if ([301, 302, 303, 307, 308].includes(status) && res.headers.location && redirects < maxRedirects) {
          res.resume();
          const next = new URL(res.headers.location, u).toString();
          // A redirect to blob storage elsewhere must not carry the registry's credentials.
          const { authorization: _drop, ...rest } = headers;
          const keep = new URL(next).host === u.host ? headers : rest;
          resolve(this.send(registry, method === 'HEAD' ? 'HEAD' : status === 303 ? 'GET' : method, next, keep, status === 303 ? undefined : body, redirects + 1));
          return;
        }
        resolve({ status, headers: res.headers, body: res });
      });
      req.on('timeout', () => req.destroy(new KubicleError('Timeout', `registry ${registry} did not answer in time`)));
      req.on('error', (err) => reject(err instanceof KubicleError ? err : new KubicleError('Unavailable', `cannot reach registry ${registry}: ${(err as Error).message}`, { cause: err })));
      req.end(body);
    });
  }
}

function basic(c: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${c.username ?? ''}:${c.password ?? ''}`).toString('base64')}`;
}

function registryError(status: number, text: string, name: string): KubicleError {
  let message = text.trim().slice(0, 300);
  try {
    const doc = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    if (doc.errors?.length) message = doc.errors.map((e) => `${e.code ?? 'UNKNOWN'}: ${e.message ?? ''}`).join('; ');
  } catch {
    /* not JSON: keep the text */
  }
  const say = `${name}: ${message || `HTTP ${status}`}`;
  if (status === 404) return new KubicleError('NotFound', `${say}: not found`);
  if (status === 401) return new KubicleError('Unauthorized', `${say}: authorization failed`);
  if (status === 403) return new KubicleError('Forbidden', say);
  if (status === 429) return new KubicleError('TooManyRequests', say);
  return new KubicleError(status >= 500 ? 'Unavailable' : 'BadRequest', `${say} (HTTP ${status})`);
}

async function readAll(body: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    size += (c as Buffer).length;
    if (size > max) {
      body.destroy();
      throw new KubicleError('TooLarge', `registry response larger than ${max} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
