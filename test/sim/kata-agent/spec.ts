// grpc.Spec (Kata's protobuf copy of the OCI spec, capitalised Go field names) back to OCI
// runtime-spec JSON for runc, and the guest-side rewrites the agent makes.
import { grpc } from '../../../proto/index.js';

// Names whose OCI JSON spelling is not "first letter lower-cased".
const renames: Record<string, string> = {
  Version: 'ociVersion', UIDMappings: 'uidMappings', GIDMappings: 'gidMappings', HostID: 'hostID',
  ContainerID: 'containerID', UID: 'uid', GID: 'gid', OOMScoreAdj: 'oomScoreAdj', CPU: 'cpu',
  BlockIO: 'blockIO', Pagesize: 'pageSize', ClassID: 'classID', DisableOOMKiller: 'disableOOMKiller',
  KernelTCP: 'kernelTCP', IntelRdt: 'intelRdt', L3CacheSchema: 'l3CacheSchema', errnoret: 'errnoRet',
  ErrnoRet: 'errnoRet', ThrottleReadIOPSDevice: 'throttleReadIOPSDevice', ThrottleWriteIOPSDevice: 'throttleWriteIOPSDevice',
  ThrottleReadBpsDevice: 'throttleReadBpsDevice', ThrottleWriteBpsDevice: 'throttleWriteBpsDevice',
};
/** Map-typed fields: their keys are data, not field names. */
const maps = new Set(['Annotations', 'Sysctl']);
const dropped = new Set(['Solaris', 'Windows']);

function ociKey(k: string): string {
  return renames[k] ?? k.charAt(0).toLowerCase() + k.slice(1);
}

function convert(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(convert);
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) {
      if (dropped.has(k)) continue;
      out[ociKey(k)] = maps.has(k) ? { ...(val as object) } : convert(val);
    }
    return out;
  }
  return v;
}

/** proto3 drops zeros; OCI fields that are plain (non-pointer) numbers must still be there. */
function fillZeros(o: Record<string, any> | undefined, keys: string[]): void {
  if (o) for (const k of keys) o[k] ??= 0;
}

function fixProcess(p: Record<string, any> | undefined): void {
  if (!p) return;
  p.user ??= {};
  fillZeros(p.user, ['uid', 'gid']);
  fillZeros(p.consoleSize, ['height', 'width']);
  for (const r of p.rlimits ?? []) fillZeros(r, ['hard', 'soft']);
}

/** OCI JSON of a decoded grpc.Spec. Zero values of optional (pointer) OCI fields stay absent,
 *  e.g. resources: `memory.limit: 0` would mean a 0-byte limit, not "no limit". */
export function ociFromGrpc(spec: grpc.ISpec): Record<string, any> {
  const obj = grpc.Spec.toObject(grpc.Spec.fromObject(spec), { longs: Number, enums: String, defaults: false, arrays: false, objects: false });
  const oci = convert(obj) as Record<string, any>;
  fixProcess(oci.process);
  const l = oci.linux;
  for (const m of [...(l?.uidMappings ?? []), ...(l?.gidMappings ?? [])]) fillZeros(m, ['hostID', 'containerID', 'size']);
  for (const d of l?.devices ?? []) if (d.type !== 'p') fillZeros(d, ['major', 'minor']);
  for (const sc of l?.seccomp?.syscalls ?? []) for (const a of sc.args ?? []) fillZeros(a, ['index', 'value']);
  return oci;
}

/** OCI JSON of a grpc.Process (ExecProcessRequest.process). */
export function ociProcessFromGrpc(p: grpc.IProcess): Record<string, any> {
  const obj = grpc.Process.toObject(grpc.Process.fromObject(p), { longs: Number, enums: String, defaults: false, arrays: false, objects: false });
  const oci = convert(obj) as Record<string, any>;
  fixProcess(oci);
  return oci;
}

/** OCI JSON `linux.resources` of a grpc.LinuxResources (UpdateContainer). */
export function ociResourcesFromGrpc(r: grpc.ILinuxResources): Record<string, any> {
  const obj = grpc.LinuxResources.toObject(grpc.LinuxResources.fromObject(r), { longs: Number, enums: String, defaults: false, arrays: false, objects: false });
  return convert(obj) as Record<string, any>;
}
