import { describe, expect, it } from 'vitest';
import { grpc } from '../proto/index.js';
import { AgentSpecError } from './errors.js';
import { DEFAULT_SHM_SIZE, GUEST_SANDBOX_SHM, sharedFsStorage, shmStorage, toGuestProcess, toGuestSpec } from './spec.js';

const opts = { containerId: 'c1', guestRootfs: '/run/kata-containers/shared/containers/c1/rootfs', disableGuestSeccomp: true };

// A CRI-like config.json, trimmed.
function ociSpec(): any {
  return {
    ociVersion: '1.1.0',
    process: {
      terminal: false,
      user: { uid: 1000, gid: 1000, additionalGids: [10, 20], umask: 18 },
      args: ['sh', '-c', 'sleep 1'],
      env: ['PATH=/bin', 'HOME=/root'],
      cwd: '/',
      capabilities: { bounding: ['CAP_CHOWN'], effective: ['CAP_CHOWN'], permitted: ['CAP_CHOWN'] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
      apparmorProfile: 'cri-containerd.apparmor.d',
      oomScoreAdj: 1000,
      selinuxLabel: 'system_u:system_r:container_t:s0:c1,c2',
    },
    root: { path: '/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1/rootfs', readonly: true },
    hostname: 'pod-a',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev/shm', type: 'bind', source: '/run/containerd/io.containerd.grpc.v1.cri/sandboxes/s1/shm', options: ['rbind', 'ro'] },
      { destination: '/etc/hosts', type: 'bind', source: '/var/lib/containerd/sandboxes/s1/hosts', options: ['rbind', 'rprivate', 'rw'] },
    ],
    hooks: { prestart: [{ path: '/usr/bin/hook', args: ['hook'] }], createRuntime: [{ path: '/x' }] },
    annotations: {
      'io.kubernetes.cri.container-type': 'container',
      'cdi.k8s.io/vendor.com_device': 'vendor.com/device=gpu0',
    },
    linux: {
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      sysctl: { 'net.ipv4.ip_forward': '1' },
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        memory: { limit: 268435456, swap: -1 },
        cpu: { shares: 1024, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
        pids: { limit: 100 },
        blockIO: { weight: 10 },
        hugepageLimits: [{ pageSize: '2MB', limit: 0 }],
        network: { classID: 1 },
      },
      cgroupsPath: 'kubepods-besteffort-pod1.slice:cri-containerd:c1',
      namespaces: [
        { type: 'pid', path: '/proc/42/ns/pid' },
        { type: 'ipc', path: '/proc/42/ns/ipc' },
        { type: 'uts', path: '/proc/42/ns/uts' },
        { type: 'mount' },
        { type: 'network', path: '/var/run/netns/cni-1' },
        { type: 'cgroup' },
        { type: 'time' },
      ],
      devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 438, uid: 0, gid: 0 }],
      seccomp: { defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86_64'], syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', errnoRet: 1, args: [{ index: 0, value: 2, op: 'SCMP_CMP_EQ' }] }] },
      rootfsPropagation: 'rslave',
      maskedPaths: ['/proc/kcore'],
      readonlyPaths: ['/proc/sys'],
      mountLabel: 'system_u:object_r:container_file_t:s0:c1,c2',
    },
  };
}

