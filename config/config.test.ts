import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, applyAnnotations, findConfigFile, globMatch, loadConfig, mergeKernelParams, pathsUnder } from './index.js';
import { renderKataClhConfig } from '../test/kata-config.js';

let root: string;
let assets: Record<string, string>;

/** Kata's rendered clh config with the asset paths pointing at dummy files under root. */
function rendered(extra: Record<string, string> = {}): string {
  return renderKataClhConfig({
    CLHPATH: assets.clh,
    KERNELPATH_CLH: assets.kernel,
    IMAGEPATH: assets.image,
    DEFVIRTIOFSDAEMON: assets.virtiofsd,
    CLHVALIDHYPERVISORPATHS: `["${root}/bin/*"]`,
    DEFVALIDVIRTIOFSDAEMONPATHS: `["${assets.virtiofsd}"]`,
    ...extra,
  });
}

function write(name: string, text: string): string {
  const dir = mkdtempSync(join(root, 'cfg-'));
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

async function loadError(text: string): Promise<ConfigError> {
  const f = write('configuration.toml', text);
  const err = await loadConfig(f).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'kata-ts-config-'));
  mkdirSync(join(root, 'bin'));
  assets = {
    clh: join(root, 'bin/cloud-hypervisor'),
    virtiofsd: join(root, 'bin/virtiofsd'),
    kernel: join(root, 'vmlinux.container'),
    image: join(root, 'kata-containers.img'),
    initrd: join(root, 'kata-containers-initrd.img'),
  };
  for (const f of Object.values(assets)) writeFileSync(f, '');
  chmodSync(assets.clh, 0o755);
  chmodSync(assets.virtiofsd, 0o755);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("Kata's rendered configuration-clh.toml", () => {
  it('loads with the shipped values', async () => {
    const cfg = await loadConfig(write('configuration-clh.toml', rendered()));
    expect(cfg.hypervisorTable).toBe('clh');
    const h = cfg.hypervisor;
    expect(h).toMatchObject({
      path: assets.clh, kernel: assets.kernel, image: assets.image, initrd: '', rootfs_type: 'ext4',
      kernel_params: 'cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1',
      default_vcpus: 1, default_maxvcpus: 0, default_memory: 2048, memory_slots: 10, default_maxmemory: 0,
      disable_block_device_use: true, shared_fs: 'virtio-fs', virtio_fs_daemon: assets.virtiofsd,
      virtio_fs_cache_size: 0, virtio_fs_queue_size: 1024,
      virtio_fs_extra_args: ['--thread-pool-size=1', '--announce-submounts'], virtio_fs_cache: 'auto',
      block_device_driver: 'virtio-blk', enable_iommu: false, enable_hugepages: false, disable_seccomp: false,
      enable_debug: false, hypervisor_loglevel: 1, disable_image_nvdimm: true, entropy_source: '/dev/urandom',
      enable_annotations: ['enable_iommu', 'kernel_params', 'kernel_verity_params'],
    });
    expect(cfg.agent).toMatchObject({ enable_debug: false, debug_console_enabled: false, dial_timeout: 45, cdh_api_timeout: 50, kernel_modules: [] });
    expect(cfg.runtime).toMatchObject({
      enable_debug: false, internetworking_model: 'tcfilter', disable_guest_seccomp: true,
      static_sandbox_resource_mgmt: false, sandbox_bind_mounts: [], create_container_timeout: 60,
      emptydir_mode: 'shared-fs', kubelet_root_dir: '/var/lib/kubelet',
    });
  });

  it('applies absent-key defaults (Go runtime)', async () => {
    const f = write('c.toml', `[hypervisor.clh]\npath="${assets.clh}"\nkernel="${assets.kernel}"\ninitrd="${assets.initrd}"\nvirtio_fs_daemon="${assets.virtiofsd}"\n`);
    const cfg = await loadConfig(f);
    expect(cfg.hypervisor).toMatchObject({ default_memory: 2048, default_vcpus: 1, virtio_fs_cache: '', virtio_fs_queue_size: 1024, shared_fs: 'virtio-fs', block_device_driver: 'virtio-scsi' });
    expect(cfg.agent.dial_timeout).toBe(30);
    expect(cfg.runtime.disable_guest_seccomp).toBe(false);
    expect(cfg.runtime.create_container_timeout).toBe(60);
  });

  it('reads the runtime-rs file ([hypervisor.cloud-hypervisor], agent *_ms keys)', async () => {
    const f = write('configuration-clh-runtime-rs.toml', [
      '[hypervisor.cloud-hypervisor]', `path = "${assets.clh}"`, `kernel = "${assets.kernel}"`, `image = "${assets.image}"`,
      'rootfs_type="ext4"', 'vm_rootfs_driver = "virtio-blk-pci"', 'default_vcpus = 1', 'default_memory = 2048',
      'shared_fs = "virtio-fs"', `virtio_fs_daemon = "${assets.virtiofsd}"`, 'virtio_fs_cache = "never"',
      'virtio_fs_extra_args = ["--thread-pool-size=1", "--announce-submounts"]', 'default_bridges = 1',
      '[agent.kata]', 'container_pipe_size=0', 'reconnect_timeout_ms = 5500', 'create_container_timeout = 90',
      '[agent.kata.mem_agent]', 'mem_agent_enable = false',
      '[runtime]', 'name="virt_container"', 'hypervisor_name="cloud-hypervisor"', 'agent_name="kata"',
      'disable_guest_seccomp=true', 'sandbox_bind_mounts=["/etc/hosts:ro"]',
    ].join('\n'));
    const cfg = await loadConfig(f);
    expect(cfg.hypervisorTable).toBe('cloud-hypervisor');
    expect(cfg.hypervisor.virtio_fs_cache).toBe('never');
    expect(cfg.agent.dial_timeout).toBe(6);
    expect(cfg.runtime.create_container_timeout).toBe(90);
    expect(cfg.runtime.hypervisor_name).toBe('cloud-hypervisor');
  });

  it('applies config.d drop-ins in name order over the resolved file', async () => {
    const f = write('configuration-clh.toml', rendered());
    const dir = join(f, '..', 'config.d');
    mkdirSync(dir);
    writeFileSync(join(dir, '10-mem.toml'), '[hypervisor.clh]\ndefault_memory = 512\nenable_debug = true\n');
    writeFileSync(join(dir, '20-mem.toml'), '[hypervisor.clh]\ndefault_memory = 1024\n');
    const link = join(root, 'link-configuration.toml');
    symlinkSync(f, link);
    const resolved = findConfigFile({ configPath: link, env: {} });
    expect(resolved).toBe(f);
    const cfg = await loadConfig(resolved);
    expect(cfg.hypervisor.default_memory).toBe(1024);
    expect(cfg.hypervisor.enable_debug).toBe(true);
  });
});

