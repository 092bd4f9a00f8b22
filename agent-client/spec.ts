// The OCI runtime spec (config.json) rewritten for the guest the way Kata's Go runtime does
// before CreateContainer (kata-agent.md §7): host-only parts removed, the rootfs pointed at the
// shared filesystem, namespaces the guest can't join dropped. Pure; table-tested.
import type { grpc } from '../proto/index.js';
import { AgentSpecError } from './errors.js';

/** Guest mount point of the virtio-fs share (tag `kataShared`); the trailing slash is Kata's. */
export const GUEST_SHARED_DIR = '/run/kata-containers/shared/containers/';
export const GUEST_SANDBOX_SHM = '/run/kata-containers/sandbox/shm';
/** /dev/shm size when the sandbox has none of its own (Kata's DefaultShmSize, 64 MiB). */
export const DEFAULT_SHM_SIZE = 64 << 20;

type Json = Record<string, unknown>;

// Field readers: absent → undefined, wrong type → AgentSpecError naming the path.
function obj(v: unknown, path: string): Json | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new AgentSpecError(path, `must be an object, got ${JSON.stringify(v)}`);
  return v as Json;
}
function arr(v: unknown, path: string): unknown[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw new AgentSpecError(path, `must be an array, got ${JSON.stringify(v)}`);
  return v;
}
function str(v: unknown, path: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new AgentSpecError(path, `must be a string, got ${JSON.stringify(v)}`);
  return v;
}
function strs(v: unknown, path: string): string[] | undefined {
  return arr(v, path)?.map((s, i) => str(s, `${path}[${i}]`) ?? '');
}
function bool(v: unknown, path: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new AgentSpecError(path, `must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}
/** OCI pointer ints: absent → undefined (sent as 0). */
function int(v: unknown, path: string, o: { unsigned?: boolean } = {}): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new AgentSpecError(path, `must be an integer, got ${JSON.stringify(v)}`);
  if (o.unsigned && v < 0) throw new AgentSpecError(path, `must not be negative, got ${v}`);
  return v;
}
function strMap(v: unknown, path: string): Record<string, string> | undefined {
  const o = obj(v, path);
  if (!o) return undefined;
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(o)) out[k] = str(val, `${path}.${k}`) ?? '';
  return out;
}
/** Drops undefined members so the result compares cleanly and encodes only what was given. */
function clean<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
const list = <T>(v: unknown, path: string, f: (x: Json, p: string) => T): T[] | undefined =>
  arr(v, path)?.map((x, i) => f(obj(x, `${path}[${i}]`) ?? {}, `${path}[${i}]`));

function guestProcess(p: Json, path: string): grpc.IProcess {
  const user = obj(p.user, `${path}.user`);
  const box = obj(p.consoleSize, `${path}.consoleSize`);
  const caps = obj(p.capabilities, `${path}.capabilities`);
  return clean<grpc.IProcess>({
    Terminal: bool(p.terminal, `${path}.terminal`),
    ConsoleSize: box && clean({ Height: int(box.height, `${path}.consoleSize.height`, { unsigned: true }), Width: int(box.width, `${path}.consoleSize.width`, { unsigned: true }) }),
    User: user && clean({
      UID: int(user.uid, `${path}.user.uid`, { unsigned: true }),
      GID: int(user.gid, `${path}.user.gid`, { unsigned: true }),
      AdditionalGids: arr(user.additionalGids, `${path}.user.additionalGids`)?.map((g, i) => int(g, `${path}.user.additionalGids[${i}]`, { unsigned: true }) ?? 0),
      Username: str(user.username, `${path}.user.username`),
    }),
    Args: strs(p.args, `${path}.args`),
    Env: strs(p.env, `${path}.env`),
    Cwd: str(p.cwd, `${path}.cwd`),
    Capabilities: caps && clean({
      Bounding: strs(caps.bounding, `${path}.capabilities.bounding`),
      Effective: strs(caps.effective, `${path}.capabilities.effective`),
      Inheritable: strs(caps.inheritable, `${path}.capabilities.inheritable`),
      Permitted: strs(caps.permitted, `${path}.capabilities.permitted`),
      Ambient: strs(caps.ambient, `${path}.capabilities.ambient`),
    }),
    Rlimits: list(p.rlimits, `${path}.rlimits`, (r, rp) => clean({
      Type: str(r.type, `${rp}.type`),
      Hard: int(r.hard, `${rp}.hard`, { unsigned: true }),
      Soft: int(r.soft, `${rp}.soft`, { unsigned: true }),
    })),
    NoNewPrivileges: bool(p.noNewPrivileges, `${path}.noNewPrivileges`),
    ApparmorProfile: str(p.apparmorProfile, `${path}.apparmorProfile`),
    OOMScoreAdj: int(p.oomScoreAdj, `${path}.oomScoreAdj`),
    // Guest SELinux is off (Kata's default): a host label would make the agent fail.
    SelinuxLabel: undefined,
  });
}

/** An OCI `process` object (e.g. containerd's exec spec JSON) → grpc.Process, as for ExecProcess. */
export function toGuestProcess(p: unknown): grpc.IProcess {
  return guestProcess(obj(p, "process") ?? {}, "process");
}

const throttle = (v: unknown, path: string) => list(v, path, (d, p) => clean({
  Major: int(d.major, `${p}.major`), Minor: int(d.minor, `${p}.minor`), Rate: int(d.rate, `${p}.rate`, { unsigned: true }),
}));

/**
 * OCI `linux.resources` → grpc.LinuxResources for the guest: devices, pids, blockIO and network
 * are host matters and are dropped; cpu.cpus/mems name host CPUs/nodes and are cleared.
 */
export function toGuestResources(r: unknown, path = 'linux.resources'): grpc.ILinuxResources {
  const res = obj(r, path) ?? {};
  const mem = obj(res.memory, `${path}.memory`);
  const cpu = obj(res.cpu, `${path}.cpu`);
  return clean<grpc.ILinuxResources>({
    Memory: mem && clean({
      Limit: int(mem.limit, `${path}.memory.limit`),
      Reservation: int(mem.reservation, `${path}.memory.reservation`),
      Swap: int(mem.swap, `${path}.memory.swap`),
      Kernel: int(mem.kernel, `${path}.memory.kernel`),
      KernelTCP: int(mem.kernelTCP, `${path}.memory.kernelTCP`),
      Swappiness: int(mem.swappiness, `${path}.memory.swappiness`, { unsigned: true }),
      DisableOOMKiller: bool(mem.disableOOMKiller, `${path}.memory.disableOOMKiller`),
    }),
    CPU: cpu && clean({
      Shares: int(cpu.shares, `${path}.cpu.shares`, { unsigned: true }),
      Quota: int(cpu.quota, `${path}.cpu.quota`),
      Period: int(cpu.period, `${path}.cpu.period`, { unsigned: true }),
      RealtimeRuntime: int(cpu.realtimeRuntime, `${path}.cpu.realtimeRuntime`),
      RealtimePeriod: int(cpu.realtimePeriod, `${path}.cpu.realtimePeriod`, { unsigned: true }),
      // cpus/mems: cleared (they name host CPUs and NUMA nodes)
    }),
    HugepageLimits: list(res.hugepageLimits, `${path}.hugepageLimits`, (h, p) => clean({
      Pagesize: str(h.pageSize, `${p}.pageSize`), Limit: int(h.limit, `${p}.limit`, { unsigned: true }),
    })),
  });
}

/** Namespaces the guest can't or mustn't create: the VM is the network and cgroup boundary. */
const DROPPED_NAMESPACES = new Set(['network', 'cgroup', 'time']);

function seccomp(s: Json, path: string): grpc.ILinuxSeccomp {
  return clean<grpc.ILinuxSeccomp>({
    DefaultAction: str(s.defaultAction, `${path}.defaultAction`),
    Architectures: strs(s.architectures, `${path}.architectures`),
    Flags: strs(s.flags, `${path}.flags`),
    Syscalls: list(s.syscalls, `${path}.syscalls`, (c, p) => clean<grpc.ILinuxSyscall>({
      Names: strs(c.names, `${p}.names`),
      Action: str(c.action, `${p}.action`),
      errnoret: int(c.errnoRet, `${p}.errnoRet`, { unsigned: true }),
      Args: list(c.args, `${p}.args`, (a, ap) => clean({
        Index: int(a.index, `${ap}.index`, { unsigned: true }),
        Value: int(a.value, `${ap}.value`, { unsigned: true }),
        ValueTwo: int(a.valueTwo, `${ap}.valueTwo`, { unsigned: true }),
        Op: str(a.op, `${ap}.op`),
      })),
    })),
  });
}

function mounts(v: unknown, shmSize: number): grpc.IMount[] | undefined {
  return list(v, 'mounts', (m, p) => {
    const out = clean<grpc.IMount>({
      destination: str(m.destination, `${p}.destination`),
      source: str(m.source, `${p}.source`),
      type: str(m.type, `${p}.type`),
      options: strs(m.options, `${p}.options`),
    });
    // /dev/shm: the sandbox's shared tmpfs when it has one, else a private 64 MiB tmpfs
    // (Kata's handleShm); an ephemeral volume keeps its own.
    if (out.destination === '/dev/shm' && out.type !== 'ephemeral') {
      if (shmSize > 0) return { destination: '/dev/shm', type: 'bind', source: GUEST_SANDBOX_SHM, options: ['rbind'] };
      return { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['noexec', 'nosuid', 'nodev', 'mode=1777', `size=${DEFAULT_SHM_SIZE}`] };
    }
    return out;
  });
}

export interface GuestSpecOptions {
  containerId: string;
  /** The rootfs as the guest sees it, e.g. /run/kata-containers/shared/containers/<id>/rootfs. */
  guestRootfs: string;
  /** `[runtime] disable_guest_seccomp` (Kata's default true): the seccomp profile is dropped. */
  disableGuestSeccomp: boolean;
  /** Size of the sandbox's shared /dev/shm (0/absent: none; containers get a private tmpfs). */
  shmSize?: number;
}

/** The OCI spec (config.json) rewritten for the guest, and whether to join the sandbox pid ns. */
export function toGuestSpec(oci: any, o: GuestSpecOptions): { spec: grpc.ISpec; sandboxPidns: boolean } {
  const spec = obj(oci, '(spec)');
  if (!spec) throw new AgentSpecError('(spec)', 'is missing');
  if (!o.guestRootfs.startsWith('/')) throw new AgentSpecError('root.path', `guest rootfs ${JSON.stringify(o.guestRootfs)} must be absolute`);
  const root = obj(spec.root, 'root');
  const proc = obj(spec.process, 'process');
  const linux = obj(spec.linux, 'linux');
  let sandboxPidns = false;

  let guestLinux: grpc.ILinux | undefined;
  if (linux) {
    const namespaces: grpc.ILinuxNamespace[] = [];
    for (const [i, ns] of (arr(linux.namespaces, 'linux.namespaces') ?? []).entries()) {
      const n = obj(ns, `linux.namespaces[${i}]`) ?? {};
      const type = str(n.type, `linux.namespaces[${i}].type`) ?? '';
      if (DROPPED_NAMESPACES.has(type)) continue;
      // A pid ns with a path is the pod's shared one: the agent joins its sandbox pid ns instead.
      if (type === 'pid') {
        if (str(n.path, `linux.namespaces[${i}].path`)) sandboxPidns = true;
        continue;
      }
      // Host namespace paths mean nothing inside the VM.
      namespaces.push({ Type: type });
    }
    const idmap = (v: unknown, path: string) => list(v, path, (m, p) => clean({
      HostID: int(m.hostID, `${p}.hostID`, { unsigned: true }),
      ContainerID: int(m.containerID, `${p}.containerID`, { unsigned: true }),
      Size: int(m.size, `${p}.size`, { unsigned: true }),
    }));
    const sec = obj(linux.seccomp, 'linux.seccomp');
    const rdt = obj(linux.intelRdt, 'linux.intelRdt');
    guestLinux = clean<grpc.ILinux>({
      UIDMappings: idmap(linux.uidMappings, 'linux.uidMappings'),
      GIDMappings: idmap(linux.gidMappings, 'linux.gidMappings'),
      Sysctl: strMap(linux.sysctl, 'linux.sysctl'),
      Resources: linux.resources == null ? undefined : toGuestResources(linux.resources),
      CgroupsPath: str(linux.cgroupsPath, 'linux.cgroupsPath'),
      Namespaces: namespaces,
      Devices: list(linux.devices, 'linux.devices', (d, p) => clean({
        Path: str(d.path, `${p}.path`),
        Type: str(d.type, `${p}.type`),
        Major: int(d.major, `${p}.major`),
        Minor: int(d.minor, `${p}.minor`),
        FileMode: int(d.fileMode, `${p}.fileMode`, { unsigned: true }),
        UID: int(d.uid, `${p}.uid`, { unsigned: true }),
        GID: int(d.gid, `${p}.gid`, { unsigned: true }),
      })),
      Seccomp: sec && !o.disableGuestSeccomp ? seccomp(sec, 'linux.seccomp') : undefined,
      RootfsPropagation: str(linux.rootfsPropagation, 'linux.rootfsPropagation'),
      MaskedPaths: strs(linux.maskedPaths, 'linux.maskedPaths'),
      ReadonlyPaths: strs(linux.readonlyPaths, 'linux.readonlyPaths'),
      // MountLabel: cleared with guest SELinux off
      IntelRdt: rdt && clean({ L3CacheSchema: str(rdt.l3CacheSchema, 'linux.intelRdt.l3CacheSchema') }),
    });
  }

  let annotations = strMap(spec.annotations, 'annotations');
  if (annotations) {
    // CDI devices are resolved on the host; the guest must not try again.
    annotations = Object.fromEntries(Object.entries(annotations).filter(([k]) => !k.startsWith('cdi.k8s.io/')));
  }

  const guest = clean<grpc.ISpec>({
    Version: str(spec.ociVersion, 'ociVersion'),
    Process: proc && guestProcess(proc, "process"),
    Root: { Path: o.guestRootfs, Readonly: bool(root?.readonly, 'root.readonly') ?? false },
    Hostname: str(spec.hostname, 'hostname'),
    Mounts: mounts(spec.mounts, o.shmSize ?? 0),
    // Hooks: removed, they run on the host.
    Annotations: annotations,
    Linux: guestLinux,
  });
  return { spec: guest, sandboxPidns };
}

/** The virtio-fs shared filesystem storage for CreateSandbox (tag kataShared). */
export function sharedFsStorage(o: { dax?: boolean } = {}): grpc.IStorage {
  return { driver: 'virtio-fs', source: 'kataShared', fstype: 'virtiofs', mountPoint: GUEST_SHARED_DIR, options: o.dax ? ['dax'] : [] };
}

/** The sandbox's shared /dev/shm tmpfs for CreateSandbox, when the sandbox has a shm size. */
export function shmStorage(sizeBytes: number): grpc.IStorage {
  if (!Number.isInteger(sizeBytes) || sizeBytes <= 0) throw new AgentSpecError('shm size', `must be a positive integer, got ${sizeBytes}`);
  return {
    driver: 'ephemeral', source: 'shm', fstype: 'tmpfs', mountPoint: GUEST_SANDBOX_SHM,
    options: ['noexec', 'nosuid', 'nodev', 'mode=1777', `size=${sizeBytes}`],
  };
}
