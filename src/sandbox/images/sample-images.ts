import { execFile } from 'node:child_process';
import { readFile, realpath } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { LayerEntry } from './image-builder.js';
import type { ImageConfig } from './image-store.js';

const run = promisify(execFile);

/**
 * The two small images Kubicle ships for trying it out and for its own tests, made from files
 * on this host (no container engine, no download): `busybox` (Debian's static busybox with every
 * applet linked, /etc/passwd with root and nobody, /tmp, and /var/www for httpd) and `node-web`
 * (the host's Node.js with the shared libraries it loads, and a small web app on port 8080).
 */
export interface SampleImage {
  name: string;
  entries: LayerEntry[];
  config: ImageConfig;
}

const path_ = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function baseFiles(): LayerEntry[] {
  return [
    { type: 'file', path: '/etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n') },
    { type: 'file', path: '/etc/group', data: Buffer.from('root:x:0:\nnogroup:x:65534:\n') },
    { type: 'file', path: '/etc/hosts', data: Buffer.from('127.0.0.1 localhost\n') },
    { type: 'directory', path: '/tmp', mode: 0o1777 },
    { type: 'directory', path: '/root', mode: 0o700 },
    { type: 'directory', path: '/proc' },
    { type: 'directory', path: '/sys' },
    { type: 'directory', path: '/dev' },
  ];
}

export async function busyboxImage(busybox = '/bin/busybox'): Promise<SampleImage> {
  const { stdout } = await run(busybox, ['--list-full']);
  const entries: LayerEntry[] = [...baseFiles(), { type: 'file', path: '/bin/busybox', data: await readFile(busybox), mode: 0o755 }];
  for (const applet of stdout.split('\n').filter(Boolean)) {
    if (applet === 'bin/busybox') continue;
    entries.push({ type: 'symlink', path: `/${applet}`, target: '/bin/busybox' });
  }
  entries.push({ type: 'file', path: '/var/www/index.html', data: Buffer.from('hello from kubicle busybox\n') });
  return { name: 'busybox', entries, config: { Env: [path_], Cmd: ['sh'] } };
}

const webApp = `const http = require('node:http');
const os = require('node:os');
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  if (req.url === '/healthz') { res.end('ok'); return; }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ hostname: os.hostname(), url: req.url, pid: process.pid }) + '\\n');
}).listen(port, () => console.log('listening on ' + port));
process.on('SIGTERM', () => { console.log('SIGTERM: bye'); process.exit(0); });
`;

export async function nodeWebImage(node = process.execPath): Promise<SampleImage> {
  const bin = await realpath(node);
  const { stdout } = await run('ldd', [bin]);
  const entries: LayerEntry[] = [...baseFiles(), { type: 'file', path: '/usr/local/bin/node', data: await readFile(bin), mode: 0o755 }];
  for (const line of stdout.split('\n')) {
    const m = /(\/\S+) \(0x/.exec(line) ?? /=> (\/\S+)/.exec(line);
    if (!m) continue;
    const lib = m[1];
    entries.push({ type: 'file', path: lib, data: await readFile(await realpath(lib)), mode: 0o755 });
  }
  entries.push({ type: 'file', path: '/app/server.js', data: Buffer.from(webApp) });
  return { name: 'node-web', entries, config: { Env: [path_], Entrypoint: ['/usr/local/bin/node'], Cmd: ['/app/server.js'], WorkingDir: '/app', ExposedPorts: { '8080/tcp': {} } } };
}
