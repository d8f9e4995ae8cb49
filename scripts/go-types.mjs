// Reads the struct types a Go program carries for reflection out of its ELF binary, with
// every field's name, tag and type. Kubernetes' API types keep facts the published
// TypeScript packages dropped (patchStrategy/patchMergeKey, protobuf field numbers) in their
// struct tags, and kubectl registers every k8s.io/api type with its scheme, so a kubectl
// binary holds them all exactly as upstream compiled them (ADR 0021).
//
// What is read, and where it sits (Go 1.20–1.24, amd64; internal/abi):
//   .typelink   int32 offsets, from the start of the type data, of the types reflection
//               may look up; every other type is reached from them (elem, key, fields).
//   abi.Type    48 bytes: size, ptrdata, hash, tflag@20, align, fieldAlign, kind@23,
//               equal, gcdata, str@40 (name offset), ptrToThis. Kind-specific data follows:
//               pointer/slice/array elem@48; map key@48, elem@56; struct pkgPath@48 and
//               fields@56 (pointer, length), each field {name, type, offset} (24 bytes),
//               then, when tflag has Uncommon, the uncommon type whose first word is the
//               package path's name offset.
//   names       a flag byte (bit 1: has a tag, bit 3: embedded), a varint length, the bytes,
//               and if tagged a varint length and the tag.
// The binary must be a non-position-independent executable (as kubectl's releases are):
// pointers inside type data are then plain virtual addresses.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const KIND_ARRAY = 17;
const KIND_MAP = 21;
const KIND_POINTER = 22;
const KIND_SLICE = 23;
const KIND_STRUCT = 25;
const TFLAG_UNCOMMON = 1;
const TFLAG_EXTRA_STAR = 2;
const TFLAG_NAMED = 4;

/** internal/abi's Kind values, by number. */
const kindNames = [
  'invalid', 'bool', 'int', 'int8', 'int16', 'int32', 'int64', 'uint', 'uint8', 'uint16', 'uint32', 'uint64', 'uintptr',
  'float32', 'float64', 'complex64', 'complex128', 'array', 'chan', 'func', 'interface', 'map', 'pointer', 'slice', 'string',
  'struct', 'unsafe.Pointer',
];

function elfSections(buf) {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error('not a little-endian ELF64 binary');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  const secs = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    secs.push({ nameOff: buf.readUInt32LE(o), type: buf.readUInt32LE(o + 4), addr: Number(buf.readBigUInt64LE(o + 16)), off: Number(buf.readBigUInt64LE(o + 24)), size: Number(buf.readBigUInt64LE(o + 32)) });
  }
  const names = secs[shstrndx];
  for (const s of secs) {
    const start = names.off + s.nameOff;
    s.name = buf.toString('latin1', start, buf.indexOf(0, start));
  }
  return secs;
}

/**
 * Every struct type reachable from the binary's type links, as
 * { pkg, name, fields: [{ name, tag, embedded, type }] }, where a type is
 * { kind, name, pkg?, elem?, key?, fields? } and `name` is Go's spelling ("v1.Container", "[]v1.EnvVar").
 */
