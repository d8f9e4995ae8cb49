import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { renderKubeconfig } from '../../src/apiserver/kubeconfig.js';
import { createCa, issueClient } from '../../src/apiserver/pki.js';
import { cleanup, eventually, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * RBAC, service account tokens and impersonation, with stock kubectl 1.27 and 1.33: users from
 * `kubicle user kubeconfig` and service accounts from `kubectl create token`, allowed and denied
 * by roles and bindings; escalation refused; the default roles aggregated; forged, foreign and
 * orphaned credentials refused.
 */
const run = promisify(execFile);
const bin = path.resolve('bin/kubicle.js');
/** A 401 as kubectl reports it (1.33 words it as a request for credentials). */
const unauthorized = /Unauthorized|the server has asked for the client to provide credentials/;

describe('RBAC, service account tokens and impersonation', () => {
  let k: Kubicle;
  let tmp: string;
  let admin: Awaited<ReturnType<typeof kubectlFor>>;
  const as: Record<string, string> = {};
  const ns = 'team';

  /** kubectl of a version with the given kubeconfig file. */
  const kc = async (version: string, file: string, args: string[]) => (await kubectlFor(k, version))(args, { env: { KUBECONFIG: file } });
  const ok = async (r: Promise<{ code: number; stdout: string; stderr: string }>) => {
    const x = await r;
    assert.equal(x.code, 0, x.stderr);
    return x.stdout;
  };
  const userKubeconfig = async (name: string, groups: string[]) => {
    const { stdout } = await run(process.execPath, [bin, 'user', 'kubeconfig', name, '--groups', groups.join(','), '--data-dir', k.dataDir]);
    const file = path.join(tmp, `${name}.kubeconfig`);
    await writeFile(file, stdout, { mode: 0o600 });
    return file;
  };
  /** A kubeconfig holding only a bearer token, for the same server. */
  const tokenKubeconfig = async (name: string, token: string) => {
    const file = path.join(tmp, `${name}.kubeconfig`);
    await writeFile(file, renderKubeconfig({ cluster: 'kubicle', server: k.url, caPem: (await k.creds()).ca, user: name, token }), { mode: 0o600 });
    return file;
  };

  before(async () => {
    k = await startKubicle();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'kubicle-rbac-'));
    admin = await kubectlFor(k, '1.33');
    await ok(admin(['create', 'namespace', ns]));
    as.alice = await userKubeconfig('alice', ['devs']);
    as.bob = await userKubeconfig('bob', []);
  });

  after(async () => {
    await cleanup(k);
    await rm(tmp, { recursive: true, force: true });
  });

  it('has upstream default roles; admin, edit and view follow what is labelled to join them', async () => {
    const roles = await ok(admin(['get', 'clusterroles', '-o', 'name']));
    for (const r of ['cluster-admin', 'admin', 'edit', 'view', 'system:basic-user', 'system:discovery', 'system:public-info-viewer']) assert.match(roles, new RegExp(`clusterrole.rbac.authorization.k8s.io/${r}\\n`));
    const view = JSON.parse(await ok(admin(['get', 'clusterrole', 'view', '-o', 'json'])));
    assert.ok(view.rules.some((r: { resources: string[]; verbs: string[] }) => r.resources.includes('pods') && r.verbs.includes('list')), 'view reads pods');
    assert.ok(!view.rules.some((r: { resources: string[] }) => r.resources.includes('secrets')), 'view does not read secrets');
    await ok(
      admin(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRole',
          metadata: { name: 'widgets-view', labels: { 'rbac.authorization.k8s.io/aggregate-to-view': 'true' } },
          rules: [{ apiGroups: ['example.com'], resources: ['widgets'], verbs: ['get'] }],
        }),
      }),
    );
    await eventually(async () => (await ok(admin(['get', 'clusterrole', 'edit', '-o', 'json']))).includes('widgets'), 'the new rule reaches view and, through it, edit and admin');
    await ok(admin(['delete', 'clusterrole', 'widgets-view']));
    await eventually(async () => !(await ok(admin(['get', 'clusterrole', 'admin', '-o', 'json']))).includes('widgets'), 'and leaves when that role goes');
  });

  for (const v of ['1.27', '1.33']) {
    it(`kubectl ${v}: a user is who the certificate says, denied until a binding allows, and can-i agrees`, async () => {
      const who = await ok(kc(v, as.alice, ['auth', 'whoami', '-o', 'json']));
      assert.deepEqual(JSON.parse(who).status.userInfo, { username: 'alice', groups: ['devs', 'system:authenticated'] });
      const denied = await kc(v, as.alice, ['get', 'pods', '-n', ns]);
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "team"/);
      assert.equal((await kc(v, as.alice, ['auth', 'can-i', 'list', 'pods', '-n', ns])).stdout.trim(), 'no');
    });
  }

  it('a RoleBinding to edit lets a group work in one namespace only; can-i --list shows it', async () => {
    await ok(admin(['create', 'rolebinding', 'devs-edit', '--clusterrole=edit', '--group=devs', '-n', ns]));
    const wide = await ok(admin(['get', 'rolebinding', 'devs-edit', '-n', ns, '-o', 'wide']));
    assert.match(wide, /devs-edit\s+ClusterRole\/edit\s+\S+\s+devs/);
    await eventually(async () => (await kc('1.33', as.alice, ['auth', 'can-i', 'create', 'deployments.apps', '-n', ns])).stdout.trim() === 'yes', 'alice may create deployments in team');
    await ok(kc('1.27', as.alice, ['create', 'configmap', 'c1', '-n', ns, '--from-literal=a=b']));
    assert.equal((await kc('1.33', as.alice, ['auth', 'can-i', 'create', 'configmaps', '-n', 'default'])).stdout.trim(), 'no');
    assert.equal((await kc('1.33', as.alice, ['auth', 'can-i', 'create', 'roles', '-n', ns])).stdout.trim(), 'no', 'edit does not manage roles');
    const list = await ok(kc('1.33', as.alice, ['auth', 'can-i', '--list', '-n', ns]));
    assert.match(list, /^deployments\.apps\s+\[\]\s+\[\]\s+\[create update patch delete deletecollection get list watch\]$/m);
    assert.equal((await kc('1.33', as.bob, ['get', 'configmaps', '-n', ns])).code, 1, 'bob is not in devs');
  });

  it('nobody grants or binds rights they do not hold, unless allowed to escalate or bind', async () => {
    await ok(admin(['create', 'rolebinding', 'alice-admin', '--clusterrole=admin', '--user=alice', '-n', ns]));
    await eventually(async () => (await kc('1.33', as.alice, ['auth', 'can-i', 'create', 'roles', '-n', ns])).stdout.trim() === 'yes', 'alice is admin of team');
    await ok(kc('1.33', as.alice, ['create', 'role', 'pod-reader', '--verb=get,list', '--resource=pods', '-n', ns]));
    const role = await kc('1.33', as.alice, ['create', 'role', 'node-killer', '--verb=get,delete', '--resource=nodes', '-n', ns]);
    assert.notEqual(role.code, 0);
    assert.match(role.stderr, /roles\.rbac\.authorization\.k8s\.io "node-killer" is forbidden: user "alice" \(groups=\["devs" "system:authenticated"\]\) is attempting to grant RBAC permissions not currently held:\n\{APIGroups:\[""\], Resources:\["nodes"\], Verbs:\["get" "delete"\]\}/);
    const bind = await kc('1.27', as.alice, ['create', 'rolebinding', 'self-admin', '--clusterrole=cluster-admin', '--user=alice', '-n', ns]);
    assert.notEqual(bind.code, 0);
    assert.match(bind.stderr, /rolebindings\.rbac\.authorization\.k8s\.io "self-admin" is forbidden: user "alice" .* is attempting to grant RBAC permissions not currently held/);
    await ok(kc('1.33', as.alice, ['create', 'rolebinding', 'bob-view', '--clusterrole=view', '--user=bob', '-n', ns]));
    assert.equal((await kc('1.33', as.bob, ['get', 'configmaps', '-n', ns])).code, 0, 'what alice holds she may pass on');
    // The bind verb on one role lets her bind it without holding it.
    await ok(admin(['create', 'role', 'binder', '--verb=bind', '--resource=clusterroles', '--resource-name=cluster-admin', '-n', ns]));
    await ok(admin(['create', 'rolebinding', 'alice-binder', '--role=binder', '--user=alice', '-n', ns]));
    await eventually(async () => (await kc('1.33', as.alice, ['create', 'rolebinding', 'bob-admin', '--clusterrole=cluster-admin', '--user=bob', '-n', ns])).code === 0, 'bind allows it');
    assert.equal(await ok(kc('1.33', as.alice, ['get', 'rolebinding', 'bob-admin', '-n', ns, '-o', 'jsonpath={.roleRef.name}'])), 'cluster-admin');
  });

  it('impersonation needs the impersonate verb; with it, requests run as the one impersonated', async () => {
    // Raw requests: kubectl words a refused discovery request only as "unknown".
    const self = await kc('1.33', as.alice, ['get', '--raw', `/api/v1/namespaces/${ns}/configmaps`, '--as', 'alice']);
    assert.match(self.stderr, /users "alice" is forbidden/, 'not even herself without the verb');
    const refused = await kc('1.33', as.alice, ['get', '--raw', `/api/v1/namespaces/${ns}/pods`, '--as', 'carol']);
    assert.match(refused.stderr, /users "carol" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope/);
    await ok(admin(['create', 'clusterrole', 'impersonate-carol', '--verb=impersonate', '--resource=users', '--resource-name=carol']));
    await ok(admin(['create', 'clusterrolebinding', 'alice-impersonates', '--clusterrole=impersonate-carol', '--user=alice']));
    await eventually(async () => (await kc('1.33', as.alice, ['auth', 'whoami', '--as', 'carol'])).code === 0, 'alice may be carol');
    const carol = JSON.parse(await ok(kc('1.27', as.alice, ['auth', 'whoami', '-o', 'json', '--as', 'carol'])));
    assert.deepEqual(carol.status.userInfo, { username: 'carol', groups: ['system:authenticated'] });
    const group = await kc('1.33', as.alice, ['get', '--raw', '/api/v1/nodes', '--as', 'carol', '--as-group', 'system:masters']);
    assert.match(group.stderr, /groups "system:masters" is forbidden: User "alice" cannot impersonate resource "groups"/);
    // The admin may be anyone, and is then only what that one is.
    assert.equal((await admin(['auth', 'can-i', 'create', 'roles', '-n', ns, '--as', 'alice'])).stdout.trim(), 'yes');
    assert.equal((await admin(['auth', 'can-i', 'get', 'nodes', '--as', 'alice'])).stdout.trim(), 'no');
  });

  it('service account tokens: create token, RBAC by service account, refused once the account or bound pod is gone', async () => {
    await ok(admin(['create', 'serviceaccount', 'robot', '-n', ns]));
    const token = (await ok(kc('1.33', as.alice, ['create', 'token', 'robot', '-n', ns, '--duration=15m']))).trim();
    const robot = await tokenKubeconfig('robot', token);
    const who = JSON.parse(await ok(kc('1.33', robot, ['auth', 'whoami', '-o', 'json'])));
    assert.equal(who.status.userInfo.username, 'system:serviceaccount:team:robot');
    assert.deepEqual(who.status.userInfo.groups, ['system:serviceaccounts', 'system:serviceaccounts:team', 'system:authenticated']);
    assert.equal((await kc('1.33', robot, ['get', 'pods', '-n', ns])).code, 1);
    await ok(admin(['create', 'rolebinding', 'robot-view', '--clusterrole=view', `--serviceaccount=${ns}:robot`, '-n', ns]));
    await eventually(async () => (await kc('1.27', robot, ['get', 'pods', '-n', ns])).code === 0, 'the service account may read');
    assert.equal((await kc('1.27', robot, ['delete', 'configmap', 'c1', '-n', ns])).code, 1, 'but not write');
    // A token bound to a pod holds while that pod does.
    await ok(admin(['run', 'holder', '--image=none', '--restart=Never', '-n', ns]));
    const bound = (await ok(admin(['create', 'token', 'robot', '-n', ns, '--bound-object-kind=Pod', '--bound-object-name=holder']))).trim();
    const boundFile = await tokenKubeconfig('robot-bound', bound);
    await ok(kc('1.33', boundFile, ['auth', 'whoami']));
    await ok(admin(['delete', 'pod', 'holder', '-n', ns, '--grace-period=0', '--force']));
    await eventually(async () => unauthorized.test((await kc('1.33', boundFile, ['auth', 'whoami'])).stderr), 'the bound token dies with its pod');
    // A token of a deleted account, even one recreated under the same name, is refused.
    await ok(admin(['delete', 'serviceaccount', 'robot', '-n', ns]));
    await ok(admin(['create', 'serviceaccount', 'robot', '-n', ns]));
    const orphan = await kc('1.33', robot, ['get', 'pods', '-n', ns]);
    assert.match(orphan.stderr, unauthorized);
  });

  it('legacy token secrets: filled only when asked, usable under RBAC, refused once the secret or account goes', async () => {
    const tokenType = 'kubernetes.io/service-account-token';
    const secret = (name: string, account?: string) =>
      JSON.stringify({ apiVersion: 'v1', kind: 'Secret', type: tokenType, metadata: { name, namespace: ns, ...(account ? { annotations: { 'kubernetes.io/service-account.name': account } } : {}) } });
    const tokenSecrets = async () => (await ok(admin(['get', 'secrets', '-n', ns, `--field-selector=type=${tokenType}`, '-o', 'name']))).trim();
    await ok(admin(['create', 'serviceaccount', 'legacy', '-n', ns]));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await tokenSecrets(), '', 'no token secret unless asked');

    const unnamed = await admin(['create', '-f', '-'], { input: secret('nameless') });
    assert.notEqual(unnamed.code, 0);
    assert.match(unnamed.stderr, /metadata.annotations\[kubernetes.io\/service-account.name\]: Required value/);

    await ok(admin(['create', '-f', '-'], { input: secret('legacy-token', 'legacy') }));
    const filled = async () => JSON.parse(await ok(admin(['get', 'secret', 'legacy-token', '-n', ns, '-o', 'json'])));
    await eventually(async () => !!(await filled()).data?.token, 'the controller filled the token');
    const s1 = await filled();
    const uid = (await ok(admin(['get', 'sa', 'legacy', '-n', ns, '-o', 'jsonpath={.metadata.uid}']))).trim();
    assert.equal(s1.metadata.annotations['kubernetes.io/service-account.uid'], uid);
    assert.equal(Buffer.from(s1.data.namespace, 'base64').toString(), ns);
    assert.equal(Buffer.from(s1.data['ca.crt'], 'base64').toString(), (await k.creds()).ca);
    const token = Buffer.from(s1.data.token, 'base64').toString();
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    assert.equal(claims.iss, 'kubernetes/serviceaccount');
    assert.equal(claims.exp, undefined, 'a legacy token does not expire');

    const legacy = await tokenKubeconfig('legacy', token);
    for (const v of ['1.27', '1.33']) {
      assert.match(await ok(kc(v, legacy, ['auth', 'whoami'])), /system:serviceaccount:team:legacy/);
    }
    assert.equal((await kc('1.33', legacy, ['get', 'configmaps', '-n', ns])).code, 1, 'no rights yet');
    await ok(admin(['create', 'rolebinding', 'legacy-view', '--clusterrole=view', `--serviceaccount=${ns}:legacy`, '-n', ns]));
    await eventually(async () => (await kc('1.33', legacy, ['get', 'configmaps', '-n', ns])).code === 0, 'the binding lets the legacy token read');

    // The token holds only while its secret does.
    await ok(admin(['delete', 'secret', 'legacy-token', '-n', ns]));
    assert.match((await kc('1.33', legacy, ['auth', 'whoami'])).stderr, unauthorized);

    // A second secret gets a token of its own; deleting the account deletes the secret, and the token dies.
    await ok(admin(['create', '-f', '-'], { input: secret('legacy-token-2', 'legacy') }));
    await eventually(async () => !!JSON.parse(await ok(admin(['get', 'secret', 'legacy-token-2', '-n', ns, '-o', 'json']))).data?.token, 'the second secret was filled');
    const second = Buffer.from(JSON.parse(await ok(admin(['get', 'secret', 'legacy-token-2', '-n', ns, '-o', 'json']))).data.token, 'base64').toString();
    assert.notEqual(second, token);
    const legacy2 = await tokenKubeconfig('legacy2', second);
    await ok(kc('1.33', legacy2, ['auth', 'whoami']));
    await ok(admin(['delete', 'serviceaccount', 'legacy', '-n', ns]));
    await eventually(async () => (await tokenSecrets()) === '', 'the account took its token secret along');
    assert.match((await kc('1.33', legacy2, ['auth', 'whoami'])).stderr, unauthorized);

    // A secret naming an account that does not exist is deleted, as upstream does.
    await ok(admin(['create', '-f', '-'], { input: secret('nobodys', 'nobody') }));
    await eventually(async () => (await tokenSecrets()) === '', 'the secret of a missing account was deleted');
  });

  it('forged, foreign, malformed and out-of-range credentials are refused with a Status; the server stays up', async () => {
    await ok(admin(['create', 'serviceaccount', 'probe', '-n', ns]));
    const token = (await ok(admin(['create', 'token', 'probe', '-n', ns]))).trim();
    const [h, p, s] = token.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    claims.sub = 'system:serviceaccount:kube-system:default';
    claims['kubernetes.io'].namespace = 'kube-system';
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    for (const bad of [forged, `${h}.${p}.${'A'.repeat(s.length)}`, 'not-a-token', `${h}.${p}`]) {
      const r = await kc('1.33', await tokenKubeconfig('bad', bad), ['get', 'pods', '-n', ns]);
      assert.match(r.stderr, unauthorized, `refused: ${bad.slice(0, 20)}…`);
    }
    // A certificate from another CA, for a user the cluster would otherwise trust.
    const other = createCa('elsewhere');
    const cert = issueClient(other, 'kubicle-admin', ['system:masters']);
    const foreign = path.join(tmp, 'foreign.kubeconfig');
    await writeFile(foreign, renderKubeconfig({ cluster: 'kubicle', server: k.url, caPem: (await k.creds()).ca, user: 'x', certPem: cert.cert, keyPem: cert.key }));
    assert.match((await kc('1.33', foreign, ['get', 'pods'])).stderr, unauthorized);
    // Out-of-range token requests and bad reviews and roles are 422 with the field named.
    const short = await admin(['create', 'token', 'probe', '-n', ns, '--duration=60s']);
    assert.match(short.stderr, /spec\.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes/);
    const raw = await admin(['create', '--raw', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', '-f', '-'], {
      input: JSON.stringify({ kind: 'SelfSubjectAccessReview', apiVersion: 'authorization.k8s.io/v1', spec: {} }),
    });
    assert.match(raw.stderr, /exactly one of nonResourceAttributes or resourceAttributes must be specified/);
    const noVerbs = await admin(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'empty', namespace: ns }, rules: [{ apiGroups: [''], resources: ['pods'] }] }) });
    assert.match(noVerbs.stderr, /rules\[0\]\.verbs: Required value/);
    const urls = await admin(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'urls', namespace: ns }, rules: [{ verbs: ['get'], nonResourceURLs: ['/x'] }] }) });
    assert.match(urls.stderr, /namespaced rules cannot apply to non-resource URLs/);
    const ref = await admin(['patch', 'rolebinding', 'devs-edit', '-n', ns, '--type=merge', '-p', '{"roleRef":{"name":"view"}}']);
    assert.match(ref.stderr, /cannot change roleRef/);
    assert.equal(await ok(admin(['get', 'rolebinding', 'devs-edit', '-n', ns, '-o', 'jsonpath={.roleRef.name}'])), 'edit', 'nothing was written');
    assert.equal((await readFile(path.join(k.dataDir, 'pki', 'sa.key'), 'utf8')).includes('PRIVATE KEY'), true);
    await ok(admin(['get', '--raw', '/readyz']));
  });
});
