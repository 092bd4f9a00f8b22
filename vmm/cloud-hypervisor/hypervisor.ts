// The Hypervisor implementation for cloud-hypervisor, following Kata's clh.go: virtiofsd first,
// then the VMM with only --api-socket, then vm.create / vm.info / vm.boot / vm.info over the API.
// One state machine; every failure path and every unexpected death runs the same teardown.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';
import type { KataConfig, Logger, Paths } from '../../config/index.js';
import type { AgentAddress, Hypervisor, VmExit } from '../hypervisor.js';
import { VmmError } from '../errors.js';
import { ManagedProcess, describeExit, isRunning, withFields } from '../process.js';
import { startVirtiofsd } from '../virtiofsd.js';
import { API_TIMEOUT_MS, ClhClient } from './client.js';
import { buildVmConfig, type HostFacts, type VmResources } from './vm-config.js';

/** Kata's deadlines (clh.go). */
export interface ClhTimeouts {
  /** each API call */
  apiMs: number;
  /** waiting for the API socket after launch */
  apiReadyMs: number;
  /** vm.create → vm.boot → Running together */
  bootMs: number;
  /** vmm.ping / vmm.shutdown during stop, and the wait for the process to exit */
  stopMs: number;
  /** hotplug, resize and counters calls */
  hotplugMs: number;
}
export const kataTimeouts: ClhTimeouts = { apiMs: API_TIMEOUT_MS, apiReadyMs: 10_000, bootMs: 10_000, stopMs: 3000, hotplugMs: 5000 };

/** Kata's limit for a Unix socket path (sun_path minus the terminator). */
const MAX_SOCKET_PATH = 107;
/** The agent's hybrid-vsock port. */
const AGENT_PORT = 1024;
/** How long a VMM that is shutting down may take to exit after its devices disconnected. */
const VMM_EXIT_GRACE_MS = 500;

export interface CloudHypervisorOptions {
  sandboxId: string;
  config: KataConfig;
  paths: Paths;
  log: Logger;
  resources?: VmResources;
  /** The shared dir virtiofsd exports (SharedFs.sharedDir); defaults to `<sharedSandboxDir>/shared`. */
  sharedDir?: string;
  /** Environment of the VMM and virtiofsd (default: ours). */
  env?: NodeJS.ProcessEnv;
  host?: HostFacts;
  timeouts?: Partial<ClhTimeouts>;
}

type State = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

export interface PidsFile {
  'cloud-hypervisor'?: { pid: number; match: string };
  virtiofsd?: { pid: number; match: string; children?: number[] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class CloudHypervisor implements Hypervisor {
  readonly vmDir: string;
  readonly apiSocket: string;
  readonly vsockSocket: string;
  readonly virtiofsdSocket: string;
  readonly #o: CloudHypervisorOptions;
  readonly #t: ClhTimeouts;
  readonly #log: Logger;
  #state: State = 'new';
  #vmm?: ManagedProcess;
  #virtiofsd?: ManagedProcess;
  #client?: ClhClient;
  #teardown?: Promise<void>;
  #settle!: (e: VmExit) => void;
  #exit?: VmExit;
  /** Set when something we started died on its own. */
  #died?: VmExit;
  readonly #exited: Promise<VmExit>;

  constructor(o: CloudHypervisorOptions) {
    this.#o = o;
    this.#t = { ...kataTimeouts, ...o.timeouts };
    this.#log = withFields(o.log, { subsystem: 'vmm', sandbox: o.sandboxId });
    this.vmDir = o.paths.vmDir(o.sandboxId);
    this.apiSocket = join(this.vmDir, 'clh-api.sock');
    this.vsockSocket = join(this.vmDir, 'clh.sock');
    this.virtiofsdSocket = join(this.vmDir, 'virtiofsd.sock');
    this.#exited = new Promise((resolve) => {
      this.#settle = (e) => {
        if (this.#exit) return;
        this.#exit = e;
        resolve(e);
      };
    });
  }

