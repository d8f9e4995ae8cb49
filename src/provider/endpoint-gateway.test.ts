import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
      return [sock];
    },
  });
  const port = gw.address('t/a') as net.AddressInfo;
  await assert.rejects(gw.open('t/b', '127.0.0.1', port.port, { resolve: async () => [sock] }), /already in use/);
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

test("a connection goes to the first replica that accepts it: a dead one's socket is passed over", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-gw-'));
  const serve = async (name: string, reply: string) => {
    const server = net.createServer((s) => s.end(reply));
    await new Promise<void>((r) => server.listen(path.join(dir, name), r));
    return server;
  };
  const first = await serve('first.sock', 'first');
  const second = await serve('second.sock', 'second');
  // A replica that died leaves its socket file behind: connecting to it is refused.
  const dead = await serve('dead.sock', 'dead');
  await new Promise((r) => dead.close(r));
  await writeFile(path.join(dir, 'dead.sock'), '');
  let order = ['first.sock', 'second.sock'];
  const gw = new EndpointGateway(createLogger({ test: 'gateway' }));
  await gw.open('t/ha', '127.0.0.1', 0, { resolve: async () => order.map((n) => path.join(dir, n)) });
  const port = (gw.address('t/ha') as net.AddressInfo).port;
  const read = () =>
    new Promise<string>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1');
      let got = '';
      c.on('data', (d) => {
        got += d;
      });
      c.on('close', () => resolve(got));
      c.on('error', reject);
    });
  assert.equal(await read(), 'first', 'the first replica while it serves');
  order = ['gone.sock', 'dead.sock', 'second.sock'];
  assert.equal(await read(), 'second', 'past a missing and a refusing socket');
  order = ['gone.sock', 'dead.sock'];
  assert.equal(await read(), '', 'none serving: the connection is closed');
  assert.equal(gw.activity('t/ha')?.open, 0);
  await gw.closeAll();
  first.close();
  second.close();
  await rm(dir, { recursive: true, force: true });
});
