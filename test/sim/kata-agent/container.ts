// A container in the guest: its bundle (config.json written from the OCI spec it received), its
// init process (created at CreateContainer, started at StartContainer) and execs (runc exec --detach), and what the agent does to it (signal, pause, stats,
// update, OOM notifications, removal).
import { type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GuestProcess, type ProcessLog } from './process.js';
import type { Runc } from './runc.js';

export type ContainerState = 'created' | 'running' | 'paused' | 'stopped';

const SIGKILL = 9;
const SIGTERM = 15;
let ttyCount = 0;

export class Container {
  state: ContainerState = 'created';
  init?: GuestProcess;
  readonly execs = new Map<string, GuestProcess>();
  private oomWatcher?: ChildProcess;

  constructor(readonly id: string, readonly bundle: string, readonly spec: Record<string, any>, private readonly runc: Runc,
    private readonly log: ProcessLog, private readonly onOom: (id: string) => void, private readonly onGone: () => void = () => {}) {
    mkdirSync(bundle, { recursive: true });
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
  }

  private size(p: Record<string, any>): { rows: number; cols: number } {
    return { rows: p.consoleSize?.height ?? 0, cols: p.consoleSize?.width ?? 0 };
  }

  /** CreateContainer: `runc create` under the guest init helper; the container's init exists
   *  (pid, cgroups, namespaces) but has not run the user's program. runc's errors (no such
   *  executable, bad user or cwd, rootfs problems) surface here, as with the real agent. */
  async create(): Promise<void> {
    if (this.init) throw new Error(`container ${this.id} already created`);
    const pidFile = join(this.bundle, 'init.pid');
    const terminal = !!this.spec.process?.terminal;
    const argv = this.runc.argv(['--log', join(this.bundle, 'runc.log'), '--log-format', 'json', 'create', '--bundle', this.bundle, '--pid-file', pidFile, this.id]);
    const p = new GuestProcess(this.id, this.id, argv, terminal, pidFile, this.size(this.spec.process ?? {}), this.log, join(this.bundle, 'console.sock'));
    this.init = p;
    void p.exited.then(() => { this.state = 'stopped'; this.stopOomWatcher(); });
    try {
      await p.started();
    } catch (e) {
      const why = this.runcLog() || (e as Error).message;
      await p.exited;
      await this.runc.run(['delete', '--force', this.id]);
      rmSync(this.bundle, { recursive: true, force: true });
      this.onGone();
      throw new Error(`failed to create container ${this.id}: ${why}`);
    }
  }

  /** StartContainer: `runc start`; the init process runs the user's program when this resolves. */
  async start(): Promise<void> {
    if (this.state !== 'created' || !this.init || this.init.hasExited) throw new Error(`container ${this.id} is ${this.state}, not created`);
    try {
      await this.runc.must(['start', this.id]);
    } catch (e) {
      throw new Error(`failed to start container ${this.id}: ${this.runcLog() || (e as Error).message}`);
    }
    if (!this.init.hasExited) this.state = 'running';
    this.watchOom();
  }

  private runcLog(dir = this.bundle): string {
    try {
      const lines = readFileSync(join(dir, 'runc.log'), 'utf8').trim().split('\n').filter(Boolean);
      const errs = lines.map((l) => { try { return JSON.parse(l) as { level: string; msg: string }; } catch { return undefined; } })
        .filter((l) => l && l.level === 'error');
      return errs.map((l) => l!.msg).join('; ');
    } catch { return ''; }
  }

