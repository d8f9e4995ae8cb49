import { type CelResult, isCelError, plan } from '@bufbuild/cel';
import type { FieldErrors } from '../field-errors.js';
import { deepEqual, isPlainObject } from '../object.js';
import type { OpenApiSchema } from '../openapi-schema.js';
import { type Bound, CostEstimator, childSchema, sizedSchema } from './cost.js';
import { type Expr, errorAt, knownFunction, type Parsed, parseRule, ruleEnv } from './environment.js';
import { escapeProperty, resourceRootSchema, toCel } from './values.js';

/**
 * CRD validation rules (`x-kubernetes-validations`), compiled when the CRD is written and
 * evaluated on every write of its objects, as upstream's apiextensions-apiserver does: `self` is
 * the value at the rule's schema node, `oldSelf` its value before an update (rules that use it,
 * transition rules, run only where there is one); errors read as upstream's; a rule whose
 * estimated cost is over budget is refused with the CRD.
 */

/** Upstream's budgets (k8s.io/apiserver/pkg/apis/cel): per rule, and for all rules of a schema, in cost units. */
export const costLimits = { rule: 10_000_000, schema: 100_000_000, perCall: 1_000_000, perObject: 10_000_000 };
/** What the estimates assume one object can hold at most: the API server's request limit. */
const maxRequestBytes = 3 * 1024 * 1024;
const maxMessageBytes = 5 * 1024;
const reasons = ['FieldValueInvalid', 'FieldValueForbidden', 'FieldValueRequired', 'FieldValueDuplicate'];
const typeNames = new Set(['int', 'uint', 'double', 'bool', 'string', 'bytes', 'list', 'map', 'null_type', 'type', 'dyn']);

interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: string;
  fieldPath?: string;
  optionalOldSelf?: boolean;
}

type Program = (ctx: Record<string, unknown>) => CelResult;

interface CompiledRule {
  rule: ValidationRule;
  program: Program;
  message?: Program;
  usesOldSelf: boolean;
  /** fieldPath as path segments below the rule's node (".a['b']" → ".a[b]"). */
  fieldPath: string;
  /** Its worst-case cost per evaluation, and the expressions to estimate again on an actual value. */
  cost: number;
  exprs: Expr[];
}

/** The rules of one schema node and the nodes below it that have rules. */
export interface RuleNode {
  schema: OpenApiSchema;
  root: boolean;
  rules: CompiledRule[];
  properties: Map<string, RuleNode>;
  items?: RuleNode;
  additional?: RuleNode;
}

const compiledCache = new WeakMap<OpenApiSchema, RuleNode | null>();

/**
 * The rules of a schema, compiled; undefined if it has none. With `errs`, every fault of every
 * rule is reported under `path` (the CRD's validation); without, a stored CRD's schema (already
 * validated) is compiled once and cached.
 */
export function compileRules(schema: OpenApiSchema, path = '', errs?: FieldErrors): RuleNode | undefined {
  if (!errs && compiledCache.has(schema)) return compiledCache.get(schema) ?? undefined;
  const ctx = { errs, estimator: new CostEstimator(maxRequestBytes), total: 0, expensive: [] as string[] };
  const node = compileNode(schema, path, true, 1, true, ctx);
  if (errs && ctx.total > costLimits.schema) {
    for (const p of ctx.expensive) errs.forbidden(p, 'contributed to estimated rule & messageExpression cost total exceeding cost limit for entire OpenAPIv3 schema');
    errs.forbidden(path, `x-kubernetes-validations estimated rule & messageExpression cost total for entire OpenAPIv3 schema exceeds budget by factor of ${factor(ctx.total, costLimits.schema)}`);
  }
  if (!errs) compiledCache.set(schema, node ?? null);
  return node;
}

interface CompileContext {
  errs?: FieldErrors;
  estimator: CostEstimator;
  total: number;
  expensive: string[];
}

