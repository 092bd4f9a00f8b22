// `start`: runs once per container, so it stays lean (no generated protobuf code, no ttrpc).
// It answers with the sandbox's address for a pod container, or creates the socket, re-executes
// itself detached as the daemon with the listener on fd 3, and prints the address.
import { spawn } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync, chmodSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { connect, createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { daemonArgs, readEnv, type ShimFlags } from './cli.js';
import { StartError } from './errors.js';
import { formatLine } from './log.js';
import { readFields, str } from './pbwire.js';
import {
  MAX_SOCKET_PATH, answerForm, containerKind, encodeAnswer, majorVersion, parseStartStdin, socketAddress, socketPath,
  type StartStdin,
} from './protocol.js';

/** Env var telling the daemon which socket file it serves (to remove it when it exits). */
export const SOCKET_PATH_ENV = 'KATA_TS_SHIM_SOCKET';

export interface StartResult {
  /** Bytes to print on stdout. */
  output: Uint8Array;
  address: string;
  /** Pid of the daemon spawned, undefined when an existing one serves this container. */
  daemonPid?: number;
}

/** Reads all of stdin; empty when there is none. */
export async function readAllStdin(): Promise<Uint8Array> {
  try {
    return readFileSync(0);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EAGAIN') return new Uint8Array();
  }
  // Non-blocking stdin: read it as a stream, bounded.
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = () => { clearTimeout(t); resolve(Buffer.concat(chunks)); };
    const t = setTimeout(done, 2000);
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.once('end', done);
    process.stdin.once('error', done);
  });
}

function readSpecAnnotations(bundle: string): Record<string, string> | undefined {
  try {
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    return spec?.annotations ?? undefined;
  } catch {
    return undefined;
  }
}

/** True when something accepts connections on that socket path (within timeoutMs). */
export function canConnect(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (ok: boolean) => { clearTimeout(t); s.destroy(); resolve(ok); };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function listen(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ path, exclusive: true }, () => { srv.off('error', reject); resolve(srv); });
  });
}

/** Creates the listening socket: dir 0700, socket 0600; a stale socket is removed once. */
export async function createListener(path: string): Promise<{ server: Server } | { existing: true }> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new StartError(`socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes`);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  for (let attempt = 0; ; attempt++) {
    try {
      const server = await listen(path);
      chmodSync(path, 0o600);
      return { server };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt > 0) {
        throw new StartError(`cannot listen on ${path}`, { cause: err });
      }
      // A live shim already serves this id (start called twice): answer with its address.
      if (await canConnect(path)) return { existing: true };
      rmSync(path, { force: true });
    }
  }
}

/** How to run this program again (a single executable has no script argument). */
export function selfCommand(): { file: string; args: string[] } {
  let sea = false;
  try {
    sea = (createRequire(import.meta.url)('node:sea') as { isSea(): boolean }).isSea();
  } catch { /* older Node: not a single executable */ }
  if (sea) return { file: process.execPath, args: [] };
  return { file: process.execPath, args: [...process.execArgv, process.argv[1]] };
}

/**
 * Asks containerd's gRPC Version service for its version: the only way to tell 2.0–2.2 (which
 * accept task API v3) from 1.7 (which rejects it). One unary gRPC call spoken directly over
 * node:http2 (h2c on the Unix socket): loading a gRPC library would double start's CPU time.
 * Undefined on any failure.
 */
export async function containerdVersion(grpcAddress: string, timeoutMs: number): Promise<string | undefined> {
  if (!grpcAddress) return undefined;
  const path = grpcAddress.replace(/^unix:\/\//, '');
  const http2 = await import('node:http2');
  return new Promise((resolve) => {
    let session: import('node:http2').ClientHttp2Session | undefined;
    const done = (v: string | undefined) => { clearTimeout(t); session?.destroy(); resolve(v); };
    const t = setTimeout(() => done(undefined), timeoutMs);
    try {
      session = http2.connect('http://localhost', { createConnection: () => connect(path) });
      session.on('error', () => done(undefined));
      const req = session.request({
        ':method': 'POST', ':path': '/containerd.services.version.v1.Version/Version',
        'content-type': 'application/grpc', te: 'trailers',
      });
      const chunks: Buffer[] = [];
      let status: string | undefined;
      req.on('response', (h) => { if (h['grpc-status'] !== undefined) status = String(h['grpc-status']); });
      req.on('trailers', (h) => { status = String(h['grpc-status'] ?? status); });
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('error', () => done(undefined));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        // One length-prefixed message: flag byte, 4-byte big-endian length, VersionResponse.
        if (status !== '0' || body.length < 5 || body[0] !== 0) return done(undefined);
        try {
          const f = readFields(body.subarray(5, 5 + body.readUInt32BE(1))).find((x) => x.field === 1 && x.wire === 2);
          done(f && f.wire === 2 ? str(f.value) : undefined);
        } catch {
          done(undefined);
        }
      });
      // An empty VersionRequest (google.protobuf.Empty).
      req.end(Buffer.from([0, 0, 0, 0, 0]));
    } catch {
      done(undefined);
    }
  });
}

export const VERSION_CACHE_DIR = '/run/kata-ts/containerd-version';

/** A process as pid + start time, which survives pid reuse; undefined when it is gone. */
function identity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime), counted after the parenthesised command name.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return `${pid}:${fields[19]}`;
  } catch {
    return undefined;
  }
}

/**
 * Removes the entries of containerds that are gone (each test containerd leaves one). A few
 * small files: cheaper than the probe it saves.
 */
