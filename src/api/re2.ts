import { createRequire } from 'node:module';
import type { RE2JS } from 're2js';

/**
 * RE2 regular expressions (linear time, Go's regexp syntax, as upstream's), compiled once per
 * pattern: CRD schema patterns and CEL rules' regexes. re2js loads with the first pattern, not at
 * every control plane's start. Throws on a pattern RE2 does not accept.
 */
const load = createRequire(import.meta.url);
let engine: typeof RE2JS | undefined;
const patterns = new Map<string, RE2JS>();

export function re2(pattern: string): RE2JS {
  let re = patterns.get(pattern);
  if (!re) {
    engine ??= (load('re2js') as { RE2JS: typeof RE2JS }).RE2JS;
    re = engine.compile(pattern);
    if (patterns.size > 10_000) patterns.clear();
    patterns.set(pattern, re);
  }
  return re;
}
