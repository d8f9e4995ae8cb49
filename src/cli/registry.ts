import path from 'node:path';
import type { Logger } from '../observe/log.js';
import { buildAndPush } from '../sandbox/images/image-builder.js';
import { RegistryClient } from '../sandbox/images/registry-client.js';
import { RegistryServer } from '../sandbox/images/registry-server.js';
import { busyboxImage } from '../sandbox/images/sample-images.js';
import type { Config } from './config.js';

/**
 * The embedded image registry on 127.0.0.1:--registry-port with the busybox sample pushed (what
 * pods and control-plane sandboxes start from); undefined when the port is 0. Its serving
 * promise joins `waits`.
 */
export async function startRegistry(config: Config, dataDir: string, log: Logger, signal: AbortSignal, waits: Promise<unknown>[]): Promise<string | undefined> {
  if (Number(config['registry-port']) <= 0) return undefined;
  const server = new RegistryServer({ dataDir: path.join(dataDir, 'registry'), port: Number(config['registry-port']) }, log.with({ component: 'registry' }));
  const serving = server.run(signal);
  await Promise.race([server.ready, serving]);
  waits.push(serving.catch((err) => log.error('registry stopped', { err })));
  const img = await busyboxImage();
  await buildAndPush(new RegistryClient(), `${server.address}/kubicle/busybox:1`, img.entries, img.config);
  return server.address;
}
