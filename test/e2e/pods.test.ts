import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isCode } from '../../src/observe/errors.js';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { freePort } from '../support/etcd.js';
import { httpGet } from '../support/http.js';
import { cleanup, eventually, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * Pods really run: stock kubectl against `kubicle standalone` with its local node (host agent, runc under
 * conmon, the embedded registry). Its own bridge and pod range keep it apart from other runs.
 */
const podCidr = '10.246.0.0/24';
const bridge = 'kubtest0';
const serviceCidr = '10.110.0.0/16';

/** What the host still holds for a pod's sandbox: processes, mounts, cgroups, network namespace, runc containers. */
function hostLeftovers(uid: string, dataDir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const cmd = (() => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    })();
    if (cmd.includes(uid)) found.push(`process ${pid}: ${cmd.replace(/\0/g, ' ').slice(0, 80)}`);
  }
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) if (line.includes(uid)) found.push(`mount ${line.split(' ')[4]}`);
  for (const h of readdirSync('/sys/fs/cgroup')) if (existsSync(path.join('/sys/fs/cgroup', h, 'kubicle', uid))) found.push(`cgroup ${h}/kubicle/${uid}`);
  if (existsSync(`/run/netns/kubicle-${uid}`)) found.push('network namespace');
  if (existsSync(path.join(dataDir, 'agent/sandboxes', uid))) found.push('sandbox directory');
  const runc = execFileSync('runc', ['--root', '/run/kubicle/runc', 'list', '-q']).toString();
  if (runc.includes(uid)) found.push('runc container');
  return found;
}

