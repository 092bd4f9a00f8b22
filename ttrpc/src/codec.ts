// Hand-written proto3 codec for the five ttrpc envelope messages (see PROTOCOL.md). Only varints and
// length-delimited fields occur; unknown fields are skipped. Decoded bytes are views into the frame.
import type { StatusDetail } from './status.js';

export interface RequestMsg {
  service: string;
  method: string;
  payload: Uint8Array;
  /** true when field 3 was on the wire (Go delivers even an empty one to streams). */
  hasPayload: boolean;
  timeoutNano: number;
  /** KeyValue pairs in wire order; keys may repeat. */
  metadata: [string, string][];
}

export interface StatusMsg {
  code: number;
  message: string;
  details: StatusDetail[];
}

export interface ResponseMsg {
  status?: StatusMsg;
  payload: Uint8Array;
}

export class DecodeError extends Error {
  constructor(what: string, why: string) {
    super(`${what}: ${why}`);
    this.name = 'DecodeError';
  }
}

const EMPTY = new Uint8Array(0);

// ---- sizes ----

export function varintSize(n: number): number {
  if (n < 0) return 10; // negative int32/int64: two's complement, always 10 bytes
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function strSize(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** tag byte + length varint + body, for a length-delimited field of `len` bytes. */
function ldSize(len: number): number {
  return 1 + varintSize(len) + len;
}

// ---- writer: a cursor over a preallocated Buffer ----

export class Writer {
  pos: number;
  constructor(readonly buf: Buffer, pos = 0) {
    this.pos = pos;
  }

  varint(n: number): void {
    const b = this.buf;
    if (n < 0) {
      // int32/int64 negatives: 64-bit two's complement in 10 bytes
      let v = BigInt.asUintN(64, BigInt(n));
      for (let i = 0; i < 9; i++) {
        b[this.pos++] = Number(v & 0x7fn) | 0x80;
        v >>= 7n;
      }
      b[this.pos++] = Number(v);
      return;
    }
    while (n >= 128) {
      b[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    b[this.pos++] = n;
  }

  bytes(tag: number, v: Uint8Array): void {
    this.buf[this.pos++] = tag;
    this.varint(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  string(tag: number, s: string, len: number): void {
    this.buf[this.pos++] = tag;
    this.varint(len);
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
  }
}

// ---- Request ----

export function requestSize(r: RequestMsg, lens: number[], payloadLength = r.payload.length): number {
  let n = 0;
  const sl = strSize(r.service);
  const ml = strSize(r.method);
  lens.push(sl, ml);
  if (sl) n += ldSize(sl);
  if (ml) n += ldSize(ml);
  if (payloadLength || r.hasPayload) n += ldSize(payloadLength);
  for (const [k, v] of r.metadata) lens.push(strSize(k), strSize(v));
  return n + requestTailSize(r, lens);
}

/** Writes a Request whose size requestSize() computed (lens are its string byte lengths). */
export function writeRequest(w: Writer, r: RequestMsg, lens: number[]): void {
  writeRequestHead(w, r, lens, r.payload.length);
  w.buf.set(r.payload, w.pos);
  w.pos += r.payload.length;
  writeRequestTail(w, r, lens);
}

/** Fields 1-2 and field 3's tag and length (payloadLength bytes are to follow, written by the caller). */
export function writeRequestHead(w: Writer, r: RequestMsg, lens: number[], payloadLength: number): void {
  const sl = lens[0];
  const ml = lens[1];
  if (sl) w.string(0x0a, r.service, sl);
  if (ml) w.string(0x12, r.method, ml);
  if (payloadLength || r.hasPayload) {
    w.buf[w.pos++] = 0x1a;
    w.varint(payloadLength);
  }
}

/** Size of what writeRequestTail() writes. */
export function requestTailSize(r: RequestMsg, lens: number[]): number {
  let n = r.timeoutNano ? 1 + varintSize(r.timeoutNano) : 0;
  for (let i = 0; i < r.metadata.length; i++) {
    const kl = lens[2 + 2 * i];
    const vl = lens[3 + 2 * i];
    n += ldSize((kl ? ldSize(kl) : 0) + (vl ? ldSize(vl) : 0));
  }
  return n;
}

/** Fields 4-5: the deadline and the metadata. */
export function writeRequestTail(w: Writer, r: RequestMsg, lens: number[]): void {
  let li = 2;
  if (r.timeoutNano) {
    w.buf[w.pos++] = 0x20;
    w.varint(r.timeoutNano);
  }
  for (const [k, v] of r.metadata) {
    const kl = lens[li++];
    const vl = lens[li++];
    w.buf[w.pos++] = 0x2a;
    w.varint((kl ? ldSize(kl) : 0) + (vl ? ldSize(vl) : 0));
    if (kl) w.string(0x0a, k, kl);
    if (vl) w.string(0x12, v, vl);
  }
}

// ---- Status / Response ----

function anySize(d: StatusDetail): number {
  const tl = strSize(d.typeUrl);
  return (tl ? ldSize(tl) : 0) + (d.value.length ? ldSize(d.value.length) : 0);
}

export function statusSize(s: StatusMsg): number {
  let n = 0;
  if (s.code) n += 1 + varintSize(s.code);
  const ml = strSize(s.message);
  if (ml) n += ldSize(ml);
  for (const d of s.details) n += ldSize(anySize(d));
  return n;
}

function writeStatus(w: Writer, s: StatusMsg): void {
  if (s.code) {
    w.buf[w.pos++] = 0x08;
    w.varint(s.code);
  }
  const ml = strSize(s.message);
  if (ml) w.string(0x12, s.message, ml);
  for (const d of s.details) {
    w.buf[w.pos++] = 0x1a;
    w.varint(anySize(d));
    const tl = strSize(d.typeUrl);
    if (tl) w.string(0x0a, d.typeUrl, tl);
    if (d.value.length) w.bytes(0x12, d.value);
  }
}

/** Response size; status is always written (Go sends an empty Status on success: `0a 00`). */
export function responseSize(status: StatusMsg, payload: Uint8Array): number {
  return ldSize(statusSize(status)) + (payload.length ? ldSize(payload.length) : 0);
}

export function writeResponse(w: Writer, status: StatusMsg, payload: Uint8Array): void {
  w.buf[w.pos++] = 0x0a;
  w.varint(statusSize(status));
  writeStatus(w, status);
  if (payload.length) w.bytes(0x12, payload);
}

// ---- reader ----

class Reader {
  pos: number;
  constructor(readonly buf: Buffer, readonly end: number, pos: number, readonly what: string) {
    this.pos = pos;
  }

  /** Full varint as a JS number (exact below 2^53). */
  varint(): number {
    const b = this.buf;
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new DecodeError(this.what, 'truncated varint');
      const byte = b[this.pos++];
      n += (byte & 0x7f) * mul;
      if (byte < 0x80) return n;
      mul *= 128;
    }
    throw new DecodeError(this.what, 'varint longer than 10 bytes');
  }

  /** Varint truncated to int32 (how proto decodes an int32 field, negatives included). */
  int32(): number {
    const b = this.buf;
    let lo = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new DecodeError(this.what, 'truncated varint');
      const byte = b[this.pos++];
      if (i < 5) lo |= (byte & 0x7f) << (7 * i);
      if (byte < 0x80) return lo | 0;
    }
    throw new DecodeError(this.what, 'varint longer than 10 bytes');
  }

  /** Start offset of a length-delimited field body; advances past it. */
  ld(): number {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) throw new DecodeError(this.what, `field length ${len} runs past the end`);
    this.pos = start + len;
    return start;
  }

  skip(wireType: number, tag: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.ld();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        throw new DecodeError(this.what, `field ${tag >>> 3} has unsupported wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new DecodeError(this.what, 'truncated field');
  }

  str(start: number): string {
    return this.buf.toString('utf8', start, this.pos);
  }

  view(start: number): Uint8Array {
    return this.buf.subarray(start, this.pos);
  }
}

function expect(r: Reader, tag: number, wireType: number): boolean {
  if ((tag & 7) === wireType) return true;
  throw new DecodeError(r.what, `field ${tag >>> 3} has wire type ${tag & 7}, want ${wireType}`);
}

export function decodeRequest(buf: Buffer): RequestMsg {
  const r = new Reader(buf, buf.length, 0, 'Request');
  const msg: RequestMsg = { service: '', method: '', payload: EMPTY, hasPayload: false, timeoutNano: 0, metadata: [] };
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag >>> 3) {
      case 1:
        expect(r, tag, 2);
        msg.service = r.str(r.ld());
        break;
      case 2:
        expect(r, tag, 2);
        msg.method = r.str(r.ld());
        break;
      case 3:
        expect(r, tag, 2);
        msg.payload = r.view(r.ld());
        msg.hasPayload = true;
        break;
      case 4:
        expect(r, tag, 0);
        msg.timeoutNano = r.varint();
        if (msg.timeoutNano >= 2 ** 63) msg.timeoutNano = -1; // negative int64: already expired
        break;
      case 5: {
        expect(r, tag, 2);
        const start = r.ld();
        msg.metadata.push(decodeKeyValue(buf, start, r.pos));
        break;
      }
      default:
        r.skip(tag & 7, tag);
    }
  }
  return msg;
}

function decodeKeyValue(buf: Buffer, start: number, end: number): [string, string] {
  const r = new Reader(buf, end, start, 'KeyValue');
  let key = '';
  let value = '';
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === 0x0a) key = r.str(r.ld());
    else if (tag === 0x12) value = r.str(r.ld());
    else r.skip(tag & 7, tag);
  }
  return [key, value];
}

export function decodeResponse(buf: Buffer): ResponseMsg {
  const r = new Reader(buf, buf.length, 0, 'Response');
  const msg: ResponseMsg = { payload: EMPTY };
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag >>> 3) {
      case 1: {
        expect(r, tag, 2);
        const start = r.ld();
        msg.status = decodeStatus(buf, start, r.pos);
        break;
      }
      case 2:
        expect(r, tag, 2);
        msg.payload = r.view(r.ld());
        break;
      default:
        r.skip(tag & 7, tag);
    }
  }
  return msg;
}

function decodeStatus(buf: Buffer, start: number, end: number): StatusMsg {
  const r = new Reader(buf, end, start, 'Status');
  const s: StatusMsg = { code: 0, message: '', details: [] };
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === 0x08) s.code = r.int32();
    else if (tag === 0x12) s.message = r.str(r.ld());
    else if (tag === 0x1a) {
      const at = r.ld();
      s.details.push(decodeAny(buf, at, r.pos));
    } else r.skip(tag & 7, tag);
  }
  return s;
}

function decodeAny(buf: Buffer, start: number, end: number): StatusDetail {
  const r = new Reader(buf, end, start, 'Any');
  const d: StatusDetail = { typeUrl: '', value: EMPTY };
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === 0x0a) d.typeUrl = r.str(r.ld());
    else if (tag === 0x12) d.value = r.view(r.ld());
    else r.skip(tag & 7, tag);
  }
  return d;
}
