import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { freePort } from '../support/etcd.js';
import { httpGet } from '../support/http.js';
import { cleanup, eventually, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

const execFileP = promisify(execFile);

/**
 * Services and cluster DNS on a local node, from inside real pods (busybox wget and nslookup) and
 * from the host: a Service by name and FQDN, headless records, node ports, readiness taking an
 * endpoint out of rotation, instant refusal without endpoints, ClientIP affinity, the pod's
 * resolv.conf per dnsPolicy, NetworkPolicy ingress and egress, and bad input to the allocator,
 * the policy API and the DNS server.
 */
const podCidr = '10.246.3.0/24';
const gateway = '10.246.3.1';
const serviceCidr = '10.113.0.0/16';
const dnsIP = '10.113.0.10';
const bridge = 'kubtest3';
const table = `${bridge}-services`;
const nodePorts = '31000-31099';

describe('Services and cluster DNS (runc pods)', () => {
  let k: Kubicle;
  let kc: Awaited<ReturnType<typeof kubectlFor>>;
  let image: string;
  const ns = 'net-e2e';

  const run = (args: string[], input?: string) => mustSucceed(kc)(args, input);
  const json = async (args: string[]) => JSON.parse(await run([...args, '-o', 'json']));
  const apply = (doc: object) => run(['apply', '-n', ns, '-f', '-'], JSON.stringify(doc));
  /** A command in the client pod; resolves its output and exit code. */
  const inClient = async (cmd: string) => {
    const r = await kc(['exec', '-n', ns, 'client', '--', 'sh', '-c', cmd]);
    return { code: r.code, out: r.stdout + r.stderr };
  };
  // busybox 1.35's wget crashes with -T, so the time limit is busybox's timeout.
  const fetch = (url: string) => inClient(`timeout 5 wget -qO- ${url}`);
  const webPod = (name: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: 'web' } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'httpd',
          image,
          command: ['sh', '-c', 'mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www'],
          ports: [{ containerPort: 8080, name: 'http' }],
          readinessProbe: { exec: { command: ['cat', '/tmp/ready'] }, periodSeconds: 1, failureThreshold: 1 },
        },
      ],
    },
  });
  const readyEndpoints = async (svc: string) => {
    const slices = (await json(['get', 'endpointslices', '-n', ns, '-l', `kubernetes.io/service-name=${svc}`])).items;
    return slices.flatMap((s: { endpoints?: { addresses: string[]; conditions: { ready: boolean } }[] }) => (s.endpoints ?? []).filter((e) => e.conditions.ready).map((e) => e.addresses[0])).sort();
  };

  /** An A query from the host, straight to a DNS server; the answers' addresses. */
  const hostLookup = async (server: string, name: string) => {
    const sock = dgram.createSocket('udp4');
    try {
      const reply = await new Promise<Buffer>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no answer from ${server}`)), 2000);
        sock.once('message', (m) => {
          clearTimeout(t);
          resolve(m);
        });
        sock.send(dnsPacket.encode({ type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), 53, server);
      });
      return (dnsPacket.decode(reply).answers ?? []).map((a) => (a as { data: string }).data);
    } finally {
      sock.close();
    }
  };

  before(async () => {
    const registryPort = await freePort();
    image = `127.0.0.1:${registryPort}/kubicle/busybox:1`;
    k = await startKubicle({
      args: ['--node', 'local', '--load-balancer-pool', '127.241.3.0/28', '--node-name', 'net-node', '--pod-cidr', podCidr, '--service-cidr', serviceCidr, '--service-node-port-range', nodePorts, '--bridge', bridge, '--registry-port', String(registryPort), '--kubelet-port', String(await freePort())],
    });
    kc = await kubectlFor(k, '1.33');
    await run(['create', 'namespace', ns]);
    await eventually(async () => (await kc(['get', 'node', 'net-node'])).code === 0, 'the node registers');
    await apply(webPod('web-a'));
    await apply(webPod('web-b'));
    await apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client' }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image, command: ['sleep', '3600'] }] } });
    await apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } });
    await apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web-headless' }, spec: { clusterIP: 'None', selector: { app: 'web' }, ports: [{ name: 'http', port: 8080 }] } });
    await run(['wait', '-n', ns, '--for=condition=Ready', 'pod/web-a', 'pod/web-b', 'pod/client', '--timeout=60s']);
    await eventually(async () => (await readyEndpoints('web')).length === 2, 'both web pods are endpoints');
  });

  after(async () => {
    await kc(['delete', 'pods', '--all', '-n', ns, '--grace-period=0', '--force']);
    const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
    await eventually(async () => (await agent.listSandboxes()).length === 0, 'every sandbox is removed', 60_000).catch(() => {});
    await cleanup(k);
    const tables = await execFileP('nft', ['list', 'tables']);
    assert.ok(!tables.stdout.includes(table), `the service table is removed on stop: ${tables.stdout}`);
    const routes = await execFileP('ip', ['route', 'show', serviceCidr]);
    assert.equal(routes.stdout.trim(), '', 'the service route is removed on stop');
  });

  it('the kubernetes and kube-dns Services take the 1st and 10th addresses of the service range', async () => {
    assert.equal((await json(['get', 'svc', 'kubernetes', '-n', 'default'])).spec.clusterIP, '10.113.0.1');
    const dns = await json(['get', 'svc', 'kube-dns', '-n', 'kube-system']);
    assert.equal(dns.spec.clusterIP, dnsIP);
    assert.deepEqual(dns.spec.ports.map((p: { name: string; protocol: string; port: number }) => `${p.name}/${p.protocol}/${p.port}`), ['dns/UDP/53', 'dns-tcp/TCP/53']);
    const web = await json(['get', 'svc', 'web', '-n', ns]);
    assert.ok(web.spec.clusterIP.startsWith('10.113.'), web.spec.clusterIP);
    const np = web.spec.ports[0].nodePort;
    assert.ok(np >= 31000 && np <= 31099, `node port ${np} is in the configured range`);
  });

  it('pods get a resolv.conf for cluster DNS, and reach a Service by name and by FQDN, load-balanced', async () => {
    const resolv = await inClient('cat /etc/resolv.conf');
    assert.equal(resolv.out, `nameserver ${dnsIP}\nsearch ${ns}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`);
    const seen = new Set<string>();
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      const r = await fetch(i % 2 ? 'http://web/' : `http://web.${ns}.svc.cluster.local/`);
      assert.equal(r.code, 0, r.out);
      seen.add(r.out.trim());
    }
    assert.deepEqual([...seen].sort(), ['web-a', 'web-b'], 'both endpoints answer through the cluster IP');
    const svc = await json(['get', 'svc', 'web', '-n', ns]);
    const fromHost = await httpGet(`http://${svc.spec.clusterIP}/`);
    assert.match(fromHost.body, /^web-[ab]\n$/, 'the host reaches the cluster IP too');
  });

  it('DNS: A for a Service, headless A and SRV per endpoint, pod names, PTR, NXDOMAIN', async () => {
    const svc = await json(['get', 'svc', 'web', '-n', ns]);
    const pods = (await json(['get', 'pods', '-n', ns, '-l', 'app=web'])).items.map((p: { status: { podIP: string } }) => p.status.podIP).sort();
    const a = await inClient(`nslookup web.${ns}.svc.cluster.local`);
    assert.match(a.out, new RegExp(`Address: ${svc.spec.clusterIP.replaceAll('.', '\\.')}\\n`));
    const headless = await inClient(`nslookup web-headless.${ns}.svc.cluster.local`);
    for (const ip of pods) assert.ok(headless.out.includes(`Address: ${ip}\n`), headless.out);
    assert.ok(!headless.out.includes(svc.spec.clusterIP));
    const srv = await inClient(`nslookup -type=srv _http._tcp.web-headless.${ns}.svc.cluster.local`);
    for (const ip of pods) assert.ok(srv.out.includes(`0 100 8080 ${ip.replaceAll('.', '-')}.web-headless.${ns}.svc.cluster.local`), srv.out);
    const podName = await inClient(`nslookup ${pods[0].replaceAll('.', '-')}.${ns}.pod.cluster.local`);
    assert.ok(podName.out.includes(`Address: ${pods[0]}\n`), podName.out);
    const ptr = await inClient(`nslookup ${svc.spec.clusterIP}`);
    assert.ok(ptr.out.includes(`name = web.${ns}.svc.cluster.local`), ptr.out);
    const missing = await inClient(`nslookup nope.${ns}.svc.cluster.local`);
    assert.match(missing.out, /NXDOMAIN/);
    const outside = await inClient('nslookup example.com.');
    assert.match(outside.out, /REFUSED/, 'nothing is forwarded off the machine');
  });

  it('an ExternalName Service is a CNAME', async () => {
    await apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'alias' }, spec: { type: 'ExternalName', externalName: `web.${ns}.svc.cluster.local` } });
    await eventually(async () => (await inClient(`nslookup alias.${ns}.svc.cluster.local`)).out.includes(`canonical name = web.${ns}.svc.cluster.local`), 'the CNAME is served');
  });

  it('node ports answer on the host, on 127.0.0.1 and on the bridge address', async () => {
    const np = (await json(['get', 'svc', 'web', '-n', ns])).spec.ports[0].nodePort;
    for (const host of ['127.0.0.1', gateway]) {
      const r = await httpGet(`http://${host}:${np}/`);
      assert.equal(r.status, 200);
      assert.match(r.body, /^web-[ab]\n$/);
    }
  });

  it('readiness takes an endpoint out of rotation and puts it back', async () => {
    await run(['exec', '-n', ns, 'web-b', '--', 'rm', '/tmp/ready']);
    const a = (await json(['get', 'pod', 'web-a', '-n', ns])).status.podIP;
    await eventually(async () => JSON.stringify(await readyEndpoints('web')) === JSON.stringify([a]), 'web-b leaves the endpoints');
    for (let i = 0; i < 10; i++) assert.equal((await fetch('http://web/')).out, 'web-a\n', 'only the ready pod answers');
    await run(['exec', '-n', ns, 'web-b', '--', 'touch', '/tmp/ready']);
    await eventually(async () => (await readyEndpoints('web')).length === 2, 'web-b is back');
  });

  it('a Service without ready endpoints refuses connections at once', async () => {
    await apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'empty' }, spec: { selector: { app: 'nothing' }, ports: [{ port: 80 }] } });
    const ip = (await json(['get', 'svc', 'empty', '-n', ns])).spec.clusterIP;
    await eventually(async () => /Connection refused/.test((await fetch(`http://${ip}/`)).out), 'refused from a pod');
    const started = Date.now();
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const s = net.connect(80, ip);
      s.once('connect', () => {
        s.destroy();
        resolve(undefined);
      });
      s.once('error', resolve);
    });
    assert.equal(err?.code, 'ECONNREFUSED');
    assert.ok(Date.now() - started < 2000, 'refused, not timed out');
  });

  it('sessionAffinity ClientIP keeps a client on one endpoint', async () => {
    await apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'sticky' }, spec: { selector: { app: 'web' }, sessionAffinity: 'ClientIP', ports: [{ port: 80, targetPort: 8080 }] } });
    await eventually(async () => (await readyEndpoints('sticky')).length === 2, 'sticky has both endpoints');
    const first = (await fetch('http://sticky/')).out;
    assert.match(first, /^web-[ab]\n$/);
    for (let i = 0; i < 8; i++) assert.equal((await fetch('http://sticky/')).out, first);
  });

  it('dnsPolicy None and Default, and dnsConfig, shape resolv.conf', async () => {
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'custom-dns' },
      spec: {
        terminationGracePeriodSeconds: 1,
        dnsPolicy: 'None',
        dnsConfig: { nameservers: ['10.113.0.10'], searches: ['example.test'], options: [{ name: 'ndots', value: '2' }, { name: 'edns0' }] },
        containers: [{ name: 'c', image, command: ['sleep', '3600'] }],
      },
    });
    await run(['wait', '-n', ns, '--for=condition=Ready', 'pod/custom-dns', '--timeout=60s']);
    assert.equal(await run(['exec', '-n', ns, 'custom-dns', '--', 'cat', '/etc/resolv.conf']), 'nameserver 10.113.0.10\nsearch example.test\noptions ndots:2 edns0\n');
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'host-dns' },
      spec: { terminationGracePeriodSeconds: 1, dnsPolicy: 'Default', containers: [{ name: 'c', image, command: ['sleep', '3600'] }] },
    });
    await run(['wait', '-n', ns, '--for=condition=Ready', 'pod/host-dns', '--timeout=60s']);
    const hostServers = (await readFile('/etc/resolv.conf', 'utf8')).split('\n').filter((l) => /^nameserver\s/.test(l)).slice(0, 3);
    const podServers = (await run(['exec', '-n', ns, 'host-dns', '--', 'cat', '/etc/resolv.conf'])).split('\n').filter((l) => l.startsWith('nameserver'));
    assert.deepEqual(podServers, hostServers.map((l) => l.replace(/\s+/, ' ').trim()), 'dnsPolicy Default: the host\'s resolvers');
  });

  it('NetworkPolicy ingress: allowed until a policy selects a pod; a second policy lets a labelled client in', async () => {
    // A dropped packet would make wget wait; two seconds is plenty on a bridge.
    const quick = (url: string) => inClient(`timeout 2 wget -qO- ${url}`);
    assert.equal((await quick('http://web/')).code, 0, 'default allow');
    const policy = (name: string, spec: object) => apply({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name }, spec });
    await policy('web-deny-all', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'] });
    await eventually(async () => (await quick('http://web/')).code !== 0, 'the deny-all policy blocks the client');
    await policy('web-allow-clients', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: 'http' }] }] });
    await new Promise((r) => setTimeout(r, 500));
    assert.notEqual((await quick('http://web/')).code, 0, 'an unlabelled client is still denied');
    await run(['label', 'pod', 'client', '-n', ns, 'role=client']);
    await eventually(async () => (await quick('http://web/')).code === 0, 'the labelled client is let in');
    // The host is not subject to ingress policy: readiness probes (exec) and host HTTP still work.
    const a = (await json(['get', 'pod', 'web-a', '-n', ns])).status.podIP;
    assert.equal((await httpGet(`http://${a}:8080/`)).status, 200);
    assert.equal((await readyEndpoints('web')).length, 2);
    await run(['delete', 'networkpolicy', 'web-deny-all', 'web-allow-clients', '-n', ns]);
  });

  it('NetworkPolicy egress: DNS by the usual kube-dns rule, an ipBlock with an exception, nothing else', async () => {
    const quick = (url: string) => inClient(`timeout 2 wget -qO- ${url}`);
    const [a, b] = await Promise.all(['web-a', 'web-b'].map(async (n) => (await json(['get', 'pod', n, '-n', ns])).status.podIP));
    const np = (await json(['get', 'svc', 'web', '-n', ns])).spec.ports[0].nodePort;
    assert.equal((await quick(`http://${gateway}:${np}/`)).code, 0, 'before: the node port answers the client');
    await apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'client-egress' },
      spec: {
        podSelector: { matchLabels: { role: 'client' } },
        policyTypes: ['Egress'],
        egress: [
          { to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }] },
          { to: [{ ipBlock: { cidr: podCidr, except: [`${b}/32`] } }], ports: [{ port: 8000, endPort: 8100 }] },
        ],
      },
    });
    await eventually(async () => (await quick(`http://${gateway}:${np}/`)).code !== 0, 'egress to the host is denied');
    assert.equal((await quick(`http://${a}:8080/`)).out, 'web-a\n', 'the ipBlock (port range) allows web-a');
    assert.notEqual((await quick(`http://${b}:8080/`)).code, 0, 'the exception denies web-b');
    assert.match((await inClient(`nslookup web.${ns}.svc.cluster.local`)).out, /Address: 10\.113\./, 'DNS still resolves');
    await run(['delete', 'networkpolicy', 'client-egress', '-n', ns]);
    await eventually(async () => (await quick(`http://${b}:8080/`)).code === 0, 'deleting the policy restores egress');
  });

  it('bad NetworkPolicies are refused with field errors', async () => {
    const r = await kc(['apply', '-n', ns, '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'bad' },
        spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33', except: ['192.168.0.0/16'] } }], ports: [{ port: 80, endPort: 70 }, { protocol: 'ICMP' }] }] },
      }),
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /spec\.ingress\[0\]\.from\[0\]\.ipBlock\.cidr: Invalid value: "10\.0\.0\.0\/33"/);
    assert.match(r.stderr, /spec\.ingress\[0\]\.ports\[0\]\.endPort: Invalid value: 70/);
    assert.match(r.stderr, /spec\.ingress\[0\]\.ports\[1\]\.protocol: Unsupported value: "ICMP"/);
    assert.equal((await kc(['get', 'networkpolicy', 'bad', '-n', ns])).code, 1);
  });

  it('clusters are isolated: pods of one cannot reach the pods, DNS or host of another; the host reaches both', async () => {
    const registryPort = await freePort();
    const k2 = await startKubicle({
      args: ['--node', 'local', '--load-balancer-pool', '127.241.4.0/28', '--node-name', 'net-node-2', '--pod-cidr', '10.246.4.0/24', '--service-cidr', '10.114.0.0/16', '--service-node-port-range', '31100-31199', '--bridge', 'kubtest4', '--registry-port', String(registryPort), '--kubelet-port', String(await freePort())],
    });
    const kc2 = await kubectlFor(k2, '1.33');
    try {
      await eventually(async () => (await kc2(['get', 'node', 'net-node-2'])).code === 0, 'the second node registers');
      const pod2 = { ...webPod('other-web'), spec: { ...webPod('other-web').spec, containers: [{ ...webPod('other-web').spec.containers[0], image: `127.0.0.1:${registryPort}/kubicle/busybox:1` }] } };
      assert.equal((await kc2(['apply', '-f', '-'], { input: JSON.stringify(pod2) })).code, 0);
      assert.equal((await kc2(['wait', '--for=condition=Ready', 'pod/other-web', '--timeout=60s'])).code, 0);
      const otherIP = JSON.parse((await kc2(['get', 'pod', 'other-web', '-o', 'json'])).stdout).status.podIP as string;
      assert.match(otherIP, /^10\.246\.4\./);
      assert.equal((await httpGet(`http://${otherIP}:8080/`)).body, 'other-web\n', 'the host reaches the other cluster');
      const quick = (url: string) => inClient(`timeout 2 wget -qO- ${url}`);
      assert.notEqual((await quick(`http://${otherIP}:8080/`)).code, 0, "a pod cannot reach another cluster's pod");
      assert.deepEqual(await hostLookup('10.246.4.1', 'kube-dns.kube-system.svc.cluster.local'), ['10.114.0.10'], "the other cluster's DNS answers the host");
      assert.doesNotMatch((await inClient('timeout 3 nslookup kube-dns.kube-system.svc.cluster.local 10.246.4.1')).out, /Address: 10\.114\.0\.10/, "but not this cluster's pods");
      assert.notEqual((await quick('http://127.0.0.1:1/')).code, 0);
      const a = (await json(['get', 'pod', 'web-a', '-n', ns])).status.podIP;
      const back = await kc2(['exec', 'other-web', '--', 'sh', '-c', `timeout 2 wget -qO- http://${a}:8080/`]);
      assert.notEqual(back.code, 0, 'nor the other way round');
      // A third cluster whose pod range overlaps the first is refused at start.
      await assert.rejects(
        startKubicle({ args: ['--node', 'local', '--load-balancer-pool', '127.241.5.0/28', '--node-name', 'net-node-3', '--pod-cidr', '10.246.3.128/25', '--service-cidr', '10.115.0.0/16', '--bridge', 'kubtest5', '--registry-port', '0', '--kubelet-port', String(await freePort())] }),
        /pod CIDR 10\.246\.3\.128\/25 overlaps 10\.246\.3\.1\/24 on kubtest3/,
      );
    } finally {
      await kc2(['delete', 'pods', '--all', '--grace-period=0', '--force']);
      const agent = new SandboxClient({ socketPath: path.join(k2.dataDir, 'agent.sock') });
      await eventually(async () => (await agent.listSandboxes()).length === 0, 'the second cluster\'s sandboxes are removed', 60_000).catch(() => {});
      await cleanup(k2);
    }
  });

  it('bad input: foreign, taken and malformed cluster IPs and node ports are refused, nothing is written', async () => {
    const tryCreate = async (spec: object) => {
      const r = await kc(['create', '-n', ns, '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'bad' }, spec }) });
      assert.notEqual(r.code, 0);
      assert.equal((await kc(['get', 'svc', 'bad', '-n', ns])).code, 1, 'no Service was written');
      return r.stderr;
    };
    assert.match(await tryCreate({ clusterIP: '10.99.0.5', ports: [{ port: 80 }] }), /failed to allocate IP 10\.99\.0\.5: the provided IP \(10\.99\.0\.5\) is not in the valid range. The range of valid IPs is 10\.113\.0\.0\/16/);
    assert.match(await tryCreate({ clusterIP: dnsIP, ports: [{ port: 80 }] }), /failed to allocate IP 10\.113\.0\.10: provided IP is already allocated/);
    assert.match(await tryCreate({ clusterIP: '10.113.0.300', ports: [{ port: 80 }] }), /spec\.clusterIPs\[0\]: Invalid value: "10\.113\.0\.300": must be a valid IP address/);
    const np = (await json(['get', 'svc', 'web', '-n', ns])).spec.ports[0].nodePort;
    assert.match(await tryCreate({ type: 'NodePort', ports: [{ port: 80, nodePort: np }] }), new RegExp(`spec\\.ports\\[0\\]\\.nodePort: Invalid value: ${np}: provided port is already allocated`));
    assert.match(await tryCreate({ type: 'NodePort', ports: [{ port: 80, nodePort: 30000 }] }), /provided port is not in the valid range. The range of valid ports is 31000-31099/);
    assert.match(await tryCreate({ type: 'ClusterIP', ports: [{ port: 80, nodePort: 31050 }] }), /spec\.ports\[0\]\.nodePort: Forbidden: may not be used when `type` is 'ClusterIP'/);
    assert.match(await tryCreate({ ports: [{ port: 70000 }] }), /spec\.ports\[0\]\.port: Invalid value: 70000/);
    // The refused creates left no claim behind: the node port range still has every other port.
    await run(['create', 'service', 'nodeport', 'fresh', '-n', ns, '--tcp=80', '--node-port=31050']);
  });

  it('the kube-dns EndpointSlice and Service come back when deleted, at the same address', async () => {
    const dnsSlices = async () => (await json(['get', 'endpointslices', '-n', 'kube-system', '-l', 'kubernetes.io/service-name=kube-dns'])).items.length;
    await run(['delete', 'endpointslice', '-n', 'kube-system', '-l', 'kubernetes.io/service-name=kube-dns']);
    await eventually(async () => (await dnsSlices()) === 1, 'the slice is back');
    await run(['delete', 'svc', 'kube-dns', '-n', 'kube-system']);
    await eventually(async () => (await kc(['get', 'svc', 'kube-dns', '-n', 'kube-system', '-o', 'jsonpath={.spec.clusterIP}'])).stdout === dnsIP, 'the Service is back at its address');
    await eventually(async () => (await inClient(`nslookup web.${ns}.svc.cluster.local`)).code === 0, 'pods resolve again');
  });

  it('the DNS server survives garbage and answers FORMERR, then serves the next query', async () => {
    const sock = dgram.createSocket('udp4');
    const ask = (msg: Buffer) =>
      new Promise<Buffer | undefined>((resolve) => {
        const t = setTimeout(() => resolve(undefined), 1000);
        sock.once('message', (m) => {
          clearTimeout(t);
          resolve(m);
        });
        sock.send(msg, 53, gateway);
      });
    const junk = Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]), Buffer.from([0xff, 0xff, 0xff])]);
    const reply = await ask(junk);
    assert.ok(reply, 'a reply to a malformed query');
    assert.equal(reply.readUInt16BE(0), 0x1234);
    assert.equal(reply.readUInt16BE(2) & 0xf, 1, 'FORMERR');
    const ok = await ask(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `kube-dns.kube-system.svc.cluster.local` }] }));
    assert.ok(ok);
    const decoded = dnsPacket.decode(ok);
    assert.equal(decoded.id, 7);
    assert.deepEqual(
      decoded.answers?.map((a) => (a as { data: string }).data),
      [dnsIP],
    );
    sock.close();
  });
});

describe('kubicle standalone refuses overlapping ranges', () => {
  it('a pod range inside the service range is refused before anything starts', async () => {
    const r = await execFileP(process.execPath, [path.resolve('bin/kubicle.js'), 'standalone', '--data-dir', '/tmp/kubicle-e2e-overlap', '--pod-cidr', '10.96.1.0/24', '--service-cidr', '10.96.0.0/12', '--port', '0']).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--pod-cidr 10\.96\.1\.0\/24 overlaps --service-cidr 10\.96\.0\.0\/12/);
  });
});
