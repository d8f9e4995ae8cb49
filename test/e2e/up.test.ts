import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cleanup, eventually, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * `kubicle up` as the README tells it (issue 8): the provider, this host's agent and a default
 * cluster whose kubeconfig is written; stock kubectl runs a Deployment behind a Service there and
 * reaches it by name from another pod; a restart adopts the running cluster with its objects.
 */
const run = promisify(execFile);
const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/kubicle.js');

describe('kubicle up: the provider and a default cluster', { timeout: 600_000 }, () => {
  let p: Kubicle;
  const clusterKubeconfig = () => path.join(p.dataDir, 'default.kubeconfig');
  const image = () => `${/registry (127\.0\.0\.1:\d+)/.exec(p.logs())?.[1]}/kubicle/busybox:1`;

  before(async () => {
    p = await startKubicle({
      command: 'up',
      args: ['--cluster-endpoint-pool', '127.251.8.0/24', '--bridge', 'kubtestup', '--pod-cidr', '10.246.16.0/24', '--cluster-pod-pool', '10.233.0.0/16', '--cluster-sleep-after', '0'],
    });
  });
  after(async () => {
    if (!p) return;
    // Clusters outlive their provider: delete them before it goes.
    const op = await kubectlFor(p, '1.33');
    await op(['delete', 'clusters.kubicle.io', '--all', '-A', '--wait=true', '--timeout=60s']);
    await cleanup(p);
  });

  test('up prints the default cluster and writes its kubeconfig; the operator sees it Running', async () => {
    assert.match(p.logs(), /Kubicle is up: cluster default\/default at https:\/\/127\.251\.8\.\d+:443/);
    assert.ok(p.logs().includes(`export KUBECONFIG=${clusterKubeconfig()}`), p.logs());
    assert.ok(existsSync(clusterKubeconfig()));
    const { stdout } = await run(process.execPath, [bin, 'cluster', 'list', '--data-dir', p.dataDir]);
    assert.match(stdout, /^default\s+Running\s+https:\/\/127\.251\.8\.\d+:443\s+v1\./m);
  });

  test('stock kubectl runs a Deployment behind a Service in the default cluster, reached by name from a pod', async () => {
    const k = await kubectlFor({ kubeconfig: clusterKubeconfig() } as Kubicle, '1.33');
    const ok = async (args: string[]) => {
      const r = await k(args);
      assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    assert.match(await ok(['get', 'nodes']), /kubicle-virtual\s+Ready/);
    await ok(['create', 'deployment', 'web', `--image=${image()}`, '--', 'sh', '-c', 'mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www']);
    await ok(['expose', 'deployment', 'web', '--port', '80']);
    await ok(['run', 'client', `--image=${image()}`, '--', 'sleep', '3600']);
    await ok(['rollout', 'status', 'deployment/web', '--timeout=120s']);
    await ok(['wait', '--for=condition=Ready', 'pod/client', '--timeout=120s']);
    // busybox 1.35's wget crashes with -T: the time limit is busybox's timeout.
    await eventually(async () => /hello from web-/.test((await k(['exec', 'client', '--', 'timeout', '5', 'wget', '-qO-', 'http://web/'])).stdout), 'web by name', 60_000);
    await ok(['create', 'configmap', 'kept', '--from-literal=k=v']);
  });

  test('a restarted up adopts the running cluster: same endpoint, objects and pods kept', async () => {
    const before = /at (https:\/\/\S+)/.exec(p.logs())?.[1];
    const k = await kubectlFor({ kubeconfig: clusterKubeconfig() } as Kubicle, '1.33');
    const uid = (await k(['get', 'pod', 'client', '-o', 'jsonpath={.metadata.uid}'])).stdout;
    await p.stop();
    await p.start();
    assert.equal(/at (https:\/\/\S+)/.exec(p.logs())?.[1], before);
    assert.equal((await k(['get', 'configmap', 'kept', '-o', 'jsonpath={.data.k}'])).stdout, 'v');
    assert.equal((await k(['get', 'pod', 'client', '-o', 'jsonpath={.metadata.uid}'])).stdout, uid);
    assert.equal((await k(['exec', 'client', '--', 'echo', 'still here'])).stdout.trim(), 'still here');
  });
});
