import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { KubeClient, Obj } from '../client/kube-client.js';
import { KubicleError } from '../observe/errors.js';
import { silentLogger } from '../observe/log.js';
import { SandboxClient } from '../sandbox/api/client.js';
import type { HostInfo } from '../sandbox/api/types.js';
import { HostMonitor } from './host-monitor.js';

/**
 * The monitor against a stand-in host agent (named as such: an HTTP server on a unix socket
 * answering GET /v1/host; the real agent is asked in test/e2e/provider.test.ts) and a stand-in
 * provider client that keeps the one Host in memory. Time is the monitor's own: the grace period
 * here is short.
 */
test('a registered Host follows its agent: Ready at the first answer, NotReady once unanswered past the grace period, Ready again when it answers', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-hostmon-'));
  const sock = path.join(dir, 'agent.sock');
  const info: HostInfo = { hostname: 'h1', capacity: { cpuMillis: 2000, memoryBytes: 24 * 2 ** 30 }, availableMemoryBytes: 20 * 2 ** 30, runtimes: ['runc', 'microvm'] };
  const serve = () => {
    const s = http.createServer((req, res) => {
      if (req.url === '/v1/host') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(info));
      res.writeHead(404).end();
    });
    return new Promise<http.Server>((r) => s.listen(sock, () => r(s)));
  };
  let stored: Obj | undefined = { metadata: { name: 'h1', labels: { 'topology.kubernetes.io/zone': 'z1' } }, spec: { agent: { socket: sock } } };
  const client = {
    patch: async (p: string, body: Obj) => {
      assert.match(p, /\/hosts\/h1\/status$/);
      if (!stored) throw new KubicleError('NotFound', 'hosts.kubicle.io "h1" not found');
      stored.status = { ...stored.status, ...body.status };
      return stored;
    },
  } as unknown as KubeClient;
  const monitor = new HostMonitor(client, { name: 'h1', agent: new SandboxClient({ socketPath: sock }), intervalMs: 50, graceMs: 300 }, silentLogger);
  const ready = () => ((stored?.status?.conditions ?? []) as Obj[]).find((c) => c.type === 'Ready') as Obj;
  let agent = await serve();
  try {
    await monitor.beat();
    assert.deepEqual(stored?.status.capacity, { cpu: '2', memory: '24576Mi' });
    assert.deepEqual(stored?.status.runtimes, ['runc', 'microvm']);
    assert.equal(ready().status, 'True');
    const firstBeat = ready().lastHeartbeatTime;

    await new Promise((r) => agent.close(r));
    await monitor.beat();
    assert.equal(ready().status, 'True', 'within the grace period the host stays Ready');
    assert.equal(ready().lastHeartbeatTime, firstBeat, 'no answer, no heartbeat');

    await new Promise((r) => setTimeout(r, 350));
    await monitor.beat();
    assert.equal(ready().status, 'False');
    assert.equal(ready().reason, 'AgentUnreachable');
    assert.match(ready().message, /has not answered for \d+ s/);
    assert.deepEqual(stored?.status.capacity, { cpu: '2', memory: '24576Mi' }, 'the last known capacity stays');
    const wentDown = ready().lastTransitionTime;

    agent = await serve();
    await new Promise((r) => setTimeout(r, 5));
    await monitor.beat();
    assert.equal(ready().status, 'True');
    assert.ok(ready().lastTransitionTime > wentDown);
    assert.ok(ready().lastHeartbeatTime > firstBeat);

    stored = undefined;
    await monitor.beat();
    assert.equal(stored, undefined, 'a Host the operator deleted is not made again');
  } finally {
    agent.close();
    await rm(dir, { recursive: true, force: true });
  }
});
