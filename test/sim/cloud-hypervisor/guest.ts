// The "guest" of a booted VM: the kata-agent simulator process, its private dir, its vsock dir
// and a freezer cgroup under which the agent puts every container it starts (so pausing the VM
// freezes them all and destroying the VM kills them all, as tearing down a real VM does). The
// agent itself stays outside that cgroup so that it can remove it when it ends on its own.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { guestViewFile, removeGuestDir, type GuestFs, type GuestView } from '../guest.js';

const cgroupRoot = '/sys/fs/cgroup';
const guestPrefix = 'ch-sim-guest-';
const ownerFile = 'owner.json';
const cgroupBase = 'kata-ts-sim';

export interface GuestLog { info(msg: string, f?: object): void; warn(msg: string, f?: object): void; debug(msg: string, f?: object): void }

export interface GuestOptions {
  agentPath: string;
  cmdline: string;
  fs: GuestFs[];
  vcpus: number;
  memoryBytes: number;
  /** Where the guest console goes: nowhere, the VMM's stderr, or a file. */
  console: { mode: 'off' } | { mode: 'tty' } | { mode: 'file'; file: string };
  bootDelayMs: number;
  neverListen: boolean;
  log: GuestLog;
}

export class Guest {
  readonly dir: string;
  readonly vsockDir: string;
  private child?: ChildProcess;
  private cgroup = '';
  private stopping = false;
  private exited?: Promise<void>;
  private exitCb: (code: number | null, signal: string | null) => void = () => {};

  constructor(private readonly o: GuestOptions) {
    this.dir = mkdtempSync(join(tmpdir(), guestPrefix));
    writeOwner(this.dir);
    this.vsockDir = join(this.dir, 'vsock');
  }

  /** Called once if the guest ends on its own (power-off, crash), not after stop(). */
  onExit(cb: (code: number | null, signal: string | null) => void): void { this.exitCb = cb; }

  get pid(): number | undefined { return this.child?.pid; }

