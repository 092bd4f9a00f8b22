// Output of a guest process as ReadStdout/ReadStderr see it: a bounded buffer (the source is
// paused while it is full, like a pipe), reads that block until data or EOF, and the agent's
// rule that after the process exits buffered output is drained for up to 500 ms, then EOF.
import type { Readable } from 'node:stream';

export const OUTPUT_BOUND = 1 << 20;
export const DRAIN_AFTER_EXIT_MS = 500;

export class OutputBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private waiters: (() => void)[] = [];
  private source?: Readable;

  constructor(source?: Readable) {
    if (!source) { this.ended = true; return; }
    this.source = source;
    source.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
      if (this.size >= OUTPUT_BOUND) source.pause();
      this.wake();
    });
    source.on('end', () => this.end());
    source.on('error', () => this.end());
    source.on('close', () => this.end());
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** No more data will be returned once the buffer is empty. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.wake();
  }

  /** The process exited: whatever is still coming gets DRAIN_AFTER_EXIT_MS, then EOF, even if a
   *  background child still holds the pipe; the agent then closes its end, as the real one does. */
  processExited(): void {
    setTimeout(() => { this.end(); this.source?.destroy(); }, DRAIN_AFTER_EXIT_MS).unref();
  }

  /** Up to `len` bytes; waits for data; empty = EOF. `signal` abandons the wait (connection gone). */
  async read(len: number, signal?: AbortSignal): Promise<Buffer> {
    while (this.size === 0 && !this.ended) {
      if (signal?.aborted) throw new Error('read abandoned');
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    if (this.size === 0) return Buffer.alloc(0);
    const want = Math.max(1, len || 0);
    const out: Buffer[] = [];
    let got = 0;
    while (this.chunks.length && got < want) {
      const c = this.chunks[0];
      const take = Math.min(c.length, want - got);
      out.push(c.subarray(0, take));
      got += take;
      if (take === c.length) this.chunks.shift(); else this.chunks[0] = c.subarray(take);
    }
    this.size -= got;
    if (this.size < OUTPUT_BOUND && this.source?.isPaused()) this.source.resume();
    return Buffer.concat(out);
  }
}
