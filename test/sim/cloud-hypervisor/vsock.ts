// Hybrid vsock, host side (cloud-hypervisor docs/vsock.md): the VMM listens on a Unix socket; a
// host client writes `CONNECT <port>\n`; if the guest listens on that port the VMM answers
// `OK <host-port>\n` and the stream becomes the raw connection, otherwise it closes without text.
// The simulated guest "listens on port P" by binding `<vsockDir>/<P>`.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

const MAX_LINE = 32;
const MAX_CONNECTIONS = 1023;

export interface VsockLog { debug(msg: string, f?: object): void; warn(msg: string, f?: object): void }

export class HybridVsock {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  // Host-side ports the VMM allocates for host-initiated connections start at 2^30.
  private nextHostPort = 2 ** 30;

  constructor(readonly socketPath: string, readonly vsockDir: string, private readonly log: VsockLog) {}

  /** Binds the socket; fails (like the real device creation) if the path already exists. */
  async listen(): Promise<void> {
    if (existsSync(this.socketPath)) throw new Error(`vsock socket ${this.socketPath}: Address already in use`);
    const server = createServer((c) => this.accept(c));
    server.maxConnections = MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => { server.off('error', reject); resolve(); });
    });
    this.server = server;
    this.bound = true;
  }
  private bound = false;

  private accept(c: Socket): void {
    this.sockets.add(c);
    c.on('close', () => this.sockets.delete(c));
    c.on('error', () => {});
    let line = '';
    const onData = (chunk: Buffer) => {
      const nl = chunk.indexOf(0x0a);
      line += chunk.subarray(0, nl < 0 ? chunk.length : nl).toString('latin1');
      if (nl < 0) {
        if (line.length > MAX_LINE) c.destroy();
        return;
      }
      c.off('data', onData);
      c.pause();
      // Bytes after the newline belong to the connection (the VMM reads the line byte by byte).
      const rest = chunk.subarray(nl + 1);
      if (rest.length) c.unshift(rest);
      const m = /^connect (\d+)$/i.exec(line.trim());
      if (!m) { this.log.debug('vsock: bad handshake line', { line }); c.destroy(); return; }
      this.forward(c, Number(m[1]));
    };
    c.on('data', onData);
  }

  private forward(c: Socket, port: number): void {
    const target = join(this.vsockDir, String(port));
    const g = connect(target);
    this.sockets.add(g);
    c.on('close', () => g.destroy());
    g.on('close', () => { this.sockets.delete(g); c.destroy(); });
    g.once('error', (e) => {
      this.log.debug('vsock: guest not listening', { port, err: (e as Error).message });
      g.destroy();
      c.destroy();
    });
    g.on('connect', () => {
      const hostPort = this.nextHostPort++;
      c.write(`OK ${hostPort}\n`);
      c.pipe(g);
      g.pipe(c);
      c.resume();
    });
  }

  /** Drops every connection and removes the socket file. */
  close(): void {
    this.server?.close();
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (this.bound) { try { unlinkSync(this.socketPath); } catch { /* already gone */ } }
    this.bound = false;
  }
}