describe('toGuestSpec', () => {
  const { spec, sandboxPidns } = toGuestSpec(ociSpec(), { ...opts, shmSize: 64 << 20 });

  it.each<[string, (s: grpc.ISpec) => unknown, unknown]>([
    ['version', (s) => s.Version, '1.1.0'],
    ['root path = guest rootfs', (s) => s.Root, { Path: opts.guestRootfs, Readonly: true }],
    ['hostname kept', (s) => s.Hostname, 'pod-a'],
    ['hooks removed', (s) => s.Hooks, undefined],
    ['seccomp removed (disable_guest_seccomp)', (s) => s.Linux?.Seccomp, undefined],
    ['process selinux label cleared', (s) => s.Process?.SelinuxLabel, undefined],
    ['mount label cleared', (s) => s.Linux?.MountLabel, undefined],
    ['user (umask not in the proto)', (s) => s.Process?.User, { UID: 1000, GID: 1000, AdditionalGids: [10, 20] }],
    ['args/env/cwd', (s) => [s.Process?.Args, s.Process?.Env, s.Process?.Cwd], [['sh', '-c', 'sleep 1'], ['PATH=/bin', 'HOME=/root'], '/']],
    ['capabilities', (s) => s.Process?.Capabilities, { Bounding: ['CAP_CHOWN'], Effective: ['CAP_CHOWN'], Permitted: ['CAP_CHOWN'] }],
    ['rlimits', (s) => s.Process?.Rlimits, [{ Type: 'RLIMIT_NOFILE', Hard: 1024, Soft: 1024 }]],
    ['oom score / nnp / apparmor', (s) => [s.Process?.OOMScoreAdj, s.Process?.NoNewPrivileges, s.Process?.ApparmorProfile], [1000, true, 'cri-containerd.apparmor.d']],
    ['resources: devices/pids/blockIO/network removed, cpus/mems cleared', (s) => s.Linux?.Resources, {
      Memory: { Limit: 268435456, Swap: -1 },
      CPU: { Shares: 1024, Quota: 50000, Period: 100000 },
      HugepageLimits: [{ Pagesize: '2MB', Limit: 0 }],
    }],
    ['namespaces: network/cgroup/time dropped, pid removed, paths cleared', (s) => s.Linux?.Namespaces, [{ Type: 'ipc' }, { Type: 'uts' }, { Type: 'mount' }]],
    ['uid mappings', (s) => s.Linux?.UIDMappings, [{ HostID: 100000, ContainerID: 0, Size: 65536 }]],
    ['sysctl, cgroups path, propagation, masked/readonly paths', (s) => [s.Linux?.Sysctl, s.Linux?.CgroupsPath, s.Linux?.RootfsPropagation, s.Linux?.MaskedPaths, s.Linux?.ReadonlyPaths],
      [{ 'net.ipv4.ip_forward': '1' }, 'kubepods-besteffort-pod1.slice:cri-containerd:c1', 'rslave', ['/proc/kcore'], ['/proc/sys']]],
    ['devices kept', (s) => s.Linux?.Devices, [{ Path: '/dev/fuse', Type: 'c', Major: 10, Minor: 229, FileMode: 438, UID: 0, GID: 0 }]],
    ['cdi annotations removed', (s) => s.Annotations, { 'io.kubernetes.cri.container-type': 'container' }],
    ['/dev/shm → the sandbox shm', (s) => s.Mounts?.[1], { destination: '/dev/shm', type: 'bind', source: GUEST_SANDBOX_SHM, options: ['rbind'] }],
    ['other mounts as they are', (s) => [s.Mounts?.[0], s.Mounts?.[2]], [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/etc/hosts', type: 'bind', source: '/var/lib/containerd/sandboxes/s1/hosts', options: ['rbind', 'rprivate', 'rw'] },
    ]],
  ])('%s', (_name, pick, want) => {
    expect(pick(spec)).toEqual(want);
  });

  it('pid namespace with a path → sandboxPidns', () => {
    expect(sandboxPidns).toBe(true);
    const own = ociSpec();
    own.linux.namespaces[0] = { type: 'pid' };
    const r = toGuestSpec(own, opts);
    expect(r.sandboxPidns).toBe(false);
    expect(r.spec.Linux?.Namespaces?.map((n) => n.Type)).not.toContain('pid');
  });

  it('keeps seccomp when guest seccomp is enabled', () => {
    const s = toGuestSpec(ociSpec(), { ...opts, disableGuestSeccomp: false }).spec;
    expect(s.Linux?.Seccomp).toEqual({
      DefaultAction: 'SCMP_ACT_ERRNO', Architectures: ['SCMP_ARCH_X86_64'],
      Syscalls: [{ Names: ['read'], Action: 'SCMP_ACT_ALLOW', errnoret: 1, Args: [{ Index: 0, Value: 2, Op: 'SCMP_CMP_EQ' }] }],
    });
    // and it survives the wire, oneof included
    const back = grpc.Spec.decode(grpc.Spec.encode(s).finish());
    expect(back.Linux?.Seccomp?.Syscalls?.[0]?.errnoret).toBe(1);
  });

  it('without a sandbox shm, /dev/shm is a private 64 MiB tmpfs', () => {
    const s = toGuestSpec(ociSpec(), opts).spec;
    expect(s.Mounts?.[1]).toEqual({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['noexec', 'nosuid', 'nodev', 'mode=1777', `size=${DEFAULT_SHM_SIZE}`] });
  });

  it('absent pointer ints are sent as 0', () => {
    const oci = { ociVersion: '1.0.2', root: { path: 'rootfs' }, linux: { resources: { memory: {}, cpu: { cpus: '1' } } } };
    const s = toGuestSpec(oci, opts).spec;
    expect(s.Linux?.Resources).toEqual({ Memory: {}, CPU: {} });
    const back = grpc.Spec.decode(grpc.Spec.encode(s).finish());
    expect([back.Linux?.Resources?.Memory?.Limit, back.Linux?.Resources?.CPU?.Quota, back.Root?.Readonly]).toEqual([0, 0, false]);
  });

  it('a minimal spec (no process, no linux) works', () => {
    expect(toGuestSpec({ root: { path: 'rootfs' } }, opts).spec).toEqual({ Root: { Path: opts.guestRootfs, Readonly: false } });
  });

  it.each([
    [{ process: { user: { uid: -1 } } }, /process\.user\.uid: must not be negative/],
    [{ process: { args: 'sh' } }, /process\.args: must be an array/],
    [{ linux: { resources: { memory: { limit: '1G' } } } }, /linux\.resources\.memory\.limit: must be an integer/],
    [{ linux: { namespaces: [{ type: 5 }] } }, /linux\.namespaces\[0\]\.type: must be a string/],
    [{ mounts: [{ destination: '/x', options: 'ro' }] }, /mounts\[0\]\.options: must be an array/],
    [null, /\(spec\): is missing/],
  ])('rejects bad input %#, naming the field', (oci, re) => {
    expect(() => toGuestSpec(oci, opts)).toThrow(AgentSpecError);
    expect(() => toGuestSpec(oci, opts)).toThrow(re);
  });

  it('rejects a relative guest rootfs', () => {
    expect(() => toGuestSpec({}, { ...opts, guestRootfs: 'rootfs' })).toThrow(/must be absolute/);
  });

  it('does not modify its input', () => {
    const oci = ociSpec();
    const before = JSON.stringify(oci);
    toGuestSpec(oci, opts);
    expect(JSON.stringify(oci)).toBe(before);
  });
});

