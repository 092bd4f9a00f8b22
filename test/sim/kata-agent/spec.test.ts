import { describe, expect, it } from 'vitest';
import { grpc } from '../../../proto/index.js';
import { ociFromGrpc, ociProcessFromGrpc, ociResourcesFromGrpc } from './spec.js';

// grpc.Spec survives the wire, then becomes OCI JSON with OCI's own spellings.
const roundTrip = (s: grpc.ISpec) => grpc.Spec.decode(grpc.Spec.encode(s).finish());

describe('grpc.Spec → OCI runtime-spec JSON', () => {
  it.each([
    ['Version', { Version: '1.0.2' }, { ociVersion: '1.0.2' }],
    ['process basics', { Process: { Terminal: true, ConsoleSize: { Height: 24, Width: 80 }, Args: ['sh'], Env: ['A=1'], Cwd: '/', NoNewPrivileges: true } },
      { process: { terminal: true, consoleSize: { height: 24, width: 80 }, args: ['sh'], env: ['A=1'], cwd: '/', noNewPrivileges: true, user: { uid: 0, gid: 0 } } }],
    ['user ids', { Process: { User: { UID: 1000, GID: 1000, AdditionalGids: [10], Username: 'u' } } },
      { process: { user: { uid: 1000, gid: 1000, additionalGids: [10], username: 'u' } } }],
    ['oomScoreAdj and rlimits', { Process: { OOMScoreAdj: -998, Rlimits: [{ Type: 'RLIMIT_NOFILE', Hard: 1024, Soft: 1024 }] } },
      { process: { oomScoreAdj: -998, rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }], user: { uid: 0, gid: 0 } } }],
    ['capabilities', { Process: { Capabilities: { Bounding: ['CAP_KILL'], Ambient: ['CAP_KILL'] } } },
      { process: { capabilities: { bounding: ['CAP_KILL'], ambient: ['CAP_KILL'] }, user: { uid: 0, gid: 0 } } }],
    ['root and mounts', { Root: { Path: '/r', Readonly: true }, Mounts: [{ destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid'] }] },
      { root: { path: '/r', readonly: true }, mounts: [{ destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid'] }] }],
    ['annotations keep their keys', { Annotations: { 'io.kubernetes.cri.container-type': 'sandbox', Foo: 'x' } },
      { annotations: { 'io.kubernetes.cri.container-type': 'sandbox', Foo: 'x' } }],
    ['id mappings', { Linux: { UIDMappings: [{ HostID: 1000, ContainerID: 0, Size: 1 }] } },
      { linux: { uidMappings: [{ hostID: 1000, containerID: 0, size: 1 }] } }],
    ['sysctl keys kept', { Linux: { Sysctl: { 'net.ipv4.ip_forward': '1' } } }, { linux: { sysctl: { 'net.ipv4.ip_forward': '1' } } }],
    ['resources', { Linux: { Resources: { Memory: { Limit: 1 << 24, DisableOOMKiller: true }, CPU: { Shares: 512, Quota: 50000, Period: 100000 }, HugepageLimits: [{ Pagesize: '2MB', Limit: 0 }] } } },
      { linux: { resources: { memory: { limit: 1 << 24, disableOOMKiller: true }, cpu: { shares: 512, quota: 50000, period: 100000 }, hugepageLimits: [{ pageSize: '2MB' }] } } }],
    ['namespaces, devices, paths', { Linux: { Namespaces: [{ Type: 'pid' }], Devices: [{ Path: '/dev/fuse', Type: 'c', Major: 10, Minor: 229, FileMode: 0o666 }], MaskedPaths: ['/proc/kcore'], CgroupsPath: '/k/c' } },
      { linux: { namespaces: [{ type: 'pid' }], devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666 }], maskedPaths: ['/proc/kcore'], cgroupsPath: '/k/c' } }],
    ['seccomp errnoRet', { Linux: { Seccomp: { DefaultAction: 'SCMP_ACT_ERRNO', Syscalls: [{ Names: ['mount'], Action: 'SCMP_ACT_ERRNO', errnoret: 1, Args: [{ Index: 1, Value: 2, ValueTwo: 3, Op: 'SCMP_CMP_EQ' }] }] } } },
      { linux: { seccomp: { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 1, value: 2, valueTwo: 3, op: 'SCMP_CMP_EQ' }] }] } } }],
    ['Solaris/Windows placeholders dropped', { Solaris: { dummy: 'x' }, Hostname: 'h' }, { hostname: 'h' }],
  ])('%s', (_name, spec, oci) => {
    expect(ociFromGrpc(roundTrip(spec as grpc.ISpec))).toEqual(oci);
  });

  it('converts an exec Process and UpdateContainer resources the same way', () => {
    expect(ociProcessFromGrpc({ Args: ['ls'], Cwd: '/', User: { UID: 0, GID: 0 } })).toEqual({ args: ['ls'], cwd: '/', user: { uid: 0, gid: 0 } });
    expect(ociResourcesFromGrpc({ Memory: { Limit: 100 }, Pids: { Limit: 10 } })).toEqual({ memory: { limit: 100 }, pids: { limit: 10 } });
  });
});