describe('errors name the file, the key and the rule', () => {
  const base = () => `[hypervisor.clh]\npath="${assets.clh}"\nkernel="${assets.kernel}"\nimage="${assets.image}"\nvirtio_fs_daemon="${assets.virtiofsd}"\n`;
  it.each([
    ['wrong type', () => base() + 'default_memory = "2048"\n', /\[hypervisor\.clh\] default_memory must be a non-negative integer, got string "2048"/, 'hypervisor.clh.default_memory'],
    ['memory too small', () => base() + 'default_memory = 64\n', /default_memory must be >= 128 MiB, got 64/, 'hypervisor.clh.default_memory'],
    ['kernel file missing', () => base().replace(assets.kernel, join(root, 'nope/vmlinux')), /kernel names a guest kernel that does not exist: .*nope\/vmlinux/, 'hypervisor.clh.kernel'],
    ['relative path', () => base().replace(assets.image, 'kata.img'), /image must be an absolute path, got "kata.img"/, 'hypervisor.clh.image'],
    ['image and initrd', () => base() + `initrd="${assets.initrd}"\n`, /image and initrd are both set/, 'hypervisor.clh.image'],
    ['neither image nor initrd', () => base().replace(/image=.*\n/, ''), /image or initrd is required/, 'hypervisor.clh.image'],
    ['vmm not executable', () => base().replace(assets.clh, assets.kernel), /path names a cloud-hypervisor binary that is not executable/, 'hypervisor.clh.path'],
    ['9p', () => base() + 'shared_fs="virtio-9p"\n', /virtio-9p is not supported/, 'hypervisor.clh.shared_fs'],
    ['bad cache', () => base() + 'virtio_fs_cache="sometimes"\n', /virtio_fs_cache must be auto, always, metadata or never/, 'hypervisor.clh.virtio_fs_cache'],
    ['array of strings', () => base() + 'virtio_fs_extra_args = "--foo"\n', /virtio_fs_extra_args must be an array of strings/, 'hypervisor.clh.virtio_fs_extra_args'],
    ['bool', () => base() + '[runtime]\nenable_debug = "yes"\n', /\[runtime\] enable_debug must be a boolean/, 'runtime.enable_debug'],
    ['other hypervisor', () => base().replace('[hypervisor.clh]', '[hypervisor.qemu]'), /exactly one hypervisor table.*\[hypervisor\.qemu\]/, 'hypervisor'],
    ['bad TOML', () => base() + 'default_memory = = 1\n', /not valid TOML/, undefined],
  ])('%s', async (_name, text, message, key) => {
    const err = await loadError(text());
    expect(err.message).toMatch(message);
    expect(err.message).toContain(err.file);
    expect(err.file).toMatch(/configuration\.toml$/);
    expect(err.key).toBe(key);
    expect(err.code).toBe('CONFIG_INVALID');
  });

  it('logs keys it reads but does not support, once each', async () => {
    const warned: string[] = [];
    const log = { debug() {}, info() {}, error() {}, warn: (_m: string, f?: object) => warned.push((f as { key: string }).key) };
    const f = write('configuration.toml', base() + 'rootless = true\nunknown_key = 1\n[runtime]\nsandbox_cgroup_only = true\n');
    await loadConfig(f, log);
    expect(warned).toEqual(['hypervisor.clh.rootless', 'runtime.sandbox_cgroup_only']);
  });
});

