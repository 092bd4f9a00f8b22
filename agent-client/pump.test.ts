import { describe, expect, it } from 'vitest';
import { PassThrough, Readable, Writable } from 'node:stream';
import type { AgentClient } from './client.js';
import { AgentClosedError } from './errors.js';
import { dropBytes, pumpInput, pumpOutput, STDIN_CHUNK, STREAM_CHUNK } from './pump.js';

/** An AgentClient stand-in for the stream calls only: serves `data` in reads of at most len bytes. */
function fakeReader(data: Buffer, o: { failAfter?: number } = {}) {
  let off = 0;
  let reads = 0;
  const lens: number[] = [];
  const read = async (_c: string, _e: string, len: number) => {
    lens.push(len);
    if (o.failAfter !== undefined && reads >= o.failAfter) throw new AgentClosedError('agent connection closed during ReadStdout');
    reads++;
    await new Promise((r) => setImmediate(r));
    const chunk = data.subarray(off, off + len);
    off += chunk.length;
    return chunk;
  };
  return { client: { readStdout: read, readStderr: read } as unknown as AgentClient, lens, inFlight: () => off };
}

describe('pumpOutput', () => {
  it('copies until EOF with 32 KiB reads', async () => {
    const data = Buffer.alloc(200_000, 7);
    const f = fakeReader(data);
    const out: Buffer[] = [];
    const sink = new Writable({ write(c, _e, cb) { out.push(c); cb(); } });
    await pumpOutput(f.client, 'stderr', 'c1', 'e1', sink);
    expect(Buffer.concat(out).equals(data)).toBe(true);
    expect(new Set(f.lens)).toEqual(new Set([STREAM_CHUNK]));
    expect(sink.writableEnded).toBe(false);
  });

  it('does not read ahead of a slow sink (backpressure)', async () => {
    const data = Buffer.alloc(4 << 20, 1);
    const f = fakeReader(data);
    let pending: (() => void) | undefined;
    let got = 0;
    let maxAhead = 0;
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(c, _e, cb) {
        got += c.length;
        pending = cb;
      },
    });
    let finished = false;
    const done = pumpOutput(f.client, 'stdout', 'c1', 'e1', sink).finally(() => { finished = true; });
    // the reader takes one chunk every 2 ms
    while (!finished) {
      await new Promise((r) => setTimeout(r, 2));
      maxAhead = Math.max(maxAhead, f.inFlight() - got);
      const cb = pending;
      pending = undefined;
      cb?.();
    }
    await done;
    expect(got).toBe(data.length);
    // what was read from the agent but not yet taken by the reader stays within hwm + one chunk
    expect(maxAhead).toBeLessThanOrEqual(64 * 1024 + 2 * STREAM_CHUNK);
  });

  it('rejects with the agent error', async () => {
    const f = fakeReader(Buffer.alloc(100_000), { failAfter: 1 });
    const sink = new PassThrough();
    sink.resume();
    await expect(pumpOutput(f.client, 'stdout', 'c1', 'e1', sink)).rejects.toBeInstanceOf(AgentClosedError);
  });

  it('rejects when the sink is destroyed while waiting for drain', async () => {
    const f = fakeReader(Buffer.alloc(1 << 20));
    const sink = new Writable({ highWaterMark: 1, write() { /* never completes */ } });
    const p = pumpOutput(f.client, 'stdout', 'c1', 'e1', sink);
    setTimeout(() => sink.destroy(), 20);
    await expect(p).rejects.toThrow(/closed before draining/);
  });
});

describe('pumpInput', () => {
  it('forwards in chunks of at most 256 KiB, resends short writes, then closes stdin', async () => {
    const calls: string[] = [];
    const written: Buffer[] = [];
    const client = {
      async writeStdin(_c: string, _e: string, pieces: Uint8Array[]) {
        const d = Buffer.concat(pieces);
        const n = Math.min(d.length, 1000 + (written.length % 3) * 20_000); // the agent sometimes takes less
        expect(d.length).toBeGreaterThan(0);
        expect(d.length).toBeLessThanOrEqual(STDIN_CHUNK);
        written.push(Buffer.from(d.subarray(0, n)));
        calls.push('write');
        return n;
      },
      async closeStdin(c: string, e: string) { calls.push(`close ${c}/${e}`); },
    } as unknown as AgentClient;
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    await pumpInput(client, 'c1', 'e1', Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]));
    expect(Buffer.concat(written).equals(data)).toBe(true);
    expect(calls.at(-1)).toBe('close c1/e1');
    expect(calls.filter((c) => c.startsWith('close')).length).toBe(1);
  });

  it("sends the source's own chunks (no copies), several per call up to 256 KiB, and pauses the source at that bound", async () => {
    const src = new PassThrough({ objectMode: true });
    const seen: Uint8Array[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const client = {
      async writeStdin(_c: string, _e: string, pieces: Uint8Array[]) {
        seen.push(pieces);
        if (seen.length === 1) await gate; // the agent is slow on the first call
        return pieces.reduce((n, p) => n + p.length, 0);
      },
      async closeStdin() {},
    } as unknown as AgentClient;
    const chunks = Array.from({ length: 12 }, (_, i) => Buffer.alloc(64 * 1024, i));
    const done = pumpInput(client, 'c1', 'e1', src);
    src.write(chunks[0]);
    await new Promise((r) => setTimeout(r, 10));
    for (const c of chunks.slice(1)) src.write(c);
    await new Promise((r) => setTimeout(r, 10));
    expect(src.isPaused()).toBe(true); // 11 chunks wait: over the bound
    release();
    src.end();
    await done;
    expect(seen.flat().every((p, i) => p === chunks[i])).toBe(true);
    expect(seen.map((p) => p.length)).toEqual([1, 4, 4, 3]);
  });

  it('an agent failure destroys the source and rejects', async () => {
    const src = new PassThrough();
    const client = { writeStdin: async () => { throw new Error('agent gone'); }, closeStdin: async () => {} } as unknown as AgentClient;
    const done = pumpInput(client, 'c1', 'e1', src);
    src.write('x');
    await expect(done).rejects.toThrow('agent gone');
    expect(src.destroyed).toBe(true);
  });

  it('dropBytes skips whole and partial pieces without copying', () => {
    const a = Buffer.from('abc');
    const b = Buffer.from('defg');
    expect(dropBytes([a, b], 0)).toEqual([a, b]);
    expect(dropBytes([a, b], 3)[0]).toBe(b);
    expect(Buffer.concat(dropBytes([a, b], 5)).toString()).toBe('fg');
    expect(dropBytes([a, b], 7)).toEqual([]);
  });

  it('an empty source just closes stdin', async () => {
    const calls: string[] = [];
    const client = { writeStdin: async () => { calls.push('write'); return 0; }, closeStdin: async () => { calls.push('close'); } } as unknown as AgentClient;
    await pumpInput(client, 'c1', 'e1', Readable.from([]));
    expect(calls).toEqual(['close']);
  });
});

describe('pumpOutput sink errors', () => {
  it('a sink that fails while a read is in flight rejects the pump (no unhandled error)', async () => {
    const f = fakeReader(Buffer.alloc(200_000));
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    let n = 0;
    const sink = new Writable({ write(_c, _e, cb) { if (++n === 2) cb(epipe); else cb(); } });
    await expect(pumpOutput(f.client, 'stdout', 'c1', 'e1', sink)).rejects.toThrow(/EPIPE|closed/);
    expect(sink.listenerCount('error')).toBe(0);
  });
});
