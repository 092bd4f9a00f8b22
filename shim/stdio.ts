// containerd's stdio for a process: fifos, `file://` and `binary://` log URIs, or nothing.
// The scheme is decided by the stdout string only, as runc's shim and Kata do.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants, mkdirSync, openSync, closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { dirname } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { STDIN_CHUNK } from '../agent-client/index.js';
import { StdioError, describe } from './errors.js';
import type { Logger } from './log.js';

export interface StdioStrings {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

export type StdioSpec =
  | { kind: 'null' }
  | { kind: 'fifo'; stdin: string; stdout: string; stderr: string; terminal: boolean }
  | { kind: 'file'; path: string }
  | { kind: 'binary'; path: string; args: string[]; needsReadyByte: boolean };

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

/** Classifies containerd's three stdio strings; an unknown URI scheme is an error naming it. */
export function parseStdio(s: StdioStrings): StdioSpec {
  if (!s.stdin && !s.stdout && !s.stderr) return { kind: 'null' };
  const m = SCHEME.exec(s.stdout);
  if (!m) return { kind: 'fifo', stdin: s.stdin, stdout: s.stdout, stderr: s.terminal ? '' : s.stderr, terminal: s.terminal };
  let url: URL;
  try {
    url = new URL(s.stdout);
  } catch (err) {
    throw new StdioError(`invalid stdio URI ${JSON.stringify(s.stdout)}`, { cause: err });
  }
  const scheme = m[1].toLowerCase();
  const path = decodeURIComponent(url.pathname);
  if (scheme === 'file' || scheme === 'binary' || scheme === 'binary-v2') {
    if (!path.startsWith('/') || path === '/') throw new StdioError(`stdio URI ${JSON.stringify(s.stdout)} needs an absolute path`);
  }
  if (scheme === 'file') return { kind: 'file', path };
  if (scheme === 'binary' || scheme === 'binary-v2') {
    const args: string[] = [];
    for (const [k, v] of url.searchParams) {
      args.push(k);
      if (v !== '') args.push(v);
    }
    return { kind: 'binary', path, args, needsReadyByte: scheme === 'binary-v2' };
  }
  throw new StdioError(`unknown STDIO scheme "${scheme}" in ${JSON.stringify(s.stdout)} (want a fifo path, file:// or binary://)`);
}

/** The host ends of one process's stdio. */
export interface ProcessIO {
  readonly stdin?: Readable;
  readonly stdout?: Writable;
  readonly stderr?: Writable;
  /** Stops forwarding stdin: the reader sees EOF (→ CloseStdin in the guest). */
  closeStdin(): void;
  /** Ends the outputs once written (bounded), then releases everything. */
  close(timeoutMs?: number): Promise<void>;
  /** Releases everything now. */
  destroy(): void;
}

/** A fifo end as a libuv pipe: non-blocking, with backpressure, never a thread-pool write. */
/** After CloseIO, how long a stdin fifo may stay open without sending anything before it is cut off. */
const STDIN_DRAIN_IDLE_MS = 2_000;

function fifoSocket(path: string, flags: number, what: string, dir: 'in' | 'out'): Socket {
  let fd: number;
  try {
    fd = openSync(path, flags);
  } catch (err) {
    throw new StdioError(`cannot open ${what} fifo ${path}`, { cause: err });
  }
  try {
    return new Socket({ fd, readable: dir === 'in', writable: dir === 'out' });
  } catch (err) {
    closeSync(fd);
    throw new StdioError(`cannot use ${what} ${path}`, { cause: err });
  }
}

function waitEnded(w: Writable, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (w.destroyed || w.writableFinished) return resolve();
    const done = () => { clearTimeout(t); resolve(); };
    const t = setTimeout(done, timeoutMs);
    w.once('finish', done);
    w.once('close', done);
    w.once('error', done);
    if (!w.writableEnded) w.end();
  });
}

/** Opens containerd's stdio for a process. Opening never blocks on a fifo nobody opened. */
export async function openProcessIO(spec: StdioSpec, o: { containerId: string; namespace: string; log: Logger }): Promise<ProcessIO> {
  switch (spec.kind) {
    case 'null':
      return makeIO({});
    case 'fifo': {
      const opened: Socket[] = [];
      try {
        // O_RDWR: the open never blocks and the fifo never sees EOF while containerd reopens it.
        const stdout = spec.stdout ? fifoSocket(spec.stdout, constants.O_RDWR, 'stdout', 'out') : undefined;
        if (stdout) opened.push(stdout);
        const stderr = spec.stderr ? fifoSocket(spec.stderr, constants.O_RDWR, 'stderr', 'out') : undefined;
        if (stderr) opened.push(stderr);
        // Non-blocking read-only: epoll reports nothing until a writer comes, and EOF once it leaves.
        const stdinSock = spec.stdin ? fifoSocket(spec.stdin, constants.O_RDONLY | constants.O_NONBLOCK, 'stdin', 'in') : undefined;
        if (stdinSock) opened.push(stdinSock);
        return makeIO({ stdout, stderr, stdinSock });
      } catch (err) {
        for (const s of opened) s.destroy();
        throw err;
      }
    }
    case 'file': {
      const open = (what: string) => {
        try {
          mkdirSync(dirname(spec.path), { recursive: true, mode: 0o755 });
          return openSync(spec.path, constants.O_CREAT | constants.O_APPEND | constants.O_WRONLY, 0o640);
        } catch (err) {
          throw new StdioError(`cannot open ${what} log file ${spec.path}`, { cause: err });
        }
      };
      const { createWriteStream } = await import('node:fs');
      const outFd = open('stdout');
      let errFd: number;
      try { errFd = open('stderr'); } catch (err) { closeSync(outFd); throw err; }
      return makeIO({
        stdout: createWriteStream('', { fd: outFd }),
        stderr: createWriteStream('', { fd: errFd }),
      });
    }
    case 'binary':
      return openBinaryLogger(spec, o);
  }
}

