// One sandbox = one VM: config, shared fs, cloud-hypervisor, the agent connection, in the order
// Kata's Go runtime uses (kata-agent.md §2). Every failure path tears down what was started.
import { readFileSync } from 'node:fs';
import { applyAnnotations, findConfigFile, loadConfig, type KataConfig, type Paths } from '../config/index.js';
import { createCloudHypervisor, createSharedFs, type Hypervisor, type SharedFs } from '../vmm/index.js';
import { dialAgent, sharedFsStorage, type AgentClient } from '../agent-client/index.js';
import { VmDiedError, VmNotReadyError, describe } from './errors.js';
import { setDebug, span, type Logger } from './log.js';

export type SandboxState = 'new' | 'starting' | 'ready' | 'failed' | 'stopping' | 'stopped';

/** Builds the pieces of a sandbox; the defaults are the real implementations. */
export interface SandboxParts {
  loadConfig(o: { configPath?: string; annotations: Record<string, string>; env: NodeJS.ProcessEnv; log: Logger }): Promise<KataConfig>;
  createSharedFs: typeof createSharedFs;
  createHypervisor: typeof createCloudHypervisor;
  dialAgent: typeof dialAgent;
}

export const realParts: SandboxParts = {
  async loadConfig(o) {
    // Kata's order: annotation, runtime options ConfigPath, KATA_CONF_FILE, default dirs.
    const file = findConfigFile({ configPath: o.annotations['io.katacontainers.config_path'] || o.configPath, env: o.env });
    return applyAnnotations(await loadConfig(file, o.log), o.annotations);
  },
  createSharedFs,
  createHypervisor: createCloudHypervisor,
  dialAgent,
};

/** Hostname for CreateSandbox: the spec's, at most 64 bytes. */
export function sandboxHostname(spec: { hostname?: string }): string {
  const b = Buffer.from(spec.hostname ?? '');
  return b.subarray(0, 64).toString();
}

/** DNS lines from the host file the spec mounts at /etc/resolv.conf (Kata does this). */
export function sandboxDns(spec: { mounts?: { destination?: string; source?: string }[] }): string[] {
  const m = spec.mounts?.find((x) => x.destination === '/etc/resolv.conf');
  if (!m?.source) return [];
  try {
    return readFileSync(m.source, 'utf8').split('\n').filter((l) => l.length > 0);
  } catch {
    return [];
  }
}

/** `[agent.kata] kernel_modules` entries: "name param=value ...". */
export function kernelModules(list: string[] | undefined): { name: string; parameters: string[] }[] {
  return (list ?? []).map((s) => s.trim().split(/\s+/)).filter((p) => p[0]).map(([name, ...parameters]) => ({ name, parameters }));
}

/**
 * Where the guest's console ends up: the VMM's serial port is its stdout, which the hypervisor
 * forwards line by line into the shim log (our stderr = the bundle's `log` fifo, which containerd
 * copies into its own log). Only with enable_debug does the guest write to it.
 */
export function consoleHint(sandboxId: string, bundle: string | undefined, debug: boolean): string {
  const where = `the shim log (${bundle ? `${bundle}/log, ` : ''}copied into containerd's log): lines with sandbox=${sandboxId} process=cloud-hypervisor`;
  return debug ? where : `${where}; the guest console is off: set [hypervisor.clh] enable_debug = true to see it`;
}

const round = (ms: number) => Math.round(ms * 10) / 10;

/**
 * A logger for the hypervisor that passes every line on and notes when two of them pass: the VMM
 * process started (virtiofsd is up before it) and its API answered.
 */
export function phaseMarks(base: Logger): { log: Logger; vmmSpawned?: number; apiReady?: number } {
  const marks: { log: Logger; vmmSpawned?: number; apiReady?: number } = { log: base };
  const note = (msg: string, f?: object) => {
    if (msg === 'started' && (f as { process?: string } | undefined)?.process === 'cloud-hypervisor') marks.vmmSpawned ??= performance.now();
    else if (msg === 'cloud-hypervisor API ready') marks.apiReady ??= performance.now();
  };
  const wrap = (l: Logger): Logger => ({
    debug: (m, f) => { note(m, f); l.debug(m, f); },
    info: (m, f) => { note(m, f); l.info(m, f); },
    warn: (m, f) => l.warn(m, f),
    error: (m, f) => l.error(m, f),
    child: (f) => wrap(l.child(f)),
  });
  marks.log = wrap(base);
  return marks;
}