function compileNode(s: OpenApiSchema, path: string, root: boolean, cardinality: number, correlatable: boolean, ctx: CompileContext): RuleNode | undefined {
  const node: RuleNode = { schema: s, root, rules: [], properties: new Map() };
  const list = s['x-kubernetes-validations'];
  if (Array.isArray(list)) {
    list.forEach((r, i) => {
      const compiled = compileRule(r as ValidationRule, root ? resourceRootSchema(s) : s, `${path}.x-kubernetes-validations[${i}]`, cardinality, correlatable, ctx);
      if (compiled) node.rules.push(compiled);
    });
  }
  for (const [k, sub] of Object.entries(s.properties ?? {})) {
    const n = compileNode(sub, `${path}.properties[${k}]`, sub['x-kubernetes-embedded-resource'] === true, cardinality, correlatable, ctx);
    if (n) node.properties.set(k, n);
  }
  const size = (x: OpenApiSchema) => Math.min(1e15, cardinality * ctx.estimator.maxSize(x));
  if (s.items) node.items = compileNode(s.items, `${path}.items`, s.items['x-kubernetes-embedded-resource'] === true, size(s), correlatable && s['x-kubernetes-list-type'] === 'map', ctx);
  const ap = s.additionalProperties;
  if (typeof ap === 'object') node.additional = compileNode(ap, `${path}.additionalProperties`, ap['x-kubernetes-embedded-resource'] === true, size(s), correlatable && s['x-kubernetes-map-type'] !== 'atomic', ctx);
  return node.rules.length || node.properties.size || node.items || node.additional ? node : undefined;
}

function compileRule(r: ValidationRule, s: OpenApiSchema, path: string, cardinality: number, correlatable: boolean, ctx: CompileContext): CompiledRule | undefined {
  const errs = ctx.errs;
  if (!isPlainObject(r)) {
    errs?.invalid(path, r, 'must be a validation rule');
    return undefined;
  }
  let ok = true;
  const fail = (f: () => void) => {
    ok = false;
    f();
  };
  if (typeof r.rule !== 'string' || !r.rule.trim()) fail(() => errs?.required(`${path}.rule`, 'rule is not specified'));
  if (r.message !== undefined && (typeof r.message !== 'string' || /[\r\n]/.test(r.message))) fail(() => errs?.invalid(`${path}.message`, r.message, 'message must not contain line breaks'));
  if (r.message !== undefined && typeof r.message === 'string' && !r.message.trim()) fail(() => errs?.required(`${path}.message`, 'message must be non-empty if specified'));
  if (r.reason !== undefined && !reasons.includes(String(r.reason))) fail(() => errs?.notSupported(`${path}.reason`, r.reason, reasons));
  // CEL's optional types are not in the evaluator we use: refused rather than evaluated wrongly.
  if (r.optionalOldSelf === true) fail(() => errs?.forbidden(`${path}.optionalOldSelf`, 'optionalOldSelf is not supported by this server'));
  let fieldPath = '';
  if (r.fieldPath !== undefined) {
    const fp = typeof r.fieldPath === 'string' ? normalizeFieldPath(r.fieldPath, s) : undefined;
    if (fp === undefined) fail(() => errs?.invalid(`${path}.fieldPath`, r.fieldPath, 'fieldPath must be a valid path: does not refer to a valid field'));
    else fieldPath = fp;
  }
  if (!ok || typeof r.rule !== 'string') return undefined;
  const check = (source: string, field: string): { parsed: Parsed; usesOldSelf: boolean; cost: number } | undefined => {
    let parsed: Parsed;
    try {
      parsed = parseRule(source);
    } catch (err) {
      errs?.add('FieldValueInvalid', `${path}.${field}`, `Invalid value: ${describeRule(r)}: compilation failed: ${(err as Error).message}`);
      return undefined;
    }
    const problems: string[] = [];
    const uses = { oldSelf: false };
    walk(parsed.expr, new Map([['self', s], ['oldSelf', s]]), parsed, source, problems, uses);
    if (problems.length) {
      errs?.add('FieldValueInvalid', `${path}.${field}`, `Invalid value: ${describeRule(r)}: compilation failed: ${problems.join('\n')}`);
      return undefined;
    }
    const bound: Bound = { cost: 0, size: ctx.estimator.maxSize(s), schema: s };
    const cost = ctx.estimator.estimate(parsed.expr, new Map([['self', bound], ['oldSelf', bound]])).cost;
    return { parsed, usesOldSelf: uses.oldSelf, cost };
  };
  const main = check(r.rule, 'rule');
  const message = r.messageExpression !== undefined ? check(String(r.messageExpression), 'messageExpression') : undefined;
  if (!main || (r.messageExpression !== undefined && !message)) return undefined;
  if (main.usesOldSelf && !correlatable) {
    errs?.invalid(`${path}.rule`, r.rule, 'oldSelf cannot be used on the uncorrelatable portion of the schema within an atomic list, a set, or an atomic map');
    return undefined;
  }
  const cost = Math.min(1e18, (main.cost + (message?.cost ?? 0)) * cardinality);
  if (cost > costLimits.rule) {
    errs?.forbidden(`${path}.rule`, `estimated rule cost exceeds budget by factor of ${factor(cost, costLimits.rule)} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)`);
    if (errs) return undefined;
  }
  ctx.total += cost;
  if (cost > costLimits.schema / 100) ctx.expensive.push(`${path}.rule`);
  return {
    rule: r,
    program: plan(ruleEnv, main.parsed) as Program,
    message: message && (plan(ruleEnv, message.parsed) as Program),
    usesOldSelf: main.usesOldSelf,
    fieldPath,
    cost: main.cost + (message?.cost ?? 0),
    exprs: [main.parsed.expr, ...(message ? [message.parsed.expr] : [])],
  };
}

