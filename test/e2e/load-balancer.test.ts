import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { freePort } from '../support/etcd.js';
import { cleanup, eventually, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

const execFileP = promisify(execFile);

/**
 * Load balancers and ingress on a local node, from the host: LoadBalancer Services get pool
 * addresses in status and answer there; externalTrafficPolicy Local shows the pod the client's
 * address; the PROXY protocol (v1, v2) by annotation; an exhausted pool and foreign addresses are
 * reported; Ingress routes by host and path, terminates TLS with a Secret, redirects plain HTTP,
 * reports conflicts and missing Secrets; and a second cluster may not take an overlapping pool.
 *
 * The "outside client" is an address on a veth interface the test creates (198.51.100.6): a
 * non-loopback source the pods can answer, which nothing else on the host uses.
 */
const podCidr = '10.246.6.0/24';
const gateway = '10.246.6.1';
const pool = '127.241.6.0/29'; // .1 the ingress controller's, .2–.6 for Services
const ingressIP = '127.241.6.1';
const bridge = 'kubtest6';
const outside = '198.51.100.6';
const dummy = 'kubtest6c';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  cert?: PeerCertificate;
}

/** One HTTP(S) request with a chosen Host (and SNI), source address and CA. */
function request(url: string, opts: { host?: string; localAddress?: string; ca?: string; anyName?: boolean } = {}): Promise<Reply> {
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(
      {
        host: u.hostname,
        port: u.port || (secure ? 443 : 80),
        path: u.pathname + u.search,
        headers: opts.host ? { Host: opts.host } : {},
        localAddress: opts.localAddress,
        agent: false,
        timeout: 5000,
        ...(secure ? { servername: opts.host ?? u.hostname, ca: opts.ca, rejectUnauthorized: opts.ca !== undefined, ...(opts.anyName ? { checkServerIdentity: () => undefined } : {}) } : {}),
      },
      (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, cert: secure ? (res.socket as TLSSocket).getPeerCertificate() : undefined }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Connects, sends `send`, and collects what comes back until the server closes (or `ms`). */
function exchange(ip: string, port: number, send: string, localAddress?: string, ms = 3000): Promise<{ data: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const c = net.connect({ host: ip, port, localAddress });
    const t = setTimeout(() => c.destroy(), ms);
    c.on('connect', () => c.end(send));
    c.on('data', (d) => chunks.push(d));
    c.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve({ data: Buffer.concat(chunks), error: e.code });
    });
    c.on('close', () => {
      clearTimeout(t);
      resolve({ data: Buffer.concat(chunks) });
    });
  });
}