describe('findConfigFile', () => {
  it('prefers ConfigPath, then KATA_CONF_FILE, then the default dirs (own name first)', () => {
    const etc = join(root, 'etc-kata'); const opt = join(root, 'opt-kata');
    mkdirSync(etc); mkdirSync(opt);
    const dirs = [etc, opt];
    writeFileSync(join(opt, 'configuration.toml'), '');
    expect(findConfigFile({ env: {}, defaultDirs: dirs })).toBe(join(opt, 'configuration.toml'));
    writeFileSync(join(etc, 'configuration.toml'), '');
    expect(findConfigFile({ env: {}, defaultDirs: dirs })).toBe(join(etc, 'configuration.toml'));
    writeFileSync(join(opt, 'configuration-clh-ts.toml'), '');
    expect(findConfigFile({ env: {}, defaultDirs: dirs })).toBe(join(opt, 'configuration-clh-ts.toml'));
    const envFile = join(root, 'env.toml'); writeFileSync(envFile, '');
    expect(findConfigFile({ env: { KATA_CONF_FILE: envFile }, defaultDirs: dirs })).toBe(envFile);
    const optFile = join(root, 'opt.toml'); writeFileSync(optFile, '');
    expect(findConfigFile({ configPath: optFile, env: { KATA_CONF_FILE: envFile }, defaultDirs: dirs })).toBe(optFile);
  });

  it('names every path it tried and why it was no good', () => {
    const d = join(root, 'empty'); mkdirSync(d);
    expect(() => findConfigFile({ env: {}, defaultDirs: [d] })).toThrow(
      `cannot find a usable config file (default locations); tried: ${d}/configuration-clh-ts.toml (missing), ${d}/configuration.toml (missing)`);
    expect(() => findConfigFile({ env: { KATA_CONF_FILE: '/nope.toml' } })).toThrow(/\(KATA_CONF_FILE\); tried: \/nope\.toml \(missing\)$/);
    expect(() => findConfigFile({ configPath: d, env: {} })).toThrow(`tried: ${d} (not a regular file)`);
  });

  it('refuses a relative path: the shim runs in the bundle directory, not where the user typed it', () => {
    expect(() => findConfigFile({ configPath: 'rel.toml', env: {} })).toThrow('config file rel.toml (runtime options ConfigPath) must be an absolute path');
  });
});

