// Hybrid vsock dialing (cloud-hypervisor's virtio-vsock backed by a Unix socket): connect to
// the VMM's socket, send `CONNECT <port>\n`, read one line that must contain `OK`; after it
// the stream is the raw guest connection. While the guest boots the VMM accepts and then
// closes without text (nothing listens on the port yet), so every failure is retried until
// the overall dial timeout, as Kata's Go runtime does.
import net from 'node:net';
import { Client } from 'ttrpc-ts';
import { AgentClient } from './client.js';
import { AgentDialError } from './errors.js';
import { noopLogger, type Logger } from './log.js';

/** The line after CONNECT must come within this long (Go runtime: 10 s). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
const MAX_LINE = 512;
const RETRY_MIN_MS = 10;
const RETRY_MAX_MS = 50;

/** Why one attempt failed; `reason` is stable, for logs and tests. */
export class HandshakeError extends Error {
  constructor(
    readonly reason: 'eof' | 'refused' | 'no-socket' | 'timeout' | 'bad-reply' | 'socket-error' | 'aborted',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HandshakeError';
  }
}

function errnoReason(err: NodeJS.ErrnoException): HandshakeError['reason'] {
  switch (err.code) {
    case 'ECONNREFUSED': return 'refused';
    case 'ENOENT': return 'no-socket';
    case 'ECONNRESET': case 'EPIPE': return 'eof';
    default: return 'socket-error';
  }
}

/**
 * One hybrid-vsock connection attempt. Resolves with the socket positioned just after the
 * `OK` line (bytes that arrived behind it are pushed back); rejects with a HandshakeError.
 */
export function connectHybridVsock(socketPath: string, port: number, o: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) return reject(new HandshakeError('aborted', 'dial aborted', { cause: o.signal.reason }));
    const sock = net.createConnection({ path: socketPath });
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const timer = setTimeout(
      () => fail(new HandshakeError('timeout', `no reply to CONNECT ${port} within ${o.timeoutMs ?? HANDSHAKE_TIMEOUT_MS} ms`)),
      o.timeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    );
    const onAbort = () => fail(new HandshakeError('aborted', 'dial aborted', { cause: o.signal?.reason }));
    const onError = (err: NodeJS.ErrnoException) => fail(new HandshakeError(errnoReason(err), `${socketPath}: ${err.code ?? err.message}`, { cause: err }));
    const onEnd = () => fail(new HandshakeError('eof', `${socketPath}: closed before answering CONNECT ${port} (guest not listening yet)`));
    const cleanup = () => {
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      sock.off('error', onError);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
      sock.off('readable', onReadable);
    };
    function fail(err: HandshakeError) {
      if (settled) return;
      cleanup();
      sock.on('error', () => {}); // a late error on a socket we are dropping
      sock.destroy();
      reject(err);
    }
    function onReadable() {
      let chunk: Buffer | null;
      while (!settled && (chunk = sock.read() as Buffer | null) !== null) {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        const nl = buf.indexOf(0x0a);
        if (nl < 0) {
          if (buf.length > MAX_LINE) fail(new HandshakeError('bad-reply', `reply to CONNECT ${port} longer than ${MAX_LINE} bytes without a newline`));
          continue;
        }
        const line = buf.subarray(0, nl).toString('latin1');
        if (!line.includes('OK')) return fail(new HandshakeError('bad-reply', `unexpected reply to CONNECT ${port}: ${JSON.stringify(line)}`));
        const rest = buf.subarray(nl + 1);
        cleanup();
        // The ttrpc stream may already have started behind the OK line: keep those bytes.
        if (rest.length) sock.unshift(rest);
        resolve(sock);
      }
    }
    o.signal?.addEventListener('abort', onAbort, { once: true });
    sock.on('error', onError);
    sock.on('end', onEnd);
    sock.on('close', onEnd);
    sock.on('readable', onReadable);
    sock.once('connect', () => sock.write(`CONNECT ${port}\n`));
  });
}

export interface DialOptions {
  /** The VMM's hybrid vsock Unix socket, e.g. /run/vc/vm/<id>/clh.sock. */
  socketPath: string;
  /** The agent's vsock port (1024). */
  port: number;
  /** Total time to keep trying (the shim passes `[agent.kata] dial_timeout`). */
  timeoutMs: number;
  signal?: AbortSignal;
  log?: Logger;
  /** Where the guest console log is, for the error message when the agent never answers. */
  consoleHint?: string;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Dials the agent, retrying while the guest boots, and returns a client on that connection. */
export async function dialAgent(o: DialOptions): Promise<AgentClient> {
  if (!Number.isInteger(o.port) || o.port <= 0 || o.port > 0xffffffff) throw new AgentDialError(`invalid agent vsock port ${o.port}`);
  if (!(o.timeoutMs > 0)) throw new AgentDialError(`invalid agent dial timeout ${o.timeoutMs} ms: must be positive`);
  const log = o.log ?? noopLogger;
  const started = Date.now();
  const deadline = started + o.timeoutMs;
  const where = `hvsock://${o.socketPath}:${o.port}`;
  let attempts = 0;
  let pause = RETRY_MIN_MS;
  for (;;) {
    attempts++;
    const left = deadline - Date.now();
    try {
      const sock = await connectHybridVsock(o.socketPath, o.port, { timeoutMs: Math.max(1, Math.min(HANDSHAKE_TIMEOUT_MS, left)), signal: o.signal });
      log.debug('agent connected', { subsystem: 'agent', address: where, attempts, ms: Date.now() - started });
      const client = new AgentClient(new Client(sock, { log }), { log });
      sock.resume(); // the handshake read in paused mode; ttrpc reads in flowing mode
      return client;
    } catch (err) {
      const e = err as HandshakeError;
      if (e.reason === 'aborted') throw new AgentDialError(`dialing the agent at ${where} was aborted`, { cause: e.cause ?? e });
      if (Date.now() + pause >= deadline) {
        const hint = o.consoleHint ? `; see the guest console log: ${o.consoleHint}` : '';
        throw new AgentDialError(
          `the kata-agent at ${where} never answered within ${(o.timeoutMs / 1000).toFixed(1)} s (${attempts} attempts, last: ${e.message})${hint}`,
          { cause: e },
        );
      }
      if (attempts === 1 || attempts % 50 === 0) log.debug('agent not answering yet, retrying', { subsystem: 'agent', address: where, reason: e.reason, attempts });
      await sleep(pause, o.signal);
      pause = Math.min(RETRY_MAX_MS, pause * 2);
    }
  }
}
