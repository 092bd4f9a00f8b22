import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiPath } from '../../test/env.js';
import { loadConfig, type KataConfig } from '../../config/index.js';
import { renderKataClhConfig } from '../../test/kata-config.js';
import { buildVmConfig, kernelCmdline, vcpuCounts } from './vm-config.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const host = { cpus: 8, memoryBytes: 16 * GiB };
const sockets = { virtiofsd: '/run/vc/vm/sb/virtiofsd.sock', vsock: '/run/vc/vm/sb/clh.sock' };

let root: string;
let base: KataConfig;
let validateVmConfig: (body: unknown) => string | undefined;

/** Every object schema closed, so a misspelt key fails validation instead of passing silently. */
function closeObjects(s: unknown): void {
  if (Array.isArray(s)) return s.forEach(closeObjects);
  if (typeof s !== 'object' || s === null) return;
  const o = s as Record<string, unknown>;
  if (o.properties && o.additionalProperties === undefined) o.additionalProperties = false;
  Object.values(o).forEach(closeObjects);
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'kata-ts-vmconfig-'));
  const f = (n: string, exec = false) => { const p = join(root, n); writeFileSync(p, ''); if (exec) chmodSync(p, 0o755); return p; };
  const text = renderKataClhConfig({
    CLHPATH: f('cloud-hypervisor', true), KERNELPATH_CLH: f('vmlinux'), IMAGEPATH: f('kata.img'), DEFVIRTIOFSDAEMON: f('virtiofsd', true),
  });
  f('initrd.img');
  writeFileSync(join(root, 'configuration.toml'), text);
  base = await loadConfig(join(root, 'configuration.toml'));

  const doc = parseYaml(readFileSync(openApiPath, 'utf8'));
  closeObjects(doc.components.schemas);
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
  ajv.addSchema({ $id: 'ch', components: doc.components });
  const v = ajv.compile({ $ref: 'ch#/components/schemas/VmConfig' });
  validateVmConfig = (body) => (v(body) ? undefined : ajv.errorsText(v.errors));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

type Patch = { hypervisor?: Partial<KataConfig['hypervisor']>; agent?: Partial<KataConfig['agent']>; runtime?: Partial<KataConfig['runtime']> };
function cfgWith(p: Patch): KataConfig {
  const c = structuredClone(base);
  Object.assign(c.hypervisor, p.hypervisor);
  Object.assign(c.agent, p.agent);
  Object.assign(c.runtime, p.runtime);
  return c;
}

const shippedCmdline =
  'root=/dev/vda1 rootflags=data=ordered,errors=remount-ro ro rootfstype=ext4 panic=1 no_timer_check noreplace-smp quiet ' +
  'systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service systemd.mask=systemd-networkd.socket ' +
  'agent.cdh_api_timeout=50 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1';

