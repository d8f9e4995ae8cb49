import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FieldErrors } from '../field-errors.js';
import type { KubeObject } from '../object.js';
import { ingresses } from './ingress.js';

const check = (spec: object) => {
  const errs = new FieldErrors();
  ingresses.validate?.({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'i', namespace: 'd' }, spec } as KubeObject, errs);
  return errs.causes.map((c) => `${c.field}: ${c.message}`);
};
const svc = (port: object) => ({ service: { name: 'web', port } });
const rule = (host: string | undefined, path: object) => ({ host, http: { paths: [path] } });

test('a valid Ingress has no errors', () => {
  assert.deepEqual(
    check({
      defaultBackend: svc({ number: 80 }),
      tls: [{ hosts: ['*.example.com'], secretName: 's' }],
      rules: [rule('*.example.com', { path: '/api', pathType: 'Prefix', backend: svc({ name: 'http' }) }), rule(undefined, { path: '/x', pathType: 'Exact', backend: svc({ number: 8080 }) })],
    }),
    [],
  );
});

test('hosts: DNS names with an optional leading wildcard, never IP addresses', () => {
  assert.deepEqual(check({ rules: [rule('10.0.0.1', { path: '/', pathType: 'Prefix', backend: svc({ number: 80 }) })] }), ['spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address']);
  assert.match(check({ rules: [rule('a.*.com', { path: '/', pathType: 'Prefix', backend: svc({ number: 80 }) })] })[0], /a wildcard DNS-1123 subdomain must start with '\*\.'/);
  assert.match(check({ rules: [rule('Bad_Host', { path: '/', pathType: 'Prefix', backend: svc({ number: 80 }) })] })[0], /^spec\.rules\[0\]\.host: Invalid value: "Bad_Host": a lowercase RFC 1123 subdomain/);
  assert.match(check({ tls: [{ hosts: ['::1'] }], defaultBackend: svc({ number: 80 }) })[0], /^spec\.tls\[0\]\.hosts\[0\]: Invalid value: "::1": must be a DNS name/);
});

test('paths and backends as upstream words them', () => {
  const p = (path: object) => check({ rules: [rule('a.com', path)] });
  assert.deepEqual(p({ path: '/a//b', pathType: 'Prefix', backend: svc({ number: 80 }) }), ['spec.rules[0].http.paths[0].path: Invalid value: "/a//b": must not contain \'//\'']);
  assert.deepEqual(p({ path: '/a/..', pathType: 'Exact', backend: svc({ number: 80 }) }), ['spec.rules[0].http.paths[0].path: Invalid value: "/a/..": cannot end with \'/..\'']);
  assert.deepEqual(p({ path: '/a', pathType: 'Prefix', backend: svc({ name: 'http', number: 80 }) }), ['spec.rules[0].http.paths[0].backend.service.port: Invalid value: "http": cannot specify both port name and port number']);
  assert.deepEqual(p({ path: '/a', pathType: 'Prefix', backend: svc({}) }), ['spec.rules[0].http.paths[0].backend.service.port: Required value: port name or number is required']);
  assert.deepEqual(p({ path: '/a', pathType: 'Prefix', backend: { ...svc({ number: 80 }), resource: { kind: 'Bucket', name: 'b' } } }), ['spec.rules[0].http.paths[0].backend: Invalid value: "": cannot set both resource and service backends']);
  assert.deepEqual(p({ path: '/a', pathType: 'Prefix', backend: svc({ number: 70000 }) }), ['spec.rules[0].http.paths[0].backend.service.port.number: Invalid value: 70000: must be between 1 and 65535, inclusive']);
  assert.deepEqual(check({}), ['spec: Invalid value: {}: either `defaultBackend` or `rules` must be specified']);
});