describe('pods on the local node (runc)', () => {
  let k: Kubicle;
  let kc: Awaited<ReturnType<typeof kubectlFor>>;
  let registry: string;
  let image: string;
  const ns = 'pods-e2e';

  const json = async (args: string[]) => {
    const r = await kc([...args, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const pod = (name: string) => json(['get', 'pod', name, '-n', ns]);
  const run = async (args: string[]) => {
    const r = await kc(args);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    registry = `127.0.0.1:${await freePort()}`;
    image = `${registry}/kubicle/busybox:1`;
    k = await startKubicle({ args: ['--node', 'local', '--load-balancer-pool', '127.241.10.0/28', '--node-name', 'e2e-node', '--pod-cidr', podCidr, '--service-cidr', serviceCidr, '--bridge', bridge, '--registry-port', registry.split(':')[1], '--restart-backoff', '1', '--kubelet-port', String(await freePort())] });
    kc = await kubectlFor(k, '1.33');
    await run(['create', 'namespace', ns]);
    await eventually(async () => (await kc(['get', 'node', 'e2e-node'])).code === 0, 'the node registers');
  });

  after(async () => {
    // Pods go first so their sandboxes are removed while the kubelet still runs.
    await kc(['delete', 'pods', '--all', '-n', ns, '--grace-period=0', '--force']);
    await kc(['delete', 'namespace', ns, '--wait=false']);
    const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
    const gone = await eventually(async () => (await agent.listSandboxes()).length === 0, 'every sandbox is removed', 60_000).then(
      () => true,
      () => false,
    );
    await k.stop();
    if (!gone) process.stderr.write(`sandboxes left behind; server log:\n${k.logs().split('\n').filter((l) => /warn|error/.test(l)).slice(-30).join('\n')}\n`);
    await cleanup(k);
    assert.ok(gone, 'every sandbox is removed once its pod is gone');
  });

  it('a Deployment of busybox httpd goes Running and answers HTTP on its pod IPs from the host', async () => {
    await run(['create', 'deployment', 'web', '-n', ns, `--image=${image}`, '--replicas=2', '--', 'httpd', '-f', '-p', '80', '-h', '/var/www']);
    await run(['rollout', 'status', 'deployment/web', '-n', ns, '--timeout=60s']);
    const pods = (await json(['get', 'pods', '-n', ns, '-l', 'app=web'])).items;
    assert.equal(pods.length, 2);
    const ips = new Set<string>();
    for (const p of pods) {
      assert.equal(p.status.phase, 'Running');
      assert.equal(p.status.hostIP, '127.0.0.1');
      assert.ok(p.status.podIP.startsWith('10.246.0.'), p.status.podIP);
      assert.equal(p.status.qosClass, 'BestEffort');
      assert.equal(p.status.containerStatuses[0].state.running !== undefined, true);
      assert.match(p.status.containerStatuses[0].containerID, /^runc:\/\//);
      ips.add(p.status.podIP);
      const res = await httpGet(`http://${p.status.podIP}/`);
      assert.equal(res.status, 200);
      assert.equal(res.body, 'hello from kubicle busybox\n');
    }
    assert.equal(ips.size, 2, 'each pod has its own address');
  });

  it('pods reach each other across the node bridge', async () => {
    const pods = (await json(['get', 'pods', '-n', ns, '-l', 'app=web'])).items;
    await run(['run', 'client', '-n', ns, `--image=${image}`, '--restart=Never', '--', 'wget', '-q', '-O', '-', `http://${pods[0].status.podIP}/`]);
    await eventually(async () => (await pod('client')).status.phase === 'Succeeded', 'the client pod fetches from a web pod and succeeds', 30_000);
    const st = (await pod('client')).status.containerStatuses[0].state.terminated;
    assert.equal(st.exitCode, 0);
    assert.equal(st.reason, 'Completed');
  });

  it('a crashing container goes into CrashLoopBackOff with a growing back-off', async () => {
    await run(['run', 'crash', '-n', ns, `--image=${image}`, '--', 'sh', '-c', 'echo dying; exit 3']);
    const messages = new Set<string>();
    await eventually(
      async () => {
        const cs = (await pod('crash')).status.containerStatuses?.[0];
        if (cs?.state?.waiting?.reason === 'CrashLoopBackOff') messages.add(/back-off (\d+)s/.exec(cs.state.waiting.message)?.[1] ?? '');
        return cs?.restartCount >= 3 && messages.size >= 2;
      },
      'three restarts and two different back-off delays',
      40_000,
    );
    const cs = (await pod('crash')).status.containerStatuses[0];
    const last = cs.lastState.terminated ?? cs.state.terminated;
    assert.equal(last.exitCode, 3);
    assert.equal(last.reason, 'Error');
    const delays = [...messages].map(Number).sort((a, b) => a - b);
    assert.ok(delays[delays.length - 1] >= 2 * delays[0], `back-off grows: ${delays}`);
  });

  it('kubectl logs: whole, --tail, --timestamps, --previous, -c, --all-containers, -f', async () => {
    const logs = (args: string[]) => run(['logs', '-n', ns, ...args]);
    assert.match(await logs(['crash']), /^dying\n$/);
    assert.match(await logs(['crash', '--previous']), /^dying\n$/);
    assert.match(await logs(['crash', '--timestamps', '--previous']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z dying\n$/);
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'talker', namespace: ns },
      spec: {
        containers: [
          { name: 'counter', image, command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo line $i; done; i=6; while true; do echo line $i; i=$((i+1)); sleep 0.3; done'] },
          { name: 'quiet', image, command: ['sh', '-c', 'echo only me; sleep 3600'] },
        ],
      },
    };
    assert.equal((await kc(['apply', '-f', '-'], { input: JSON.stringify(manifest) })).code, 0);
    await eventually(async () => (await pod('talker')).status.phase === 'Running', 'talker runs', 30_000);
    await eventually(async () => (await kc(['logs', '-n', ns, 'talker', '-c', 'counter'])).stdout.includes('line 7'), 'lines arrive');
    // kubectl picks the first container itself and says so.
    const defaulted = await kc(['logs', '-n', ns, 'talker']);
    assert.equal(defaulted.code, 0, defaulted.stderr);
    assert.match(defaulted.stderr, /Defaulted container "counter" out of: counter, quiet/);
    const tail = await logs(['talker', '-c', 'counter', '--tail=2']);
    assert.equal(tail.trim().split('\n').length, 2);
    // Running says both containers started, not that quiet's one line is in its log yet.
    await eventually(async () => (await logs(['talker', '-c', 'quiet'])) !== '', "quiet's line is logged");
    assert.equal(await logs(['talker', '-c', 'quiet']), 'only me\n');
    const both = await logs(['talker', '--all-containers=true']);
    assert.match(both, /only me/);
    assert.match(both, /line 1\n/);
    // -f streams: new lines arrive while the request is open.
    const follow = await kc(['logs', '-n', ns, 'talker', '-c', 'counter', '-f', '--tail=1', '--request-timeout=3s'], { timeoutMs: 4000 });
    const followed = follow.stdout.trim().split('\n');
    assert.ok(followed.length >= 4, `following shows new lines: ${follow.stdout}`);
    const nums = followed.map((l) => Number(l.split(' ')[1]));
    assert.ok(nums.every((n, i) => i === 0 || n === nums[i - 1] + 1), `in order: ${nums}`);
  });

  it('a command that does not exist shows StartError with runc’s reason', async () => {
    await run(['run', 'nocmd', '-n', ns, `--image=${image}`, '--restart=Never', '--', 'no-such-command']);
    await eventually(async () => (await pod('nocmd')).status.phase === 'Failed', 'the pod fails', 30_000);
    const t = (await pod('nocmd')).status.containerStatuses[0].state.terminated;
    assert.equal(t.reason, 'StartError');
    assert.equal(t.exitCode, 128);
    assert.match(t.message, /exec: "no-such-command": executable file not found in \$PATH/);
  });

  it('an image that does not exist shows ErrImagePull, then ImagePullBackOff, with the registry’s reason', async () => {
    // Watch the pod so no status in between is missed, however briefly it stands.
    const watching = kc(['get', 'pods', '-n', ns, '--field-selector=metadata.name=badimg', '-w', '-o', 'jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}{"\\n"}', '--request-timeout=12s'], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 1000));
    await run(['run', 'badimg', '-n', ns, `--image=${registry}/kubicle/does-not-exist:1`]);
    const seen = new Map<string, string>();
    for (const line of (await watching).stdout.split('\n')) {
      const [reason, message] = line.split('|');
      if (reason) seen.set(reason, message ?? '');
    }
    assert.ok(seen.has('ErrImagePull') && seen.has('ImagePullBackOff'), `ErrImagePull then ImagePullBackOff: ${[...seen.keys()]}`);
    assert.match(seen.get('ErrImagePull') ?? '', /does-not-exist.*(NAME_UNKNOWN|MANIFEST_UNKNOWN)/);
    assert.match(seen.get('ImagePullBackOff') ?? '', /Back-off pulling image/);
    const events = await run(['get', 'events', '-n', ns, '--field-selector', 'involvedObject.name=badimg']);
    assert.match(events, /Failed to pull image/);
    const waiting = await kc(['logs', '-n', ns, 'badimg']);
    assert.notEqual(waiting.code, 0);
    assert.match(waiting.stderr, /is waiting to start: (ErrImagePull|ImagePullBackOff|ContainerCreating)/);
  });

  it('a container over its memory limit is OOMKilled', async () => {
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'oom', namespace: ns },
      spec: { restartPolicy: 'Never', containers: [{ name: 'eat', image, command: ['sh', '-c', 'tail /dev/zero'], resources: { limits: { memory: '32Mi' } } }] },
    };
    const r = await kc(['apply', '-f', '-'], { input: JSON.stringify(manifest) });
    assert.equal(r.code, 0, r.stderr);
    await eventually(async () => (await pod('oom')).status.phase === 'Failed', 'the pod fails', 30_000);
    const t = (await pod('oom')).status.containerStatuses[0].state.terminated;
    assert.equal(t.reason, 'OOMKilled', `the whole state: ${JSON.stringify(t)}`);
    assert.equal(t.exitCode, 137);
  });

  it('a local-path claim is made on its pod’s node, and its data goes when the volume is deleted', async () => {
    const claim = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'kept', namespace: ns }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } };
    const keeper = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'keeper', namespace: ns },
      spec: { containers: [{ name: 'c', image, command: ['sh', '-c', 'echo kept > /data/file && sleep 3600'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }], volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'kept' } }] },
    };
    for (const obj of [claim, keeper]) assert.equal((await kc(['apply', '-f', '-'], { input: JSON.stringify(obj) })).code, 0);
    await eventually(async () => (await pod('keeper')).status.phase === 'Running', 'the pod runs');
    const pv = await json(['get', 'pv', (await json(['get', 'pvc', 'kept', '-n', ns])).spec.volumeName]);
    assert.deepEqual(pv.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values, ['e2e-node']);
    const dir: string = pv.spec.hostPath.path;
    await eventually(async () => existsSync(path.join(dir, 'file')), 'the pod wrote its file');
    assert.equal(readFileSync(path.join(dir, 'file'), 'utf8'), 'kept\n', 'the data is on this host, in the volume’s directory');

    await run(['delete', 'pod', 'keeper', '-n', ns, '--grace-period=1']);
    await run(['delete', 'pvc', 'kept', '-n', ns]);
    await eventually(async () => (await kc(['get', 'pv', pv.metadata.name])).code !== 0, 'the volume is deleted');
    assert.equal(existsSync(dir), false, 'and its directory with it');

    // The agent removes nothing but a direct child of its local volume root.
    const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
    for (const bad of ['/etc', '/var/lib/kubicle/local-path', '/var/lib/kubicle/local-path/../x', 'var/lib/kubicle/local-path/x', '/var/lib/kubicle/local-path/a/b', '/var/lib/kubicle/local-path/.hidden', '']) {
      const err = await agent.removeHostDir(bad).then(
        () => undefined,
        (e: Error) => e,
      );
      assert.ok(err && isCode(err, 'Forbidden'), `${JSON.stringify(bad)} is refused (${err?.message})`);
      assert.match(err.message, /is not a directory this host lets callers remove \(only those directly under: \/var\/lib\/kubicle\/local-path\)/);
    }
    assert.ok(existsSync('/etc/hostname'));
  });

  it('kubectl delete stops the processes within the grace period and leaves nothing behind', async () => {
    await run(['run', 'graceful', '-n', ns, `--image=${image}`, '--', 'sh', '-c', "trap 'echo bye; exit 0' TERM; while true; do sleep 0.2; done"]);
    await eventually(async () => (await pod('graceful')).status.phase === 'Running', 'running', 30_000);
    const uid = (await pod('graceful')).metadata.uid;
    assert.notDeepEqual(hostLeftovers(uid, k.dataDir), [], 'a running pod holds host resources');
    await run(['delete', 'pod', 'graceful', '-n', ns, '--grace-period=20', '--wait=true']);
    // The trap exits on SIGTERM, so deletion finishes long before the grace period.
    await eventually(async () => hostLeftovers(uid, k.dataDir).length === 0, `no leftovers: ${hostLeftovers(uid, k.dataDir)}`, 15_000);

    await run(['run', 'stubborn', '-n', ns, `--image=${image}`, '--', 'sh', '-c', "trap '' TERM; while true; do sleep 0.2; done"]);
    await eventually(async () => (await pod('stubborn')).status.phase === 'Running', 'running', 30_000);
    const uid2 = (await pod('stubborn')).metadata.uid;
    const started = Date.now();
    await run(['delete', 'pod', 'stubborn', '-n', ns, '--grace-period=2', '--wait=true']);
    assert.ok(Date.now() - started >= 1500, 'a process ignoring SIGTERM keeps its grace period');
    assert.deepEqual(hostLeftovers(uid2, k.dataDir), []);
  });

  it('a restarted kubicle (agent and kubelet) re-adopts running pods: same containers, status right, still serving', async () => {
    const before = (await json(['get', 'pods', '-n', ns, '-l', 'app=web'])).items;
    await k.kill();
    // The containers do not depend on the agent: they serve while it is down.
    assert.equal((await httpGet(`http://${before[0].status.podIP}/`)).status, 200);
    await k.start();
    await eventually(async () => (await kc(['get', 'pods', '-n', ns])).code === 0, 'the API is back');
    await new Promise((r) => setTimeout(r, 3000));
    const after = (await json(['get', 'pods', '-n', ns, '-l', 'app=web'])).items;
    for (const b of before) {
      const a = after.find((p: { metadata: { uid: string } }) => p.metadata.uid === b.metadata.uid);
      assert.ok(a, 'the same pods');
      assert.equal(a.status.phase, 'Running');
      assert.equal(a.status.containerStatuses[0].containerID, b.status.containerStatuses[0].containerID);
      assert.equal(a.status.containerStatuses[0].restartCount, 0);
      assert.equal(a.status.podIP, b.status.podIP);
      assert.equal((await httpGet(`http://${a.status.podIP}/`)).status, 200);
    }
  });
});