describe('buildVmConfig', () => {
  it("builds Kata's VmConfig for the shipped clh config", () => {
    const vm = buildVmConfig(base, sockets, host);
    expect(validateVmConfig(vm)).toBeUndefined();
    expect(vm).toEqual({
      payload: { kernel: base.hypervisor.kernel, cmdline: shippedCmdline },
      cpus: { boot_vcpus: 1, max_vcpus: 8, topology: { threads_per_core: 1, cores_per_die: 8, dies_per_package: 1, packages: 1 } },
      memory: { size: 2048 * MiB, shared: true, hugepages: false, hotplug_method: 'Acpi', hotplug_size: 16 * GiB },
      disks: [{ path: base.hypervisor.image, readonly: true, image_type: 'Raw' }],
      rng: { src: '/dev/urandom', iommu: false },
      fs: [{ tag: 'kataShared', socket: sockets.virtiofsd, num_queues: 1, queue_size: 1024, pci_segment: 1 }],
      vsock: { cid: 3, socket: sockets.vsock },
      serial: { mode: 'Off' },
      console: { mode: 'Off' },
      platform: { num_pci_segments: 2 },
    });
  });

  // Each row: a config change, then what must hold of the body. Every body is checked against the OpenAPI schema.
  it.each<[string, Patch, Parameters<typeof buildVmConfig>[3], (vm: ReturnType<typeof buildVmConfig>) => void]>([
    ['initrd instead of image', { hypervisor: { image: '', initrd: '/x/initrd.img' } }, {}, (vm) => {
      expect(vm.payload.initramfs).toBe('/x/initrd.img');
      expect(vm.disks).toBeUndefined();
      expect(vm.payload.cmdline).toBe('panic=1 no_timer_check noreplace-smp quiet agent.cdh_api_timeout=50 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1');
    }],
    ['debug: serial Tty, console kernel params', { hypervisor: { enable_debug: true } }, {}, (vm) => {
      expect(vm.serial).toEqual({ mode: 'Tty' });
      expect(vm.console).toEqual({ mode: 'Off' });
      expect(vm.payload.cmdline).toContain('noreplace-smp console=ttyS0,115200n8 systemd.log_target=console systemd.unit=');
      expect(vm.payload.cmdline).not.toContain('quiet');
    }],
    ['agent params in order', { agent: { enable_debug: true, enable_tracing: true, debug_console_enabled: true, container_pipe_size: 2097152, cdh_api_timeout: 50 } }, {}, (vm) => {
      expect(vm.payload.cmdline).toContain('systemd.mask=systemd-networkd.socket agent.log=debug agent.trace=true agent.debug_console agent.debug_console_vport=1026 agent.container_pipe_size=2097152 agent.cdh_api_timeout=50 cgroup_no_v1=all');
    }],
    ['user kernel_params override same keys', { hypervisor: { kernel_params: 'panic=0 quiet foo=1' } }, {}, (vm) => {
      expect(vm.payload.cmdline).toMatch(/^root=\/dev\/vda1 .* panic=0 no_timer_check noreplace-smp quiet systemd.unit=.* foo=1$/);
    }],
    ['xfs root', { hypervisor: { rootfs_type: 'xfs' } }, {}, (vm) => {
      expect(vm.payload.cmdline).toMatch(/^root=\/dev\/vda1 rootflags=ro rootfstype=xfs panic=1/);
    }],
    ['iommu', { hypervisor: { enable_iommu: true } }, {}, (vm) => {
      expect(vm.platform).toEqual({ num_pci_segments: 2, iommu_segments: [0] });
      expect(vm.rng).toEqual({ src: '/dev/urandom', iommu: true });
      expect(vm.payload.cmdline).toContain('noreplace-smp iommu=pt quiet');
    }],
    ['shared_fs none: no fs, memory not shared', { hypervisor: { shared_fs: 'none' } }, {}, (vm) => {
      expect(vm.fs).toBeUndefined();
      expect(vm.memory!.shared).toBe(false);
    }],
    ['hugepages share memory', { hypervisor: { shared_fs: 'none', enable_hugepages: true } }, {}, (vm) => {
      expect(vm.memory).toMatchObject({ shared: true, hugepages: true });
    }],
    ['balloon with free page reporting', { hypervisor: { reclaim_guest_freed_memory: true } }, {}, (vm) => {
      expect(vm.balloon).toEqual({ size: 0, free_page_reporting: true });
    }],
    ['vcpus: fractional rounds up, max as configured', { hypervisor: { default_vcpus: 1.5, default_maxvcpus: 4 } }, {}, (vm) => {
      expect(vm.cpus).toMatchObject({ boot_vcpus: 2, max_vcpus: 4, topology: { cores_per_die: 4 } });
    }],
    ['vcpus: negative or too many → host CPUs', { hypervisor: { default_vcpus: -1, default_maxvcpus: 64 } }, {}, (vm) => {
      expect(vm.cpus).toMatchObject({ boot_vcpus: 8, max_vcpus: 8 });
    }],
    ['maxmemory and custom entropy, queue size', { hypervisor: { default_maxmemory: 4096, entropy_source: '/dev/random', virtio_fs_queue_size: 512 } }, {}, (vm) => {
      expect(vm.memory!.hotplug_size).toBe(4096 * MiB);
      expect(vm.rng!.src).toBe('/dev/random');
      expect(vm.fs![0].queue_size).toBe(512);
    }],
    ['maxmemory above host RAM → host RAM', { hypervisor: { default_maxmemory: 64 * 1024 } }, {}, (vm) => {
      expect(vm.memory!.hotplug_size).toBe(16 * GiB);
    }],
    ['static sizing: resources are totals, no hotplug', { runtime: { static_sandbox_resource_mgmt: true } }, { vcpus: 3, memoryMiB: 2560 }, (vm) => {
      expect(vm.cpus).toMatchObject({ boot_vcpus: 3, max_vcpus: 3 });
      expect(vm.memory!.size).toBe(2560 * MiB);
      expect(vm.memory!.hotplug_size).toBeUndefined();
    }],
    ['disk rate limiter', { hypervisor: { disk_rate_limiter_bw_max_rate: 8000, disk_rate_limiter_ops_max_rate: 100, disk_rate_limiter_ops_one_time_burst: 10 } }, {}, (vm) => {
      expect(vm.disks![0].rate_limiter_config).toEqual({ bandwidth: { size: 1000, refill_time: 1000 }, ops: { size: 100, one_time_burst: 10, refill_time: 1000 } });
    }],
  ])('%s', (_name, patch, res, check) => {
    const vm = buildVmConfig(cfgWith(patch), sockets, host, res);
    expect(validateVmConfig(vm)).toBeUndefined();
    check(vm);
  });

  it('the schema check catches a misspelt key', () => {
    const vm = buildVmConfig(base, sockets, host) as unknown as Record<string, unknown>;
    expect(validateVmConfig({ ...vm, vsocks: {} })).toMatch(/additional properties/);
    expect(validateVmConfig({ ...vm, fs: [{ tag: 'x', socket: '/s' }] })).toMatch(/num_queues/);
  });

  it('kernelCmdline and vcpuCounts are exported for logs', () => {
    expect(kernelCmdline(base)).toBe(shippedCmdline);
    expect(vcpuCounts(base, { cpus: 2, memoryBytes: GiB })).toEqual({ boot: 1, max: 2 });
  });
});
