// The task service over an in-memory VM and guest: the orchestration, state and event order.
// (The real VMM and agent are exercised by the e2e tests with the simulators.)
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pathsUnder } from '../config/index.js';
import { containerd } from '../proto/index.js';
import { Code, StatusError } from 'ttrpc-ts';
import { EventPublisher, type QueuedEvent } from './events.js';
import { createLogger, nullLogger, type Logger } from './log.js';
import type { SandboxParts } from './sandbox.js';
import { TaskService } from './service.js';
import { taskHandlers, TASK_TABLE } from './task-table.js';

const v2 = containerd.task.v2;

class FakeProc {
  out: Uint8Array[] = [];
  status?: number;
  waiters: (() => void)[] = [];
  readers: (() => void)[] = [];
  stdin: string[] = [];
  constructor(readonly script: { out?: string; exit?: number }) {}
  run() {
    if (this.script.out) this.out.push(Buffer.from(this.script.out));
    if (this.script.exit !== undefined) this.exit(this.script.exit);
    this.kick();
  }
  exit(code: number) {
    if (this.status !== undefined) return;
    this.status = code;
    this.kick();
  }
  kick() {
    for (const f of this.readers.splice(0)) f();
    if (this.status !== undefined && this.out.length === 0) for (const f of this.waiters.splice(0)) f();
  }
}

function fakeParts(calls: string[], scripts: Record<string, { out?: string; exit?: number }>) {
  const procs = new Map<string, FakeProc>();
  const dialed: any[] = [];
  const key = (c: string, e: string) => `${c}/${e || c}`;
  let closeCb: ((e: Error) => void) | undefined;
  let vmExit!: (x: { reason: string; detail: string }) => void;
  const vmGone = new Promise<{ reason: string; detail: string }>((r) => { vmExit = r; });
  const agent = {
    check: async () => { calls.push('check'); },
    createSandbox: async (r: any) => { calls.push(`createSandbox ${r.sandboxId}`); },
    getGuestDetails: async () => { calls.push('getGuestDetails'); return {}; },
    getOOMEvent: () => new Promise<string>(() => {}),
    createContainer: async (r: any) => {
      calls.push(`createContainer ${r.containerId} root=${r.OCI.Root.Path}`);
      procs.set(key(r.containerId, ''), new FakeProc(scripts[r.containerId] ?? {}));
    },
    startContainer: async (id: string) => { calls.push(`startContainer ${id}`); procs.get(key(id, ''))!.run(); },
    execProcess: async (r: any) => {
      calls.push(`execProcess ${r.containerId} ${r.process.Args.join(' ')}`);
      const p = new FakeProc(scripts[r.process.Args.join(' ')] ?? {});
      procs.set(key(r.containerId, r.execId), p);
      p.run();
    },
    signalProcess: async (c: string, e: string, sig: number) => { calls.push(`signal ${c} ${e || '(all)'} ${sig}`); procs.get(key(c, e))?.exit(128 + sig); },
    waitProcess: async (c: string, e: string) => {
      const p = procs.get(key(c, e))!;
      await new Promise<void>((r) => { if (p.status !== undefined && p.out.length === 0) r(); else p.waiters.push(r); });
      return p.status!;
    },
    readStdout: async (c: string, e: string) => {
      const p = procs.get(key(c, e))!;
      for (;;) {
        const chunk = p.out.shift();
        if (chunk) { p.kick(); return chunk; }
        if (p.status !== undefined) return new Uint8Array();
        await new Promise<void>((r) => p.readers.push(r));
      }
    },
    readStderr: async () => new Uint8Array(),
    writeStdin: async (c: string, e: string, d: Uint8Array) => { procs.get(key(c, e))!.stdin.push(Buffer.from(d).toString()); return d.length; },
    closeStdin: async () => {},
    ttyWinResize: async (c: string, _e: string, rows: number, cols: number) => { calls.push(`resize ${c} ${rows}x${cols}`); },
    statsContainer: async () => ({ cgroupStats: { memoryStats: { usage: { usage: 1234 } }, cpuStats: { cpuUsage: { totalUsage: 5000 } } }, networkStats: [] }),
    pauseContainer: async (id: string) => { calls.push(`pause ${id}`); },
    resumeContainer: async (id: string) => { calls.push(`resume ${id}`); },
    updateContainer: async (id: string) => { calls.push(`update ${id}`); },
    removeContainer: async (id: string) => { calls.push(`removeContainer ${id}`); },
    destroySandbox: async () => { calls.push('destroySandbox'); },
    onClose: (cb: (e: Error) => void) => { closeCb = cb; },
    close: () => {},
  };
  const parts: SandboxParts = {
    loadConfig: async () => ({ file: '/fake.toml', hypervisor: { virtio_fs_cache: 'auto' }, agent: { dial_timeout: 1, kernel_modules: [] }, runtime: { create_container_timeout: 60, disable_guest_seccomp: true } }) as any,
    createSharedFs: (o: any) => ({
      sharedDir: '/shared',
      setup: async () => { calls.push('fs.setup'); },
      shareRootfs: async (cid: string) => { calls.push(`shareRootfs ${cid}`); return `/run/kata-containers/shared/containers/${cid}/rootfs`; },
      unshareRootfs: async (cid: string) => { calls.push(`unshareRootfs ${cid}`); },
      teardown: async () => { calls.push(`fs.teardown ${o.sandboxId}`); },
    }) as any,
    createHypervisor: (o: any) => ({
      // The real hypervisor's log lines that mark its phases (the shim's spans use them).
      start: async () => { calls.push('vm.start'); o.log.info('started', { process: 'cloud-hypervisor' }); o.log.info('cloud-hypervisor API ready'); },
      stop: async () => { calls.push('vm.stop'); vmExit({ reason: 'stopped', detail: 'stopped' }); },
      wait: () => vmGone as any,
      agentAddress: () => ({ socketPath: '/clh.sock', port: 1024 }),
      pids: () => [4242],
      resize: async () => {},
      counters: async () => ({}),
    }),
    dialAgent: (async (o: any) => { calls.push('dial'); dialed.push(o); return agent; }) as any,
  };
  return { parts, procs, dialed, killVm: (detail: string) => vmExit({ reason: 'vmm-exited', detail }), closeAgent: (e: Error) => closeCb?.(e) };
}

