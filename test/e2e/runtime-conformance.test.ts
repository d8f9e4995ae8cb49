import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { freePort } from '../support/etcd.js';
import { httpGet } from '../support/http.js';
import { cleanup, eventually, type Kubicle, kubectlFor, kubectlOnTerminal, kubectlPath, mustSucceed, startKubicle } from '../support/kubicle.js';

/**
 * One conformance suite for every RuntimeClass: the same pods, the same stock-kubectl checks,
 * once on runc containers and once on QEMU microvm guests. What a pod can do must not depend on
 * the sandbox it runs in: logs, exec on a terminal, attach, port-forward, cp, probes, restarts
 * with back-off, termination with a grace period, and top.
 */
const runtimes = ['runc', 'microvm'];

describe('the pod features every runtime has', () => {
  let k: Kubicle;
  let image: string;
  let kc: Awaited<ReturnType<typeof kubectlFor>>;
  let ok: ReturnType<typeof mustSucceed>;
  let tmp: string;

  before(async () => {
    const registryPort = await freePort();
    image = `127.0.0.1:${registryPort}/kubicle/busybox:1`;
    k = await startKubicle({
      args: ['--node', 'local', '--node-name', 'conformance-node', '--pod-cidr', '10.246.13.0/24', '--service-cidr', '10.122.0.0/16', '--bridge', 'kubtest9', '--load-balancer-pool', '127.241.14.0/28', '--registry-port', String(registryPort), '--kubelet-port', String(await freePort())],
    });
    kc = await kubectlFor(k, '1.33');
    ok = mustSucceed(kc);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'kubicle-conformance-'));
    await eventually(async () => (await kc(['get', 'node', 'conformance-node'])).code === 0, 'the node registers');
  });

  after(async () => {
    for (const rt of runtimes) await kc?.(['delete', 'pods', '--all', '-n', `conf-${rt}`, '--grace-period=0', '--force']);
    const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
    await eventually(async () => (await agent.listSandboxes()).length === 0, 'every sandbox is removed', 60_000).catch(() => {});
    await rm(tmp, { recursive: true, force: true });
    await cleanup(k);
  });

  for (const rt of runtimes) {
    describe(`RuntimeClass ${rt}`, () => {
      const ns = `conf-${rt}`;
      const pod = (name: string, container: object, spec: object = {}) => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns },
        spec: { runtimeClassName: rt, terminationGracePeriodSeconds: 2, containers: [{ name: 'main', image, ...container }], ...spec },
      });
      const get = async (name: string) => JSON.parse(await ok(['get', 'pod', '-n', ns, name, '-o', 'json']));

      before(async () => {
        await ok(['create', 'namespace', ns]);
        const pods = [
          pod('web', {
            command: ['sh', '-c', `mkdir -p /tmp/www && echo "hello from ${rt}" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www`],
            env: [{ name: 'GREETING', value: 'hi there' }],
            workingDir: '/tmp',
            securityContext: { runAsUser: 1234 },
            readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
          }),
          pod('ticker', { command: ['sh', '-c', "trap 'echo got TERM; exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"] }, { terminationGracePeriodSeconds: 30 }),
          pod('crasher', { command: ['sh', '-c', 'echo run; exit 3'] }),
          pod('prober', { command: ['sleep', '3600'], livenessProbe: { exec: { command: ['cat', '/tmp/healthy'] }, periodSeconds: 1, failureThreshold: 2 } }),
          pod('eater', { command: ['sh', '-c', 'tail /dev/zero'], resources: { limits: { memory: '32Mi' } } }, { restartPolicy: 'Never' }),
        ];
        await ok(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: pods }));
        await ok(['wait', '-n', ns, '--for=condition=Ready', 'pod/web', 'pod/ticker', '--timeout=180s']);
      });

      it("the host agent lists a node's sandboxes by label, and only those", async () => {
        const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
        const uid = (await get('web')).metadata.uid;
        const mine = await agent.listSandboxes({ 'kubicle.io/node': 'conformance-node', 'kubicle.io/namespace': ns, 'kubicle.io/pod': 'web' });
        assert.deepEqual(mine.map((s) => s.id), [uid]);
        assert.equal(mine[0].containers.find((c) => c.name === 'main')?.state, 'running');
        assert.deepEqual(await agent.listSandboxes({ 'kubicle.io/node': 'another-node' }), []);
        await assert.rejects(agent.listSandboxes({ 'kubicle.io/node in (a)': 'x' }), /labelSelector term .* is not key=value/);
      });

      it("a container's status asked all through its start shows it running, or its own exit code, never lost", async () => {
        const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
        await agent.pullImage(image);
        for (const [i, command, want] of [
          [0, ['sleep', '3600'], { state: 'running' }],
          [1, ['sh', '-c', 'exit 7'], { state: 'exited', exitCode: 7, reason: 'Error' }],
        ] as const) {
          // Named by this run: a sandbox left by an earlier, failed run must not be met again.
          const id = `asked-${rt}-${i}-${k.port}`;
          await agent.createSandbox({ id, hostname: 'asked' }, rt);
          // The kubelet and the meter ask whenever they like; here without pause from before the start to after it.
          let asking = true;
          const ask = (async () => {
            while (asking) await agent.getSandbox(id).catch(() => {});
          })();
          try {
            await agent.startContainer(id, { name: 'c', image, command: [...command] });
            await eventually(async () => (await agent.getSandbox(id)).containers[0]?.state === want.state, `${id} ${want.state}`);
            asking = false;
            await ask;
            const c = (await agent.getSandbox(id)).containers[0];
            assert.deepEqual({ state: c.state, ...('exitCode' in want ? { exitCode: c.exitCode, reason: c.reason } : {}) }, want, `${id}: ${c.message ?? ''}`);
          } finally {
            asking = false;
            await ask;
            await agent.removeSandbox(id, 0);
          }
        }
      });

      it('logs: --tail and --timestamps, -f follows, --previous shows the run before a restart', async () => {
        // Ready comes with the first tick: --tail=2 needs the ticker to have printed more than two.
        await eventually(async () => (await ok(['logs', '-n', ns, 'ticker'])).split('\n').filter(Boolean).length >= 3, 'the ticker has printed three lines');
        const tail = (await ok(['logs', '-n', ns, 'ticker', '--tail=2', '--timestamps'])).trim().split('\n');
        assert.equal(tail.length, 2);
        for (const line of tail) assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z tick \d+$/, 'the time as upstream prints it (RFC 3339, UTC, nanoseconds)');
        const follow = spawn(kubectlPath('1.33'), ['--kubeconfig', k.kubeconfig, 'logs', '-f', '-n', ns, 'ticker', '--tail=0'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        follow.stdout.on('data', (d) => {
          out += d;
        });
        try {
          await eventually(async () => (out.match(/tick \d+/g) ?? []).length >= 3, `-f shows new lines as they come (${out})`, 30_000);
        } finally {
          follow.kill();
        }
        await eventually(async () => (await get('crasher')).status.containerStatuses?.[0]?.restartCount >= 1, 'the crasher has restarted', 120_000).catch(async (err) => {
          throw new Error(`${err.message}; its status: ${JSON.stringify((await get('crasher')).status)}`);
        });
        assert.equal(await ok(['logs', '-n', ns, 'crasher', '--previous']), 'run\n');
      });

      it("exec runs as the container does: its environment, working directory and user", async () => {
        assert.equal(await ok(['exec', '-n', ns, 'web', '--', 'sh', '-c', 'echo "$GREETING|$(pwd)|$(id -u)"']), 'hi there|/tmp|1234\n');
      });

      it('exec of a command that does not exist is an internal error naming it, not an exit code', async () => {
        for (const version of ['1.27', '1.33']) {
          const r = await (await kubectlFor(k, version))(['exec', '-n', ns, 'web', '--', 'no-such-command', 'x']);
          assert.equal(r.code, 1, r.stderr);
          assert.match(r.stderr, /^error: Internal error occurred: error executing command in container: .*no-such-command.*(not found|No such file)/m);
          assert.doesNotMatch(r.stderr, /exit code|command terminated/);
          assert.equal(r.stderr.trim().split('\n').length, 1, `one line, no stray runtime output: ${r.stderr}`);
        }
        // A command that runs and fails keeps its own stderr and exit code.
        const failed = await (await kubectlFor(k, '1.33'))(['exec', '-n', ns, 'web', '--', 'sh', '-c', 'echo oops >&2; exit 3']);
        assert.equal(failed.code, 3);
        assert.equal(failed.stderr, 'oops\ncommand terminated with exit code 3\n');
      });

      it('exec -it: a terminal of the client size that follows a resize, and the exit code', async () => {
        // The process watches for the new size itself: an Enter pressed right after the resize
        // could otherwise overtake it (kubectl sends the size only once it has seen SIGWINCH).
        const script = 'stty size; while [ "$(stty size)" = "29 97" ]; do sleep 0.1; done; stty size; read x; exit 4';
        const { term, screen, exited } = kubectlOnTerminal(k, '1.33', ['exec', '-it', '-n', ns, 'web', '--', 'sh', '-c', script], { cols: 97, rows: 29 });
        await eventually(async () => screen().includes('29 97'), `the first size is the client's (screen: ${JSON.stringify(screen())})`, 30_000);
        term.resize(71, 17);
        await eventually(async () => /17 71/.test(screen()), `the resize reaches the process (screen: ${JSON.stringify(screen())})`);
        term.write('\r');
        assert.equal(await exited, 4);
      });

      it('attach shows the output as it comes', async () => {
        const att = spawn(kubectlPath('1.33'), ['--kubeconfig', k.kubeconfig, 'attach', '-n', ns, 'ticker'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        att.stdout.on('data', (d) => {
          out += d;
        });
        try {
          await eventually(async () => (out.match(/tick \d+/g) ?? []).length >= 3, `attach streams (${out})`, 30_000);
        } finally {
          att.kill();
        }
      });

      it('port-forward reaches a port in the pod', async () => {
        const port = await freePort();
        const pf = spawn(kubectlPath('1.33'), ['--kubeconfig', k.kubeconfig, 'port-forward', '-n', ns, 'pod/web', `${port}:8080`], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        pf.stdout.on('data', (d) => {
          out += d;
        });
        try {
          await eventually(async () => out.includes(`Forwarding from 127.0.0.1:${port}`), `port-forward listens (${out})`);
          const res = await httpGet(`http://127.0.0.1:${port}/`);
          assert.equal(res.status, 200);
          assert.equal(res.body, `hello from ${rt}\n`);
        } finally {
          pf.kill();
        }
      });

      it('cp copies a file into the pod and back, byte for byte', async () => {
        const blob = Buffer.alloc(1 << 20);
        for (let i = 0; i < blob.length; i++) blob[i] = (i * 31) % 253;
        const src = path.join(tmp, `in-${rt}.bin`);
        await writeFile(src, blob);
        await ok(['cp', src, `${ns}/web:/tmp/in.bin`]);
        const back = path.join(tmp, `out-${rt}.bin`);
        await ok(['cp', `${ns}/web:/tmp/in.bin`, back]);
        assert.deepEqual(await readFile(back), blob);
      });

      it('probes: readiness gates Ready; a failing liveness probe restarts the container', async () => {
        assert.equal((await get('web')).status.conditions.find((c: { type: string }) => c.type === 'Ready')?.status, 'True');
        await eventually(async () => (await get('prober')).status.containerStatuses?.[0]?.restartCount >= 1, 'the liveness probe restarts the container', 120_000);
        const events = await ok(['get', 'events', '-n', ns, '--field-selector', 'involvedObject.name=prober', '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']);
        assert.match(events, /Killing: Container main failed liveness probe, will be restarted/);
      });

      it('a crashing container backs off: CrashLoopBackOff, with its last exit code', async () => {
        await eventually(
          async () => {
            const s = (await get('crasher')).status.containerStatuses?.[0];
            return s?.state?.waiting?.reason === 'CrashLoopBackOff' && s.lastState?.terminated?.exitCode === 3;
          },
          'the crasher waits in CrashLoopBackOff',
          120_000,
        ).catch(async (err) => {
          throw new Error(`${err.message}; its status: ${JSON.stringify((await get('crasher')).status)}`);
        });
      });

      it('a container over its memory limit is OOMKilled with exit 137', async () => {
        await eventually(async () => (await get('eater')).status.phase === 'Failed', 'the pod fails', 120_000);
        const t = (await get('eater')).status.containerStatuses[0].state.terminated;
        assert.equal(t.reason, 'OOMKilled', `the whole state: ${JSON.stringify(t)}`);
        assert.equal(t.exitCode, 137);
      });

      it('top shows the pod, its memory measured', async () => {
        await eventually(async () => /web\s+\d+m\s+\d+Mi/.test((await kc(['top', 'pod', '-n', ns, 'web'])).stdout), 'kubectl top shows the pod', 60_000);
        const m = JSON.parse(await ok(['get', '--raw', `/apis/metrics.k8s.io/v1beta1/namespaces/${ns}/pods/web`]));
        assert.ok(Number.parseInt(m.containers[0].usage.memory, 10) > 0, `memory in use is measured (${m.containers[0].usage.memory})`);
      });

      it('deletion sends SIGTERM and waits for the process: its last words reach the log', async () => {
        const follow = spawn(kubectlPath('1.33'), ['--kubeconfig', k.kubeconfig, 'logs', '-f', '-n', ns, 'ticker', '--tail=1'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        follow.stdout.on('data', (d) => {
          out += d;
        });
        const ended = new Promise((r) => follow.once('exit', r));
        await eventually(async () => out.includes('tick'), 'the log is followed');
        await ok(['delete', 'pod', '-n', ns, 'ticker', '--wait=false']);
        await ended;
        assert.match(out, /got TERM\n$/, `the TERM handler ran and its output was the last (${out.slice(-200)})`);
        await eventually(async () => (await kc(['get', 'pod', '-n', ns, 'ticker'])).code !== 0, 'the pod is gone once its process exited', 60_000);
      });
    });
  }
});