  start(): void {
    mkdirSync(this.vsockDir);
    this.cgroup = this.makeCgroup();
    const view: GuestView = {
      cmdline: this.o.cmdline, fs: this.o.fs, vsockDir: this.vsockDir, guestDir: this.dir,
      cgroupParent: this.cgroup, vcpus: this.o.vcpus, memoryBytes: this.o.memoryBytes,
      bootDelayMs: this.o.bootDelayMs, neverListen: this.o.neverListen,
    };
    const file = join(this.dir, guestViewFile);
    writeFileSync(file, JSON.stringify(view, null, 2));
    const c = this.o.console;
    let out: 'ignore' | 'inherit' | number = 'ignore';
    if (c.mode === 'tty') out = 'inherit';
    else if (c.mode === 'file') out = openSync(c.file, 'a');
    // stdin is a pipe from the VMM: when the VMM dies in any way the guest sees EOF and ends.
    const child = spawn(this.o.agentPath, ['--guest', file], { stdio: ['pipe', out === 'inherit' ? 'inherit' : out, out === 'inherit' ? 'inherit' : out] });
    if (typeof out === 'number') closeSync(out);
    this.child = child;
    writeOwner(this.dir, child.pid);
    child.stdin!.on('error', () => {});
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.o.log.info('guest: agent exited', { pid: child.pid, code, signal });
        resolve();
        if (!this.stopping) this.exitCb(code, signal);
      });
      child.once('error', (e) => {
        this.o.log.warn('guest: cannot start the agent', { path: this.o.agentPath, err: e.message });
        resolve();
        if (!this.stopping) this.exitCb(127, null);
      });
    });
    this.o.log.info('guest: started', { pid: child.pid, dir: this.dir, cgroup: this.cgroup });
  }

  private makeCgroup(): string {
    const rel = `/${cgroupBase}/${basename(this.dir)}`;
    try {
      mkdirSync(join(cgroupRoot, 'freezer', rel), { recursive: true });
      return rel;
    } catch (e) {
      this.o.log.warn('guest: no freezer cgroup, pause will only stop the agent', { err: (e as Error).message });
      return '';
    }
  }

  private freezer(state: 'FROZEN' | 'THAWED'): boolean {
    if (!this.cgroup) return false;
    const f = join(cgroupRoot, 'freezer', this.cgroup, 'freezer.state');
    try {
      writeFileSync(f, state);
      for (let i = 0; i < 200 && readFileSync(f, 'utf8').trim() !== state; i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      return true;
    } catch { return false; }
  }

  pause(): void {
    this.child?.kill('SIGSTOP');
    this.freezer('FROZEN');
  }

  resume(): void {
    this.freezer('THAWED');
    this.child?.kill('SIGCONT');
  }

  /** Power the guest off now: the agent is told (stdin EOF, SIGTERM) and given a moment to
   *  take its containers down; whatever is left in the guest's cgroups is then killed. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      this.resume();
      child.stdin?.end();
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(t);
    }
    destroyGuestDir(this.dir, this.cgroup, this.o.log);
  }

}

/** Last resort when the agent did not clean up: kill every task in the guest's cgroup tree, remove
 *  its cgroup dirs in every controller, unmount its network namespace, remove the dir. */
function destroyGuestDir(dir: string, cgroup: string, log: GuestLog): void {
  if (cgroup) {
    const frozen = join(cgroupRoot, 'freezer', cgroup);
    for (const pid of tasksUnder(frozen)) {
      log.warn('guest: killing a leftover process', { pid });
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    try { writeFileSync(join(frozen, 'freezer.state'), 'THAWED'); } catch { /* gone */ }
    for (let i = 0; i < 100 && tasksUnder(frozen).length; i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    let ctrls: string[] = [];
    try { ctrls = readdirSync(cgroupRoot); } catch { /* none */ }
    for (const ctrl of ctrls) removeTree(join(cgroupRoot, ctrl, cgroup));
    try { rmdirSync(join(cgroupRoot, 'freezer', cgroupBase)); } catch { /* other VMs still there */ }
  }
  // The agent's sandbox network namespace and container rootfs binds are mounts in the guest dir.
  const busy = removeGuestDir(dir);
  if (busy.length) log.warn('guest: dir kept, still mounted below it', { dir, mounts: busy });
}

function startTime(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch { return undefined; }
}

function writeOwner(dir: string, agentPid?: number): void {
  writeFileSync(join(dir, ownerFile), JSON.stringify({ vmmPid: process.pid, vmmStart: startTime(process.pid), agentPid, agentStart: agentPid ? startTime(agentPid) : undefined }));
}

/** Removes guest dirs (and their cgroups) whose VMM and agent are both gone: what a VMM killed
 *  before its guest could clean up leaves behind. Run when a VMM starts. */
export function sweepStaleGuests(log: GuestLog): void {
  let entries: string[] = [];
  try { entries = readdirSync(tmpdir()).filter((e) => e.startsWith(guestPrefix)); } catch { return; }
  for (const e of entries) {
    const dir = join(tmpdir(), e);
    let o: { vmmPid?: number; vmmStart?: string; agentPid?: number; agentStart?: string };
    try { o = JSON.parse(readFileSync(join(dir, ownerFile), 'utf8')); } catch { continue; }
    const live = (pid?: number, start?: string) => !!pid && startTime(pid) !== undefined && startTime(pid) === start;
    if (live(o.vmmPid, o.vmmStart) || live(o.agentPid, o.agentStart)) continue;
    log.info('removing a stale guest dir', { dir });
    destroyGuestDir(dir, `/${cgroupBase}/${e}`, log);
  }
}

function tasksUnder(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const pids: number[] = [];
  try {
    for (const l of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) pids.push(Number(l));
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) pids.push(...tasksUnder(join(dir, e.name)));
  } catch { /* raced with removal */ }
  return pids;
}

function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(dir, e.name));
    rmdirSync(dir);
  } catch { /* busy: reported by the tests that check for leftovers */ }
}
