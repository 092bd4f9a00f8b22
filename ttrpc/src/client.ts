import net from 'node:net';
import type { Duplex } from 'node:stream';
import { socketPath } from './address.js';
import { decodeResponse, requestSize, requestTailSize, Writer, writeRequest, writeRequestHead, writeRequestTail, type RequestMsg } from './codec.js';
import { ClosedError, ConnectError } from './errors.js';
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
import { metadataToPairs, type Metadata } from './metadata.js';
import { Code, MAX_MESSAGE, oversizeError, StatusError } from './status.js';

export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  metadata?: Metadata;
}

export interface StreamOptions extends CallOptions {
  /** Client sends Data frames after the Request (flag remote-open). Default true. */
  streamingClient?: boolean;
  /** The Request's payload: the first message, or the only one when streamingClient is false. */
  payload?: Uint8Array;
}

/** What a pending stream id does with the frames the server sends on it. */
interface Slot {
  frame(type: number, flags: number, data: Buffer): void;
  fail(err: Error): void;
}

const EMPTY = new Uint8Array(0);
const MAX_STREAM_ID = 0xffffffff;

export class Client {
  readonly #socket: Duplex;
  readonly #log: Logger;
  readonly #reader: FrameReader;
  readonly #writer: FrameWriter;
  readonly #slots = new Map<number, Slot>();
  readonly #onClose: ((err: ClosedError) => void)[] = [];
  #nextId = 1;
  #closedErr: ClosedError | undefined;

