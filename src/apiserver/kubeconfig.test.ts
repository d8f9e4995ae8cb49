import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { renderKubeconfig } from './kubeconfig.js';

test('a rendered kubeconfig reads back as the document kubectl expects, whatever the strings hold', () => {
  const user = 'ann: "the admin"\n#not a comment';
  const doc = parse(renderKubeconfig({ cluster: 'c-1', server: 'https://127.0.0.1:6443', caPem: 'CA PEM', user, certPem: 'CERT', keyPem: 'KEY', namespace: 'team-a' }));
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  assert.deepEqual(doc, {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c-1', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': b64('CA PEM') } }],
    users: [{ name: user, user: { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') } }],
    contexts: [{ name: `${user}@c-1`, context: { cluster: 'c-1', user, namespace: 'team-a' } }],
    'current-context': `${user}@c-1`,
    preferences: {},
  });
  assert.deepEqual(parse(renderKubeconfig({ cluster: 'c', server: 'https://h', caPem: 'x', user: 'u', token: 't0k' })).users, [{ name: 'u', user: { token: 't0k' } }]);
  assert.deepEqual(parse(renderKubeconfig({ cluster: 'c', server: 'https://h', caPem: 'x', user: 'u' })).users, [{ name: 'u', user: {} }]);
});
