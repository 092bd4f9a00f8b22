// Pure pieces of the shim process protocol: socket address, the forms of `start`'s answer,
// BootstrapParams (containerd 2.3+), and the `delete` / `-info` outputs.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { PbWriter, decodeAny, readFields, str, timestamp } from './pbwire.js';

export const RUNTIME_NAME = 'io.containerd.kata-ts.v2';
export const SHIM_VERSION = '0.1.0';
export const DEFAULT_STATE_DIR = '/run/containerd';
/** sun_path is 108 bytes; containerd's library refuses longer than 106. */
export const MAX_SOCKET_PATH = 106;

/** containerd's SocketAddress: unix://<dir>/<sha256(grpcAddress/namespace/id)>. */
export function socketAddress(o: { grpcAddress: string; namespace: string; id: string; socketDir?: string }): string {
  const hash = createHash('sha256').update(posix.join(o.grpcAddress, o.namespace, o.id)).digest('hex');
  const dir = o.socketDir || posix.join(DEFAULT_STATE_DIR, 's');
  return `unix://${posix.join(dir, hash)}`;
}

/** The filesystem path of a `unix://` address. */
export function socketPath(address: string): string {
  if (!address.startsWith('unix://')) throw new Error(`not a unix:// address: ${address}`);
  return address.slice('unix://'.length);
}

/** containerd's BootstrapParams (2.3+), the fields we use. */
export interface BootstrapParams {
  instanceId: string;
  namespace: string;
  logLevel: number;
  containerdVersion: string;
  ttrpcAddress: string;
  grpcAddress: string;
  containerdBinary: string;
  extensions: { typeUrl: string; value: Uint8Array }[];
  socketDir?: string;
}

/** What `start` found on stdin. */
export type StartStdin =
  | { kind: 'bootstrap'; params: BootstrapParams }
  | { kind: 'options'; typeUrl: string; value: Uint8Array }
  | { kind: 'none' };

/**
 * Reads start's stdin: BootstrapParams when it decodes as one naming this instance, else the
 * runtime options Any, else nothing. Never throws: unknown stdin is ignored.
 */
export function parseStartStdin(buf: Uint8Array, expect: { id: string; namespace: string }): StartStdin {
  if (buf.length === 0) return { kind: 'none' };
  const params = decodeBootstrapParams(buf);
  if (params && params.instanceId === expect.id && params.namespace === expect.namespace) return { kind: 'bootstrap', params };
  const any = decodeAny(buf);
  if (any) return { kind: 'options', ...any };
  return { kind: 'none' };
}

export function decodeBootstrapParams(buf: Uint8Array): BootstrapParams | undefined {
  try {
    const p: BootstrapParams = {
      instanceId: '', namespace: '', logLevel: 0, containerdVersion: '', ttrpcAddress: '',
      grpcAddress: '', containerdBinary: '', extensions: [],
    };
    for (const f of readFields(buf)) {
      if (f.wire === 0 && f.field === 3) p.logLevel = Number(BigInt.asIntN(32, f.value));
      else if (f.wire === 2) {
        switch (f.field) {
          case 1: p.instanceId = str(f.value); break;
          case 2: p.namespace = str(f.value); break;
          case 4: p.containerdVersion = str(f.value); break;
          case 5: p.ttrpcAddress = str(f.value); break;
          case 6: p.grpcAddress = str(f.value); break;
          case 7: p.containerdBinary = str(f.value); break;
          case 8: {
            const ext = readFields(f.value).find((x) => x.field === 1 && x.wire === 2);
            const any = ext && ext.wire === 2 ? decodeAny(ext.value) : undefined;
            if (any) p.extensions.push(any);
            break;
          }
          case 9: p.socketDir = str(f.value); break;
          default: break;
        }
      }
    }
    return p;
  } catch {
    return undefined;
  }
}

export function encodeBootstrapParams(p: Partial<BootstrapParams>): Uint8Array {
  const w = new PbWriter()
    .string(1, p.instanceId ?? '').string(2, p.namespace ?? '').uint(3, p.logLevel ?? 0)
    .string(4, p.containerdVersion ?? '').string(5, p.ttrpcAddress ?? '').string(6, p.grpcAddress ?? '')
    .string(7, p.containerdBinary ?? '');
  for (const e of p.extensions ?? []) w.message(8, new PbWriter().message(1, new PbWriter().string(1, e.typeUrl).bytes(2, e.value)));
  if (p.socketDir !== undefined) w.bytes(9, Buffer.from(p.socketDir), true);
  return w.finish();
}

