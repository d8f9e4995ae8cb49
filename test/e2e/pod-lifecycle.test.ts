import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { freePort } from '../support/etcd.js';
import { cleanup, eventually, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * Probes and lifecycle hooks on a local node, with stock kubectl: liveness restarts, readiness
 * gates the Ready condition and the Service's endpoints, startup holds the others back, and
 * postStart/preStop run (preStop's httpGet reaches a server of this test on the host); and
 * `kubectl top` reads metrics.k8s.io computed from the containers' cgroups.
 */
const podCidr = '10.246.2.0/24';
const bridge = 'kubtest2';
const serviceCidr = '10.112.0.0/16';

describe('probes and lifecycle hooks (runc pods)', () => {
  let k: Kubicle;
  let kc: Awaited<ReturnType<typeof kubectlFor>>;
  let image: string;
  const ns = 'lifecycle-e2e';
  const hits: string[] = [];
  let hookServer: http.Server;

  const run = async (args: string[], input?: string) => {
    const r = await kc(args, input === undefined ? {} : { input });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const pod = async (name: string) => JSON.parse(await run(['get', 'pod', name, '-n', ns, '-o', 'json']));
  const events = async (name: string) =>
    (JSON.parse(await run(['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${name}`, '-o', 'json'])).items as { reason: string; message: string }[]).map((e) => `${e.reason}: ${e.message}`);
  const apply = (doc: object) => run(['apply', '-n', ns, '-f', '-'], JSON.stringify(doc));
  const podDoc = (name: string, container: object, extra: object = {}) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name } },
    spec: { terminationGracePeriodSeconds: 2, containers: [{ name: 'c', image, ...container }], ...extra },
  });

  before(async () => {
    hookServer = http.createServer((req, res) => {
      hits.push(req.url ?? '');
      res.end('ok');
    });
    await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
    const registryPort = await freePort();
    image = `127.0.0.1:${registryPort}/kubicle/busybox:1`;
    k = await startKubicle({ args: ['--node', 'local', '--load-balancer-pool', '127.241.12.0/28', '--node-name', 'lifecycle-node', '--pod-cidr', podCidr, '--service-cidr', serviceCidr, '--bridge', bridge, '--registry-port', String(registryPort), '--restart-backoff', '1', '--kubelet-port', String(await freePort())] });
    kc = await kubectlFor(k, '1.33');
    await run(['create', 'namespace', ns]);
    await eventually(async () => (await kc(['get', 'node', 'lifecycle-node'])).code === 0, 'the node registers');
  });

  after(async () => {
    await kc(['delete', 'pods', '--all', '-n', ns, '--grace-period=0', '--force']);
    const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
    await eventually(async () => (await agent.listSandboxes()).length === 0, 'every sandbox is removed', 60_000).catch(() => {});
    await cleanup(k);
    hookServer.close();
  });

  it('a failing liveness probe restarts the container, with Unhealthy and Killing events', async () => {
    await apply(
      podDoc('live', {
        command: ['sh', '-c', 'touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 3600'],
        livenessProbe: { exec: { command: ['cat', '/tmp/healthy'] }, periodSeconds: 1, failureThreshold: 2 },
      }),
    );
    await eventually(async () => (await pod('live')).status.containerStatuses?.[0]?.restartCount >= 1, 'the container is restarted', 60_000);
    const st = (await pod('live')).status.containerStatuses[0];
    assert.equal(st.lastState.terminated.exitCode, 137, 'killed after its grace period (sh as PID 1 ignores SIGTERM)');
    const ev = await events('live');
    assert.ok(ev.some((e) => e.startsWith("Unhealthy: Liveness probe failed: cat: can't open '/tmp/healthy'")), ev.join('\n'));
    assert.ok(ev.includes('Killing: Container c failed liveness probe, will be restarted'), ev.join('\n'));
  });

  it('readiness (httpGet) gates Ready and the Service endpoints, both ways', async () => {
    await apply(
      podDoc('ready', {
        command: ['httpd', '-f', '-p', '8080', '-h', '/tmp'],
        ports: [{ name: 'web', containerPort: 8080 }],
        readinessProbe: { httpGet: { path: '/ready', port: 'web' }, periodSeconds: 1, failureThreshold: 1 },
      }),
    );
    await run(['expose', 'pod', 'ready', '-n', ns, '--port=80', '--target-port=8080']);
    const ready = async () => (await pod('ready')).status.conditions?.find((c: { type: string }) => c.type === 'Ready')?.status;
    const endpoints = async () => JSON.parse(await run(['get', 'endpoints', 'ready', '-n', ns, '-o', 'json'])).subsets?.[0] ?? {};
    await eventually(async () => (await pod('ready')).status.phase === 'Running', 'the pod runs', 60_000);
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(await ready(), 'False', 'not ready while /ready answers 404');
    await eventually(async () => (await endpoints()).notReadyAddresses?.length === 1, 'the address is listed as not ready');
    await run(['exec', '-n', ns, 'ready', '--', 'touch', '/tmp/ready']);
    await eventually(async () => (await ready()) === 'True', 'ready once /ready answers 200');
    await eventually(async () => (await endpoints()).addresses?.length === 1, 'the address is in rotation');
    await run(['exec', '-n', ns, 'ready', '--', 'rm', '/tmp/ready']);
    await eventually(async () => (await ready()) === 'False', 'not ready again when /ready goes away');
    const ev = await events('ready');
    assert.ok(ev.some((e) => e === 'Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 404'), ev.join('\n'));
    assert.equal((await pod('ready')).status.containerStatuses[0].restartCount, 0, 'readiness never restarts');
  });

  it('a startup probe (tcpSocket) holds started and ready back until it passes; one that never passes restarts the container', async () => {
    await apply(
      podDoc('slow', {
        command: ['sh', '-c', 'sleep 3; exec httpd -f -p 8080 -h /tmp'],
        startupProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1, failureThreshold: 20 },
        livenessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
      }),
    );
    await eventually(async () => (await pod('slow')).status.containerStatuses?.[0]?.state?.running !== undefined, 'the container runs', 60_000);
    const early = (await pod('slow')).status.containerStatuses[0];
    assert.equal(early.started, false, 'not started before the port opens');
    assert.equal(early.ready, false);
    await eventually(async () => (await pod('slow')).status.containerStatuses[0].started === true, 'started once the port accepts');
    assert.equal((await pod('slow')).status.containerStatuses[0].ready, true);
    assert.equal((await pod('slow')).status.containerStatuses[0].restartCount, 0, 'the liveness probe waited for startup');

    await apply(podDoc('never', { command: ['sleep', '3600'], startupProbe: { exec: { command: ['false'] }, periodSeconds: 1, failureThreshold: 2 } }));
    await eventually(async () => (await pod('never')).status.containerStatuses?.[0]?.restartCount >= 1, 'restarted after the startup probe gives up', 60_000);
    assert.ok((await events('never')).includes('Killing: Container c failed startup probe, will be restarted'));
  });

  it('postStart runs before the container counts as running; preStop runs on deletion, before SIGTERM', async () => {
    const port = (hookServer.address() as AddressInfo).port;
    await apply(
      podDoc('hooks', {
        command: ['sleep', '3600'],
        lifecycle: {
          postStart: { exec: { command: ['sh', '-c', 'echo started > /tmp/poststart'] } },
          preStop: { httpGet: { host: '127.0.0.1', port, path: '/prestop/hooks' } },
        },
      }),
    );
    await eventually(async () => (await pod('hooks')).status.containerStatuses?.[0]?.state?.running !== undefined, 'the container runs', 60_000);
    assert.equal((await run(['exec', '-n', ns, 'hooks', '--', 'cat', '/tmp/poststart'])).trim(), 'started');
    await run(['delete', 'pod', 'hooks', '-n', ns, '--wait=true']);
    assert.ok(hits.includes('/prestop/hooks'), `preStop called the host (got ${JSON.stringify(hits)})`);

    await apply(podDoc('badhook', { command: ['sleep', '3600'], lifecycle: { postStart: { exec: { command: ['sh', '-c', 'exit 9'] } } } }));
    await eventually(async () => (await events('badhook')).some((e) => e.startsWith('FailedPostStartHook')), 'a failing postStart is reported', 60_000);
    await eventually(async () => (await pod('badhook')).status.containerStatuses?.[0]?.restartCount >= 1, 'and its container is killed and restarted', 60_000);
  });

  it('kubectl top (1.27 and 1.33): a busy container shows CPU, a filled tmpfs shows memory, the node shows both', async () => {
    await apply(podDoc('burn', { command: ['sh', '-c', 'head -c 40000000 /dev/zero > /dev/shm/fill; while true; do :; done'] }));
    await eventually(async () => (await pod('burn')).status.phase === 'Running', 'the pod runs', 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const m = JSON.parse(await run(['get', '--raw', `/apis/metrics.k8s.io/v1beta1/namespaces/${ns}/pods/burn`]));
    assert.equal(m.kind, 'PodMetrics');
    const cpu = Number(String(m.containers[0].usage.cpu).replace(/n$/, '')) / 1e6;
    const memKi = Number(String(m.containers[0].usage.memory).replace(/Ki$/, ''));
    assert.ok(cpu >= 200, `a busy loop uses a good part of a core (${cpu}m)`);
    assert.ok(memKi >= 38_000, `40 MB in tmpfs are charged to the container (${memKi}Ki)`);
    for (const v of ['1.27', '1.33']) {
      const kv = await kubectlFor(k, v);
      const pods = await kv(['top', 'pod', '-n', ns, 'burn', '--containers']);
      assert.equal(pods.code, 0, pods.stderr);
      assert.match(pods.stdout, /burn\s+c\s+\d+m\s+\d+Mi/);
      const nodes = await kv(['top', 'node', 'lifecycle-node']);
      assert.equal(nodes.code, 0, nodes.stderr);
      assert.match(nodes.stdout, /lifecycle-node\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%/);
    }
    const missing = await kc(['top', 'pod', '-n', ns, 'ghost']);
    assert.match(missing.stderr, /podmetrics.metrics.k8s.io "ghost" not found/);
  });

  it('a PersistentVolumeClaim from the default local-path class keeps its data from one pod to the next', async () => {
    await apply({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } });
    const withClaim = (name: string, command: string[]) =>
      podDoc(name, { command, volumeMounts: [{ name: 'data', mountPath: '/data' }] }, { restartPolicy: 'Never', volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }] });
    await apply(withClaim('writer', ['sh', '-c', 'echo kept > /data/file']));
    await eventually(async () => (await pod('writer')).status.phase === 'Succeeded', 'the writer finishes', 60_000);
    await apply(withClaim('reader', ['cat', '/data/file']));
    await eventually(async () => (await pod('reader')).status.phase === 'Succeeded', 'the reader finishes', 60_000);
    assert.equal((await run(['logs', '-n', ns, 'reader'])).trim(), 'kept');
    const pvc = JSON.parse(await run(['get', 'pvc', 'data', '-n', ns, '-o', 'json']));
    assert.equal(pvc.status.phase, 'Bound');
  });
  it('a pod gets the kube-api-access volume: a bound token the API server accepts, the cluster CA and its namespace', async () => {
    await apply(podDoc('in-cluster', { command: ['sleep', '3600'] }));
    await eventually(async () => (await pod('in-cluster')).status.phase === 'Running', 'the pod runs', 60_000);
    const spec = (await pod('in-cluster')).spec;
    assert.equal(spec.serviceAccountName, 'default');
    const volume = spec.volumes.find((v: { name: string }) => v.name.startsWith('kube-api-access-'));
    assert.ok(volume?.projected, 'the projected volume was added');
    assert.deepEqual(spec.containers[0].volumeMounts, [{ name: volume.name, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }]);
    const read = (file: string) => run(['exec', '-n', ns, 'in-cluster', '--', 'cat', `/var/run/secrets/kubernetes.io/serviceaccount/${file}`]);
    assert.equal(await read('namespace'), ns);
    assert.equal(await read('ca.crt'), await readFile(path.join(k.dataDir, 'pki', 'ca.crt'), 'utf8'));
    const token = await read('token');
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    assert.equal(claims.sub, `system:serviceaccount:${ns}:default`);
    assert.equal(claims['kubernetes.io'].pod.name, 'in-cluster');
    // The token works against the API server, as a client library in the pod would use it.
    const who = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: k.port, method: 'POST', path: '/apis/authentication.k8s.io/v1/selfsubjectreviews', ca: readFileSync(path.join(k.dataDir, 'pki', 'ca.crt')), headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks).toString()));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }));
    });
    assert.equal(JSON.parse(who).status.userInfo.username, `system:serviceaccount:${ns}:default`);

    // Opting out on the pod leaves it without the volume; a missing account refuses the pod.
    await apply(podDoc('no-token', { command: ['sleep', '1'] }, { automountServiceAccountToken: false, restartPolicy: 'Never' }));
    assert.equal((await pod('no-token')).spec.volumes, undefined);
    const missing = await kc(['apply', '-n', ns, '-f', '-'], { input: JSON.stringify(podDoc('ghost-account', { command: ['sleep', '1'] }, { serviceAccountName: 'ghost' })) });
    assert.match(missing.stderr, /error looking up service account lifecycle-e2e\/ghost: serviceaccount "ghost" not found/);
  });
});
