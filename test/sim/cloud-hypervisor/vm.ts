// The VMM control loop: one VM, its state machine (vmm/src/lib.rs + vm.rs semantics), the checks
// the real VMM makes on the config and at boot, and the guest it runs once booted.
import { accessSync, constants } from 'node:fs';
import type { Socket } from 'node:net';
import { ApiError, vmmError } from './errors.js';
import type { EventMonitor } from './events.js';
import type { Faults } from './faults.js';
import { Guest, type GuestLog } from './guest.js';
import { vhostUserHandshake } from './vhost-user.js';
import { findSharedDir } from './virtiofsd-probe.js';
import { HybridVsock } from './vsock.js';
import type { GuestFs } from '../guest.js';

/** API-visible states. `NotCreated` has no VmInfo (vm.info fails); after vm.shutdown the VM is `Created` again. */
export type VmState = 'NotCreated' | 'Created' | 'Running' | 'Paused';
export type VmAction = 'create' | 'boot' | 'pause' | 'resume' | 'shutdown' | 'reboot' | 'power-button'
  | 'delete' | 'info' | 'counters' | 'resize' | 'add-device' | 'remove-device';

/** The one transition table: state after a successful action, per state it is allowed in. */
export const transitions: Record<VmAction, Partial<Record<VmState, VmState>>> = {
  create: { NotCreated: 'Created' },
  // Booting a paused VM resumes it (Vm::boot).
  boot: { Created: 'Running', Paused: 'Running' },
  pause: { Running: 'Paused' },
  resume: { Paused: 'Running' },
  shutdown: { Running: 'Created', Paused: 'Created' },
  reboot: { Running: 'Running', Paused: 'Running' },
  // The guest powers itself off in reaction (the VMM then exits).
  'power-button': { Running: 'Running', Paused: 'Paused' },
  delete: { NotCreated: 'NotCreated', Created: 'NotCreated', Running: 'NotCreated', Paused: 'NotCreated' },
  info: { Created: 'Created', Running: 'Running', Paused: 'Paused' },
  counters: { Running: 'Running', Paused: 'Paused' },
  // Before boot a resize edits the pending config.
  resize: { Created: 'Created', Running: 'Running', Paused: 'Paused' },
  'add-device': { Created: 'Created', Running: 'Running', Paused: 'Paused' },
  'remove-device': { Running: 'Running', Paused: 'Paused' },
};

const actionError: Record<VmAction, string> = {
  create: 'The VM could not be created', boot: 'The VM could not boot', pause: 'The VM could not be paused',
  resume: 'The VM could not resume', shutdown: 'The VM could not shutdown', reboot: 'The VM could not reboot',
  'power-button': 'The VM could not be powered off', delete: 'The VM could not be deleted',
  info: 'The VM info is not available', counters: 'The VM counters could not be read',
  resize: 'The VM could not be resized', 'add-device': 'The device could not be added to the VM',
  'remove-device': 'The device could not be removed from the VM',
};

/** Why `action` is refused in `state`: the VmError the real VMM reports. */
export function refusal(action: VmAction, state: VmState): string {
  if (state === 'NotCreated') return action === 'boot' ? 'VM config is missing' : 'VM is not created';
  if (action === 'create') return 'VM is already created';
  if (state === 'Created') return 'VM is not running';
  const target: Partial<Record<VmAction, VmState>> = { pause: 'Paused', resume: 'Running', boot: 'Running' };
  return `Invalid transition from ${state} to ${target[action] ?? state}`;
}

export interface VmmLog extends GuestLog { error(msg: string, f?: object): void }

type Json = Record<string, any>;

const MiB = 1024 * 1024;

/** Defaults the real VMM fills in (vm_config.rs), so vm.info returns a complete config. */
export function withDefaults(c: Json): Json {
  const cfg = structuredClone(c);
  cfg.cpus = { boot_vcpus: 1, max_vcpus: cfg.cpus?.boot_vcpus ?? 1, kvm_hyperv: false, max_phys_bits: 46, ...cfg.cpus };
  cfg.memory = { size: 512 * MiB, mergeable: false, hotplug_method: 'Acpi', shared: false, hugepages: false, prefault: false, thp: true, ...cfg.memory };
  cfg.rng = { src: '/dev/urandom', iommu: false, ...cfg.rng };
  cfg.serial = { mode: 'Null', iommu: false, ...cfg.serial };
  cfg.console = { mode: 'Tty', iommu: false, ...cfg.console };
  cfg.iommu ??= false;
  cfg.watchdog ??= false;
  cfg.pvpanic ??= false;
  for (const d of cfg.disks ?? []) Object.assign(d, { readonly: false, direct: false, iommu: false, num_queues: 1, queue_size: 128, vhost_user: false, ...d });
  for (const n of cfg.net ?? []) Object.assign(n, { ip: '192.168.249.1', mask: '255.255.255.0', iommu: false, num_queues: 2, queue_size: 256, ...n });
  return cfg;
}

