import { describe, expect, it } from 'vitest';
import { allocFrame, FrameReader, HEADER } from './framing.js';

function frame(id: number, type: number, flags: number, data: Uint8Array): Buffer {
  const f = allocFrame(id, type, flags, data.length);
  f.set(data, HEADER);
  return f;
}

function collect() {
  const got: { id: number; type: number; flags: number; data: string }[] = [];
  const events: string[] = [];
  const reader = new FrameReader({
    frame: (id, type, flags, data) => got.push({ id, type, flags, data: Buffer.from(data).toString('hex') }),
    oversize: (id, _t, _f, length) => events.push(`oversize ${id} ${length}`),
    garbage: (why) => events.push(`garbage ${why}`),
  });
  return { got, events, reader };
}

describe('framing', () => {
  it('writes the 10-byte big-endian header: length, stream id, type, flags', () => {
    const f = frame(0x01020304, 2, 5, Buffer.from('abc'));
    expect(f.subarray(0, HEADER).toString('hex')).toBe('00000003' + '01020304' + '02' + '05');
  });

  it('reassembles a frame split across reads, one byte at a time', () => {
    const { got, reader } = collect();
    const f = frame(1, 1, 0, Buffer.from('hello world'));
    for (let i = 0; i < f.length; i++) reader.push(f.subarray(i, i + 1));
    expect(got).toEqual([{ id: 1, type: 1, flags: 0, data: Buffer.from('hello world').toString('hex') }]);
    expect(reader.buffered).toBe(0);
  });

  it('delivers many frames from one read, and a trailing partial one later', () => {
    const { got, reader } = collect();
    const all = Buffer.concat([frame(1, 1, 0, Buffer.from([1])), frame(3, 1, 0, Buffer.from([2, 2])), frame(5, 2, 0, Buffer.from([3, 3, 3]))]);
    reader.push(all.subarray(0, all.length - 2));
    expect(got.map((g) => g.id)).toEqual([1, 3]);
    reader.push(all.subarray(all.length - 2));
    expect(got.map((g) => g.data)).toEqual(['01', '0202', '030303']);
  });

  it('handles zero-length payloads (an empty protobuf message)', () => {
    const { got, reader } = collect();
    reader.push(Buffer.concat([frame(1, 2, 0, new Uint8Array()), frame(3, 3, 5, new Uint8Array())]));
    expect(got).toEqual([
      { id: 1, type: 2, flags: 0, data: '' },
      { id: 3, type: 3, flags: 5, data: '' },
    ]);
  });

  it('reassembles a 4 MiB frame from 64 KiB reads with one copy', () => {
    const { got, reader } = collect();
    const data = Buffer.alloc(4 << 20, 0xab);
    const f = frame(7, 1, 0, data);
    for (let i = 0; i < f.length; i += 65536) reader.push(f.subarray(i, i + 65536));
    expect(got).toHaveLength(1);
    expect(got[0].data.length).toBe(2 * (4 << 20));
  });

  it('discards an oversize frame (> 4 MiB) without buffering it, then reads the next frame', () => {
    const { got, events, reader } = collect();
    const big = Buffer.alloc(HEADER + (5 << 20));
    big.writeUInt32BE(5 << 20, 0);
    big.writeUInt32BE(9, 4);
    big[8] = 1;
    const stream = Buffer.concat([big, frame(11, 1, 0, Buffer.from([1]))]);
    let maxHeld = 0;
    for (let i = 0; i < stream.length; i += 65536) {
      reader.push(stream.subarray(i, i + 65536));
      maxHeld = Math.max(maxHeld, reader.buffered);
    }
    expect(events).toEqual([`oversize 9 ${5 << 20}`]);
    expect(got.map((g) => g.id)).toEqual([11]);
    expect(maxHeld).toBeLessThan(HEADER + 2);
  });

  it('stops at bytes that cannot be ttrpc (length ≥ 16 MiB, e.g. an HTTP request)', () => {
    const { got, events, reader } = collect();
    reader.push(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    reader.push(frame(1, 1, 0, new Uint8Array()));
    expect(got).toEqual([]);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatch(/^garbage frame length \d+ is not ttrpc/);
  });
});
