// The guest side of grpc.AgentService and grpc.Health: a sandbox seen the way a guest sees it
// (virtio-fs storage mounted at a guest path = virtiofsd's shared dir on the host), containers
// run for real by runc, and the agent's error codes (3.28+).
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { Code, StatusError, type CallContext, type UnaryHandler } from 'ttrpc-ts';
import { google, grpc, types } from '../../../proto/index.js';
import { guestMountDir, guestMountsRoot, mountsUnder, type GuestView } from '../guest.js';
import { Container } from './container.js';
import type { GuestProcess, ProcessLog } from './process.js';
import { Runc } from './runc.js';
import { ociFromGrpc, ociProcessFromGrpc, ociResourcesFromGrpc } from './spec.js';

export const agentVersion = '3.32.0';
const MEM_BLOCK_SIZE = 128 * 1024 * 1024;

interface Codec<T> { decode(b: Uint8Array): T; encode(m: any): { finish(): Uint8Array } }

function unary<Req, Res>(req: Codec<Req>, res: Codec<Res> | null, fn: (r: Req, ctx: CallContext) => Promise<object | void> | object | void): UnaryHandler {
  return async (payload, ctx) => {
    let r: Req;
    try { r = req.decode(payload); } catch (e) {
      throw new StatusError(Code.UNKNOWN, `cannot decode ${ctx.method} request: ${(e as Error).message}`);
    }
    const out = await fn(r, ctx);
    return res ? res.encode(out ?? {}).finish() : new Uint8Array(0);
  };
}

const invalid = (m: string) => new StatusError(Code.INVALID_ARGUMENT, m);
const internal = (m: string) => new StatusError(Code.INTERNAL, m);
const notFound = (m: string) => new StatusError(Code.NOT_FOUND, m);

/** How the guest resolves paths: storage mount points onto host dirs (virtio-fs), guest-local dirs into its private dir. */
class GuestFs {
  private readonly mounts: { guest: string; host: string }[] = [];
  constructor(private readonly guestDir: string) {}

  mount(guest: string, host: string): void {
    this.mounts.push({ guest: posix.normalize(guest).replace(/\/$/, ''), host });
  }

  /** The host path behind a guest path under a mounted storage, or undefined. */
  resolve(guestPath: string): string | undefined {
    const p = posix.normalize(guestPath);
    for (const m of [...this.mounts].sort((a, b) => b.guest.length - a.guest.length)) {
      if (p === m.guest || p.startsWith(m.guest + '/')) return join(m.host, p.slice(m.guest.length));
    }
    return undefined;
  }

  /** Any other guest path: inside the guest's own root (which has nothing the runtime didn't put there). */
  local(guestPath: string): string {
    return join(this.guestDir, 'root', posix.normalize(guestPath));
  }
}

export class Agent {
  private readonly runc: Runc;
  private readonly fs: GuestFs;
  private readonly containers = new Map<string, Container>();
  private sandbox?: { id: string; hostname: string; pidnsOf?: string };
  private netns?: string;
  private oomQueue: string[] = [];
  private oomWaiters: { resolve: (id: string) => void; reject: (e: Error) => void }[] = [];
  private destroyed = false;
  private readonly interfaces = new Map<string, types.IInterface>();
  private routes: types.IRoute[] = [];

  constructor(readonly view: GuestView, private readonly log: ProcessLog, private readonly onDestroySandbox: () => void) {
    mkdirSync(join(view.guestDir, 'runc'), { recursive: true });
    this.runc = new Runc(join(view.guestDir, 'runc'));
    this.fs = new GuestFs(view.guestDir);
    // The guest's own /run/kata-containers/sandbox (shm, ephemeral storages) lives in its private dir.
    this.fs.mount('/run/kata-containers/sandbox', join(view.guestDir, 'sandbox'));
  }

  private container(id: string): Container {
    if (!id) throw invalid('container id is empty');
    const c = this.containers.get(id);
    if (!c) throw invalid(`container ${id} not found`);
    return c;
  }

  private process(cid: string, execId: string): GuestProcess {
    const c = this.container(cid);
    if (execId === '' || execId === cid) {
      if (!c.init) throw notFound(`init process of container ${cid} not found (container not started)`);
      return c.init;
    }
    const p = c.execs.get(execId);
    if (!p) throw notFound(`process ${execId} not found in container ${cid}`);
    return p;
  }

