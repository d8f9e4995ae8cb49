import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * DESIGN §3's import rules, checked from the source: arrows point down only. Each layer lists
 * the project layers it may import; tests (x.test.ts) may also use test/support.
 */
const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

const allowed: Record<string, string[]> = {
  observe: [],
  // api throws the project's error kinds (ADR 0003); nothing else.
  api: ['observe'],
  storage: ['observe'],
  apiserver: ['api', 'storage', 'observe'],
  client: ['api', 'observe'],
  controllers: ['client', 'api', 'observe'],
  scheduler: ['client', 'api', 'observe'],
  kubelet: ['client', 'api', 'observe', 'sandbox'],
  network: ['client', 'api', 'observe'],
  provider: ['client', 'api', 'observe', 'sandbox'],
  sandbox: ['observe'],
  console: ['client', 'api', 'observe'],
  cli: ['*'],
};

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

function check(sources: { file: string; text: string }[]): string[] {
  const violations: string[] = [];
  for (const { file, text } of sources) {
    const rel = path.relative(src, file);
    const layer = rel.split(path.sep)[0];
    const rules = allowed[layer];
    if (!rules) {
      violations.push(`${rel}: folder ${layer} is not a layer of DESIGN §3`);
      continue;
    }
    for (const m of text.matchAll(/(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]/g)) {
      const target = path.relative(src, path.resolve(path.dirname(file), m[1]));
      if (target.startsWith('..')) {
        if (!file.endsWith('.test.ts')) violations.push(`${rel} imports ${m[1]} from outside src/`);
        continue;
      }
      const to = target.split(path.sep)[0];
      if (to === layer || rules.includes('*')) continue;
      if (!rules.includes(to)) violations.push(`${rel} imports ${target} (${layer} may not import ${to})`);
      // The kubelet and the provider reach host agents only through the Sandbox API (types and client), never their internals.
      if ((layer === 'kubelet' || layer === 'provider') && to === 'sandbox' && !target.startsWith(path.join('sandbox', 'api'))) {
        violations.push(`${rel} imports ${target}: ${layer} may use only sandbox/api`);
      }
      // The API server reaches storage through the Backend contract only; cli picks implementations.
      if (layer === 'apiserver' && to === 'storage' && !target.startsWith(path.join('storage', 'backend'))) {
        violations.push(`${rel} imports ${target}: apiserver may use only storage/backend`);
      }
    }
  }
  return violations;
}

test('imports follow the layering rules of DESIGN §3', () => {
  assert.deepEqual(check(files(src).map((file) => ({ file, text: readFileSync(file, 'utf8') }))), []);
});

test('the layering check catches wrong arrows', () => {
  const bad = [
    { file: path.join(src, 'controllers/x.ts'), text: "import { SqliteBackend } from '../storage/sqlite/sqlite-backend.js';" },
    { file: path.join(src, 'storage/y.ts'), text: "import type { KubeObject } from '../api/object.js';" },
    { file: path.join(src, 'apiserver/z.ts'), text: "import { EtcdBackend } from '../storage/etcd/etcd-backend.js';" },
    { file: path.join(src, 'sandbox/w.ts'), text: "export { Registry } from '../api/registry.js';" },
    { file: path.join(src, 'utils/v.ts'), text: '' },
    { file: path.join(src, 'kubelet/u.ts'), text: "import { RuncRuntime } from '../sandbox/runtimes/runc/runc-runtime.js';" },
  ];
  assert.equal(check(bad).length, 6);
});
