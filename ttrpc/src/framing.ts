// Frames: 10-byte big-endian header + data (PROTOCOL.md "Frames").
import type { Duplex } from 'node:stream';
import { MAX_MESSAGE } from './status.js';

export const HEADER = 10;
export const TYPE_REQUEST = 1;
export const TYPE_RESPONSE = 2;
export const TYPE_DATA = 3;
export const FLAG_REMOTE_CLOSED = 0x1;
export const FLAG_REMOTE_OPEN = 0x2;
export const FLAG_NO_DATA = 0x4;

export interface FrameSink {
  /** A whole frame; `data` is a view valid for as long as the caller keeps it. */
  frame(streamId: number, type: number, flags: number, data: Buffer): void;
  /** A frame over MAX_MESSAGE was seen; its data is being discarded. */
  oversize(streamId: number, type: number, flags: number, length: number): void;
  /** Bytes that cannot be ttrpc (length ≥ 16 MiB); the reader stops. */
  garbage(why: string): void;
}

/** Allocates a frame buffer with its header written; the caller fills bytes HEADER.. */
export function allocFrame(streamId: number, type: number, flags: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER + length);
  buf.writeUInt32BE(length, 0);
  buf.writeUInt32BE(streamId, 4);
  buf[8] = type;
  buf[9] = flags;
  return buf;
}

/**
 * Reassembles frames from arbitrary chunks. A frame that fits in one chunk is handed out as a view
 * (no copy); a split frame is copied once, when its last byte arrives (no repeated concatenation).
 * Oversize frames are skipped byte-for-byte as they arrive and never buffered.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private held = 0;
  private need = HEADER; // bytes needed before parsing can progress
  private discard = 0; // bytes of an oversize frame still to drop
  private stopped = false;

  constructor(private readonly sink: FrameSink) {}

  push(chunk: Buffer): void {
    if (this.stopped) return;
    if (this.discard > 0) {
      const n = Math.min(this.discard, chunk.length);
      this.discard -= n;
      if (n === chunk.length) return;
      chunk = chunk.subarray(n);
    }
    if (this.held > 0) {
      this.chunks.push(chunk);
      this.held += chunk.length;
      if (this.held < this.need) return;
      chunk = Buffer.concat(this.chunks, this.held);
      this.chunks = [];
      this.held = 0;
    }
    let off = 0;
    const end = chunk.length;
    while (end - off >= HEADER) {
      const length = chunk.readUInt32BE(off);
      const streamId = chunk.readUInt32BE(off + 4);
      const type = chunk[off + 8];
      const flags = chunk[off + 9];
      if (length > MAX_MESSAGE) {
        // A ttrpc peer never sends ≥ 16 MiB (first byte non-zero): treat it as a foreign protocol.
        if (chunk[off] !== 0) {
          this.stopped = true;
          this.sink.garbage(`frame length ${length} is not ttrpc (header ${chunk.subarray(off, off + HEADER).toString('hex')})`);
          return;
        }
        const have = Math.min(end - off - HEADER, length);
        off += HEADER + have;
        this.discard = length - have;
        this.sink.oversize(streamId, type, flags, length);
        if (this.stopped || this.discard > 0) return;
        continue;
      }
      if (end - off - HEADER < length) {
        this.need = HEADER + length;
        break;
      }
      const start = off + HEADER;
      off = start + length;
      this.sink.frame(streamId, type, flags, chunk.subarray(start, off));
      if (this.stopped) return;
    }
    if (off < end) {
      if (end - off < HEADER) this.need = HEADER;
      this.chunks.push(chunk.subarray(off));
      this.held = end - off;
    }
  }

  /** Bytes held for an incomplete frame (oversize data is never held). */
  get buffered(): number {
    return this.held;
  }

  /** Stops parsing; later chunks are ignored. */
  stop(): void {
    this.stopped = true;
    this.chunks = [];
    this.held = 0;
  }
}

/**
 * Writes whole frames. The first frame of a tick goes out at once (lowest latency for a lone
 * call); further frames in the same tick are corked and leave together in one writev on the next
 * tick (a burst of answers costs two syscalls, not one per frame).
 */
export class FrameWriter {
  private corked = false;
  private inTick = false;
  constructor(private readonly socket: Duplex) {}

  write(frame: Buffer): void {
    if (!this.inTick) {
      this.inTick = true;
      process.nextTick(endTick, this);
    } else if (!this.corked) {
      this.corked = true;
      this.socket.cork();
    }
    this.socket.write(frame);
  }

  /** One frame given in pieces (a large payload is sent as it is, not copied into the frame);
   *  the pieces leave together in one writev on the next tick. The caller must not change them. */
  writeParts(parts: readonly Uint8Array[]): void {
    if (!this.inTick) {
      this.inTick = true;
      process.nextTick(endTick, this);
    }
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
    }
    for (const p of parts) this.socket.write(p);
  }

  /** Sends any corked frames now. */
  flushNow(): void {
    this.inTick = false;
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
  }
}

function endTick(w: FrameWriter): void {
  w.flushNow();
}
