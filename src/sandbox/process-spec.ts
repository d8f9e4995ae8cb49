import { KubicleError } from '../observe/errors.js';
import type { ContainerSpec } from './api/types.js';
import type { ImageConfig } from './images/image-store.js';

/*
 * What a container's process is, by Kubernetes' rules over the image's config: the same for every
 * runtime (runc writes it into an OCI spec, microvm hands it to its guest agent).
 */

/** The process argv by Kubernetes' rules: command replaces the entrypoint and drops the image cmd; args replace the cmd. */
export function resolveArgv(c: ContainerSpec, image: ImageConfig): string[] {
  const entrypoint = c.command?.length ? c.command : (image.Entrypoint ?? []);
  const cmd = c.args?.length ? c.args : c.command?.length ? [] : (image.Cmd ?? []);
  const argv = [...entrypoint, ...cmd];
  if (!argv.length) throw new KubicleError('Invalid', 'no command specified: the image has no entrypoint or cmd and the container gives none');
  return argv;
}

/** Environment: the image's, then the container's (later names win), with PATH and HOSTNAME set. */
export function resolveEnv(c: ContainerSpec, image: ImageConfig, hostname: string): string[] {
  const env = new Map<string, string>();
  env.set('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  for (const kv of image.Env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  env.set('HOSTNAME', hostname);
  for (const e of c.env ?? []) env.set(e.name, e.value);
  return [...env].map(([k, v]) => `${k}=${v}`);
}