  constructor(socket: Duplex, opts: { log?: Logger } = {}) {
    this.#socket = socket;
    this.#log = opts.log ?? noopLogger;
    this.#writer = new FrameWriter(socket);
    this.#reader = new FrameReader(this.#sink());
    socket.on('data', (chunk: Buffer) => this.#reader.push(chunk));
    socket.on('end', () => this.#end(new ClosedError('ttrpc: closed (connection ended by peer)')));
    socket.on('error', (err: Error) => this.#end(new ClosedError(`ttrpc: closed (${(err as NodeJS.ErrnoException).code ?? err.message})`, { cause: err })));
    socket.on('close', () => this.#end(new ClosedError()));
    if (socket.destroyed) this.#end(new ClosedError('ttrpc: closed (socket already destroyed)'));
  }

  /** address: 'unix:///path', '/path', or an abstract name '@name' / '\0name' */
  static connect(address: string, opts: { log?: Logger; timeoutMs?: number } = {}): Promise<Client> {
    let path: string;
    try {
      path = socketPath(address);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const sock = net.createConnection({ path });
      let timer: NodeJS.Timeout | undefined;
      const onError = (err: NodeJS.ErrnoException) => fail(err.code ?? err.message, err);
      const fail = (why: string, cause?: unknown) => {
        clearTimeout(timer);
        sock.off('error', onError);
        sock.destroy();
        reject(new ConnectError(address, why, { cause }));
      };
      sock.once('error', onError);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.off('error', onError);
        resolve(new Client(sock, opts));
      });
      if (opts.timeoutMs !== undefined && opts.timeoutMs > 0) {
        timer = setTimeout(() => fail(`no connection within ${opts.timeoutMs} ms`), opts.timeoutMs);
      }
    });
  }

  get closed(): boolean {
    return this.#closedErr !== undefined;
  }

  /**
   * Unary call; resolves with the response payload; rejects with StatusError / ClosedError. The
   * payload may come in pieces (their concatenation is the message): large ones are then sent as
   * they are, not copied into the frame; the caller must not change them until the call settles.
   */
  call(service: string, method: string, payload: Uint8Array | readonly Uint8Array[], opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.#closedErr) return Promise.reject(this.#closedErr);
    if (opts.signal?.aborted) return Promise.reject(cancelled(opts.signal));
    let frame: Buffer | Uint8Array[];
    try {
      frame = payload instanceof Uint8Array
        ? this.#requestFrame(service, method, payload, false, 0, opts)
        : this.#requestFrameParts(service, method, payload, opts);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const head = Array.isArray(frame) ? (frame[0] as Buffer) : (frame as Buffer);
      const id = head.readUInt32BE(4);
      const call = new UnaryCall(this.#slots, id, resolve, reject);
      this.#slots.set(id, call);
      if (opts.timeoutMs !== undefined && opts.timeoutMs > 0) call.deadline(opts.timeoutMs, `${service}/${method}`);
      if (opts.signal) call.watch(opts.signal);
      if (Array.isArray(frame)) this.#writer.writeParts(frame);
      else this.#writer.write(frame as Buffer);
    });
  }

  /**
   * Opens a streaming call (ttrpc 1.2). Errors (closed connection, oversize request, the server's
   * status) surface from recv() / the iterator.
   */
  stream(service: string, method: string, opts: StreamOptions = {}): ClientStream {
    const streamingClient = opts.streamingClient ?? true;
    const stream = new ClientStream(this, streamingClient);
    if (this.#closedErr) {
      stream.fail(this.#closedErr);
      return stream;
    }
    if (opts.signal?.aborted) {
      stream.fail(cancelled(opts.signal));
      return stream;
    }
    let frame: Buffer;
    try {
      const flags = streamingClient ? FLAG_REMOTE_OPEN : FLAG_REMOTE_CLOSED;
      frame = this.#requestFrame(service, method, opts.payload ?? EMPTY, opts.payload !== undefined, flags, opts);
    } catch (err) {
      stream.fail(err as Error);
      return stream;
    }
    stream.attach(frame.readUInt32BE(4), this.#slots);
    if (opts.timeoutMs !== undefined && opts.timeoutMs > 0) stream.deadline(opts.timeoutMs, `${service}/${method}`);
    if (opts.signal) stream.watch(opts.signal);
    this.#writer.write(frame);
    return stream;
  }

  /** Runs once when the connection ends (immediately, on a microtask, if it already has). */
  onClose(cb: (err: ClosedError) => void): void {
    const err = this.#closedErr;
    if (err) queueMicrotask(() => cb(err));
    else this.#onClose.push(cb);
  }

  /** Ends the connection; pending calls fail with ClosedError. */
  close(): void {
    this.#end(new ClosedError('ttrpc: closed (by this client)'));
  }

  /** @internal Writes a Data frame for a ClientStream. */
  sendData(id: number, flags: number, payload: Uint8Array): void {
    if (this.#closedErr) throw this.#closedErr;
    if (payload.length > MAX_MESSAGE) throw oversizeError(payload.length);
    const frame = allocFrame(id, TYPE_DATA, flags, payload.length);
    frame.set(payload, HEADER);
    this.#writer.write(frame);
  }

  /** A Request frame as [header + fields 1-3 up to the payload, ...payload pieces, fields 4-5]. */
  #requestFrameParts(service: string, method: string, pieces: readonly Uint8Array[], opts: CallOptions): Uint8Array[] {
    const req = this.#requestMsg(service, method, EMPTY, false, opts);
    let payloadLength = 0;
    for (const p of pieces) payloadLength += p.length;
    const lens: number[] = [];
    const size = requestSize(req, lens, payloadLength);
    if (size > MAX_MESSAGE) throw oversizeError(size);
    const id = this.#takeId();
    const tailSize = requestTailSize(req, lens);
    // The header says the whole frame's length; this buffer holds only what precedes the payload.
    const head = allocFrame(id, TYPE_REQUEST, 0, size - payloadLength - tailSize);
    head.writeUInt32BE(size, 0);
    writeRequestHead(new Writer(head, HEADER), req, lens, payloadLength);
    const tail = Buffer.allocUnsafe(tailSize);
    writeRequestTail(new Writer(tail), req, lens);
    return [head, ...pieces, ...(tailSize ? [tail] : [])];
  }

  #takeId(): number {
    const id = this.#nextId;
    if (id > MAX_STREAM_ID) throw new StatusError(Code.RESOURCE_EXHAUSTED, 'ttrpc: stream ids exhausted on this connection');
    this.#nextId += 2;
    return id;
  }

  #requestMsg(service: string, method: string, payload: Uint8Array, hasPayload: boolean, opts: CallOptions): RequestMsg {
    return {
      service,
      method,
      payload,
      hasPayload,
      // Go sends the remaining time in ns; we send the whole budget (it starts now)
      timeoutNano: opts.timeoutMs !== undefined && opts.timeoutMs > 0 ? Math.round(opts.timeoutMs * 1e6) : 0,
      metadata: metadataToPairs(opts.metadata),
    };
  }

  #requestFrame(service: string, method: string, payload: Uint8Array, hasPayload: boolean, flags: number, opts: CallOptions): Buffer {
    const req = this.#requestMsg(service, method, payload, hasPayload, opts);
    const lens: number[] = [];
    const size = requestSize(req, lens);
    if (size > MAX_MESSAGE) throw oversizeError(size);
    const id = this.#takeId();
    const frame = allocFrame(id, TYPE_REQUEST, flags, size);
    writeRequest(new Writer(frame, HEADER), req, lens);
    return frame;
  }

