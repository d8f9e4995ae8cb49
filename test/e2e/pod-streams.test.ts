import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { Channel, frame } from '../../src/sandbox/api/streams.js';
import { freePort } from '../support/etcd.js';
import { httpGet } from '../support/http.js';
import { cleanup, eventually, type Kubicle, kubectlFor, kubectlOnTerminal, kubectlPath, startKubicle } from '../support/kubicle.js';

/**
 * kubectl's streaming commands against a local node, on the oldest and newest kubectl: 1.27
 * speaks SPDY for everything, 1.33 WebSocket v5 for exec and cp and the SPDY-in-WebSocket tunnel
 * for port-forward (the API server's metrics tell which protocol served each).
 */
const podCidr = '10.246.1.0/24';
const bridge = 'kubtest1';
const serviceCidr = '10.111.0.0/16';
const versions = ['1.27', '1.33'];

describe('pod streams through the API server: exec, exec -it, cp, port-forward, attach', () => {
  let k: Kubicle;
  let image: string;
  const ns = 'streams-e2e';
  const kubectl: Record<string, Awaited<ReturnType<typeof kubectlFor>>> = {};
  let tmp: string;

  const run = async (version: string, args: string[], input?: string) => {
    const r = await kubectl[version](args, input === undefined ? {} : { input });
    assert.equal(r.code, 0, `kubectl ${version} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const streamCount = async (subresource: string, protocol: string) => {
    const text = await run('1.33', ['get', '--raw', '/metrics']);
    return text
      .split('\n')
      .filter((l) => l.startsWith('apiserver_stream_requests_total{') && l.includes(`subresource="${subresource}"`) && l.includes(`protocol="${protocol}"`) && l.includes('code="101"'))
      .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
  };

  before(async () => {
    const registryPort = await freePort();
    image = `127.0.0.1:${registryPort}/kubicle/busybox:1`;
    k = await startKubicle({ args: ['--node', 'local', '--load-balancer-pool', '127.241.11.0/28', '--node-name', 'streams-node', '--pod-cidr', podCidr, '--service-cidr', serviceCidr, '--bridge', bridge, '--registry-port', String(registryPort), '--kubelet-port', String(await freePort())] });
    for (const v of versions) kubectl[v] = await kubectlFor(k, v);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'kubicle-streams-'));
    await run('1.33', ['create', 'namespace', ns]);
    await eventually(async () => (await kubectl['1.33'](['get', 'node', 'streams-node'])).code === 0, 'the node registers');
    await run('1.33', ['run', 'web', '-n', ns, `--image=${image}`, '--', 'httpd', '-f', '-p', '80', '-h', '/var/www']);
    await run('1.33', ['run', 'ticker', '-n', ns, `--image=${image}`, '--', 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done']);
    await run('1.33', ['wait', '-n', ns, '--for=condition=Ready', 'pod/web', 'pod/ticker', '--timeout=90s']);
  });

  after(async () => {
    await kubectl['1.33']?.(['delete', 'pods', '--all', '-n', ns, '--grace-period=0', '--force']);
    const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
    await eventually(async () => (await agent.listSandboxes()).length === 0, 'every sandbox is removed', 60_000).catch(() => {});
    await rm(tmp, { recursive: true, force: true });
    await cleanup(k);
  });

  for (const v of versions) {
    it(`kubectl ${v} exec: stdout and stderr apart, the exit code, stdin to the end`, async () => {
      const r = await kubectl[v](['exec', '-n', ns, 'web', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.stdout, 'out\n');
      assert.match(r.stderr, /^err\n/);
      assert.match(r.stderr, /command terminated with exit code 3/);
      const data = Array.from({ length: 20000 }, (_, i) => `line ${i}`).join('\n');
      const counted = await run(v, ['exec', '-i', '-n', ns, 'web', '--', 'sh', '-c', 'wc -l; echo done'], data);
      assert.equal(counted.trim().split(/\s+/).join(' '), '19999 done', 'every byte of stdin arrives and its end is seen');
    });

    it(`kubectl ${v} exec -it: a terminal of the client's size that follows a resize`, async () => {
      // The process waits for the new size itself, so no Enter can overtake the resize.
      const script = 'tty; stty size; while [ "$(stty size)" = "33 111" ]; do sleep 0.1; done; stty size; read x; exit 7';
      const { term, screen, exited } = kubectlOnTerminal(k, v, ['exec', '-it', '-n', ns, 'web', '--', 'sh', '-c', script], { cols: 111, rows: 33 });
      await eventually(async () => screen().includes('33 111'), `the first size shows (screen: ${JSON.stringify(screen())})`, 20_000);
      term.resize(90, 20);
      await eventually(async () => /20 90/.test(screen()), `the resize reached the container (screen: ${JSON.stringify(screen())})`);
      term.write('\r');
      assert.equal(await exited, 7);
      assert.match(screen(), /\/dev\/pts\/\d+/);
    });

    it(`kubectl ${v} run -i --rm: piped input reaches the container, its exit code comes back, the pod is removed`, async () => {
      const name = `piped-${v.replace('.', '-')}`;
      const r = await kubectl[v](['run', '-i', '--rm', '--restart=Never', '-n', ns, name, `--image=${image}`, '--', 'sh', '-c', 'read line; echo "got: $line"; exit 3'], { input: 'the input line\n', timeoutMs: 60_000 });
      assert.equal(r.code, 3, `the container's exit code (stderr: ${r.stderr})`);
      assert.match(r.stdout, /got: the input line/);
      await eventually(async () => (await kubectl[v](['get', 'pod', '-n', ns, name])).code !== 0, 'the pod is removed');
    });

    it(`kubectl ${v} run -it: an interactive shell on a terminal of the client's size`, async () => {
      const name = `shell-${v.replace('.', '-')}`;
      const { term, screen, exited } = kubectlOnTerminal(k, v, ['run', '-it', '--rm', '--restart=Never', '-n', ns, name, `--image=${image}`, '--', 'sh'], { cols: 101, rows: 31 });
      await eventually(async () => screen().includes("If you don't see a command prompt"), `kubectl attaches (screen: ${JSON.stringify(screen())})`, 60_000);
      // Typed as a user would, after the attach is up: the shell answers on the terminal.
      await eventually(
        async () => {
          term.write('tty; stty size\r');
          await new Promise((r) => setTimeout(r, 300));
          return /31 101/.test(screen());
        },
        "the terminal has the client's size",
        20_000,
      ).catch(async (err: Error) => {
        // The container's log holds what the shell echoed: it tells lost input from lost output.
        const logs = await kubectl[v](['logs', '-n', ns, name, '--tail=20']);
        throw new Error(`${err.message} (screen: ${JSON.stringify(screen())}; container log: ${JSON.stringify(logs.stdout.slice(-600))})`);
      });
      assert.match(screen(), /\/dev\/pts\/\d+/);
      // The prompt ends no line, and shows all the same: attached output is passed as it comes.
      await eventually(async () => /31 101\r\n\/ # /.test(screen()), `the shell's prompt shows (screen: ${JSON.stringify(screen())})`);
      term.write('exit 5\r');
      assert.equal(await exited, 5);
      await eventually(async () => (await kubectl[v](['get', 'pod', '-n', ns, name])).code !== 0, 'the pod is removed');
    });

    it(`kubectl ${v} cp: a directory into the pod and back, byte for byte`, async () => {
      const src = path.join(tmp, `src-${v}`);
      await run(v, ['exec', '-n', ns, 'web', '--', 'mkdir', '-p', '/tmp/x']);
      await mkdir(src, { recursive: true });
      const blob = Buffer.alloc(3 << 20);
      for (let i = 0; i < blob.length; i++) blob[i] = (i * 7919) % 251;
      await writeFile(path.join(src, 'blob.bin'), blob);
      await writeFile(path.join(src, 'note.txt'), 'hello\n');
      await run(v, ['cp', src, `${ns}/web:/tmp/up-${v}`]);
      const remote = await run(v, ['exec', '-n', ns, 'web', '--', 'md5sum', `/tmp/up-${v}/blob.bin`]);
      assert.equal(remote.split(' ')[0], createHash('md5').update(blob).digest('hex'));
      const back = path.join(tmp, `back-${v}`);
      await run(v, ['cp', `${ns}/web:/tmp/up-${v}`, back]);
      assert.deepEqual(await readFile(path.join(back, 'blob.bin')), blob);
      assert.equal(await readFile(path.join(back, 'note.txt'), 'utf8'), 'hello\n');
    });

    it(`kubectl ${v} port-forward: HTTP through the forwarded port; a closed port says why`, async () => {
      // Local ports chosen by kubectl (":80"): two freePort() calls can return the same port.
      const pf = spawn(kubectlPath(v), ['--kubeconfig', k.kubeconfig, 'port-forward', '-n', ns, 'pod/web', ':80', ':81'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      pf.stdout.on('data', (d) => {
        out += d;
      });
      pf.stderr.on('data', (d) => {
        out += d;
      });
      try {
        const local = (remote: number) => Number(new RegExp(`Forwarding from 127\\.0\\.0\\.1:(\\d+) -> ${remote}\\b`).exec(out)?.[1]);
        await eventually(async () => local(80) > 0 && local(81) > 0, () => `port-forward listens (${out})`);
        const [port, closedPort] = [local(80), local(81)];
        for (let i = 0; i < 3; i++) {
          const res = await httpGet(`http://127.0.0.1:${port}/`);
          assert.equal(res.status, 200);
          assert.equal(res.body, 'hello from kubicle busybox\n');
        }
        await httpGet(`http://127.0.0.1:${closedPort}/`).catch(() => undefined);
        await eventually(async () => /error forwarding port 81 to pod web_streams-e2e.*Connection refused/.test(out), `the refusal is reported (${out})`);
      } finally {
        pf.kill();
      }
    });
  }

  it('kubectl 1.33 used WebSocket for exec and port-forward, 1.27 SPDY', async () => {
    assert.ok((await streamCount('exec', 'websocket')) >= 4, 'exec and cp on 1.33 went over WebSocket');
    assert.ok((await streamCount('portforward', 'websocket')) >= 1, 'port-forward on 1.33 went through the tunnel');
    assert.ok((await streamCount('exec', 'spdy/3.1')) >= 4, 'exec and cp on 1.27 went over SPDY');
    assert.ok((await streamCount('portforward', 'spdy/3.1')) >= 1, 'port-forward on 1.27 went over SPDY');
  });

  it('kubectl attach shows the container’s output as it comes', async () => {
    for (const v of versions) {
      const r = await kubectl[v](['attach', '-n', ns, 'ticker'], { timeoutMs: 3000 });
      const ticks = r.stdout.split('\n').filter((l) => /^tick \d+$/.test(l)).map((l) => Number(l.split(' ')[1]));
      assert.ok(ticks.length >= 2, `ticks arrive while attached (got ${JSON.stringify(r.stdout)})`);
      assert.ok(ticks.every((t, i) => i === 0 || t === ticks[i - 1] + 1), 'in order, none lost');
    }
  });

  it('an attach whose input relay dies ends with an error instead of ignoring the keyboard', async () => {
    await run('1.33', ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'typist', namespace: ns }, spec: { containers: [{ name: 'sh', image, command: ['sh'], stdin: true, tty: true }] } }));
    await run('1.33', ['wait', '-n', ns, '--for=condition=Ready', 'pod/typist', '--timeout=60s']);
    const { term, screen, exited } = kubectlOnTerminal(k, '1.27', ['attach', '-it', '-n', ns, 'typist'], { cols: 90, rows: 20 });
    await eventually(async () => {
      term.write('echo sum-$((40+2))\r');
      await new Promise((r) => setTimeout(r, 300));
      return screen().includes('sum-42');
    }, () => `typed input reaches the shell (screen: ${JSON.stringify(screen())})`, 30_000);
    // The relay is socat, run in the container's run directory under this server's data dir.
    const relays: number[] = [];
    for (const pid of (await readdir('/proc')).filter((d) => /^\d+$/.test(d))) {
      const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '');
      if (cmd.startsWith('socat\0') && cmd.includes('UNIX-CONNECT:attach') && cwd.startsWith(k.dataDir) && cwd.includes(`/containers/sh/`)) relays.push(Number(pid));
    }
    assert.equal(relays.length, 1, 'one input relay for the session');
    process.kill(relays[0], 'SIGKILL');
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still attached'), 15_000))]);
    assert.notEqual(code, 'still attached', `kubectl is told (screen: ${JSON.stringify(screen())})`);
    assert.notEqual(code, 0);
    assert.match(screen(), /attaching input failed: the input relay exited \(signal SIGKILL\)/);
    const still = await kubectl['1.33'](['exec', '-n', ns, 'typist', '--', 'true']);
    assert.equal(still.code, 0, 'the container lives on');
  });

  it('sizes sent back to back reach an attached terminal in order, the last one last', async () => {
    // kubectl sends a size one larger and then the real one at once; conmon 2.1 drops the later
    // of two window-size messages it reads together, unless each fills a read of its own.
    const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
    const uid = await run('1.33', ['get', 'pod', '-n', ns, 'typist', '-o', 'jsonpath={.metadata.uid}']);
    const ws = await agent.attachStream(uid, 'sh', { stdin: true });
    let out = '';
    ws.on('message', (d: Buffer) => {
      if (d[0] === Channel.stdout) out += d.subarray(1).toString();
    });
    ws.resume();
    // conmon, stopped while the sizes are written, finds them all waiting at once, as a busy one would.
    const runs = path.join(k.dataDir, 'agent', 'sandboxes', uid, 'containers', 'sh');
    const attempt = Math.max(...(await readdir(runs)).filter((d) => /^\d+$/.test(d)).map(Number));
    const conmon = Number(await readFile(path.join(runs, String(attempt), 'conmon.pid'), 'utf8'));
    process.kill(conmon, 'SIGSTOP');
    try {
      for (let i = 12; i >= 0; i--) ws.send(frame(Channel.resize, JSON.stringify({ cols: 101 + i, rows: 31 + i })));
      await new Promise((r) => setTimeout(r, 1000));
      process.kill(conmon, 'SIGCONT');
      await eventually(async () => {
        ws.send(frame(Channel.stdin, 'stty size\r'));
        await new Promise((r) => setTimeout(r, 300));
        return /^31 101\r?$/m.test(out);
      }, () => `the terminal ends at the last size (output: ${JSON.stringify(out.slice(-400))})`, 15_000);
    } finally {
      process.kill(conmon, 'SIGCONT');
      ws.close();
    }
  });

  it("the agent starts a terminal at the size the request gives, else at the client's first resize, else at 80×24", async () => {
    const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
    const uid = await run('1.33', ['get', 'pod', '-n', ns, 'web', '-o', 'jsonpath={.metadata.uid}']);
    const session = async (opts: { size?: { cols: number; rows: number }; resize?: { cols: number; rows: number } }) => {
      const ws = await agent.execStream(uid, 'web', { command: ['stty', 'size'], tty: true, size: opts.size });
      let out = '';
      ws.on('message', (d: Buffer) => {
        if (d[0] === Channel.stdout) out += d.subarray(1).toString();
      });
      const closed = new Promise((r) => ws.once('close', r));
      ws.resume();
      if (opts.resize) ws.send(frame(Channel.resize, JSON.stringify(opts.resize)));
      await closed;
      return out.trim();
    };
    assert.equal(await session({ size: { cols: 70, rows: 10 } }), '10 70');
    assert.equal(await session({ resize: { cols: 99, rows: 21 } }), '21 99');
    assert.equal(await session({}), '24 80', 'a client that never sends its size gets the default terminal');
  });

  it('bad stream requests get a Status and the right code', async () => {
    const wrong = await kubectl['1.33'](['exec', '-n', ns, 'web', '-c', 'nope', '--', 'true']);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /container nope is not valid for pod web/);
    const missing = await kubectl['1.27'](['exec', '-n', ns, 'ghost', '--', 'true']);
    assert.match(missing.stderr, /pods "ghost" not found/);
    const plain = await kubectl['1.33'](['create', '--raw', `/api/v1/namespaces/${ns}/pods/web/exec?command=true`, '-f', '-'], { input: '{}' });
    assert.match(plain.stderr, /Upgrade request required/);
    const still = await kubectl['1.33'](['exec', '-n', ns, 'web', '--', 'sh', '-c', 'exit 0']);
    assert.equal(still.code, 0, 'the pod still serves exec after the refusals');
  });
});
