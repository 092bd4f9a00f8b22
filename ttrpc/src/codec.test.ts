import { describe, expect, it } from 'vitest';
import { decodeRequest, decodeResponse, DecodeError, requestSize, responseSize, Writer, writeRequest, writeResponse, type RequestMsg, type StatusMsg } from './codec.js';

function encReq(r: Partial<RequestMsg>): Buffer {
  const m: RequestMsg = { service: '', method: '', payload: new Uint8Array(), hasPayload: false, timeoutNano: 0, metadata: [], ...r };
  const lens: number[] = [];
  const b = Buffer.alloc(requestSize(m, lens));
  const w = new Writer(b);
  writeRequest(w, m, lens);
  expect(w.pos).toBe(b.length);
  return b;
}

function encResp(s: StatusMsg, p: Uint8Array): Buffer {
  const b = Buffer.alloc(responseSize(s, p));
  const w = new Writer(b);
  writeResponse(w, s, p);
  expect(w.pos).toBe(b.length);
  return b;
}

const ok: StatusMsg = { code: 0, message: '', details: [] };

describe('codec', () => {
  it('encodes a Request with the proto3 field numbers and wire types', () => {
    const b = encReq({ service: 'a.S', method: 'M', payload: Buffer.from([1, 2]), timeoutNano: 300, metadata: [['k', 'v']] });
    // 0a 03 'a.S' | 12 01 'M' | 1a 02 01 02 | 20 ac 02 | 2a 06 (0a 01 'k' 12 01 'v')
    expect(b.toString('hex')).toBe('0a03612e53' + '12014d' + '1a020102' + '20ac02' + '2a060a016b120176');
  });

  it('round-trips a Request: strings, payload, metadata in order with repeats, timeout_nano above 2^32', () => {
    const req = {
      service: 'containerd.task.v2.Task',
      method: 'Create',
      payload: Buffer.from('payload ✓'),
      timeoutNano: 30_000_000_000,
      metadata: [['containerd-namespace-ttrpc', 'k8s.io'], ['x', '1'], ['x', '2']] as [string, string][],
    };
    const d = decodeRequest(encReq(req));
    expect(d.service).toBe(req.service);
    expect(d.method).toBe(req.method);
    expect(Buffer.from(d.payload).toString()).toBe('payload ✓');
    expect(d.hasPayload).toBe(true);
    expect(d.timeoutNano).toBe(30_000_000_000);
    expect(d.metadata).toEqual(req.metadata);
  });

  it('omits empty fields like proto3 (an empty Request is zero bytes)', () => {
    expect(encReq({}).length).toBe(0);
    const d = decodeRequest(Buffer.alloc(0));
    expect(d).toMatchObject({ service: '', method: '', timeoutNano: 0, hasPayload: false, metadata: [] });
  });

  it('encodes success as Go does: status field present and empty (0a 00), then the payload', () => {
    expect(encResp(ok, Buffer.from([7])).toString('hex')).toBe('0a00' + '120107');
    expect(encResp(ok, new Uint8Array()).toString('hex')).toBe('0a00');
  });

  it('treats an absent status as OK', () => {
    const r = decodeResponse(Buffer.from('120107', 'hex'));
    expect(r.status).toBeUndefined();
    expect([...r.payload]).toEqual([7]);
  });

  it('round-trips a status with code, message and Any details', () => {
    const st: StatusMsg = {
      code: 5,
      message: 'container x: not found',
      details: [
        { typeUrl: 'type.googleapis.com/google.protobuf.StringValue', value: Buffer.from('0a0178', 'hex') },
        { typeUrl: 'x/y', value: new Uint8Array() },
      ],
    };
    const r = decodeResponse(encResp(st, new Uint8Array()));
    expect(r.status!.code).toBe(5);
    expect(r.status!.message).toBe(st.message);
    expect(r.status!.details.map((d) => [d.typeUrl, Buffer.from(d.value).toString('hex')])).toEqual([
      ['type.googleapis.com/google.protobuf.StringValue', '0a0178'],
      ['x/y', ''],
    ]);
  });

  it('encodes a negative int32 status code in 10 bytes and decodes it back', () => {
    const b = encResp({ code: -1, message: '', details: [] }, new Uint8Array());
    expect(b.toString('hex')).toBe('0a0b08ffffffffffffffffff01');
    expect(decodeResponse(b).status!.code).toBe(-1);
  });

  it('skips unknown fields of every wire type', () => {
    // field 9 varint, field 10 fixed64, field 11 bytes, field 12 fixed32, then method
    const b = Buffer.from('4801' + '510102030405060708' + '5a0161' + '6501020304' + '12014d', 'hex');
    expect(decodeRequest(b).method).toBe('M');
  });

  it('rejects truncated and malformed input with a DecodeError naming the message', () => {
    expect(() => decodeRequest(Buffer.from('0a05ab', 'hex'))).toThrow(DecodeError);
    expect(() => decodeRequest(Buffer.from('0a05ab', 'hex'))).toThrow(/Request: field length 5 runs past the end/);
    expect(() => decodeRequest(Buffer.from('ff', 'hex'))).toThrow(/truncated varint/);
    expect(() => decodeRequest(Buffer.from('0b', 'hex'))).toThrow(/wire type 3/);
    expect(() => decodeRequest(Buffer.from('08ff', 'hex'))).toThrow(); // service with varint wire type
  });
});
