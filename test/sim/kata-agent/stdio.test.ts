import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DRAIN_AFTER_EXIT_MS, OUTPUT_BOUND, OutputBuffer } from './stdio.js';

describe('process output buffer (ReadStdout/ReadStderr)', () => {
  it('returns at most len bytes, blocks until data, EOF (empty) at the end of the stream', async () => {
    const src = new PassThrough();
    const b = new OutputBuffer(src);
    const pending = b.read(4);
    src.write('hello');
    expect((await pending).toString()).toBe('hell');
    expect((await b.read(100)).toString()).toBe('o');
    src.end();
    expect((await b.read(100)).length).toBe(0);
  });

  it('pauses the source while the buffer is full (backpressure like a pipe)', async () => {
    const src = new PassThrough({ highWaterMark: 1 << 16 });
    const b = new OutputBuffer(src);
    src.write(Buffer.alloc(OUTPUT_BOUND + 10));
    await new Promise((r) => setImmediate(r));
    expect(src.isPaused()).toBe(true);
    await b.read(OUTPUT_BOUND);
    expect(src.isPaused()).toBe(false);
  });

  it('after the process exits, drains for a bounded time then reports EOF even if the pipe stays open', async () => {
    const src = new PassThrough();
    const b = new OutputBuffer(src);
    src.write('last words');
    b.processExited();
    expect((await b.read(100)).toString()).toBe('last words');
    const t0 = Date.now();
    expect((await b.read(100)).length).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(DRAIN_AFTER_EXIT_MS - 50);
  });

  it('a terminal process has no separate stderr: EOF at once', async () => {
    expect((await new OutputBuffer().read(10)).length).toBe(0);
  });
});
