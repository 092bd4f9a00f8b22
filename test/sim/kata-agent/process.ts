// One process in the guest: a container's init, created by `runc create`, or an exec, started by
// `runc exec --detach`, each under the guest init helper (init.ts) that reaps it, so its exit
// status comes back when it exits, not when the last holder of its stdout closes it. Non-terminal
// processes get the agent's pipes; terminals come from runc's console socket.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { OutputBuffer } from './stdio.js';
import { initHelper, python } from './init.js';

export interface ProcessLog { debug(msg: string, f?: object): void; info(msg: string, f?: object): void; warn(msg: string, f?: object): void }

export class GuestProcess {
  readonly stdout: OutputBuffer;
  readonly stderr: OutputBuffer;
  private readonly child: ChildProcess;
  private readonly ctl: Writable;
  private status?: number;
  readonly exited: Promise<number>;
  private stdinClosed = false;
  /** Resolves once runc created (init) or started (exec) the process; rejects if runc failed. */
  private readonly created: Promise<void>;

  /** argv: `runc create` or `runc exec --detach`, both with `--pid-file pidFile` (where runc writes
   *  the process's host pid) and the container id last; consoleSocket: where a terminal's pty
   *  master is received (a short path: sun_path holds 108 bytes). */
  constructor(readonly containerId: string, readonly execId: string, argv: string[], readonly terminal: boolean,
    readonly pidFile: string, size: { rows: number; cols: number }, log: ProcessLog, consoleSocket: string) {
    const cmd = terminal ? [...argv.slice(0, -1), '--console-socket', consoleSocket, argv[argv.length - 1]] : argv;
    this.child = spawn(python, ['-c', initHelper, terminal ? '1' : '0', String(size.rows), String(size.cols), pidFile, consoleSocket, ...cmd],
      { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    this.ctl = this.child.stdio[3] as Writable;
    this.ctl.on('error', () => {});
    // runc's and the helper's own errors; a terminal process has no separate stderr.
    if (terminal) this.child.stderr!.on('data', (d) => log.warn('guest init', { containerId, execId, text: String(d).trim() }));
    this.stderr = new OutputBuffer(terminal ? undefined : this.child.stderr!);
    const ctl = this.child.stdio[3] as import('node:stream').Readable;
    this.created = new Promise((resolve, reject) => {
      let got = '';
      ctl.on('data', (d) => { got += d; if (got.includes('created\n')) resolve(); });
      // Decided when fd 3 closes, not at the helper's exit: a quick exec's helper writes
      // "created" and exits at once, and its exit can reach us before the line does.
      ctl.once('close', () => {
        if (got.includes('created\n')) return;
        void this.exited.then((status) => reject(new Error(`runc ${argv.includes('create') ? 'create' : 'exec'} exited with status ${status}`)));
      });
      this.child.once('error', (e) => reject(e));
    });
    this.created.catch(() => {});
    this.stdout = new OutputBuffer(this.child.stdout!);
    this.child.stdin!.on('error', () => {});
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        // The helper exits with the process's status (128+N when signalled); a signalled helper counts the same.
        this.status = code ?? 128 + (signal ? signalNumber(signal) : 0);
        log.info('process exited', { containerId, execId, status: this.status });
        this.stdout.processExited();
        this.stderr.processExited();
        resolve(this.status);
      });
      this.child.once('error', (e) => {
        log.warn('cannot start the guest init helper', { err: e.message });
        this.status = 127;
        this.stdout.end();
        this.stderr.end();
        resolve(127);
      });
    });
  }

  get hasExited(): boolean { return this.status !== undefined; }

  /** The process's host pid once runc has started it (from --pid-file). */
  pid(): number | undefined {
    if (!existsSync(this.pidFile)) return undefined;
    const n = Number(readFileSync(this.pidFile, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  }

  /** Resolves once the process runs (or, for an init, is created) or rejects if runc ended first. */
  started(): Promise<void> { return this.created; }

  write(data: Uint8Array): Promise<number> {
    if (this.stdinClosed || this.hasExited) return Promise.reject(new Error('stdin is closed'));
    return new Promise((resolve, reject) => {
      this.child.stdin!.write(data, (err) => (err ? reject(err) : resolve(data.length)));
    });
  }

  closeStdin(): void {
    if (this.stdinClosed) return;
    this.stdinClosed = true;
    this.child.stdin!.end();
  }

  resize(rows: number, cols: number): void {
    if (!this.terminal) throw new Error('not a terminal process');
    this.ctl?.write(`${rows} ${cols}\n`);
  }

  /** Kills the guest init helper (last resort when tearing the guest down). */
  killHelper(): void {
    if (!this.hasExited) this.child.kill('SIGKILL');
  }
}

const signals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };
function signalNumber(s: string): number { return signals[s] ?? 0; }
