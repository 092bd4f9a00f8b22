// The task service (containerd.task.v2.Task and v3): one handler per RPC over the sandbox core.
// The wire adapter (decode → handler → encode, errors → status) is the table in task-table.ts.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Paths } from '../config/index.js';
import { TypeUrl, containerd, google, timestampFrom } from '../proto/index.js';
import { pumpInput, pumpOutput, toGuestProcess, toGuestResources, toGuestSpec } from '../agent-client/index.js';
import type { SharedFs } from '../vmm/index.js';
import {
  AlreadyExistsError, IllegalStateError, InvalidArgumentError, NotFoundError, UnimplementedError, VmDiedError, describe,
} from './errors.js';
import type { EventPublisher } from './events.js';
import { span, type Logger } from './log.js';
import { Proc, parseExecId, parseTaskId, type Container, type ExecId, type TaskId } from './process.js';
import { SHIM_VERSION, containerKind, runtimeOptionsConfigPath } from './protocol.js';
import { Sandbox, type SandboxParts } from './sandbox.js';
import { hostCgroupMode, metricsAny, type CgroupMode } from './stats.js';
import { statusOf } from './state.js';
import { openProcessIO, parseStdio, type ProcessIO, type StdioStrings } from './stdio.js';

const v2 = containerd.task.v2;
const ev = containerd.events;

/** How long a call waits for a VM that is still starting. */
export const VM_READY_BOUND_MS = 120_000;
/** How long to wait for output to reach containerd after a process exits. */
const DRAIN_BOUND_MS = 5_000;

export interface TaskServiceOptions {
  namespace: string;
  log: Logger;
  events: EventPublisher;
  paths: Paths;
  env: NodeJS.ProcessEnv;
  parts?: SandboxParts;
  cgroupMode?: CgroupMode;
  /** Called after Shutdown when no task is left (the daemon then exits). */
  onIdle: () => void;
}

type Ts = google.protobuf.Timestamp.$Properties;
const ts = (ms: number | undefined): Ts | undefined => (ms === undefined ? undefined : timestampFrom(new Date(ms)));

export class TaskService {
  readonly containers = new Map<TaskId, Container>();
  /** Ids whose Create is in progress (duplicates are refused). */
  private readonly creating = new Set<string>();
  sandbox?: Sandbox;
  private readonly log: Logger;
  private readonly cgroupMode: CgroupMode;

  constructor(private readonly o: TaskServiceOptions) {
    this.log = o.log;
    this.cgroupMode = o.cgroupMode ?? hostCgroupMode();
  }

  // ---- helpers ----

  private emit<T>(topic: string, typeUrl: string, type: { encode(m: T): { finish(): Uint8Array } }, msg: T): void {
    this.o.events.publish(topic, typeUrl, type.encode(msg).finish());
  }

  /** Waits (bounded) for a VM that is still starting; a running or dead VM passes at once. */
  async ready(): Promise<void> {
    if (this.sandbox?.state === 'starting') await this.sandbox.whenReady(VM_READY_BOUND_MS);
  }

  private taskId(s: string): TaskId {
    const id = parseTaskId(s);
    if (!id) throw new InvalidArgumentError(`invalid task id ${JSON.stringify(s)}`);
    return id;
  }

  private container(s: string): Container {
    const c = this.containers.get(this.taskId(s));
    if (!c) throw new NotFoundError(`container does not exist ${s}: not found`);
    return c;
  }

  private proc(id: string, execId: string | null | undefined): { c: Container; p: Proc } {
    const c = this.container(id);
    const eid = parseExecId(execId);
    if (eid === undefined) throw new InvalidArgumentError(`invalid exec id ${JSON.stringify(execId)}`);
    if (!eid) return { c, p: c.init };
    const p = c.execs.get(eid);
    if (!p) throw new NotFoundError(`exec ${eid} does not exist in task ${id}: not found`);
    return { c, p };
  }