async function openBinaryLogger(
  spec: Extract<StdioSpec, { kind: 'binary' }>,
  o: { containerId: string; namespace: string; log: Logger },
): Promise<ProcessIO> {
  let child: ChildProcess;
  try {
    child = spawn(spec.path, spec.args, {
      env: { ...process.env, CONTAINER_ID: o.containerId, CONTAINER_NAMESPACE: o.namespace },
      stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
      detached: false,
    });
  } catch (err) {
    throw new StdioError(`cannot start logging binary ${spec.path}`, { cause: err });
  }
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const pipes = child.stdio as unknown as Socket[];
  const stdout = pipes[3];
  const stderr = pipes[4];
  const ready = pipes[5];
  // The logger signals ready by writing a byte to fd 5 or closing it.
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new StdioError(`logging binary ${spec.path} did not signal ready within 10s`)), 10_000);
      let got = false;
      const finish = (err?: Error) => {
        clearTimeout(t);
        if (err) reject(err);
        else if (spec.needsReadyByte && !got) reject(new StdioError(`logging binary ${spec.path} closed its ready pipe without a byte`));
        else resolve();
      };
      child.once('error', (err) => finish(new StdioError(`cannot start logging binary ${spec.path}`, { cause: err })));
      ready.once('data', () => { got = true; finish(); });
      ready.once('end', () => finish());
      ready.once('close', () => finish());
    });
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    ready.destroy();
  }
  for (const s of [stdout, stderr]) s.on('error', (err) => o.log.warn('logging binary pipe failed', { error: describe(err) }));
  return makeIO({
    stdout,
    stderr,
    onClose: async () => {
      // Kata gives the logger up to 12 s to finish after its pipes close.
      const t = setTimeout(() => child.kill('SIGKILL'), 12_000);
      await exited;
      clearTimeout(t);
    },
    onDestroy: () => child.kill('SIGKILL'),
  });
}

function makeIO(p: {
  stdout?: Writable;
  stderr?: Writable;
  stdinSock?: Socket;
  onClose?: () => Promise<void>;
  onDestroy?: () => void;
}): ProcessIO {
  // The reader gets a PassThrough we control, so CloseIO can end it without touching the fifo.
  let stdin: PassThrough | undefined;
  if (p.stdinSock) {
    // Room for one full WriteStdin while the previous one is in flight (agent-client STDIN_CHUNK).
    stdin = new PassThrough({ highWaterMark: STDIN_CHUNK });
    p.stdinSock.on('error', () => stdin!.end());
    p.stdinSock.pipe(stdin);
  }
  for (const w of [p.stdout, p.stderr]) w?.on('error', () => { /* reader went away; the pump sees the failed write */ });
  let closed = false;
  const cutStdin = () => {
    if (p.stdinSock) {
      p.stdinSock.unpipe();
      p.stdinSock.destroy();
    }
    if (stdin && !stdin.writableEnded) stdin.end();
  };
  // containerd's client closes its end of the fifo before it sends CloseIO, so what it wrote
  // may still sit in the fifo or in our buffers: read on to EOF (the pipe then ends `stdin`).
  // Only a writer that stays and sends nothing is cut off, after STDIN_DRAIN_IDLE_MS.
  const closeStdin = () => {
    const sock = p.stdinSock;
    if (!sock || sock.destroyed || sock.readableEnded) return cutStdin();
    let progressed = false;
    const onData = () => { progressed = true; };
    sock.on('data', onData);
    const check = () => {
      // Backpressure (the guest is slow), not the writer, may be what holds data back.
      const waiting = sock.isPaused() || (stdin?.writableLength ?? 0) > 0;
      if (progressed || waiting) {
        progressed = false;
        timer.refresh();
        return;
      }
      cutStdin();
    };
    const timer = setTimeout(check, STDIN_DRAIN_IDLE_MS);
    sock.once('close', () => {
      clearTimeout(timer);
      sock.off('data', onData);
    });
  };
  return {
    stdin,
    stdout: p.stdout,
    stderr: p.stderr,
    closeStdin,
    async close(timeoutMs = 5_000) {
      if (closed) return;
      closed = true;
      closeStdin();
      await Promise.all([p.stdout, p.stderr].map((w) => (w ? waitEnded(w, timeoutMs) : undefined)));
      p.stdout?.destroy();
      p.stderr?.destroy();
      await p.onClose?.();
    },
    destroy() {
      closed = true;
      cutStdin();
      p.stdout?.destroy();
      p.stderr?.destroy();
      p.onDestroy?.();
    },
  };
}
