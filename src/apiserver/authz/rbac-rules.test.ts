import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Attributes } from './authorizer.js';
import { compactRule, compactRules, type PolicyRule, ruleAllows, uncovered } from './rbac-rules.js';

const req = (a: Partial<Attributes>): Attributes => ({ verb: 'get', path: '', ...a });

describe('RBAC rules', () => {
  it('match verb, group, resource and subresource, and names only for named requests', () => {
    const r: PolicyRule = { verbs: ['get', 'list'], apiGroups: ['apps'], resources: ['deployments', 'deployments/scale'] };
    assert.ok(ruleAllows(r, req({ group: 'apps', resource: 'deployments', name: 'x' })));
    assert.ok(ruleAllows(r, req({ group: 'apps', resource: 'deployments', subresource: 'scale', name: 'x' })));
    assert.ok(!ruleAllows(r, req({ group: 'apps', resource: 'deployments', subresource: 'status', name: 'x' })), 'a resource does not cover its other subresources');
    assert.ok(!ruleAllows(r, req({ group: '', resource: 'deployments' })), 'another group');
    assert.ok(!ruleAllows(r, req({ verb: 'delete', group: 'apps', resource: 'deployments' })));
    const any = { verbs: ['*'], apiGroups: ['*'], resources: ['*/scale'] };
    assert.ok(ruleAllows(any, req({ verb: 'update', group: 'apps', resource: 'statefulsets', subresource: 'scale' })));
    assert.ok(!ruleAllows(any, req({ group: 'apps', resource: 'statefulsets' })));
    const named = { verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'], resourceNames: ['a'] };
    assert.ok(ruleAllows(named, req({ group: '', resource: 'configmaps', name: 'a' })));
    assert.ok(!ruleAllows(named, req({ group: '', resource: 'configmaps', name: 'b' })));
    assert.ok(!ruleAllows(named, req({ verb: 'list', group: '', resource: 'configmaps' })), 'a list names nothing');
  });

  it('match non-resource URLs exactly or by a trailing *', () => {
    const r = { verbs: ['get'], nonResourceURLs: ['/healthz', '/apis/*'] };
    assert.ok(ruleAllows(r, req({ path: '/healthz' })));
    assert.ok(ruleAllows(r, req({ path: '/apis/apps/v1' })));
    assert.ok(!ruleAllows(r, req({ path: '/healthz/x' })));
    assert.ok(!ruleAllows(r, req({ path: '/api/v1', group: '', resource: 'pods' })), 'a resource request is not a URL');
  });

  it('find what a holder lacks, piece by piece; "*" is covered only by "*"', () => {
    const held: PolicyRule[] = [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['pods', '*/log'] }, { verbs: ['get'], apiGroups: [''], resources: ['secrets'], resourceNames: ['s1'] }];
    assert.deepEqual(uncovered(held, [{ verbs: ['get'], apiGroups: [''], resources: ['pods', 'pods/log'] }]), []);
    assert.deepEqual(uncovered(held, [{ verbs: ['get'], apiGroups: [''], resources: ['secrets'], resourceNames: ['s1'] }]), []);
    assert.deepEqual(uncovered(held, [{ verbs: ['get'], apiGroups: [''], resources: ['secrets'] }]), [{ verbs: ['get'], apiGroups: [''], resources: ['secrets'] }], 'one name does not cover all');
    assert.equal(uncovered(held, [{ verbs: ['*'], apiGroups: [''], resources: ['pods'] }]).length, 1);
    const missing = uncovered(held, [{ verbs: ['get', 'delete', 'patch'], apiGroups: [''], resources: ['pods', 'nodes'] }]);
    assert.deepEqual(compactRules(missing).map(compactRule), ['{APIGroups:[""], Resources:["nodes"], Verbs:["get" "delete" "patch"]}', '{APIGroups:[""], Resources:["pods"], Verbs:["delete" "patch"]}']);
  });
});
