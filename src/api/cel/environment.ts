import { type CelEnv, type CelFunc, CelScalar, celEnv, celMethod, isCelList, listType, parse } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { re2 } from '../re2.js';

/**
 * The CEL environment of CRD validation rules: CEL's standard library, the strings extension, and
 * Kubernetes' lists and regex libraries. Regular expressions are RE2 (linear time, as upstream's
 * Go regexp): a tenant's pattern cannot make the API server backtrack.
 */

type Sortable = bigint | number | string;
const items = (l: unknown): unknown[] => (isCelList(l) ? [...l] : []);
function compare(a: Sortable, b: Sortable): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Kubernetes' lists library (isSorted, sum, min, max, indexOf, lastIndexOf) and regex library (find, findAll). */
const kubernetesLibrary: CelFunc[] = [
  celMethod('isSorted', listType(CelScalar.DYN), [], CelScalar.BOOL, function () {
    const xs = items(this) as Sortable[];
    return xs.every((x, i) => i === 0 || compare(xs[i - 1], x) <= 0);
  }),
  celMethod('sum', listType(CelScalar.DYN), [], CelScalar.DYN, function () {
    const xs = items(this) as (bigint | number)[];
    if (xs.length === 0) return 0n;
    return xs.reduce((a, b) => (typeof a === 'bigint' && typeof b === 'bigint' ? a + b : Number(a) + Number(b)));
  }),
  ...(['min', 'max'] as const).map((name) =>
    celMethod(name, listType(CelScalar.DYN), [], CelScalar.DYN, function () {
      const xs = items(this) as Sortable[];
      if (xs.length === 0) throw new Error(`${name} called on empty list`);
      return xs.reduce((a, b) => ((name === 'min' ? compare(b, a) < 0 : compare(b, a) > 0) ? b : a));
    }),
  ),
  celMethod('indexOf', listType(CelScalar.DYN), [CelScalar.DYN], CelScalar.INT, function (x) {
    return BigInt(items(this).indexOf(x));
  }),
  celMethod('lastIndexOf', listType(CelScalar.DYN), [CelScalar.DYN], CelScalar.INT, function (x) {
    return BigInt(items(this).lastIndexOf(x));
  }),
  celMethod('find', CelScalar.STRING, [CelScalar.STRING], CelScalar.STRING, function (pattern) {
    const m = re2(pattern).matcher(this);
    return m.find() ? (m.group() ?? '') : '';
  }),
  ...[[CelScalar.STRING], [CelScalar.STRING, CelScalar.INT]].map((args) =>
    celMethod('findAll', CelScalar.STRING, args as [typeof CelScalar.STRING], listType(CelScalar.STRING), function (pattern, limit?: bigint) {
      const max = limit === undefined || limit < 0n ? Number.POSITIVE_INFINITY : Number(limit);
      const out: string[] = [];
      const m = re2(pattern).matcher(this);
      while (out.length < max && m.find()) out.push(m.group() ?? '');
      return out;
    }),
  ),
];

/** The environment: `self` and `oldSelf` are dynamic, typed by the schema through their values. */
export const ruleEnv: CelEnv = celEnv({
  variables: { self: CelScalar.DYN, oldSelf: CelScalar.DYN },
  funcs: [...strings, ...kubernetesLibrary],
  re2: { compile: (p: string) => ({ test: (s: string) => re2(p).matcher(s).find() }) },
});

/** Whether a function or method of this name exists (std, extensions, Kubernetes' libraries or an operator). */
export function knownFunction(name: string): boolean {
  // Operators (`_&&_`, `_?_:_`, `@in`, the macros' `@not_strictly_false`) come only from the parser.
  return /^[_@]/.test(name) || ruleEnv.funcs.find(name) !== undefined;
}

export type Parsed = ReturnType<typeof parse>;
export type Expr = Parsed['expr'];

/** Parses a rule; throws with cel-go's wording ("ERROR: <input>:1:5: …" and the place marked) on a syntax error. */
export function parseRule(source: string): Parsed {
  try {
    return parse(source);
  } catch (err) {
    const msg = (err as Error).message;
    const at = /^<input>:(\d+):(\d+): ([\s\S]*)$/.exec(msg);
    throw new Error(at ? located(source, Number(at[1]), Number(at[2]), at[3]) : `ERROR: <input>: ${msg}`);
  }
}

/** A compile error at the source offset of an expression node (its `id` in the parse's positions). */
export function errorAt(parsed: Parsed, source: string, id: bigint, message: string): string {
  const offset = parsed.sourceInfo?.positions[String(id)] ?? 0;
  const before = source.slice(0, offset).split('\n');
  return located(source, before.length, (before.at(-1)?.length ?? 0) + 1, message);
}

/** cel-go's error shape: the message, then the source line with a caret under the column. */
export function located(source: string, line: number, column: number, message: string): string {
  const text = source.split('\n')[line - 1] ?? '';
  return `ERROR: <input>:${line}:${column}: ${message}\n | ${text}\n | ${'.'.repeat(Math.max(0, column - 1))}^`;
}
