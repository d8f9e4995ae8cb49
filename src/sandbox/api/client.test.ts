import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { SandboxClient } from './client.js';
import { execSubprotocol } from './streams.js';

/**
 * Stream sessions must not lose what the agent sends at once. The stand-in agent here answers the
 * upgrade and sends its first message in the same write, as a fast process's output can arrive
 * with the real agent's 101; the caller listens only later, and must still see it.
 */
describe('SandboxClient streams', () => {
  let dir: string;
  let server: http.Server;
  const upgraded = new Set<Duplex>();

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-client-'));
    server = http.createServer((_req, res) => res.writeHead(404).end());
    server.on('upgrade', (req, socket) => {
      upgraded.add(socket);
      const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      const payload = Buffer.from('\x01first output');
      const head = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${execSubprotocol}\r\n\r\n`;
      // One unmasked binary frame (RFC 6455 §5.2) right behind the handshake.
      socket.write(Buffer.concat([Buffer.from(head), Buffer.from([0x82, payload.length]), payload]));
    });
    await new Promise<void>((resolve) => server.listen(path.join(dir, 'agent.sock'), resolve));
  });

  after(async () => {
    for (const socket of upgraded) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('hands over an exec session paused, so output sent with the upgrade waits for its reader', async () => {
    const client = new SandboxClient({ socketPath: path.join(dir, 'agent.sock') });
    const ws = await client.execStream('sb', 'c', { command: ['true'], stdin: false, tty: true });
    await new Promise((r) => setTimeout(r, 50));
    const first = new Promise<Buffer | undefined>((resolve) => {
      ws.once('message', resolve);
      setTimeout(() => resolve(undefined), 5_000).unref();
    });
    ws.resume();
    assert.equal((await first)?.subarray(1).toString(), 'first output', 'the message sent with the upgrade reaches the reader');
    ws.terminate();
  });
});

describe('SandboxClient calls', () => {
  it('a call to an agent that never answers fails with Timeout after the client\'s bound; a signal of its own wins', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-client-'));
    // A stand-in agent that accepts and never answers, as a stopped (SIGSTOP) one does.
    const silent = http.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(path.join(dir, 'agent.sock'), resolve));
    try {
      const client = new SandboxClient({ socketPath: path.join(dir, 'agent.sock') }, 200);
      const started = Date.now();
      await assert.rejects(client.getSandbox('x'), (err: Error & { code?: string }) => err.code === 'Timeout' && /did not answer GET \/v1\/sandboxes\/x in time/.test(err.message));
      assert.ok(Date.now() - started >= 190, 'not before the bound');
      await assert.rejects(client.host(AbortSignal.timeout(20)), (err: Error & { code?: string }) => err.code !== undefined);
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