  /** Runs a step whose failure is an internal agent error (anything not already a status). */
  private async step<T>(f: () => Promise<T> | T): Promise<T> {
    try { return await f(); } catch (e) {
      if (e instanceof StatusError) throw e;
      throw internal((e as Error).message);
    }
  }

  health(): Record<string, UnaryHandler> {
    return {
      Check: unary(grpc.CheckRequest, grpc.HealthCheckResponse, () => ({ status: grpc.HealthCheckResponse.ServingStatus.SERVING })),
      Version: unary(grpc.CheckRequest, grpc.VersionCheckResponse, () => ({ grpcVersion: '0.8.4', agentVersion })),
    };
  }

  service(): Record<string, UnaryHandler> {
    const E = google.protobuf.Empty;
    return {
      CreateSandbox: unary(grpc.CreateSandboxRequest, E, (r) => this.createSandbox(r)),
      DestroySandbox: unary(grpc.DestroySandboxRequest, E, () => this.destroySandbox()),
      CreateContainer: unary(grpc.CreateContainerRequest, E, (r) => this.createContainer(r)),
      StartContainer: unary(grpc.StartContainerRequest, E, (r) => this.step(() => this.container(r.containerId).start())),
      RemoveContainer: unary(grpc.RemoveContainerRequest, E, async (r) => {
        const c = this.container(r.containerId);
        await this.step(() => c.destroy(r.timeout * 1000));
        this.containers.delete(c.id);
      }),
      ExecProcess: unary(grpc.ExecProcessRequest, E, async (r) => {
        const c = this.container(r.containerId);
        if (!r.execId) throw invalid('exec id is empty');
        if (!r.process) throw invalid('process is missing');
        if (c.execs.has(r.execId)) throw internal(`exec id ${r.execId} already exists in container ${c.id}`);
        await this.step(() => c.exec(r.execId, ociProcessFromGrpc(r.process!)));
      }),
      SignalProcess: unary(grpc.SignalProcessRequest, E, async (r) => {
        const c = this.container(r.containerId);
        if (r.execId !== '') this.process(r.containerId, r.execId);
        await this.step(() => c.signal(r.execId, r.signal));
      }),
      WaitProcess: unary(grpc.WaitProcessRequest, grpc.WaitProcessResponse, async (r) => ({ status: await this.process(r.containerId, r.execId).exited })),
      ReadStdout: unary(grpc.ReadStreamRequest, grpc.ReadStreamResponse, async (r, ctx) => ({ data: await this.process(r.containerId, r.execId).stdout.read(r.len, ctx.signal) })),
      ReadStderr: unary(grpc.ReadStreamRequest, grpc.ReadStreamResponse, async (r, ctx) => ({ data: await this.process(r.containerId, r.execId).stderr.read(r.len, ctx.signal) })),
      WriteStdin: unary(grpc.WriteStreamRequest, grpc.WriteStreamResponse, async (r) => {
        const p = this.process(r.containerId, r.execId);
        // An empty write closes stdin (agents 3.20+).
        if (r.data.length === 0) { p.closeStdin(); return { len: 0 }; }
        return { len: await this.step(() => p.write(r.data)) };
      }),
      CloseStdin: unary(grpc.CloseStdinRequest, E, (r) => { this.process(r.containerId, r.execId).closeStdin(); }),
      TtyWinResize: unary(grpc.TtyWinResizeRequest, E, (r) => this.step(() => this.process(r.containerId, r.execId).resize(r.row, r.column))),
      StatsContainer: unary(grpc.StatsContainerRequest, grpc.StatsContainerResponse, async (r) => {
        const c = this.container(r.containerId);
        return { cgroupStats: cgroupStats(await this.step(() => c.stats())), networkStats: [] };
      }),
      PauseContainer: unary(grpc.PauseContainerRequest, E, (r) => this.step(() => this.container(r.containerId).pause())),
      ResumeContainer: unary(grpc.ResumeContainerRequest, E, (r) => this.step(() => this.container(r.containerId).resume())),
      UpdateContainer: unary(grpc.UpdateContainerRequest, E, (r) => {
        const c = this.container(r.containerId);
        return this.step(() => c.update(ociResourcesFromGrpc(r.resources ?? {})));
      }),
      GetOOMEvent: unary(grpc.GetOOMEventRequest, grpc.OOMEvent, async (_r, ctx) => ({ containerId: await this.nextOom(ctx.signal) })),
      SetGuestDateTime: unary(grpc.SetGuestDateTimeRequest, E, () => {}),
      GetGuestDetails: unary(grpc.GuestDetailsRequest, grpc.GuestDetailsResponse, (r) => ({
        memBlockSizeBytes: r.memBlockSize ? MEM_BLOCK_SIZE : 0,
        supportMemHotplugProbe: false,
        agentDetails: { version: agentVersion, initDaemon: false, deviceHandlers: [], storageHandlers: ['virtio-fs', 'ephemeral', 'local'], supportsSeccomp: true, extraFeatures: [] },
      })),
      OnlineCPUMem: unary(grpc.OnlineCPUMemRequest, E, (r) => {
        if (r.nbCpus > 1024) throw internal(`cannot online ${r.nbCpus} CPUs`);
      }),
      UpdateInterface: unary(grpc.UpdateInterfaceRequest, types.Interface, (r) => {
        if (!r.interface) throw invalid('interface is missing');
        this.interfaces.set(r.interface.name ?? '', r.interface);
        return r.interface;
      }),
      UpdateRoutes: unary(grpc.UpdateRoutesRequest, grpc.Routes, (r) => {
        this.routes = r.routes?.Routes ?? [];
        return { Routes: this.routes };
      }),
      AddARPNeighbors: unary(grpc.AddARPNeighborsRequest, E, () => {}),
      RemoveStaleVirtiofsShareMounts: unary(grpc.RemoveStaleVirtiofsShareMountsRequest, E, () => {}),
    };
  }

