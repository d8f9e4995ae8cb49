import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { isPlainObject } from '../api/object.js';
import { KubicleError } from '../observe/errors.js';
import { decodeKubernetesProtobuf, protobufMediaType } from './protobuf/decode.js';

/** Request bodies: bounded reading and decoding of JSON and YAML. */

const load = createRequire(import.meta.url);
let yamlLib: typeof Yaml | undefined;
/** yaml on the first YAML body, not at start: loading it costs a control plane's wake ~30 ms. */
const yaml = (): typeof Yaml => (yamlLib ??= load('yaml') as typeof Yaml);

export const maxBodyBytes = 3 * 1024 * 1024;

export async function readBody(req: IncomingMessage, limit = maxBodyBytes): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw new KubicleError('TooLarge', 'Request entity too large: limit is 3145728');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      req.resume();
      throw new KubicleError('TooLarge', 'Request entity too large: limit is 3145728');
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function mediaType(req: IncomingMessage): string {
  return String(req.headers['content-type'] ?? 'application/json')
    .split(';')[0]
    .trim()
    .toLowerCase();
}

/** Decodes a JSON (or, for YAML media types, YAML) document. Duplicate JSON keys are reported for strict validation. */
/**
 * Nesting deeper than this is refused when a body is decoded. Real objects nest a few dozen
 * levels; the server's own walks (validation, pruning, copies) recurse, so a hostile body of
 * thousands of levels must stop here rather than exhaust the stack later.
 */
export const maxNesting = 256;

function checkNesting(doc: unknown): void {
  const stack: [unknown, number][] = [[doc, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== 'object') continue;
    if (depth > maxNesting) throw new KubicleError('BadRequest', `the object is nested too deeply: more than ${maxNesting} levels`);
    for (const x of Array.isArray(v) ? v : Object.values(v)) if (x !== null && typeof x === 'object') stack.push([x, depth + 1]);
  }
}

export function decodeDocument(raw: Buffer, type: string): unknown {
  const doc = parseDocument(raw, type);
  checkNesting(doc);
  return doc;
}

function parseDocument(raw: Buffer, type: string): unknown {
  if (type === protobufMediaType) return decodeKubernetesProtobuf(raw);
  const text = raw.toString('utf8');
  if (!text.trim()) throw new KubicleError('BadRequest', 'the body of the request was empty');
  if (type.includes('yaml')) {
    try {
      return yaml().parse(text, { uniqueKeys: true });
    } catch (e) {
      throw new KubicleError('BadRequest', `error converting YAML to JSON: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new KubicleError('BadRequest', `couldn't get version/kind; json parse error: ${(e as Error).message}`);
  }
}

export function decodeObject(raw: Buffer, type: string): Record<string, unknown> {
  const doc = decodeDocument(raw, type);
  if (!isPlainObject(doc)) throw new KubicleError('BadRequest', `Object 'Kind' is missing in '${JSON.stringify(doc).slice(0, 200)}'`);
  return doc;
}

/** Keys that appear twice in one JSON object, as "path.key" (strict field validation reports them). */
export function duplicateJsonKeys(text: string): string[] {
  const dups: string[] = [];
  const stack: { keys: Set<string>; path: string; isObj: boolean; lastKey?: string }[] = [];
  let i = 0;
  const n = text.length;
  let expectKey = false;
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const s = JSON.parse(text.slice(i, j + 1)) as string;
      const top = stack[stack.length - 1];
      if (top?.isObj && expectKey) {
        if (top.keys.has(s)) dups.push(top.path ? `${top.path}.${s}` : s);
        top.keys.add(s);
        top.lastKey = s;
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '[') {
      const parent = stack[stack.length - 1];
      const path = parent ? (parent.isObj ? (parent.path ? `${parent.path}.${parent.lastKey}` : (parent.lastKey ?? '')) : parent.path) : '';
      stack.push({ keys: new Set(), path, isObj: c === '{' });
      expectKey = c === '{';
    } else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') expectKey = !!stack[stack.length - 1]?.isObj;
    i++;
  }
  return dups;
}