let dir: string;
let events: QueuedEvent[];
let calls: string[];

function setup(scripts: Record<string, { out?: string; exit?: number }> = {}, log: Logger = nullLogger) {
  const f = fakeParts(calls, scripts);
  const pub = new EventPublisher({
    connect: async () => ({ closed: false, close() {}, forward: async (e) => { events.push(e); } }),
    log: nullLogger,
  });
  let idle = false;
  const svc = new TaskService({ namespace: 'ns', log, events: pub, paths: pathsUnder(dir), env: {}, parts: f.parts, cgroupMode: 'v1', onIdle: () => { idle = true; } });
  const h = taskHandlers(svc, nullLogger);
  const call = async <T>(method: keyof typeof TASK_TABLE, req: object, res?: { decode(b: Uint8Array): T }): Promise<T> => {
    const row = TASK_TABLE[method] as any;
    const out = await h[method](row.request.encode(req).finish(), { service: 'containerd.task.v2.Task', method, metadata: {}, signal: new AbortController().signal });
    return (res ? res.decode(out as Uint8Array) : undefined) as T;
  };
  return { svc, call, pub, f, isIdle: () => idle };
}

function bundle(id: string, annotations: Record<string, string> = {}): string {
  const b = join(dir, id);
  mkdirSync(b, { recursive: true });
  writeFileSync(join(b, 'config.json'), JSON.stringify({
    ociVersion: '1.0.2', process: { args: ['sh'], cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } },
    root: { path: 'rootfs' }, hostname: id, annotations, linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }] },
  }));
  return b;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kts-svc-'));
  events = [];
  calls = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const topics = () => events.map((e) => e.topic);