export function readGoStructs(binaryPath) {
  const buf = readFileSync(binaryPath);
  const secs = elfSections(buf);
  const sec = (n) => {
    const s = secs.find((x) => x.name === n);
    if (!s) throw new Error(`${binaryPath}: no ${n} section (not a Go binary?)`);
    return s;
  };
  const loaded = secs.filter((s) => s.addr && s.type !== 8 /* NOBITS */);
  const fileOffset = (addr) => {
    const s = loaded.find((x) => addr >= x.addr && addr < x.addr + x.size);
    if (!s) throw new Error(`address 0x${addr.toString(16)} is in no section of ${binaryPath}`);
    return s.off + (addr - s.addr);
  };
  // The linker places the type data (runtime.types) at the start of .rodata.
  const types = sec('.rodata').addr;
  const word = (addr) => Number(buf.readBigUInt64LE(fileOffset(addr)));
  const varint = (o) => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = buf[o++];
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (!(b & 0x80)) return [v, o];
    }
  };
  const readName = (addr) => {
    const o = fileOffset(addr);
    const flags = buf[o];
    const [n, p] = varint(o + 1);
    const name = buf.toString('utf8', p, p + n);
    let tag = '';
    if (flags & 2) {
      const [tn, q] = varint(p + n);
      tag = buf.toString('utf8', q, q + tn);
    }
    return { name, tag, embedded: Boolean(flags & 8) };
  };

  const seen = new Map();
  const typeAt = (addr) => {
    let t = seen.get(addr);
    if (t) return t;
    const o = fileOffset(addr);
    const tflag = buf[o + 20];
    const kind = buf[o + 23] & 0x1f;
    let name = readName(types + buf.readInt32LE(o + 40)).name;
    if (tflag & TFLAG_EXTRA_STAR) name = name.slice(1);
    t = { kind: kindNames[kind] ?? kind, name, named: Boolean(tflag & TFLAG_NAMED) };
    seen.set(addr, t);
    if (kind === KIND_POINTER || kind === KIND_SLICE || kind === KIND_ARRAY) t.elem = typeAt(word(addr + 48));
    else if (kind === KIND_MAP) {
      t.key = typeAt(word(addr + 48));
      t.elem = typeAt(word(addr + 56));
    } else if (kind === KIND_STRUCT) {
      const pkgName = word(addr + 48);
      t.pkg = pkgName ? readName(pkgName).name : '';
      if (tflag & TFLAG_UNCOMMON) t.pkg = readName(types + buf.readInt32LE(fileOffset(addr + 80))).name || t.pkg;
      const fields = word(addr + 56);
      const count = word(addr + 64);
      t.fields = [];
      for (let i = 0; i < count; i++) {
        const f = fields + i * 24;
        t.fields.push({ ...readName(word(f)), type: typeAt(word(f + 8)) });
      }
    }
    return t;
  };
  const links = sec('.typelink');
  for (let o = links.off; o < links.off + links.size; o += 4) typeAt(types + buf.readInt32LE(o));
  return [...seen.values()].filter((t) => t.kind === 'struct' && t.named);
}

/** A struct tag's value for `key` (`json:"name,omitempty"` → "name,omitempty"), as reflect.StructTag.Get. */
export function tagValue(tag, key) {
  const m = tag.match(new RegExp(`(?:^|\\s)${key}:"((?:[^"\\\\]|\\\\.)*)"`));
  return m ? m[1] : undefined;
}

/** The kubectl binary to read: $KUBECTL, else the newest /usr/lib/google-cloud-sdk/bin/kubectl.1.N. */
export function kubectlBinary() {
  if (process.env.KUBECTL) return process.env.KUBECTL;
  const dir = '/usr/lib/google-cloud-sdk/bin';
  const minor = (f) => Number(f.slice('kubectl.1.'.length));
  const newest = readdirSync(dir)
    .filter((f) => /^kubectl\.1\.\d+$/.test(f))
    .sort((a, b) => minor(b) - minor(a))[0];
  if (!newest) throw new Error(`no kubectl.1.N in ${dir}: set KUBECTL`);
  return path.join(dir, newest);
}

/**
 * The OpenAPI definition name of a Kubernetes Go struct, as upstream names them:
 * k8s.io/api/apps/v1 + v1.Deployment → io.k8s.api.apps.v1.Deployment,
 * k8s.io/apimachinery/pkg/apis/meta/v1 + v1.Time → io.k8s.apimachinery.pkg.apis.meta.v1.Time.
 */
export function definitionName(t) {
  if (!t.pkg.startsWith('k8s.io/')) return undefined;
  return `io.k8s.${t.pkg.slice('k8s.io/'.length).replaceAll('/', '.')}.${t.name.slice(t.name.indexOf('.') + 1)}`;
}
