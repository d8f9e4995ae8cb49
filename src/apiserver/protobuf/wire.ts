import { KubicleError } from '../../observe/errors.js';

/** Protocol-buffers wire format: a cursor over one message's bytes, and the pieces to write one. */
export type WireValue = { wire: 0; n: bigint } | { wire: 2; bytes: Buffer } | { wire: 1 | 5; bytes: Buffer };

/** The varint at `at` in `buf`, and the offset after it. */
export function readVarint(buf: Buffer, at: number): [bigint, number] {
  let i = at;
  let r = 0n;
  let shift = 0n;
  for (;;) {
    if (i >= buf.length) throw new KubicleError('BadRequest', 'protobuf: truncated varint');
    const b = buf[i++];
    r |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [r, i];
    shift += 7n;
    if (shift > 70n) throw new KubicleError('BadRequest', 'protobuf: varint too long');
  }
}

export function* fields(buf: Buffer): Generator<{ field: number; value: WireValue }> {
  let i = 0;
  const varint = (): bigint => {
    const [n, next] = readVarint(buf, i);
    i = next;
    return n;
  };
  while (i < buf.length) {
    const key = varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) yield { field, value: { wire: 0, n: varint() } };
    else if (wire === 2) {
      const len = Number(varint());
      if (i + len > buf.length) throw new KubicleError('BadRequest', 'protobuf: length beyond the message');
      yield { field, value: { wire: 2, bytes: buf.subarray(i, i + len) } };
      i += len;
    } else if (wire === 1 || wire === 5) {
      const len = wire === 1 ? 8 : 4;
      if (i + len > buf.length) throw new KubicleError('BadRequest', 'protobuf: length beyond the message');
      yield { field, value: { wire, bytes: buf.subarray(i, i + len) } };
      i += len;
    } else throw new KubicleError('BadRequest', `protobuf: unsupported wire type ${wire}`);
  }
}

/** A varint as a signed 64-bit value, as a JS number (Kubernetes' int64 fields fit in 2^53). */
export function signed(n: bigint): number {
  return Number(BigInt.asIntN(64, n));
}

/** A varint's bytes; negative numbers as 64-bit two's complement, as int64 fields carry them. */
export function varint(n: number | bigint): Buffer {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}

/** A varint field (wire type 0), written even when zero. */
export function varintField(field: number, n: number | bigint): Buffer {
  return Buffer.concat([varint(field << 3), varint(n)]);
}

/** A length-delimited field (wire type 2): a string, bytes or an embedded message. */
export function lengthDelimited(field: number, bytes: Buffer): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(bytes.length), bytes]);
}