export class Sandbox {
  private st: SandboxState = 'new';
  config?: KataConfig;
  hv?: Hypervisor;
  sharedFs?: SharedFs;
  agent?: AgentClient;
  private readonly abort = new AbortController();
  private readonly diedCbs: ((why: string) => void)[] = [];
  private readonly oomCbs: ((containerId: string) => void)[] = [];
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private failure?: Error;
  private stopping?: Promise<void>;

  constructor(
    readonly id: string,
    private readonly o: { paths: Paths; log: Logger; env: NodeJS.ProcessEnv; parts?: SandboxParts },
  ) {}

  get state(): SandboxState { return this.st; }

  /** Host pid reported for every process (Kata reports the hypervisor's). */
  get pid(): number {
    return this.hv?.pids()[0] ?? process.pid;
  }

  /** Aborts a start() in progress (the caller gave up); start() then cleans up and rejects. */
  cancel(reason: Error): void {
    if (this.st === 'starting') this.abort.abort(reason);
  }

  /** Called once if the VM or the agent connection dies on its own. */
  onDied(cb: (why: string) => void): void { this.diedCbs.push(cb); }

  /** Called for each container the guest reports out of memory. */
  onOOM(cb: (containerId: string) => void): void { this.oomCbs.push(cb); }

  /** Resolves when the VM is ready; rejects if it failed or after boundMs. */
  whenReady(boundMs: number): Promise<void> {
    if (this.st === 'ready') return Promise.resolve();
    if (this.st !== 'new' && this.st !== 'starting') {
      return Promise.reject(this.failure ?? new VmNotReadyError(`sandbox ${this.id} is ${this.st}`));
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new VmNotReadyError(`sandbox ${this.id} not ready within ${boundMs} ms`)), boundMs);
      this.readyWaiters.push({ resolve: () => { clearTimeout(t); resolve(); }, reject: (e) => { clearTimeout(t); reject(e); } });
    });
  }

  private settleReady(err?: Error): void {
    const w = this.readyWaiters;
    this.readyWaiters = [];
    for (const x of w) (err ? x.reject(err) : x.resolve());
  }

  /** Loads the config, starts the VM and sets up the guest sandbox. Cleans up on failure. */
  async start(o: { spec: any; configPath?: string; bundle?: string }): Promise<void> {
    if (this.st !== 'new') throw new VmNotReadyError(`sandbox ${this.id} is already ${this.st}`);
    this.st = 'starting';
    const parts = this.o.parts ?? realParts;
    const log = this.o.log;
    const signal = this.abort.signal;
    const annotations: Record<string, string> = o.spec?.annotations ?? {};
    const t0 = Date.now();
    try {
      const cfg = await parts.loadConfig({ configPath: o.configPath, annotations, env: this.o.env, log });
      this.config = cfg;
      if (cfg.runtime.enable_debug) setDebug(log, true);
      log.info('starting sandbox', { sandbox: this.id, config: cfg.file });
      let t = performance.now();
      const fs = parts.createSharedFs({ sandboxId: this.id, paths: this.o.paths, log });
      this.sharedFs = fs;
      await fs.setup();
      const fsReady = performance.now();
      // Hypervisor.start() runs virtiofsd, the VMM, its API wait and create+boot in one call; its
      // log lines mark the phases in between (vmm/ has no hook for them).
      const marks = phaseMarks(log);
      const hv = parts.createHypervisor({ sandboxId: this.id, config: cfg, paths: this.o.paths, log: marks.log });
      this.hv = hv;
      await hv.start(signal);
      const booted = performance.now();
      log.debug('span', { span: 'sandbox-setup', duration_ms: round((marks.vmmSpawned ?? fsReady) - t), sandbox: this.id });
      if (marks.apiReady !== undefined) log.debug('span', { span: 'vmm-launch', duration_ms: round(marks.apiReady - (marks.vmmSpawned ?? fsReady)), sandbox: this.id });
      log.debug('span', { span: 'vm-create-boot', duration_ms: round(booted - (marks.apiReady ?? fsReady)), sandbox: this.id });
      void hv.wait().then((exit) => {
        if (exit.reason !== 'stopped') this.died(`the VM is gone: ${exit.detail}`);
      });
      const addr = hv.agentAddress();
      const dialSec = cfg.agent.dial_timeout || 30;
      t = performance.now();
      const agent = await parts.dialAgent({
        socketPath: addr.socketPath, port: addr.port, timeoutMs: dialSec * 1000, signal, log,
        consoleHint: consoleHint(this.id, o.bundle, Boolean(cfg.hypervisor.enable_debug)),
      });
      span(log, 'agent-dial', t, { sandbox: this.id });
      this.agent = agent;
      agent.onClose((err) => this.died(`the agent connection closed: ${describe(err)}`));
      await agent.check();
      const cache = String(cfg.hypervisor.virtio_fs_cache ?? '');
      const dax = cache !== 'never' && cache !== 'metadata' && Number((cfg.hypervisor as any).virtio_fs_cache_size ?? 0) !== 0;
      await agent.createSandbox({
        hostname: sandboxHostname(o.spec ?? {}),
        dns: sandboxDns(o.spec ?? {}),
        storages: [sharedFsStorage({ dax })],
        sandboxPidns: false,
        sandboxId: this.id,
        kernelModules: kernelModules(cfg.agent.kernel_modules as string[] | undefined),
      });
      await agent.getGuestDetails();
      if (signal.aborted) throw signal.reason;
      if (this.st !== 'starting') throw this.failure ?? new VmDiedError(`sandbox ${this.id} stopped while starting`);
      this.st = 'ready';
      log.info('sandbox ready', { sandbox: this.id, ms: Date.now() - t0, vmm_pid: hv.pids()[0] });
      this.settleReady();
      void this.oomLoop(agent);
    } catch (err) {
      const e = err instanceof Error && (err instanceof VmDiedError || err instanceof VmNotReadyError || err === signal.reason)
        ? err : new VmNotReadyError(`cannot start sandbox ${this.id}`, { cause: err });
      this.failure = e;
      this.st = 'failed';
      log.error('sandbox start failed', { sandbox: this.id, error: describe(e) });
      this.settleReady(e);
      await this.teardown(false);
      this.st = 'failed';
      throw e;
    }
  }

  private async oomLoop(agent: AgentClient): Promise<void> {
    let failures = 0;
    while (this.st === 'ready') {
      try {
        const cid = await agent.getOOMEvent();
        failures = 0;
        if (cid) for (const cb of this.oomCbs) cb(cid);
      } catch (err) {
        if (this.st !== 'ready' || (err as { code?: string }).code === 'AGENT_CLOSED') return;
        // Older agents answer UNIMPLEMENTED; don't spin.
        if ((err as { grpcCode?: number }).grpcCode === 12 || ++failures > 10) {
          this.o.log.warn('OOM events unavailable', { error: describe(err) });
          return;
        }
        await new Promise((r) => setTimeout(r, 200 * failures));
      }
    }
  }

  private died(why: string): void {
    if (this.st === 'stopping' || this.st === 'stopped') return;
    const wasReady = this.st === 'ready';
    this.failure = new VmDiedError(`sandbox ${this.id}: ${why}`);
    if (this.st === 'starting') {
      // start() notices and cleans up.
      this.abort.abort(this.failure);
      return;
    }
    this.st = 'failed';
    this.o.log.error('sandbox died', { sandbox: this.id, why });
    if (wasReady) for (const cb of this.diedCbs) cb(why);
    void this.teardown(false);
  }

  /** Stops the VM: DestroySandbox in the guest, then the VMM, virtiofsd and shared dirs. Idempotent. */
  stop(): Promise<void> {
    return this.teardown(true);
  }

  private teardown(graceful: boolean): Promise<void> {
    if (this.stopping) return this.stopping;
    const prev = this.st;
    this.st = 'stopping';
    this.stopping = (async () => {
      const log = this.o.log;
      if (graceful && prev === 'ready' && this.agent) {
        try {
          // Bounded; the timer is cleared so that nothing outlives the teardown.
          let t: NodeJS.Timeout | undefined;
          await Promise.race([this.agent.destroySandbox(), new Promise((r) => { t = setTimeout(r, 5000); })]).finally(() => clearTimeout(t));
        } catch (err) {
          log.warn('DestroySandbox failed', { error: describe(err) });
        }
      }
      this.agent?.close();
      try { await this.hv?.stop(); } catch (err) { log.warn('stopping the VM failed', { error: describe(err) }); }
      try { await this.sharedFs?.teardown(); } catch (err) { log.warn('shared fs teardown failed', { error: describe(err) }); }
      this.st = 'stopped';
      log.info('sandbox stopped', { sandbox: this.id });
    })();
    return this.stopping;
  }
}