const factor = (cost: number, limit: number) => (cost / limit > 100 ? 'more than 100x' : `${(cost / limit).toFixed(1)}x`);

/** How upstream prints the rule in a compile error: Go's rendering of its ValidationRule. */
function describeRule(r: ValidationRule): string {
  const q = (v: unknown) => JSON.stringify(v ?? '');
  return `apiextensions.ValidationRule{Rule:${q(r.rule)}, Message:${q(r.message)}, MessageExpression:${q(r.messageExpression)}, FieldPath:${q(r.fieldPath)}}`;
}

/**
 * The static checks cel-go's type checker makes that matter most to a CRD author: every name is
 * declared, every function exists, and a field selected from a value whose schema lists its
 * properties is one of them.
 */
function walk(e: Expr, scope: Map<string, OpenApiSchema | undefined>, parsed: Parsed, source: string, problems: string[], uses: { oldSelf: boolean }): OpenApiSchema | undefined {
  const k = e.exprKind;
  const at = (msg: string) => problems.push(errorAt(parsed, source, e.id, msg));
  switch (k.case) {
    case 'identExpr': {
      const name = k.value.name;
      if (name === 'oldSelf') uses.oldSelf = true;
      if (!scope.has(name) && !typeNames.has(name)) at(`undeclared reference to '${name}' (in container '')`);
      return scope.get(name);
    }
    case 'selectExpr': {
      const s = k.value.operand ? walk(k.value.operand, scope, parsed, source, problems, uses) : undefined;
      if (s?.properties && !s.additionalProperties && !s['x-kubernetes-preserve-unknown-fields']) {
        const known = Object.keys(s.properties).some((p) => escapeProperty(p) === k.value.field);
        if (!known) at(`undefined field '${k.value.field}'`);
      }
      return childSchema(s, k.value.field);
    }
    case 'callExpr': {
      if (!knownFunction(k.value.function)) at(`undeclared reference to '${k.value.function}' (in container '')`);
      if (k.value.target) walk(k.value.target, scope, parsed, source, problems, uses);
      for (const a of k.value.args) walk(a, scope, parsed, source, problems, uses);
      return undefined;
    }
    case 'listExpr':
      for (const x of k.value.elements) walk(x, scope, parsed, source, problems, uses);
      return undefined;
    case 'structExpr':
      for (const x of k.value.entries) {
        if (x.keyKind.case === 'mapKey') walk(x.keyKind.value, scope, parsed, source, problems, uses);
        if (x.value) walk(x.value, scope, parsed, source, problems, uses);
      }
      return undefined;
    case 'comprehensionExpr': {
      const c = k.value;
      const range = c.iterRange ? walk(c.iterRange, scope, parsed, source, problems, uses) : undefined;
      if (c.accuInit) walk(c.accuInit, scope, parsed, source, problems, uses);
      const inner = new Map(scope);
      inner.set(c.iterVar, range?.type === 'array' ? range.items : range?.type === 'object' ? { type: 'string' } : undefined);
      if (c.iterVar2) inner.set(c.iterVar2, undefined);
      inner.set(c.accuVar, undefined);
      for (const x of [c.loopCondition, c.loopStep, c.result]) if (x) walk(x, inner, parsed, source, problems, uses);
      return undefined;
    }
    default:
      return undefined;
  }
}

