// The interop service of peer/main.go, served by ttrpc-ts (for Go clients and the benchmark).
// Messages are google.protobuf.BytesValue: field 1, bytes.
import { Code, Server, StatusError } from 'ttrpc-ts';

export const SERVICE = 'interop.v1.Peer';

/** Encodes a google.protobuf.BytesValue. */
export function bv(value: Uint8Array | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value) : Buffer.from(value.buffer, value.byteOffset, value.length);
  if (v.length === 0) return Buffer.alloc(0);
  const len: number[] = [];
  for (let n = v.length; ; ) {
    if (n < 0x80) {
      len.push(n);
      break;
    }
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  return Buffer.concat([Buffer.from([0x0a, ...len]), v]);
}

/** Decodes a google.protobuf.BytesValue (only field 1 is expected). */
export function unbv(b: Uint8Array): Buffer {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  if (buf.length === 0) return Buffer.alloc(0);
  if (buf[0] !== 0x0a) throw new Error(`not a BytesValue: starts with ${buf[0]}`);
  let len = 0;
  let shift = 0;
  let i = 1;
  for (;;) {
    const byte = buf[i++];
    len += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) break;
    shift += 7;
  }
  return buf.subarray(i, i + len);
}

export function registerPeerService(server: Server): void {
  server.register(SERVICE, {
    Echo: (p) => p, // BytesValue in, the same BytesValue out
    Meta: (_p, ctx) => bv(JSON.stringify(ctx.metadata)),
    Deadline: (_p, ctx) => bv(ctx.deadline === undefined ? 'none' : String(ctx.deadline - Date.now())),
    Sleep: (p, ctx) =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => resolve(bv('slept')), Number(unbv(p).toString()));
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(t);
          reject(new StatusError(Code.DEADLINE_EXCEEDED, 'sleep cut short'));
        });
      }),
    Fail: (p) => {
      const [code, ...msg] = unbv(p).toString().split(':');
      throw new StatusError(Number(code), msg.join(':'), [
        { typeUrl: 'type.googleapis.com/google.protobuf.StringValue', value: bv('detail') },
      ]);
    },
    Throw: () => {
      throw new Error('plain error');
    },
    Big: (p) => bv(Buffer.alloc(Number(unbv(p).toString()))),
  });
  server.registerStream(SERVICE + 'Streams', 'Sum', async (stream) => {
    let sum = 0;
    for await (const m of stream) for (const b of unbv(m)) sum += b;
    return bv(Buffer.from([sum & 0xff]));
  });
  server.registerStream(SERVICE + 'Streams', 'Count', async (stream) => {
    const n = unbv((await stream.recv())!)[0];
    for (let i = 0; i < n; i++) stream.send(bv(Buffer.from([i])));
  });
}