/** Which answer `start` prints. */
export type AnswerForm = 'plain' | 'json' | 'bootstrap';

/**
 * The newest form the caller understands: BootstrapResult when it sent BootstrapParams (2.3+);
 * JSON version 3 for containerd 2.0–2.2 (1.7 rejects version 3); a plain address otherwise.
 */
export function answerForm(o: { stdin: StartStdin; containerdMajor: number | undefined }): AnswerForm {
  if (o.stdin.kind === 'bootstrap') return 'bootstrap';
  if (o.containerdMajor !== undefined && o.containerdMajor >= 2) return 'json';
  return 'plain';
}

/** Task API version announced with the JSON and protobuf forms. */
export const TASK_API_VERSION = 3;

export function encodeAnswer(form: AnswerForm, address: string): Uint8Array {
  switch (form) {
    case 'plain':
      return Buffer.from(address);
    case 'json':
      return Buffer.from(JSON.stringify({ version: TASK_API_VERSION, address, protocol: 'ttrpc' }));
    case 'bootstrap':
      return new PbWriter().uint(1, TASK_API_VERSION).string(2, address).string(3, 'ttrpc').finish();
  }
}

/** The major version in a containerd version string such as "v2.1.9", "1.7.24~ds1". */
export function majorVersion(v: string): number | undefined {
  const m = /^v?(\d+)\./.exec(v.trim());
  return m ? Number(m[1]) : undefined;
}

/** containerd.task.v2.DeleteResponse, as `delete` prints it. */
export function encodeDeleteResponse(o: { pid: number; exitStatus: number; exitedAtMs: number }): Uint8Array {
  return new PbWriter().uint(1, o.pid).uint(2, o.exitStatus).message(3, timestamp(o.exitedAtMs)).finish();
}

/** containerd.types.RuntimeInfo for `-info`. */
export function encodeRuntimeInfo(o: { options?: { typeUrl: string; value: Uint8Array } }): Uint8Array {
  const w = new PbWriter().string(1, RUNTIME_NAME).message(2, new PbWriter().string(1, SHIM_VERSION).string(2, 'kata-ts'));
  if (o.options) w.message(3, new PbWriter().string(1, o.options.typeUrl).bytes(2, o.options.value));
  return w.finish();
}

/** runtimeoptions.v1.Options → its config path (legacy cri-containerd type too). */
export function runtimeOptionsConfigPath(any: { typeUrl: string; value: Uint8Array } | undefined): string | undefined {
  if (!any) return undefined;
  const t = any.typeUrl.replace(/^type\.googleapis\.com\//, '');
  if (t !== 'runtimeoptions.v1.Options' && t !== 'cri-containerd.runtimeoptions.v1.Options') return undefined;
  try {
    const f = readFields(any.value).find((x) => x.field === 2 && x.wire === 2);
    return f && f.wire === 2 ? str(f.value) || undefined : undefined;
  } catch {
    return undefined;
  }
}

/** CRI / CRI-O annotations that tell a sandbox from a pod container. */
export type ContainerKind = { kind: 'sandbox'; sandboxId: string } | { kind: 'container'; sandboxId: string } | { kind: 'standalone' };

export function containerKind(id: string, annotations: Record<string, string> | undefined): ContainerKind {
  const a = annotations ?? {};
  const type = a['io.kubernetes.cri.container-type'] ?? a['io.kubernetes.cri-o.ContainerType'];
  const sandboxId = a['io.kubernetes.cri.sandbox-id'] ?? a['io.kubernetes.cri-o.SandboxID'] ?? '';
  if (type === 'container' && sandboxId && sandboxId !== id) return { kind: 'container', sandboxId };
  if (type === 'sandbox') return { kind: 'sandbox', sandboxId: id };
  return { kind: 'standalone' };
}

/** `-info` stdin: the runtime options Any, if any. */
export function decodeAnyOrUndefined(buf: Uint8Array): { typeUrl: string; value: Uint8Array } | undefined {
  return buf.length ? decodeAny(buf) : undefined;
}