  private createSandbox(r: grpc.CreateSandboxRequest): void {
    if (this.sandbox) throw internal('sandbox already created');
    for (const s of r.storages) {
      if (s.driver === 'virtio-fs') {
        const mountPoint = s.mountPoint ?? '';
        const dev = this.view.fs.find((f) => f.tag === s.source);
        if (!dev) throw internal(`mount ${s.source} (virtiofs) at ${s.mountPoint}: no such device`);
        if (s.fstype !== 'virtiofs') throw internal(`storage ${s.source}: fstype ${s.fstype} is not virtiofs`);
        this.fs.mount(mountPoint, dev.hostDir);
      } else if (s.driver === 'ephemeral' || s.driver === 'local') {
        const host = this.fs.local(s.mountPoint ?? "");
        mkdirSync(host, { recursive: true });
        this.fs.mount(s.mountPoint ?? "", host);
      } else {
        throw internal(`storage driver ${s.driver} is not supported by the kata-ts agent simulator`);
      }
    }
    if (!r.storages.some((s) => s.driver === 'virtio-fs')) {
      this.log.warn('CreateSandbox without a virtio-fs storage: container rootfs cannot be shared');
    }
    this.sandbox = { id: r.sandboxId, hostname: r.hostname };
    this.netns = this.makeNetns();
  }

  /** The VM's own network: one namespace per sandbox with loopback up, bind-mounted in the guest dir. */
  private makeNetns(): string | undefined {
    const file = join(this.view.guestDir, 'netns');
    try {
      writeFileSync(file, '');
      execFileSync('unshare', [`--net=${file}`, 'ip', 'link', 'set', 'lo', 'up'], { stdio: 'ignore' });
      return file;
    } catch (e) {
      this.log.warn('no private network namespace, containers share the host network', { err: (e as Error).message });
      rmSync(file, { force: true });
      return undefined;
    }
  }