  #sink(): FrameSink {
    return {
      frame: (id, type, flags, data) => {
        const slot = this.#slots.get(id);
        if (slot) slot.frame(type, flags, data);
        else this.#log.debug('ttrpc: frame on inactive stream dropped', { subsystem: 'ttrpc', stream: id, type });
      },
      oversize: (id, _type, _flags, length) => {
        const slot = this.#slots.get(id);
        if (slot) {
          this.#slots.delete(id);
          slot.fail(oversizeError(length));
        }
      },
      garbage: (why) => {
        this.#log.warn('ttrpc: peer sent bytes that are not ttrpc; closing', { subsystem: 'ttrpc', why });
        this.#end(new ClosedError(`ttrpc: closed (${why})`));
      },
    };
  }

  #end(err: ClosedError): void {
    if (this.#closedErr) return;
    this.#closedErr = err;
    this.#reader.stop();
    this.#socket.destroy();
    const slots = [...this.#slots.values()];
    this.#slots.clear();
    for (const s of slots) s.fail(err);
    for (const cb of this.#onClose.splice(0)) {
      try {
        cb(err);
      } catch (e) {
        this.#log.error('ttrpc: onClose callback threw', { subsystem: 'ttrpc', err: e });
      }
    }
  }
}

function cancelled(signal: AbortSignal): StatusError {
  const why = signal.reason instanceof Error ? `: ${signal.reason.message}` : '';
  return new StatusError(Code.CANCELLED, `context canceled${why}`);
}

function statusFrom(data: Buffer): { err?: Error; payload: Uint8Array } {
  let resp;
  try {
    resp = decodeResponse(data);
  } catch (err) {
    return { err: new StatusError(Code.INTERNAL, `ttrpc: cannot decode Response: ${(err as Error).message}`), payload: EMPTY };
  }
  const st = resp.status;
  if (st && st.code !== Code.OK) return { err: new StatusError(st.code, st.message, st.details), payload: EMPTY };
  return { payload: resp.payload };
}

/** A pending unary call: settles once, from the Response, the deadline, the signal or the connection. */
class UnaryCall implements Slot {
  #timer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;

  constructor(
    private readonly slots: Map<number, Slot>,
    private readonly id: number,
    private readonly resolve: (v: Uint8Array) => void,
    private readonly reject: (e: Error) => void,
  ) {}

