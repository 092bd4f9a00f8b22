import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { afterEach, describe, expect, it } from 'vitest';
import { socketPath } from './address.js';
import { Client } from './client.js';
import { Server } from './server.js';
import { abstractName } from './testing.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ttrpc-ts-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function serveEcho(target: Parameters<Server['listen']>[0]): Promise<Server> {
  const s = new Server();
  s.register('t.E', { Echo: (p) => p });
  await s.listen(target);
  cleanups.push(() => s.close());
  return s;
}

async function echoVia(address: string): Promise<string> {
  const c = await Client.connect(address);
  try {
    return Buffer.from(await c.call('t.E', 'Echo', Buffer.from('hi'))).toString();
  } finally {
    c.close();
  }
}

describe('addresses', () => {
  it('maps unix://, file paths and abstract names to socket paths', () => {
    expect(socketPath('unix:///run/x.sock')).toBe('/run/x.sock');
    expect(socketPath('/run/x.sock')).toBe('/run/x.sock');
    expect(socketPath('@abc')).toBe('\0abc');
    expect(socketPath('\0abc')).toBe('\0abc');
    expect(socketPath('unix://@abc')).toBe('\0abc');
  });

  it('rejects empty, non-unix and too-long addresses, naming them', () => {
    expect(() => socketPath('')).toThrow(/"" is empty/);
    expect(() => socketPath('tcp://1.2.3.4:5')).toThrow(/only unix:\/\/ is supported/);
    expect(() => socketPath('/' + 'x'.repeat(120))).toThrow(/longer than a Unix socket path/);
  });

  it('abstract sockets: @name and \\0name reach the same listener', async () => {
    const name = abstractName('abs');
    await serveEcho(name);
    expect(await echoVia(name)).toBe('hi');
    expect(await echoVia('\0' + name.slice(1))).toBe('hi');
    expect(await echoVia('unix://' + name)).toBe('hi');
  });

  it('file path socket, with or without unix://; close() removes the socket file', async () => {
    const path = join(tempDir(), 's.sock');
    const s = await serveEcho(path);
    expect(await echoVia(path)).toBe('hi');
    expect(await echoVia('unix://' + path)).toBe('hi');
    s.close();
    await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(path)).toBe(false);
  });

  it('listen on a path in use → error naming the path and EADDRINUSE', async () => {
    const path = join(tempDir(), 's.sock');
    await serveEcho(path);
    const s2 = new Server();
    await expect(s2.listen(path)).rejects.toThrow(new RegExp(`cannot listen on "${path}": EADDRINUSE`));
  });

  it('an existing net.Server is adopted', async () => {
    const name = abstractName('adopt');
    const ns = net.createServer();
    await new Promise<void>((r) => ns.listen({ path: socketPath(name) }, r));
    await serveEcho(ns);
    expect(await echoVia(name)).toBe('hi');
  });

  it('listen({fd}) serves an inherited listening socket (fd 3 of a child process)', async () => {
    const dir = tempDir();
    const entry = join(dir, 'child.ts');
    const index = fileURLToPath(new URL('./index.ts', import.meta.url));
    writeFileSync(
      entry,
      `import { Server } from ${JSON.stringify(index)};
       const s = new Server();
       s.register('t.E', { Echo: (p) => p, Pid: () => Buffer.from(String(process.pid)) });
       s.listen({ fd: 3 }).then(() => process.stdout.write('ready\\n'));
       process.on('SIGTERM', () => { s.close(); process.exit(0); });`,
    );
    buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', outfile: join(dir, 'child.mjs'), logLevel: 'error' });

    const name = abstractName('fd');
    const parent = net.createServer();
    await new Promise<void>((r) => parent.listen({ path: socketPath(name) }, r));
    const fd = (parent as unknown as { _handle: { fd: number } })._handle.fd;
    const child = spawn(process.execPath, [join(dir, 'child.mjs')], { stdio: ['ignore', 'pipe', 'inherit', fd] });
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.on('exit', (c) => reject(new Error(`child exited ${c}`)));
    });
    parent.close(); // only the child holds the socket now

    const c = await Client.connect(name);
    cleanups.push(() => c.close());
    expect(Buffer.from(await c.call('t.E', 'Pid', new Uint8Array())).toString()).toBe(String(child.pid));
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGTERM');
    await exited;
  });
});
