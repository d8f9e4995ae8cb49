import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCode } from '../observe/errors.js';
import { labelSelectorToString, matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.js';

test('label selectors: every operator', () => {
  const l = { app: 'web', tier: 'fe', n: '5' };
  const m = (s: string) => matchesLabels(parseLabelSelector(s), l);
  assert.ok(m('app=web'));
  assert.ok(m('app==web,tier=fe'));
  assert.ok(!m('app!=web'));
  assert.ok(m('app in (web, api)'));
  assert.ok(!m('app notin (web)'));
  assert.ok(m('tier'));
  assert.ok(!m('!tier'));
  assert.ok(m('!missing'));
  assert.ok(m('n>3') && !m('n<3'));
  assert.ok(m(''));
  assert.ok(m('missing!=x'), 'a missing key satisfies !=');
  assert.throws(() => parseLabelSelector('app=(web'), (e) => isCode(e, 'BadRequest'));
});

test('metav1.LabelSelector renders to the query form', () => {
  const s = labelSelectorToString({ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'env', operator: 'In', values: ['a', 'b'] }, { key: 'x', operator: 'DoesNotExist' }] });
  assert.equal(s, 'app=web,env in (a,b),!x');
  assert.ok(matchesLabels(parseLabelSelector(s), { app: 'web', env: 'b' }));
});

test('field selectors with escapes', () => {
  const f = parseFieldSelector('metadata.name=a\\,b,status.phase!=Failed');
  assert.deepEqual(f, [
    { field: 'metadata.name', op: '=', value: 'a,b' },
    { field: 'status.phase', op: '!=', value: 'Failed' },
  ]);
  assert.ok(matchesFields(f, { 'metadata.name': 'a,b', 'status.phase': 'Running' }));
  assert.ok(!matchesFields(f, { 'metadata.name': 'a,b', 'status.phase': 'Failed' }));
  assert.throws(() => parseFieldSelector('nonsense'), (e) => isCode(e, 'BadRequest'));
});
