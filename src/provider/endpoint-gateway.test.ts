import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../observe/log.js';
import { EndpointGateway } from './endpoint-gateway.js';

/** Real sockets: an echo server on a unix socket stands for a control plane that takes a while to wake. */
test('a connection arriving while the backend wakes keeps its bytes, and refusals close it', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-gw-'));
  const sock = path.join(dir, 'api.sock');
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(sock, r));
  const gw = new EndpointGateway(createLogger({ test: 'gateway' }));
  let wakes = 0;
  let refuse = false;
  await gw.open('t/a', '127.0.0.1', 0, {
    resolve: async () => {
      if (refuse) throw new Error('stopped');
      wakes++;
      await new Promise((r) => setTimeout(r, 300));
      return sock;
    },
  });
  const port = gw.address('t/a') as net.AddressInfo;
  await assert.rejects(gw.open('t/b', '127.0.0.1', port.port, { resolve: async () => sock }), /already in use/);
  const talk = (payload: string) =>
    new Promise<string>((resolve, reject) => {
      const c = net.connect(port.port, '127.0.0.1');
      let got = '';
      c.on('connect', () => c.write(payload)); // written before the backend is up
      c.on('data', (d) => {
        got += d;
        if (got.length >= payload.length) c.end();
      });
      c.on('close', () => resolve(got));
      c.on('error', reject);
    });
  assert.equal(await talk('hello through the gateway'), 'hello through the gateway');
  assert.equal(wakes, 1);
  const act = gw.activity('t/a');
  assert.equal(act?.total, 1);
  assert.equal(act?.open, 0);
  refuse = true;
  assert.equal(await talk('nobody home'), '');
  await gw.closeAll();
  echo.close();
  await rm(dir, { recursive: true, force: true });
});
