import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseArgs } from './cli.js';
import { readFields } from './pbwire.js';
import { encodeBootstrapParams, socketAddress, socketPath } from './protocol.js';
import { createListener, runStart } from './start.js';

let dir: string;
const servers: Server[] = [];
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'kts-start-')); });
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

function listenAt(path: string): Promise<void> {
  mkdirSync(join(path, '..'), { recursive: true });
  return new Promise((r) => { const s = createServer(); servers.push(s); s.listen(path, () => r()); });
}

describe('start', () => {
  it('a pod container answers with its running sandbox\'s address and spawns nothing (BootstrapResult for 2.3+)', async () => {
    const socketDir = join(dir, 's');
    const sandbox = socketAddress({ grpcAddress: '/g.sock', namespace: 'k8s.io', id: 'sb1', socketDir });
    await listenAt(socketPath(sandbox));
    const bundle = join(dir, 'c1');
    mkdirSync(bundle);
    writeFileSync(join(bundle, 'config.json'), JSON.stringify({ annotations: { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'sb1' } }));
    const { flags } = parseArgs(['-namespace', 'k8s.io', '-address', '/g.sock', '-publish-binary', '/c', '-id', 'c1', 'start']);
    const stdin = encodeBootstrapParams({ instanceId: 'c1', namespace: 'k8s.io', socketDir });
    const r = await runStart({ flags, env: {}, cwd: bundle, stdin });
    expect(r.address).toBe(sandbox);
    expect(r.daemonPid).toBeUndefined();
    expect(readFileSync(join(bundle, 'address'), 'utf8')).toBe(sandbox);
    const f = readFields(r.output);
    expect(Buffer.from(f[1].value as Uint8Array).toString()).toBe(sandbox);
    expect(existsSync(join(bundle, 'shim.pid'))).toBe(false);
  });

  it('a live daemon already serving this id: start answers with its address', async () => {
    const socketDir = join(dir, 's');
    const sandbox = socketAddress({ grpcAddress: '/g.sock', namespace: 'default', id: 'x', socketDir });
    await listenAt(socketPath(sandbox));
    const bundle = join(dir, 'x');
    mkdirSync(bundle);
    writeFileSync(join(bundle, 'config.json'), '{}');
    const { flags } = parseArgs(['-namespace', 'default', '-address', '/g.sock', '-publish-binary', '/c', '-id', 'x', 'start']);
    const r = await runStart({ flags, env: {}, cwd: bundle, stdin: encodeBootstrapParams({ instanceId: 'x', namespace: 'default', socketDir }) });
    expect(r.daemonPid).toBeUndefined();
    expect(r.address).toBe(sandbox);
  });

  it('listener: dir 0700, socket 0600; a stale socket left by a killed daemon is replaced', async () => {
    const path = join(dir, 'sock', 'a');
    mkdirSync(join(dir, 'sock'));
    // A daemon SIGKILLed while listening leaves its socket file behind.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(existsSync(path)).toBe(true);
    const l = await createListener(path);
    expect('server' in l).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    (l as { server: Server }).server.close();
  });

  it('creates the socket dir 0700', async () => {
    const path = join(dir, 'fresh', 'b');
    const l = await createListener(path);
    expect(statSync(join(dir, 'fresh')).mode & 0o777).toBe(0o700);
    (l as { server: Server }).server.close();
  });

  it('refuses socket paths longer than 106 bytes', async () => {
    await expect(createListener(join(dir, 'x'.repeat(120)))).rejects.toThrow(/longer than 106 bytes/);
  });
});

describe('containerd version probe', () => {
  it('one gRPC Version call over h2c, then remembered for this containerd', async () => {
    const http2 = await import('node:http2');
    const { PbWriter } = await import('./pbwire.js');
    const { cachedContainerdVersion, containerdVersion } = await import('./start.js');
    let calls = 0;
    const srv = http2.createServer();
    srv.on('stream', (stream, headers) => {
      calls++;
      expect(headers[':path']).toBe('/containerd.services.version.v1.Version/Version');
      const msg = new PbWriter().string(1, 'v2.1.9').string(2, 'abc').finish();
      const frame = Buffer.alloc(5 + msg.length);
      frame.writeUInt32BE(msg.length, 1);
      Buffer.from(msg).copy(frame, 5);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame);
    });
    const sock = join(dir, 'c.sock');
    await new Promise<void>((r) => srv.listen(sock, () => r()));
    try {
      expect(await containerdVersion(sock, 2000)).toBe('v2.1.9');
      const cache = join(dir, 'cache');
      expect(await cachedContainerdVersion(sock, cache)).toBe('v2.1.9');
      expect(await cachedContainerdVersion(sock, cache)).toBe('v2.1.9');
      expect(calls).toBe(2);
      // Entries of containerds that are gone are pruned; the live one (our parent) stays.
      const { readdirSync: ls } = await import('node:fs');
      const [mine] = ls(cache);
      writeFileSync(join(cache, 'dead'), JSON.stringify({ who: '2147483646:1', version: 'v1.6.0' }));
      writeFileSync(join(cache, 'reused'), JSON.stringify({ who: `${process.pid}:1`, version: 'v1.7.0' }));
      writeFileSync(join(cache, 'garbage'), 'not json');
      writeFileSync(join(cache, `${mine}.2147483646`), '{');
      expect(await cachedContainerdVersion(sock, cache)).toBe('v2.1.9');
      expect(ls(cache)).toEqual([mine]);
      expect(await containerdVersion(join(dir, 'nobody.sock'), 500)).toBeUndefined();
    } finally {
      srv.close();
    }
  });
  it('with -debug, start-to-address is traced on the bundle\'s log, never on stdout', async () => {
    const socketDir = join(dir, 's');
    const sandbox = socketAddress({ grpcAddress: '/g.sock', namespace: 'k8s.io', id: 'sb2', socketDir });
    await listenAt(socketPath(sandbox));
    const bundle = join(dir, 'c2');
    mkdirSync(bundle);
    writeFileSync(join(bundle, 'log'), '');
    writeFileSync(join(bundle, 'config.json'), JSON.stringify({ annotations: { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'sb2' } }));
    const { flags } = parseArgs(['-namespace', 'k8s.io', '-address', '/g.sock', '-publish-binary', '/c', '-id', 'c2', '-debug', 'start']);
    const r = await runStart({ flags, env: {}, cwd: bundle, stdin: encodeBootstrapParams({ instanceId: 'c2', namespace: 'k8s.io', socketDir }) });
    expect(r.address).toBe(sandbox);
    expect(readFileSync(join(bundle, 'log'), 'utf8')).toMatch(/level=debug msg="span" subsystem=shim id=c2 pid=\d+ span=start-to-address duration_ms=[\d.]+ address=/);
    expect(Buffer.from(r.output).toString()).not.toContain('span');
  });
});
