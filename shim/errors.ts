// The shim's errors: a stable `code` each, the wrapped error in `cause`.
// They become ttrpc status codes in exactly one place (status.ts).

export type ShimErrorCode =
  | 'SHIM_USAGE'
  | 'SHIM_NOT_FOUND'
  | 'SHIM_ALREADY_EXISTS'
  | 'SHIM_INVALID_ARGUMENT'
  | 'SHIM_ILLEGAL_STATE'
  | 'SHIM_UNIMPLEMENTED'
  | 'SHIM_VM_NOT_READY'
  | 'SHIM_VM_DIED'
  | 'SHIM_STDIO'
  | 'SHIM_START';

export class ShimError extends Error {
  readonly code: ShimErrorCode;
  constructor(code: ShimErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad command line. */
export class UsageError extends ShimError {
  constructor(message: string) { super('SHIM_USAGE', message); }
}

/** No such task or process; containerd relies on getting NOT_FOUND for these. */
export class NotFoundError extends ShimError {
  constructor(message: string) { super('SHIM_NOT_FOUND', message); }
}

export class AlreadyExistsError extends ShimError {
  constructor(message: string) { super('SHIM_ALREADY_EXISTS', message); }
}

export class InvalidArgumentError extends ShimError {
  constructor(message: string, options?: { cause?: unknown }) { super('SHIM_INVALID_ARGUMENT', message, options); }
}

/** An operation that the process's current state does not allow. */
export class IllegalStateError extends ShimError {
  readonly state: string;
  readonly op: string;
  constructor(what: string, state: string, op: string) {
    super('SHIM_ILLEGAL_STATE', `cannot ${op} ${what}: it is ${state}`);
    this.state = state;
    this.op = op;
  }
}

export class UnimplementedError extends ShimError {
  constructor(message: string) { super('SHIM_UNIMPLEMENTED', message); }
}

/** The VM did not become ready in time, or failed to start. */
export class VmNotReadyError extends ShimError {
  constructor(message: string, options?: { cause?: unknown }) { super('SHIM_VM_NOT_READY', message, options); }
}

/** The VM (or the agent connection) is gone. */
export class VmDiedError extends ShimError {
  constructor(message: string, options?: { cause?: unknown }) { super('SHIM_VM_DIED', message, options); }
}

/** A stdio URI or fifo that cannot be used. */
export class StdioError extends ShimError {
  constructor(message: string, options?: { cause?: unknown }) { super('SHIM_STDIO', message, options); }
}

/** `start` could not set up the daemon. */
export class StartError extends ShimError {
  constructor(message: string, options?: { cause?: unknown }) { super('SHIM_START', message, options); }
}

/** "msg: cause: cause..." for logs and status messages (outer messages don't repeat the cause). */
export function describe(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (e instanceof Error) {
      // A cause whose text (or its first line) the outer message already carries adds nothing.
      const msg = e.message;
      const first = msg.split('\n')[0];
      if (msg && !parts.some((p) => p.includes(first))) parts.push(msg);
      e = (e as { cause?: unknown }).cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return parts.join(': ') || String(err);
}