describe('toGuestProcess', () => {
  it('converts an exec process spec and drops the selinux label', () => {
    expect(toGuestProcess({ terminal: true, consoleSize: { height: 24, width: 80 }, args: ['sh'], cwd: '/', user: { uid: 0, gid: 0 }, selinuxLabel: 'x' }))
      .toEqual({ Terminal: true, ConsoleSize: { Height: 24, Width: 80 }, Args: ['sh'], Cwd: '/', User: { UID: 0, GID: 0 } });
  });
});

describe('storages', () => {
  it.each([
    [{}, []],
    [{ dax: true }, ['dax']],
  ])('sharedFsStorage(%j)', (o, options) => {
    expect(sharedFsStorage(o)).toEqual({ driver: 'virtio-fs', source: 'kataShared', fstype: 'virtiofs', mountPoint: '/run/kata-containers/shared/containers/', options });
  });

  it('shmStorage', () => {
    expect(shmStorage(67108864)).toEqual({
      driver: 'ephemeral', source: 'shm', fstype: 'tmpfs', mountPoint: '/run/kata-containers/sandbox/shm',
      options: ['noexec', 'nosuid', 'nodev', 'mode=1777', 'size=67108864'],
    });
    expect(() => shmStorage(0)).toThrow(/shm size: must be a positive integer/);
  });
});
