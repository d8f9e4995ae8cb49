import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { freePort } from '../support/etcd.js';
import { httpGet } from '../support/http.js';
import { cleanup, eventually, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/**
 * Pods in the microvm RuntimeClass: each its own QEMU microvm guest (TCG here; KVM where a probe
 * boot works), driven by stock kubectl 1.27 and 1.33 like any pod.
 */
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const podCidr = '10.246.12.0/24';
const bridge = 'kubtest8';

describe('microvm pods', () => {
  let k: Kubicle;
  let image: string;
  const ns = 'microvm-e2e';
  let kc: Awaited<ReturnType<typeof kubectlFor>>;
  let old: Awaited<ReturnType<typeof kubectlFor>>;
  let ok: ReturnType<typeof mustSucceed>;
  const manifest = (name: string, command: string[], extra: object = {}) =>
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, labels: { app: name } },
      spec: { runtimeClassName: 'microvm', terminationGracePeriodSeconds: 2, containers: [{ name: 'main', image, command }], ...extra },
    });

  before(async () => {
    const registryPort = await freePort();
    image = `127.0.0.1:${registryPort}/kubicle/busybox:1`;
    k = await startKubicle({
      args: ['--node', 'local', '--node-name', 'microvm-node', '--pod-cidr', podCidr, '--service-cidr', '10.121.0.0/16', '--bridge', bridge, '--load-balancer-pool', '127.241.13.0/28', '--registry-port', String(registryPort), '--kubelet-port', String(await freePort())],
    });
    kc = await kubectlFor(k, '1.33');
    old = await kubectlFor(k, '1.27');
    ok = mustSucceed(kc);
    await ok(['create', 'namespace', ns]);
    await eventually(async () => (await kc(['get', 'node', 'microvm-node'])).code === 0, 'the node registers');
    await ok(['apply', '-f', '-'], manifest('web', ['sh', '-c', 'mkdir -p /www && echo "from the microvm" > /www/index.html && echo serving && httpd -f -p 8080 -h /www']));
    await ok(['wait', '-n', ns, '--for=condition=Ready', 'pod/web', '--timeout=120s']);
  });

  after(async () => {
    await kc?.(['delete', 'pods', '--all', '-n', ns, '--grace-period=0', '--force']);
    const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
    await eventually(async () => (await agent.listSandboxes()).length === 0, 'every sandbox is removed', 60_000).catch(() => {});
    await cleanup(k);
  });

  it('the default RuntimeClasses exist, microvm with its overhead', async () => {
    const rc = JSON.parse(await ok(['get', 'runtimeclass', 'microvm', '-o', 'json']));
    assert.equal(rc.handler, 'microvm');
    assert.ok(rc.overhead?.podFixed?.memory, 'microvm has a pod overhead');
    assert.equal(JSON.parse(await ok(['get', 'runtimeclass', 'runc', '-o', 'json'])).handler, 'runc');
    const pod = JSON.parse(await ok(['get', 'pod', 'web', '-n', ns, '-o', 'json']));
    assert.deepEqual(pod.spec.overhead, rc.overhead.podFixed, 'the pod got the class overhead at admission');
  });

  it('runs on its own kernel: uname -r is the guest kernel, host processes are not visible', async () => {
    const guestRelease = (await readFile(path.join(repo, 'build/guest/kernel-release'), 'utf8')).trim();
    for (const k8 of [kc, old]) {
      const r = await k8(['exec', '-n', ns, 'web', '--', 'uname', '-r']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), guestRelease);
    }
    assert.notEqual(guestRelease, os.release(), 'the guest kernel is not the host kernel');
    const ps = await ok(['exec', '-n', ns, 'web', '--', 'ps', '-o', 'pid,comm']);
    assert.match(ps, /httpd/);
    assert.doesNotMatch(ps, /\bnode\b|etcd|conmon|qemu|docker-registry/, 'no host process is visible from the guest');
  });

  it('a sysctl set inside stays inside', async () => {
    const host = (await readFile('/proc/sys/vm/swappiness', 'utf8')).trim();
    const inside = host === '17' ? '23' : '17';
    await ok(['exec', '-n', ns, 'web', '--', 'sysctl', '-w', `vm.swappiness=${inside}`]);
    assert.equal((await ok(['exec', '-n', ns, 'web', '--', 'cat', '/proc/sys/vm/swappiness'])).trim(), inside);
    assert.equal((await readFile('/proc/sys/vm/swappiness', 'utf8')).trim(), host, "the host's value is unchanged");
  });

  /** The QEMU command line of a pod's microvm, from the host agent's record of its sandbox. */
  const qemuOf = async (pod: string): Promise<string[]> => {
    const base = path.join(k.dataDir, 'agent', 'microvm');
    for (const id of await readdir(base)) {
      const rec = JSON.parse(await readFile(path.join(base, id, 'sandbox.json'), 'utf8').catch(() => '{}'));
      if (rec.spec?.hostname === pod) return (await readFile(`/proc/${rec.pid}/cmdline`, 'utf8')).split('\0');
    }
    throw new Error(`no microvm for pod ${pod}`);
  };
  const templateDir = () => path.join(k.dataDir, 'agent', 'microvm-templates');

  it('guests resumed from one saved template are each their own: clock, entropy, boot id, MAC', async () => {
    await ok(['apply', '-f', '-'], manifest('twin', ['sleep', '3600']));
    await ok(['wait', '-n', ns, '--for=condition=Ready', 'pod/twin', '--timeout=120s']);
    const templates = (await readdir(templateDir())).filter((f) => f.endsWith('.vmstate'));
    assert.equal(templates.length, 1, 'one template for the one shape');
    const probe = 'cat /proc/sys/kernel/random/boot_id; head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"; echo; date +%s; cat /sys/class/net/eth0/address';
    const seen: string[][] = [];
    for (const pod of ['web', 'twin']) {
      const cmd = await qemuOf(pod);
      assert.equal(cmd[cmd.indexOf('-incoming') + 1], `exec:cat '${path.join(templateDir(), templates[0])}'`, `${pod} was resumed from the template`);
      const out = (await ok(['exec', '-n', ns, pod, '--', 'sh', '-c', probe])).trim().split('\n');
      assert.equal(out.length, 4, out.join('|'));
      assert.ok(Math.abs(Number(out[2]) - Date.now() / 1000) < 30, `${pod}'s clock is the host's: ${out[2]}`);
      seen.push(out);
    }
    assert.notEqual(seen[0][0], seen[1][0], 'each has its own boot id');
    assert.match(seen[0][1], /^[0-9a-f]{32}$/);
    assert.notEqual(seen[0][1], seen[1][1], 'each has its own random stream');
    assert.notEqual(seen[0][3], seen[1][3], 'each has its own MAC');
    const ips = await Promise.all(['web', 'twin'].map(async (p) => (await ok(['get', 'pod', p, '-n', ns, '-o', 'jsonpath={.status.podIP}'])).trim()));
    assert.equal((await ok(['exec', '-n', ns, 'twin', '--', 'wget', '-q', '-O', '-', `http://${ips[0]}:8080/`])).trim(), 'from the microvm', 'the twins reach each other');
  });

  it('a template that does not resume is dropped and the pod boots instead', async () => {
    const [name] = (await readdir(templateDir())).filter((f) => f.endsWith('.vmstate'));
    const file = path.join(templateDir(), name);
    await writeFile(file, 'not a saved guest');
    await ok(['apply', '-f', '-'], manifest('booted', ['sleep', '3600']));
    await ok(['wait', '-n', ns, '--for=condition=Ready', 'pod/booted', '--timeout=120s']);
    assert.ok(!(await qemuOf('booted')).includes('-incoming'), 'the pod booted');
    assert.ok(!existsSync(file), 'the bad template is gone');
    await ok(['delete', 'pod', 'booted', 'twin', '-n', ns, '--grace-period=0', '--force']);
  });

  it('logs, exec with stdout, stderr and exit code, exec -i', async () => {
    assert.match(await ok(['logs', '-n', ns, 'web']), /serving/);
    const r = await kc(['exec', '-n', ns, 'web', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'out\n');
    assert.match(r.stderr, /^err\n/);
    const counted = await ok(['exec', '-i', '-n', ns, 'web', '--', 'wc', '-l'], Array.from({ length: 5000 }, (_, i) => `line ${i}`).join('\n'));
    assert.equal(counted.trim(), '4999');
  });

  it('sits on the pod network: the host reaches it at its pod IP and through a Service', async () => {
    const ip = (await ok(['get', 'pod', 'web', '-n', ns, '-o', 'jsonpath={.status.podIP}'])).trim();
    assert.ok(ip.startsWith('10.246.12.'), ip);
    assert.equal((await httpGet(`http://${ip}:8080/`)).body.trim(), 'from the microvm');
    await ok(['expose', 'pod', 'web', '-n', ns, '--port', '80', '--target-port', '8080']);
    const svc = (await ok(['get', 'svc', 'web', '-n', ns, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    await eventually(async () => (await httpGet(`http://${svc}/`).catch(() => ({ body: '' }))).body.trim() === 'from the microvm', 'the Service reaches the microvm pod', 20_000);
  });

  it('a container that exits is restarted with its exit code recorded; a bad command is a StartError', async () => {
    await ok(['apply', '-f', '-'], manifest('crash', ['sh', '-c', 'echo run; exit 4']));
    await eventually(async () => {
      const p = JSON.parse(await ok(['get', 'pod', 'crash', '-n', ns, '-o', 'json']));
      const s = p.status?.containerStatuses?.[0];
      return s?.restartCount >= 1 && s?.lastState?.terminated?.exitCode === 4;
    }, 'the container restarts with its exit code', 90_000);
    await ok(['apply', '-f', '-'], manifest('bad', ['/no/such/command'], { restartPolicy: 'Never' }));
    await eventually(async () => {
      const p = JSON.parse(await ok(['get', 'pod', 'bad', '-n', ns, '-o', 'json']));
      const t = p.status?.containerStatuses?.[0]?.state?.terminated;
      return t?.reason === 'StartError' && /no\/such\/command/.test(t.message ?? '');
    }, 'a command that cannot start is a StartError with the reason', 90_000);
  });

  it('cluster policy: a namespace labelled runtime.kubicle.io/enforce=microvm runs every pod as a microvm and refuses others', async () => {
    await ok(['create', 'namespace', 'vm-only']);
    await ok(['label', 'namespace', 'vm-only', 'runtime.kubicle.io/enforce=microvm']);
    await ok(['run', 'plain', '-n', 'vm-only', `--image=${image}`, '--', 'sleep', '3600']);
    const pod = JSON.parse(await ok(['get', 'pod', 'plain', '-n', 'vm-only', '-o', 'json']));
    assert.equal(pod.spec.runtimeClassName, 'microvm', 'a pod that names no class gets the enforced one');
    assert.ok(pod.spec.overhead?.memory, 'and its overhead');
    const refused = await kc(['run', 'wants-runc', '-n', 'vm-only', `--image=${image}`, '--overrides={"spec":{"runtimeClassName":"runc"}}', '--', 'sleep', '3600']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /pods "wants-runc" is forbidden: pod rejected: namespace "vm-only" requires RuntimeClass "microvm" \(label runtime.kubicle.io\/enforce\), not "runc"/);
    await ok(['delete', 'namespace', 'vm-only', '--wait=false']);
  });

  it('bad input: a hostPath volume is refused with the reason, and no VM is left behind', async () => {
    await ok(['apply', '-f', '-'], manifest('hostpath', ['sleep', '60'], { volumes: [{ name: 'h', hostPath: { path: '/etc' } }] }));
    await eventually(async () => {
      const p = JSON.parse(await ok(['get', 'pod', 'hostpath', '-n', ns, '-o', 'json']));
      const w = p.status?.containerStatuses?.[0]?.state?.waiting;
      return w?.reason === 'CreateContainerConfigError' && /host paths cannot be mounted into a microvm/.test(w.message ?? '');
    }, 'the pod waits with CreateContainerConfigError and the reason', 60_000);
    const uid = (await ok(['get', 'pod', 'hostpath', '-n', ns, '-o', 'jsonpath={.metadata.uid}'])).trim();
    const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
    assert.ok(!(await agent.listSandboxes()).some((s) => s.id === uid), 'no sandbox was created for it');
    await ok(['delete', 'pod', 'hostpath', '-n', ns, '--grace-period=0', '--force']);
  });

  it('a restarted kubicle re-adopts microvm pods: same containers, output made while it was down, exits seen', async () => {
    const ticker = ['sh', '-c', 'i=0; while [ ! -e /tmp/stop ]; do echo "tick $i"; i=$((i+1)); sleep 0.2; done; echo stopping; exit 7'];
    await ok(['apply', '-f', '-'], manifest('ticker', ticker));
    await ok(['wait', '-n', ns, '--for=condition=Ready', 'pod/ticker', '--timeout=120s']);
    const before = JSON.parse(await ok(['get', 'pod', 'ticker', '-n', ns, '-o', 'json']));
    const webIp = (await ok(['get', 'pod', 'web', '-n', ns, '-o', 'jsonpath={.status.podIP}'])).trim();
    await k.kill();
    // The guests do not depend on the host agent: they serve while it is down, and output waits.
    assert.equal((await httpGet(`http://${webIp}:8080/`)).body.trim(), 'from the microvm');
    await new Promise((r) => setTimeout(r, 1500));
    await k.start();
    await eventually(async () => (await kc(['get', 'pods', '-n', ns])).code === 0, 'the API is back');
    await eventually(async () => {
      const r = await kc(['logs', '-n', ns, 'ticker']);
      return r.code === 0 && r.stdout.trim().split('\n').length > 30;
    }, 'ticks keep coming after the restart');
    const after = JSON.parse(await ok(['get', 'pod', 'ticker', '-n', ns, '-o', 'json']));
    assert.equal(after.status.containerStatuses[0].containerID, before.status.containerStatuses[0].containerID, 'the same container');
    assert.equal(after.status.containerStatuses[0].restartCount, 0);
    assert.ok(after.status.containerStatuses[0].state.running, 'still running');
    const ticks = (await ok(['logs', '-n', ns, 'ticker'])).trim().split('\n');
    assert.deepEqual(ticks, Array.from(ticks, (_, i) => `tick ${i}`), 'no tick lost while the host agent was down');
    // The exec and the container's exit both go through the adopted guest connection.
    await ok(['exec', '-n', ns, 'ticker', '--', 'touch', '/tmp/stop']);
    await eventually(async () => {
      const st = JSON.parse(await ok(['get', 'pod', 'ticker', '-n', ns, '-o', 'json'])).status.containerStatuses[0];
      return st.restartCount === 1 && st.lastState?.terminated?.exitCode === 7;
    }, 'the exit is seen and the container restarted', 60_000);
    assert.match(await ok(['logs', '-n', ns, 'ticker', '--previous']), /stopping\n$/);
    assert.equal((await httpGet(`http://${webIp}:8080/`)).body.trim(), 'from the microvm');
    await ok(['delete', 'pod', 'ticker', '-n', ns, '--grace-period=0', '--force']);
  });

  it('a guest whose kernel dies fails the pod cleanly', async () => {
    await ok(['apply', '-f', '-'], manifest('doomed', ['sleep', '3600'], { restartPolicy: 'Never' }));
    await ok(['wait', '-n', ns, '--for=condition=Ready', 'pod/doomed', '--timeout=120s']);
    // Crash the guest kernel from inside: QEMU exits (panic=-1, -no-reboot) and takes the pod with it.
    await kc(['exec', '-n', ns, 'doomed', '--', 'sh', '-c', 'echo c > /proc/sysrq-trigger'], { timeoutMs: 20_000 });
    await eventually(async () => (await ok(['get', 'pod', 'doomed', '-n', ns, '-o', 'jsonpath={.status.phase}'])).trim() === 'Failed', 'the pod fails', 60_000);
    const t = JSON.parse(await ok(['get', 'pod', 'doomed', '-n', ns, '-o', 'json'])).status.containerStatuses[0].state.terminated;
    assert.notEqual(t.exitCode, 0);
  });
});
