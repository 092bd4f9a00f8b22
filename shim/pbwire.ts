// A minimal protobuf wire reader/writer for the few messages on the `start`, `delete` and
// `-info` paths. Those run once per container, so they avoid loading the generated code.

export class PbWriter {
  private chunks: number[] = [];

  private varint(n: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(n));
    while (v > 0x7fn) {
      this.chunks.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.chunks.push(Number(v));
  }

  private tag(field: number, wire: number): void { this.varint((field << 3) | wire); }

  /** int32/int64/uint32/uint64/enum/bool; zero values are skipped (proto3). */
  uint(field: number, n: number | bigint | boolean): this {
    const v = typeof n === 'boolean' ? (n ? 1 : 0) : n;
    if (v === 0 || v === 0n) return this;
    this.tag(field, 0);
    this.varint(v);
    return this;
  }

  bytes(field: number, b: Uint8Array, always = false): this {
    if (b.length === 0 && !always) return this;
    this.tag(field, 2);
    this.varint(b.length);
    for (const x of b) this.chunks.push(x);
    return this;
  }

  string(field: number, s: string): this { return this.bytes(field, Buffer.from(s, 'utf8')); }

  message(field: number, m: PbWriter): this { return this.bytes(field, m.finish(), true); }

  finish(): Uint8Array { return Uint8Array.from(this.chunks); }
}

export type PbField =
  | { field: number; wire: 0; value: bigint }
  | { field: number; wire: 2; value: Uint8Array }
  | { field: number; wire: 1 | 5; value: Uint8Array };

/** Splits a message into fields; throws on malformed input. */
export function readFields(buf: Uint8Array): PbField[] {
  const out: PbField[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let shift = 0n;
    let v = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
      if (shift > 63n) throw new Error('varint too long');
    }
  };
  while (pos < buf.length) {
    const key = varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0) throw new Error('field number 0');
    if (wire === 0) out.push({ field, wire, value: varint() });
    else if (wire === 2) {
      const len = Number(varint());
      if (pos + len > buf.length) throw new Error('truncated bytes');
      out.push({ field, wire, value: buf.subarray(pos, pos + len) });
      pos += len;
    } else if (wire === 1 || wire === 5) {
      const len = wire === 1 ? 8 : 4;
      if (pos + len > buf.length) throw new Error('truncated fixed');
      out.push({ field, wire, value: buf.subarray(pos, pos + len) });
      pos += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

export function str(v: Uint8Array): string { return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8'); }

/** google.protobuf.Timestamp for a JS time in ms. */
export function timestamp(ms: number): PbWriter {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  return new PbWriter().uint(1, seconds).uint(2, nanos);
}

/** google.protobuf.Any → {typeUrl, value}; undefined when the bytes are not an Any. */
export function decodeAny(buf: Uint8Array): { typeUrl: string; value: Uint8Array } | undefined {
  try {
    let typeUrl: string | undefined;
    let value: Uint8Array = new Uint8Array();
    for (const f of readFields(buf)) {
      if (f.field === 1 && f.wire === 2) typeUrl = str(f.value);
      else if (f.field === 2 && f.wire === 2) value = f.value;
      else return undefined;
    }
    return typeUrl === undefined ? undefined : { typeUrl, value };
  } catch {
    return undefined;
  }
}
