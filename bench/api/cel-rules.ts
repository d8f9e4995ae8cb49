import { compileRules, evaluateRules, type RuleNode } from '../../src/api/cel/rules.js';
import { FieldErrors } from '../../src/api/field-errors.js';
import type { OpenApiSchema } from '../../src/api/openapi-schema.js';
import { validateObject } from '../../src/api/structural-schema.js';
import { f1, summary } from './stats.js';

/**
 * bench/api cel-rules (issue 3): what CRD validation rules add to validating one custom object,
 * beside the floor measured in the same run: the same object validated by its structural schema
 * alone. The CRD is a typical operator's: cross-field and transition rules on spec, a regex on a
 * string, a rule on each of 50 list items and one over the whole list. Also: compiling the rules
 * (what a CRD write costs). In-process: no HTTP, so the figures are the evaluator's own.
 */
const N = Number(process.env.BENCH_N ?? 2000);

const schema: OpenApiSchema = {
  type: 'object',
  properties: {
    spec: {
      type: 'object',
      'x-kubernetes-validations': [
        { rule: 'self.minReplicas <= self.replicas', message: 'replicas should be at least minReplicas' },
        { rule: 'self.replicas >= oldSelf.replicas', message: 'replicas may not shrink' },
        { rule: "self.tier == oldSelf.tier || oldSelf.tier == 'bronze'", message: 'tier is immutable' },
      ],
      properties: {
        replicas: { type: 'integer' },
        minReplicas: { type: 'integer' },
        tier: { type: 'string', maxLength: 16, 'x-kubernetes-validations': [{ rule: "self.matches('^[a-z]+$')" }] },
        ports: {
          type: 'array',
          maxItems: 64,
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['name'],
          'x-kubernetes-validations': [{ rule: 'self.map(p, p.port).isSorted()', message: 'ports must be sorted' }],
          items: {
            type: 'object',
            properties: { name: { type: 'string', maxLength: 15 }, port: { type: 'integer' } },
            'x-kubernetes-validations': [{ rule: "self.port > 1024 || self.name.startsWith('legacy')" }],
          },
        },
      },
    },
  },
};

function time(fn: () => void): number[] {
  for (let i = 0; i < Math.min(200, N); i++) fn(); // warm up
  const out: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    fn();
    out.push(performance.now() - t);
  }
  return out;
}

const obj = { apiVersion: 'x/v1', kind: 'W', metadata: { name: 'w' }, spec: { replicas: 3, minReplicas: 1, tier: 'gold', ports: Array.from({ length: 50 }, (_, i) => ({ name: `p${i}`, port: 2000 + i })) } };
const old = { ...obj, spec: { ...obj.spec, replicas: 2 } };
const rules = compileRules(schema) as RuleNode;

const floor = summary(time(() => validateObject(schema, obj, new FieldErrors())));
const create = summary(
  time(() => {
    const errs = new FieldErrors();
    validateObject(schema, obj, errs);
    evaluateRules(rules, obj, undefined, errs);
  }),
);
const update = summary(
  time(() => {
    const errs = new FieldErrors();
    validateObject(schema, obj, errs);
    evaluateRules(rules, obj, old, errs);
  }),
);
const compile = summary(time(() => compileRules(schema, 'spec.versions[0].schema.openAPIV3Schema', new FieldErrors())));

const line = (what: string, s: { p50: number; p99: number }, ratio?: string) => console.log(`${what.padEnd(38)} p50 ${f1(s.p50 * 1000)} µs, p99 ${f1(s.p99 * 1000)} µs${ratio ? `  (${ratio})` : ''}`);
console.log(`bench/api cel-rules: one custom object with 7 rules (50 list items), ${N} runs each`);
line('floor: schema validation only', floor);
line('schema + rules, create', create, `${f1(create.p50 / floor.p50)}x floor`);
line('schema + rules, update (transition)', update, `${f1(update.p50 / floor.p50)}x floor`);
line('compiling the rules (a CRD write)', compile);
