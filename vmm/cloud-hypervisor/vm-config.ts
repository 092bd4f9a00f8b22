// config + sandbox → the VmConfig Kata's Go runtime (clh.go CreateVM) sends with vm.create.
// Pure: host facts come in as arguments so the table tests pin every branch.
import { mergeKernelParams, type KataConfig } from '../../config/index.js';
import type { DiskConfig, RateLimiterConfig, VmConfig } from './types.js';

const MiB = 1024 * 1024;

export interface VmSockets {
  /** virtiofsd's vhost-user socket (`<vmDir>/virtiofsd.sock`). */
  virtiofsd: string;
  /** the hybrid vsock socket (`<vmDir>/clh.sock`). */
  vsock: string;
}

export interface HostFacts {
  cpus: number;
  memoryBytes: number;
}

/** Totals for this VM (the shim adds pod sizing under static_sandbox_resource_mgmt). */
export interface VmResources {
  vcpus?: number;
  memoryMiB?: number;
}

/** The guest kernel command line, in Kata's order; later same-key params win. */
export function kernelCmdline(cfg: KataConfig): string {
  const h = cfg.hypervisor;
  const a = cfg.agent;
  const p: string[] = [];
  if (h.image) {
    // virtio-blk root disk (clh never uses nvdimm).
    const flags = h.rootfs_type === 'ext4' ? 'data=ordered,errors=remount-ro ro' : 'ro';
    p.push('root=/dev/vda1', `rootflags=${flags}`, `rootfstype=${h.rootfs_type}`);
  }
  p.push('panic=1', 'no_timer_check', 'noreplace-smp');
  if (h.enable_iommu) p.push('iommu=pt');
  if (h.enable_debug) p.push('console=ttyS0,115200n8', 'systemd.log_target=console');
  else p.push('quiet');
  if (h.image) {
    // systemd is init only when booting the image.
    p.push('systemd.unit=kata-containers.target', 'systemd.mask=systemd-networkd.service', 'systemd.mask=systemd-networkd.socket');
  }
  if (a.enable_debug) p.push('agent.log=debug');
  if (a.enable_tracing) p.push('agent.trace=true');
  if (a.debug_console_enabled) p.push('agent.debug_console', 'agent.debug_console_vport=1026');
  if (a.container_pipe_size > 0) p.push(`agent.container_pipe_size=${a.container_pipe_size}`);
  if (a.cdh_api_timeout > 0) p.push(`agent.cdh_api_timeout=${a.cdh_api_timeout}`);
  if (a.launch_process_timeout > 0) p.push(`agent.launch_process_timeout=${a.launch_process_timeout}`);
  if (a.visible_cdi_devices) p.push('agent.visible_cdi_devices=true');
  return mergeKernelParams(p.join(' '), h.kernel_params);
}

/** Boot and max vCPUs with Kata's clamping: <0 or > host → host; max 0 or >= host → host. */
export function vcpuCounts(cfg: KataConfig, host: HostFacts, res: VmResources = {}): { boot: number; max: number } {
  const h = cfg.hypervisor;
  let want = res.vcpus ?? h.default_vcpus;
  if (want < 0 || want > host.cpus) want = host.cpus;
  const boot = Math.max(1, Math.ceil(want));
  let max = h.default_maxvcpus === 0 || h.default_maxvcpus >= host.cpus ? host.cpus : h.default_maxvcpus;
  // Static sizing: the VM is never hot-plugged, so it gets exactly what it boots with.
  if (cfg.runtime.static_sandbox_resource_mgmt) max = boot;
  return { boot, max: Math.max(max, boot) };
}

function diskRateLimiter(cfg: KataConfig): RateLimiterConfig | undefined {
  const h = cfg.hypervisor;
  const out: RateLimiterConfig = {};
  // Kata: bandwidth in bits/s → bytes per 1000 ms bucket; ops per 1000 ms.
  if (h.disk_rate_limiter_bw_max_rate > 0) {
    out.bandwidth = { size: Math.floor(h.disk_rate_limiter_bw_max_rate / 8), refill_time: 1000 };
    if (h.disk_rate_limiter_bw_one_time_burst > 0) out.bandwidth.one_time_burst = Math.floor(h.disk_rate_limiter_bw_one_time_burst / 8);
  }
  if (h.disk_rate_limiter_ops_max_rate > 0) {
    out.ops = { size: h.disk_rate_limiter_ops_max_rate, refill_time: 1000 };
    if (h.disk_rate_limiter_ops_one_time_burst > 0) out.ops.one_time_burst = h.disk_rate_limiter_ops_one_time_burst;
  }
  return out.bandwidth || out.ops ? out : undefined;
}

/** The vm.create body. */
export function buildVmConfig(cfg: KataConfig, sockets: VmSockets, host: HostFacts, res: VmResources = {}): VmConfig {
  const h = cfg.hypervisor;
  const { boot, max } = vcpuCounts(cfg, host, res);
  const memoryMiB = res.memoryMiB ?? h.default_memory;
  const virtioFs = h.shared_fs === 'virtio-fs';

  const vm: VmConfig = {
    payload: { kernel: h.kernel, cmdline: kernelCmdline(cfg) },
    cpus: {
      boot_vcpus: boot,
      max_vcpus: max,
      topology: { threads_per_core: 1, cores_per_die: max, dies_per_package: 1, packages: 1 },
    },
    memory: {
      size: memoryMiB * MiB,
      // vhost-user devices (virtiofsd) need the guest RAM shared with the backend.
      shared: virtioFs || h.enable_hugepages,
      hugepages: h.enable_hugepages,
      hotplug_method: 'Acpi',
    },
    rng: { src: h.entropy_source, iommu: h.enable_iommu },
    vsock: { cid: 3, socket: sockets.vsock },
    serial: { mode: h.enable_debug ? 'Tty' : 'Off' },
    console: { mode: 'Off' },
    platform: { num_pci_segments: 2 },
  };
  if (!cfg.runtime.static_sandbox_resource_mgmt) {
    // 0 or more than the host has → the host's RAM (Kata's rule).
    const hostMiB = Math.floor(host.memoryBytes / MiB);
    const maxMiB = h.default_maxmemory === 0 || h.default_maxmemory > hostMiB ? hostMiB : h.default_maxmemory;
    vm.memory!.hotplug_size = maxMiB * MiB;
  }
  if (h.initrd) vm.payload.initramfs = h.initrd;
  if (h.image) {
    const disk: DiskConfig = { path: h.image, readonly: true, image_type: 'Raw' };
    const rl = diskRateLimiter(cfg);
    if (rl) disk.rate_limiter_config = rl;
    vm.disks = [disk];
  }
  if (virtioFs) {
    vm.fs = [{ tag: 'kataShared', socket: sockets.virtiofsd, num_queues: 1, queue_size: h.virtio_fs_queue_size, pci_segment: 1 }];
  }
  if (h.enable_iommu) vm.platform!.iommu_segments = [0];
  if (h.reclaim_guest_freed_memory) vm.balloon = { size: 0, free_page_reporting: true };
  return vm;
}
