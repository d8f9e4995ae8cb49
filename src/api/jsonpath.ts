/**
 * The "simple JSON path" of CRD printer columns (`.spec.replicas`, `.status.conditions[0].type`,
 * `.metadata.labels['app.kubernetes.io/name']`, `[*]`, and `[?(@.type=="Ready")]` filters), as
 * kubectl's JSONPath reads it. parseJsonPath throws on anything else, so a CRD with a path
 * this cannot read is refused when written rather than printing blanks later.
 */
export type Step = { key: string } | { index: number } | { all: true } | { filter: { path: string[]; value: string } };

export function parseJsonPath(path: string): Step[] {
  const src = path.trim().replace(/^\{(.*)\}$/, '$1');
  if (!src.startsWith('.') && !src.startsWith('[')) throw new Error(`must start with "." or "["`);
  const steps: Step[] = [];
  let i = 0;
  while (i < src.length) {
    if (src[i] === '.') {
      const m = /^\.([A-Za-z0-9_$-]+)/.exec(src.slice(i));
      if (!m) throw new Error(`unexpected ${JSON.stringify(src.slice(i, i + 10))} at ${i}`);
      steps.push({ key: m[1] });
      i += m[0].length;
    } else if (src[i] === '[') {
      const rest = src.slice(i);
      let m: RegExpExecArray | null;
      if ((m = /^\[(\d+)\]/.exec(rest))) steps.push({ index: Number(m[1]) });
      else if ((m = /^\[\*\]/.exec(rest))) steps.push({ all: true });
      else if ((m = /^\['([^']*)'\]/.exec(rest)) || (m = /^\["([^"]*)"\]/.exec(rest))) steps.push({ key: m[1] });
      else if ((m = /^\[\?\(@((?:\.[A-Za-z0-9_-]+)+)\s*==\s*(?:"([^"]*)"|'([^']*)')\)\]/.exec(rest))) {
        steps.push({ filter: { path: m[1].slice(1).split('.'), value: m[2] ?? m[3] } });
      } else throw new Error(`unexpected ${JSON.stringify(rest.slice(0, 10))} at ${i}`);
      i += m[0].length;
    } else throw new Error(`unexpected ${JSON.stringify(src[i])} at ${i}`);
  }
  return steps;
}

/** Every value the path reaches in `obj`, in order; missing keys reach nothing. */
export function evaluateJsonPath(steps: Step[], obj: unknown): unknown[] {
  let cur: unknown[] = [obj];
  for (const s of steps) {
    const next: unknown[] = [];
    for (const v of cur) {
      if (v === null || typeof v !== 'object') continue;
      if ('key' in s) {
        if (!Array.isArray(v) && (v as Record<string, unknown>)[s.key] !== undefined) next.push((v as Record<string, unknown>)[s.key]);
      } else if ('index' in s) {
        if (Array.isArray(v) && s.index < v.length) next.push(v[s.index]);
      } else if ('all' in s) next.push(...(Array.isArray(v) ? v : Object.values(v)));
      else if (Array.isArray(v)) {
        for (const item of v) {
          let x: unknown = item;
          for (const k of s.filter.path) x = x && typeof x === 'object' ? (x as Record<string, unknown>)[k] : undefined;
          if (x !== undefined && String(x) === s.filter.value) next.push(item);
        }
      }
    }
    cur = next;
  }
  return cur;
}