  deadline(ms: number, what: string): void {
    this.#timer = setTimeout(() => {
      // the late Response, if any, finds no slot and is dropped
      this.slots.delete(this.id);
      this.#settle();
      this.reject(new StatusError(Code.DEADLINE_EXCEEDED, `context deadline exceeded (${what} after ${ms} ms)`));
    }, ms);
  }

  watch(signal: AbortSignal): void {
    this.#signal = signal;
    this.#onAbort = () => {
      this.slots.delete(this.id);
      this.#settle();
      this.reject(cancelled(signal));
    };
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  frame(type: number, _flags: number, data: Buffer): void {
    this.slots.delete(this.id);
    this.#settle();
    if (type !== TYPE_RESPONSE) {
      this.reject(new StatusError(Code.INTERNAL, `ttrpc: unary call got a frame of type ${type} instead of a Response`));
      return;
    }
    const r = statusFrom(data);
    if (r.err) this.reject(r.err);
    else this.resolve(r.payload);
  }

  fail(err: Error): void {
    this.#settle();
    this.reject(err);
  }

  #settle(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#onAbort) this.#signal!.removeEventListener('abort', this.#onAbort);
  }
}

/**
 * A streaming call seen from the client. Read the server's messages with recv() or for-await;
 * the iteration ends when the server closes its side (a Response's payload is the last message).
 */
export class ClientStream implements AsyncIterable<Uint8Array> {
  #id = 0;
  #slots: Map<number, Slot> | undefined;
  readonly #inbox = new Inbox();
  #localClosed: boolean;
  #timer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;

  constructor(
    private readonly client: Client,
    streamingClient: boolean,
  ) {
    this.#localClosed = !streamingClient;
  }

  /** @internal */
  attach(id: number, slots: Map<number, Slot>): void {
    this.#id = id;
    this.#slots = slots;
    slots.set(id, {
      frame: (type, flags, data) => this.#frame(type, flags, data),
      fail: (err) => this.fail(err),
    });
  }

  /** Sends one message (a Data frame). Throws StatusError / ClosedError. */
  send(payload: Uint8Array): void {
    if (this.#inbox.error) throw this.#inbox.error;
    if (this.#localClosed) throw new StatusError(Code.FAILED_PRECONDITION, 'ttrpc: stream send side is closed');
    this.client.sendData(this.#id, 0, payload);
  }

  /** Tells the server this side sends nothing more (Data, remote-closed | no-data). */
  closeSend(): void {
    if (this.#localClosed) return;
    this.#localClosed = true;
    if (this.#inbox.error || this.#inbox.ended) return;
    this.client.sendData(this.#id, FLAG_REMOTE_CLOSED | FLAG_NO_DATA, EMPTY);
  }

  /** The next message from the server, or undefined once it has closed its side. */
  recv(): Promise<Uint8Array | undefined> {
    return this.#inbox.recv();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.#inbox[Symbol.asyncIterator]();
  }

  /** @internal */
  deadline(ms: number, what: string): void {
    this.#timer = setTimeout(() => this.#abandon(new StatusError(Code.DEADLINE_EXCEEDED, `context deadline exceeded (${what} after ${ms} ms)`)), ms);
  }

  /** @internal */
  watch(signal: AbortSignal): void {
    this.#signal = signal;
    this.#onAbort = () => this.#abandon(cancelled(signal));
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** @internal Ends the stream with an error (connection gone, oversize, ...). */
  fail(err: Error): void {
    if (this.#inbox.ended || !this.#inbox.fail(err)) return;
    this.#finish();
  }

  #abandon(err: Error): void {
    this.#slots?.delete(this.#id);
    this.fail(err);
  }

  #frame(type: number, flags: number, data: Buffer): void {
    if (type === TYPE_RESPONSE) {
      this.#slots?.delete(this.#id);
      const r = statusFrom(data);
      if (r.err) return this.fail(r.err);
      this.#inbox.push(r.payload);
      this.#end();
    } else if (type === TYPE_DATA) {
      if (!(flags & FLAG_NO_DATA)) this.#inbox.push(data);
      if (flags & FLAG_REMOTE_CLOSED) {
        this.#slots?.delete(this.#id);
        this.#end();
      }
    }
  }

  #end(): void {
    if (!this.#inbox.end()) return;
    this.#localClosed = true;
    this.#finish();
  }

  #finish(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#onAbort) this.#signal!.removeEventListener('abort', this.#onAbort);
  }
}
