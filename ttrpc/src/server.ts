import net from 'node:net';
import type { Duplex } from 'node:stream';
import { socketPath } from './address.js';
import { decodeRequest, responseSize, Writer, writeResponse, type StatusMsg } from './codec.js';
import { ClosedError, UsageError } from './errors.js';
import {
  allocFrame,
  FLAG_NO_DATA,
  FLAG_REMOTE_CLOSED,
  FLAG_REMOTE_OPEN,
  FrameReader,
  FrameWriter,
  HEADER,
  TYPE_DATA,
  TYPE_REQUEST,
  TYPE_RESPONSE,
  type FrameSink,
} from './framing.js';
import { noopLogger, type Logger } from './log.js';
import { Inbox } from './inbox.js';
import { metadataFromPairs, type Metadata } from './metadata.js';
import { Code, MAX_MESSAGE, oversizeError, StatusError } from './status.js';

export interface CallContext {
  service: string;
  method: string;
  metadata: Metadata;
  /** Aborts at the deadline, or when the connection ends. */
  signal: AbortSignal;
  /** Date.now() ms, when the client sent timeout_nano. */
  deadline?: number;
}

export type UnaryHandler = (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array | void> | Uint8Array | void;

/** A streaming call seen from the server. Iterate it for the client's messages. */
export interface ServerStream extends AsyncIterable<Uint8Array> {
  /** Sends one message to the client (a Data frame). Throws StatusError / ClosedError. */
  send(payload: Uint8Array): void;
  /** The next client message, or undefined once the client has closed its side. */
  recv(): Promise<Uint8Array | undefined>;
}

/**
 * Returns bytes → the call ends with a Response carrying them (client-streaming methods);
 * returns nothing → it ends with a Data frame remote-closed|no-data (server-streaming methods).
 * Throws → a Response with the status.
 */
export type StreamHandler = (stream: ServerStream, ctx: CallContext) => Promise<Uint8Array | void> | Uint8Array | void;

type Method = { kind: 'unary'; handler: UnaryHandler } | { kind: 'stream'; handler: StreamHandler };

const EMPTY = new Uint8Array(0);
const OK_STATUS: StatusMsg = { code: Code.OK, message: '', details: [] };
const SUB = { subsystem: 'ttrpc' };

type ServerState = 'serving' | 'shutting-down' | 'closed';

export class Server {
  readonly #log: Logger;
  readonly #services = new Map<string, Map<string, Method>>();
  readonly #listeners = new Set<net.Server>();
  readonly #conns = new Set<ServerConn>();
  #state: ServerState = 'serving';
  #drained: (() => void) | undefined;

  constructor(opts: { log?: Logger } = {}) {
    this.#log = opts.log ?? noopLogger;
  }

  /** Registers handlers under a full service name; the same object may be registered under two names. */
  register(service: string, methods: Record<string, UnaryHandler>): void {
    for (const [name, handler] of Object.entries(methods)) {
      if (typeof handler !== 'function') throw new UsageError(`ttrpc: ${service}/${name}: handler is not a function`);
      this.#add(service, name, { kind: 'unary', handler });
    }
  }

  /** Registers a streaming method (ttrpc 1.2). */
  registerStream(service: string, method: string, handler: StreamHandler): void {
    this.#add(service, method, { kind: 'stream', handler });
  }

  /** Listen on a path / abstract name, an inherited fd ({fd: 3}), or an existing net.Server. */
  async listen(target: string | { fd: number } | net.Server): Promise<void> {
    if (this.#state !== 'serving') throw new UsageError(`ttrpc: server is ${this.#state}; cannot listen`);
    if (target instanceof net.Server) {
      this.#adopt(target);
      return;
    }
    let what: string;
    let opts: net.ListenOptions;
    if (typeof target === 'string') {
      opts = { path: socketPath(target) };
      what = JSON.stringify(target);
    } else if (target && typeof target === 'object' && Number.isInteger(target.fd) && target.fd >= 0) {
      opts = { fd: target.fd } as net.ListenOptions;
      what = `fd ${target.fd}`;
    } else {
      throw new UsageError(`ttrpc: listen target ${JSON.stringify(target)} is not a path, {fd} or net.Server`);
    }
    const srv = net.createServer();
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(new UsageError(`ttrpc: cannot listen on ${what}: ${err.code ?? err.message}`, { cause: err }));
      srv.once('error', onError);
      srv.listen(opts, () => {
        srv.off('error', onError);
        resolve();
      });
    });
    this.#adopt(srv);
  }

  /** Serve one already-connected stream (e.g. the guest end of a hybrid vsock connection). */
  serveConnection(socket: Duplex): void {
    if (this.#state !== 'serving') {
      socket.destroy();
      return;
    }
    const conn = new ServerConn(socket, this.#log, (svc, m) => this.#lookup(svc, m), () => this.#state !== 'serving');
    this.#conns.add(conn);
    conn.onGone = () => {
      this.#conns.delete(conn);
      if (this.#conns.size === 0) this.#drained?.();
    };
  }

  get connections(): number {
    return this.#conns.size;
  }

  /** Stop accepting; wait for in-flight calls (bounded by timeoutMs), then close connections. */
  async shutdown(timeoutMs = 10_000): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'shutting-down';
    this.#closeListeners();
    if (this.#conns.size > 0) {
      const drained = new Promise<void>((resolve) => (this.#drained = resolve));
      for (const c of this.#conns) c.closeWhenIdle();
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([drained, expired]);
      clearTimeout(timer);
    }
    this.close();
  }

  /** Closes listeners and every connection now; in-flight handlers see their signal abort. */
  close(): void {
    this.#state = 'closed';
    this.#closeListeners();
    for (const c of [...this.#conns]) c.destroy(new ClosedError('ttrpc: server closed'));
    this.#drained?.();
  }

  #add(service: string, name: string, m: Method): void {
    if (!service || !name) throw new UsageError(`ttrpc: empty service or method name (${JSON.stringify(service)}/${JSON.stringify(name)})`);
    let methods = this.#services.get(service);
    if (!methods) this.#services.set(service, (methods = new Map()));
    if (methods.has(name)) throw new UsageError(`ttrpc: ${service}/${name} is already registered`);
    methods.set(name, m);
  }

  #lookup(service: string, method: string): Method | StatusError {
    const methods = this.#services.get(service);
    if (!methods) return new StatusError(Code.UNIMPLEMENTED, `service ${service}`);
    return methods.get(method) ?? new StatusError(Code.UNIMPLEMENTED, `method ${method}`);
  }

  #adopt(srv: net.Server): void {
    this.#listeners.add(srv);
    srv.on('connection', (sock: net.Socket) => this.serveConnection(sock));
    srv.on('error', (err) => this.#log.error('ttrpc: listener error', { ...SUB, err }));
  }

  #closeListeners(): void {
    for (const l of this.#listeners) l.close();
    this.#listeners.clear();
  }
}

/** Per-call context; the AbortController is made only if a handler reads `signal`. */
class Ctx implements CallContext {
  deadline?: number;
  #ac: AbortController | undefined;
  #reason: Error | undefined;
  timer: NodeJS.Timeout | undefined;

  constructor(
    readonly service: string,
    readonly method: string,
    readonly metadata: Metadata,
  ) {}

  get signal(): AbortSignal {
    if (!this.#ac) {
      this.#ac = new AbortController();
      if (this.#reason) this.#ac.abort(this.#reason);
    }
    return this.#ac.signal;
  }

  abort(reason: Error): void {
    if (this.#reason) return;
    this.#reason = reason;
    this.#ac?.abort(reason);
  }

  done(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}

class ServerStreamImpl implements ServerStream {
  readonly #inbox = new Inbox();
  finished = false;

  constructor(
    private readonly conn: ServerConn,
    private readonly id: number,
  ) {}

  send(payload: Uint8Array): void {
    if (this.#inbox.error) throw this.#inbox.error;
    if (this.finished) throw new StatusError(Code.FAILED_PRECONDITION, 'ttrpc: stream already finished');
    if (payload.length > MAX_MESSAGE) throw oversizeError(payload.length);
    this.conn.sendData(this.id, 0, payload);
  }

  recv(): Promise<Uint8Array | undefined> {
    return this.#inbox.recv();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.#inbox[Symbol.asyncIterator]();
  }

  push(m: Uint8Array): void {
    this.#inbox.push(m);
  }

  closeRemote(): void {
    this.#inbox.end();
  }

  fail(err: Error): void {
    this.#inbox.fail(err);
  }
}

interface InFlight {
  ctx: Ctx;
  stream?: ServerStreamImpl;
}

/** One accepted connection: its frame reader, the calls in flight on it, and the id rules. */
class ServerConn implements FrameSink {
  onGone: (() => void) | undefined;
  readonly #reader: FrameReader;
  readonly #writer: FrameWriter;
  readonly #inflight = new Map<number, InFlight>();
  #lastId = 0;
  #gone = false;
  #closeWhenIdle = false;

  constructor(
    private readonly socket: Duplex,
    private readonly log: Logger,
    private readonly lookup: (service: string, method: string) => Method | StatusError,
    private readonly draining: () => boolean,
  ) {
    this.#reader = new FrameReader(this);
    this.#writer = new FrameWriter(socket);
    socket.on('data', (chunk: Buffer) => this.#reader.push(chunk));
    socket.on('end', () => this.destroy(new ClosedError('ttrpc: closed (connection ended by peer)')));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // EOF/ECONNRESET/EPIPE are a client going away: quiet, as in Go
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') this.log.warn('ttrpc: connection error', { ...SUB, err });
      this.destroy(new ClosedError(`ttrpc: closed (${err.code ?? err.message})`, { cause: err }));
    });
    socket.on('close', () => this.destroy(new ClosedError()));
    if (socket.destroyed) this.destroy(new ClosedError());
  }

  frame(id: number, type: number, flags: number, data: Buffer): void {
    if (id % 2 !== 1) {
      this.#sendStatus(id, new StatusError(Code.INVALID_ARGUMENT, 'StreamID must be odd for client initiated streams'));
      return;
    }
    if (type === TYPE_REQUEST) this.#request(id, flags, data);
    else if (type === TYPE_DATA) this.#data(id, flags, data);
    else this.log.debug('ttrpc: ignoring frame of unknown type', { ...SUB, stream: id, type });
  }

  oversize(id: number, _type: number, _flags: number, length: number): void {
    const f = this.#inflight.get(id);
    if (f?.stream) this.#endStream(id, f, new StatusError(Code.RESOURCE_EXHAUSTED, 'ttrpc: stream data over the size limit'));
    this.#sendStatus(id, oversizeError(length));
  }

  garbage(why: string): void {
    this.log.warn('ttrpc: peer sent bytes that are not ttrpc; closing its connection', { ...SUB, why });
    this.destroy(new ClosedError(`ttrpc: closed (${why})`));
  }

  /** Shutdown: close now if idle, else as soon as the last in-flight call answers. */
  closeWhenIdle(): void {
    this.#closeWhenIdle = true;
    if (this.#inflight.size === 0) this.#endGracefully();
  }

  destroy(err: ClosedError): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#reader.stop();
    this.socket.destroy();
    for (const f of this.#inflight.values()) {
      f.ctx.abort(err);
      f.ctx.done();
      f.stream?.fail(err);
    }
    this.#inflight.clear();
    this.onGone?.();
  }

  sendData(id: number, flags: number, payload: Uint8Array): void {
    if (this.#gone) throw new ClosedError();
    const frame = allocFrame(id, TYPE_DATA, flags, payload.length);
    frame.set(payload, HEADER);
    this.#writer.write(frame);
  }

  #request(id: number, flags: number, data: Buffer): void {
    if (id <= this.#lastId) {
      this.#sendStatus(id, new StatusError(Code.INVALID_ARGUMENT, 'StreamID cannot be re-used and must increment'));
      return;
    }
    this.#lastId = id;
    let req;
    try {
      req = decodeRequest(data);
    } catch (err) {
      this.#sendStatus(id, new StatusError(Code.INVALID_ARGUMENT, `unmarshal request error: ${(err as Error).message}`));
      return;
    }
    const m = this.lookup(req.service, req.method);
    if (m instanceof StatusError) {
      this.#sendStatus(id, m);
      return;
    }
    const ctx = new Ctx(req.service, req.method, metadataFromPairs(req.metadata));
    if (req.timeoutNano !== 0) {
      const ms = req.timeoutNano > 0 ? req.timeoutNano / 1e6 : 0;
      ctx.deadline = Date.now() + ms;
      ctx.timer = setTimeout(() => ctx.abort(new StatusError(Code.DEADLINE_EXCEEDED, 'context deadline exceeded')), ms);
      ctx.timer.unref();
    }
    const f: InFlight = { ctx };
    this.#inflight.set(id, f);
    let result: Promise<Uint8Array | void> | Uint8Array | void;
    try {
      if (m.kind === 'unary') {
        result = m.handler(req.payload, ctx);
      } else {
        const stream = (f.stream = new ServerStreamImpl(this, id));
        // Go skips an absent payload on a client-streaming call (an empty message would be 0 bytes)
        if (req.hasPayload || !(flags & FLAG_REMOTE_OPEN)) stream.push(req.payload);
        if (!(flags & FLAG_REMOTE_OPEN)) stream.closeRemote();
        result = m.handler(stream, ctx);
      }
    } catch (err) {
      this.#finish(id, f, undefined, err);
      return;
    }
    if (result instanceof Promise || (result && typeof (result as unknown as PromiseLike<unknown>).then === 'function')) {
      (result as Promise<Uint8Array | void>).then(
        (v) => this.#finish(id, f, v, undefined),
        (err) => this.#finish(id, f, undefined, err ?? new Error('handler rejected')),
      );
    } else {
      this.#finish(id, f, result as Uint8Array | void, undefined);
    }
  }

  #data(id: number, flags: number, data: Buffer): void {
    const f = this.#inflight.get(id);
    if (!f) {
      this.#sendStatus(id, new StatusError(Code.INVALID_ARGUMENT, 'StreamID is no longer active'));
      return;
    }
    const stream = f.stream;
    if (!stream) {
      this.log.debug('ttrpc: Data frame on a unary call ignored', { ...SUB, stream: id });
      return;
    }
    if (!(flags & FLAG_NO_DATA)) stream.push(data);
    if (flags & FLAG_REMOTE_CLOSED) {
      stream.closeRemote();
      if (data.length > 0) {
        this.#endStream(id, f, new StatusError(Code.INVALID_ARGUMENT, 'data close message cannot include data'));
        this.#sendStatus(id, new StatusError(Code.INVALID_ARGUMENT, 'data close message cannot include data'));
      }
    }
  }

  /** Ends a stream early on a protocol error: the handler's later answer is dropped. */
  #endStream(id: number, f: InFlight, err: StatusError): void {
    this.#inflight.delete(id);
    f.ctx.abort(err);
    f.ctx.done();
    f.stream!.finished = true;
    f.stream!.fail(err);
    this.#idleCheck();
  }

  #finish(id: number, f: InFlight, value: Uint8Array | void, err: unknown): void {
    f.ctx.done();
    if (this.#inflight.get(id) !== f) return; // connection gone, or stream ended early
    this.#inflight.delete(id);
    if (f.stream) f.stream.finished = true;
    if (err !== undefined) {
      this.#sendStatus(id, toStatus(err));
    } else if (f.stream && !(value instanceof Uint8Array)) {
      // server-streaming end: remote-closed Data without payload, as Go's server sends
      this.sendData(id, FLAG_REMOTE_CLOSED | FLAG_NO_DATA, EMPTY);
    } else if (value !== undefined && !(value instanceof Uint8Array)) {
      this.#sendStatus(id, new StatusError(Code.INTERNAL, `ttrpc: handler for ${f.ctx.service}/${f.ctx.method} returned ${typeof value}, want Uint8Array`));
    } else {
      const payload = value ?? EMPTY;
      if (payload.length > MAX_MESSAGE) this.#sendStatus(id, oversizeError(payload.length));
      else this.#respond(id, OK_STATUS, payload);
    }
    this.#idleCheck();
  }

  #sendStatus(id: number, err: StatusError): void {
    this.#respond(id, { code: err.code, message: err.message, details: err.details }, EMPTY);
  }

  #respond(id: number, status: StatusMsg, payload: Uint8Array): void {
    if (this.#gone) return;
    const size = responseSize(status, payload);
    const frame = allocFrame(id, TYPE_RESPONSE, 0, size);
    writeResponse(new Writer(frame, HEADER), status, payload);
    this.#writer.write(frame);
  }

  #idleCheck(): void {
    if ((this.#closeWhenIdle || this.draining()) && this.#inflight.size === 0) this.#endGracefully();
  }

  #endGracefully(): void {
    if (this.#gone) return;
    this.#closeWhenIdle = true;
    this.#writer.flushNow();
    this.#reader.stop();
    // FIN after the last answer is flushed; then release the socket
    this.socket.end(() => this.destroy(new ClosedError('ttrpc: server closed')));
  }
}

function toStatus(err: unknown): StatusError {
  if (err instanceof StatusError) return err;
  if (err instanceof Error) return new StatusError(Code.UNKNOWN, err.message);
  return new StatusError(Code.UNKNOWN, String(err));
}
