import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { type JoinedAgent, joinAgent } from '../support/agents.js';
import { type EtcdProcess, enableAuth, startEtcd } from '../support/etcd.js';
import { cleanup, eventually, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * Control planes of several replicas (issue 8): a provider with three hosts — its own agent in
 * zone-a and two `kubicle agent --provider` in zone-b, all real and on this machine, as hosts
 * sharing the provider's filesystem (ADR 0023) — and a shared etcd. A cluster's replicas take a
 * host each, spread over zones; the endpoint serves from any replica, so losing one (its process,
 * or its whole host) keeps the API and the controllers going, and the provider starts it again.
 */
const run = promisify(execFile);
const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/kubicle.js');
type Kubectl = Awaited<ReturnType<typeof kubectlFor>>;

describe('provider: control planes of several replicas over hosts and zones', { timeout: 900_000 }, () => {
  let etcd: EtcdProcess;
  let p: Kubicle;
  let op: Kubectl;
  let home = '';
  const agents: Record<string, SandboxClient> = {};
  const joined: Record<string, JoinedAgent> = {};

  const ok = async (kc: Kubectl, args: string[], input?: string) => {
    const r = await kc(args, { input });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const cluster = async (name: string) => JSON.parse(await ok(op, ['get', 'clusters.kubicle.io', name, '-n', 'acme', '-o', 'json']));
  const hosts = async () => JSON.parse(await ok(op, ['get', 'hosts.kubicle.io', '-o', 'json'])).items as { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[];
  const hostReady = async (name: string) => (await hosts()).find((h) => h.metadata.name === name)?.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  const waitStatus = (name: string, want: (s: Record<string, unknown>) => boolean, what: string, ms = 90_000) => {
    let seen: unknown;
    return eventually(
      async () => {
        seen = (await cluster(name)).status ?? {};
        return want(seen as Record<string, unknown>);
      },
      () => `acme/${name}: ${what} (status: ${JSON.stringify(seen)}; provider: ${p.logs().split('\n').slice(-8).join('\n')})`,
      ms,
    );
  };
  const create = (name: string, spec: string) => ok(op, ['apply', '-f', '-'], `apiVersion: kubicle.io/v1alpha1\nkind: Cluster\nmetadata: {name: ${name}, namespace: acme}\nspec: ${spec}\n`);
  const cordon = (host: string, on: boolean) => ok(op, ['patch', 'hosts.kubicle.io', host, '--type', 'merge', '-p', JSON.stringify({ spec: { unschedulable: on } })]);
  /** Every host holding sandbox `id`, asked of each agent. */
  const holders = async (id: string) => {
    const on: string[] = [];
    for (const [name, agent] of Object.entries(agents)) if ((await agent.listSandboxes()).some((s) => s.id === id)) on.push(name);
    return on;
  };
  const runs = (sb: { containers: { name: string; state: string }[] }) => sb.containers.some((x) => x.name === 'control-plane' && x.state === 'running');
  /** The process of a replica's control plane, as its host agent reports it. */
  const replicaPid = async (host: string, id: string) => (await agents[host].getSandbox(id)).containers.find((x) => x.name === 'control-plane' && x.state === 'running')?.pid;
  const tenantKubectl = async (name: string) => {
    const { stdout } = await run(process.execPath, [bin, 'cluster', 'kubeconfig', name, '--tenant', 'acme', '--provider', p.kubeconfig]);
    const file = path.join(p.dataDir, `${name}.kubeconfig`);
    await writeFile(file, stdout, { mode: 0o600 });
    return kubectlFor({ kubeconfig: file } as Kubicle, '1.33');
  };

  before(async () => {
    etcd = await startEtcd();
    const rootPassword = await enableAuth(etcd);
    p = await startKubicle({
      command: 'server',
      args: [
        '--cluster-etcd',
        `${etcd.url}/kubicle/clusters?user=root&password=${rootPassword}`,
        '--cluster-endpoint-pool',
        '127.251.11.0/24',
        '--bridge',
        'kubtestr',
        '--pod-cidr',
        '10.246.32.0/24',
        '--cluster-pod-pool',
        '10.236.0.0/16',
        '--cluster-sleep-after',
        '0',
        '--host-heartbeat',
        '1',
        '--host-lost-after',
        '5',
        '--zone',
        'zone-a',
      ],
    });
    op = await kubectlFor(p, '1.33');
    for (const [name, n] of [
      ['second', 33],
      ['third', 34],
    ] as const) {
      joined[name] = joinAgent(p, { name, zone: 'zone-b', bridge: `kubtestr${n}`, podCidr: `10.246.${n}.0/24` });
      agents[name] = joined[name].client;
    }
    const agentLogs = () => Object.values(joined).map((a) => `${a.name}: ${a.logs().slice(-1000)}`);
    await eventually(async () => (await hosts()).filter((h) => h.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length === 3, () => `three Ready hosts (agents: ${agentLogs()})`, 30_000);
    home = (await hosts()).map((h) => h.metadata.name).find((n) => n !== 'second' && n !== 'third') as string;
    agents[home] = new SandboxClient({ socketPath: path.join(p.dataDir, 'agent.sock') });
    await ok(op, ['apply', '-f', '-'], 'apiVersion: kubicle.io/v1alpha1\nkind: Tenant\nmetadata: {name: acme}\nspec: {}\n');
    await eventually(async () => (await op(['get', 'ns', 'acme'])).code === 0, 'tenant namespace');
  });
  after(async () => {
    for (const a of Object.values(joined)) a.process.kill('SIGCONT');
    if (p) {
      await op(['delete', 'clusters.kubicle.io', '--all', '-A', '--wait=true', '--timeout=90s']);
      for (const a of Object.values(joined)) await a.stop();
      await cleanup(p);
    }
    await etcd?.stop();
  });

  test('replicas take a host each, spread over zones while the zones allow; too many for the hosts wait, saying why', async () => {
    // Only the two zone-b hosts may take it: its replicas share a zone rather than wait.
    await cordon(home, true);
    try {
      await create('ha', '{store: etcd, controlPlane: {replicas: 2}}');
      await waitStatus('ha', (s) => s.phase === 'Running' && s.readyReplicas === 2, 'Running with 2 ready replicas');
    } finally {
      await cordon(home, false);
    }
    const ha = await cluster('ha');
    assert.deepEqual([...ha.status.replicaHosts].sort(), ['second', 'third']);
    assert.equal(ha.status.host, ha.status.replicaHosts[0], 'the first replica is on the cluster’s host');
    assert.deepEqual(await holders(`cp-${ha.metadata.uid}`), [ha.status.replicaHosts[0]]);
    assert.deepEqual(await holders(`cp-${ha.metadata.uid}-1`), [ha.status.replicaHosts[1]]);
    assert.match(await ok(op, ['get', 'clusters.kubicle.io', 'ha', '-n', 'acme', '-o', 'wide']), /\s2\/2\s/, 'the Replicas column');
    // Now zone-a has room: a second replica goes there, not beside the first in zone-b, though zone-b has the emptier host.
    await create('spread', '{store: etcd, controlPlane: {replicas: 2}}');
    await waitStatus('spread', (s) => s.phase === 'Running' && s.readyReplicas === 2, 'Running with 2 ready replicas');
    const spread = (await cluster('spread')).status.replicaHosts as string[];
    assert.equal(spread.filter((h) => h === home).length, 1, `one replica in zone-a, one in zone-b: ${spread}`);
    // Four replicas need four hosts.
    await create('toomany', '{store: etcd, controlPlane: {replicas: 4}}');
    await waitStatus('toomany', (s) => /no host can run its control plane: replica 4 of 4: 0\/3 hosts can take it: 3 already running a replica/.test(String(s.message)), 'waits with the reason');
    assert.equal((await cluster('toomany')).status.phase, 'Pending');
    await ok(op, ['delete', 'clusters.kubicle.io', 'toomany', '-n', 'acme', '--timeout=30s']);
  });

  test('bad replica counts are refused and the count cannot change', async () => {
    for (const [spec, why] of [
      ['{controlPlane: {replicas: 2}}', /spec\.controlPlane\.replicas: Invalid value: 2: more than 1 replica needs spec\.store: etcd/],
      ['{store: etcd, controlPlane: {replicas: 0}}', /spec\.controlPlane\.replicas: Invalid value: 0: must be a whole number from 1 to 5/],
      ['{store: etcd, controlPlane: {replicas: 6}}', /must be a whole number from 1 to 5/],
      ['{store: etcd, controlPlane: {replicas: "two"}}', /spec\.controlPlane\.replicas/],
    ] as const) {
      const r = await op(['apply', '-f', '-'], { input: `apiVersion: kubicle.io/v1alpha1\nkind: Cluster\nmetadata: {name: bad, namespace: acme}\nspec: ${spec}\n` });
      assert.notEqual(r.code, 0, spec);
      assert.match(r.stderr, why, spec);
    }
    assert.equal((await op(['get', 'clusters.kubicle.io', 'bad', '-n', 'acme'])).code, 1, 'nothing was written');
    const r = await op(['patch', 'clusters.kubicle.io', 'ha', '-n', 'acme', '--type', 'merge', '-p', '{"spec":{"controlPlane":{"replicas":3}}}']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /spec\.controlPlane\.replicas: Invalid value: 3: field is immutable/);
  });

  test("a replica's process killed: the provider starts it again on its host, and every write lands in the one store", async () => {
    const ha = await cluster('ha');
    const k = await tenantKubectl('ha');
    await ok(k, ['create', 'configmap', 'before', '--from-literal=k=v']);
    // The `kubernetes` Service's endpoint is the first replica, on the cluster's pod network.
    const ep = JSON.parse(await ok(k, ['get', 'endpoints', 'kubernetes', '-o', 'json']));
    const prefix = String(ha.status.podCIDR).split('.').slice(0, 3).join('.');
    assert.ok(String(ep.subsets[0].addresses[0].ip).startsWith(`${prefix}.`), `kubernetes endpoints ${JSON.stringify(ep.subsets)} in ${ha.status.podCIDR}`);
    const [first, other] = ha.status.replicaHosts as string[];
    for (const [host, id] of [
      [first, `cp-${ha.metadata.uid}`],
      [other, `cp-${ha.metadata.uid}-1`],
    ]) {
      const pid = await replicaPid(host, id);
      assert.ok(pid, `${id} runs on ${host}`);
      process.kill(pid, 'SIGKILL');
      // Asked at once (kubectl would also retry until the restart; the next test takes the restart away).
      assert.match(await ok(k, ['get', 'configmap', 'before', '-o', 'jsonpath={.data.k}']), /^v$/);
      await ok(k, ['create', 'configmap', `while-${id.endsWith('-1') ? 'second' : 'first'}-down`, '--from-literal=k=v']);
      await eventually(async () => {
        const now = await replicaPid(host, id);
        return now !== undefined && now !== pid;
      }, `${id} started again on ${host}`);
      await waitStatus('ha', (s) => s.readyReplicas === 2, 'both replicas ready again');
    }
    assert.equal((await ok(k, ['get', 'configmaps', '-o', 'name'])).match(/configmap\/(before|while-)/g)?.length, 3, 'every write kept: one store');
  });

  test('the first replica hung (stopped; its socket still accepts): connections go to the other, and the provider replaces it', async () => {
    const ha = await cluster('ha');
    const k = await tenantKubectl('ha');
    const first = ha.status.replicaHosts[0] as string;
    const id = `cp-${ha.metadata.uid}`;
    const pid = (await replicaPid(first, id)) as number;
    assert.ok(pid);
    // Stopped, the process keeps its socket: the kernel still accepts connections, nothing answers them.
    process.kill(pid, 'SIGSTOP');
    try {
      await waitStatus('ha', (s) => s.readyReplicas === 1, 'the stopped replica no longer counted ready', 30_000);
      // A deadline on each request: sent to the stopped replica, it would wait forever.
      assert.match(await ok(k, ['get', 'configmap', 'before', '-o', 'name', '--request-timeout=10s']), /configmap\/before/);
      await ok(k, ['create', 'configmap', 'while-hung', '--from-literal=k=v', '--request-timeout=10s']);
      // Probes left unanswered three times in a row: its process is replaced on its host.
      await eventually(async () => {
        const now = await replicaPid(first, id);
        return now !== undefined && now !== pid;
      }, `${id} replaced on ${first}`, 60_000);
    } finally {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone already: replaced
      }
    }
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the hung process is gone, not left beside its replacement');
    await waitStatus('ha', (s) => s.readyReplicas === 2, 'both replicas ready again', 60_000);
    assert.match(await ok(k, ['get', 'configmap', 'while-hung', '-o', 'name']), /configmap\/while-hung/);
  });

  test("the first replica's host lost: the other serves and runs the controllers; the first returns with its host", async () => {
    const ha = await cluster('ha');
    const k = await tenantKubectl('ha');
    const first = ha.status.replicaHosts[0] as string;
    const pid = await replicaPid(first, `cp-${ha.metadata.uid}`);
    assert.ok(pid);
    const image = `${/registry (127\.0\.0\.1:\d+)/.exec(p.logs())?.[1]}/kubicle/busybox:1`;
    joined[first].process.kill('SIGSTOP');
    try {
      await eventually(async () => (await hostReady(first)) === 'False', `${first} NotReady`, 30_000);
      // The host is gone with the replica on it (its agent cannot start it again).
      process.kill(pid as number, 'SIGKILL');
      await waitStatus('ha', (s) => s.readyReplicas === 1, 'one replica ready', 30_000);
      assert.match(await ok(k, ['get', 'ns', 'default', '-o', 'name']), /namespace\/default/);
      await ok(k, ['create', 'deployment', 'web', `--image=${image}`, '--', 'sleep', '3600']);
      // The second replica's controller manager takes the lease (15 s unrenewed) and acts.
      await eventually(
        async () => {
          const lease = await k(['get', 'lease', 'kube-controller-manager', '-n', 'kube-system', '-o', 'jsonpath={.spec.holderIdentity}']);
          const rs = await k(['get', 'replicasets', '-l', 'app=web', '-o', 'name']);
          return lease.stdout.startsWith('ha-1_') && /replicaset\.apps\/web-/.test(rs.stdout);
        },
        'the second replica leads the controllers and makes the ReplicaSet',
        60_000,
      );
    } finally {
      joined[first].process.kill('SIGCONT');
    }
    await eventually(async () => (await hostReady(first)) === 'True', `${first} Ready again`, 30_000);
    await waitStatus('ha', (s) => s.readyReplicas === 2, 'both replicas ready again', 60_000);
    // The virtual kubelet is back with the first replica: the Deployment's pod runs.
    await ok(k, ['wait', '--for=condition=Available', 'deployment/web', '--timeout=120s']);
  });

  test("a further replica's host lost: after --host-lost-after it starts on another host, and its old sandbox goes when the host returns", async () => {
    const ha = await cluster('ha');
    const k = await tenantKubectl('ha');
    const [, lost] = ha.status.replicaHosts as string[];
    const id = `cp-${ha.metadata.uid}-1`;
    const pid = (await replicaPid(lost, id)) as number;
    assert.ok(pid && joined[lost], `replica 1 runs on a joined host (${lost})`);
    joined[lost].process.kill('SIGSTOP');
    try {
      // NotReady after 4 missed heartbeats (1 s), lost 5 s later: the replica goes to the one host with room, the provider's.
      await waitStatus('ha', (s) => (s.replicaHosts as string[])[1] === home && s.readyReplicas === 2, `replica 1 moved off ${lost} to ${home} and ready`, 60_000);
      assert.equal((await cluster('ha')).status.replicaHosts[0], ha.status.replicaHosts[0], 'the first replica stays with the pods');
      assert.ok(runs(await agents[home].getSandbox(id)), `${id} runs on ${home}`);
      assert.match(await ok(k, ['get', 'configmap', 'before', '-o', 'name', '--request-timeout=10s']), /configmap\/before/);
    } finally {
      joined[lost].process.kill('SIGCONT');
    }
    // Back, the host still holds the old replica (its process kept running): it is removed, not left to run beside the new one.
    await eventually(async () => !(await agents[lost].listSandboxes()).some((s) => s.id === id), `the old ${id} removed from ${lost}`, 30_000);
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'its process is gone');
    assert.equal((await cluster('ha')).status.replicaHosts[1], home, 'and the replica stays where it went');
    await waitStatus('ha', (s) => s.readyReplicas === 2, 'both replicas ready');
  });

  test('sleep, wake, stop, start and delete act on every replica', async () => {
    const spread = await cluster('spread');
    const ids = [`cp-${spread.metadata.uid}`, `cp-${spread.metadata.uid}-1`];
    const hostsOf = spread.status.replicaHosts as string[];
    await ok(op, ['patch', 'clusters.kubicle.io', 'spread', '-n', 'acme', '--type', 'merge', '-p', '{"spec":{"sleepAfterSeconds":3}}']);
    await waitStatus('spread', (s) => s.phase === 'Sleeping', 'asleep after 3 idle seconds');
    for (const [i, id] of ids.entries()) assert.equal(await replicaPid(hostsOf[i], id), undefined, `${id} has no process asleep`);
    const k = await tenantKubectl('spread');
    assert.match(await ok(k, ['get', 'ns', 'kube-system', '-o', 'name']), /kube-system/, 'a connection wakes it');
    await ok(op, ['patch', 'clusters.kubicle.io', 'spread', '-n', 'acme', '--type', 'merge', '-p', '{"spec":{"sleepAfterSeconds":0}}']);
    await waitStatus('spread', (s) => s.phase === 'Running' && s.readyReplicas === 2, 'both replicas awake');

    const ha = await cluster('ha');
    const haIds = [`cp-${ha.metadata.uid}`, `cp-${ha.metadata.uid}-1`];
    await ok(op, ['patch', 'clusters.kubicle.io', 'ha', '-n', 'acme', '--type', 'merge', '-p', '{"spec":{"stopped":true}}']);
    await waitStatus('ha', (s) => s.phase === 'Stopped', 'Stopped');
    for (const id of haIds) assert.deepEqual(await holders(id), [], `${id} removed`);
    await ok(op, ['patch', 'clusters.kubicle.io', 'ha', '-n', 'acme', '--type', 'merge', '-p', '{"spec":{"stopped":false}}']);
    await waitStatus('ha', (s) => s.phase === 'Running' && s.readyReplicas === 2, 'Running with both replicas again');
    const k2 = await tenantKubectl('ha');
    assert.match(await ok(k2, ['get', 'configmap', 'before', '-o', 'name']), /configmap\/before/, 'its objects kept');

    const replicaDir = path.join(p.dataDir, 'clusters', `${ha.metadata.uid}.replica-1`);
    assert.ok(existsSync(replicaDir));
    await ok(op, ['delete', 'clusters.kubicle.io', 'ha', 'spread', '-n', 'acme', '--timeout=90s']);
    for (const id of [...haIds, ...ids]) assert.deepEqual(await holders(id), [], `${id} gone`);
    assert.ok(!existsSync(replicaDir), 'the second replica’s data directory is gone');
  });
});
