import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { issueClient } from '../../src/apiserver/pki.js';
import { cleanup, eventually, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * The provider end to end (issue 8): `kubicle server` with real control planes in runc sandboxes,
 * driven by stock kubectl against the provider and against each tenant cluster's endpoint, and the
 * attacks of DESIGN §6 that concern control planes, each required to fail.
 */
const run = promisify(execFile);
const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/kubicle.js');
const pool = '127.251.7.0/24';

type Kubectl = Awaited<ReturnType<typeof kubectlFor>>;

/** The runc containers on this host; `runc list` fails while one is being deleted, so it is asked again. */
async function runcList(): Promise<string> {
  for (let i = 0; ; i++) {
    try {
      return (await run('runc', ['--root', '/run/kubicle/runc', 'list', '-q'])).stdout;
    } catch (err) {
      if (i >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('provider: tenant clusters in sandboxes', { timeout: 600_000 }, () => {
  let p: Kubicle;
  let op: Kubectl;
  /** The sample image in the provider's own registry (on a port of its choosing). */
  const image = () => `${/registry (127\.0\.0\.1:\d+)/.exec(p.logs())?.[1]}/kubicle/busybox:1`;
  const kubeconfigs: Record<string, string> = {};

  const ok = async (kc: Kubectl, args: string[], input?: string) => {
    const r = await kc(args, { input });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const cluster = async (ns: string, name: string) => JSON.parse(await ok(op, ['get', 'clusters.kubicle.io', name, '-n', ns, '-o', 'json']));
  const waitPhase = (ns: string, name: string, phase: string, ms = 60_000) => {
    let seen: unknown;
    return eventually(
      async () => {
        seen = (await cluster(ns, name)).status;
        return (seen as { phase?: string } | undefined)?.phase === phase;
      },
      () => `${ns}/${name} ${phase} (status: ${JSON.stringify(seen)}; the provider's last warnings: ${warnings()})`,
      ms,
    );
  };
  /** The provider's last warning and error lines: what a failed wait shows in CI's output. */
  const warnings = () =>
    p
      .logs()
      .split('\n')
      .filter((l) => /"level":"(warn|error)"/.test(l))
      .slice(-8)
      .join('\n');
  /** The tenant cluster's admin kubeconfig, through the CLI as a user gets it. */
  const tenantKubectl = async (ns: string, name: string, version = '1.33'): Promise<Kubectl> => {
    const { stdout } = await run(process.execPath, [bin, 'cluster', 'kubeconfig', name, '--tenant', ns, '--provider', p.kubeconfig]);
    const file = path.join(p.dataDir, `${ns}-${name}.kubeconfig`);
    await writeFile(file, stdout, { mode: 0o600 });
    kubeconfigs[`${ns}/${name}`] = file;
    return kubectlFor({ kubeconfig: file } as Kubicle, version);
  };
  /** The running control-plane container of a cluster (a start that failed and was retried has a later attempt). */
  const controlPlaneContainer = async (uid: string) => {
    const prefix = `cp-${uid}_control-plane_`;
    const attempts = (await runcList())
      .split('\n')
      .filter((id) => id.startsWith(prefix))
      .map((id) => Number(id.slice(prefix.length)));
    assert.ok(attempts.length, `a control-plane container of ${uid}`);
    return `${prefix}${Math.max(...attempts)}`;
  };
  /** A process in a cluster's control-plane sandbox, as an attacker who took it over would run it. */
  const inControlPlane = async (c: { metadata: { uid: string } }, cmd: string[]) =>
    run('runc', ['--root', '/run/kubicle/runc', 'exec', await controlPlaneContainer(c.metadata.uid), ...cmd]).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (err) => ({ code: Number(err.code ?? 1), out: `${err.stdout ?? ''}${err.stderr ?? ''}` }),
    );

  before(async () => {
    p = await startKubicle({ command: 'server', args: ['--cluster-endpoint-pool', pool, '--bridge', 'kubtest8', '--pod-cidr', '10.246.14.0/24', '--cluster-pod-pool', '10.231.0.0/16', '--cluster-sleep-after', '0', '--metering-interval', '1', '--host-heartbeat', '1'] });
    op = await kubectlFor(p, '1.33');
    await ok(
      op,
      ['apply', '-f', '-'],
      `apiVersion: kubicle.io/v1alpha1
kind: Tenant
metadata: {name: acme}
spec: {quota: {clusters: "2"}}
---
apiVersion: kubicle.io/v1alpha1
kind: Tenant
metadata: {name: globex}
spec: {}
`,
    );
    await eventually(async () => (await op(['get', 'ns', 'acme', 'globex'])).code === 0, 'tenant namespaces');
    for (const [ns, name] of [
      ['acme', 'a1'],
      ['globex', 'g1'],
    ]) {
      await ok(op, ['apply', '-f', '-'], `apiVersion: kubicle.io/v1alpha1\nkind: Cluster\nmetadata: {name: ${name}, namespace: ${ns}}\nspec: {}\n`);
    }
    await waitPhase('acme', 'a1', 'Running');
    await waitPhase('globex', 'g1', 'Running');
  });
  after(async () => {
    if (!p) return;
    // Control planes outlive their provider (a restarted one adopts them): delete them first.
    await op(['delete', 'clusters.kubicle.io', '--all', '-A', '--wait=true', '--timeout=60s']);
    await cleanup(p);
  });

  test("the host agent's Host shows its machine and is Ready, its heartbeat advancing", async () => {
    const host = async () => JSON.parse(await ok(op, ['get', 'hosts.kubicle.io', '-o', 'json'])).items;
    const [h] = await host();
    assert.equal(h.status.capacity.cpu, String(os.availableParallelism()));
    assert.equal(h.status.capacity.memory, `${Math.floor(os.totalmem() / 2 ** 20)}Mi`);
    assert.ok(h.status.runtimes.includes('runc'));
    const ready = (x: typeof h) => x.status.conditions.find((c: { type: string }) => c.type === 'Ready');
    assert.equal(ready(h).status, 'True');
    await eventually(async () => ready((await host())[0]).lastHeartbeatTime > ready(h).lastHeartbeatTime, 'a later heartbeat', 10_000);
    assert.match(await ok(op, ['get', 'hosts.kubicle.io']), /\bTrue\s+\d+\s+\d+Mi\s+local\b/);
    // A bad interval is refused before anything starts.
    const refused = await startKubicle({ command: 'server', args: ['--host-heartbeat', '0'] }).then(
      async (k) => {
        await cleanup(k);
        return 'started';
      },
      (err: Error) => err.message,
    );
    assert.match(refused, /--host-heartbeat "0" must be a number of seconds above 0 and at most 300/);
  });

  test('each cluster serves stock kubectl 1.27 and 1.33 on its own endpoint, with its own objects', async () => {
    const a = await cluster('acme', 'a1');
    const g = await cluster('globex', 'g1');
    assert.match(a.status.endpoint, /^https:\/\/127\.251\.7\.\d+:443$/);
    assert.notEqual(a.status.endpoint, g.status.endpoint);
    assert.match(a.status.version, /^v1\.\d+\.\d+/);
    assert.equal(a.status.conditions.find((c: { type: string }) => c.type === 'Ready').status, 'True');
    const table = await ok(op, ['get', 'clusters.kubicle.io', '-A']);
    assert.match(table, /acme\s+a1\s+Running\s+https:\/\/127\.251\.7/);
    for (const version of ['1.27', '1.33']) {
      const ka = await tenantKubectl('acme', 'a1', version);
      assert.match(await ok(ka, ['get', 'ns']), /kube-system\s+Active/);
    }
    const ka = await tenantKubectl('acme', 'a1');
    const kg = await tenantKubectl('globex', 'g1');
    await ok(ka, ['create', 'configmap', 'only-in-a1', '--from-literal=k=v']);
    await ok(ka, ['create', 'deployment', 'web', `--image=${image()}`, '--replicas=2']);
    // The control plane's own controllers run: the Deployment gets its ReplicaSet and pods.
    await eventually(async () => (await ka(['get', 'pods', '-l', 'app=web', '-o', 'name'])).stdout.trim().split('\n').length === 2, 'a1 pods');
    const r = await kg(['get', 'configmap', 'only-in-a1']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /NotFound/);
  });

  test("a tenant's credentials are refused by another tenant's endpoint", async () => {
    await tenantKubectl('acme', 'a1');
    const a = YAML.parse(await readFile(kubeconfigs['acme/a1'], 'utf8'));
    const g = await cluster('globex', 'g1');
    a.clusters[0].cluster.server = g.status.endpoint;
    const file = path.join(p.dataDir, 'a1-creds-at-g1.kubeconfig');
    await writeFile(file, YAML.stringify(a), { mode: 0o600 });
    const k = await kubectlFor({ kubeconfig: file } as Kubicle, '1.33');
    // g1's serving certificate is not from a1's CA, and a1's client certificate is not from g1's.
    const verified = await k(['get', 'ns']);
    assert.notEqual(verified.code, 0);
    assert.match(verified.stderr, /certificate signed by unknown authority|x509/);
    const skipped = await k(['--insecure-skip-tls-verify', 'get', 'ns']);
    assert.notEqual(skipped.code, 0);
    assert.match(skipped.stderr, /Unauthorized|must be logged in/);
  });

  test('on the provider API a tenant sees only its own clusters and credentials', async () => {
    const pki = path.join(p.dataDir, 'pki');
    const ca = { cert: await readFile(path.join(pki, 'ca.crt'), 'utf8'), key: await readFile(path.join(pki, 'ca.key'), 'utf8') };
    const user = issueClient(ca, 'alice', ['kubicle:tenant:acme']);
    const cfg = YAML.parse(await readFile(p.kubeconfig, 'utf8'));
    cfg.users[0].user = { 'client-certificate-data': Buffer.from(user.cert).toString('base64'), 'client-key-data': Buffer.from(user.key).toString('base64') };
    const file = path.join(p.dataDir, 'alice.kubeconfig');
    await writeFile(file, YAML.stringify(cfg), { mode: 0o600 });
    const alice = await kubectlFor({ kubeconfig: file } as Kubicle, '1.33');
    assert.match(await ok(alice, ['get', 'clusters.kubicle.io', '-n', 'acme']), /a1\s+Running/);
    assert.match(await ok(alice, ['get', 'secret', 'a1-kubeconfig', '-n', 'acme', '-o', 'name']), /secret\/a1-kubeconfig/);
    const denied: [string[], RegExp][] = [
      [['get', 'clusters.kubicle.io', '-n', 'globex'], /clusters\.kubicle\.io is forbidden: User "alice" cannot list resource "clusters" in API group "kubicle\.io" in the namespace "globex"/],
      [['get', 'clusters.kubicle.io', '-A'], /cannot list resource "clusters" in API group "kubicle\.io" at the cluster scope/],
      [['get', 'secret', 'g1-kubeconfig', '-n', 'globex'], /secrets "g1-kubeconfig" is forbidden: User "alice" cannot get resource "secrets"/],
      [['get', 'tenants.kubicle.io', 'globex'], /forbidden/],
      [['get', 'hosts.kubicle.io'], /forbidden/],
      [['delete', 'clusters.kubicle.io', 'g1', '-n', 'globex'], /forbidden/],
      [['create', 'namespace', 'sneaky'], /forbidden/],
    ];
    for (const [args, want] of denied) {
      const r = await alice(args);
      assert.notEqual(r.code, 0, `alice may not: kubectl ${args.join(' ')}`);
      assert.match(r.stderr, want);
    }
    await ok(op, ['get', 'clusters.kubicle.io', 'g1', '-n', 'globex']); // still there
  });

  /** A pod serving its name over HTTP on 8080, Ready once it answers (the virtual kubelet probes it over the cluster network). */
  const webPod = (name: string) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, labels: {app: ${name}}}
spec:
  containers:
  - name: web
    image: ${image()}
    command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www']
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
`;
  /** Each event of object `name` as `reason: message`, a line each. */
  const events = async (k: Kubectl, name: string) => ok(k, ['get', 'events', '--field-selector', `involvedObject.name=${name}`, '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']);
  const podIP = async (k: Kubectl, name: string) => (await ok(k, ['get', 'pod', name, '-o', 'jsonpath={.status.podIP}'])).trim();
  /** Whether a TCP connection from inside `pod` to `ip:port` opens (busybox nc exits 0 once it connected and the input ended). */
  const connects = async (k: Kubectl, pod: string, ip: string, port: number) => (await k(['exec', pod, '--', 'sh', '-c', `nc -w 2 ${ip} ${port} </dev/null && echo connected`])).stdout.includes('connected');
  const inRange = (ip: string, cidr: string) => ip.split('.').slice(0, 3).join('.') === cidr.split('.').slice(0, 3).join('.');

  test("pods run on each cluster's virtual node, on the cluster's own network, with logs and exec through its kubelet", async () => {
    const ka = await tenantKubectl('acme', 'a1');
    const kg = await tenantKubectl('globex', 'g1');
    const a = await cluster('acme', 'a1');
    const g = await cluster('globex', 'g1');
    assert.match(await ok(ka, ['get', 'nodes']), /kubicle-virtual\s+Ready/);
    for (const [k, name] of [
      [ka, 'web-a'],
      [ka, 'peer-a'],
      [kg, 'web-g'],
    ] as const) {
      await ok(k, ['apply', '-f', '-'], webPod(name));
    }
    for (const [k, name] of [
      [ka, 'web-a'],
      [ka, 'peer-a'],
      [kg, 'web-g'],
    ] as const) {
      await ok(k, ['wait', '--for=condition=Ready', `pod/${name}`, '--timeout=120s']);
    }
    assert.ok(inRange(await podIP(ka, 'web-a'), a.status.podCIDR), `web-a in ${a.status.podCIDR}`);
    assert.ok(inRange(await podIP(kg, 'web-g'), g.status.podCIDR), `web-g in ${g.status.podCIDR}`);
    assert.notEqual(a.status.podCIDR, g.status.podCIDR);
    assert.equal((await ok(ka, ['exec', 'web-a', '--', 'hostname'])).trim(), 'web-a');
    assert.match(await ok(ka, ['logs', 'web-a']), /^serving$/m);
    const get = `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${await podIP(ka, 'web-a')} 8080`;
    assert.match(await ok(ka, ['exec', 'peer-a', '--', 'sh', '-c', get]), /^web-a\r?$/m);
    // The provider records where each pod runs; the tenant may read its own records.
    const sandboxes = await ok(op, ['get', 'sandboxes.kubicle.io', '-n', 'acme']);
    assert.match(sandboxes, /a1\s+pod\s+\S+\s+Running/);
    assert.doesNotMatch(sandboxes, /g1/);
  });

  test("a tenant's pod reaches neither another tenant's pods nor its control plane, the provider or the host", async () => {
    const ka = await tenantKubectl('acme', 'a1');
    const kg = await tenantKubectl('globex', 'g1');
    const a = await cluster('acme', 'a1');
    const nodeIP = async (k: Kubectl) => (await ok(k, ['get', 'node', 'kubicle-virtual', '-o', 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}'])).trim();
    const own = { pod: await podIP(ka, 'web-a'), cp: await nodeIP(ka) };
    const other = { pod: await podIP(kg, 'web-g'), cp: await nodeIP(kg) };
    // A listener on every host address, which the host itself reaches at a1's gateway address.
    const host = net.createServer((c) => c.end('host\n'));
    await new Promise<void>((r) => host.listen(0, '0.0.0.0', r));
    const hostPort = (host.address() as net.AddressInfo).port;
    const gateway = `${a.status.podCIDR.split('.').slice(0, 3).join('.')}.1`;
    try {
      await new Promise<void>((resolve, reject) => net.connect(hostPort, gateway, resolve).on('error', reject).end());
      // Within a1 the same probes connect: the failures below are the network's isolation.
      assert.ok(await connects(ka, 'peer-a', own.pod, 8080), "a1's pod reaches a1's pod");
      assert.ok(await connects(ka, 'peer-a', own.cp, 10250), "a1's pod reaches a1's control plane");
      for (const [what, ip, port] of [
        ["g1's pod", other.pod, 8080],
        ["g1's control plane", other.cp, 10250],
        ['the host', gateway, hostPort],
        ['the provider API', gateway, p.port],
      ] as const) {
        assert.equal(await connects(ka, 'peer-a', ip, port), false, `a1's pod reached ${what} at ${ip}:${port}`);
      }
    } finally {
      host.close();
    }
  });

  test('each cluster has its own Services and cluster DNS, and its pods reach its own API server', async () => {
    const ka = await tenantKubectl('acme', 'a1');
    const kg = await tenantKubectl('globex', 'g1');
    for (const [k, pod] of [
      [ka, 'web-a'],
      [kg, 'web-g'],
    ] as const) {
      await ok(k, ['expose', 'pod', pod, '--name', 'web', '--port', '80', '--target-port', '8080']);
    }
    const clusterIP = async (k: Kubectl, svc: string, ns = 'default') => (await ok(k, ['get', 'svc', svc, '-n', ns, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const ipA = await clusterIP(ka, 'web');
    const ipG = await clusterIP(kg, 'web');
    const inA = async (cmd: string) => (await ka(['exec', 'peer-a', '--', 'sh', '-c', cmd])).stdout;
    const get = (host: string) => `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} 80`;
    // By name through the cluster's DNS, by address through its Services on the host.
    await eventually(async () => /^web-a\r?$/m.test(await inA(get('web'))), "a1's web by name", 60_000);
    assert.match(await inA(get(ipA)), /^web-a\r?$/m);
    assert.match(await inA(`nslookup web.default.svc.cluster.local`), new RegExp(`Address: ${ipA.replaceAll('.', '\\.')}\n`));
    assert.match(await inA('cat /etc/resolv.conf'), new RegExp(`nameserver ${(await clusterIP(ka, 'kube-dns', 'kube-system')).replaceAll('.', '\\.')}`));
    // g1's DNS answers with g1's own Service.
    assert.match((await kg(['exec', 'web-g', '--', 'nslookup', 'web.default.svc.cluster.local'])).stdout, new RegExp(`Address: ${ipG.replaceAll('.', '\\.')}\n`));
    // `kubernetes` is this cluster's API server, on its control plane's cluster address.
    const kubernetes = await clusterIP(ka, 'kubernetes');
    assert.match(await inA('nslookup kubernetes.default.svc.cluster.local'), new RegExp(`Address: ${kubernetes.replaceAll('.', '\\.')}\n`));
    const apiEndpoint = (await ok(ka, ['get', 'endpointslice', 'kubernetes', '-o', 'jsonpath={.endpoints[0].addresses[0]}:{.ports[0].port}'])).trim();
    const nodeIP = (await ok(ka, ['get', 'node', 'kubicle-virtual', '-o', 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}'])).trim();
    assert.equal(apiEndpoint, `${nodeIP}:6443`);
    assert.ok(await connects(ka, 'peer-a', kubernetes, 443), "a1's pod reaches its API server");
    // g1's cluster IP means nothing on a1's network.
    if (ipG !== ipA) assert.equal(await connects(ka, 'peer-a', ipG, 80), false, "a1's pod reached g1's Service");
    // A tenant's EndpointSlice naming another network's pod is not programmed (the datapath keeps to the cluster's range).
    await ok(
      ka,
      ['apply', '-f', '-'],
      `apiVersion: v1
kind: Service
metadata: {name: steal}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: steal-1, labels: {kubernetes.io/service-name: steal}}
addressType: IPv4
endpoints: [{addresses: ["${await podIP(kg, 'web-g')}"]}]
ports: [{port: 8080, protocol: TCP, name: ""}]
`,
    );
    const steal = await clusterIP(ka, 'steal');
    assert.equal(await connects(ka, 'peer-a', steal, 80), false, "a1 reached g1's pod through a Service");
  });

  test('a tenant beyond its quota gets no more sandboxes, and none with host paths', async () => {
    const kg = await tenantKubectl('globex', 'g1');
    // g1's control plane (1 CPU, 512Mi) and web-g (the default limit, 1 CPU) fill a quota of 2 CPUs.
    await ok(op, ['patch', 'tenants.kubicle.io', 'globex', '--type', 'merge', '-p', '{"spec":{"quota":{"cpu":"2","memory":"4Gi"}}}']);
    await ok(kg, ['apply', '-f', '-'], webPod('hog'));
    await ok(kg, ['apply', '-f', '-'], `apiVersion: v1
kind: Pod
metadata: {name: hostpath}
spec:
  volumes: [{name: root, hostPath: {path: /}}]
  containers: [{name: c, image: ${image()}, command: [sleep, '3600'], volumeMounts: [{name: root, mountPath: /host}]}]
`);
    await eventually(async () => /FailedCreatePodSandBox: Failed to create pod sandbox: exceeded quota: tenant globex, requested cpu=1000m, used 2000m, limited 2000m/.test(await events(kg, 'hog')), 'hog refused for quota');
    await eventually(async () => /FailedCreatePodSandBox: .*volume root: host path "\/" is not available to tenant clusters: only their local volumes/.test(await events(kg, 'hostpath')), 'host path refused');
    for (const name of ['hog', 'hostpath']) assert.notEqual(JSON.parse(await ok(kg, ['get', 'pod', name, '-o', 'json'])).status.phase, 'Running');
    await ok(kg, ['delete', 'pod', 'hog', 'hostpath', '--grace-period=0', '--force']);
    await ok(op, ['patch', 'tenants.kubicle.io', 'globex', '--type', 'merge', '-p', '{"spec":{"quota":null}}']);
  });

  test('a host without room for a pod refuses it whatever the quota; with room made, the pod runs', async () => {
    const kg = await tenantKubectl('globex', 'g1');
    const host = (await cluster('globex', 'g1')).status.host as string;
    // The operator lets almost none of the host's memory be committed: what runs stays, nothing new fits.
    await ok(op, ['patch', 'hosts.kubicle.io', host, '--type', 'merge', '-p', '{"spec":{"allocationRatio":{"memory":0.001}}}']);
    try {
      await ok(kg, ['apply', '-f', '-'], webPod('roomless'));
      await eventually(async () => /FailedCreatePodSandBox: Failed to create pod sandbox: host \S+ has no room for it: insufficient memory \(requested 512Mi, \d+Mi of \d+Mi allocated\)/.test(await events(kg, 'roomless')), 'roomless refused for room');
      assert.notEqual(JSON.parse(await ok(kg, ['get', 'pod', 'roomless', '-o', 'json'])).status.phase, 'Running');
    } finally {
      await ok(op, ['patch', 'hosts.kubicle.io', host, '--type', 'merge', '-p', '{"spec":{"allocationRatio":null}}']);
    }
    await ok(kg, ['wait', '--for=condition=Ready', 'pod/roomless', '--timeout=90s']);
    await ok(kg, ['delete', 'pod', 'roomless', '--grace-period=0', '--force']);
  });

  test("a tenant's claim is a directory of its own cluster: kept past its pod, out of other clusters' reach, gone with the claim", async () => {
    const ka = await tenantKubectl('acme', 'a1');
    const kg = await tenantKubectl('globex', 'g1');
    const podWith = (name: string, script: string, volume: string) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec:
  restartPolicy: Never
  volumes: [${volume}]
  containers: [{name: c, image: ${image()}, command: [sh, -c, '${script}'], volumeMounts: [{name: v, mountPath: /v}]}]
`;
    await ok(ka, ['apply', '-f', '-'], `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
---
${podWith('writer', 'echo kept > /v/f; sleep 3600', '{name: v, persistentVolumeClaim: {claimName: data}}')}`);
    await ok(ka, ['wait', '--for=condition=Ready', 'pod/writer', '--timeout=120s']);
    const pv = await ok(ka, ['get', 'pvc', 'data', '-o', 'jsonpath={.spec.volumeName}']);
    assert.match(pv, /^pvc-/);
    const onHost = path.join(p.dataDir, 'clusters', `${(await cluster('acme', 'a1')).metadata.uid}.volumes`, pv);
    assert.equal(await readFile(path.join(onHost, 'f'), 'utf8'), 'kept\n', 'the volume is the cluster\'s own directory on the host');
    // The same path from another cluster is that cluster's own (empty) directory.
    await ok(kg, ['apply', '-f', '-'], podWith('snoop', 'ls -A /v; echo end', `{name: v, hostPath: {path: /var/lib/kubicle/local-path/${pv}, type: DirectoryOrCreate}}`));
    let snoop = '';
    await eventually(
      async () => {
        snoop = await ok(kg, ['get', 'pod', 'snoop', '-o', 'json']);
        return JSON.parse(snoop).status.phase === 'Succeeded';
      },
      () => `snoop ran (its status: ${JSON.stringify(JSON.parse(snoop || '{}').status)}; the provider's last warnings: ${warnings()})`,
      60_000,
    ).catch(async (err) => {
      const events = await kg(['get', 'events', '--field-selector', 'involvedObject.name=snoop', '-o', 'custom-columns=R:.reason,M:.message']);
      throw new Error(`${err.message}; its events: ${events.stdout}`);
    });
    assert.equal(await ok(kg, ['logs', 'snoop']), 'end\n', "g1 sees nothing of a1's volume");
    await ok(kg, ['delete', 'pod', 'snoop']);
    await ok(ka, ['delete', 'pod', 'writer', '--grace-period=0', '--force']);
    await ok(ka, ['apply', '-f', '-'], podWith('reader', 'cat /v/f', '{name: v, persistentVolumeClaim: {claimName: data}}'));
    await eventually(async () => (await ok(ka, ['get', 'pod', 'reader', '-o', 'jsonpath={.status.phase}'])) === 'Succeeded', 'reader ran', 60_000);
    assert.equal(await ok(ka, ['logs', 'reader']), 'kept\n', 'the data outlived the pod that wrote it');
    await ok(ka, ['delete', 'pod', 'reader']);
    await ok(ka, ['delete', 'pvc', 'data']);
    await eventually(async () => (await ka(['get', 'pv', pv])).code !== 0, 'the volume is deleted', 60_000);
    assert.equal(existsSync(onHost), false, 'and its directory with it');
  });

  const usageOf = async (ns: string, name: string) => JSON.parse(await ok(op, ['get', 'usages.kubicle.io', name, '-n', ns, '-o', 'json'])).status;

  test("metering counts a pod's CPU to its namespace and prices it; kubicle usage shows it", async (t) => {
    const ka = await tenantKubectl('acme', 'a1');
    await ok(ka, ['create', 'namespace', 'team']);
    await ok(ka, ['apply', '-f', '-'], `apiVersion: v1
kind: Pod
metadata: {name: burn, namespace: team}
spec:
  containers:
  - {name: c, image: ${image()}, command: [sh, -c, 'while :; do :; done'], resources: {limits: {cpu: 500m, memory: 64Mi}}}
`);
    await ok(ka, ['wait', '-n', 'team', '--for=condition=Ready', 'pod/burn', '--timeout=120s']);
    const before = (await usageOf('acme', 'a1')).namespaces?.team?.cpuSeconds ?? 0;
    await new Promise((r) => setTimeout(r, 4000));
    const u = await usageOf('acme', 'a1');
    const burnt = u.namespaces.team.cpuSeconds - before;
    t.diagnostic(`a1 over 4 s: namespace team ${burnt.toFixed(2)} CPU-s (limit 0.5 CPU); totals ${JSON.stringify(u.total)}; cost ${u.cost.total} ${u.cost.currency}`);
    // Half a CPU for about four seconds: well above nothing, and within its limit.
    assert.ok(burnt > 0.8 && burnt < 3.5, `team used ${burnt} CPU-s in 4 s at 500m`);
    assert.ok(u.total.controlPlaneSeconds > 0 && u.controlPlane.memoryGiBSeconds > 0, 'the control plane is metered');
    assert.ok(u.cost.total > 0 && u.cost.currency === 'EUR');
    const { stdout } = await run(process.execPath, [bin, 'usage', '--tenant', 'acme', '--provider', p.kubeconfig]);
    assert.match(stdout, /a1\s+total\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+ EUR/);
    assert.match(stdout, /a1\s+namespace team\s+[\d.]+/);
    assert.doesNotMatch(stdout, /g1/);
    await ok(ka, ['delete', 'namespace', 'team', '--wait=false']);
    await ok(ka, ['delete', 'pod', 'burn', '-n', 'team', '--grace-period=0', '--force']);
  });

  test("a control plane's sandbox sees neither another cluster's store nor other networks", async () => {
    const a = await cluster('acme', 'a1');
    const g = await cluster('globex', 'g1');
    const own = await inControlPlane(a, ['/bin/busybox', 'ls', '/var/lib/kubicle']);
    assert.equal(own.code, 0, own.out);
    assert.match(own.out, /store\.db/);
    const other = await inControlPlane(a, ['/bin/busybox', 'cat', path.join(p.dataDir, 'clusters', g.metadata.uid, 'store.db')]);
    assert.notEqual(other.code, 0);
    assert.match(other.out, /No such file or directory/);
    const found = await inControlPlane(a, ['/bin/busybox', 'find', '/', '-xdev', '-name', 'store.db']);
    assert.doesNotMatch(found.out, new RegExp(g.metadata.uid));
    const host = g.status.endpoint.replace(/^https:\/\/|:443$/g, '');
    for (const target of [`${host}:443`, `127.0.0.1:${p.port}`]) {
      const r = await inControlPlane(a, ['/bin/busybox', 'nc', '-w', '2', ...target.split(':')]);
      assert.notEqual(r.code, 0, `a1's control plane reached ${target}`);
    }
    // Its one interface is on its own cluster's network.
    const addrs = await inControlPlane(a, ['/bin/busybox', 'ip', '-o', '-4', 'addr']);
    const mine = [...addrs.out.matchAll(/inet ([\d.]+)\//g)].map((m) => m[1]).filter((x) => !x.startsWith('127.'));
    assert.equal(mine.length, 1, addrs.out);
    assert.ok(inRange(mine[0], a.status.podCIDR), `${mine[0]} in ${a.status.podCIDR}`);
    const gPod = await podIP(await tenantKubectl('globex', 'g1'), 'web-g');
    const reach = await inControlPlane(a, ['/bin/busybox', 'nc', '-w', '2', gPod, '8080']);
    assert.notEqual(reach.code, 0, "a1's control plane reached g1's pod");
    const who = await inControlPlane(a, ['/bin/busybox', 'id', '-u']);
    assert.equal(who.out.trim(), '65534');
  });

  test('an idle cluster sleeps, accruing nearly nothing, and the next kubectl wakes it without an error', async (t) => {
    const ka = await tenantKubectl('acme', 'a1');
    // Running pods keep their cluster awake (their kubelet restarts and probes them): none may be left.
    await ok(ka, ['delete', 'deployment', 'web']);
    await ok(ka, ['delete', 'pod', '--all', '--grace-period=0', '--force']);
    const a1 = await cluster('acme', 'a1');
    const prefix = `k${a1.metadata.uid.replace(/-/g, '').slice(0, 12)}`;
    await eventually(async () => !(await runcList()).includes(prefix), "a1's pods gone", 60_000);
    await ok(op, ['patch', 'clusters.kubicle.io', 'a1', '-n', 'acme', '--type', 'merge', '-p', '{"spec":{"sleepAfterSeconds":2}}']);
    await waitPhase('acme', 'a1', 'Sleeping', 30_000);
    // Asleep, it accrues nothing: no CPU, no control-plane time, no memory (its cgroup's page
    // cache is not billed), and its Usage is not rewritten. (After two samples: the one that saw
    // it go to sleep counts what stopping it cost.)
    await new Promise((r) => setTimeout(r, 2500));
    const asleep = await usageOf('acme', 'a1');
    await new Promise((r) => setTimeout(r, 3000));
    const later = await usageOf('acme', 'a1');
    const d = (k: 'cpuSeconds' | 'memoryGiBSeconds' | 'controlPlaneSeconds') => later.total[k] - asleep.total[k];
    t.diagnostic(`a1 asleep for 3 s: +${d('cpuSeconds').toFixed(4)} CPU-s, +${d('memoryGiBSeconds').toFixed(4)} GiB-s, +${d('controlPlaneSeconds')} control-plane s`);
    assert.equal(d('controlPlaneSeconds'), 0);
    assert.equal(d('cpuSeconds'), 0, `asleep: ${d('cpuSeconds')} CPU-s`);
    assert.equal(d('memoryGiBSeconds'), 0, `asleep: ${d('memoryGiBSeconds')} GiB-s`);
    assert.equal(later.updated, asleep.updated, 'an asleep cluster\'s Usage is not written');
    const a = await cluster('acme', 'a1');
    const ps = await run('ps', ['-eo', 'args']);
    assert.doesNotMatch(ps.stdout, new RegExp(`controlplane[^\\n]*${a.status.endpoint.replace(/^https:\/\/|:443$/g, '').replace(/\./g, '\\.')}`), 'no control-plane process while asleep');
    assert.match(await ok(ka, ['get', 'configmap', 'only-in-a1', '-o', 'jsonpath={.data.k}']), /^v$/);
    await waitPhase('acme', 'a1', 'Running', 10_000);
    await ok(op, ['patch', 'clusters.kubicle.io', 'a1', '-n', 'acme', '--type', 'merge', '-p', '{"spec":{"sleepAfterSeconds":0}}']);
  });

  test('stop halts a control plane and keeps its state; start brings it back', async () => {
    const kg = await tenantKubectl('globex', 'g1');
    await ok(kg, ['create', 'configmap', 'kept', '--from-literal=x=1']);
    const stop = await run(process.execPath, [bin, 'cluster', 'stop', 'g1', '--tenant', 'globex', '--provider', p.kubeconfig]);
    assert.match(stop.stdout, /stopping/);
    await waitPhase('globex', 'g1', 'Stopped');
    const refused = await kg(['get', 'ns']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /refused/);
    const g = await cluster('globex', 'g1');
    const prefix = `k${g.metadata.uid.replace(/-/g, '').slice(0, 12)}`;
    assert.doesNotMatch((await runcList()), new RegExp(prefix), "a stopped cluster's pods are halted");
    await run(process.execPath, [bin, 'cluster', 'start', 'g1', '--tenant', 'globex', '--provider', p.kubeconfig, '--wait']);
    await waitPhase('globex', 'g1', 'Running');
    assert.equal(await ok(kg, ['get', 'configmap', 'kept', '-o', 'jsonpath={.data.x}']), '1');
    await eventually(async () => (await kg(['exec', 'web-g', '--', 'hostname'])).stdout.trim() === 'web-g', 'web-g runs again after start', 120_000);
  });

  test('bad Clusters are refused with field errors; a tenant beyond its cluster quota gets none', async () => {
    for (const [spec, want] of [
      ['{store: mysql}', /spec\.store: Unsupported value: "mysql"/],
      ['{controlPlane: {replicas: 3}}', /spec\.controlPlane\.replicas: Invalid value: 3/],
      ['{sleepAfterSeconds: -1}', /spec\.sleepAfterSeconds: Invalid value: -1/],
      ['{controlPlane: {resources: {memory: lots}}}', /spec\.controlPlane\.resources\.memory: Invalid value: "lots"/],
    ] as const) {
      const r = await op(['apply', '-f', '-'], { input: `apiVersion: kubicle.io/v1alpha1\nkind: Cluster\nmetadata: {name: bad, namespace: acme}\nspec: ${spec}\n` });
      assert.notEqual(r.code, 0, spec);
      assert.match(r.stderr, want);
    }
    const upper = await op(['apply', '-f', '-'], { input: 'apiVersion: kubicle.io/v1alpha1\nkind: Cluster\nmetadata: {name: Bad_Name, namespace: acme}\nspec: {}\n' });
    assert.notEqual(upper.code, 0);
    assert.match(upper.stderr, /Invalid value: "Bad_Name"/);
    await ok(op, ['patch', 'tenants.kubicle.io', 'acme', '--type', 'merge', '-p', '{"spec":{"quota":{"clusters":"1"}}}']);
    await ok(op, ['apply', '-f', '-'], 'apiVersion: kubicle.io/v1alpha1\nkind: Cluster\nmetadata: {name: a2, namespace: acme}\nspec: {}\n');
    await waitPhase('acme', 'a2', 'Failed');
    assert.match((await cluster('acme', 'a2')).status.message, /tenant acme has reached its quota of 1 clusters/);
    await ok(op, ['delete', 'clusters.kubicle.io', 'a2', '-n', 'acme', '--wait=true']);
    // A hostile tenant asking for a control plane as big as the host gets none.
    await ok(op, ['patch', 'tenants.kubicle.io', 'globex', '--type', 'merge', '-p', '{"spec":{"quota":{"cpu":"2","memory":"1Gi"}}}']);
    await ok(op, ['apply', '-f', '-'], 'apiVersion: kubicle.io/v1alpha1\nkind: Cluster\nmetadata: {name: huge, namespace: globex}\nspec: {controlPlane: {resources: {cpu: "64", memory: 512Gi}}}\n');
    await waitPhase('globex', 'huge', 'Failed');
    assert.match((await cluster('globex', 'huge')).status.message, /tenant globex's quota of cpu 2 would be exceeded: its control planes would use 65/);
    assert.equal((await runcList()).includes((await cluster('globex', 'huge')).metadata.uid), false);
    await ok(op, ['delete', 'clusters.kubicle.io', 'huge', '-n', 'globex', '--wait=true']);
    // etcd asked of a provider that has none: a clear failure, nothing started.
    await ok(op, ['apply', '-f', '-'], 'apiVersion: kubicle.io/v1alpha1\nkind: Cluster\nmetadata: {name: on-etcd, namespace: globex}\nspec: {store: etcd}\n');
    await waitPhase('globex', 'on-etcd', 'Failed');
    assert.match((await cluster('globex', 'on-etcd')).status.message, /this provider has no etcd for control planes: start it with --cluster-etcd/);
    await ok(op, ['delete', 'clusters.kubicle.io', 'on-etcd', '-n', 'globex', '--wait=true']);
    const grow = await op(['patch', 'clusters.kubicle.io', 'g1', '-n', 'globex', '--type', 'merge', '-p', '{"spec":{"controlPlane":{"resources":{"memory":"64Gi"}}}}']);
    assert.notEqual(grow.code, 0);
    assert.match(grow.stderr, /spec\.controlPlane\.resources: Invalid value: .*field is immutable/);
  });

  test('deleting a cluster removes its sandbox, data, endpoint and credentials', async () => {
    const a = await cluster('acme', 'a1');
    const dataDir = path.join(p.dataDir, 'clusters', a.metadata.uid);
    assert.ok(existsSync(dataDir));
    const ka = await tenantKubectl('acme', 'a1');
    await ok(op, ['delete', 'clusters.kubicle.io', 'a1', '-n', 'acme', '--wait=true', '--timeout=60s']);
    assert.equal(existsSync(dataDir), false, 'data directory removed');
    const list = await runcList();
    assert.doesNotMatch(list, new RegExp(a.metadata.uid));
    assert.doesNotMatch(list, new RegExp(`k${a.metadata.uid.replace(/-/g, '').slice(0, 12)}`), "the cluster's pods are gone");
    const links = await run('ip', ['-o', 'addr', 'show']);
    assert.doesNotMatch(links.stdout, new RegExp(`inet ${a.status.podCIDR.replace(/0\/24$/, '1/').replace(/\./g, '\\.')}`), "the cluster's network is gone");
    assert.doesNotMatch(await ok(op, ['get', 'sandboxes.kubicle.io', '-n', 'acme']), /a1/);
    const r = await ka(['get', 'ns']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /refused/);
    await eventually(async () => (await op(['get', 'secret', 'a1-kubeconfig', '-n', 'acme'])).code !== 0, 'kubeconfig secret collected');
    // The other tenant's cluster is untouched.
    assert.equal((await cluster('globex', 'g1')).status.phase, 'Running');
  });
});