  private agent() {
    const a = this.sandbox?.agent;
    if (!a || this.sandbox?.state !== 'ready') throw new VmDiedError(`sandbox ${this.sandbox?.id ?? '(none)'} is ${this.sandbox?.state ?? 'not created'}`);
    return a;
  }

  private get pid(): number { return this.sandbox?.pid ?? process.pid; }

  // ---- lifecycle ----

  /** `signal`: the call's deadline or connection; when it aborts, the half-made task is undone. */
  async create(req: containerd.task.v2.CreateTaskRequest, signal?: AbortSignal): Promise<containerd.task.v2.CreateTaskResponse.$Properties> {
    const id = this.taskId(req.id);
    if (this.containers.has(id) || this.creating.has(id)) throw new AlreadyExistsError(`task ${id} already exists`);
    if (req.checkpoint) throw new UnimplementedError('kata-ts cannot restore checkpoints');
    let spec: any;
    try {
      spec = JSON.parse(readFileSync(join(req.bundle, 'config.json'), 'utf8'));
    } catch (err) {
      throw new InvalidArgumentError(`cannot read the OCI spec ${join(req.bundle, 'config.json')}`, { cause: err });
    }
    const stdio: StdioStrings = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal };
    const stdioSpec = parseStdio(stdio);
    const kind = containerKind(id, spec.annotations);
    const log = this.log.child({ container: id });
    this.creating.add(id);
    const gaveUp = () => { if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('Create cancelled'); };
    const onAbort = () => { if (ownSandbox) sb?.cancel(signal!.reason instanceof Error ? signal!.reason : new Error('Create cancelled')); };
    signal?.addEventListener('abort', onAbort, { once: true });
    let sb = this.sandbox;
    let ownSandbox = false;
    let io: ProcessIO | undefined;
    let shared = false;
    let inGuest = false;
    try {
      if (kind.kind === 'container') {
        if (!sb || sb.id !== kind.sandboxId) throw new NotFoundError(`sandbox ${kind.sandboxId} of container ${id} is not served by this shim: not found`);
        await sb.whenReady(VM_READY_BOUND_MS);
      } else {
        if (sb) throw new AlreadyExistsError(`this shim already serves sandbox ${sb.id}; cannot create sandbox ${id}`);
        sb = new Sandbox(id, { paths: this.o.paths, log: this.log, env: this.o.env, parts: this.o.parts });
        this.sandbox = sb;
        ownSandbox = true;
        sb.onDied((why) => this.vmDied(why));
        sb.onOOM((cid) => this.oom(cid));
        const opts = req.options ? { typeUrl: req.options.type_url ?? '', value: req.options.value ?? new Uint8Array() } : undefined;
        await sb.start({ spec, configPath: runtimeOptionsConfigPath(opts), bundle: req.bundle });
      }
      gaveUp();
      const agent = this.agent();
      const cfg = sb.config!;
      const t = performance.now();
      const rootfs = (req.rootfs ?? []).map((m) => ({ type: m.type ?? '', source: m.source ?? '', target: m.target || undefined, options: m.options ?? [] }));
      const guestRootfs = await sb.sharedFs!.shareRootfs(id, rootfs, req.bundle);
      shared = true;
      const guestMounts = await shareBindMounts(sb.sharedFs!, id, spec.mounts);
      const g = toGuestSpec({ ...spec, mounts: guestMounts }, { containerId: id, guestRootfs, disableGuestSeccomp: cfg.runtime.disable_guest_seccomp !== false });
      io = await openProcessIO(stdioSpec, { containerId: id, namespace: this.o.namespace, log });
      gaveUp();
      const timeoutSec = Number(cfg.runtime.create_container_timeout) || 60;
      await agent.createContainer({ containerId: id, execId: id, OCI: g.spec, sandboxPidns: g.sandboxPidns, storages: [] }, timeoutSec * 1000);
      inGuest = true;
      span(log, 'container-create', t);
      gaveUp();
      const init = new Proc(id, '' as ExecId, stdio);
      init.io = io;
      init.pid = this.pid;
      const c: Container = { id, bundle: req.bundle, spec, rootfs, init, execs: new Map(), isSandbox: ownSandbox, rootfsShared: true };
      this.containers.set(id, c);
      this.emit('/tasks/create', TypeUrl.taskCreate, ev.TaskCreate, {
        containerId: id, bundle: req.bundle, rootfs: req.rootfs ?? [],
        io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
        checkpoint: req.checkpoint, pid: init.pid,
      });
      log.info('task created', { pid: init.pid });
      return { pid: init.pid };
    } catch (err) {
      log.error('create failed; cleaning up', { error: describe(err) });
      io?.destroy();
      if (inGuest) await sb?.agent?.removeContainer(id).catch(() => {});
      if (shared) await sb?.sharedFs?.unshareRootfs(id).catch((e: unknown) => log.warn('unshare failed', { error: describe(e) }));
      if (ownSandbox && sb) {
        await sb.stop();
        if (this.sandbox === sb) this.sandbox = undefined;
      }
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.creating.delete(id);
    }
  }

  async start(req: containerd.task.v2.StartRequest): Promise<containerd.task.v2.StartResponse.$Properties> {
    const { c, p } = this.proc(req.id, req.execId);
    if (!p.sm.can('start')) throw new IllegalStateError(p.isInit ? `task ${c.id}` : `exec ${p.execId}`, p.state, 'start');
    const agent = this.agent();
    if (p.isInit) {
      const t = performance.now();
      await agent.startContainer(c.id);
      span(this.log, 'container-start', t, { container: c.id });
      p.sm.step('start');
      this.emit('/tasks/start', TypeUrl.taskStart, ev.TaskStart, { containerId: c.id, pid: p.pid });
    } else {
      p.agentExecId = randomUUID();
      try {
        await agent.execProcess({ containerId: c.id, execId: p.agentExecId, process: toGuestProcess(p.spec) });
      } catch (err) {
        // It never ran. As runc's shim does: close its stdio, so the client's copiers end (ctr
        // 1.6 waits for them after a failed Start), and release its Wait. No exit event.
        p.io?.destroy();
        p.markExited(255);
        throw err;
      }
      p.pid = this.pid;
      p.sm.step('start');
      this.emit('/tasks/exec-started', TypeUrl.taskExecStarted, ev.TaskExecStarted, { containerId: c.id, execId: p.execId, pid: p.pid });
      if (p.pendingResize) {
        const r = p.pendingResize;
        p.pendingResize = undefined;
        await agent.ttyWinResize(c.id, p.agentExecId, r.height, r.width).catch((e: unknown) => this.log.warn('resize failed', { error: describe(e) }));
      }
    }
    this.watch(c, p);
    return { pid: p.pid };
  }

  /** Copies the process's output, waits for its exit, then reports it (output drained first). */
  private watch(c: Container, p: Proc): void {
    const agent = this.agent();
    const log = this.log.child({ container: c.id, exec: p.execId || undefined });
    const io = p.io;
    const pumps: Promise<void>[] = [];
    if (io?.stdout) pumps.push(pumpOutput(agent, 'stdout', c.id, p.agentExecId, io.stdout));
    if (io?.stderr && !p.stdio.terminal) pumps.push(pumpOutput(agent, 'stderr', c.id, p.agentExecId, io.stderr));
    if (io?.stdin) void pumpInput(agent, c.id, p.agentExecId, io.stdin).catch((e: unknown) => log.debug('stdin pump ended', { error: describe(e) }));
    void (async () => {
      let status: number;
      try {
        // Kata's order: the streams reach EOF (the agent ends them at most 500 ms after the
        // exit, even if a child keeps them open), then WaitProcess.
        await Promise.all(pumps.map((x) => x.catch((e: unknown) => log.debug('output pump ended', { error: describe(e) }))));
        status = await agent.waitProcess(c.id, p.agentExecId);
      } catch (err) {
        if (p.done) return;
        log.error('lost the process', { error: describe(err) });
        status = 255;
      }
      // From the guest's exit report to the event handed to the publisher (output drained first).
      const t = performance.now();
      await io?.close(DRAIN_BOUND_MS);
      this.exited(c, p, status);
      span(log, 'exit-to-event', t);
    })();
  }

  private exited(c: Container, p: Proc, status: number): void {
    if (!p.markExited(status)) return;
    this.log.info('process exited', { container: c.id, exec: p.execId || undefined, status });
    this.emit('/tasks/exit', TypeUrl.taskExit, ev.TaskExit, {
      containerId: c.id, id: p.execId || c.id, pid: p.pid, exitStatus: status, exitedAt: ts(p.exitedAt),
    });
  }

  /** The VM or the agent is gone: every live process exits with 255. */
  private vmDied(why: string): void {
    this.log.error('the sandbox died; every task exits with 255', { why });
    for (const c of this.containers.values()) {
      for (const p of [c.init, ...c.execs.values()]) {
        if (p.done) continue;
        p.io?.destroy();
        this.exited(c, p, 255);
      }
    }
  }

  private oom(cid: string): void {
    if (!this.containers.has(cid as TaskId)) return;
    this.log.warn('container out of memory', { container: cid });
    this.emit('/tasks/oom', TypeUrl.taskOOM, ev.TaskOOM, { containerId: cid });
  }

  async delete(req: containerd.task.v2.DeleteRequest): Promise<containerd.task.v2.DeleteResponse.$Properties> {
    const { c, p } = this.proc(req.id, req.execId);
    if (!p.sm.can('delete')) throw new IllegalStateError(p.isInit ? `task ${c.id}` : `exec ${p.execId}`, p.state, 'delete');
    // Never started: release any Wait (no exit event; containerd expects only /tasks/delete).
    if (p.state === 'created') p.markExited(0);
    if (!p.isInit) {
      p.sm.step('delete');
      c.execs.delete(p.execId);
      p.io?.destroy();
      this.emit('/tasks/delete', TypeUrl.taskDelete, ev.TaskDelete, {
        containerId: c.id, pid: p.pid, exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt ?? Date.now()), id: p.execId,
      });
      return { pid: p.pid, exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt ?? Date.now()) };
    }
    const log = this.log.child({ container: c.id });
    const t = performance.now();
    const sb = this.sandbox;
    if (sb?.state === 'ready' && sb.agent) {
      await sb.agent.removeContainer(c.id).catch((e: unknown) => log.warn('RemoveContainer failed', { error: describe(e) }));
    }
    if (c.rootfsShared) {
      c.rootfsShared = false;
      await sb?.sharedFs?.unshareRootfs(c.id).catch((e: unknown) => log.warn('unsharing the rootfs failed', { error: describe(e) }));
    }
    for (const x of [p, ...c.execs.values()]) x.io?.destroy();
    p.exitedAt ??= Date.now();
    p.sm.step('delete');
    this.containers.delete(c.id);
    this.emit('/tasks/delete', TypeUrl.taskDelete, ev.TaskDelete, {
      containerId: c.id, pid: p.pid, exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt), id: c.id,
    });
    log.info('task deleted', { status: p.exitStatus });
    if (c.isSandbox && sb) {
      // Deleting the sandbox stops the VM; pod containers still around are gone with it.
      for (const other of this.containers.values()) for (const x of [other.init, ...other.execs.values()]) if (!x.done) this.exited(other, x, 255);
      await sb.stop();
    }
    span(log, 'delete-cleanup', t);
    return { pid: p.pid, exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt) };
  }

  async kill(req: containerd.task.v2.KillRequest): Promise<void> {
    const { c, p } = this.proc(req.id, req.execId);
    const sig = req.signal;
    if (p.done) {
      // As runc's shim (and containerd's conformance tests) expect: a second kill, of any signal,
      // is NOT_FOUND; CRI and WithProcessKill treat that as success. With `all` too: once the
      // init is gone the guest has ended every process of the container.
      throw new NotFoundError(`process ${p.execId || c.id} already finished: not found`);
    }
    if (p.state === 'created') {
      // Never started: nothing runs in the guest yet; it ends as if killed.
      p.io?.destroy();
      this.exited(c, p, 128 + sig);
      return;
    }
    // Kata signals the whole container for the init process (exec_id "" = all processes).
    await this.agent().signalProcess(c.id, p.isInit || req.all ? '' : p.agentExecId, sig);
  }

  async exec(req: containerd.task.v2.ExecProcessRequest): Promise<void> {
    const c = this.container(req.id);
    const eid = parseExecId(req.execId);
    if (!eid) throw new InvalidArgumentError(`invalid exec id ${JSON.stringify(req.execId)}`);
    if (c.execs.has(eid)) throw new AlreadyExistsError(`exec ${eid} already exists in task ${c.id}`);
    if (c.init.done) throw new IllegalStateError(`task ${c.id}`, c.init.state, 'exec in');
    let spec: unknown;
    try {
      spec = JSON.parse(Buffer.from(req.spec?.value ?? new Uint8Array()).toString('utf8'));
    } catch (err) {
      throw new InvalidArgumentError(`exec ${eid}: the process spec is not JSON`, { cause: err });
    }
    const stdio: StdioStrings = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal };
    const p = new Proc(c.id, eid, stdio, spec);
    c.execs.set(eid, p);
    try {
      p.io = await openProcessIO(parseStdio(stdio), { containerId: c.id, namespace: this.o.namespace, log: this.log });
    } catch (err) {
      c.execs.delete(eid);
      throw err;
    }
    this.emit('/tasks/exec-added', TypeUrl.taskExecAdded, ev.TaskExecAdded, { containerId: c.id, execId: eid });
  }

  async resizePty(req: containerd.task.v2.ResizePtyRequest): Promise<void> {
    const { c, p } = this.proc(req.id, req.execId);
    if (p.state === 'created') {
      p.pendingResize = { width: req.width, height: req.height };
      return;
    }
    if (p.done) return;
    await this.agent().ttyWinResize(c.id, p.agentExecId, req.height, req.width);
  }

  async closeIO(req: containerd.task.v2.CloseIORequest): Promise<void> {
    const { p } = this.proc(req.id, req.execId);
    if (req.stdin) p.io?.closeStdin();
  }

  async pause(req: containerd.task.v2.PauseRequest): Promise<void> {
    const c = this.container(req.id);
    if (!c.init.sm.can('pause')) throw new IllegalStateError(`task ${c.id}`, c.init.state, 'pause');
    await this.agent().pauseContainer(c.id);
    c.init.sm.step('pause');
    this.emit('/tasks/paused', TypeUrl.taskPaused, ev.TaskPaused, { containerId: c.id });
  }

  async resume(req: containerd.task.v2.ResumeRequest): Promise<void> {
    const c = this.container(req.id);
    if (!c.init.sm.can('resume')) throw new IllegalStateError(`task ${c.id}`, c.init.state, 'resume');
    await this.agent().resumeContainer(c.id);
    c.init.sm.step('resume');
    this.emit('/tasks/resumed', TypeUrl.taskResumed, ev.TaskResumed, { containerId: c.id });
  }

  async checkpoint(_req: containerd.task.v2.CheckpointTaskRequest): Promise<void> {
    throw new UnimplementedError('checkpoint is not supported by kata-ts (VM sandboxes cannot be checkpointed)');
  }

  async update(req: containerd.task.v2.UpdateTaskRequest): Promise<void> {
    const c = this.container(req.id);
    let resources: unknown;
    try {
      resources = JSON.parse(Buffer.from(req.resources?.value ?? new Uint8Array()).toString('utf8') || '{}');
    } catch (err) {
      throw new InvalidArgumentError(`update of task ${c.id}: resources are not JSON`, { cause: err });
    }
    await this.agent().updateContainer(c.id, toGuestResources(resources));
  }

  async wait(req: containerd.task.v2.WaitRequest): Promise<containerd.task.v2.WaitResponse.$Properties> {
    const { p } = this.proc(req.id, req.execId);
    await p.exited;
    return { exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt) };
  }

  async state(req: containerd.task.v2.StateRequest): Promise<containerd.task.v2.StateResponse.$Properties> {
    const { c, p } = this.proc(req.id, req.execId);
    return {
      id: p.execId || c.id, bundle: c.bundle, pid: p.pid, status: statusOf(p.state),
      stdin: p.stdio.stdin, stdout: p.stdio.stdout, stderr: p.stdio.stderr, terminal: p.stdio.terminal,
      exitStatus: p.exitStatus, exitedAt: ts(p.exitedAt), execId: p.execId,
    };
  }

  async pids(req: containerd.task.v2.PidsRequest): Promise<containerd.task.v2.PidsResponse.$Properties> {
    const c = this.container(req.id);
    const procs = [c.init, ...c.execs.values()].filter((p) => !p.done || p.isInit);
    // No guest pid API in the agent: every process reports the VMM's pid, as Kata does.
    return { processes: procs.map((p) => ({ pid: p.pid || this.pid })) };
  }

  async stats(req: containerd.task.v2.StatsRequest): Promise<containerd.task.v2.StatsResponse.$Properties> {
    const c = this.container(req.id);
    const s = await this.agent().statsContainer(c.id);
    const any = metricsAny(s, this.cgroupMode);
    return { stats: { type_url: any.typeUrl, value: any.value } };
  }

  async connect(_req: containerd.task.v2.ConnectRequest): Promise<containerd.task.v2.ConnectResponse.$Properties> {
    return { shimPid: process.pid, taskPid: this.pid, version: SHIM_VERSION };
  }

  async shutdown(_req: containerd.task.v2.ShutdownRequest): Promise<void> {
    // A pod's shim stays while any task remains.
    if (this.containers.size > 0 || this.creating.size > 0) return;
    setImmediate(() => this.o.onIdle());
  }

  /** Stops everything now (SIGTERM or the last Shutdown). */
  async destroy(): Promise<void> {
    for (const c of this.containers.values()) for (const p of [c.init, ...c.execs.values()]) p.io?.destroy();
    await this.sandbox?.stop();
  }
}

