import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import dnsPacket from 'dns-packet';
import { KubeClient, type Obj } from '../../src/client/kube-client.js';
import { renderServiceRules, servicePortRules } from '../../src/network/service-rules.js';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { freePort } from '../../test/support/etcd.js';
import { cleanup, startKubicle } from '../../test/support/kubicle.js';
import { f1, load, summary } from '../api/stats.js';

/**
 * bench/network: through the node's service proxy and cluster DNS, each beside a floor measured in
 * the same run:
 * - new TCP connections (one HTTP/1.0 request each) per second and their latency, to a busybox
 *   httpd pod through its ClusterIP (nftables DNAT), its LoadBalancer address (the same DNAT),
 *   the ingress controller (HTTP, L7), and the two candidate PROXY protocol relays — the built-in
 *   one and Debian's HAProxy (when installed) — all beside the pod's own address. httpd does not
 *   speak the PROXY protocol, so through both relays it answers 400: the same work for both;
 * - DNS queries per second at the cluster DNS beside a bare UDP echo server in Node;
 * - time from creating 1,000 Services (with EndpointSlices) until all are in the kernel's tables,
 *   beside creating them in the API alone and beside one `nft -f` of the same rule set;
 * - with those 1,000 in place, time for one endpoint change to reach the kernel.
 * If this process is the UDP echo child, it serves and does nothing else.
 */
const CONNS = Number(process.env.BENCH_CONNS ?? 2000);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 1000);
const DNS_SECONDS = 3;

if (process.env.BENCH_UDP_ECHO) {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  s.bind(0, '127.0.0.1', () => process.send?.(s.address().port));
} else {
  await main();
}


