// The frontend side of a vhost-user connection, as far as the simulator needs it: connect to the
// backend's socket and complete VHOST_USER_GET_FEATURES. The connection then stays open for the
// life of the VM; virtiofsd serves exactly one frontend and exits when it disconnects.
import { connect, type Socket } from 'node:net';

const GET_FEATURES = 1;
const VERSION_1 = 0x1;
const REPLY = 0x4;
/** VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES: what a virtio-fs backend must offer. */
const REQUIRED = (1n << 32n) | (1n << 30n);

export interface VhostUserConnection {
  socket: Socket;
  features: bigint;
}

/** Connects and exchanges GET_FEATURES within timeoutMs; the message names the socket and the failure. */
export function vhostUserHandshake(path: string, timeoutMs = 5000): Promise<VhostUserConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let buf = Buffer.alloc(0);
    const fail = (why: string) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`vhost-user backend ${path}: ${why}`));
    };
    const timer = setTimeout(() => fail(`no reply to GET_FEATURES within ${timeoutMs} ms`), timeoutMs);
    socket.on('error', (e) => fail((e as Error).message));
    socket.on('close', () => fail('connection closed during the handshake'));
    socket.on('connect', () => {
      const hdr = Buffer.alloc(12);
      hdr.writeUInt32LE(GET_FEATURES, 0);
      hdr.writeUInt32LE(VERSION_1, 4);
      hdr.writeUInt32LE(0, 8);
      socket.write(hdr);
    });
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 12) return;
      const req = buf.readUInt32LE(0);
      const flags = buf.readUInt32LE(4);
      const size = buf.readUInt32LE(8);
      if (req !== GET_FEATURES || flags !== (VERSION_1 | REPLY) || size !== 8) {
        return fail(`unexpected reply header request=${req} flags=0x${flags.toString(16)} size=${size}`);
      }
      if (buf.length < 20) return;
      const features = buf.readBigUInt64LE(12);
      if ((features & REQUIRED) !== REQUIRED) return fail(`backend features 0x${features.toString(16)} lack VERSION_1/PROTOCOL_FEATURES`);
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      resolve({ socket, features });
    });
  });
}