  private async createContainer(r: grpc.CreateContainerRequest): Promise<void> {
    const id = r.containerId;
    if (!id || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id)) throw invalid(`invalid container id ${JSON.stringify(id)}`);
    if (this.containers.has(id)) throw internal(`container ${id} already exists`);
    if (!r.OCI) throw internal(`container ${id}: OCI spec is missing: EINVAL: Invalid argument`);
    const spec = ociFromGrpc(r.OCI);
    const rootGuest: string | undefined = spec.root?.path;
    if (!rootGuest) throw internal(`container ${id}: spec has no root.path`);
    const rootHost = this.fs.resolve(rootGuest);
    if (!rootHost || !existsSync(rootHost)) {
      throw internal(`container ${id}: rootfs ${rootGuest} does not exist in the guest (not under a shared storage mount)`);
    }
    if (!spec.process?.args?.length) throw internal(`container ${id}: process.args must not be empty`);
    spec.mounts = (spec.mounts ?? []).map((m: Record<string, any>) => this.guestMount(m));
    // A user namespace cannot mount sysfs for the sandbox's network namespace, which it does not
    // own (EPERM): /sys is bind-mounted instead, as runc 1.2+ and crun do.
    if ((spec.linux?.namespaces ?? []).some((n: { type: string }) => n.type === 'user')) {
      spec.mounts = spec.mounts.map((m: Record<string, any>) => m.type !== 'sysfs' ? m
        : { destination: m.destination, type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] });
    }
    // What the agent's container creation would trip over before the process ever runs.
    for (const m of spec.mounts) {
      if (m.source?.startsWith('/') && (m.type === 'bind' || (m.options ?? []).includes('rbind') || (m.options ?? []).includes('bind')) && !existsSync(m.source)) {
        throw internal(`container ${id}: mount ${m.destination}: bind source does not exist in the guest: No such file or directory (os error 2)`);
      }
    }
    if (spec.process.cwd && !spec.process.cwd.startsWith('/')) throw internal(`container ${id}: cwd ${spec.process.cwd} must be an absolute path`);
    spec.linux ??= {};
    const ns: { type: string; path?: string }[] = (spec.linux.namespaces ?? []).filter((n: { type: string }) => n.type !== 'network');
    if (this.netns) ns.push({ type: 'network', path: this.netns });
    // The runtime strips the pid namespace; the agent always gives the container one: the
    // sandbox's when sandbox_pidns is set, else a new one (a container never shares the guest
    // init's pid namespace, which a user-namespaced container could not mount /proc for).
    const first = r.sandboxPidns && this.sandbox?.pidnsOf ? this.containers.get(this.sandbox.pidnsOf)?.init?.pid() : undefined;
    const withoutPid = ns.filter((n) => n.type !== 'pid');
    withoutPid.push(first ? { type: 'pid', path: `/proc/${first}/ns/pid` } : { type: 'pid' });
    ns.splice(0, ns.length, ...withoutPid);
    spec.linux.namespaces = ns;
    spec.linux.cgroupsPath = `${this.view.cgroupParent || `/kata-ts-sim/${posix.basename(this.view.guestDir)}`}/${id}`;
    // The guest's own mount of the rootfs: the host folders above it (0750, root) would stop a
    // container whose user namespace maps root to another uid from reaching it.
    try { spec.root.path = this.bindRootfs(id, rootHost); } catch (e) { throw internal((e as Error).message); }
    const c = new Container(id, join(this.view.guestDir, 'containers', id), spec, this.runc, this.log, (cid) => this.pushOom(cid), () => this.unbindRootfs(id));
    this.containers.set(id, c);
    try {
      await c.create();
    } catch (e) {
      this.containers.delete(id);
      throw internal((e as Error).message);
    }
    if (this.sandbox && !this.sandbox.pidnsOf) this.sandbox.pidnsOf = id;
  }

  /** Binds the rootfs at `<guest mount dir>/<id>/rootfs`, reachable by any uid (dirs 0711). */
  private bindRootfs(id: string, rootHost: string): string {
    const mine = guestMountDir(this.view.guestDir);
    const parent = join(mine, id);
    const target = join(parent, 'rootfs');
    mkdirSync(target, { recursive: true });
    for (const d of [dirname(guestMountsRoot), guestMountsRoot, mine, parent]) chmodSync(d, 0o711);
    try {
      execFileSync('mount', ['--rbind', rootHost, target], { stdio: ['ignore', 'ignore', 'pipe'] });
      execFileSync('mount', ['--make-rprivate', target], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      this.unbindRootfs(id);
      throw new Error(`container ${id}: cannot mount rootfs ${rootHost} in the guest: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}`);
    }
    return target;
  }

  /** Undoes bindRootfs; never removes anything recursively (a live bind would take the rootfs's files along). */
  private unbindRootfs(id: string): void {
    const parent = join(guestMountDir(this.view.guestDir), id);
    const target = join(parent, 'rootfs');
    if (mountsUnder(target).length) {
      try { execFileSync('umount', ['--lazy', target], { stdio: 'ignore' }); } catch (e) {
        this.log.warn('cannot unmount a container rootfs', { id, err: (e as Error).message });
      }
    }
    for (const d of [target, parent]) try { rmdirSync(d); } catch { /* absent, or still mounted */ }
  }

  private guestMount(m: Record<string, any>): Record<string, any> {
    const isBind = m.type === 'bind' || (m.options ?? []).includes('bind') || (m.options ?? []).includes('rbind');
    if (!isBind || typeof m.source !== 'string' || !m.source.startsWith('/')) return m;
    const host = this.fs.resolve(m.source);
    if (host) return { ...m, source: host };
    // The guest's own kernel filesystems and devices exist in the guest too.
    if (/^\/(dev|proc|sys)(\/|$)/.test(m.source)) return m;
    return { ...m, source: this.fs.local(m.source) };
  }

  private pushOom(cid: string): void {
    const w = this.oomWaiters.shift();
    if (w) w.resolve(cid); else this.oomQueue.push(cid);
  }

  /** Test knob: KATA_AGENT_SIM_OOM=<container id>: report one OOM event for it (documented in README). */
  injectOom(cid: string): void { this.pushOom(cid); }

  private nextOom(signal: AbortSignal): Promise<string> {
    if (this.destroyed) return Promise.reject(internal('sandbox destroyed: no more OOM events'));
    const queued = this.oomQueue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      this.oomWaiters.push(w);
      signal.addEventListener('abort', () => {
        this.oomWaiters = this.oomWaiters.filter((x) => x !== w);
        reject(new StatusError(Code.CANCELLED, 'connection closed'));
      }, { once: true });
    });
  }

  private async destroySandbox(): Promise<void> {
    await this.destroyAll();
    this.destroyed = true;
    for (const w of this.oomWaiters.splice(0)) w.reject(internal('sandbox destroyed: OOM event channel closed'));
    setImmediate(() => this.onDestroySandbox());
  }

  /** Every container down and deleted, the sandbox network gone. */
  async destroyAll(): Promise<void> {
    const all = [...this.containers.values()];
    this.containers.clear();
    await Promise.all(all.map((c) => c.destroy().catch((e) => this.log.warn('destroying container failed', { id: c.id, err: (e as Error).message }))));
    if (this.netns) {
      try { execFileSync('umount', [this.netns], { stdio: 'ignore' }); } catch { /* not mounted */ }
      rmSync(this.netns, { force: true });
      this.netns = undefined;
    }
  }
}

