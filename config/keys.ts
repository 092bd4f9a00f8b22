// The keys of Kata's clh configuration we know, with their types and the value Kata uses when a
// key is absent (kata-config.md, Go runtime 3.32 / 4.x; runtime-rs extras marked). `use: false`
// marks keys we read but do not act on yet: setting them to anything but the absent value is
// logged once. Keys not listed here are ignored quietly, as Kata's TOML decoder does.

export type Kind = 'string' | 'bool' | 'uint' | 'int' | 'float' | 'strings';
export interface KeySpec<V> {
  kind: Kind;
  absent: V;
  use: boolean;
}

const str = (absent = '', use = true): KeySpec<string> => ({ kind: 'string', absent, use });
const bool = (absent = false, use = true): KeySpec<boolean> => ({ kind: 'bool', absent, use });
const uint = (absent = 0, use = true): KeySpec<number> => ({ kind: 'uint', absent, use });
const int = (absent = 0, use = true): KeySpec<number> => ({ kind: 'int', absent, use });
const float = (absent = 0, use = true): KeySpec<number> => ({ kind: 'float', absent, use });
const strs = (absent: string[] = [], use = true): KeySpec<string[]> => ({ kind: 'strings', absent, use });

export const hypervisorKeys = {
  path: str(),
  kernel: str('/usr/share/kata-containers/vmlinuz.container'),
  image: str(),
  initrd: str(),
  rootfs_type: str('ext4'),
  firmware: str('', false),
  machine_type: str('q35', false),
  kernel_params: str(''),
  kernel_verity_params: str('', false),
  default_vcpus: float(1),
  default_maxvcpus: uint(0),
  default_memory: uint(2048),
  memory_slots: uint(10, false),
  default_maxmemory: uint(0),
  memory_offset: uint(0, false),
  disable_block_device_use: bool(false),
  shared_fs: str('virtio-fs'),
  virtio_fs_daemon: str(),
  valid_virtio_fs_daemon_paths: strs(),
  virtio_fs_cache_size: uint(0),
  virtio_fs_queue_size: uint(0),
  virtio_fs_extra_args: strs(),
  virtio_fs_cache: str(''),
  block_device_driver: str('virtio-scsi'),
  block_device_cache_set: bool(false, false),
  block_device_cache_direct: bool(false, false),
  enable_iommu: bool(false),
  enable_hugepages: bool(false),
  reclaim_guest_freed_memory: bool(false),
  disable_seccomp: bool(false),
  enable_debug: bool(false),
  hypervisor_loglevel: uint(1),
  disable_image_nvdimm: bool(true),
  rootless: bool(false, false),
  disable_selinux: bool(false),
  disable_guest_selinux: bool(true),
  guest_hook_path: str(''),
  hot_plug_vfio: str('no-port', false),
  cold_plug_vfio: str('no-port', false),
  entropy_source: str('/dev/urandom'),
  valid_entropy_sources: strs(),
  enable_annotations: strs(),
  valid_hypervisor_paths: strs(),
  net_rate_limiter_bw_max_rate: int(0, false),
  net_rate_limiter_bw_one_time_burst: int(0, false),
  net_rate_limiter_ops_max_rate: int(0, false),
  net_rate_limiter_ops_one_time_burst: int(0, false),
  disk_rate_limiter_bw_max_rate: int(0),
  disk_rate_limiter_bw_one_time_burst: int(0),
  disk_rate_limiter_ops_max_rate: int(0),
  disk_rate_limiter_ops_one_time_burst: int(0),
  confidential_guest: bool(false, false),
  // runtime-rs (`[hypervisor.cloud-hypervisor]`) only:
  vm_rootfs_driver: str('virtio-blk-pci'),
  default_bridges: uint(0, false),
  virtio_fs_inode_file_handles: str(''),
  enable_mem_prealloc: bool(false, false),
  disable_nesting_checks: bool(false, false),
  enable_guest_swap: bool(false, false),
};

export const agentKeys = {
  enable_debug: bool(false),
  enable_tracing: bool(false, false),
  debug_console_enabled: bool(false),
  dial_timeout: uint(0),
  cdh_api_timeout: uint(0),
  launch_process_timeout: uint(0),
  kernel_modules: strs(),
  visible_cdi_devices: bool(false),
  container_pipe_size: uint(0),
  // runtime-rs: per-attempt and total dial times in ms, request deadline, CreateContainer deadline.
  dial_timeout_ms: uint(10),
  reconnect_timeout_ms: uint(0),
  request_timeout_ms: uint(0, false),
  health_check_request_timeout_ms: uint(0, false),
  create_container_timeout: uint(0),
};

export const runtimeKeys = {
  enable_debug: bool(false),
  internetworking_model: str('tcfilter'),
  disable_guest_seccomp: bool(false),
  guest_selinux_label: str('', false),
  enable_tracing: bool(false, false),
  jaeger_endpoint: str('', false),
  jaeger_user: str('', false),
  jaeger_password: str('', false),
  disable_new_netns: bool(false),
  sandbox_cgroup_only: bool(false, false),
  static_sandbox_resource_mgmt: bool(false),
  sandbox_bind_mounts: strs(),
  vfio_mode: str('guest-kernel', false),
  disable_guest_empty_dir: bool(false),
  emptydir_mode: str('shared-fs'),
  experimental: strs([], false),
  enable_pprof: bool(false, false),
  create_container_timeout: uint(0),
  dan_conf: str('/run/kata-containers/dans', false),
  kubelet_root_dir: str('/var/lib/kubelet'),
  pod_resource_api_sock: str('', false),
  experimental_force_guest_pull: bool(false, false),
  enable_vcpus_pinning: bool(false, false),
  // runtime-rs only:
  name: str(''),
  hypervisor_name: str(''),
  agent_name: str(''),
  keep_abnormal: bool(false, false),
};

type Decoded<T> = { -readonly [K in keyof T]: T[K] extends KeySpec<infer V> ? V : never };
export type ClhConfig = Decoded<typeof hypervisorKeys>;
export type AgentConfig = Decoded<typeof agentKeys>;
export type RuntimeConfig = Decoded<typeof runtimeKeys>;