/**
 * A rule's fieldPath (".a.b", ".a['b.c']", ".m['key']") checked against the schema, as path
 * segments to append to the node's path; undefined if it does not name a field there.
 */
function normalizeFieldPath(fp: string, s: OpenApiSchema): string | undefined {
  let cur: OpenApiSchema | undefined = s;
  let out = '';
  const re = /\.([^.[\]]+)|\['((?:[^'\\]|\\.)*)'\]/y;
  let i = 0;
  if (!fp) return undefined;
  while (i < fp.length) {
    re.lastIndex = i;
    const m = re.exec(fp);
    if (!m || !cur) return undefined;
    i = re.lastIndex;
    const name = m[1] ?? m[2].replace(/\\(.)/g, '$1');
    if (cur.properties) {
      cur = cur.properties[name];
      if (!cur) return undefined;
      out += m[1] !== undefined ? `.${name}` : `[${name}]`;
    } else if (typeof cur.additionalProperties === 'object') {
      cur = cur.additionalProperties;
      out += `[${name}]`;
    } else return undefined;
  }
  return out;
}

/**
 * Evaluates the rules under `node` on `obj` (and `old`, on an update), adding upstream's field
 * errors to `errs`. Ratcheting as upstream: a rule that does not use oldSelf is not held against a
 * value the update leaves as it was.
 */
export function evaluateRules(node: RuleNode, obj: unknown, old: unknown, errs: FieldErrors): void {
  evaluateNode(node, obj, old, '', { errs, budget: costLimits.perObject, estimator: new CostEstimator(maxRequestBytes) });
}

/**
 * One object's evaluation: its errors, and what is left of its cost budget. cel-es counts no
 * cost as it runs, so each rule is charged before it runs: its worst-case estimate, or where that
 * is over a limit, its estimate on the value at hand. A rule over the per-call limit, or past the
 * object's budget, is not run at all.
 */
interface Evaluation {
  errs: FieldErrors;
  budget: number;
  estimator: CostEstimator;
}

const join = (path: string, name: string) => (path ? `${path}.${name}` : name);

/** Values already converted for CEL by an enclosing node with rules: its children are taken from them rather than converted again. */
interface Converted {
  self?: unknown;
  old?: unknown;
}

function evaluateNode(node: RuleNode, v: unknown, old: unknown, path: string, ev: Evaluation, cel: Converted = {}): void {
  if (v === null || v === undefined || ev.budget < 0) return;
  let self = cel.self;
  let oldSelf = cel.old;
  if (node.rules.length) {
    self ??= toCel(node.schema, v, node.root);
    if (old !== undefined && old !== null) oldSelf ??= toCel(node.schema, old, node.root);
    let unchanged: boolean | undefined;
    const type = node.schema.type ?? '';
    for (const r of node.rules) {
      if (r.usesOldSelf ? oldSelf === undefined : (unchanged ??= old !== undefined && deepEqual(v, old))) continue;
      // The worst case bounds the actual cost: only when it is over a limit is the value at hand measured.
      const cost = r.cost > costLimits.perCall || r.cost > ev.budget ? actualCost(r, node, v, old, ev.estimator) : r.cost;
      const text = r.rule.message?.trim() || r.rule.rule.trim();
      if (cost > costLimits.perCall) {
        ev.errs.invalid(path || '<nil>', type, `'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: ${text}`);
        ev.budget = -1;
        return;
      }
      ev.budget -= cost;
      if (ev.budget < 0) {
        ev.errs.invalid(path || '<nil>', type, 'validation failed due to running out of cost budget, no further validation rules will be run');
        return;
      }
      evaluateRule(r, type, { self, ...(oldSelf !== undefined ? { oldSelf } : {}) }, path, ev.errs);
    }
  }
  const from = (m: unknown, k: string | undefined) => (m instanceof Map && k !== undefined ? m.get(k) : undefined);
  if (isPlainObject(v)) {
    const before = isPlainObject(old) ? old : undefined;
    for (const [k, sub] of node.properties) {
      const name = escapeProperty(k);
      evaluateNode(sub, v[k], before?.[k], join(path, k), ev, { self: from(self, name), old: from(oldSelf, name) });
    }
    if (node.additional) {
      const atomic = node.schema['x-kubernetes-map-type'] === 'atomic';
      for (const [k, x] of Object.entries(v)) {
        if (!node.schema.properties?.[k]) evaluateNode(node.additional, x, atomic ? undefined : before?.[k], `${path}[${k}]`, ev, { self: from(self, k), old: atomic ? undefined : from(oldSelf, k) });
      }
    }
  } else if (Array.isArray(v) && node.items) {
    const keys = node.schema['x-kubernetes-list-type'] === 'map' ? ((node.schema['x-kubernetes-list-map-keys'] as string[] | undefined) ?? []) : undefined;
    const olds = keys && Array.isArray(old) ? old : [];
    const keyOf = (x: unknown) => JSON.stringify(keys?.map((k) => (isPlainObject(x) ? x[k] : undefined)));
    const byKey = new Map(olds.map((x) => [keyOf(x), x]));
    const items = Array.isArray(self) ? self : undefined;
    for (const [i, x] of v.entries()) evaluateNode(node.items as RuleNode, x, keys ? byKey.get(keyOf(x)) : undefined, `${path}[${i}]`, ev, { self: items?.[i] });
  }
}