/** runc's `events --stats` data (libcontainer types.Stats) → the agent's CgroupStats. */
export function cgroupStats(d: Record<string, any>): grpc.ICgroupStats {
  const mem = (m: Record<string, any> | undefined) => ({ usage: m?.usage ?? 0, maxUsage: m?.max ?? 0, failcnt: m?.failcnt ?? 0, limit: m?.limit ?? 0 });
  const blk = (l: Record<string, any>[] | undefined) => (l ?? []).map((e) => ({ major: e.major ?? 0, minor: e.minor ?? 0, op: e.op ?? '', value: e.value ?? 0 }));
  const hugetlb: Record<string, grpc.IHugetlbStats> = {};
  for (const [k, v] of Object.entries((d.hugetlb ?? {}) as Record<string, Record<string, number>>)) hugetlb[k] = { usage: v.usage ?? 0, maxUsage: v.max ?? 0, failcnt: v.failcnt ?? 0 };
  return {
    cpuStats: {
      cpuUsage: { totalUsage: d.cpu?.usage?.total ?? 0, percpuUsage: d.cpu?.usage?.percpu ?? [], usageInKernelmode: d.cpu?.usage?.kernel ?? 0, usageInUsermode: d.cpu?.usage?.user ?? 0 },
      throttlingData: { periods: d.cpu?.throttling?.periods ?? 0, throttledPeriods: d.cpu?.throttling?.throttled_periods ?? 0, throttledTime: d.cpu?.throttling?.throttled_time ?? 0 },
    },
    memoryStats: {
      cache: d.memory?.cache ?? 0, usage: mem(d.memory?.usage), swapUsage: mem(d.memory?.swap), kernelUsage: mem(d.memory?.kernel),
      useHierarchy: !!d.memory?.use_hierarchy, stats: d.memory?.raw ?? {},
    },
    pidsStats: { current: d.pids?.current ?? 0, limit: d.pids?.limit ?? 0 },
    blkioStats: {
      ioServiceBytesRecursive: blk(d.blkio?.ioServiceBytesRecursive), ioServicedRecursive: blk(d.blkio?.ioServicedRecursive),
      ioQueuedRecursive: blk(d.blkio?.ioQueueRecursive), ioServiceTimeRecursive: blk(d.blkio?.ioServiceTimeRecursive),
      ioWaitTimeRecursive: blk(d.blkio?.ioWaitTimeRecursive), ioMergedRecursive: blk(d.blkio?.ioMergedRecursive),
      ioTimeRecursive: blk(d.blkio?.ioTimeRecursive), sectorsRecursive: blk(d.blkio?.sectorsRecursive),
    },
    hugetlbStats: hugetlb,
  };
}
