import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { nft } from './host-net.js';
import { policyPods, renderPolicyRules } from './policy-rules.js';

const opts = { table: 'kubicle-unit-policy', bridge: 'kubunit0', dnsEndpoint: '10.246.9.1' };
const pod = (ns: string, name: string, ip: string, labels: Record<string, string>, ports: object[] = []) => ({
  metadata: { namespace: ns, name, labels },
  spec: { containers: [{ name: 'c', ports }] },
  status: { podIP: ip, phase: 'Running' },
});
const pods = policyPods(
  [
    pod('a', 'web', '10.246.9.5', { app: 'web' }, [{ name: 'http', containerPort: 8080 }]),
    pod('a', 'client', '10.246.9.6', { role: 'client' }),
    pod('b', 'other', '10.246.9.7', { role: 'client' }),
  ],
  opts,
);
const namespaces = [
  { metadata: { name: 'a', labels: { 'kubernetes.io/metadata.name': 'a' } } },
  { metadata: { name: 'b', labels: { 'kubernetes.io/metadata.name': 'b', team: 'x' } } },
];
const policy = (name: string, spec: object) => ({ metadata: { namespace: 'a', name }, spec });

test('no policy: nothing is isolated', () => {
  const script = renderPolicyRules(opts, [], pods, namespaces);
  assert.doesNotMatch(script, /chain ingress-/);
  assert.doesNotMatch(script, /chain egress-/);
});

test('ingress from pods of the same namespace or selected namespaces, named port resolved on the target', async (t) => {
  const script = renderPolicyRules(
    opts,
    [
      policy('deny', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'] }),
      policy('allow', {
        podSelector: { matchLabels: { app: 'web' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }, { namespaceSelector: { matchLabels: { team: 'x' } } }], ports: [{ port: 'http' }] }],
      }),
    ],
    pods,
    namespaces,
  );
  assert.match(script, /10\.246\.9\.5 : jump ingress-/);
  assert.match(script, /ip saddr \{ 10\.246\.9\.6 \} meta l4proto tcp th dport 8080 return/, 'same-namespace client on the resolved port');
  assert.match(script, /ip saddr \{ 10\.246\.9\.7 \} meta l4proto tcp th dport 8080 return/, 'the selected namespace');
  assert.doesNotMatch(script, /10\.246\.9\.6 : jump/, 'the client is not isolated');
  await check(t, script);
});

test('egress: the kube-dns stand-in, ipBlock with except, port ranges', async (t) => {
  const script = renderPolicyRules(
    opts,
    [
      policy('egress', {
        podSelector: { matchLabels: { role: 'client' } },
        policyTypes: ['Egress'],
        egress: [
          { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ port: 53, protocol: 'UDP' }] },
          { to: [{ ipBlock: { cidr: '10.246.9.4/24', except: ['10.246.9.5/32'] } }], ports: [{ port: 8000, endPort: 8100 }] },
        ],
      }),
    ],
    pods,
    namespaces,
  );
  assert.match(script, /ip daddr \{ 10\.246\.9\.1 \} meta l4proto udp th dport 53 return/);
  assert.match(script, /ip daddr 10\.246\.9\.0\/24 ip daddr != \{ 10\.246\.9\.5\/32 \} meta l4proto tcp th dport 8000-8100 return/);
  await check(t, script);
});

async function check(t: { skip(msg: string): void }, script: string): Promise<void> {
  try {
    execFileSync('nft', ['--version']);
  } catch {
    return t.skip('nft is not installed (scripts/setup.sh installs it)');
  }
  await nft(script, true);
}