  get #sharedDir(): string {
    return this.#o.sharedDir ?? join(this.#o.paths.sharedSandboxDir(this.#o.sandboxId), 'shared');
  }

  /** What start() reports once something it started has died. */
  #diedError(cause?: unknown): VmmError {
    const d = this.#died!;
    return new VmmError(d.reason === 'virtiofsd-exited' ? 'VIRTIOFSD' : 'VMM_LAUNCH', `VM start failed: ${d.detail}`, { cause });
  }

  /** Throws once something we started has died (start() then tears down). */
  #checkAlive(): void {
    if (this.#died) throw this.#diedError();
  }

  get state(): State {
    return this.#state;
  }

  async start(signal?: AbortSignal): Promise<void> {
    if (this.#state !== 'new') throw new VmmError('VMM_STATE', `cannot start the VM of sandbox ${this.#o.sandboxId}: it is ${this.#state}`);
    this.#state = 'starting';
    try {
      await this.#start(signal);
      this.#state = 'running';
      this.#log.info('VM running', { sandbox: this.#o.sandboxId, pids: this.pids() });
    } catch (err) {
      const died = this.#died;
      await this.#runTeardown(died ? died : { reason: 'stopped', detail: `start failed: ${(err as Error).message}` });
      // An API error after a death is a symptom; say what died.
      if (died && !(err instanceof VmmError && err.code === 'VMM_LAUNCH')) throw this.#diedError(err);
      throw err;
    }
  }

  async #start(signal?: AbortSignal): Promise<void> {
    const { config: cfg } = this.#o;
    const log = this.#log;
    const h = cfg.hypervisor;
    for (const s of [this.apiSocket, this.vsockSocket, this.virtiofsdSocket]) {
      if (s.length > MAX_SOCKET_PATH) throw new VmmError('VMM_LAUNCH', `socket path ${s} is longer than ${MAX_SOCKET_PATH} bytes`);
    }
    mkdirSync(this.vmDir, { recursive: true, mode: 0o750 });
    // Stale sockets of an earlier run of this sandbox id would make the VMM fail to bind.
    for (const s of [this.apiSocket, this.vsockSocket, this.virtiofsdSocket]) rmSync(s, { force: true });
    if (signal?.aborted) throw new VmmError('VMM_ABORTED', 'VM start aborted', { cause: signal.reason });

    if (h.shared_fs === 'virtio-fs') {
      if (!existsSync(this.#sharedDir)) throw new VmmError('VIRTIOFSD', `shared dir ${this.#sharedDir} does not exist (SharedFs.setup() must run first)`);
      this.#virtiofsd = await startVirtiofsd({
        path: h.virtio_fs_daemon, socketPath: this.virtiofsdSocket, sharedDir: this.#sharedDir, cache: h.virtio_fs_cache,
        extraArgs: h.virtio_fs_extra_args, log, env: this.#o.env,
      });
      this.#watch(this.#virtiofsd, 'virtiofsd-exited');
      this.#writePids();
    }

    const args = ['--api-socket', this.apiSocket];
    if (h.enable_debug && h.hypervisor_loglevel > 0) args.push('-' + 'v'.repeat(h.hypervisor_loglevel));
    if (h.disable_seccomp) args.push('--seccomp', 'false');
    const env = { ...(this.#o.env ?? process.env) };
    if (h.enable_debug) env.RUST_BACKTRACE = 'full';
    this.#vmm = await ManagedProcess.start({ name: 'cloud-hypervisor', path: h.path, args, env, log, errorCode: 'VMM_LAUNCH' });
    this.#watch(this.#vmm, 'vmm-exited');
    this.#writePids();
    this.#checkAlive();
    this.#client = new ClhClient(this.apiSocket);

    await this.#waitForApi(signal);
    this.#checkAlive();

    const deadline = Date.now() + Math.max(this.#t.apiMs, this.#t.bootMs);
    // Deviation: Kata gives each of these calls 1 s inside the shared 10 s deadline; we give each
    // call what is left of the deadline, so a VMM slowed by a loaded host still boots in time.
    const call = () => {
      const left = deadline - Date.now();
      if (left <= 0) throw new VmmError('VMM_TIMEOUT', `VM did not boot within ${this.#t.bootMs} ms`);
      return { timeoutMs: left, signal };
    };
    const host = this.#o.host ?? { cpus: availableParallelism(), memoryBytes: totalmem() };
    const vmConfig = buildVmConfig(cfg, { virtiofsd: this.virtiofsdSocket, vsock: this.vsockSocket }, host, this.#o.resources);
    log.debug('vm.create', { cmdline: vmConfig.payload.cmdline, vcpus: vmConfig.cpus?.boot_vcpus, memory: vmConfig.memory?.size });
    await this.#client.createVm(vmConfig, call());
    await this.#expectState('Created', call());
    await this.#client.bootVm(call());
    await this.#expectState('Running', call());
    this.#checkAlive();
  }

  async #expectState(want: 'Created' | 'Running', o: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    const info = await this.#client!.info(o);
    if (info.state !== want) throw new VmmError('VMM_STATE', `cloud-hypervisor reports the VM ${info.state}, expected ${want}`);
  }

  /** vmm.ping every 10 ms until it answers, while the process lives (Kata: up to 10 s). */
  async #waitForApi(signal?: AbortSignal): Promise<void> {
    const vmm = this.#vmm!;
    const until = Date.now() + this.#t.apiReadyMs;
    let last: unknown;
    while (Date.now() < until) {
      if (this.#died && vmm.alive) this.#checkAlive();
      if (!vmm.alive) throw new VmmError('VMM_LAUNCH', `${describeExit('cloud-hypervisor', vmm.pid, vmm.exit!)} before its API socket ${this.apiSocket} answered`, { cause: last });
      if (signal?.aborted) throw new VmmError('VMM_ABORTED', 'VM start aborted', { cause: signal.reason });
      if (existsSync(this.apiSocket)) {
        try {
          const pong = await this.#client!.ping({ timeoutMs: this.#t.apiMs, signal });
          this.#log.info('cloud-hypervisor API ready', { version: pong.version, pid: vmm.pid });
          return;
        } catch (err) {
          last = err;
        }
      }
      await sleep(10);
    }
    throw new VmmError('VMM_LAUNCH', existsSync(this.apiSocket)
      ? `cloud-hypervisor API on ${this.apiSocket} did not answer vmm.ping within ${this.#t.apiReadyMs} ms`
      : `cloud-hypervisor (pid ${vmm.pid}) did not create its API socket ${this.apiSocket} within ${this.#t.apiReadyMs} ms`, { cause: last });
  }

  /** True once stop() or a teardown has begun (read afresh: it changes across awaits). */
  #ending(): boolean {
    return this.#state === 'stopping' || this.#state === 'stopped';
  }

  /** Supervision: an unexpected death settles wait() and tears everything down. */
  #watch(p: ManagedProcess, reason: 'vmm-exited' | 'virtiofsd-exited'): void {
    void p.exited.then(async (e) => {
      if (this.#ending()) return;
      // virtiofsd exits by itself when its frontend disconnects, and a VMM that is shutting
      // down (guest power-off) disconnects its devices before it exits. So when virtiofsd goes
      // first, give the VMM a moment: if it exits too, its own watcher reports the real cause.
      const vmm = this.#vmm;
      if (reason === 'virtiofsd-exited' && vmm) {
        if (isRunning(vmm.pid)) await Promise.race([vmm.exited, sleep(VMM_EXIT_GRACE_MS)]);
        if (!isRunning(vmm.pid) || this.#died || this.#ending()) return;
      }
      // cloud-hypervisor exits with status 0 after a guest power-off; anything else is a death.
      const poweredOff = reason === 'vmm-exited' && e.code === 0 && this.#state === 'running';
      const detail = describeExit(p.name, p.pid, e) + (poweredOff ? ' (the guest powered off)' : '');
      this.#log[poweredOff ? 'info' : 'error'](`${detail}; stopping the VM`, { reason });
      this.#died ??= { reason: poweredOff ? 'guest-shutdown' : reason, detail };
      // During start(), start's own catch runs the teardown after the pending step fails;
      // wait() settles when the teardown is done, so "gone" means nothing is left.
      if (this.#state === 'running') void this.#runTeardown(this.#died);
      else void this.#client?.close();
    });
  }

  #writePids(): void {
    const pids: PidsFile = {};
    if (this.#vmm) pids['cloud-hypervisor'] = { pid: this.#vmm.pid, match: this.apiSocket };
    if (this.#virtiofsd) pids.virtiofsd = { pid: this.#virtiofsd.pid, match: `--shared-dir=${this.#sharedDir}`, children: this.#virtiofsd.children() };
    writeFileSync(join(this.vmDir, 'pids.json'), JSON.stringify(pids) + '\n');
  }

  async stop(): Promise<void> {
    await this.#runTeardown({ reason: 'stopped', detail: 'stop() was called' });
  }

  #runTeardown(exit: VmExit): Promise<void> {
    this.#teardown ??= this.#doTeardown(exit);
    return this.#teardown;
  }

  async #doTeardown(exit: VmExit): Promise<void> {
    this.#state = 'stopping';
    const vmm = this.#vmm;
    const errors: unknown[] = [];
    if (vmm?.alive && this.#client) {
      // Graceful first, as Kata's terminate(): ping, then vmm.shutdown, then wait for the exit.
      try {
        await this.#client.ping({ timeoutMs: this.#t.stopMs });
        await this.#client.shutdownVmm({ timeoutMs: this.#t.stopMs });
      } catch (err) {
        this.#log.warn('cloud-hypervisor did not shut down through its API', { error: (err as Error).message });
      }
      if (!(await vmm.waitExit(this.#t.stopMs))) this.#log.warn('cloud-hypervisor did not exit; killing it', { pid: vmm.pid });
    }
    await this.#client?.close();
    if (vmm) await vmm.kill();
    if (this.#virtiofsd) await this.#virtiofsd.kill();
    for (const p of [this.vsockSocket, this.apiSocket, this.virtiofsdSocket]) {
      try {
        rmSync(p, { force: true });
      } catch (err) {
        errors.push(err);
      }
    }
    try {
      rmSync(this.vmDir, { recursive: true, force: true });
    } catch (err) {
      errors.push(err);
      this.#log.error('cannot remove the VM dir', { dir: this.vmDir, error: (err as Error).message });
    }
    this.#state = 'stopped';
    this.#settle(this.#died ?? exit);
    this.#log.info('VM stopped', { sandbox: this.#o.sandboxId, reason: this.#exit!.reason, detail: this.#exit!.detail });
  }

  wait(): Promise<VmExit> {
    return this.#exited;
  }

  agentAddress(): AgentAddress {
    return { socketPath: this.vsockSocket, port: AGENT_PORT };
  }

  pids(): number[] {
    return [this.#vmm, this.#virtiofsd].filter((p): p is ManagedProcess => p !== undefined && p.alive).map((p) => p.pid);
  }

  async resize(vcpus: number, memoryBytes: number): Promise<void> {
    this.#requireRunning('resize');
    await this.#client!.resize({ desired_vcpus: vcpus, desired_ram: memoryBytes }, { timeoutMs: this.#t.hotplugMs });
  }

  async counters(): Promise<Record<string, Record<string, number>>> {
    this.#requireRunning('counters');
    return this.#client!.counters({ timeoutMs: this.#t.hotplugMs });
  }

  #requireRunning(op: string): void {
    if (this.#state !== 'running') throw new VmmError(this.#state === 'new' || this.#state === 'starting' ? 'VMM_STATE' : 'VMM_STOPPED', `cannot ${op} the VM of sandbox ${this.#o.sandboxId}: it is ${this.#state}`);
  }
}
