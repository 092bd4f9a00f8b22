// Test helper: an in-process stand-in for the VMM's hybrid vsock socket. Connections get the
// behaviour of `plan` (EOF while "booting", then OK) and, once accepted, are served by a real
// ttrpc-ts Server with the given handlers.
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, type UnaryHandler } from 'ttrpc-ts';

export interface FakeVsock {
  path: string;
  dir: string;
  server: Server;
  connects: string[];
  sockets: Set<net.Socket>;
  /** Starts listening (a dialer started before sees ENOENT). */
  listen(): Promise<void>;
  close(): Promise<void>;
}

export function fakeVsock(o: { eofFirst?: number; reply?: string; after?: string; handlers?: Record<string, Record<string, UnaryHandler>> } = {}): FakeVsock {
  const dir = mkdtempSync(join(tmpdir(), 'agent-client-'));
  const path = join(dir, 'clh.sock');
  const server = new Server();
  for (const [svc, m] of Object.entries(o.handlers ?? {})) server.register(svc, m);
  const connects: string[] = [];
  const sockets = new Set<net.Socket>();
  let eofLeft = o.eofFirst ?? 0;
  const net_ = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      connects.push(buf.slice(0, nl));
      if (eofLeft > 0) {
        eofLeft--;
        s.destroy();
        return;
      }
      s.pause();
      const rest = buf.slice(nl + 1);
      if (rest) s.unshift(Buffer.from(rest, 'latin1'));
      s.write((o.reply ?? 'OK 1073741824') + '\n' + (o.after ?? ''));
      if (!(o.reply ?? 'OK').includes('OK')) return void s.end();
      server.serveConnection(s);
      s.resume();
    };
    s.on('data', onData);
  });
  return {
    path, dir, server, connects, sockets,
    listen: () => new Promise((resolve) => net_.listen(path, () => resolve())),
    close: async () => {
      server.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => (net_.listening ? net_.close(() => resolve()) : resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
