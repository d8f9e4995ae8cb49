import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { type JoinedAgent, joinAgent } from '../support/agents.js';
import { cleanup, eventually, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * A provider with two hosts (issue 8, placement by resources): its own agent, and a second
 * `kubicle agent --provider` that registers itself. Both agents are real and run on this one
 * machine, each with its own state, socket, bridge and sandboxes — as two hosts sharing the
 * provider's filesystem would (ADR 0023). Clusters spread over them, follow cordons, wait when
 * none has room, and run their pods where their control plane runs.
 */
const run = promisify(execFile);
const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/kubicle.js');
type Kubectl = Awaited<ReturnType<typeof kubectlFor>>;

describe('provider: clusters placed over two hosts', { timeout: 600_000 }, () => {
  let p: Kubicle;
  let op: Kubectl;
  let secondAgent: JoinedAgent | undefined;
  let home = '';
  const agents: Record<string, SandboxClient> = {};

  const ok = async (kc: Kubectl, args: string[], input?: string) => {
    const r = await kc(args, { input });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const cluster = async (name: string) => JSON.parse(await ok(op, ['get', 'clusters.kubicle.io', name, '-n', 'acme', '-o', 'json']));
  const hosts = async () => JSON.parse(await ok(op, ['get', 'hosts.kubicle.io', '-o', 'json'])).items as { metadata: { name: string; labels: Record<string, string> }; status?: { conditions?: { type: string; status: string }[] } }[];
  const ready = (h: Awaited<ReturnType<typeof hosts>>[number]) => h.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  const waitPhase = (name: string, phase: string, ms = 60_000) => {
    let seen: unknown;
    return eventually(
      async () => {
        seen = (await cluster(name)).status;
        return (seen as { phase?: string } | undefined)?.phase === phase;
      },
      () => `acme/${name} ${phase} (status: ${JSON.stringify(seen)}; provider: ${p.logs().split('\n').slice(-6).join('\n')})`,
      ms,
    );
  };
  const create = (name: string, spec = '{}') => ok(op, ['apply', '-f', '-'], `apiVersion: kubicle.io/v1alpha1\nkind: Cluster\nmetadata: {name: ${name}, namespace: acme}\nspec: ${spec}\n`);
  /** The host agent that holds sandbox `id`, asked of both agents. */
  const holder = async (id: string) => {
    const on: string[] = [];
    for (const [name, agent] of Object.entries(agents)) if ((await agent.listSandboxes()).some((s) => s.id === id)) on.push(name);
    return on;
  };

  before(async () => {
    p = await startKubicle({ command: 'server', args: ['--cluster-endpoint-pool', '127.251.10.0/24', '--bridge', 'kubtesth', '--pod-cidr', '10.246.30.0/24', '--cluster-pod-pool', '10.235.0.0/16', '--cluster-sleep-after', '0', '--metering-interval', '1', '--host-heartbeat', '1', '--zone', 'zone-a'] });
    op = await kubectlFor(p, '1.33');
    secondAgent = joinAgent(p, { name: 'second', zone: 'zone-b', bridge: 'kubtesth2', podCidr: '10.246.31.0/24' });
    await eventually(async () => (await hosts()).filter((h) => ready(h) === 'True').length === 2, () => `two Ready hosts (second agent: ${secondAgent?.logs().slice(-2000)})`, 30_000);
    home = (await hosts()).find((h) => h.metadata.name !== 'second')?.metadata.name as string;
    agents[home] = new SandboxClient({ socketPath: path.join(p.dataDir, 'agent.sock') });
    agents.second = secondAgent.client;
    await ok(op, ['apply', '-f', '-'], 'apiVersion: kubicle.io/v1alpha1\nkind: Tenant\nmetadata: {name: acme}\nspec: {}\n');
    await eventually(async () => (await op(['get', 'ns', 'acme'])).code === 0, 'tenant namespace');
  });
  after(async () => {
    if (!p) return;
    secondAgent?.process.kill('SIGCONT');
    await op(['delete', 'clusters.kubicle.io', '--all', '-A', '--wait=true', '--timeout=60s']);
    await secondAgent?.stop();
    await cleanup(p);
  });

  test('the second agent registers itself as a Host with its zone; both are Ready', async () => {
    const all = await hosts();
    assert.deepEqual(all.map((h) => [h.metadata.name, h.metadata.labels['topology.kubernetes.io/zone']]).sort(), [[home, 'zone-a'], ['second', 'zone-b']].sort());
    assert.match(await ok(op, ['get', 'hosts.kubicle.io', 'second', '-o', 'wide']), /\bTrue\s+\d+\s+\d+Mi\s+zone-b\s+True\b/);
  });

  test('two clusters spread over the two hosts, each control plane on the host its status names', async () => {
    await create('one');
    await waitPhase('one', 'Running');
    await create('two');
    await waitPhase('two', 'Running');
    const placed = [await cluster('one'), await cluster('two')];
    assert.deepEqual(placed.map((c) => c.status.host).sort(), [home, 'second'].sort(), 'one cluster on each host');
    for (const c of placed) assert.deepEqual(await holder(`cp-${c.metadata.uid}`), [c.status.host], `${c.metadata.name}'s control plane is on ${c.status.host} only`);
    assert.match(await ok(op, ['get', 'clusters.kubicle.io', '-n', 'acme', '-o', 'wide']), /\bsecond\b/, 'the Host column');
  });

  test("a cluster's pods run on its host: logs, exec and metering through the second agent", async () => {
    const c = [await cluster('one'), await cluster('two')].find((x) => x.status.host === 'second');
    const name = c.metadata.name;
    const { stdout } = await run(process.execPath, [bin, 'cluster', 'kubeconfig', name, '--tenant', 'acme', '--provider', p.kubeconfig]);
    const file = path.join(p.dataDir, `${name}.kubeconfig`);
    await writeFile(file, stdout, { mode: 0o600 });
    const k = await kubectlFor({ kubeconfig: file } as Kubicle, '1.33');
    const image = `${/registry (127\.0\.0\.1:\d+)/.exec(p.logs())?.[1]}/kubicle/busybox:1`;
    await ok(k, ['run', 'sleeper', `--image=${image}`, '--', 'sh', '-c', 'echo started; exec sleep 3600']);
    await ok(k, ['wait', '--for=condition=Ready', 'pod/sleeper', '--timeout=120s']);
    const pods = (await agents.second.listSandboxes()).filter((s) => s.labels['kubicle.io/cluster-uid'] === c.metadata.uid);
    assert.equal(pods.length, 1, 'the pod sandbox is on the second host');
    assert.equal((await agents[home].listSandboxes()).filter((s) => s.labels['kubicle.io/cluster-uid'] === c.metadata.uid).length, 0, 'and not on the first');
    assert.match(await ok(k, ['logs', 'sleeper']), /^started$/m);
    assert.equal((await ok(k, ['exec', 'sleeper', '--', 'cat', '/proc/1/cmdline'])).replace(/\0/g, ' ').trim(), 'sleep 3600');
    // The provider's record of it names the host.
    const records = JSON.parse(await ok(op, ['get', 'sandboxes.kubicle.io', '-n', 'acme', '-o', 'json'])).items;
    assert.ok(records.some((r: { spec: { host: string; workload?: { pod?: string } } }) => r.spec.workload?.pod === 'sleeper' && r.spec.host === 'second'), 'the Sandbox record names the second host');
    // The meter samples the second host too: the control plane's time there is counted.
    await eventually(async () => {
      const u = await op(['get', 'usages.kubicle.io', name, '-n', 'acme', '-o', 'json']);
      return u.code === 0 && JSON.parse(u.stdout).status.total.controlPlaneSeconds > 0;
    }, `usage of ${name} metered on the second host`);
  });

  const cordon = (host: string, on: boolean) => ok(op, ['patch', 'hosts.kubicle.io', host, '--type', 'merge', '-p', JSON.stringify({ spec: { unschedulable: on } })]);

  test('a cordoned host takes no new cluster; with no room anywhere a cluster waits, saying why, until a host has room', async () => {
    // The second host is the fuller one now (a control plane and a pod): only the cordon sends the new cluster there.
    await cordon(home, true);
    try {
      await create('three');
      await waitPhase('three', 'Running');
    } finally {
      await cordon(home, false);
    }
    assert.equal((await cluster('three')).status.host, 'second');

    // Hosts allowed a sliver of their memory (24 GiB x 0.001) have no room for a control plane's 128 MiB.
    const ratio = (host: string, memory: number | null) => ok(op, ['patch', 'hosts.kubicle.io', host, '--type', 'merge', '-p', JSON.stringify({ spec: { allocationRatio: { memory } } })]);
    await ratio(home, 0.001);
    await ratio('second', 0.001);
    try {
      await create('squeezed');
      await eventually(async () => /no host can run its control plane: 0\/2 hosts can take it: 2 insufficient memory/.test((await cluster('squeezed')).status?.message ?? ''), 'squeezed waits with the reason');
      const waiting = await cluster('squeezed');
      assert.equal(waiting.status.phase, 'Pending');
      assert.equal(waiting.status.endpoint, undefined, 'no endpoint is taken while it waits');
      // One that never had a host deletes cleanly too.
      await create('never');
      await eventually(async () => /0\/2 hosts can take it/.test((await cluster('never')).status?.message ?? ''), 'never waits');
      await ok(op, ['delete', 'clusters.kubicle.io', 'never', '-n', 'acme', '--timeout=30s']);
    } finally {
      await ratio('second', null);
    }
    // Room again on one host: the waiting cluster is placed there without being asked again.
    await waitPhase('squeezed', 'Running');
    assert.equal((await cluster('squeezed')).status.host, 'second');
    await ratio(home, null);
    await ok(op, ['delete', 'clusters.kubicle.io', 'squeezed', '-n', 'acme', '--timeout=60s']);
  });

  test('a host whose agent stops answering turns NotReady and takes nothing; when it answers again it is Ready and the waiting cluster goes there', async () => {
    const second = () => hosts().then((all) => all.find((h) => h.metadata.name === 'second') as never);
    await cordon(home, true);
    secondAgent?.process.kill('SIGSTOP');
    try {
      await eventually(async () => ready(await second()) === 'False', 'second NotReady', 30_000);
      await create('four');
      await eventually(async () => /0\/2 hosts can take it: 1 not ready, 1 unschedulable/.test((await cluster('four')).status?.message ?? ''), 'four waits: one host not ready, the other cordoned');
      // The silent host holds up no one else's metering.
      const onHome = [await cluster('one'), await cluster('two')].find((c) => c.status.host === home).metadata.name;
      const metered = async () => JSON.parse(await ok(op, ['get', 'usages.kubicle.io', onHome, '-n', 'acme', '-o', 'json'])).status.total.controlPlaneSeconds as number;
      const before = await metered();
      await eventually(async () => (await metered()) > before + 2, `${onHome} metered on while the second host is silent`, 20_000);
    } finally {
      secondAgent?.process.kill('SIGCONT');
    }
    await eventually(async () => ready(await second()) === 'True', 'second Ready again', 30_000);
    await waitPhase('four', 'Running');
    assert.equal((await cluster('four')).status.host, 'second');
    await cordon(home, false);
  });

  test('bad Host specs are refused', async () => {
    for (const [spec, field] of [
      ['{agent: {socket: relative.sock}}', 'spec.agent.socket'],
      ['{unschedulable: "yes"}', 'spec.unschedulable'],
      ['{allocationRatio: {cpu: -1}}', 'spec.allocationRatio.cpu'],
    ]) {
      const r = await op(['apply', '-f', '-'], { input: `apiVersion: kubicle.io/v1alpha1\nkind: Host\nmetadata: {name: bad}\nspec: ${spec}\n` });
      assert.notEqual(r.code, 0, spec);
      assert.match(r.stderr, new RegExp(`is invalid: ${field.replace(/\./g, '\\.')}`), spec);
    }
    assert.equal((await op(['get', 'hosts.kubicle.io', 'bad'])).code, 1, 'nothing was written');
  });
});