/** config.validate(): the semantic rules checked at vm.create. Returns the error text or undefined. */
export function validateConfig(cfg: Json): string | undefined {
  const p = cfg.payload ?? {};
  if (!p.kernel && !p.firmware && !p.igvm) return 'Config validation failed: No kernel specified';
  if (cfg.cpus.max_vcpus < cfg.cpus.boot_vcpus) return 'Config validation failed: Max is less than boot';
  if ((cfg.fs?.length ?? 0) > 0 && !cfg.memory.shared && !cfg.memory.hugepages) {
    return 'Config validation failed: Using vhost-user requires using shared memory or huge pages';
  }
  if (cfg.serial.mode === 'Tty' && cfg.console.mode === 'Tty') return 'Config validation failed: Console mode tty specified for both serial and virtio-console';
  if (cfg.serial.mode === 'File' && !cfg.serial.file) return 'Config validation failed: Path missing when using file console mode';
  if (cfg.console.mode === 'File' && !cfg.console.file) return 'Config validation failed: Path missing when using file console mode';
  for (const fs of cfg.fs ?? []) if (!fs.tag || fs.tag.length > 36) return `Config validation failed: Invalid virtio-fs tag '${fs.tag}'`;
  return undefined;
}

function mustOpen(path: string, what: string): void {
  try { accessSync(path, constants.R_OK); } catch (e) {
    throw new Error(`Cannot open ${what} ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory (os error 2)' : (e as Error).message}`);
  }
}

export interface VmmOptions { faults: Faults; events: EventMonitor; log: VmmLog; agentPath: string; exit: (status: number) => void }

export class Vmm {
  state: VmState = 'NotCreated';
  private config?: Json;
  private guest?: Guest;
  private vsock?: HybridVsock;
  private fsConns: Socket[] = [];
  private deviceCounter = 0;
  private powerOffPending = false;
  private crashTimer?: NodeJS.Timeout;
  private ending = false;

  constructor(private readonly o: VmmOptions) {}

  private check(action: VmAction): VmState {
    const next = transitions[action][this.state];
    if (!next) throw vmmError(actionError[action], refusal(action, this.state));
    return next;
  }

  private fail(action: VmAction, e: unknown): never {
    if (e instanceof ApiError) throw e;
    throw vmmError(actionError[action], (e as Error).message);
  }

  create(cfg: Json): void {
    this.check('create');
    const full = withDefaults(cfg);
    const bad = validateConfig(full);
    if (bad) throw vmmError(actionError.create, bad);
    this.config = full;
    this.state = 'Created';
  }

  info(): Json {
    this.check('info');
    const c = this.config!;
    const hot = this.state === 'Created' ? 0 : (c.memory.hotplugged_size ?? 0);
    return { config: c, state: this.state, memory_actual_size: c.memory.size + hot, device_tree: {} };
  }

  counters(): Json {
    this.check('counters');
    const out: Json = {};
    for (const d of this.config!.disks ?? []) out[d.id] = { read_bytes: 0, write_bytes: 0, read_ops: 0, write_ops: 0 };
    for (const n of this.config!.net ?? []) out[n.id] = { rx_bytes: 0, rx_frames: 0, tx_bytes: 0, tx_frames: 0 };
    return out;
  }

  async boot(): Promise<void> {
    this.check('boot');
    if (this.state === 'Paused') return this.resume();
    this.o.events.emit('vm', 'booting');
    try {
      await this.startVm();
    } catch (e) {
      await this.stopGuest();
      this.fail('boot', e);
    }
    this.state = 'Running';
    this.o.events.emit('vm', 'booted');
    if (this.o.faults.crashAfterBootMs !== undefined) {
      this.crashTimer = setTimeout(() => {
        this.o.log.error('fault injection: VMM crashing (SIGKILL)');
        process.kill(process.pid, 'SIGKILL');
      }, this.o.faults.crashAfterBootMs);
    }
  }