async function main() {
  const podCidr = '10.248.0.0/24';
  const gateway = '10.248.0.1';
  const bridge = 'kubbench1';
  const table = `${bridge}-services`;
  const registryPort = await freePort();
  const image = `127.0.0.1:${registryPort}/kubicle/busybox:1`;
  const k = await startKubicle({
    args: ['--node', 'local', '--load-balancer-pool', '127.241.18.0/28', '--node-name', 'bench-net', '--pod-cidr', podCidr, '--service-cidr', '10.118.0.0/16', '--bridge', bridge, '--registry-port', String(registryPort), '--kubelet-port', String(await freePort())],
  });
  try {
    const { ca, cert, key } = await k.creds();
    const client = new KubeClient({ server: k.url, caPem: ca, certPem: cert, keyPem: key });
    const ns = 'bench';
    await client.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    await until(async () => (await client.get('/api/v1/nodes')).items.length > 0, 'the node registers');
    await client.create(`/api/v1/namespaces/${ns}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'srv', labels: { app: 'srv' } },
      spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'c', image, command: ['sh', '-c', 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www'] }] },
    });
    const svc = await client.create(`/api/v1/namespaces/${ns}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'srv' }, spec: { selector: { app: 'srv' }, ports: [{ port: 80, targetPort: 8080 }] } });
    await until(async () => (await client.get(`/api/v1/namespaces/${ns}/pods/srv`)).status?.phase === 'Running', 'the server pod runs', 60_000);
    const podIP = (await client.get(`/api/v1/namespaces/${ns}/pods/srv`)).status.podIP as string;
    const clusterIP = svc.spec.clusterIP as string;
    await until(() => request(clusterIP, 80).then(() => true), 'the cluster IP answers');

    // The same pod behind a LoadBalancer (kernel DNAT), one with the PROXY protocol (the built-in
    // relay), an Ingress, and HAProxy relaying with the PROXY protocol as the other candidate.
    const lbSvc = (name: string, annotations: object = {}) =>
      client.create(`/api/v1/namespaces/${ns}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name, annotations }, spec: { type: 'LoadBalancer', selector: { app: 'srv' }, ports: [{ port: 80, targetPort: 8080 }] } });
    await lbSvc('srv-lb');
    await lbSvc('srv-proxy', { 'service.kubicle.io/proxy-protocol': 'v1' });
    await client.create(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses`, {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'srv' },
      spec: { rules: [{ host: 'srv.bench', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'srv', port: { number: 80 } } } }] } }] },
    });
    const lbIP = async (name: string) => (await client.get(`/api/v1/namespaces/${ns}/services/${name}`)).status?.loadBalancer?.ingress?.[0]?.ip as string | undefined;
    await until(async () => !!(await lbIP('srv-lb')) && !!(await lbIP('srv-proxy')), 'load balancer addresses');
    const vip = (await lbIP('srv-lb')) as string;
    const relay = (await lbIP('srv-proxy')) as string;
    const ingressIP = '127.241.18.1';
    await until(() => request(vip, 80).then(() => true), 'the load balancer answers');
    await until(() => request(relay, 80).then(() => true), 'the relay answers');
    await until(() => request(ingressIP, 80, 'srv.bench').then((status) => status === 200), 'the ingress answers');
    const haproxy = startHaproxy('127.241.18.14', 80, podIP, 8080);
    if (haproxy) await until(() => request('127.241.18.14', 80).then(() => true), 'haproxy answers');

    // Connections: alternate rounds so drift on the shared machine hits all alike.
    type Kind = 'pod' | 'service' | 'lb' | 'ingress' | 'relay' | 'haproxy';
    const targets: [Kind, string, number, string?][] = [
      ['pod', podIP, 8080],
      ['service', clusterIP, 80],
      ['lb', vip, 80],
      ['ingress', ingressIP, 80, 'srv.bench'],
      ['relay', relay, 80],
      ...(haproxy ? [['haproxy', '127.241.18.14', 80] as [Kind, string, number]] : []),
    ];
    const rounds = Object.fromEntries(targets.map(([kind]) => [kind, [] as { perSec: number; p50: number; p99: number }[]])) as Record<Kind, { perSec: number; p50: number; p99: number }[]>;
    for (let round = 0; round < 3; round++) {
      for (const [kind, host, port, vhost] of targets) {
        const r = await load(CONNS, 8, async () => void (await request(host, port, vhost)));
        const s = summary(r.latencies);
        rounds[kind].push({ perSec: (CONNS / r.wallMs) * 1000, p50: s.p50, p99: s.p99 });
      }
    }
    haproxy?.kill();
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const conn = (kind: Kind) => ({ perSec: med(rounds[kind].map((r) => r.perSec)), p50: med(rounds[kind].map((r) => r.p50)), p99: med(rounds[kind].map((r) => r.p99)) });

    // DNS: queries for a Service name at the cluster DNS, beside a UDP echo in another Node process.
    const echo = fork(process.argv[1], [], { env: { ...process.env, BENCH_UDP_ECHO: '1' }, stdio: 'ignore' }) as ReturnType<typeof fork>;
    const echoPort = await new Promise<number>((resolve) => echo.once('message', (p) => resolve(Number(p))));
    const query = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `srv.${ns}.svc.cluster.local` }] });
    const dns = await udpLoad(gateway, 53, query, (reply) => dnsPacket.decode(reply).answers?.length === 1);
    const floor = await udpLoad('127.0.0.1', echoPort, query, (reply) => reply.length === query.length);
    echo.kill();

    // 1,000 Services with EndpointSlices, from the first create to all programmed.
    const before = countServiceIps(table);
    const t0 = performance.now();
    const created = await load(SERVICES, 32, async (i) => {
      await client.create(`/api/v1/namespaces/${ns}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}` }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
      await client.create(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, slice(`s${i}`, podIP));
    });
    const apiMs = performance.now() - t0;
    await until(async () => countServiceIps(table) >= before + SERVICES, `${SERVICES} services programmed`, 120_000, 20);
    const programmedMs = performance.now() - t0;
    // The floor: one nft transaction with the same rules, rendered here.
    const services = (await client.get(`/api/v1/namespaces/${ns}/services`)).items as Obj[];
    const slices = (await client.get(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`)).items as Obj[];
    const script = renderServiceRules({ table: 'kubbench-floor', bridge, podCidr, gateway, nodeName: 'bench-net' }, servicePortRules(services, slices, 'bench-net'));
    const nftTimes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      execFileSync('nft', ['-f', '-'], { input: script });
      nftTimes.push(performance.now() - t);
    }
    execFileSync('nft', ['delete', 'table', 'ip', 'kubbench-floor']);

    // One endpoint change among 1,000 Services: patch a slice to a new port, wait for its DNAT.
    const changes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const port = 9000 + i;
      const t = performance.now();
      await client.patch(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/s${i}`, { ports: [{ name: 'http', port, protocol: 'TCP' }] });
      await until(async () => execFileSync('nft', ['list', 'table', 'ip', table], { maxBuffer: 256 * 2 ** 20 }).toString().includes(`${podIP}:${port}`), 'the change is programmed', 30_000, 5);
      changes.push(performance.now() - t);
    }

    const p = conn('pod');
    console.log(`bench/network (${CONNS} connections × 3 rounds each, medians of rounds; ${SERVICES} services)`);
    const labels: Record<Kind, string> = {
      pod: '',
      service: 'ClusterIP (nft DNAT)',
      lb: 'LoadBalancer VIP (nft DNAT)',
      ingress: 'Ingress (built-in HTTP proxy)',
      relay: 'PROXY relay, built-in (400)',
      haproxy: 'PROXY relay, HAProxy (400)',
    };
    for (const [kind] of targets.slice(1)) {
      const s = conn(kind);
      console.log(`connections/s via ${labels[kind].padEnd(30)} ${f1(s.perSec)}/s   p50 ${f1(s.p50)} ms  p99 ${f1(s.p99)} ms   | floor direct to pod IP: ${f1(p.perSec)}/s  p50 ${f1(p.p50)} ms  p99 ${f1(p.p99)} ms   ratio ${f1(p.perSec / s.perSec)}×`);
    }
    if (!haproxy) console.log('(haproxy is not installed: scripts/setup.sh installs it)');
    console.log(`DNS queries/s (A, UDP, 32 in flight): ${f1(dns.perSec)}/s   p50 ${f1(dns.p50)} ms  p99 ${f1(dns.p99)} ms   | floor UDP echo (Node): ${f1(floor.perSec)}/s   ratio ${f1(floor.perSec / dns.perSec)}×`);
    console.log(`${SERVICES} Services created → all programmed: ${f1(programmedMs)} ms   | API creates alone: ${f1(apiMs)} ms (${f1(created.wallMs)} ms wall); one nft -f of the same table: p50 ${f1(summary(nftTimes).p50)} ms`);
    console.log(`one endpoint change with ${SERVICES} Services → programmed: p50 ${f1(summary(changes).p50)} ms  max ${f1(Math.max(...changes))} ms`);
  } catch (err) {
    console.error('bench/network failed:', err);
    process.exitCode = 1;
  } finally {
    await stopCluster(k).catch((err) => console.error('cleanup:', err.message));
  }
}

