// stdio plumbing between host streams and the agent's stream RPCs. Output is pulled with
// ReadStdout/ReadStderr one 32 KiB read at a time (the Go shim's buffer size) and the next
// read is only issued once the sink has taken the last chunk, so a slow reader bounds memory.
import type { Readable, Writable } from 'node:stream';
import type { AgentClient } from './client.js';

/** Bytes asked for per ReadStdout/ReadStderr and sent per WriteStdin. */
export const STREAM_CHUNK = 32 * 1024;

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
 * Copies source into WriteStdin (in chunks of at most 32 KiB, resending what the agent did not
 * take); at source EOF sends CloseStdin.
 */
export async function pumpInput(c: AgentClient, containerId: string, execId: string, source: Readable): Promise<void> {
  for await (const chunk of source) {
    const buf: Uint8Array = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let off = 0;
    while (off < buf.length) {
      // An empty WriteStdin closes stdin on 3.20+ agents: never send one.
      const n = await c.writeStdin(containerId, execId, buf.subarray(off, Math.min(buf.length, off + STREAM_CHUNK)));
      if (n <= 0) throw new Error(`agent took no bytes of stdin for ${containerId}/${execId}`);
      off += n;
    }
  }
  await c.closeStdin(containerId, execId);
}