describe('task service', () => {
  it('ctr run --rm: create boots the VM, start, exit, wait, delete stops the VM, shutdown exits', async () => {
    const { call, pub, isIdle } = setup({ t1: { exit: 7 } });
    const created = await call('Create', { id: 't1', bundle: bundle('t1') }, v2.CreateTaskResponse);
    expect(created.pid).toBe(4242);
    expect(calls).toEqual(['fs.setup', 'vm.start', 'dial', 'check', 'createSandbox t1', 'getGuestDetails', 'shareRootfs t1',
      'createContainer t1 root=/run/kata-containers/shared/containers/t1/rootfs']);
    const waited = call('Wait', { id: 't1' }, v2.WaitResponse);
    const started = await call('Start', { id: 't1' }, v2.StartResponse);
    expect(started.pid).toBe(4242);
    const w = await waited;
    expect(w.exitStatus).toBe(7);
    expect(Number(w.exitedAt?.seconds)).toBeGreaterThan(0);
    const state = await call('State', { id: 't1' }, v2.StateResponse);
    expect(state).toMatchObject({ status: 3, exitStatus: 7, pid: 4242 });
    const d = await call('Delete', { id: 't1' }, v2.DeleteResponse);
    expect(d.exitStatus).toBe(7);
    expect(calls).toContain('removeContainer t1');
    expect(calls).toContain('unshareRootfs t1');
    expect(calls.slice(-3)).toEqual(['destroySandbox', 'vm.stop', 'fs.teardown t1']);
    await call('Shutdown', { id: 't1' });
    await new Promise((r) => setImmediate(r));
    expect(isIdle()).toBe(true);
    await pub.flush(1000);
    expect(topics()).toEqual(['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']);
  });

  it('Delete of an unknown id is NOT_FOUND; Checkpoint is UNIMPLEMENTED', async () => {
    const { call } = setup();
    await expect(call('Delete', { id: 'nope' })).rejects.toMatchObject({ code: Code.NOT_FOUND });
    await expect(call('Checkpoint', { id: 'nope' })).rejects.toMatchObject({ code: Code.UNIMPLEMENTED });
    await expect(call('Create', { id: 'bad/id', bundle: '/x' })).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT });
  });

  it('exec: added, started, output, exit; duplicate id ALREADY_EXISTS; resize before start is kept', async () => {
    const { call, pub } = setup({ 'sh -c exit 5': { exit: 5 } });
    await call('Create', { id: 'c', bundle: bundle('c') });
    await call('Start', { id: 'c' });
    const spec = { type_url: 'types.containerd.io/opencontainers/runtime-spec/1/Process', value: Buffer.from(JSON.stringify({ args: ['sh', '-c', 'exit 5'], cwd: '/', env: [] })) };
    await call('Exec', { id: 'c', execId: 'e1', spec, terminal: true });
    await expect(call('Exec', { id: 'c', execId: 'e1', spec })).rejects.toMatchObject({ code: Code.ALREADY_EXISTS });
    await call('ResizePty', { id: 'c', execId: 'e1', width: 80, height: 24 });
    const waited = call('Wait', { id: 'c', execId: 'e1' }, v2.WaitResponse);
    await call('Start', { id: 'c', execId: 'e1' });
    expect((await waited).exitStatus).toBe(5);
    expect(calls).toContain('resize c 24x80');
    await expect(call('Delete', { id: 'c' })).rejects.toMatchObject({ code: Code.FAILED_PRECONDITION });
    await call('Delete', { id: 'c', execId: 'e1' });
    const s = await call('State', { id: 'c' }, v2.StateResponse);
    expect(s.status).toBe(2);
    await call('Kill', { id: 'c', signal: 9 });
    await call('Wait', { id: 'c' });
    await expect(call('Kill', { id: 'c', signal: 15 })).rejects.toMatchObject({ code: Code.NOT_FOUND });
    await call('Delete', { id: 'c' });
    await pub.flush(1000);
    expect(topics()).toEqual(['/tasks/create', '/tasks/start', '/tasks/exec-added', '/tasks/exec-started', '/tasks/exit', '/tasks/delete', '/tasks/exit', '/tasks/delete']);
    const exit = containerd.events.TaskExit.decode(events[6].value);
    expect(exit).toMatchObject({ containerId: 'c', id: 'c', exitStatus: 137, pid: 4242 });
  });

  it('output reaches the fifo before Wait returns', async () => {
    const { call } = setup({ o: { out: 'hello\n', exit: 0 } });
    const fifo = join(dir, 'out');
    execFileSync('mkfifo', [fifo]);
    const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    await call('Create', { id: 'o', bundle: bundle('o'), stdout: fifo });
    const waited = call('Wait', { id: 'o' });
    await call('Start', { id: 'o' });
    await waited;
    const buf = Buffer.alloc(64);
    expect(buf.subarray(0, fs.readSync(reader, buf)).toString()).toBe('hello\n');
    fs.closeSync(reader);
    await call('Delete', { id: 'o' });
  });

  it('pause/resume follow the state table; Pids is never empty; Stats decodes', async () => {
    const { call, pub } = setup();
    await call('Create', { id: 'p', bundle: bundle('p') });
    await expect(call('Pause', { id: 'p' })).rejects.toMatchObject({ code: Code.FAILED_PRECONDITION, message: 'cannot pause task p: it is created' });
    await call('Start', { id: 'p' });
    await call('Pause', { id: 'p' });
    expect((await call('State', { id: 'p' }, v2.StateResponse)).status).toBe(4);
    await call('Resume', { id: 'p' });
    const pids = await call('Pids', { id: 'p' }, v2.PidsResponse);
    expect(pids.processes.map((x) => x.pid)).toEqual([4242]);
    const st = await call('Stats', { id: 'p' }, v2.StatsResponse);
    expect(st.stats?.type_url).toBe('io.containerd.cgroups.v1.Metrics');
    const m = (await import('../proto/index.js')).io.containerd.cgroups.v1.Metrics.decode(st.stats!.value!);
    expect(m.memory?.usage?.usage).toBe(1234);
    await pub.flush(1000);
    expect(topics()).toEqual(['/tasks/create', '/tasks/start', '/tasks/paused', '/tasks/resumed']);
  });

  it('when the VM dies every task exits with 255', async () => {
    const { call, f, pub } = setup();
    await call('Create', { id: 'v', bundle: bundle('v') });
    await call('Start', { id: 'v' });
    const waited = call('Wait', { id: 'v' }, v2.WaitResponse);
    f.killVm('cloud-hypervisor (pid 4242) exited with signal SIGKILL');
    expect((await waited).exitStatus).toBe(255);
    await call('Delete', { id: 'v' });
    await pub.flush(1000);
    expect(topics()).toEqual(['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']);
  });

  it('a failed VM start cleans up and the id can be created again', async () => {
    const { call, svc } = setup();
    const b = bundle('f');
    (svc as any).o.parts.dialAgent = async () => { throw Object.assign(new Error('no agent'), { code: 'AGENT_DIAL' }); };
    await expect(call('Create', { id: 'f', bundle: b })).rejects.toBeInstanceOf(StatusError);
    expect(calls).toEqual(['fs.setup', 'vm.start', 'vm.stop', 'fs.teardown f']);
    expect(svc.sandbox).toBeUndefined();
    expect(svc.containers.size).toBe(0);
  });
  it('a CRI pod: the sandbox creates the VM, containers join it, the shim stays until the last task', async () => {
    const { call, isIdle, svc } = setup();
    const cri = (type: string) => ({ 'io.kubernetes.cri.container-type': type, 'io.kubernetes.cri.sandbox-id': 'sb' });
    await call('Create', { id: 'sb', bundle: bundle('sb', cri('sandbox')) });
    await call('Start', { id: 'sb' });
    await call('Create', { id: 'c1', bundle: bundle('c1', cri('container')) });
    expect(calls.filter((x) => x === 'vm.start')).toHaveLength(1);
    await call('Start', { id: 'c1' });
    // A container of another pod is not ours.
    await expect(call('Create', { id: 'c2', bundle: bundle('c2', { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'other' }) }))
      .rejects.toMatchObject({ code: Code.NOT_FOUND });
    await call('Kill', { id: 'c1', signal: 9 });
    await call('Wait', { id: 'c1' });
    await call('Delete', { id: 'c1' });
    expect(calls).not.toContain('vm.stop');
    await call('Shutdown', { id: 'c1' });
    await new Promise((r) => setImmediate(r));
    expect(isIdle()).toBe(false);
    await call('Kill', { id: 'sb', signal: 9 });
    await call('Wait', { id: 'sb' });
    await call('Delete', { id: 'sb' });
    expect(calls.slice(-3)).toEqual(['destroySandbox', 'vm.stop', 'fs.teardown sb']);
    expect(svc.containers.size).toBe(0);
    await call('Shutdown', { id: 'sb' });
    await new Promise((r) => setImmediate(r));
    expect(isIdle()).toBe(true);
  });
  it('Update sends the resources to the guest; Connect reports the shim and VMM pids; CloseIO on an unknown exec is NOT_FOUND', async () => {
    const { call } = setup();
    await call('Create', { id: 'u', bundle: bundle('u') });
    await call('Start', { id: 'u' });
    const resources = { type_url: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources', value: Buffer.from(JSON.stringify({ memory: { limit: 1 << 28 } })) };
    await call('Update', { id: 'u', resources });
    expect(calls).toContain('update u');
    const conn = await call('Connect', { id: 'u' }, v2.ConnectResponse);
    expect(conn).toMatchObject({ shimPid: process.pid, taskPid: 4242 });
    await expect(call('CloseIO', { id: 'u', execId: 'nope', stdin: true })).rejects.toMatchObject({ code: Code.NOT_FOUND });
    await call('Kill', { id: 'u', signal: 9 });
    await call('Wait', { id: 'u' });
    await call('Delete', { id: 'u' });
  });
  it('Create whose caller gave up (deadline) undoes the half-made sandbox', async () => {
    const { svc } = setup();
    const parts = (svc as any).o.parts;
    const dial = parts.dialAgent;
    parts.dialAgent = async (o: any) => { await new Promise((r) => setTimeout(r, 100)); return dial(o); };
    const ac = new AbortController();
    setTimeout(() => ac.abort(new StatusError(Code.DEADLINE_EXCEEDED, 'context deadline exceeded')), 20);
    const req = v2.CreateTaskRequest.create({ id: 'slow', bundle: bundle('slow') });
    await expect(svc.create(req, ac.signal)).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(calls).toContain('vm.stop');
    expect(calls.at(-1)).toBe('fs.teardown slow');
    expect(svc.sandbox).toBeUndefined();
    expect(svc.containers.size).toBe(0);
  });
  it('Delete of a never-started task releases its Wait and sends only /tasks/delete', async () => {
    const { call, pub } = setup();
    await call('Create', { id: 'n', bundle: bundle('n') });
    const waited = call('Wait', { id: 'n' }, v2.WaitResponse);
    await call('Delete', { id: 'n' });
    expect((await waited).exitStatus).toBe(0);
    await pub.flush(1000);
    expect(topics()).toEqual(['/tasks/create', '/tasks/delete']);
  });
  it('Kill of an exited process is NOT_FOUND (task, exec, with all), as runc\'s shim answers', async () => {
    const { call } = setup({ 'true': { exit: 0 } });
    await call('Create', { id: 'k', bundle: bundle('k') });
    await call('Start', { id: 'k' });
    const spec = { type_url: 'types.containerd.io/opencontainers/runtime-spec/1/Process', value: Buffer.from(JSON.stringify({ args: ['true'], cwd: '/', env: [] })) };
    await call('Exec', { id: 'k', execId: 'e', spec });
    const execWait = call('Wait', { id: 'k', execId: 'e' });
    await call('Start', { id: 'k', execId: 'e' });
    await execWait;
    for (const signal of [9, 15, 1]) {
      await expect(call('Kill', { id: 'k', execId: 'e', signal })).rejects.toMatchObject({ code: Code.NOT_FOUND, message: 'process e already finished: not found' });
    }
    // An exec never started ends as if killed; the next kill finds nothing.
    await call('Exec', { id: 'k', execId: 'n', spec });
    await call('Kill', { id: 'k', execId: 'n', signal: 15 });
    expect((await call('Wait', { id: 'k', execId: 'n' }, v2.WaitResponse)).exitStatus).toBe(143);
    await expect(call('Kill', { id: 'k', execId: 'n', signal: 9 })).rejects.toMatchObject({ code: Code.NOT_FOUND });
    await call('Delete', { id: 'k', execId: 'n' });
    await call('Kill', { id: 'k', signal: 9 });
    await call('Wait', { id: 'k' });
    for (const req of [{ signal: 9 }, { signal: 15 }, { signal: 9, all: true }]) {
      await expect(call('Kill', { id: 'k', ...req })).rejects.toMatchObject({ code: Code.NOT_FOUND, message: 'process k already finished: not found' });
    }
    await call('Delete', { id: 'k', execId: 'e' });
    await call('Delete', { id: 'k' });
  });
  it('at debug level one span line each: sandbox-setup, vmm-launch, vm-create-boot, agent-dial, container-create/start, exit-to-event, delete-cleanup', async () => {
    const lines: string[] = [];
    const { call } = setup({ s: { exit: 0 } }, createLogger({ debug: true, write: (l) => lines.push(l) }));
    await call('Create', { id: 's', bundle: bundle('s') });
    const waited = call('Wait', { id: 's' });
    await call('Start', { id: 's' });
    await waited;
    await call('Delete', { id: 's' });
    const spans = lines.filter((l) => l.includes('msg="span"')).map((l) => /span=(\S+) duration_ms=(\d+(\.\d+)?)(\s|$)/.exec(l)?.[1]);
    expect(spans).toEqual(['sandbox-setup', 'vmm-launch', 'vm-create-boot', 'agent-dial', 'container-create', 'container-start', 'exit-to-event', 'delete-cleanup']);
    expect(lines.find((l) => l.includes('span=container-create'))).toMatch(/^time="[^"]+" level=debug msg="span" subsystem=shim container=s span=container-create duration_ms=\d/);
  });
  it('dialAgent is told where the guest console goes (the shim log of this bundle)', async () => {
    const { call, f } = setup();
    const b = bundle('h');
    await call('Create', { id: 'h', bundle: b });
    expect(f.dialed[0].consoleHint).toBe(`the shim log (${b}/log, copied into containerd's log): lines with sandbox=h process=cloud-hypervisor; the guest console is off: set [hypervisor.clh] enable_debug = true to see it`);
    await call('Delete', { id: 'h' });
  });
});
