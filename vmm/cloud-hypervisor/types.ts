// Wire types for the part of cloud-hypervisor's OpenAPI (vmm/src/api/openapi/cloud-hypervisor.yaml)
// kata-ts sends or reads. Field names are the wire names; optional fields are omitted when unset.

export interface PayloadConfig { kernel?: string; cmdline?: string; initramfs?: string; firmware?: string }
export interface CpuTopology { threads_per_core?: number; cores_per_die?: number; dies_per_package?: number; packages?: number }
export interface CpusConfig { boot_vcpus: number; max_vcpus: number; topology?: CpuTopology; nested?: boolean }
export interface MemoryConfig {
  size: number; hotplug_size?: number; hotplug_method?: 'Acpi' | 'VirtioMem'; shared?: boolean; hugepages?: boolean;
}
export interface TokenBucket { size: number; one_time_burst?: number; refill_time: number }
export interface RateLimiterConfig { bandwidth?: TokenBucket; ops?: TokenBucket }
export interface DiskConfig {
  path: string; readonly?: boolean; image_type?: 'FixedVhd' | 'Qcow2' | 'Raw' | 'Vhdx' | 'Unknown';
  rate_limiter_config?: RateLimiterConfig; id?: string;
}
export interface RngConfig { src: string; iommu?: boolean }
export interface BalloonConfig { size: number; deflate_on_oom?: boolean; free_page_reporting?: boolean }
export interface FsConfig { tag: string; socket: string; num_queues: number; queue_size: number; pci_segment?: number }
export type ConsoleMode = 'Off' | 'Pty' | 'Tty' | 'File' | 'Socket' | 'Null';
export interface ConsoleConfig { mode: ConsoleMode; file?: string; socket?: string; iommu?: boolean }
export interface VsockConfig { cid: number; socket: string; iommu?: boolean }
export interface PlatformConfig { num_pci_segments?: number; iommu_segments?: number[] }

export interface VmConfig {
  payload: PayloadConfig;
  cpus?: CpusConfig;
  memory?: MemoryConfig;
  disks?: DiskConfig[];
  rng?: RngConfig;
  balloon?: BalloonConfig;
  fs?: FsConfig[];
  serial?: ConsoleConfig;
  console?: ConsoleConfig;
  vsock?: VsockConfig;
  iommu?: boolean;
  platform?: PlatformConfig;
}

export type VmState = 'Created' | 'Running' | 'Shutdown' | 'Paused' | 'BreakPoint';
export interface VmInfo { config: VmConfig; state: VmState; memory_actual_size?: number; device_tree?: Record<string, unknown> }
export interface VmmPingResponse { version: string; build_version?: string; pid?: number; features?: string[] }
export interface VmResize { desired_vcpus?: number; desired_ram?: number; desired_balloon?: number }
export type VmCounters = Record<string, Record<string, number>>;