async function stopCluster(k: Awaited<ReturnType<typeof startKubicle>>): Promise<void> {
  const { ca, cert, key } = await k.creds();
  const client = new KubeClient({ server: k.url, caPem: ca, certPem: cert, keyPem: key });
  await client.delete('/api/v1/namespaces/bench/pods?gracePeriodSeconds=0').catch(() => {});
  const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
  await until(async () => !(await agent.listSandboxes()).length, 'sandboxes are gone', 60_000).catch(() => {});
  await cleanup(k);
}

function slice(name: string, ip: string): Obj {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, labels: { 'kubernetes.io/service-name': name } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [ip], conditions: { ready: true } }],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

/** One new connection, an HTTP/1.0 request (with a Host when given), the whole response; its status. */
function request(host: string, port: number, vhost?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host);
    let head = '';
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.once('connect', () => s.end(`GET / HTTP/1.0\r\n${vhost ? `Host: ${vhost}\r\n` : ''}\r\n`));
    s.on('data', (d) => {
      if (head.length < 16) head += d.toString('latin1');
    });
    s.once('end', () => resolve(Number(head.split(' ')[1])));
    s.once('error', reject);
  });
}

/** HAProxy in TCP mode relaying to the pod with a PROXY protocol v1 header; undefined if not installed. */
function startHaproxy(ip: string, port: number, podIP: string, podPort: number): ChildProcess | undefined {
  try {
    execFileSync('haproxy', ['-v']);
  } catch {
    return undefined;
  }
  const cfg = `global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\nfrontend lb\n  bind ${ip}:${port}\n  default_backend pods\nbackend pods\n  server srv ${podIP}:${podPort} send-proxy\n`;
  const file = path.join(os.tmpdir(), `kubicle-bench-haproxy-${process.pid}.cfg`);
  writeFileSync(file, cfg);
  return spawn('haproxy', ['-db', '-f', file], { stdio: 'ignore' });
}

/** Sends `query` with 32 in flight for DNS_SECONDS; per-reply latency and rate. */
async function udpLoad(host: string, port: number, query: Buffer, ok: (reply: Buffer) => boolean): Promise<{ perSec: number; p50: number; p99: number }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, r));
  const sent = new Map<number, number>();
  const latencies: number[] = [];
  let id = 0;
  const end = performance.now() + DNS_SECONDS * 1000;
  const send = () => {
    if (performance.now() > end) return;
    id = (id + 1) & 0xffff;
    const q = Buffer.from(query);
    q.writeUInt16BE(id, 0);
    sent.set(id, performance.now());
    sock.send(q, port, host);
  };
  sock.on('message', (m) => {
    const t = sent.get(m.readUInt16BE(0));
    if (t === undefined || !ok(m)) return;
    sent.delete(m.readUInt16BE(0));
    latencies.push(performance.now() - t);
    send();
  });
  const t0 = performance.now();
  for (let i = 0; i < 32; i++) send();
  await new Promise((r) => setTimeout(r, DNS_SECONDS * 1000 + 200));
  sock.close();
  const s = summary(latencies);
  return { perSec: (latencies.length / (performance.now() - t0 - 200)) * 1000, p50: s.p50, p99: s.p99 };
}

function countServiceIps(table: string): number {
  try {
    const out = JSON.parse(execFileSync('nft', ['-j', 'list', 'map', 'ip', table, 'service-ips'], { maxBuffer: 256 * 2 ** 20 }).toString());
    const map = out.nftables.find((x: Obj) => x.map)?.map;
    return map?.elem?.length ?? 0;
  } catch {
    return 0;
  }
}

async function until(check: () => Promise<boolean>, what: string, ms = 20_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
