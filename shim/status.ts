// The one place where errors become ttrpc status codes (containerd's errdefs mapping, shim-v2.md §8).
// Classification is by the stable `code` of each folder's errors, never by message text.
import { Code, StatusError } from 'ttrpc-ts';
import { describe } from './errors.js';

const BY_CODE: Record<string, Code> = {
  // shim
  SHIM_USAGE: Code.INVALID_ARGUMENT,
  SHIM_NOT_FOUND: Code.NOT_FOUND,
  SHIM_ALREADY_EXISTS: Code.ALREADY_EXISTS,
  SHIM_INVALID_ARGUMENT: Code.INVALID_ARGUMENT,
  SHIM_ILLEGAL_STATE: Code.FAILED_PRECONDITION,
  SHIM_UNIMPLEMENTED: Code.UNIMPLEMENTED,
  SHIM_VM_NOT_READY: Code.UNAVAILABLE,
  SHIM_VM_DIED: Code.UNAVAILABLE,
  SHIM_STDIO: Code.INVALID_ARGUMENT,
  SHIM_START: Code.INTERNAL,
  // config
  CONFIG_NOT_FOUND: Code.NOT_FOUND,
  CONFIG_INVALID: Code.INVALID_ARGUMENT,
  CONFIG_ANNOTATION: Code.INVALID_ARGUMENT,
  // vmm
  VMM_LAUNCH: Code.INTERNAL,
  VMM_TIMEOUT: Code.DEADLINE_EXCEEDED,
  VMM_STATE: Code.INTERNAL,
  VMM_STOPPED: Code.UNAVAILABLE,
  VMM_ABORTED: Code.ABORTED,
  VMM_API: Code.INTERNAL,
  VIRTIOFSD: Code.INTERNAL,
  SHARED_FS: Code.INTERNAL,
  // agent-client
  AGENT_CLOSED: Code.UNAVAILABLE,
  AGENT_DIAL: Code.UNAVAILABLE,
  AGENT_SPEC: Code.INVALID_ARGUMENT,
  // ttrpc
  TTRPC_CLOSED: Code.UNAVAILABLE,
};

/** Agent status codes we pass on; anything else the guest says is UNKNOWN to containerd. */
const AGENT_PASS = new Set<number>([Code.NOT_FOUND, Code.ALREADY_EXISTS, Code.INVALID_ARGUMENT, Code.DEADLINE_EXCEEDED,
  Code.FAILED_PRECONDITION, Code.UNIMPLEMENTED, Code.PERMISSION_DENIED, Code.RESOURCE_EXHAUSTED, Code.INTERNAL]);

/** Errors that only say "the sandbox could not start": their cause, when it is known, says why. */
const WRAPPERS = new Set(['SHIM_VM_NOT_READY']);

export function statusCodeOf(err: unknown): Code {
  if (err instanceof StatusError) return err.code;
  const e = err as { code?: unknown; grpcCode?: unknown; name?: string; cause?: unknown } | null;
  if (e && typeof e.code === 'string' && WRAPPERS.has(e.code) && e.cause !== undefined) {
    // A bad config is INVALID_ARGUMENT, not UNAVAILABLE (which callers may retry).
    const inner = statusCodeOf(e.cause);
    if (inner !== Code.UNKNOWN) return inner;
  }
  if (e && typeof e.code === 'string') {
    if (e.code === 'AGENT_RPC' && typeof e.grpcCode === 'number') return AGENT_PASS.has(e.grpcCode) ? e.grpcCode : Code.UNKNOWN;
    const c = BY_CODE[e.code];
    if (c !== undefined) return c;
  }
  if (e && (e.name === 'AbortError' || e.name === 'TimeoutError')) return Code.DEADLINE_EXCEEDED;
  return Code.UNKNOWN;
}

/** The StatusError a task handler answers with; the message keeps the cause chain. */
export function toStatus(err: unknown): StatusError {
  if (err instanceof StatusError) return err;
  return new StatusError(statusCodeOf(err), describe(err));
}
