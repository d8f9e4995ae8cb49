import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IngressRoutes } from './ingress-routes.js';

const cls = (name: string, isDefault = false, controller = 'kubicle.io/ingress-controller') => ({
  metadata: { name, annotations: isDefault ? { 'ingressclass.kubernetes.io/is-default-class': 'true' } : {} },
  spec: { controller },
});
const backend = (service: string, port: number | string = 80) => ({ service: { name: service, port: typeof port === 'number' ? { number: port } : { name: port } } });
const ing = (name: string, at: string, spec: object, className?: string) => ({ metadata: { namespace: 'd', name, uid: name, creationTimestamp: at }, spec: { ingressClassName: className, ...spec } });
const path = (p: string, svc: string, pathType = 'Prefix') => ({ path: p, pathType, backend: backend(svc) });

const routes = new IngressRoutes(
  [
    ing('main', '2026-01-01T00:00:00Z', {
      defaultBackend: backend('fallback'),
      rules: [
        { host: 'shop.example.com', http: { paths: [path('/', 'shop'), path('/api', 'api'), path('/api/v2', 'api2'), path('/api', 'api-exact', 'Exact')] } },
        { host: '*.example.com', http: { paths: [path('/', 'wild')] } },
        { http: { paths: [path('/any', 'anyhost')] } },
      ],
      tls: [{ hosts: ['shop.example.com'], secretName: 'shop-tls' }],
    }, 'kubicle'),
    ing('late', '2026-01-02T00:00:00Z', { defaultBackend: backend('other'), rules: [{ host: 'shop.example.com', http: { paths: [path('/api', 'thief'), path('/new', 'new')] } }], tls: [{ hosts: ['shop.example.com'], secretName: 'other-tls' }] }, 'kubicle'),
    ing('foreign', '2026-01-01T00:00:00Z', { rules: [{ host: 'x.org', http: { paths: [path('/', 'x')] } }] }, 'nginx'),
    ing('classless', '2026-01-01T00:00:00Z', { rules: [{ host: 'plain.org', http: { paths: [path('/', 'plain')] } }] }),
  ],
  [cls('kubicle', true), cls('nginx', false, 'k8s.io/ingress-nginx')],
);
const to = (host: string, url: string) => routes.route(host, url)?.service;

test('hosts: exact, then one-label wildcard, then rules without a host; the port in Host is ignored', () => {
  assert.equal(to('shop.example.com:8080', '/'), 'shop');
  assert.equal(to('blog.example.com', '/x'), 'wild');
  assert.equal(to('a.b.example.com', '/any'), 'anyhost', 'a wildcard covers one label only');
  assert.equal(to('example.com', '/nothing'), 'fallback');
});

test('paths: longest match, Exact over Prefix, whole path elements', () => {
  assert.equal(to('shop.example.com', '/api'), 'api-exact');
  assert.equal(to('shop.example.com', '/api/'), 'api');
  assert.equal(to('shop.example.com', '/api/v2/items?x=1'), 'api2');
  assert.equal(to('shop.example.com', '/apix'), 'shop', '/api does not match /apix');
  assert.equal(to('shop.example.com', '/new/thing'), 'new', "a newer Ingress's rules for the same host merge in");
});

test('conflicts: the older Ingress keeps the path, the default backend and the certificate', () => {
  assert.equal(to('shop.example.com', '/api/x'), 'api');
  assert.deepEqual(
    routes.problems.map((p) => `${p.ingress.metadata.name}: ${p.message}`),
    [
      'late: the default backend is already defined by Ingress d/main; this one is ignored',
      'late: host shop.example.com path /api (Prefix) is already defined by Ingress d/main; this one is ignored',
      'late: TLS for host shop.example.com already comes from Secret d/shop-tls; other-tls is ignored',
    ],
  );
  assert.deepEqual(routes.certificateFor('SHOP.example.com'), { namespace: 'd', secret: 'shop-tls' });
  assert.equal(routes.hasTls('shop.example.com:443'), true);
  assert.equal(routes.hasTls('blog.example.com'), false);
});

test('classes: another controller\'s Ingresses are not served; classless ones go to the default class', () => {
  assert.deepEqual(routes.served.map((i) => i.metadata.name).sort(), ['classless', 'late', 'main']);
  assert.equal(to('x.org', '/'), 'fallback');
  assert.equal(to('plain.org', '/'), 'plain');
  const noDefault = new IngressRoutes([ing('classless', '2026-01-01T00:00:00Z', { rules: [{ host: 'plain.org', http: { paths: [path('/', 'plain')] } }] })], [cls('kubicle')]);
  assert.equal(noDefault.served.length, 0);
  assert.equal(noDefault.route('plain.org', '/'), undefined);
});
