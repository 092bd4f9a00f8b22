// The generated protobuf types (proto/gen, `npm run gen:proto`) and the few helpers every
// folder needs around them: Any, Timestamp, and containerd's type URLs.
import { google } from './gen/proto.js';

export { io, containerd, google, runtimeoptions, grpc, types } from './gen/proto.js';

/**
 * Type URLs as containerd writes them: bare names, never `type.googleapis.com/`-prefixed
 * (containerd 1.6 resolves them by exact string).
 */
export const TypeUrl = {
  runtimeOptions: 'runtimeoptions.v1.Options',
  criRuntimeOptions: 'cri-containerd.runtimeoptions.v1.Options',
  runcOptions: 'containerd.runc.v1.Options',
  taskCreate: 'containerd.events.TaskCreate',
  taskStart: 'containerd.events.TaskStart',
  taskExit: 'containerd.events.TaskExit',
  taskDelete: 'containerd.events.TaskDelete',
  taskExecAdded: 'containerd.events.TaskExecAdded',
  taskExecStarted: 'containerd.events.TaskExecStarted',
  taskOOM: 'containerd.events.TaskOOM',
  taskPaused: 'containerd.events.TaskPaused',
  taskResumed: 'containerd.events.TaskResumed',
  taskCheckpointed: 'containerd.events.TaskCheckpointed',
  cgroupsV1Metrics: 'io.containerd.cgroups.v1.Metrics',
  cgroupsV2Metrics: 'io.containerd.cgroups.v2.Metrics',
  /** JSON value: an OCI `process` object (ExecProcessRequest.spec). */
  ociProcess: 'types.containerd.io/opencontainers/runtime-spec/1/Process',
  /** JSON value: an OCI `linux.resources` object (UpdateTaskRequest.resources). */
  ociLinuxResources: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources',
  /** JSON value: OCI runtime features (RuntimeInfo.features). */
  ociFeatures: 'types.containerd.io/opencontainers/runtime-spec/1/features/Features',
} as const;

/** An Any holding already-encoded bytes (note protobufjs keeps Any's field as `type_url`). */
export function anyOf(typeUrl: string, value: Uint8Array): google.protobuf.Any {
  return google.protobuf.Any.create({ type_url: typeUrl, value });
}

/** A Timestamp for a Date (millisecond precision; nanos always in 0..999999999). */
export function timestampFrom(date: Date): google.protobuf.Timestamp {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new RangeError(`timestampFrom: invalid date ${String(date)}`);
  const seconds = Math.floor(ms / 1000);
  return google.protobuf.Timestamp.create({ seconds, nanos: (ms - seconds * 1000) * 1_000_000 });
}

/** The Date of a Timestamp; an absent one is the Unix epoch. Sub-millisecond nanos are dropped. */
export function toDate(ts: google.protobuf.Timestamp.$Properties | null | undefined): Date {
  if (!ts) return new Date(0);
  return new Date(Number(ts.seconds ?? 0) * 1000 + Math.floor((ts.nanos ?? 0) / 1_000_000));
}
