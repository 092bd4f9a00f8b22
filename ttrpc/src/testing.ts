// Test helpers: unique socket names and a raw frame-level peer to poke servers and clients with.
import net from 'node:net';
import { requestSize, Writer, writeRequest, decodeResponse, responseSize, writeResponse, type RequestMsg, type StatusMsg } from './codec.js';
import { allocFrame, FrameReader, HEADER, TYPE_REQUEST, TYPE_RESPONSE } from './framing.js';

let seq = 0;
/** A fresh abstract socket name ('@...'), unique per process and call. */
export function abstractName(tag: string): string {
  return `@ttrpc-ts-test-${process.pid}-${tag}-${++seq}`;
}

export interface RawFrame {
  id: number;
  type: number;
  flags: number;
  data: Buffer;
}

export function requestFrame(id: number, req: Partial<RequestMsg>, flags = 0): Buffer {
  const r: RequestMsg = { service: '', method: '', payload: new Uint8Array(), hasPayload: false, timeoutNano: 0, metadata: [], ...req };
  const lens: number[] = [];
  const size = requestSize(r, lens);
  const f = allocFrame(id, TYPE_REQUEST, flags, size);
  writeRequest(new Writer(f, HEADER), r, lens);
  return f;
}

export function responseFrame(id: number, status: StatusMsg, payload: Uint8Array): Buffer {
  const f = allocFrame(id, TYPE_RESPONSE, 0, responseSize(status, payload));
  writeResponse(new Writer(f, HEADER), status, payload);
  return f;
}

export function frame(id: number, type: number, flags: number, data: Uint8Array = new Uint8Array()): Buffer {
  const f = allocFrame(id, type, flags, data.length);
  f.set(data, HEADER);
  return f;
}

/** A socket that collects whole frames; next() waits for the next one. */
export class RawPeer {
  readonly frames: RawFrame[] = [];
  readonly oversize: { id: number; length: number }[] = [];
  #waiters: ((f: RawFrame) => void)[] = [];
  #closed: Promise<void>;

  constructor(readonly socket: net.Socket) {
    const reader = new FrameReader({
      frame: (id, type, flags, data) => {
        const f = { id, type, flags, data: Buffer.from(data) };
        const w = this.#waiters.shift();
        if (w) w(f);
        else this.frames.push(f);
      },
      oversize: (id, _t, _f, length) => this.oversize.push({ id, length }),
      garbage: () => socket.destroy(),
    });
    socket.on('data', (c: Buffer) => reader.push(c));
    socket.on('error', () => {});
    this.#closed = new Promise((resolve) => socket.on('close', () => resolve()));
  }

  static connect(path: string): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path: path.startsWith('@') ? '\0' + path.slice(1) : path });
      s.once('error', reject);
      s.once('connect', () => resolve(new RawPeer(s)));
    });
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  next(timeoutMs = 2000): Promise<RawFrame> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no frame within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push((fr) => {
        clearTimeout(t);
        resolve(fr);
      });
    });
  }

  /** Decoded status (code, message) of the next frame, which must be a Response. */
  async nextStatus(): Promise<{ id: number; code: number; message: string; payload: Uint8Array }> {
    const f = await this.next();
    if (f.type !== TYPE_RESPONSE) throw new Error(`frame type ${f.type}, want Response`);
    const r = decodeResponse(f.data);
    return { id: f.id, code: r.status?.code ?? 0, message: r.status?.message ?? '', payload: r.payload };
  }

  closed(): Promise<void> {
    return this.#closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
