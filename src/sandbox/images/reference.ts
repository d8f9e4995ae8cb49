import { KubicleError } from '../../observe/errors.js';

/**
 * An image reference split the way container runtimes read them: `busybox` is
 * docker.io/library/busybox:latest; a first component with a dot, a colon or `localhost`
 * names the registry; `@sha256:…` pins a digest (a tag beside it is kept only for display).
 */
export interface ImageReference {
  /** host[:port] of the registry. */
  registry: string;
  /** The repository path inside the registry, e.g. library/busybox. */
  repository: string;
  tag?: string;
  digest?: string;
}

const dockerHub = 'docker.io';
const component = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const digestPattern = /^sha256:[a-f0-9]{64}$/;

export function parseReference(ref: string): ImageReference {
  const bad = (why: string) => new KubicleError('Invalid', `invalid image reference ${JSON.stringify(ref)}: ${why}`);
  if (!ref || ref.length > 4096) throw bad('empty or too long');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestPattern.test(digest)) throw bad('digest must be sha256:<64 hex digits>');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) throw bad('invalid tag');
  }
  const parts = rest.split('/');
  let registry = dockerHub;
  if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) registry = parts.shift() as string;
  if (registry === 'index.docker.io') registry = dockerHub;
  if (registry === dockerHub && parts.length === 1) parts.unshift('library');
  for (const p of parts) if (!component.test(p)) throw bad(`invalid repository component ${JSON.stringify(p)}`);
  if (!/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(registry)) throw bad('invalid registry host');
  if (!tag && !digest) tag = 'latest';
  return { registry, repository: parts.join('/'), tag, digest };
}

/** The canonical text of a reference: registry/repository[:tag][@digest]. */
export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}