  private assignIds(): void {
    const c = this.config!;
    for (const [key, prefix] of [['disks', '_disk'], ['net', '_net'], ['fs', '_fs'], ['pmem', '_pmem'], ['devices', '_vfio']] as const) {
      for (const d of c[key] ?? []) d.id ??= `${prefix}${this.deviceCounter++}`;
    }
    if (c.vsock) c.vsock.id ??= `_vsock${this.deviceCounter++}`;
  }

  private async startVm(): Promise<void> {
    const c = this.config!;
    this.assignIds();
    if (c.payload.kernel) mustOpen(c.payload.kernel, 'kernel file');
    if (c.payload.firmware) mustOpen(c.payload.firmware, 'firmware file');
    if (c.payload.initramfs) mustOpen(c.payload.initramfs, 'initramfs file');
    for (const d of c.disks ?? []) if (!d.vhost_user) mustOpen(d.path, 'disk image');
    for (const p of c.pmem ?? []) mustOpen(p.file, 'pmem file');
    const fs: GuestFs[] = [];
    for (const f of c.fs ?? []) {
      const conn = await vhostUserHandshake(f.socket).catch((e) => { throw new Error(`Failed to connect to vhost-user backend for ${f.id}: ${(e as Error).message}`); });
      this.fsConns.push(conn.socket);
      // A backend that goes away mid-run is a device failure the VM survives; we only log it.
      conn.socket.on('close', () => { if (this.fsConns.includes(conn.socket)) this.o.log.warn('virtio-fs backend disconnected', { id: f.id, socket: f.socket }); });
      const served = findSharedDir(f.socket);
      fs.push({ tag: f.tag, hostDir: served.sharedDir });
    }
    this.guestFs = fs;
    await this.startGuest();
  }
  private guestFs: GuestFs[] = [];

  /** Creates the guest (agent not started yet) and its vsock device. */
  private prepareGuest(): void {
    const c = this.config!;
    const f = this.o.faults;
    const consoleCfg = c.serial.mode === 'Tty' || c.console.mode === 'Tty' ? { mode: 'tty' as const }
      : c.serial.mode === 'File' ? { mode: 'file' as const, file: c.serial.file }
        : c.console.mode === 'File' ? { mode: 'file' as const, file: c.console.file } : { mode: 'off' as const };
    const guest = new Guest({
      agentPath: this.o.agentPath, cmdline: c.payload.cmdline ?? '', fs: this.guestFs, vcpus: c.cpus.boot_vcpus,
      memoryBytes: c.memory.size, console: f.guestConsole ? { mode: 'file', file: f.guestConsole } : consoleCfg,
      bootDelayMs: f.bootDelayMs, neverListen: f.guestNeverListens, log: this.o.log,
    });
    this.guest = guest;
    if (c.vsock) this.vsock = new HybridVsock(c.vsock.socket, guest.vsockDir, this.o.log);
    guest.onExit((code, signal) => this.guestEnded(code, signal));
  }

  /** Binds the vsock socket (it must not exist) and starts the agent. */
  private async startGuest(): Promise<void> {
    this.prepareGuest();
    await this.vsock?.listen();
    this.guest!.start();
  }

  private guestEnded(code: number | null, signal: string | null): void {
    // A guest that ends by itself is a guest power-off: the VMM shuts down and exits.
    this.o.log.info('guest powered off', { code, signal });
    void this.exitVmm(0);
  }

  private teardownVm(): void {
    clearTimeout(this.crashTimer);
    this.vsock?.close();
    this.vsock = undefined;
    const conns = this.fsConns;
    this.fsConns = [];
    for (const s of conns) s.destroy();
  }

  private async stopGuest(): Promise<void> {
    const g = this.guest;
    this.guest = undefined;
    await g?.stop();
    this.teardownVm();
  }

  pause(): void {
    this.state = this.check('pause');
    this.o.events.emit('vm', 'pausing');
    this.guest?.pause();
    this.o.events.emit('vm', 'paused');
  }

  resume(): void {
    this.state = this.check('resume');
    this.o.events.emit('vm', 'resuming');
    this.guest?.resume();
    this.o.events.emit('vm', 'resumed');
    if (this.powerOffPending) setImmediate(() => this.powerOff());
  }

  async shutdown(): Promise<void> {
    const next = this.check('shutdown');
    await this.stopGuest();
    this.state = next;
    this.o.events.emit('vm', 'shutdown');
  }

  async reboot(): Promise<void> {
    this.check('reboot');
    this.o.events.emit('vm', 'rebooting');
    // The guest restarts from scratch: the agent comes back with no containers.
    const g = this.guest;
    this.guest = undefined;
    await g?.stop();
    this.vsock?.close();
    this.vsock = undefined;
    try {
      await this.startGuest();
    } catch (e) {
      await this.stopGuest();
      this.state = 'Created';
      this.fail('reboot', e);
    }
    this.state = 'Running';
    this.o.events.emit('vm', 'rebooted');
  }