describe('Load balancers and ingress (runc pods)', () => {
  let k: Kubicle;
  let kc: Awaited<ReturnType<typeof kubectlFor>>;
  let image: string;
  const ns = 'lb-e2e';

  const run = (args: string[], input?: string) => mustSucceed(kc)(args, input);
  const json = async (args: string[]) => JSON.parse(await run([...args, '-o', 'json']));
  const apply = (doc: object) => run(['apply', '-n', ns, '-f', '-'], JSON.stringify(doc));
  const lbIP = async (svc: string) => (await json(['get', 'svc', svc, '-n', ns])).status?.loadBalancer?.ingress?.[0]?.ip as string | undefined;
  const events = async (kind: string, name: string) =>
    (await json(['get', 'events', '-n', ns, '--field-selector', `involvedObject.kind=${kind},involvedObject.name=${name}`])).items.map((e: { reason: string; message: string }) => `${e.reason}: ${e.message}`);
  /** A pod whose busybox httpd serves its name at / and the client's address at /cgi-bin/ip. */
  const webPod = (name: string, role: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: 'web', role } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'httpd',
          image,
          command: ['sh', '-c', 'mkdir -p /www/cgi-bin /www/a && hostname > /www/index.html && hostname > /www/a/deeper && hostname > /www/b && printf "%s\\n" "$CGI" > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www'],
          // The client's address as httpd saw it (IPv4-mapped: httpd listens on IPv6).
          // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
          env: [{ name: 'CGI', value: '#!/bin/sh\na=${REMOTE_ADDR#"[::ffff:"}\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "${a%"]"}"' }],
          ports: [{ containerPort: 8080, name: 'http' }],
        },
        // Echoes each connection's bytes back, PROXY protocol header included.
        { name: 'echo', image, command: ['nc', '-ll', '-p', '9000', '-e', 'cat'] },
      ],
    },
  });
  const lbService = (name: string, extra: { selector?: object; spec?: object; annotations?: object; port?: number; targetPort?: number } = {}) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, annotations: extra.annotations },
    spec: { type: 'LoadBalancer', selector: extra.selector ?? { app: 'web' }, ports: [{ port: extra.port ?? 80, targetPort: extra.targetPort ?? 8080 }], ...extra.spec },
  });

  before(async () => {
    const registryPort = await freePort();
    image = `127.0.0.1:${registryPort}/kubicle/busybox:1`;
    await execFileP('ip', ['link', 'del', dummy]).catch(() => {});
    // A veth pair (this kernel has no dummy links); the address on one end is simply a local one.
    await execFileP('ip', ['link', 'add', dummy, 'type', 'veth', 'peer', 'name', `${dummy}p`]);
    await execFileP('ip', ['addr', 'add', `${outside}/32`, 'dev', dummy]);
    await execFileP('ip', ['link', 'set', dummy, 'up']);
    k = await startKubicle({
      args: ['--node', 'local', '--node-name', 'lb-node', '--pod-cidr', podCidr, '--service-cidr', '10.116.0.0/16', '--service-node-port-range', '31200-31299', '--load-balancer-pool', pool, '--bridge', bridge, '--registry-port', String(registryPort), '--kubelet-port', String(await freePort())],
    });
    kc = await kubectlFor(k, '1.33');
    await run(['create', 'namespace', ns]);
    await eventually(async () => (await kc(['get', 'node', 'lb-node'])).code === 0, 'the node registers');
    await apply(webPod('web-a', 'a'));
    await apply(webPod('web-b', 'b'));
    await run(['wait', '-n', ns, '--for=condition=Ready', 'pod/web-a', 'pod/web-b', '--timeout=60s']);
  });

  after(async () => {
    await kc(['delete', 'pods', '--all', '-n', ns, '--grace-period=0', '--force']);
    const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
    await eventually(async () => (await agent.listSandboxes()).length === 0, 'every sandbox is removed', 60_000).catch(() => {});
    await cleanup(k);
    await execFileP('ip', ['link', 'del', dummy]).catch(() => {});
    const tables = await execFileP('nft', ['list', 'tables']);
    assert.ok(!tables.stdout.includes(`${bridge}-services`), 'the service table is removed on stop');
    assert.deepEqual(await exchange(ingressIP, 80, ''), { data: Buffer.alloc(0), error: 'ECONNREFUSED' }, 'the ingress controller is gone');
  });

  it('a LoadBalancer Service gets a pool address in status and answers there from the host, balanced', async () => {
    await apply(lbService('web-lb'));
    await eventually(async () => (await lbIP('web-lb')) !== undefined, 'an address is assigned');
    const svc = await json(['get', 'svc', 'web-lb', '-n', ns]);
    assert.deepEqual(svc.status.loadBalancer.ingress, [{ ip: '127.241.6.2', ipMode: 'VIP' }]);
    assert.match(await run(['get', 'svc', 'web-lb', '-n', ns]), /web-lb\s+LoadBalancer\s+10\.116\.\S+\s+127\.241\.6\.2\s+80:31\d\d\d\/TCP/);
    assert.ok((await events('Service', 'web-lb')).includes('IPAllocated: Assigned IP 127.241.6.2 (ipMode VIP)'));
    const seen = new Set<string>();
    await eventually(async () => {
      seen.add((await request('http://127.241.6.2/')).body.trim());
      return seen.size === 2;
    }, 'both pods answer at the load balancer address');
    assert.deepEqual([...seen].sort(), ['web-a', 'web-b']);
    // The node port works beside it, and port 80 on other pool addresses is not captured.
    assert.equal((await exchange('127.241.6.5', 80, '')).error, 'ECONNREFUSED');
  });

  it('externalTrafficPolicy: Cluster masquerades; Local shows the pod the client address (loopback clients still masqueraded)', async () => {
    const cluster = await request('http://127.241.6.2/cgi-bin/ip', { localAddress: outside });
    assert.equal(cluster.body.trim(), gateway, 'Cluster: the pod sees the node');
    await run(['patch', 'svc', 'web-lb', '-n', ns, '-p', '{"spec":{"externalTrafficPolicy":"Local"}}']);
    await eventually(async () => (await request('http://127.241.6.2/cgi-bin/ip', { localAddress: outside })).body.trim() === outside, 'Local: the pod sees the client', 10_000);
    assert.equal((await request('http://127.241.6.2/cgi-bin/ip')).body.trim(), gateway, 'a 127.0.0.1 client cannot be answered by a pod, so it is masqueraded');
    await run(['patch', 'svc', 'web-lb', '-n', ns, '-p', '{"spec":{"externalTrafficPolicy":"Cluster"}}']);
  });

  it('the PROXY protocol by annotation: v1 and v2 headers carry the client and the address it dialled', async () => {
    await apply(lbService('echo-v1', { annotations: { 'service.kubicle.io/proxy-protocol': 'v1' }, selector: { role: 'a' }, port: 9000, targetPort: 9000 }));
    await apply(lbService('echo-v2', { annotations: { 'service.kubicle.io/proxy-protocol': 'v2' }, selector: { role: 'a' }, port: 9000, targetPort: 9000 }));
    await eventually(async () => (await lbIP('echo-v1')) !== undefined && (await lbIP('echo-v2')) !== undefined, 'addresses are assigned');
    const v1 = (await json(['get', 'svc', 'echo-v1', '-n', ns])).status.loadBalancer.ingress[0];
    assert.equal(v1.ipMode, 'Proxy');
    let reply = '';
    await eventually(async () => {
      reply = (await exchange(v1.ip, 9000, 'hello', outside)).data.toString('latin1');
      return reply.endsWith('hello');
    }, 'the v1 listener relays');
    assert.match(reply, new RegExp(`^PROXY TCP4 ${outside.replaceAll('.', '\\.')} ${v1.ip.replaceAll('.', '\\.')} \\d+ 9000\\r\\nhello$`));
    const v2ip = (await lbIP('echo-v2')) as string;
    let raw: Buffer = Buffer.alloc(0);
    await eventually(async () => {
      raw = (await exchange(v2ip, 9000, 'hello', outside)).data;
      return raw.toString('latin1').endsWith('hello');
    }, 'the v2 listener relays');
    assert.equal(raw.subarray(0, 12).toString('hex'), '0d0a0d0a000d0a515549540a');
    assert.equal(raw[13], 0x11, 'TCP over IPv4');
    assert.deepEqual([...raw.subarray(16, 20)], outside.split('.').map(Number), 'the client address');
    assert.deepEqual([...raw.subarray(20, 24)], v2ip.split('.').map(Number), 'the load balancer address');
    assert.equal(raw.readUInt16BE(26), 9000);
  });

  it('an exhausted pool and a foreign loadBalancerIP are reported; a freed address goes to the waiting Service', async () => {
    // web-lb, echo-v1 and echo-v2 hold .2–.4; two more fill the pool.
    await apply(lbService('fill-1'));
    await apply(lbService('fill-2'));
    await apply(lbService('waiting'));
    await apply(lbService('foreign', { spec: { loadBalancerIP: '127.0.0.1' } }));
    await eventually(async () => (await events('Service', 'waiting')).includes('AllocationFailed: no available IPs in the load balancer pool 127.241.6.0/29'), 'the exhausted pool is reported');
    await eventually(async () => (await events('Service', 'foreign')).includes('AllocationFailed: spec.loadBalancerIP 127.0.0.1 is not in the load balancer pool 127.241.6.0/29'), 'the foreign address is reported');
    assert.match(await run(['get', 'svc', 'waiting', '-n', ns]), /<pending>/);
    assert.equal(await lbIP('foreign'), undefined);
    // A Service that stops being a LoadBalancer gives its address back.
    const freed = (await lbIP('fill-1')) as string;
    await run(['patch', 'svc', 'fill-1', '-n', ns, '-p', '{"spec":{"type":"ClusterIP"}}']);
    await eventually(async () => (await lbIP('waiting')) === freed, 'the waiting Service gets the freed address');
    assert.deepEqual((await json(['get', 'svc', 'fill-1', '-n', ns])).status, { loadBalancer: {} });
    await run(['delete', 'svc', 'fill-1', 'fill-2', 'waiting', 'foreign', '-n', ns]);
  });

  it('Ingress: the default class, host and path routing, the address in status, 404 and 503', async () => {
    const cls = await json(['get', 'ingressclass', 'kubicle']);
    assert.equal(cls.spec.controller, 'kubicle.io/ingress-controller');
    assert.equal(cls.metadata.annotations['ingressclass.kubernetes.io/is-default-class'], 'true');
    for (const role of ['a', 'b']) {
      await apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${role}` }, spec: { selector: { role }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
    }
    await apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'nobody' }, spec: { selector: { role: 'none' }, ports: [{ port: 80 }] } });
    await apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'shop' },
      spec: {
        rules: [
          {
            host: 'shop.test',
            http: {
              paths: [
                { path: '/a', pathType: 'Prefix', backend: { service: { name: 'svc-a', port: { name: 'http' } } } },
                { path: '/b', pathType: 'Exact', backend: { service: { name: 'svc-b', port: { number: 80 } } } },
                { path: '/empty', pathType: 'Prefix', backend: { service: { name: 'nobody', port: { number: 80 } } } },
              ],
            },
          },
          { host: '*.apps.test', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'svc-b', port: { number: 80 } } } }] } },
        ],
      },
    });
    await eventually(async () => (await json(['get', 'ingress', 'shop', '-n', ns])).status?.loadBalancer?.ingress?.[0]?.ip === ingressIP, 'the address shows in status');
    assert.match(await run(['get', 'ingress', 'shop', '-n', ns]), /shop\s+<none>\s+shop\.test,\*\.apps\.test\s+127\.241\.6\.1\s+80/);
    const get = (p: string, host: string) => request(`http://${ingressIP}${p}`, { host });
    await eventually(async () => (await get('/a/deeper', 'shop.test')).body === 'web-a\n', 'a Prefix path routes');
    assert.equal((await get('/b', 'shop.test')).body, 'web-b\n');
    const halfClosed = await exchange(ingressIP, 80, 'GET /b HTTP/1.0\r\nHost: shop.test\r\n\r\n');
    assert.match(halfClosed.data.toString(), /^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nweb-b\n$/, 'a client that half-closes after its request still gets the answer');
    const notFound = await get('/b/more', 'shop.test');
    assert.equal(notFound.status, 404, 'an Exact path matches only itself');
    assert.match(notFound.body, /no Ingress rule matches/, "the controller's own 404, not the pod's");
    assert.match((await get('/ab', 'shop.test')).body, /no Ingress rule matches/, 'a Prefix matches whole path elements');
    assert.equal((await get('/', 'x.apps.test')).body, 'web-b\n', 'a wildcard host');
    assert.equal((await get('/a/deeper', 'other.test')).status, 404, 'an unknown host');
    const empty = await get('/empty', 'shop.test');
    assert.equal(empty.status, 503);
    assert.match(empty.body, /no ready endpoint for Service lb-e2e\/nobody/);
  });

  it("Ingress TLS: the Secret's certificate by SNI, the default one otherwise, plain HTTP redirected; a missing Secret is reported", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ingress-tls-'));
    await execFileP('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=secure.test', '-addext', 'subjectAltName=DNS:secure.test', '-keyout', `${dir}/tls.key`, '-out', `${dir}/tls.crt`]);
    await run(['create', 'secret', 'tls', 'secure-tls', '-n', ns, `--cert=${dir}/tls.crt`, `--key=${dir}/tls.key`]);
    const ca = await readFile(`${dir}/tls.crt`, 'utf8');
    await apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'secure' },
      spec: {
        ingressClassName: 'kubicle',
        tls: [{ hosts: ['secure.test'], secretName: 'secure-tls' }, { hosts: ['broken.test'], secretName: 'missing-tls' }],
        rules: ['secure.test', 'broken.test'].map((host) => ({ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'svc-a', port: { number: 80 } } } }] } })),
      },
    });
    let r: Reply | undefined;
    await eventually(async () => {
      r = await request(`https://${ingressIP}/`, { host: 'secure.test', ca }).catch(() => undefined);
      return r?.status === 200;
    }, 'HTTPS with the Secret\'s certificate, verified against it');
    assert.equal(r?.body, 'web-a\n');
    assert.equal(r?.cert?.subject?.CN, 'secure.test');
    const clusterCa = (await k.creds()).ca;
    const fallback = await request(`https://${ingressIP}/`, { host: 'broken.test', ca: clusterCa, anyName: true });
    assert.equal(fallback.status, 200, "without a usable Secret the default certificate (the cluster CA's, for the ingress address) is served");
    assert.equal(fallback.cert?.subject?.CN, 'kubicle-apiserver');
    const plain = await request(`http://${ingressIP}/x?y=1`, { host: 'secure.test' });
    assert.equal(plain.status, 308);
    assert.equal(plain.headers.location, 'https://secure.test/x?y=1');
    await eventually(async () => (await events('Ingress', 'secure')).some((e: string) => e === `InvalidCertificate: TLS Secret ${ns}/missing-tls does not exist; the default certificate is served`), 'the missing Secret is reported');
  });

  it('Ingress conflicts: the older Ingress keeps the rule and the newer one is told; a default backend catches the rest; bad Ingresses are refused', async () => {
    await apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'thief' },
      spec: {
        defaultBackend: { service: { name: 'svc-b', port: { number: 80 } } },
        rules: [{ host: 'shop.test', http: { paths: [{ path: '/a', pathType: 'Prefix', backend: { service: { name: 'svc-b', port: { number: 80 } } } }] } }],
      },
    });
    await eventually(async () => (await events('Ingress', 'thief')).includes(`Conflict: host shop.test path /a (Prefix) is already defined by Ingress ${ns}/shop; this one is ignored`), 'the conflict is reported');
    assert.equal((await request(`http://${ingressIP}/a/deeper`, { host: 'shop.test' })).body, 'web-a\n', 'the older rule still routes');
    assert.equal((await request(`http://${ingressIP}/`, { host: 'nowhere.test' })).body, 'web-b\n', 'the default backend');
    const bad = await kc(['apply', '-n', ns, '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'bad' }, spec: { rules: [{ host: 'x.test', http: { paths: [{ path: 'relative', pathType: 'Sideways', backend: { service: { name: 'svc-a', port: { number: 80 } } } }] } }] } }),
    });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /spec\.rules\[0\]\.http\.paths\[0\]\.pathType: Unsupported value: "Sideways"/);
    assert.match(bad.stderr, /spec\.rules\[0\]\.http\.paths\[0\]\.path: Invalid value: "relative": must be an absolute path/);
    assert.equal((await kc(['get', 'ingress', 'bad', '-n', ns])).code, 1, 'nothing was written');
  });

  it('a second cluster may not take an overlapping pool, nor a pool outside 127.0.0.0/8', async () => {
    const start = (poolArg: string) =>
      startKubicle({ args: ['--node', 'local', '--node-name', 'lb-node-2', '--pod-cidr', '10.246.7.0/24', '--service-cidr', '10.117.0.0/16', '--load-balancer-pool', poolArg, '--bridge', 'kubtest7', '--registry-port', '0', '--kubelet-port', '0'] });
    await assert.rejects(start('127.241.6.4/30'), /--load-balancer-pool 127\.241\.6\.4\/30 overlaps the load balancer pool 127\.241\.6\.0\/29 of the cluster on bridge kubtest6/);
    await assert.rejects(start('10.0.0.0/24'), /--load-balancer-pool "10\.0\.0\.0\/24" must be a network of at least 4 addresses inside 127\.0\.0\.0\/8/);
    await assert.rejects(start('127.0.0.0/16'), /outside 127\.0\.0\.0\/24/);
  });
});