describe('applyAnnotations', () => {
  const H = 'io.katacontainers.config.hypervisor.';
  const load = (extra = {}) => loadConfig(write('configuration.toml', rendered(extra)));

  it('applies enabled hypervisor keys and merges kernel_params by key', async () => {
    const cfg = await load();
    const out = applyAnnotations(cfg, { [H + 'kernel_params']: 'systemd.unified_cgroup_hierarchy=0 foo=bar', [H + 'enable_iommu']: 'true' });
    expect(out.hypervisor.kernel_params).toBe('cgroup_no_v1=all systemd.unified_cgroup_hierarchy=0 foo=bar');
    expect(out.hypervisor.enable_iommu).toBe(true);
    expect(cfg.hypervisor.enable_iommu).toBe(false); // input untouched
  });

  it('rejects hypervisor keys not allowed by enable_annotations (anchored)', async () => {
    const cfg = await load();
    expect(() => applyAnnotations(cfg, { [H + 'default_memory']: '4096' })).toThrow(/annotation io\.katacontainers\.config\.hypervisor\.default_memory is not enabled/);
    expect(() => applyAnnotations(cfg, { [H + 'kernel_params_x']: '1' })).toThrow(/is not enabled/);
  });

  it('allows path / virtio_fs_daemon only within their globs', async () => {
    const cfg = await load({ DEFENABLEANNOTATIONS: '["path", "virtio_fs_daemon", "virtio_fs_extra_args", "default_memory"]' });
    expect(applyAnnotations(cfg, { [H + 'path']: `${root}/bin/other-clh` }).hypervisor.path).toBe(`${root}/bin/other-clh`);
    expect(() => applyAnnotations(cfg, { [H + 'path']: '/usr/bin/evil' })).toThrow(/path is not allowed by valid_hypervisor_paths/);
    expect(() => applyAnnotations(cfg, { [H + 'path']: `${root}/bin/sub/clh` })).toThrow(/not allowed/);
    expect(() => applyAnnotations(cfg, { [H + 'virtio_fs_daemon']: '/tmp/virtiofsd' })).toThrow(/not allowed by valid_virtio_fs_daemon_paths/);
    const out = applyAnnotations(cfg, { [H + 'virtio_fs_extra_args']: '["--log-level=debug"]', [H + 'default_memory']: '4096' });
    expect(out.hypervisor.virtio_fs_extra_args).toEqual(['--thread-pool-size=1', '--announce-submounts', '--log-level=debug']);
    expect(out.hypervisor.default_memory).toBe(4096);
    expect(() => applyAnnotations(cfg, { [H + 'virtio_fs_extra_args']: '--log-level=debug' })).toThrow(/must be a JSON array of strings/);
    expect(() => applyAnnotations(cfg, { [H + 'default_memory']: '100' })).toThrow(/must be >= 256 MiB/);
  });

  it('does not gate runtime and agent keys', async () => {
    const cfg = await load();
    const out = applyAnnotations(cfg, {
      'io.katacontainers.config.runtime.disable_guest_seccomp': 'false',
      'io.katacontainers.config.runtime.create_container_timeout': '120',
      'io.katacontainers.config.agent.kernel_modules': 'e1000e EEE=1;i915',
      'io.katacontainers.something.else': 'x',
    });
    expect(out.runtime.disable_guest_seccomp).toBe(false);
    expect(out.runtime.create_container_timeout).toBe(120);
    expect(out.agent.kernel_modules).toEqual(['e1000e EEE=1', 'i915']);
    expect(() => applyAnnotations(cfg, { 'io.katacontainers.config.runtime.disable_guest_seccomp': 'maybe' })).toThrow(/must be a boolean/);
  });
});

describe('helpers', () => {
  it('globMatch follows filepath.Match', () => {
    expect(globMatch('/opt/kata/bin/*', '/opt/kata/bin/cloud-hypervisor')).toBe(true);
    expect(globMatch('/opt/kata/bin/*', '/opt/kata/bin/x/y')).toBe(false);
    expect(globMatch('/opt/kata/libexec/virtiofs[dx]', '/opt/kata/libexec/virtiofsd')).toBe(true);
    expect(globMatch('/a/b?', '/a/b/')).toBe(false);
    expect(globMatch('/a/b.c', '/a/bxc')).toBe(false);
  });
  it('mergeKernelParams replaces same-key params', () => {
    expect(mergeKernelParams('a=1 b c=3', 'c=4 d a=2')).toBe('a=2 b c=4 d');
  });
  it('pathsUnder lays out Kata paths below a root', () => {
    const p = pathsUnder('/tmp/r');
    expect(p.vmDir('sb')).toBe('/tmp/r/run/vc/vm/sb');
    expect(p.sharedSandboxDir('sb')).toBe('/tmp/r/run/kata-containers/shared/sandboxes/sb');
    expect(p.guestSharedDir).toBe('/run/kata-containers/shared/containers/');
    expect(pathsUnder('/').vmDir('x')).toBe('/run/vc/vm/x');
  });
});
