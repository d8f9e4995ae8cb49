import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ReplicaHealth } from './replica-health.js';

/** A replica's API socket as the prober meets it: TLS for the name `kubernetes`, /readyz answering with `status`, or never. */
async function replica(dir: string, name: string, cert: { key: string; cert: string }, answer: () => number | 'never') {
  const socket = path.join(dir, `${name}.sock`);
  const server = https.createServer(cert, (req, res) => {
    const a = answer();
    if (a === 'never') return; // a stuck process: the connection is accepted, nothing comes back
    res.writeHead(req.url === '/readyz' ? a : 404);
    res.end(a === 200 ? 'ok' : '[-]etcd failed: reason withheld\nreadyz check failed\n');
  });
  await new Promise<void>((r) => server.listen(socket, r));
  return {
    socket,
    close: () => {
      const closed = new Promise((r) => server.close(r));
      server.closeAllConnections();
      return closed;
    },
  };
}

describe('replica health', () => {
  let dir: string;
  let cert: { key: string; cert: string };
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-health-'));
    // A self-signed certificate for `kubernetes`: its own CA, as the cluster CA is to the API server's.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=kubernetes', '-addext', 'subjectAltName=DNS:kubernetes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    cert = { key: await readFile(path.join(dir, 'key.pem'), 'utf8'), cert: await readFile(path.join(dir, 'cert.pem'), 'utf8') };
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('a ready replica stays first; one answering 500 goes last but is not hung', async () => {
    let status = 200;
    const a = await replica(dir, 'a', cert, () => status);
    const b = await replica(dir, 'b', cert, () => 200);
    const health = new ReplicaHealth(500);
    assert.deepEqual(health.order([a.socket, b.socket]), [a.socket, b.socket], 'not probed yet: ready');
    await health.probe(a.socket, cert.cert);
    assert.equal(health.ready(a.socket), true);
    status = 500;
    for (let i = 0; i < 4; i++) await health.probe(a.socket, cert.cert);
    assert.equal(health.ready(a.socket), false);
    assert.equal(health.hung(a.socket), false, 'it answers: alive, only not ready');
    assert.deepEqual(health.order([a.socket, b.socket]), [b.socket, a.socket]);
    status = 200;
    await health.probe(a.socket, cert.cert);
    assert.deepEqual(health.order([a.socket, b.socket]), [a.socket, b.socket], 'ready again: first again');
    health.forget([a.socket, b.socket]);
    await a.close();
    await b.close();
  });

  it('a replica that accepts but never answers is hung after three probes', async () => {
    const stuck = await replica(dir, 'stuck', cert, () => 'never');
    const health = new ReplicaHealth(300);
    await health.probe(stuck.socket, cert.cert);
    assert.equal(health.ready(stuck.socket), false);
    assert.equal(health.hung(stuck.socket), false, 'one unanswered probe is not yet hung');
    await health.probe(stuck.socket, cert.cert);
    await health.probe(stuck.socket, cert.cert);
    assert.equal(health.hung(stuck.socket), true);
    health.forget([stuck.socket]);
    assert.equal(health.hung(stuck.socket), false, 'forgotten (restarted): judged afresh');
    assert.equal(health.ready(stuck.socket), true);
    await stuck.close();
  });

  it('a socket nobody serves, or a certificate of another CA, counts as unanswered', async () => {
    const health = new ReplicaHealth(300);
    const gone = path.join(dir, 'gone.sock');
    for (let i = 0; i < 3; i++) await health.probe(gone, cert.cert);
    assert.equal(health.hung(gone), true);
    const other = await replica(dir, 'other', cert, () => 200);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=kubernetes', '-addext', 'subjectAltName=DNS:kubernetes', '-keyout', path.join(dir, 'k2.pem'), '-out', path.join(dir, 'c2.pem')], { stdio: 'ignore' });
    await health.probe(other.socket, await readFile(path.join(dir, 'c2.pem'), 'utf8'));
    assert.equal(health.ready(other.socket), false, 'not the cluster\'s own API server');
    health.forget([gone, other.socket]);
    await other.close();
  });
});