  /** `runc events` reports the kernel's OOM notifications for the container's memory cgroup. */
  private watchOom(): void {
    const w = this.runc.spawn(['events', '--interval', '3600s', this.id], ['ignore', 'pipe', 'ignore']);
    this.oomWatcher = w;
    let buf = '';
    w.stdout!.on('data', (d) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try { if ((JSON.parse(line) as { type: string }).type === 'oom') this.onOom(this.id); } catch { /* partial */ }
      }
    });
    w.on('error', () => {});
  }

  private stopOomWatcher(): void {
    this.oomWatcher?.kill('SIGKILL');
    this.oomWatcher = undefined;
  }

  async exec(execId: string, process: Record<string, any>): Promise<GuestProcess> {
    if (this.state !== 'running') throw new Error(`container ${this.id} is ${this.state}, not running`);
    const dir = join(this.bundle, 'execs', execId);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'process.json'), JSON.stringify(process));
    const pidFile = join(dir, 'pid');
    const argv = this.runc.argv(['--log', join(dir, 'runc.log'), '--log-format', 'json', 'exec', '--detach', '--process', join(dir, 'process.json'), '--pid-file', pidFile, this.id]);
    // Beside the guest dir: below the bundle, a 64-character id and an exec id overflow sun_path.
    const consoleSocket = join(this.bundle, '..', '..', `tty-${++ttyCount}.sock`);
    const p = new GuestProcess(this.id, execId, argv, !!process.terminal, pidFile, this.size(process), this.log, consoleSocket);
    this.execs.set(execId, p);
    try {
      await p.started();
    } catch (e) {
      this.execs.delete(execId);
      throw new Error(`failed to exec in container ${this.id}: ${this.runcLog(dir) || (e as Error).message}`);
    }
    return p;
  }

  /** SignalProcess: execId '' = every process; the init's SIGTERM becomes SIGKILL if it does not handle SIGTERM. */
  async signal(execId: string, sig: number): Promise<void> {
    // Like the agent: an init that installed no SIGTERM handler would ignore it (pid 1), so it gets SIGKILL.
    const initPid = this.init?.pid();
    if ((execId === '' || execId === this.id) && sig === SIGTERM && initPid !== undefined && !handles(initPid, SIGTERM)) sig = SIGKILL;
    if (execId === '') {
      if (this.init?.hasExited) return;
      await this.runc.must(['kill', '--all', this.id, String(sig)]).catch((e) => { if (!this.init?.hasExited) throw e; });
      return;
    }
    const p = execId === this.id ? this.init : this.execs.get(execId);
    if (!p || p.hasExited) return;
    const pid = p.pid();
    if (pid === undefined) return;
    try { process.kill(pid, sig); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }

  async pause(): Promise<void> {
    if (this.state !== 'running') throw new Error(`container ${this.id} is ${this.state}, not running`);
    await this.runc.must(['pause', this.id]);
    this.state = 'paused';
  }

  async resume(): Promise<void> {
    if (this.state !== 'paused') throw new Error(`container ${this.id} is ${this.state}, not paused`);
    await this.runc.must(['resume', this.id]);
    this.state = 'running';
  }

  async stats(): Promise<Record<string, any>> {
    const out = await this.runc.must(['events', '--stats', this.id]);
    return (JSON.parse(out) as { data: Record<string, any> }).data;
  }

  async update(resources: Record<string, any>): Promise<void> {
    await this.runc.must(['update', '--resources', '-', this.id], JSON.stringify(resources));
  }

  /** Kills every process (SIGKILL), waits for the init (bounded by timeoutMs, 0 = forever), deletes the runc container and bundle. */
  async destroy(timeoutMs = 0): Promise<void> {
    if (this.state === 'paused') await this.runc.run(['resume', this.id]);
    if (this.init && !this.init.hasExited) {
      await this.runc.run(['kill', '--all', this.id, 'KILL']);
      const waited = await Promise.race([
        this.init.exited.then(() => true),
        ...(timeoutMs > 0 ? [new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs))] : []),
      ]);
      if (!waited) throw new Error(`container ${this.id} did not stop within ${timeoutMs} ms`);
    }
    // Their helpers end once they reaped the killed execs; one that does not is killed.
    for (const p of this.execs.values()) {
      await Promise.race([p.exited, new Promise((r) => setTimeout(r, 2000))]);
      p.killHelper();
      await p.exited;
    }
    this.stopOomWatcher();
    await this.runc.run(['delete', '--force', this.id]);
    this.state = 'stopped';
    rmSync(this.bundle, { recursive: true, force: true });
    this.onGone();
  }
}

/** Whether the process has a handler for sig (SigCgt in /proc/<pid>/status). */
function handles(pid: number, sig: number): boolean {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return !!m && (BigInt(`0x${m[1]}`) & (1n << BigInt(sig - 1))) !== 0n;
  } catch { return false; }
}

