// Child processes of the VM layer (cloud-hypervisor, virtiofsd): spawned from an argv (never a
// shell), stdout/stderr forwarded line by line to the logger, exit observed exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Logger } from '../config/index.js';
import { VmmError, type VmmErrorCode } from './errors.js';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function describeExit(name: string, pid: number | undefined, e: ExitInfo): string {
  const how = e.signal ? `was killed by ${e.signal}` : `exited with status ${e.code}`;
  return `${name} (pid ${pid ?? '?'}) ${how}`;
}

/** Throws a clear error when `path` cannot be executed, before spawn gives a bare errno. */
export function checkExecutable(name: string, path: string, code: VmmErrorCode): void {
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch (err) {
    throw new VmmError(code, `${name} binary ${path} does not exist`, { cause: err });
  }
  if (!isFile) throw new VmmError(code, `${name} binary ${path} is not a regular file`);
  try {
    accessSync(path, constants.X_OK);
  } catch (err) {
    throw new VmmError(code, `${name} binary ${path} is not executable`, { cause: err });
  }
}

export class ManagedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Settles once with how the process ended. */
  readonly exited: Promise<ExitInfo>;
  exit?: ExitInfo;

  private constructor(child: ChildProcess, readonly name: string, exited: Promise<ExitInfo>) {
    this.child = child;
    this.pid = child.pid!;
    this.exited = exited.then((e) => (this.exit = e));
  }

  /** Spawns and resolves once the process runs (rejects with `code` when exec fails). */
  static async start(o: {
    name: string;
    path: string;
    args: string[];
    env?: NodeJS.ProcessEnv;
    log: Logger;
    errorCode: VmmErrorCode;
    /** fds to place at 3, 4, ... in the child. */
    extraFds?: number[];
  }): Promise<ManagedProcess> {
    checkExecutable(o.name, o.path, o.errorCode);
    const child = spawn(o.path, o.args, {
      stdio: ['ignore', 'pipe', 'pipe', ...(o.extraFds ?? [])],
      env: o.env ?? process.env,
      detached: false,
    });
    const exited = new Promise<ExitInfo>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new VmmError(o.errorCode, `cannot start ${o.name} ${o.path}: ${(err as Error).message}`, { cause: err })));
    });
    const p = new ManagedProcess(child, o.name, exited);
    // After spawn, 'error' only reports a failed kill(); without a listener it would throw.
    child.on('error', (err) => o.log.warn('process error', { process: o.name, pid: p.pid, error: err.message }));
    for (const [stream, level] of [[child.stdout!, 'info'], [child.stderr!, 'info']] as const) {
      createInterface({ input: stream }).on('line', (line) => {
        if (line.trim() !== '') o.log[level](line, { process: o.name, pid: p.pid, stream: stream === child.stdout ? 'stdout' : 'stderr' });
      });
    }
    o.log.info('started', { process: o.name, pid: p.pid, argv: [o.path, ...o.args].join(' ') });
    return p;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Direct children (e.g. virtiofsd's sandboxed fork), read from /proc. */
  children(): number[] {
    try {
      return readFileSync(`/proc/${this.pid}/task/${this.pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /** SIGKILL the process and its direct children; resolves when the process has been reaped. */
  async kill(): Promise<ExitInfo> {
    if (this.exit) return this.exit;
    const kids = this.children();
    this.child.kill('SIGKILL');
    // Children die by PDEATHSIG too; killing them here means nothing outlives us even without it.
    for (const k of kids) {
      try {
        process.kill(k, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const e = await this.exited;
    // Wait (bounded) until the children are gone too, so callers can say nothing is left.
    for (let i = 0; i < 200 && kids.some(isRunning); i++) await new Promise((r) => setTimeout(r, 10));
    return e;
  }

  /** Resolves true if it exits within ms. */
  async waitExit(ms: number): Promise<boolean> {
    if (this.exit) return true;
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.exited.then(() => true), new Promise<boolean>((res) => (timer = setTimeout(() => res(false), ms)))]);
    clearTimeout(timer);
    return r;
  }
}

/** True while /proc/<pid> exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The logger with `fields` (e.g. subsystem=vmm) added to every line. */
export function withFields(log: Logger, fields: object): Logger {
  const wrap = (fn: (m: string, f?: object) => void) => (m: string, f?: object) => fn.call(log, m, { ...fields, ...f });
  return { debug: wrap(log.debug), info: wrap(log.info), warn: wrap(log.warn), error: wrap(log.error) };
}
