import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { EtcdBackend } from '../../src/storage/etcd/etcd-backend.js';
import { type EtcdProcess, enableAuth, startEtcd } from '../support/etcd.js';
import { cleanup, eventually, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * Tenant control planes on a shared etcd (issue 8): each Cluster of `spec.store: etcd` keeps its
 * objects under its own prefix, behind its own etcd user, reached through its own relay socket.
 * A tenant holding its control plane's credentials and socket cannot read another's prefix;
 * deleting a cluster deletes its keys and its user.
 */
const run = promisify(execFile);
const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/kubicle.js');

describe('provider: control planes on a shared etcd', { timeout: 600_000 }, () => {
  let etcd: EtcdProcess;
  let rootPassword: string;
  let p: Kubicle;
  let op: Awaited<ReturnType<typeof kubectlFor>>;
  const ok = async (k: typeof op, args: string[], input?: string) => {
    const r = await k(args, { input });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const cluster = async (ns: string, name: string) => JSON.parse(await ok(op, ['get', 'clusters.kubicle.io', name, '-n', ns, '-o', 'json']));
  const waitPhase = (ns: string, name: string, phase: string) => eventually(async () => (await cluster(ns, name)).status?.phase === phase, `${ns}/${name} ${phase}`, 90_000);
  const tenantKubectl = async (ns: string, name: string) => {
    const { stdout } = await run(process.execPath, [bin, 'cluster', 'kubeconfig', name, '--tenant', ns, '--provider', p.kubeconfig]);
    const file = path.join(p.dataDir, `${ns}-${name}.kubeconfig`);
    await writeFile(file, stdout, { mode: 0o600 });
    return kubectlFor({ kubeconfig: file } as Kubicle, '1.33');
  };
  /** The etcd as its operator (root) sees it. */
  const asRoot = () => new EtcdBackend({ endpoints: [etcd.endpoint], auth: { username: 'root', password: rootPassword } });

  before(async () => {
    etcd = await startEtcd();
    rootPassword = await enableAuth(etcd);
    p = await startKubicle({
      command: 'server',
      args: [
        '--cluster-etcd',
        `${etcd.url}/kubicle/clusters?user=root&password=${rootPassword}`,
        '--cluster-endpoint-pool',
        '127.251.9.0/24',
        '--bridge',
        'kubteste',
        '--pod-cidr',
        '10.246.17.0/24',
        '--cluster-pod-pool',
        '10.234.0.0/16',
        '--cluster-sleep-after',
        '0',
      ],
    });
    op = await kubectlFor(p, '1.33');
    await ok(op, ['apply', '-f', '-'], 'apiVersion: kubicle.io/v1alpha1\nkind: Tenant\nmetadata: {name: acme}\nspec: {}\n---\napiVersion: kubicle.io/v1alpha1\nkind: Tenant\nmetadata: {name: globex}\nspec: {}\n');
    await eventually(async () => (await op(['get', 'ns', 'acme', 'globex'])).code === 0, 'tenant namespaces');
    for (const [ns, name] of [
      ['acme', 'e1'],
      ['globex', 'e2'],
    ]) {
      await ok(op, ['apply', '-f', '-'], `apiVersion: kubicle.io/v1alpha1\nkind: Cluster\nmetadata: {name: ${name}, namespace: ${ns}}\nspec: {store: etcd}\n`);
    }
    await waitPhase('acme', 'e1', 'Running');
    await waitPhase('globex', 'e2', 'Running');
  });
  after(async () => {
    if (p) {
      await op(['delete', 'clusters.kubicle.io', '--all', '-A', '--wait=true', '--timeout=60s']);
      await cleanup(p);
    }
    await etcd?.stop();
  });

  test("each cluster's objects live under its own etcd prefix, none in a file of its data volume", async () => {
    const e1 = await cluster('acme', 'e1');
    assert.match(await ok(op, ['get', 'clusters.kubicle.io', 'e1', '-n', 'acme', '-o', 'wide']), /\betcd\b/);
    const k = await tenantKubectl('acme', 'e1');
    await ok(k, ['create', 'configmap', 'in-etcd', '--from-literal=k=v']);
    const root = asRoot();
    try {
      const kv = await root.get(`/kubicle/clusters/${e1.metadata.uid}/registry/core/configmaps/default/in-etcd`);
      assert.ok(kv, "the ConfigMap is under e1's prefix");
    } finally {
      await root.close();
    }
    assert.equal(existsSync(path.join(p.dataDir, 'clusters', e1.metadata.uid, 'store.db')), false);
  });

  test("a control plane's own etcd credentials and socket open its prefix and no other", async () => {
    const e1 = await cluster('acme', 'e1');
    const e2 = await cluster('globex', 'e2');
    const kg = await tenantKubectl('globex', 'e2');
    await ok(kg, ['create', 'secret', 'generic', 'globex-secret', '--from-literal=token=s3cret']);
    // What a tenant who took over e1's control plane holds: its password file and its relay socket.
    const password = (await readFile(path.join(p.dataDir, 'clusters', e1.metadata.uid, 'pki', 'etcd.password'), 'utf8')).trim();
    const socket = path.join(p.dataDir, 'clusters', `${e1.metadata.uid}.run`, 'etcd.sock');
    const as = (root: string) => new EtcdBackend({ endpoints: [`unix:${socket}`], root, auth: { username: `kubicle-${e1.metadata.uid}`, password } });
    const own = as(`/kubicle/clusters/${e1.metadata.uid}`);
    const theirs = as(`/kubicle/clusters/${e2.metadata.uid}`);
    const everything = as('');
    try {
      assert.ok(await own.get('/registry/core/configmaps/default/in-etcd'), 'the control plane reaches its own keys (so the refusals below are the roles)');
      await assert.rejects(theirs.get('/registry/core/secrets/default/globex-secret'), /permission denied/i);
      await assert.rejects(theirs.list('/registry/'), /permission denied/i);
      await assert.rejects(theirs.create('/registry/core/configmaps/default/planted', Buffer.from('{}')), /permission denied/i);
      await assert.rejects(everything.list('/'), /permission denied/i);
      await assert.rejects(everything.compact(await own.currentRevision()), /permission denied|not permitted|root/i);
    } finally {
      for (const b of [own, theirs, everything]) await b.close();
    }
  });

  test('stop and start keep the objects; delete removes the keys and the etcd user', async () => {
    const e1 = await cluster('acme', 'e1');
    await ok(op, ['patch', 'clusters.kubicle.io', 'e1', '-n', 'acme', '--type', 'merge', '-p', '{"spec":{"stopped":true}}']);
    await waitPhase('acme', 'e1', 'Stopped');
    await ok(op, ['patch', 'clusters.kubicle.io', 'e1', '-n', 'acme', '--type', 'merge', '-p', '{"spec":{"stopped":false}}']);
    await waitPhase('acme', 'e1', 'Running');
    const k = await tenantKubectl('acme', 'e1');
    assert.equal((await ok(k, ['get', 'configmap', 'in-etcd', '-o', 'jsonpath={.data.k}'])).trim(), 'v');
    const password = (await readFile(path.join(p.dataDir, 'clusters', e1.metadata.uid, 'pki', 'etcd.password'), 'utf8')).trim();
    await ok(op, ['delete', 'clusters.kubicle.io', 'e1', '-n', 'acme', '--wait=true', '--timeout=60s']);
    const root = asRoot();
    try {
      assert.equal(await root.count(`/kubicle/clusters/${e1.metadata.uid}/`), 0, "e1's keys are gone");
      assert.ok((await root.count(`/kubicle/clusters/${(await cluster('globex', 'e2')).metadata.uid}/`)) > 0, "e2's are not");
    } finally {
      await root.close();
    }
    const former = new EtcdBackend({ endpoints: [etcd.endpoint], root: '', auth: { username: `kubicle-${e1.metadata.uid}`, password } });
    await assert.rejects(former.get('/x'), /authentication failed|invalid/i);
    await former.close();
  });
});
