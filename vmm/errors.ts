// Errors of the VM layer. `code` is stable (the shim maps it once at its edge); `cause` keeps the
// underlying error; messages name the thing (binary, socket, endpoint) and what went wrong.

export type VmmErrorCode =
  | 'VMM_LAUNCH'      // the VMM binary is missing, not executable, exited, or its API never came up
  | 'VMM_TIMEOUT'     // an API call or a deadline ran out
  | 'VMM_STATE'       // vm.info reported a state we did not expect
  | 'VMM_STOPPED'     // the VM is gone (stop() ran or something died)
  | 'VMM_ABORTED'     // start() was aborted by its signal
  | 'VIRTIOFSD'       // virtiofsd could not be started or died
  | 'SHARED_FS';      // a mount/unmount/dir operation of the shared fs failed

export class VmmError extends Error {
  constructor(readonly code: VmmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VmmError';
  }
}

/** cloud-hypervisor answered an error status: keeps the status, the endpoint and its message list. */
export class ClhApiError extends Error {
  readonly code = 'VMM_API';
  constructor(
    readonly endpoint: string,
    readonly status: number,
    /** v47+: the JSON array of strings (error and causes, outermost first); older: the text. */
    readonly messages: string[],
  ) {
    super(`cloud-hypervisor ${endpoint}: HTTP ${status}${messages.length ? `: ${messages.join(': ')}` : ''}`);
    this.name = 'ClhApiError';
  }
}
