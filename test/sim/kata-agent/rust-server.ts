// What ttrpc-rust 0.8 (the kata-agent's server) does differently from a Go server, put in front
// of our ttrpc-ts Server: a request for a service that is not registered is answered with
// INVALID_ARGUMENT "<service> service does not exist", an unknown method of a known service with
// UNIMPLEMENTED "<method> method" (Go: UNIMPLEMENTED "service <name>" / "method <name>").
// Frames are parsed just enough to read Request.service/method; everything else passes through.
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

const HEADER = 10;
const TYPE_REQUEST = 1;
const TYPE_RESPONSE = 2;
const INVALID_ARGUMENT = 3;
const UNIMPLEMENTED = 12;

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
  return out;
}

function field(tag: number, bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag, ...varint(bytes.length)]), bytes]);
}

/** Request.service (field 1) and .method (field 2) of an encoded ttrpc Request, or undefined if it cannot tell. */
export function requestTarget(b: Buffer): { service: string; method: string } | undefined {
  let service: string | undefined;
  let method = '';
  let i = 0;
  while (i < b.length) {
    const key = b[i++];
    const wire = key & 7;
    let len = 0;
    let shift = 0;
    if (wire === 0) { while (i < b.length && b[i++] & 0x80); continue; }
    if (wire !== 2) return undefined;
    for (;;) { const x = b[i++]; len |= (x & 0x7f) << shift; shift += 7; if (!(x & 0x80)) break; }
    if (key >> 3 === 1) service = b.subarray(i, i + len).toString('utf8');
    if (key >> 3 === 2) method = b.subarray(i, i + len).toString('utf8');
    i += len;
  }
  return service === undefined ? undefined : { service, method };
}

/** An encoded ttrpc Response carrying only a status. */
export function statusResponse(code: number, message: string): Buffer {
  const status = Buffer.concat([Buffer.from([0x08, ...varint(code)]), field(0x12, Buffer.from(message))]);
  return field(0x0a, status);
}

/** Wraps the guest end of a vsock connection; `known`: registered service → method names. */
export function rustServerQuirks(sock: Socket, known: Map<string, Set<string>>): Duplex {
  let buf: Buffer = Buffer.alloc(0);
  const d = new Duplex({
    read() { sock.resume(); },
    write(chunk: Buffer, _enc, cb) { sock.write(chunk, cb); },
    final(cb) { sock.end(); cb(); },
    destroy(err, cb) { sock.destroy(); cb(err); },
  });
  sock.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= HEADER) {
      const len = buf.readUInt32BE(0);
      if (buf.length < HEADER + len) break;
      const frame = buf.subarray(0, HEADER + len);
      buf = buf.subarray(HEADER + len);
      if (frame[8] === TYPE_REQUEST) {
        const target = requestTarget(frame.subarray(HEADER));
        const methods = target && known.get(target.service);
        if (target && (!methods || !methods.has(target.method))) {
          const body = methods ? statusResponse(UNIMPLEMENTED, `${target.method} method`)
            : statusResponse(INVALID_ARGUMENT, `${target.service} service does not exist`);
          const hdr = Buffer.alloc(HEADER);
          hdr.writeUInt32BE(body.length, 0);
          hdr.writeUInt32BE(frame.readUInt32BE(4), 4);
          hdr[8] = TYPE_RESPONSE;
          sock.write(Buffer.concat([hdr, body]));
          continue;
        }
      }
      if (!d.push(frame)) sock.pause();
    }
  });
  sock.on('end', () => d.push(null));
  sock.on('close', () => d.destroy());
  sock.on('error', (e) => d.destroy(e));
  return d;
}