  powerButton(): void {
    this.check('power-button');
    this.powerOffPending = true;
    if (this.state === 'Running') setImmediate(() => this.powerOff());
  }

  private powerOff(): void {
    this.o.log.info('guest: ACPI power button, powering off');
    void this.exitVmm(0);
  }

  async delete(): Promise<void> {
    this.check('delete');
    if (this.state === 'Running' || this.state === 'Paused') await this.shutdown();
    if (this.config) this.o.events.emit('vm', 'deleted');
    this.config = undefined;
    this.state = 'NotCreated';
  }

  resize(r: { desired_vcpus?: number; desired_ram?: number; desired_balloon?: number }): void {
    this.check('resize');
    const c = this.config!;
    if (r.desired_vcpus !== undefined && r.desired_vcpus > c.cpus.max_vcpus) {
      throw vmmError(actionError.resize, `Error resizing VM: Requested vCPUs (${r.desired_vcpus}) exceed the maximum (${c.cpus.max_vcpus})`);
    }
    if (this.state === 'Created') {
      if (r.desired_vcpus !== undefined) c.cpus.boot_vcpus = r.desired_vcpus;
      if (r.desired_ram !== undefined) c.memory.size = r.desired_ram;
      return;
    }
    this.o.events.emit('vm', 'resizing');
    if (r.desired_ram !== undefined) {
      const hot = r.desired_ram - c.memory.size;
      if (hot < 0) throw vmmError(actionError.resize, 'Error resizing VM: Cannot remove memory (hot-unplug is not supported)');
      if (hot > (c.memory.hotplug_size ?? 0)) throw vmmError(actionError.resize, 'Error resizing VM: Memory hotplug not allowed or exceeds hotplug_size');
      c.memory.hotplugged_size = hot;
    }
    if (r.desired_vcpus !== undefined) c.cpus.boot_vcpus = r.desired_vcpus;
    this.o.events.emit('vm', 'resized');
  }

  /** vm.add-*: cold (204, no body) before boot, hotplug (200 PciDeviceInfo) after. */
  addDevice(kind: 'disks' | 'net' | 'fs' | 'pmem' | 'devices' | 'vsock', dev: Json): Json | undefined {
    this.check('add-device');
    const c = this.config!;
    if (kind === 'vsock' && c.vsock) throw vmmError(actionError['add-device'], 'Too many vsock devices');
    if (kind === 'fs' && !c.memory.shared && !c.memory.hugepages) {
      throw vmmError(actionError['add-device'], 'Using vhost-user requires using shared memory or huge pages');
    }
    const prefix = { disks: '_disk', net: '_net', fs: '_fs', pmem: '_pmem', devices: '_vfio', vsock: '_vsock' }[kind];
    if (this.state !== 'Created') {
      if (kind === 'disks') mustOpen(dev.path, 'disk image');
      dev.id ??= `${prefix}${this.deviceCounter++}`;
    }
    if (kind === 'vsock') c.vsock = dev;
    else (c[kind] ??= []).push(dev);
    if (this.state === 'Created') return undefined;
    const slot = 5 + this.deviceCounter;
    return { id: dev.id, bdf: `${(dev.pci_segment ?? 0).toString(16).padStart(4, '0')}:00:${slot.toString(16).padStart(2, '0')}.0` };
  }

  removeDevice(id: string): void {
    this.check('remove-device');
    const c = this.config!;
    for (const key of ['disks', 'net', 'fs', 'pmem', 'devices']) {
      const list: Json[] | undefined = c[key];
      const i = list?.findIndex((d) => d.id === id) ?? -1;
      if (i >= 0) { list!.splice(i, 1); return; }
    }
    throw vmmError(actionError['remove-device'], `Unknown device id ${id}`);
  }

  /** Shuts the VM down (if any) and ends the process: vmm.shutdown, SIGTERM, guest power-off. */
  async exitVmm(status: number): Promise<void> {
    if (this.ending) return;
    this.ending = true;
    const booted = !!this.guest;
    await this.stopGuest().catch((e) => this.o.log.error('stopping the guest failed', { err: (e as Error).message }));
    if (booted) this.o.events.emit('vm', 'shutdown');
    this.o.events.emit('vmm', 'shutdown');
    this.o.exit(status);
  }
}
