/**
 * Sets of field paths, held in the form managedFields store them (FieldsV1): a trie whose keys
 * are path elements — `f:<field>`, `k:<json of key fields>` (an item of a keyed list),
 * `v:<json value>` (an item of a set), `i:<index>` — and whose nodes are members of the set when
 * they are empty (a leaf) or carry the key `.` (a node owned itself and below).
 *
 * Sets are values: no function here changes its arguments.
 */
export type FieldSet = { [element: string]: FieldSet };

const SELF = '.';

export function isMember(node: FieldSet): boolean {
  for (const k in node) if (k === SELF) return true;
  return isEmpty(node);
}

export function isEmpty(node: FieldSet): boolean {
  for (const _ in node) return false;
  return true;
}

/** Children of a node, without its own-membership mark. */
function children(node: FieldSet): [string, FieldSet][] {
  return Object.entries(node).filter(([k]) => k !== SELF);
}

/** A node from its membership and children; undefined when it is neither (nothing to keep). */
function build(member: boolean, kids: [string, FieldSet][]): FieldSet | undefined {
  if (!kids.length) return member ? {} : undefined;
  const out: FieldSet = {};
  if (member) out[SELF] = {};
  for (const [k, v] of kids) out[k] = v;
  return out;
}

/** The set with its elements in upstream's order: `.` first, then fields, keys, values, indices. */
export function sorted(s: FieldSet): FieldSet {
  const rank = (k: string) => '.fkvi'.indexOf(k[0]);
  const out: FieldSet = {};
  for (const k of Object.keys(s).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))) out[k] = sorted(s[k]);
  return out;
}

// The root of a set is never a member itself: an empty root is the empty set, not a leaf.

export function union(a: FieldSet | undefined, b: FieldSet | undefined): FieldSet | undefined {
  return unionAt(a, b, true);
}

function unionAt(a: FieldSet | undefined, b: FieldSet | undefined, root: boolean): FieldSet | undefined {
  if (!a) return b;
  if (!b) return a;
  const kids = new Map(children(a));
  for (const [k, v] of children(b)) kids.set(k, unionAt(kids.get(k), v, false) as FieldSet);
  return build(!root && (isMember(a) || isMember(b)), [...kids]);
}

/** Members of `a` that are not members of `b`. */
export function difference(a: FieldSet | undefined, b: FieldSet | undefined): FieldSet | undefined {
  return differenceAt(a, b, true);
}

function differenceAt(a: FieldSet | undefined, b: FieldSet | undefined, root: boolean): FieldSet | undefined {
  if (!a || !b) return a;
  const kids: [string, FieldSet][] = [];
  for (const [k, v] of children(a)) {
    const d = b[k] ? differenceAt(v, b[k], false) : v;
    if (d) kids.push([k, d]);
  }
  return build(!root && isMember(a) && !isMember(b), kids);
}

export function intersection(a: FieldSet | undefined, b: FieldSet | undefined): FieldSet | undefined {
  return intersectionAt(a, b, true);
}

function intersectionAt(a: FieldSet | undefined, b: FieldSet | undefined, root: boolean): FieldSet | undefined {
  if (!a || !b) return undefined;
  const kids: [string, FieldSet][] = [];
  for (const [k, v] of children(a)) {
    const i = b[k] ? intersectionAt(v, b[k], false) : undefined;
    if (i) kids.push([k, i]);
  }
  return build(!root && isMember(a) && isMember(b), kids);
}

/** The member paths, each as its elements from the root. */
export function members(set: FieldSet | undefined, prefix: string[] = [], out: string[][] = []): string[][] {
  if (!set) return out;
  if (prefix.length && isMember(set)) out.push(prefix);
  for (const [k, v] of children(set)) members(v, [...prefix, k], out);
  return out;
}

/** A path as upstream prints it in conflicts: .spec.containers[name="app"].image, .metadata.finalizers[="x"]. */
export function formatPath(path: string[]): string {
  return path
    .map((el) => {
      const body = el.slice(2);
      switch (el[0]) {
        case 'f':
          return `.${body}`;
        case 'k': {
          const key = JSON.parse(body) as Record<string, unknown>;
          return `[${Object.entries(key)
            .map(([n, v]) => `${n}=${JSON.stringify(v)}`)
            .join(',')}]`;
        }
        case 'v':
          return `[=${body}]`;
        default:
          return `[${body}]`;
      }
    })
    .join('');
}

/** Checks that a decoded FieldsV1 value has the trie's shape; false for anything else. */
export function isFieldSet(v: unknown, depth = 0): v is FieldSet {
  if (depth > 200 || typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  for (const [k, c] of Object.entries(v)) {
    if (k !== SELF && !/^[fkvi]:/.test(k)) return false;
    if (!isFieldSet(c, depth + 1)) return false;
  }
  return true;
}