export function pruneVersionCache(cacheDir: string): void {
  let names: string[];
  try {
    names = readdirSync(cacheDir);
  } catch {
    return;
  }
  for (const name of names) {
    const file = join(cacheDir, name);
    let who: string | undefined;
    try {
      who = (JSON.parse(readFileSync(file, 'utf8')) as { who?: string }).who;
    } catch { /* unreadable, or a temp file being renamed: judged by its pid suffix below */ }
    const pid = Number(who?.split(':')[0] ?? /\.(\d+)$/.exec(name)?.[1]);
    const alive = who ? identity(pid) === who : Number.isInteger(pid) && pid > 0 && identity(pid) !== undefined;
    if (!alive) rmSync(file, { force: true });
  }
}

/**
 * containerdVersion, remembered per running containerd (its pid and start time): `start` runs
 * for every container and the answer only changes when containerd is restarted.
 */
export async function cachedContainerdVersion(grpcAddress: string, cacheDir: string): Promise<string | undefined> {
  const who = identity(process.ppid);
  pruneVersionCache(cacheDir);
  const file = join(cacheDir, createHash('sha256').update(grpcAddress).digest('hex').slice(0, 32));
  if (who) {
    try {
      const c = JSON.parse(readFileSync(file, 'utf8')) as { who?: string; version?: string };
      if (c.who === who && typeof c.version === 'string') return c.version;
    } catch { /* no cache yet */ }
  }
  const v = await containerdVersion(grpcAddress, 1500);
  if (v !== undefined && who) {
    try {
      mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
      const tmp = `${file}.${process.pid}`;
      writeFileSync(tmp, JSON.stringify({ who, version: v }));
      renameSync(tmp, file);
    } catch { /* the cache is an optimisation only */ }
  }
  return v;
}

/** Opens the bundle's log fifo for writing; /dev/null when there is none (manual runs). */
function openLogFd(bundle: string): number {
  try {
    // O_NONBLOCK: never hang when nobody reads the fifo (ENXIO then).
    return openSync(join(bundle, 'log'), constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    return openSync('/dev/null', constants.O_WRONLY);
  }
}

/**
 * The `start-to-address` span (process start → address known) on the bundle's log fifo: start's
 * own stdout and stderr are read by containerd as the answer.
 */
function traceStart(bundle: string, id: string, address: string): void {
  let fd = -1;
  try {
    fd = openLogFd(bundle);
    const ms = Math.round(performance.now() * 10) / 10;
    writeSync(fd, formatLine('debug', 'span', { subsystem: 'shim', id, pid: process.pid, span: 'start-to-address', duration_ms: ms, address }, new Date()));
  } catch { /* tracing never fails start */ } finally {
    if (fd >= 0) closeSync(fd);
  }
}

export async function runStart(o: {
  flags: ShimFlags;
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdin: Uint8Array;
  versionCacheDir?: string;
}): Promise<StartResult> {
  const { flags } = o;
  if (!flags.id) throw new StartError('start needs -id');
  if (!flags.namespace) throw new StartError('start needs -namespace');
  const env = readEnv(o.env, flags);
  const stdin: StartStdin = parseStartStdin(o.stdin, { id: flags.id, namespace: flags.namespace });
  const grpcAddress = flags.address || env.grpcAddress;
  // Only 1.7+ sets MAX_SHIM_VERSION; only then is there a version question to ask (in parallel).
  const versionQuery = stdin.kind !== 'bootstrap' && env.maxShimVersion !== undefined
    ? cachedContainerdVersion(grpcAddress, o.versionCacheDir ?? VERSION_CACHE_DIR) : Promise.resolve(undefined);
  const socketDir = stdin.kind === 'bootstrap' ? stdin.params.socketDir : undefined;
  const bundle = flags.bundle || o.cwd;

  const answer = async (address: string): Promise<Uint8Array> => {
    const v = await versionQuery;
    const out = encodeAnswer(answerForm({ stdin, containerdMajor: v === undefined ? undefined : majorVersion(v) }), address);
    if (flags.debug) traceStart(bundle, flags.id, address);
    return out;
  };

  // A pod container joins its sandbox's daemon.
  const kind = containerKind(flags.id, readSpecAnnotations(bundle));
  if (kind.kind === 'container') {
    const address = socketAddress({ grpcAddress, namespace: flags.namespace, id: kind.sandboxId, socketDir });
    if (await canConnect(socketPath(address))) {
      writeFileSync(join(bundle, 'address'), address);
      return { output: await answer(address), address };
    }
  }

  const address = socketAddress({ grpcAddress, namespace: flags.namespace, id: flags.id, socketDir });
  const path = socketPath(address);
  const l = await createListener(path);
  if ('existing' in l) {
    writeFileSync(join(bundle, 'address'), address);
    return { output: await answer(address), address };
  }
  const server = l.server;
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  let logFd = -1;
  try {
    logFd = openLogFd(bundle);
    const self = selfCommand();
    const child = spawn(self.file, [...self.args, ...daemonArgs(flags)], {
      cwd: bundle,
      env: { ...o.env, [SOCKET_PATH_ENV]: path },
      // Not start's stdout/stderr: containerd reads those to EOF and would wait for the daemon.
      stdio: ['ignore', 'ignore', logFd, fd],
      detached: true,
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (err) => reject(new StartError(`cannot run the shim daemon ${self.file}`, { cause: err })));
      child.once('spawn', () => resolve(child.pid!));
    });
    child.unref();
    writeFileSync(join(bundle, 'address'), address);
    writeFileSync(join(bundle, 'shim.pid'), String(pid));
    return { output: await answer(address), address, daemonPid: pid };
  } catch (err) {
    // Closing the listener here unlinks the socket file (libuv does that for paths it bound).
    server.close();
    rmSync(path, { force: true });
    throw err;
  } finally {
    if (logFd >= 0) closeSync(logFd);
  }
}
