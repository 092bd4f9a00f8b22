// stdio plumbing between host streams and the agent's stream RPCs. Output is pulled with
// ReadStdout/ReadStderr one 32 KiB read at a time (the Go shim's buffer size) and the next
// read is only issued once the sink has taken the last chunk, so a slow reader bounds memory.
import type { Readable, Writable } from 'node:stream';
import type { AgentClient } from './client.js';

/** Bytes asked for per ReadStdout/ReadStderr (the agent allocates this much per read). */
export const STREAM_CHUNK = 32 * 1024;
/** At most this many bytes per WriteStdin: what the source has buffered is sent in one call (the
 *  agent writes it all to the process's pipe), so each round trip over the vsock carries up to
 *  256 KiB, not the Go shim's 32 KiB. */
export const STDIN_CHUNK = 256 * 1024;

function waitDrain(sink: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      sink.off('drain', onDrain);
      sink.off('error', onError);
      sink.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (err: Error) => done(err);
    const onClose = () => done(new Error('output sink closed before draining'));
    sink.on('drain', onDrain);
    sink.on('error', onError);
    sink.on('close', onClose);
  });
}

/**
 * Copies ReadStdout/ReadStderr into sink until the agent reports EOF (empty data), honouring
 * backpressure. Does not end the sink. Rejects with the agent's error (AgentError /
 * AgentClosedError) or the sink's.
 */
export async function pumpOutput(c: AgentClient, which: 'stdout' | 'stderr', containerId: string, execId: string, sink: Writable): Promise<void> {
  const read = which === 'stdout' ? c.readStdout.bind(c) : c.readStderr.bind(c);
  // A sink can fail while a read is in flight (EPIPE on a FIFO nobody reads): keep the error
  // for the next write instead of letting an unhandled 'error' take the process down.
  let sinkErr: Error | undefined;
  const onError = (err: Error) => { sinkErr ??= err; };
  sink.on('error', onError);
  try {
    for (;;) {
      const data = await read(containerId, execId, STREAM_CHUNK);
      if (data.length === 0) return;
      if (sinkErr) throw sinkErr;
      if (sink.destroyed || sink.writableEnded) throw new Error(`output sink for ${which} of ${containerId}/${execId} is closed`);
      if (!sink.write(data)) await waitDrain(sink);
    }
  } finally {
    sink.off('error', onError);
  }
}

/**
 * Copies source into WriteStdin (what it has buffered, up to STDIN_CHUNK bytes a call, its chunks
 * sent as they are, never concatenated; what the agent did not take is sent again); at source EOF
 * sends CloseStdin. If the agent fails, the source is destroyed.
 */
export async function pumpInput(c: AgentClient, containerId: string, execId: string, source: Readable): Promise<void> {
  const q = new ChunkQueue(source, STDIN_CHUNK);
  try {
    for (let pieces = await q.take(); pieces; pieces = await q.take()) {
      while (pieces.length) {
        // An empty WriteStdin closes stdin on 3.20+ agents: never send one.
        const n = await c.writeStdin(containerId, execId, pieces);
        if (n <= 0) throw new Error(`agent took no bytes of stdin for ${containerId}/${execId}`);
        pieces = dropBytes(pieces, n);
      }
    }
  } catch (err) {
    source.destroy();
    throw err;
  }
  await c.closeStdin(containerId, execId);
}

/** pieces without their first n bytes (views, no copies). */
export function dropBytes(pieces: Uint8Array[], n: number): Uint8Array[] {
  let i = 0;
  while (i < pieces.length && n >= pieces[i].length) n -= pieces[i++].length;
  const rest = pieces.slice(i);
  if (rest.length && n > 0) rest[0] = rest[0].subarray(n);
  return rest;
}

/** A Readable's chunks as they arrive (flowing mode: no concatenation); the source is paused
 *  while `bound` bytes wait to be taken. */
class ChunkQueue {
  readonly #chunks: Uint8Array[] = [];
  #size = 0;
  #ended = false;
  #err: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(private readonly source: Readable, private readonly bound: number) {
    const wake = () => this.#wake?.();
    source.on('data', (d: Buffer | string) => {
      const b = typeof d === 'string' ? Buffer.from(d) : d;
      if (!b.length) return;
      this.#chunks.push(b);
      this.#size += b.length;
      if (this.#size >= bound) source.pause();
      wake();
    });
    source.once('end', () => { this.#ended = true; wake(); });
    source.once('close', () => { this.#ended = true; wake(); });
    source.once('error', (e: Error) => { this.#err = e; wake(); });
  }

  /** Up to `bound` bytes as chunks, once there are any; undefined at the end; throws the source's error. */
  async take(): Promise<Uint8Array[] | undefined> {
    while (this.#size === 0) {
      if (this.#err) throw this.#err;
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
    const out: Uint8Array[] = [];
    let n = 0;
    while (this.#chunks.length && n < this.bound) {
      let b = this.#chunks[0];
      if (n + b.length > this.bound) {
        this.#chunks[0] = b.subarray(this.bound - n);
        b = b.subarray(0, this.bound - n);
      } else {
        this.#chunks.shift();
      }
      out.push(b);
      n += b.length;
    }
    this.#size -= n;
    if (this.#size < this.bound && this.source.isPaused()) this.source.resume();
    return out;
  }
}
