// Helpers for the simulators' own tests: start the built executables, talk HTTP over the API
// socket, dial hybrid vsock, and check that nothing was left behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestMountDir } from './guest.js';

export interface Started { child: ChildProcess; stderr: () => string; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }

export function start(exe: string, args: string[], env: NodeJS.ProcessEnv = {}): Started {
  const child = spawn(exe, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => { err += d; });
  child.stdout!.on('data', (d) => { err += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, stderr: () => err, exited };
}

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface HttpReply { status: number; headers: Record<string, string | string[] | undefined>; body: string; json: any }

export function api(socketPath: string, method: 'GET' | 'PUT', endpoint: string, body?: unknown, timeoutMs = 10_000): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    const req = request({ socketPath, method, path: `/api/v1/${endpoint}`, headers: { Host: 'localhost', 'Content-Length': Buffer.byteLength(payload), ...(payload ? { 'Content-Type': 'application/json' } : {}) }, timeout: timeoutMs }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => {
        let json: unknown;
        try { json = data ? JSON.parse(data) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode!, headers: res.headers, body: data, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${endpoint}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Dials hybrid vsock: resolves with the `OK ...` line and the socket, or with `eof` when closed without text. */
export function dialVsock(socketPath: string, port: number, extra = ''): Promise<{ ok: string; socket: Socket; rest: string } | 'eof'> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath, () => s.write(`CONNECT ${port}\n${extra}`));
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      s.off('close', onClose);
      // Paused so that nothing is lost before the caller attaches its reader.
      s.pause();
      resolve({ ok: buf.slice(0, nl), socket: s, rest: buf.slice(nl + 1) });
    };
    const onClose = () => (buf ? reject(new Error(`closed after ${JSON.stringify(buf)}`)) : resolve('eof'));
    s.on('data', onData);
    s.on('close', onClose);
    s.on('error', () => {});
  });
}

/** Reads lines from a socket, keeping what follows a line for the next call. */
export function lineReader(s: Socket, initial = ''): { next(): Promise<string> } {
  let buf = initial;
  let closed = false;
  let wake: (() => void) | undefined;
  s.on('data', (d: Buffer) => { buf += d.toString('latin1'); wake?.(); });
  s.on('close', () => { closed = true; wake?.(); });
  s.resume();
  return {
    async next() {
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          return line;
        }
        if (closed) throw new Error(`closed before a line: ${JSON.stringify(buf)}`);
        await new Promise<void>((r) => { wake = r; });
      }
    },
  };
}

export function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** Guest dirs of the cloud-hypervisor simulator left in `tmp` (the TMPDIR the test gave the VMM),
 *  and cgroups named after them. (A guest removes its cgroups before its dir.) */
export function simLeftovers(tmp: string = tmpdir()): string[] {
  const names = readdirSync(tmp).filter((f) => f.startsWith('ch-sim-guest-'));
  const left = names.map((f) => join(tmp, f));
  for (const n of names) if (existsSync(guestMountDir(n))) left.push(guestMountDir(n));
  for (const ctrl of ['freezer', 'memory', 'cpu', 'pids', 'devices', 'blkio', 'cpuset', 'cpuacct']) {
    for (const n of names) {
      const d = join('/sys/fs/cgroup', ctrl, 'kata-ts-sim', n);
      if (existsSync(d)) left.push(d);
    }
  }
  return left;
}

/** Children of `pid` (from /proc), to find what a simulator started. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = procStat(ent);
      if (stat.ppid === pid) out.push(Number(ent));
    } catch { /* gone */ }
  }
  return out;
}

function procStat(pid: string): { ppid: number } {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[1]) };
}

/** Dials until the guest answers OK (it boots asynchronously, like a real VM), as the Kata runtime does. */
export async function dialVsockRetry(socketPath: string, port: number, timeoutMs = 15_000, extra = ''): Promise<{ ok: string; socket: Socket; rest: string }> {
  const t0 = Date.now();
  for (;;) {
    const r = await dialVsock(socketPath, port, extra).catch(() => 'eof' as const);
    if (r !== 'eof') return r;
    if (Date.now() - t0 > timeoutMs) throw new Error(`nothing listens on vsock port ${port} of ${socketPath} after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}
