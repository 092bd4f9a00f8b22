// One process in the guest: a container's init, created by `runc create` under the guest init
// helper (init.ts) that reaps it, or an exec, run by a foreground `runc exec` so that its real
// exit status comes back. Non-terminal processes get pipes; terminal execs go through the pty
// helper (pty.ts), terminal inits get their pty from runc's console socket (init.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { OutputBuffer } from './stdio.js';
import { initHelper } from './init.js';
import { python, ptyHelper } from './pty.js';

export interface ProcessLog { debug(msg: string, f?: object): void; info(msg: string, f?: object): void; warn(msg: string, f?: object): void }

export class GuestProcess {
  readonly stdout: OutputBuffer;
  readonly stderr: OutputBuffer;
  private readonly child: ChildProcess;
  private readonly ctl?: Writable;
  private status?: number;
  readonly exited: Promise<number>;
  private stdinClosed = false;
  /** Set for a container init: resolves once `runc create` succeeded. */
  private created?: Promise<void>;

  /** argv: the foreground runc command, or `runc create` when `init` names the console socket path;
   *  pidFile: where runc writes the process's host pid. */
  constructor(readonly containerId: string, readonly execId: string, argv: string[], readonly terminal: boolean,
    readonly pidFile: string, size: { rows: number; cols: number }, log: ProcessLog, init?: { consoleSocket: string }) {
    if (init) {
      const cmd = terminal ? [...argv.slice(0, -1), '--console-socket', init.consoleSocket, argv[argv.length - 1]] : argv;
      this.child = spawn(python, ['-c', initHelper, terminal ? '1' : '0', String(size.rows), String(size.cols), pidFile, init.consoleSocket, ...cmd],
        { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
      this.ctl = this.child.stdio[3] as Writable;
      this.ctl.on('error', () => {});
      if (terminal) this.child.stderr!.on('data', (d) => log.warn('guest init', { containerId, text: String(d).trim() }));
      this.stderr = new OutputBuffer(terminal ? undefined : this.child.stderr!);
      const ctl = this.child.stdio[3] as import('node:stream').Readable;
      this.created = new Promise((resolve, reject) => {
        let got = '';
        ctl.on('data', (d) => { got += d; if (got.includes('created\n')) resolve(); });
        this.child.once('exit', (code) => reject(new Error(`runc create exited with status ${code}`)));
        this.child.once('error', (e) => reject(e));
      });
      this.created.catch(() => {});
    } else if (terminal) {
      this.child = spawn(python, ['-c', ptyHelper, String(size.rows), String(size.cols), ...argv], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
      this.ctl = this.child.stdio[3] as Writable;
      this.ctl.on('error', () => {});
      // runc's and the helper's own errors; a terminal process has no separate stderr.
      this.child.stderr!.on('data', (d) => log.warn('terminal helper', { containerId, execId, text: String(d).trim() }));
      this.stderr = new OutputBuffer();
    } else {
      this.child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
      this.stderr = new OutputBuffer(this.child.stderr!);
    }
    this.stdout = new OutputBuffer(this.child.stdout!);
    this.child.stdin!.on('error', () => {});
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        // runc reports a signalled container as 128+N itself; a signalled runc counts the same.
        this.status = code ?? 128 + (signal ? signalNumber(signal) : 0);
        log.info('process exited', { containerId, execId, status: this.status });
        this.stdout.processExited();
        this.stderr.processExited();
        resolve(this.status);
      });
      this.child.once('error', (e) => {
        log.warn('cannot start runc', { err: e.message });
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
  async started(timeoutMs = 30_000): Promise<void> {
    if (this.created) return this.created;
    const t0 = Date.now();
    while (this.pid() === undefined) {
      if (this.hasExited) throw new Error(`exited with status ${this.status} before it started`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`not started within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

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

  /** Kills runc itself (last resort when tearing the guest down). */
  killRunc(): void {
    if (!this.hasExited) this.child.kill('SIGKILL');
  }
}

const signals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };
function signalNumber(s: string): number { return signals[s] ?? 0; }