/** For tests of the adapter: the v2 message namespace. */
export const taskMessages = v2;

/** Host paths a bind mount may name that stay as they are: the guest has its own. */
const GUEST_OWN_SOURCES = ['/proc', '/sys', '/dev'];

/**
 * Kata's replaceOCIMountSource: every bind mount of a host file or directory (not one under
 * /proc, /sys or /dev, nor /dev/shm, which the agent client rewrites) is shared into the guest
 * through virtio-fs; the spec the guest gets names the shared path. Other mounts pass as they are.
 */
async function shareBindMounts(fs: SharedFs, containerId: string, mounts: unknown): Promise<unknown> {
  if (!Array.isArray(mounts)) return mounts;
  const out: unknown[] = [];
  for (const m of mounts as { destination?: unknown; source?: unknown; type?: unknown; options?: unknown }[]) {
    const options = Array.isArray(m?.options) ? (m.options as unknown[]) : [];
    const bind = m?.type === 'bind' || options.includes('bind') || options.includes('rbind');
    const source = typeof m?.source === 'string' ? m.source : '';
    const destination = typeof m?.destination === 'string' ? m.destination : '';
    const own = GUEST_OWN_SOURCES.some((p) => source === p || source.startsWith(`${p}/`));
    if (!bind || !source.startsWith('/') || own || destination === '/dev/shm') {
      out.push(m);
      continue;
    }
    const guest = await fs.shareBindMount(containerId, source, destination, { readonly: options.includes('ro'), recursive: options.includes('rbind') });
    out.push({ ...m, source: guest });
  }
  return out;
}
