import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { createLogger } from '../observe/log.js';
import { ProxyForwarder, proxyHeader } from './proxy-forwarder.js';

test('PROXY protocol headers, versions 1 and 2', () => {
  const src = { ip: '198.51.100.7', port: 40000 };
  const dst = { ip: '127.241.0.2', port: 80 };
  assert.equal(proxyHeader('v1', src, dst).toString(), 'PROXY TCP4 198.51.100.7 127.241.0.2 40000 80\r\n');
  assert.equal(proxyHeader('v2', src, dst).toString('hex'), `0d0a0d0a000d0a515549540a${'2111000c'}c6336407${'7ff10002'}${'9c40'}${'0050'}`);
});

test('the forwarder prepends the header, relays both ways, and resets clients when there is no backend', async (t) => {
  const backend = net.createServer((c) => c.pipe(c)); // echoes everything, header included
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const bport = (backend.address() as net.AddressInfo).port;
  const fwd = new ProxyForwarder(createLogger({}, () => {}));
  t.after(() => {
    fwd.close();
    backend.close();
  });
  let endpoints = [{ ip: '127.0.0.1', port: bport }];
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.9', r));
  const port = (probe.address() as net.AddressInfo).port;
  probe.close();
  await fwd.sync([{ ip: '127.0.0.9', port, version: 'v1', endpoints: () => endpoints }]);
  const talk = () =>
    new Promise<{ data: string; error?: string }>((resolve) => {
      const c = net.connect({ host: '127.0.0.9', port, localAddress: '127.0.0.3' });
      let data = '';
      c.on('data', (d) => {
        data += d;
      });
      c.on('connect', () => c.end('hello')); // half-closed at once: the answer must still come
      c.on('error', (e: NodeJS.ErrnoException) => resolve({ data, error: e.code }));
      c.on('close', () => resolve({ data }));
    });
  const r = await talk();
  assert.match(r.data, new RegExp(`^PROXY TCP4 127\\.0\\.0\\.3 127\\.0\\.0\\.9 \\d+ ${port}\\r\\nhello$`));
  endpoints = [];
  assert.equal((await talk()).error, 'ECONNRESET');
  await fwd.sync([]);
  assert.equal((await talk()).error, 'ECONNREFUSED', 'a removed listener is closed');
});