/** A rule's cost estimated on this value (and its old value) rather than on the worst its schema allows. */
function actualCost(r: CompiledRule, node: RuleNode, v: unknown, old: unknown, estimator: CostEstimator): number {
  const schema = node.root ? resourceRootSchema(node.schema) : node.schema;
  const self: Bound = { cost: 0, size: 0, schema: sizedSchema(schema, v) };
  self.size = estimator.maxSize(self.schema);
  const before: Bound = old === undefined ? self : { cost: 0, size: 0, schema: sizedSchema(schema, old) };
  before.size = estimator.maxSize(before.schema);
  const scope = new Map([['self', self], ['oldSelf', before]]);
  return r.exprs.reduce((n, e) => n + estimator.estimate(e, scope).cost, 0);
}

function evaluateRule(r: CompiledRule, type: string, ctx: Record<string, unknown>, path: string, errs: FieldErrors): void {
  const at = path || '<nil>';
  const text = r.rule.message?.trim() || r.rule.rule.trim();
  let result: CelResult;
  try {
    result = r.program(ctx);
  } catch (err) {
    result = err as CelResult;
  }
  if (isCelError(result) || result instanceof Error) {
    errs.invalid(at, type, `${celMessage((result as Error).message)} evaluating rule: ${text}`);
    return;
  }
  if (result === true) return;
  if (typeof result !== 'boolean') {
    errs.invalid(at, type, `rule did not evaluate to a bool evaluating rule: ${text}`);
    return;
  }
  const target = r.fieldPath ? (path ? path + r.fieldPath : r.fieldPath.replace(/^\./, '')) : at;
  const detail = messageOf(r, ctx) ?? (r.rule.message?.trim() || `failed rule: ${r.rule.rule.trim()}`);
  if (r.rule.reason === 'FieldValueForbidden') errs.forbidden(target, detail);
  else if (r.rule.reason === 'FieldValueRequired') errs.required(target, detail);
  else if (r.rule.reason === 'FieldValueDuplicate') errs.duplicate(target, type);
  else errs.invalid(target, type, detail);
}

/** A messageExpression's message, if it gives a usable one (upstream falls back to message otherwise). */
function messageOf(r: CompiledRule, ctx: Record<string, unknown>): string | undefined {
  if (!r.message) return undefined;
  let out: unknown;
  try {
    out = r.message(ctx);
  } catch {
    return undefined;
  }
  if (typeof out !== 'string') return undefined;
  const msg = out.trim();
  if (!msg || /\n/.test(msg) || Buffer.byteLength(msg) > maxMessageBytes) return undefined;
  return msg;
}

/** cel-es's runtime errors in cel-go's words, where the two differ. */
function celMessage(msg: string): string {
  const missing = /^field not found: (.*)$/.exec(msg);
  if (missing) return `no such key: ${missing[1]}`;
  return msg.replace(/^found no matching overload for/, 'no such overload:');
}
